"""A study's controls (docs/protocol.md#controls) without running a study: the rule on planted numbers
and planted records (a positive control must read robust, a negative control must be flagged by a
masking check, and a control that misreads makes every claim "not valid"), the spec's one-line
refusals, and the planted masked model itself (`head_scale`: the head scaled after training; every
registered model's head scales: tests/test_models_methods.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustmix.cli import main
from robustmix.data import pixels
from robustmix.gate.spec import parse_spec
from robustmix.runtime.errors import RobustmixError
from robustmix.soundness.verdicts import (
    MASKING_CHECKS,
    NEGATIVE_CONTROL,
    NOT_VALID,
    POSITIVE_CONTROL,
    controls_misread,
    read_negative_control,
    read_positive_control,
)
from robustmix.store.checkpoint import provenance
from robustmix.study import parse_study
from robustmix.study.claims import Study, judge_claims, read_controls
from robustmix.study.headline import CONTROLS_MISREAD, headline_blocks, tally
from robustmix.training.config import TrainConfig
from robustmix.training.loop import train

from study_runs import DIGITS_HEAD

# --- the rule on planted numbers -----------------------------------------------------------------


def test_a_positive_control_reads_robust_only_clearly_below_erm_off_the_ceiling_and_unmasked():
    good = read_positive_control("robust", 24.2, 92.5, {}, gap=10, margin=2)
    assert good.reads and good.verdict == "reads robust" and "68.3 pp below" in good.said and "no masking check failed" in good.said
    erm_like = read_positive_control("robust", 88.0, 92.5, {}, gap=10, margin=2)  # a "positive control" that is really ERM
    assert not erm_like.reads and erm_like.verdict == "does not read robust" and "4.5 pp below (it must be at least 10 pp" in erm_like.said
    ceiling = read_positive_control("robust", 98.5, 100.0, {}, gap=1, margin=2)  # below ERM by the gap, but at the ceiling
    assert not ceiling.reads
    masked = read_positive_control("robust", 24.2, 92.5, {"robust-s0": ["gradients"]}, gap=10, margin=2)
    assert not masked.reads and "masking check(s) failed: gradients failed for robust-s0" in masked.said
    budget = read_positive_control("robust", 24.2, 92.5, {"robust-s0": ["converged"]}, gap=10, margin=2)
    assert budget.reads and "also converged failed for robust-s0: the attack's budget, not counted" in budget.said
    missing = read_positive_control("robust", None, 92.5, {})
    assert not missing.reads and "no white-box worst case" in missing.said


def test_a_negative_control_is_flagged_only_by_a_masking_check_on_every_checkpoint():
    assert "converged" not in MASKING_CHECKS and {"gradients", "transfer", "unbounded", "gradient-free"} <= set(MASKING_CHECKS)
    flagged = read_negative_control("masked", {"masked-s0": ["transfer", "gradients", "gradients"]})
    assert flagged.reads and flagged.verdict == "is flagged" and flagged.said == "masking checks failed (masked-s0: transfer, gradients)"
    budget_only = read_negative_control("masked", {"masked-s0": ["converged"]})  # an honest model with a small budget
    assert not budget_only.reads and "no masking check failed for masked-s0" in budget_only.said and '"converged" does not count' in budget_only.said
    one_seed_missed = read_negative_control("masked", {"masked-s0": ["gradients"], "masked-s1": []})
    assert not one_seed_missed.reads and "for masked-s1 (they failed for masked-s0: gradients)" in one_seed_missed.said
    assert controls_misread([flagged, read_positive_control("robust", 24.2, 92.5, {})]) is None
    assert controls_misread([]) is None
    assert controls_misread([flagged, budget_only]) == "the controls misread: the negative control 'masked' is not flagged"


# --- the rule on planted records of a study ------------------------------------------------------

N = 400


def spec_text(masked: str = 'head_scale = 10000', robust: str = 'adversarial = "pgd"\nadv_eps = 8', extra: str = "") -> str:
    """A study with the positive control listed first (method erm: it must never be taken for the ERM arm)."""
    return DIGITS_HEAD + f"""
