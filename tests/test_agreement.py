"""Agreement with the libraries people trust, on a trained digits checkpoint (all 360 test images).

robustmix's FGSM and I-FGSM error rates (from `evaluate`, white-box and black-box) must equal
torchattacks' example for example, and agree with Foolbox 3 and ART within 0.5 percentage points
(their losses are mean-reduced or computed in another framework, so a sign can differ where a
gradient entry is ~0). Each library is optional (the `dev` extra): its tests skip if it is absent.
"""

import numpy as np
import pytest
import torch
from torch import nn

from robustmix.store.checkpoint import Checkpoint
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.evaluation.records import as_bool

EPS = (8 / 255, 32 / 255)
ITERS = 10
TOLERANCE_PP = 0.5


@pytest.fixture(scope="module")
def setup(trained, trained_mixup, digits):
    """Target (mixup), surrogate (ERM, another seed), the test set and robustmix's records."""
    target, surrogate = trained_mixup[0].eval(), trained[0].eval()
    x, y = digits.x_test.float(), digits.y_test
    config = EvalConfig(eps=EPS, iters=ITERS, batch_size=len(y))
    records = evaluate([Checkpoint("t", target)], x, y, config, surrogate=Checkpoint("s", surrogate))
    ours = {(r["setting"], r["attack"], r["eps"]): as_bool(r["top1_correct"]) for r in records}
    return target, surrogate, x, y, ours


def correct(model: nn.Module, x_adv, y) -> np.ndarray:
    x_adv = torch.as_tensor(np.asarray(x_adv)) if not isinstance(x_adv, torch.Tensor) else x_adv
    with torch.no_grad():
        return (model(x_adv.float()).argmax(1) == y).numpy()


def craft_torchattacks(model, x, y, attack, eps):
    ta = pytest.importorskip("torchattacks")
    a = ta.FGSM(model, eps=eps) if attack == "fgsm" else ta.BIM(model, eps=eps, alpha=eps / ITERS, steps=ITERS)
    return a(x, y)


def craft_foolbox(model, x, y, attack, eps):
    fb = pytest.importorskip("foolbox")
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    if attack == "fgsm":
        a = fb.attacks.LinfFastGradientAttack(random_start=False)
    else:
        a = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=eps / ITERS, steps=ITERS, random_start=False)
    _, clipped, _ = a(fmodel, x, y, epsilons=eps)
    return clipped


def craft_art(model, x, y, attack, eps):
    pytest.importorskip("art")
    from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
        clip_values=(0.0, 1.0), device_type="cpu",
    )
    if attack == "fgsm":
        a = FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=len(y))
    else:
        a = BasicIterativeMethod(clf, eps=eps, eps_step=eps / ITERS, max_iter=ITERS, batch_size=len(y), verbose=False)
    return a.generate(x.numpy(), y=y.numpy())


LIBRARIES = {"torchattacks": craft_torchattacks, "foolbox": craft_foolbox, "art": craft_art}


@pytest.mark.parametrize("eps", EPS, ids=[f"eps{e * 255:g}" for e in EPS])
@pytest.mark.parametrize("attack", ["fgsm", "ifgsm"])
@pytest.mark.parametrize("setting", ["white-box", "black-box"])
@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_error_rate_agrees_with_library(library, setting, attack, eps, setup):
    target, surrogate, x, y, ours = setup
    crafter = surrogate if setting == "black-box" else target
    x_adv = LIBRARIES[library](crafter, x, y, attack, eps)
    theirs = correct(target, x_adv, y)
    mine = ours[(setting, attack, eps)]
    err_mine, err_theirs = 100 * (1 - mine.mean()), 100 * (1 - theirs.mean())
    assert err_mine > 100 * (1 - correct(target, x, y).mean()), "the attack must raise the error (a live comparison)"
    if library == "torchattacks":
        assert np.array_equal(mine, theirs), f"robustmix {err_mine:.2f}% vs torchattacks {err_theirs:.2f}%"
    else:
        assert abs(err_mine - err_theirs) <= TOLERANCE_PP, f"robustmix {err_mine:.2f}% vs {library} {err_theirs:.2f}%"
