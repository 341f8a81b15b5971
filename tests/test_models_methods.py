"""Generated from the MODELS and METHODS registries: every entry trains a step on CPU (and every model's head
scales, as a study's negative control needs)."""

import pytest
import torch

from robustmix.data import pixels
from robustmix.training.methods import METHODS, apply_method, soft_cross_entropy
from robustmix.training.methods.mixing import cross_class_partner, sample_lam
from robustmix.models import MODELS, Normalize, build_model, run_stages, scale_head


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_forward_backward_and_stages(name, digits):
    torch.manual_seed(0)
    c, h, _ = digits.input_shape
    model = build_model(name, in_channels=c, num_classes=10, image_size=h, mean=digits.mean, std=digits.std)
    assert isinstance(next(iter(model.children())), Normalize), "normalisation must be the first layer"
    x = pixels(digits.x_train[:8])
    logits = model(x)
    assert logits.shape == (8, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():  # the stages manifold mixup uses compose to the model
        assert torch.allclose(run_stages(model, x), model(x), atol=1e-5)
        before = model(x)  # a study's negative control: the head scaled after training multiplies the logits
        assert torch.allclose(scale_head(model, 1e4)(x), before * 1e4, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name,options", [("wrn28_10", {"depth": 10, "width": 1, "dropout": 0.3}),
                                          ("preact_resnet18", {"width": 8, "dropout": 0.5}),
                                          ("lenet5", {"dropout": 0.5}), ("cnn", {"width": 8})])
def test_model_options_change_the_model(name, options):
    base = build_model(name, in_channels=3, num_classes=10, image_size=32, mean=[0.5] * 3, std=[0.2] * 3)
    other = build_model(name, in_channels=3, num_classes=10, image_size=32, mean=[0.5] * 3, std=[0.2] * 3, **options)
    has_dropout = any(isinstance(m, torch.nn.Dropout) for m in other.modules())
    assert has_dropout == ("dropout" in options)
    if "width" in options:
        assert sum(p.numel() for p in other.parameters()) < sum(p.numel() for p in base.parameters())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_gives_valid_soft_targets_and_trains(name, digits):
    gen = torch.Generator().manual_seed(0)
    x, y = pixels(digits.x_train[:32]), digits.y_train[:32]
    x_before = x.clone()
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std)
    logits, y_soft = apply_method(METHODS[name], model, x, y, num_classes=10, alpha=1.0, gen=gen)
    assert torch.equal(x, x_before), "methods must not change the caller's batch"
    assert logits.shape == y_soft.shape == (32, 10)
    assert torch.allclose(y_soft.sum(1), torch.ones(32)) and (y_soft >= 0).all()
    loss = soft_cross_entropy(logits, y_soft)
    loss.backward()
    assert torch.isfinite(loss)
    gen2 = torch.Generator().manual_seed(0)
    _, y_soft2 = apply_method(METHODS[name], model, x, y, num_classes=10, alpha=1.0, gen=gen2)
    assert torch.equal(y_soft, y_soft2), "same generator state, same result"


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


def test_mixup_ablations(digits):
    x, y = pixels(digits.x_train[:64]), digits.y_train[:64]
    for seed in range(5):
        _, y_soft = METHODS["mixup-inputs-only"](x, y, num_classes=10, alpha=1.0, gen=torch.Generator().manual_seed(seed))
        assert ((y_soft == 0) | (y_soft == 1)).all() and torch.equal(y_soft.sum(1), torch.ones(64))
    perm = cross_class_partner(y, torch.Generator().manual_seed(0))
    assert (y[perm] != y).all()
    _, y_soft = METHODS["mixup-cross-class"](x, y, num_classes=10, alpha=1.0, gen=torch.Generator().manual_seed(1))
    assert ((y_soft > 0).sum(1) == 2).all(), "every target mixes two different classes"


def test_cutmix_lambda_is_the_kept_area():
    x = torch.zeros(8, 1, 10, 10)
    x[:4] = 1.0  # half the batch white, half black
    y = torch.tensor([0] * 4 + [1] * 4)
    for seed in range(10):
        x_mix, y_soft = METHODS["cutmix"](x, y, num_classes=2, alpha=1.0, gen=torch.Generator().manual_seed(seed))
        changed = (x_mix != x).flatten(1).float().mean(1)  # fraction of pixels pasted from another class
        for i in range(8):
            own = y_soft[i, y[i]]
            if changed[i] > 0:  # partner of the other class: pasted area = 1 - lam
                assert abs((1 - own) - changed[i]) < 1e-6
        assert ((x_mix == 0) | (x_mix == 1)).all(), "cutmix pastes, never blends"


def test_manifold_mixup_at_the_input_is_input_mixup(digits):
    torch.manual_seed(0)
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std).eval()
    x, y = pixels(digits.x_train[:16]), digits.y_train[:16]
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        k = int(torch.randint(0, len(model.stages()), (), generator=g))
        if k == 0:
            break
    logits, y_soft = METHODS["manifold-mixup"](model, x, y, num_classes=10, alpha=1.0, gen=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    torch.randint(0, len(model.stages()), (), generator=g)
    x_mix, y_soft2 = METHODS["mixup"](x, y, num_classes=10, alpha=1.0, gen=g)
    assert torch.allclose(logits, model(x_mix), atol=1e-5) and torch.equal(y_soft, y_soft2)


def test_beta_sampling_has_the_right_mean_and_variance():
    gen = torch.Generator().manual_seed(0)
    lams = torch.tensor([sample_lam(0.4, gen) for _ in range(4000)])
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 (2·0.4 + 1)) = 0.1389
    assert abs(lams.mean().item() - 0.5) < 0.02
    assert abs(lams.var().item() - 1 / (4 * 1.8)) < 0.01
    assert sample_lam(0.0, gen) == 1.0