[[targets]]
name = "robust"
role = "positive-control"
method = "erm"
{robust}
[[targets]]
name = "erm"
method = "erm"
seeds = [0, 1]
[[targets]]
name = "mixup"
method = "mixup"
seeds = [0, 1]
[[targets]]
name = "masked"
role = "negative-control"
method = "erm"
{masked}
[attack]
suite = "paper"
eps = [8]
settings = ["white-box"]
[strong]
suite = "strong"
eps = [8]
settings = ["white-box"]
[claims]
eps = 8
min_seeds = 2
{extra}
"""


def bits(err: float, seed: int) -> str:
    wrong = np.random.default_rng(seed).permutation(N)[: round(N * err / 100)]
    return "".join("0" if i in set(wrong) else "1" for i in range(N))


def record(slot: str, setting: str, attack: str, err: float, seed: int) -> dict:
    return {"target": slot, "method": slot.split("-")[0], "setting": setting, "attack": attack, "eps_255": 0.0 if setting == "clean" else 8.0,
            "n": N, "top1_err": err, "top1_correct": bits(err, seed), "top5_correct": bits(err / 2, seed + 1)}


def planted(robust_worst: float = 20.0, masked_checks: tuple[str, ...] = ("gradients", "transfer")) -> tuple:
    """(paper records, strong records, checks): mixup well below ERM under FGSM; the controls as given."""
    paper, strong = [], []
    for i, (slot, fgsm) in enumerate([("erm-s0", 60), ("erm-s1", 62), ("mixup-s0", 30), ("mixup-s1", 31), ("robust-s0", 15), ("masked-s0", 3)]):
        paper += [record(slot, "clean", "none", 3, 10 * i), record(slot, "white-box", "fgsm", fgsm, 10 * i + 1),
                  record(slot, "white-box", "ifgsm", min(100, fgsm + 20), 10 * i + 2)]
        worst = {"robust-s0": robust_worst, "masked-s0": 95}.get(slot, 99)
        strong += [record(slot, "white-box", "fgsm", fgsm, 10 * i + 3), record(slot, "white-box", "worst-case", worst, 10 * i + 4),
                   record(slot, "white-box", "pgd", worst, 10 * i + 5)]
    checks = [{"check": c, "target": "masked-s0", "status": "fail", "suite": "paper"} for c in masked_checks]
    checks += [{"check": "converged", "target": s, "status": "fail", "suite": "strong"} for s in ("robust-s0", "erm-s1")]
    return paper, strong, checks


def test_controls_that_read_correctly_leave_the_claims_to_the_rule():
    s = parse_study(spec_text())
    assert s.controls == {"robust": POSITIVE_CONTROL, "masked": NEGATIVE_CONTROL}
    study = Study(s, *planted(), None, 10)
    assert study.role("erm") == "erm" and study.role("mixup") == "mixup"  # the controls are in no claim's arms
    readings = read_controls(study)
    assert [(r.name, r.reads) for r in readings] == [("robust", True), ("masked", True)], readings
    assert "20.0% vs the ERM target's 99.0% (eps 8/255, strong suite, 400 examples): 79.0 pp below" in readings[0].said
    rows = judge_claims(study)
    assert NOT_VALID not in {r.verdict for r in rows}
    c1 = next(r for r in rows if r.claim == "C1")
    assert c1.rests_on.startswith("mixup (seeds 0, 1) − erm (seeds 0, 1)")  # not the positive control, listed first
    head = headline_blocks(s, study, rows, readings)
    assert head[0][1].startswith("**Under strong attacks no model (the controls aside) is robust.**")  # the robust control aside
    assert "erm 99.0%" not in head[0][1] and "Every one of the 4 checkpoints (the controls aside)" in head[0][1]
    assert head[1][1].startswith("**The controls read correctly**: the attacks read robustness where it exists and the checks catch")
    assert "(2 training seeds for erm, mixup)" in head[2][1]  # the controls are no arms of the claims


@pytest.mark.parametrize("plant, why", [
    (dict(robust_worst=95.0), "the positive control 'robust' does not read robust"),  # it reads like ERM
    (dict(masked_checks=("converged",)), "the negative control 'masked' is not flagged"),  # only the budget check failed
])
def test_a_control_that_misreads_makes_every_claim_not_valid(plant, why):
    s = parse_study(spec_text())
    study = Study(s, *planted(**plant), None, 10)
    rows = judge_claims(study)
    assert {r.verdict for r in rows} == {NOT_VALID} and len(rows) == 16
    assert all(r.reason == f"the controls misread: {why}" and r.p_holm is None for r in rows), rows[0]
    c1 = next(r for r in rows if r.claim == "C1")
    assert c1.difference is not None and c1.difference < -20  # the numbers are kept, the verdict is not given
    head = headline_blocks(s, study, rows, read_controls(study))
    assert head[0][1].startswith(CONTROLS_MISREAD) and why[0].upper() + why[1:] in head[0][1]
    assert tally(rows) == "0 reproduced, 0 not reproduced, 0 inconclusive, 0 not testable, 16 not valid"


def test_a_study_without_controls_is_judged_as_before():
    s = parse_study(spec_text().replace('role = "positive-control"', "").replace('role = "negative-control"\nmethod = "erm"\nhead_scale = 10000', 'method = "erm"'))
    assert s.controls == {} and "control_gap" not in s.canonical()["claims"]
    assert all("role" not in t for t in s.canonical()["targets"])  # a spec (and its hash) as before the key
    with_controls = parse_study(spec_text()).canonical()
    assert with_controls["claims"]["control_gap"] == 10 and with_controls["targets"][0]["role"] == POSITIVE_CONTROL
    study = Study(s, *planted(), None, 10)
    assert read_controls(study) == [] and NOT_VALID not in {r.verdict for r in judge_claims(study)}


# --- the spec: one-line refusals -----------------------------------------------------------------

@pytest.mark.parametrize("text, says", [
    (spec_text().replace('"negative-control"', '"negativ-control"'), "role 'negativ-control' is not a role of a target"),
    (spec_text(masked=""), None),  # a negative control that is not masked: allowed (the rule catches it)
    (spec_text().replace('settings = ["white-box"]', 'settings = ["white-box", "black-box"]', 1)
     + '[surrogate]\nmethod = "erm"\nrole = "negative-control"\n', "role 'negative-control' is not a key of the surrogate"),
    (spec_text(robust='adversarial = "pgd"\nadv_eps = 8\nhead_scale = 100'), "[[targets]] robust: sets head_scale, which plants gradient masking"),
    (spec_text().replace('device = "cpu"', 'device = "cpu"\nhead_scale = 10000', 1), "[[targets]] robust: sets head_scale"),
    (spec_text().replace('[strong]\nsuite = "strong"\neps = [8]\nsettings = ["white-box"]', ""),
     "a positive control is read by its white-box worst case under the strong suite"),
    (spec_text().replace('[[targets]]\nname = "erm"\nmethod = "erm"', '[[targets]]\nname = "erm"\nmethod = "cutmix"'),
     "a positive control is read against the ERM target, and the study has none"),
    (spec_text(masked="head_scale = 0"), "head_scale must be a positive number"),
    (spec_text(extra="control_gap = -1"), "control_gap must be a number in [0, 100]"),
])
def test_the_spec_refuses_bad_controls_in_one_line(text, says):
    if says is None:
        assert parse_study(text).controls["masked"] == NEGATIVE_CONTROL
        return
    with pytest.raises(RobustmixError) as e:
        parse_study(text)
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_the_cli_refuses_a_bad_role_with_exit_2_and_the_gate_refuses_roles(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(spec_text().replace('"positive-control"', '"positive"'))
    assert main(["study", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "role 'positive' is not a role of a target" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    gate = spec_text().split("[strong]")[0].replace("[claims]", "")
    with pytest.raises(RobustmixError, match="target[(]s[)] robust, masked set role, a robustmix study key"):
        parse_spec(gate)


# --- the planted masked model --------------------------------------------------------------------

def test_head_scale_plants_masking_after_training_and_is_recorded(digits):
    base = TrainConfig(epochs=1, seed=3, device="cpu", width=8)
    honest, _ = train(base, data=digits)
    masked, meta = train(base.with_(head_scale=1e4), data=digits)
    assert torch.allclose(masked.head.weight, honest.head.weight * 1e4) and torch.allclose(masked.head.bias, honest.head.bias * 1e4)
    body = {k: v for k, v in masked.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(v, honest.state_dict()[k]) for k, v in body.items())  # the rest as trained
    assert meta["config"]["head_scale"] == 1e4 and provenance(meta)["head_scale"] == 1e4
    assert "head_scale" not in provenance({"config": base.to_dict()}) and "head_scale" not in base.canonical()
    x, y = pixels(digits.x_test[:64]), digits.y_test[:64]
    x.requires_grad_(True)
    torch.nn.functional.cross_entropy(masked(x), y, reduction="sum").backward()
    right = masked(x).argmax(1) == y
    zero = (x.grad.flatten(1) == 0).all(1)[right].float().mean().item()
    assert right.sum() > 20 and zero > 0.9, zero  # the softmax saturates: no input gradient where it is right
    with pytest.raises(RobustmixError, match="head_scale must be a positive number"):
        TrainConfig(head_scale=float("nan")).validate()
