"""The fast recipe's pieces on their own: whitening stem, WhitenCNN, decoupled SGD, lookahead, label
smoothing, translate and alternating flip, bf16 autocast and its resolution."""

import math

import pytest
import torch
import torch.nn.functional as F

from robustmix.training import precision
from robustmix.data.augment import alternating_flip, augment_batch, base_orientation, batch_crop
from robustmix.training.methods import soft_cross_entropy
from robustmix.models import build_model
from robustmix.models.whiten import WHITEN_EPS, patch_covariance, whitening_filters
from robustmix.training.optim import Lookahead, decoupled_sgd, kilostep_scale, loss_scale, smooth_labels


def images(n=64, c=3, size=16, seed=0):
    """Correlated random images (smoothed noise), so the patch covariance is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size + 2, size + 2, generator=g)
    return F.avg_pool2d(x, 3, stride=1) * 0.8 + 0.1


def whiten_model(width=8, c=3, seed=0):
    torch.manual_seed(seed)
    return build_model("whiten_cnn", in_channels=c, num_classes=10, image_size=16, mean=[0.5] * c, std=[0.2] * c, width=width)


def test_whitening_filters_whiten_the_patches():
    x = images()
    filters, eigenvalues = whitening_filters(x)
    d = 3 * 2 * 2
    assert filters.shape == (2 * d, 3, 2, 2) and torch.equal(filters[d:], -filters[:d])
    assert (eigenvalues[:-1] >= eigenvalues[1:]).all(), "largest eigenvalue first"
    cov = patch_covariance(x, 2)
    w = filters[:d].reshape(d, d).double()
    whitened = w @ cov @ w.T  # the covariance of the stem's (bias-free) outputs
    expected = torch.diag(eigenvalues.double() / (eigenvalues.double() + WHITEN_EPS))
    assert torch.allclose(whitened, expected, atol=1e-4)
    assert not torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-3), "the test data must be correlated"


def test_whitening_comes_from_the_data_and_is_not_trained():
    model = whiten_model()
    before = model.whiten.weight.clone()
    info = model.init_from_data(images(seed=1))
    after_one = model.whiten.weight.clone()
    assert not torch.equal(before, after_one) and info["whitening_images"] == 64
    model.init_from_data(images(seed=2))
    assert not torch.equal(model.whiten.weight, after_one), "other data, other stem"
    model.init_from_data(images(seed=1))
    assert torch.equal(model.whiten.weight, after_one), "same data, same stem"
    assert not model.whiten.weight.requires_grad
    opt = decoupled_sgd(model, lr=11.5, weight_decay=0.0153, momentum=0.85, batch_size=64)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.whiten.weight) not in trained and id(model.whiten.bias) in trained
    assert model.early_parameters() == [model.whiten.bias]


def test_whiten_cnn_layout():
    model = whiten_model(width=8)
    wide = whiten_model(width=16)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in wide.parameters())
    assert model.whiten.weight.shape == (24, 3, 2, 2) and model.head.bias is None
    assert model.group2.conv1.weight.shape == (32, 8, 3, 3) and model.group3.conv1.weight.shape == (32, 32, 3, 3)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 6 and all(not bn.weight.requires_grad and bn.momentum == 0.4 for bn in bns)
    w = model.group2.conv1.weight  # dirac: the first in_channels filters are the identity
    identity = torch.zeros_like(w[:8])
    torch.nn.init.dirac_(identity)
    assert torch.equal(w[:8], identity) and not torch.equal(w[8:], torch.zeros_like(w[8:]))
    gray = build_model("whiten_cnn", in_channels=1, num_classes=3, image_size=28, mean=[0.5], std=[0.2], width=4)
    assert gray.whiten.weight.shape == (8, 1, 2, 2) and gray(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_decoupled_sgd_groups_and_decay():
    model = whiten_model()
    opt = decoupled_sgd(model, lr=11.5, weight_decay=0.0153, momentum=0.85, batch_size=1024)
    base = 11.5 / (1024 * (1 + 1 / 0.15))
    norm, other = opt.param_groups
    assert norm["lr"] == pytest.approx(64 * base) and other["lr"] == pytest.approx(base)
    assert all(g["nesterov"] and g["momentum"] == 0.85 for g in opt.param_groups)
    # the decay per step is the same in both groups and does not depend on the lr: wd·B/kilostep
    decay = 0.0153 * 1024 / kilostep_scale(0.85)
    assert norm["lr"] * norm["weight_decay"] == pytest.approx(decay) == other["lr"] * other["weight_decay"]
    assert len(norm["params"]) == 6 and all(p.dim() == 1 for p in norm["params"])
    frozen = [p for p in model.parameters() if not p.requires_grad]
    listed = {id(p) for g in opt.param_groups for p in g["params"]}
    assert frozen and not any(id(p) in listed for p in frozen)
    # a zero loss leaves only the decay: Nesterov's first step is p ← p·(1 − (1 + momentum)·decay)
    w = model.head.weight.detach().clone()
    (model.head.weight.sum() * 0).backward()
    opt.step()
    assert torch.allclose(model.head.weight, w * (1 - 1.85 * decay), atol=1e-7)
    assert loss_scale("decoupled-sgd", 100) == 100.0 and loss_scale("sgd", 100) == 1.0


def test_lookahead_follows_its_schedule_and_resumes():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    la = Lookahead(every=5)
    la.after_step(model, 4, 100)
    assert la.average is None
    la.after_step(model, 5, 100)
    start = {k: v.clone() for k, v in la.average.items()}
    assert set(start) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    live = model[0].weight.detach().clone()
    la.after_step(model, 50, 100)
    rho = 0.95 ** 5 * 0.5 ** 3
    assert torch.allclose(model[0].weight, rho * start["0.weight"] + (1 - rho) * live)
    assert torch.equal(model[0].weight, la.average["0.weight"])
    with torch.no_grad():
        model[0].weight.add_(1.0)
    saved = la.tensors()
    la.end_epoch(model)
    assert torch.equal(model[0].weight, la.average["0.weight"]), "each epoch ends on the average"
    other = Lookahead(every=5)
    other.load(saved)
    assert all(torch.equal(other.average[k], saved[k]) for k in saved)
    empty = Lookahead()
    empty.load(Lookahead().tensors())
    assert empty.average is None


def test_label_smoothing_on_soft_targets():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 10, generator=g), torch.randint(0, 10, (16,), generator=g)
    ours = soft_cross_entropy(logits, smooth_labels(F.one_hot(y, 10).float(), 0.2))
    assert ours.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.2).item(), rel=1e-6)
    soft = torch.softmax(torch.randn(16, 10, generator=g), 1)
    assert torch.allclose(smooth_labels(soft, 0.2).sum(1), torch.ones(16))
    assert smooth_labels(soft, 0.0) is soft


def test_translate_is_a_reflect_padded_shift_of_at_most_2px():
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    out = augment_batch("translate", x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    for i in range(32):
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(padded[i, :, dy:dy + 16, dx:dx + 16], out[i].float())]
        assert windows, f"image {i} is not a ≤2 px reflect-padded translate"
    assert not torch.equal(out, x)
    again = augment_batch("translate", x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(batch_crop(x, 2, torch.Generator().manual_seed(0), mode="reflect"), again)


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    x = torch.rand(64, 3, 8, 8)
    idx = torch.arange(100, 164)
    e0, e1, e2 = (alternating_flip(x, idx, e, seed=3) for e in range(3))
    assert torch.equal(e0, e2) and torch.equal(e1.flip(-1), e0), "one orientation per epoch parity"
    flipped = base_orientation(idx, 3)
    assert torch.equal(e0[flipped], x[flipped].flip(-1)) and torch.equal(e0[~flipped], x[~flipped])
    bits = base_orientation(torch.arange(10_000), 0)
    assert 0.47 < bits.float().mean() < 0.53 and not torch.equal(bits, base_orientation(torch.arange(10_000), 1))
    out = augment_batch("altflip-translate", x, torch.Generator().manual_seed(0), idx=idx, epoch=1, seed=3)
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="idx"):
        augment_batch("altflip-translate", x, torch.Generator())


def test_amp_resolution(monkeypatch):
    cpu = torch.device("cpu")
    assert precision.resolve_amp("none", cpu) == "none" and precision.resolve_amp("bf16", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert precision.resolve_amp("auto", cpu) == "none"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "amx_tile", "amx_bf16"})
    assert precision.resolve_amp("auto", cpu) == "bf16"
    assert precision.resolve_amp("auto", torch.device("mps")) == "none"
    assert precision.resolve_channels_last("auto", cpu, "none", "whiten_cnn")
    assert not precision.resolve_channels_last("auto", cpu, "bf16", "cnn")
    assert precision.resolve_channels_last("auto", torch.device("cuda"), "bf16", "cnn")
    assert not precision.resolve_channels_last(False, cpu, "none", "whiten_cnn")


def test_bf16_autocast_keeps_float32_master_weights():
    model = whiten_model(width=4)
    model.init_from_data(images(16))
    opt = decoupled_sgd(model, lr=1.0, weight_decay=0.0, momentum=0.85, batch_size=8)
    x, y = images(8), torch.arange(8) % 10
    with precision.autocast(torch.device("cpu"), "bf16"):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    loss = soft_cross_entropy(logits.float(), F.one_hot(y, 10).float())
    loss.backward()
    opt.step()
    assert all(p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32) for p in model.parameters())
    with precision.autocast(torch.device("cpu"), "none"):
        assert model(x).dtype == torch.float32
    assert math.isfinite(loss.item())
