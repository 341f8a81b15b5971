"""A planted case of gradient masking: a trained digits checkpoint whose logits are multiplied by
1e6. Its predictions are the checkpoint's, but float32 softmax saturates, so the cross-entropy
gradient at x is exactly zero for every confidently classified example: FGSM and I-FGSM cannot
move and report it as robust. The soundness checks must fail it and turn "it is more robust" into
"inconclusive"; the unmodified checkpoint must pass every check."""

import re

import pytest
import torch
from torch import nn

from robustmix.analysis.comparisons import paired_comparisons
from robustmix.attacks import SUITES
from robustmix.store.checkpoint import Checkpoint
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.soundness.checks import CHECKS, soundness_checks
from robustmix.soundness.verdicts import sound_verdicts

EPS = (8 / 255, 16 / 255)
N = 180
# A reduced budget for 2 CPU cores (the defaults are 40 × 5, 100 and 5,000), large enough for the
# unmodified checkpoint to pass the convergence check (doubling it moves its error by <= 1 pp).
BUDGET = dict(pgd_iters=40, pgd_restarts=5, apgd_iters=30, square_queries=300)


class SaturatedLogits(nn.Module):
    def __init__(self, model: nn.Module, scale: float = 1e6):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


@pytest.fixture(scope="module")
def runs(trained, trained_mixup, digits):
    model, meta = trained
    masked = SaturatedLogits(model).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    targets = [Checkpoint("erm", model, meta), Checkpoint("masked", masked, {**meta, "method": "erm-masked"})]
    out = {}
    for suite in ("paper", "strong"):
        probes: list[dict] = []
        config = EvalConfig(eps=EPS, attacks=SUITES[suite], **BUDGET)
        records = evaluate(targets, x, y, config, surrogate=Checkpoint("sur", trained_mixup[0], trained_mixup[1]), probes=probes)
        checks = soundness_checks(records + probes)
        out[suite] = records, checks, sound_verdicts(paired_comparisons(records), checks, records)
    return out, masked, model, x, y


def test_masked_model_keeps_the_predictions_and_loses_its_gradients(runs):
    _, masked, model, x, y = runs
    with torch.no_grad():
        assert torch.equal(masked(x).argmax(1), model(x).argmax(1))
    xg = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(masked(xg), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    assert (g.flatten(1) == 0).all(1).float().mean() > 0.9


def err(records, target, attack, eps, setting="white-box"):
    return next(r["top1_err"] for r in records if (r["target"], r["attack"], r["eps"], r["setting"]) == (target, attack, eps, setting))


def test_fgsm_and_ifgsm_call_the_masked_model_robust(runs):
    records, _, _ = runs[0]["paper"]
    clean = next(r["top1_err"] for r in records if r["target"] == "masked" and r["setting"] == "clean")
    for attack in ("fgsm", "ifgsm"):
        assert err(records, "masked", attack, 16 / 255) <= clean + 1
        assert err(records, "erm", attack, 16 / 255) > err(records, "masked", attack, 16 / 255) + 5


@pytest.mark.parametrize("suite", ["paper", "strong"])
def test_checks_fail_the_masked_model_and_its_verdicts_are_inconclusive(runs, suite):
    _, checks, verdicts = runs[0][suite]
    failed = {c.check for c in checks if c.target == "masked" and c.status == "fail"}
    assert "gradients" in failed
    if suite == "strong":
        assert {"gradient-free", "unbounded"} & failed  # the strong attacks see through it
    claims = verdicts[(verdicts.setting == "white-box") & (verdicts.attack.isin(["fgsm", "ifgsm"])) & verdicts.significant]
    assert len(claims) > 0  # FGSM/I-FGSM alone would call the masked model more robust
    for row in claims.itertuples():
        assert row.status == "inconclusive"
        assert "possible gradient masking" in row.sound_verdict and re.search(r"docs/protocol\.md#check-[a-z-]+", row.sound_verdict)


def test_the_unmodified_checkpoint_passes_every_check(runs):
    _, checks, _ = runs[0]["strong"]
    mine = {c.check: c for c in checks if c.target == "erm"}
    assert list(mine) == list(CHECKS)
    assert {k: c.status for k, c in mine.items()} == {k: "pass" for k in CHECKS}, [c.detail for c in mine.values() if c.status != "pass"]


def test_the_worst_case_shows_the_masked_model_is_not_robust(runs):
    records, _, _ = runs[0]["strong"]
    for e in EPS:
        assert err(records, "masked", "worst-case", e) >= err(records, "masked", "fgsm", e)
    assert err(records, "masked", "worst-case", 16 / 255) > err(records, "masked", "fgsm", 16 / 255) + 5
