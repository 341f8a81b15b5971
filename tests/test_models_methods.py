"""Generated from the MODELS and METHODS registries: every entry trains a step on CPU."""

import pytest
import torch

from robustmix.data import pixels
from robustmix.methods import METHODS, sample_lam, soft_cross_entropy
from robustmix.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_forward_backward(name, digits):
    torch.manual_seed(0)
    c, h, _ = digits.input_shape
    model = build_model(name, in_channels=c, num_classes=10, image_size=h, mean=digits.mean, std=digits.std)
    x = pixels(digits.x_train[:8])
    logits = model(x)
    assert logits.shape == (8, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_gives_valid_soft_targets_and_trains(name, digits):
    gen = torch.Generator().manual_seed(0)
    x, y = pixels(digits.x_train[:32]), digits.y_train[:32]
    x_before = x.clone()
    x_mix, y_soft = METHODS[name](x, y, num_classes=10, alpha=1.0, gen=gen)
    assert torch.equal(x, x_before), "methods must not change the caller's batch"
    assert x_mix.shape == x.shape and x_mix.min() >= 0 and x_mix.max() <= 1
    assert y_soft.shape == (32, 10)
    assert torch.allclose(y_soft.sum(1), torch.ones(32))
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std)
    loss = soft_cross_entropy(model(x_mix), y_soft)
    loss.backward()
    assert torch.isfinite(loss)


def test_mixup_matches_the_paper_formula(digits):
    gen = torch.Generator().manual_seed(3)
    x, y = pixels(digits.x_train[:16]), digits.y_train[:16]
    x_mix, y_soft = METHODS["mixup"](x, y, num_classes=10, alpha=1.0, gen=gen)
    gen2 = torch.Generator().manual_seed(3)
    lam = sample_lam(1.0, gen2)
    perm = torch.randperm(16, generator=gen2)
    assert torch.allclose(x_mix, lam * x + (1 - lam) * x[perm])
    logits = torch.randn(16, 10)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(soft_cross_entropy(logits, y_soft), lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm]), atol=1e-6)


def test_beta_sampling_has_the_right_mean_and_variance():
    gen = torch.Generator().manual_seed(0)
    lams = torch.tensor([sample_lam(0.4, gen) for _ in range(4000)])
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 (2·0.4 + 1)) = 0.1389
    assert abs(lams.mean().item() - 0.5) < 0.02
    assert abs(lams.var().item() - 1 / (4 * 1.8)) < 0.01
    assert sample_lam(0.0, gen) == 1.0
