"""A digits study with both controls, in CI (benchmarks/study-controls.toml, docs/protocol.md#controls):
the positive control (PGD-AT) reads robust, the negative control (ERM with its head ×10,000: planted
gradient masking) is flagged by the checks that see masking, and the claims are judged by the rule;
then, in a copy of the folder, a planted misreading control (a "positive control" that is really an
ERM model, or a "negative control" that is not masked) turns every claim "not valid", with the reason,
in claims.csv, the first lines of README.md, report.html and study.json. Only the planted control is
trained and attacked again; everything else is reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from study_runs import ROOT, run_study

CONTROLS = ROOT / "benchmarks" / "study-controls.toml"


@pytest.fixture(scope="module")
def controls_study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("controls") / "study"
    assert run_study(CONTROLS, "--out", out) == 0
    return out


def worst_case(out: Path, slot: str) -> float:
    doc = json.loads((out / "results" / f"strong-{slot}.json").read_text())
    return next(r["top1_err"] for r in doc["records"] if r["attack"] == "worst-case" and r["setting"] == "white-box")


def failed_checks(out: Path, slot: str) -> set[str]:
    checks = pd.read_csv(out / "data" / "checks.csv")
    return set(checks[(checks.target == slot) & (checks.status == "fail")].check)


def test_both_controls_read_correctly_and_the_claims_are_judged_by_the_rule(controls_study):
    out = controls_study
    readings = {c["name"]: c for c in json.loads((out / "study.json").read_text())["numbers"]["controls"]}
    assert readings["robust"]["reads"] and readings["robust"]["verdict"] == "reads robust", readings
    assert readings["masked"]["reads"] and readings["masked"]["verdict"] == "is flagged", readings
    # the positive control: far below ERM under the strong suite's worst case (not at the ceiling)
    erm = (worst_case(out, "erm-s0") + worst_case(out, "erm-s1")) / 2
    assert worst_case(out, "robust-s0") <= erm - 40 and erm >= 80, (worst_case(out, "robust-s0"), erm)
    # the negative control: the mask works (white-box FGSM reads its clean error) and the checks see it for what it is
    paper = json.loads((out / "results" / "paper-masked-s0.json").read_text())["records"]
    err = {(r["setting"], r["attack"], r["eps_255"]): r["top1_err"] for r in paper}
    assert err[("white-box", "fgsm", 32.0)] == err[("clean", "none", 0.0)] < err[("black-box", "fgsm", 32.0)] - 20, err
    assert {"gradients", "transfer"} <= failed_checks(out, "masked-s0")  # zero input gradients; transfer beats white-box
    assert not failed_checks(out, "erm-s0") - {"converged"}  # its honest twin: no masking check fails
    claims = pd.read_csv(out / "data" / "claims.csv")
    assert "not valid" not in set(claims.verdict) and claims.p_holm.notna().any()  # a family was judged
    assert not claims.rests_on.fillna("").str.contains("robust|masked").any()  # the controls are in no claim's arms
    readme = (out / "README.md").read_text()
    assert readme.split("\n\n")[1].startswith("**The controls read correctly**: the attacks read robustness where it exists")
    assert "## Controls" in readme and "- controls: robust (positive control), masked (negative control)" in readme
    assert "ERM, head ×10000 (negative control)" in readme  # the control's rows in the tables say what it is
    assert "not valid" not in (out / "report.html").read_text().split('id="verdicts"')[1].split("</section>")[0]


PLANTED = {
    "a positive control that is really an ERM model": (
        lambda text: text.replace('name = "robust"', 'name = "fake"').replace('adversarial = "pgd"', "").replace("adv_eps = 32", "")
        .replace("adv_steps = 3", "").replace("epochs = 15", ""),
        "the positive control 'fake' does not read robust"),
    "a negative control that is not masked": (
        lambda text: text.replace('name = "masked"', 'name = "unmasked"').replace("head_scale = 10000", ""),
        "the negative control 'unmasked' is not flagged"),
}


@pytest.mark.parametrize("plant", PLANTED)
def test_a_planted_misreading_control_makes_every_claim_not_valid(controls_study, tmp_path, plant):
    edit, why = PLANTED[plant]
    spec, out = tmp_path / "spec.toml", tmp_path / "study"
    spec.write_text(edit(CONTROLS.read_text()))
    shutil.copytree(controls_study, out)  # every other model reused; only the planted control is trained and attacked
    assert run_study(spec, "--out", out) == 0
    claims = pd.read_csv(out / "data" / "claims.csv")
    assert set(claims.verdict) == {"not valid"} and len(claims) == 16
    assert set(claims.reason) == {f"the controls misread: {why}"} and claims.p_holm.isna().all()
    first = (out / "README.md").read_text().split("\n\n")[1]
    assert first.startswith("**The controls misread: every claim is not valid.**") and why[0].upper() + why[1:] in first
    doc = json.loads((out / "study.json").read_text())
    assert {c["verdict"] for c in doc["numbers"]["claims"]} == {"not valid"}
    assert doc["numbers"]["headline"].startswith("**The controls misread")
    page = (out / "report.html").read_text()
    panel = page.split('id="verdicts"')[1].split("</section>")[0]
    assert panel.count('class="badge v-not-valid"') == 16 and '<p class="callout">' in panel and "16 not valid" in panel
