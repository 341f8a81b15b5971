"""Agreement of the strong attacks with second implementations, on a trained digits checkpoint
(the ERM fixture, all 360 test images): error rates within TOLERANCE_PP percentage points.

Why a tolerance and not equality: each implementation draws its own random start (and Square its
own squares) from its own generator, so examples near the decision boundary fall on either side
from run to run. Measured on this checkpoint (script run on the AMD EPYC machine, 1 thread): at
eps 16/255 every pair agreed within 0.56 pp; at eps 24/255 (this test's) within 1.67 pp (6 of 360
images: PGD 45.8% vs adv-lib 44.2%, APGD-DLR 42.2% vs torchattacks 43.9%; APGD-CE 48.1% vs 48.6%
and 48.6%; Square 36.4% vs 36.1%). TOLERANCE_PP = 2.5 (9 images) leaves room for that noise and
still fails an attack that is weaker by a few points. PGD's exact agreement with torchattacks
given the same start is in tests/test_strong_attacks.py.

- PGD (40 steps of 2.5·eps/40, 1 restart) vs adv-lib's pgd_linf with the same steps and step;
- APGD-CE and APGD-DLR (100 iterations) vs adv-lib's apgd and torchattacks' APGD built with
  steps=100 (its default of 10 is not the paper's: torchattacks issue #196);
- Square vs torchattacks' Square, both with 1,000 queries (AutoAttack uses 5,000; fewer keeps this
  test short, and both implementations get the same budget).
Every comparison also requires the attack to raise the error by more than 10 points (a live one).
The third-party attacks draw from the global RNG: each runs inside torch.random.fork_rng with a
fixed seed, so no global state leaks into other tests. Each library is optional: torchattacks is
in the `dev` extra; adv-lib in `advlib`, outside `dev` because its dependency visdom ships only an
sdist that builds with setuptools<81 (install with PIP_CONSTRAINT naming "setuptools<81"). A
library that is absent skips its tests.
"""

import pytest
import torch

from robustmix.attacks import apgd, pgd, square

EPS = 24 / 255  # where FGSM fools ~30% of this checkpoint: room above and below
TOLERANCE_PP = 2.5
SEED = 0


@pytest.fixture(scope="module")
def setup(trained, digits):
    model = trained[0].eval()
    x, y = digits.x_test.float(), digits.y_test
    return model, x, y


def error(model, x_adv, y) -> float:
    with torch.no_grad():
        return 100.0 * (model(x_adv).argmax(1) != y).float().mean().item()


def seeded(fn):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return fn()


def adv_lib_attacks():
    return pytest.importorskip("adv_lib.attacks")


def ours(name, model, x, y):
    if name == "pgd":
        return pgd(model, x, y, eps=EPS, iters=40, restarts=1, seed=SEED)
    if name == "square":
        return square(model, x, y, eps=EPS, queries=1000, seed=SEED)
    return apgd(model, x, y, eps=EPS, loss=name.split("-")[1], seed=SEED)  # 100 iterations: the default


def theirs(library, name, model, x, y):
    if library == "adv-lib":
        al = adv_lib_attacks()
        if name == "pgd":
            return seeded(lambda: al.pgd_linf(model, x, y, EPS, steps=40, absolute_step_size=2.5 * EPS / 40))
        return seeded(lambda: al.apgd(model, x, y, EPS, norm=float("inf"), n_iter=100, loss_function=name.split("-")[1]))
    ta = pytest.importorskip("torchattacks")
    if name == "square":
        return seeded(lambda: ta.Square(model, eps=EPS, n_queries=1000, seed=SEED)(x, y))
    return seeded(lambda: ta.APGD(model, eps=EPS, steps=100, loss=name.split("-")[1], seed=SEED)(x, y))


CASES = [("pgd", "adv-lib"), ("apgd-ce", "adv-lib"), ("apgd-dlr", "adv-lib"), ("apgd-ce", "torchattacks"),
         ("apgd-dlr", "torchattacks"), ("square", "torchattacks")]


@pytest.mark.parametrize("name,library", CASES, ids=[f"{n}-vs-{lib}" for n, lib in CASES])
def test_error_rate_agrees_with_a_second_implementation(name, library, setup):
    model, x, y = setup
    x_theirs = theirs(library, name, model, x, y)
    x_ours = ours(name, model, x, y)
    assert (x_ours - x).abs().max() <= EPS + 1e-6
    e_ours, e_theirs = error(model, x_ours, y), error(model, x_theirs, y)
    assert e_ours > error(model, x, y) + 10, "a live comparison: the attack must raise the error"
    assert abs(e_ours - e_theirs) <= TOLERANCE_PP, f"robustmix {name} {e_ours:.2f}% vs {library} {e_theirs:.2f}%"
