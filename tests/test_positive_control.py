"""The positive control: a model that resists, and the strong suite and its soundness checks seeing it.

On digits, a small CNN trained with PGD-AT (robustmix.training.adversarial) in seconds reads a
worst-case error under the strong suite far below the ERM model's at the stated eps; its checks pass,
and "unbounded" and "converged" are seen to work on it: PGD at 128/255 still breaks it (pass with the
numbers), and a PGD whose step was broken (a tenth of its size) makes "converged" fail, because twice
the steps then find what the run's PGD missed. (On a model at 100% worst-case error neither check can
fail: this is where they are informative.)

Budgets are cut to keep CI short (stated below); eps 32/255 = two of the digits' 17 grey levels.
"""

from __future__ import annotations

import importlib

import pytest

from robustmix import EvalConfig, TrainConfig, evaluate, train
from robustmix.attacks import SUITES
from robustmix.data import load_dataset, stratified_subset
from robustmix.soundness import soundness_checks
from robustmix.store import Checkpoint

EPS = 32 / 255
BUDGET = dict(pgd_iters=20, pgd_restarts=2, apgd_iters=50, square_queries=500)  # the CI budget, stated
EXAMPLES = 200


@pytest.fixture(scope="module")
def control():
    """(ERM checkpoint, PGD-AT checkpoint, x, y): trained once for this module."""
    data = load_dataset("digits")
    erm = train(TrainConfig(epochs=15, device="cpu", seed=1))
    adv = train(TrainConfig(epochs=15, device="cpu", seed=1, adversarial="pgd", adv_eps=EPS, adv_steps=3))
    pick = stratified_subset(data.y_test, EXAMPLES, seed=0)
    return Checkpoint("erm", *erm), Checkpoint("pgd-at", *adv), data.x_test[pick], data.y_test[pick]


def strong(targets, x, y, eps=(EPS,), **budget):
    probes: list[dict] = []
    cfg = EvalConfig(eps=eps, attacks=SUITES["strong"], settings=("white-box",), device="cpu", **{**BUDGET, **budget})
    records = evaluate(targets, x, y, cfg, probes=probes)
    return records, soundness_checks(records + probes)


def worst(records, target):
    return next(r["top1_err"] for r in records if r["target"] == target and r["attack"] == "worst-case")


def test_the_adversarially_trained_model_resists_and_its_checks_pass(control):
    erm, adv, x, y = control
    records, checks = strong([erm, adv], x, y)
    e_erm, e_adv = worst(records, "erm"), worst(records, "pgd-at")
    assert e_erm >= 80 and e_adv <= e_erm - 40, (e_erm, e_adv)  # far below: the suite reads robustness where it exists
    mine = {c.check: c for c in checks if c.target == "pgd-at"}
    assert all(c.status == "pass" for c in mine.values() if c.status != "skip"), {k: (c.status, c.detail) for k, c in mine.items()}
    assert mine["unbounded"].status == "pass" and mine["unbounded"].numbers["err"] >= 99  # informative: the model is not at 100% at eps
    assert mine["converged"].status == "pass" and mine["gradient-free"].status == "pass"
    assert {r["adversarial"] for r in records if r["target"] == "pgd-at"} == {"PGD-AT (ε = 32/255, 3 steps)"}


def test_a_broken_pgd_step_makes_converged_fail_on_the_positive_control(control, monkeypatch):
    """PGD's step cut to a fifth: the run's PGD misses what twice its steps and restarts find, at 64/255
    where the control is partly broken (at 32/255 it resists even the doubled weak PGD)."""
    _, adv, x, y = control
    pgd_module = importlib.import_module("robustmix.attacks.pgd")
    monkeypatch.setattr(pgd_module, "PGD_STEP_SCALE", pgd_module.PGD_STEP_SCALE / 5)
    _, checks = strong([adv], x, y, eps=(EPS, 2 * EPS))
    converged = next(c for c in checks if c.check == "converged")
    assert converged.status == "fail", converged.detail
    assert converged.numbers["err_doubled"] > converged.numbers["err"] + 1
    unbounded = next(c for c in checks if c.check == "unbounded")
    # the broken step still breaks it at 128/255; "not informative" when APGD-T already reached ~100% at 64/255
    assert unbounded.status in ("pass", "not informative") and unbounded.numbers["err"] >= 99, (unbounded.status, unbounded.detail)
