"""PGD, APGD-CE/DLR and Square: exact agreement with torchattacks' PGD, restarts never weaker, the
stacked sweeps equal one call per eps, seeded and batch-independent randomness, the defaults of
the papers."""

import inspect

import pytest
import torch

from robustmix.runtime.errors import RobustmixError
from robustmix.attacks.apgd import APGD_ITERS, apgd, apgd_sweep, dlr_loss
from robustmix.attacks.noise import uniform
from robustmix.attacks.pgd import pgd, pgd_sweep
from robustmix.attacks.square import SQUARE_QUERIES, square, square_fraction, square_sweep

FAST = {
    "pgd": lambda m, x, y, **kw: pgd(m, x, y, iters=5, restarts=2, **kw),
    "apgd-ce": lambda m, x, y, **kw: apgd(m, x, y, loss="ce", iters=10, **kw),
    "apgd-dlr": lambda m, x, y, **kw: apgd(m, x, y, loss="dlr", iters=10, **kw),
    "square": lambda m, x, y, **kw: square(m, x, y, queries=50, **kw),
}


def test_defaults_are_the_papers():
    assert APGD_ITERS == 100 and inspect.signature(apgd).parameters["iters"].default == 100
    assert SQUARE_QUERIES == 5000 and inspect.signature(square).parameters["queries"].default == 5000
    # Square's p schedule, halved at 10, 50, 200, ... of 10,000 (rescaled to the budget)
    assert [square_fraction(i, 10000) for i in (0, 10, 11, 50, 51, 8001)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 512]
    assert [square_fraction(i, 1000) for i in (1, 2)] == [0.8, 0.4]  # rescaled: query 1 of 1,000 is 10 of 10,000


@pytest.mark.parametrize("eps", [4 / 255, 16 / 255])
def test_pgd_equals_torchattacks_bit_for_bit_with_the_same_start(eps, trained, batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, _ = trained
    x, y = batch
    with torch.random.fork_rng():
        torch.manual_seed(3)
        start = torch.empty_like(x).uniform_(-eps, eps)  # what torchattacks draws after the same seed
        torch.manual_seed(3)
        ref = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=10, random_start=True)(x, y)
    ours = pgd(model, x, y, eps=eps, iters=10, step=eps / 4, start=start)
    assert torch.equal(ours, ref)


def test_seeds_give_different_examples(trained, batch):
    model, _ = trained
    x, y = batch
    for name, fn in FAST.items():
        assert not torch.equal(fn(model, x, y, eps=16 / 255, seed=1), fn(model, x, y, eps=16 / 255, seed=2)), name


def fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_restarts_are_never_weaker_than_one_run_per_example(trained, digits):
    model, _ = trained
    x, y = digits.x_test[:120], digits.y_test[:120]
    for eps in (16 / 255, 24 / 255):
        one = fooled(model, pgd(model, x, y, eps=eps, iters=5, restarts=1), y)
        five = fooled(model, pgd(model, x, y, eps=eps, iters=5, restarts=5), y)
        assert not (one & ~five).any()  # every example one run fools, five restarts fool
        assert five.sum() >= one.sum()


@pytest.mark.parametrize("name", ["pgd", "apgd", "square"])
def test_sweep_equals_one_call_per_eps(name, trained, batch):
    model, _ = trained
    x, y = batch
    eps = (8 / 255, 24 / 255)
    if name == "pgd":
        swept, single = pgd_sweep(model, x, y, eps=eps, iters=5, restarts=2), lambda e: pgd(model, x, y, eps=e, iters=5, restarts=2)
    elif name == "apgd":
        swept, single = apgd_sweep(model, x, y, eps=eps, loss="dlr", iters=10), lambda e: apgd(model, x, y, eps=e, loss="dlr", iters=10)
    else:
        swept, single = square_sweep(model, x, y, eps=eps, queries=30), lambda e: square(model, x, y, eps=e, queries=30)
    for e in eps:
        assert torch.equal(swept[e], single(e)), e


@pytest.mark.parametrize("name", ["pgd", "apgd", "square"])
def test_an_example_gets_the_same_attack_in_any_batch(name, trained, batch):
    # the random numbers follow the example index, so attacking a slice with its indices gives
    # the rows of attacking the whole batch: results do not depend on --batch-size or the shard
    model, _ = trained
    x, y = batch
    kw = {"pgd": dict(iters=5, restarts=2), "apgd": dict(iters=10), "square": dict(queries=30)}[name]
    fn = {"pgd": pgd_sweep, "apgd": apgd_sweep, "square": square_sweep}[name]
    e = 24 / 255
    whole = fn(model, x, y, eps=[e], **kw)[e]
    part = fn(model, x[40:70], y[40:70], eps=[e], index=torch.arange(40, 70), **kw)[e]
    assert torch.equal(part, whole[40:70])


def test_noise_is_a_function_of_seed_stream_and_index():
    idx = torch.arange(1000)
    u = uniform(0, 1, idx, 16)
    assert u.shape == (1000, 16) and 0 <= u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01
    assert torch.equal(uniform(0, 1, idx[500:], 16), u[500:])
    assert not torch.equal(uniform(0, 2, idx, 16), u) and not torch.equal(uniform(1, 1, idx, 16), u)


def test_dlr_loss_matches_its_definition_and_is_scale_invariant():
    z = torch.tensor([[3.0, 1.0, 2.0, 0.0], [1.0, 5.0, 2.0, 4.0]])
    y = torch.tensor([0, 2])
    # row 0: y is the top logit: −(3 − 2)/(3 − 1); row 1: −(2 − 5)/(5 − 2)
    assert torch.allclose(dlr_loss(z, y), torch.tensor([-0.5, 1.0]))
    assert torch.allclose(dlr_loss(1000 * z, y), dlr_loss(z, y))


def test_bad_settings_are_refused(trained, batch):
    model, _ = trained
    x, y = batch
    with pytest.raises(RobustmixError, match="restarts"):
        pgd(model, x, y, eps=4 / 255, restarts=0)
    with pytest.raises(RobustmixError, match="loss"):
        apgd(model, x, y, eps=4 / 255, loss="hinge")
    with pytest.raises(RobustmixError, match="queries"):
        square(model, x, y, eps=4 / 255, queries=0)
    with pytest.raises(RobustmixError, match="eps"):
        pgd(model, x, y, eps=4)
    with pytest.raises(RobustmixError, match="start"):
        pgd(model, x, y, eps=4 / 255, start=torch.ones_like(x))
