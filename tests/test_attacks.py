"""Attack properties, generated from the ATTACKS registry, and agreement with torchattacks."""

import copy

import pytest
import torch

from robustmix.attacks import ATTACKS, Budget, Crafting, fgsm, fgsm_sweep, ifgsm, input_gradient, standard_layout
from robustmix.runtime.errors import RobustmixError

EPS = [1 / 255, 4 / 255, 32 / 255]
# Smaller budgets than the defaults, to keep these tests fast on 2 cores (the defaults' values are
# tested in tests/test_strong_attacks.py); an attack not listed runs with its defaults.
FAST = {"pgd": {"iters": 5, "restarts": 2}, "apgd-ce": {"iters": 10}, "apgd-dlr": {"iters": 10}, "square": {"queries": 100},
        "apgd-t": {"iters": 10, "target_classes": 3}, "fab-t": {"iters": 10, "target_classes": 3}}


def attack(name, model, x, y, *, eps, **kw):
    """ATTACKS[name] called as a user would; a randomized attack with a fixed seed."""
    a = ATTACKS[name]
    return a.fn(model, x, y, eps=eps, **({"seed": 0} if a.randomized else {}), **{**FAST.get(name, {}), **kw})


def test_registry_names_and_labels_are_one_vocabulary():
    assert all(name == a.name for name, a in ATTACKS.items())
    labels = [a.label for a in ATTACKS.values()]
    assert len(set(labels)) == len(labels) and "Clean" not in labels


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_stays_in_ball_and_pixel_range(name, eps, trained, batch):
    model, _ = trained
    x, y = batch
    x_adv = attack(name, model, x, y, eps=eps)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    moved = (x_adv != x).flatten(1).any(1)
    if ATTACKS[name].minimal_norm:  # it returns x unless it found an adversarial point within eps
        with torch.no_grad():
            assert (model(x_adv[moved]).argmax(1) != y[moved]).all()
    else:
        assert moved.any()  # it did move


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_reproducible_and_leaves_model_alone(name, trained, batch):
    model, _ = trained
    x, y = batch
    model.train()
    for p in model.parameters():
        p.grad = None
    state = copy.deepcopy(model.state_dict())
    a = attack(name, model, x, y, eps=8 / 255)
    b = attack(name, model, x, y, eps=8 / 255)
    assert torch.equal(a, b)
    assert model.training, "the model must be handed back in the mode it came in"
    assert all(p.grad is None for p in model.parameters()), "parameter gradients must be untouched"
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed (BatchNorm statistics must not move)"
    model.eval()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_raises_error(name, trained, batch):
    model, meta = trained
    x, y = batch
    clean = (model(x).argmax(1) != y).float().mean()
    adv = (model(attack(name, model, x, y, eps=32 / 255)).argmax(1) != y).float().mean()
    assert adv > clean


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_evaluators_craft_equals_the_attack_per_eps(name, trained, batch):
    """The evaluator's stacked `craft` gives, eps by eps, exactly what the pure attack gives."""
    model, _ = trained
    a = ATTACKS[name]
    if a.randomized:
        pytest.skip("a randomized attack's stacked random starts differ from one call per eps")
    x, y = batch
    x = standard_layout(x, torch.channels_last)  # as the evaluator prepares it (and as prepare_inputs keeps it)
    iters = 3 if a.iterative else 1
    job = Crafting(model, x, y, iters, direction=input_gradient(model, x, y).sign(), budget=Budget(fab_iters=iters, target_classes=3))
    crafted = a.craft(job, tuple(EPS))
    extra = ({"iters": iters} if a.iterative else {}) | ({"target_classes": 3} if name == "fab-t" else {})
    for k, e in enumerate(EPS):
        assert torch.equal(crafted[k], a.fn(model, x, y, eps=e, **extra)), e


@pytest.mark.parametrize("bad", [-1 / 255, float("nan"), float("inf"), 4, "4"])
def test_bad_eps_is_refused(bad, trained, batch):
    model, _ = trained
    with pytest.raises(RobustmixError):
        fgsm(model, *batch, eps=bad)


@pytest.mark.parametrize("iters", [0, -3, 2.5])
def test_bad_iters_is_refused(iters, trained, batch):
    with pytest.raises(RobustmixError):
        ifgsm(trained[0], *batch, eps=4 / 255, iters=iters)


def test_ifgsm_with_one_step_is_fgsm(trained, batch):
    model, _ = trained
    assert torch.equal(ifgsm(model, *batch, eps=8 / 255, iters=1), fgsm(model, *batch, eps=8 / 255))


def test_fgsm_sweep_equals_fgsm_per_eps(trained, batch):
    model, _ = trained
    swept = fgsm_sweep(model, *batch, eps=EPS)
    for e in EPS:
        assert torch.equal(swept[e], fgsm(model, *batch, eps=e))


@pytest.mark.parametrize("eps", [4 / 255, 16 / 255])
def test_matches_torchattacks(eps, trained, batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, _ = trained
    x, y = batch
    ref_fgsm = torchattacks.FGSM(model, eps=eps)(x, y)
    assert (fgsm(model, x, y, eps=eps) - ref_fgsm).abs().max().item() <= 1e-6
    ref_bim = torchattacks.BIM(model, eps=eps, alpha=eps / 10, steps=10)(x, y)
    assert (ifgsm(model, x, y, eps=eps, iters=10) - ref_bim).abs().max().item() <= 1e-6
