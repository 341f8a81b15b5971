"""`--suite autoattack` (AutoAttack's standard cascade) and APGD-T in `--suite strong`, from the
command line: the plan counts every pass per example, the cascade's records carry their markers and
the combined record its name, "AutoAttack (standard)" only for the standard budget, and a model with
fewer than 4 classes is refused in one line (the targeted DLR loss reads the 4 largest logits)."""

from __future__ import annotations

import pytest
import torch

from robustmix.attacks import ATTACKS, AUTOATTACK_ATTACKS, SUITE_SETTINGS, SUITES, Budget, apgd_targeted, attack_label, is_standard_autoattack
from robustmix.cli import main
from robustmix.runtime.errors import RobustmixError
from robustmix.store.checkpoint import save_checkpoint
from robustmix.store.results import load_results

REDUCED = ["--apgd-iters", "5", "--fab-iters", "5", "--target-classes", "3", "--square-queries", "30"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, trained):
    d = tmp_path_factory.mktemp("aa")
    return d, {name: str(save_checkpoint(d / name, *trained)) for name in ("erm", "sur")}


def test_the_suite_is_autoattacks_standard_version():
    assert SUITES["autoattack"][: len(AUTOATTACK_ATTACKS)] == ("apgd-ce", "apgd-t", "fab-t", "square")
    standard = Budget(**{k: v for k, v in SUITE_SETTINGS["autoattack"].items() if k != "settings"})
    assert (standard.apgd_iters, standard.apgd_restarts, standard.target_classes, standard.fab_iters, standard.square_queries) == (
        100, 1, 9, 100, 5000)
    assert is_standard_autoattack(standard) and not is_standard_autoattack(Budget())  # the default has no cascade
    assert "apgd-t" in SUITES["strong"]
    assert attack_label("autoattack") == "AutoAttack (standard)"
    assert attack_label("autoattack", standard=False) == "AutoAttack cascade (reduced budget)"


def test_dry_run_counts_the_cascade_per_example_and_runs_white_box_only(ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    standard = Budget(**{k: v for k, v in SUITE_SETTINGS["autoattack"].items() if k != "settings"})
    assert main(["attack", "--targets", paths["erm"], "--eps", "8,16", "--suite", "autoattack", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "APGD-CE 100 iterations" in out and "APGD-T: clean targets + 9 target(s) × 1 restart(s) × (100 iterations + start)" in out
    assert "FAB-T: clean targets + 9 target(s) × 100 iterations" in out and "one run for every eps" in out
    assert "Square: start + 5000 queries" in out
    assert "black-box" not in out  # AutoAttack is white-box: no surrogate needed, nothing transferred
    # per example, at most: the gradient at x (for the checks' gradients probe), each attack's own count
    # (registry plan steps) at both eps but FAB-T once (one run answers every eps), a scoring forward per attack and eps
    steps = {a: ATTACKS[a].plan(standard) for a in AUTOATTACK_ATTACKS}
    per_eps = [a for a in AUTOATTACK_ATTACKS if not steps[a].eps_free]
    forwards = 1 + sum(2 * steps[a].forwards for a in per_eps) + steps["fab-t"].forwards + 2 * len(AUTOATTACK_ATTACKS)
    backwards = 1 + sum(2 * steps[a].backwards for a in per_eps) + steps["fab-t"].backwards
    assert f"per example: {forwards} forward + {backwards} backward passes at most" in out
    assert forwards > 2 * 5000 and backwards > 2 * 9 * 100  # Square's queries and APGD-T's nine targets are in it


def test_reduced_cascade_runs_and_its_records_say_so(ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    assert main(["attack", "--targets", paths["erm"], "--eps", "16", "--suite", "autoattack", *REDUCED, "--out", "aa.json"]) == 0
    out = capsys.readouterr().out
    assert "AutoAttack cascade (reduced budget)" in out and "APGD-T (on survivors)" in out
    doc = load_results(d / "aa.json")
    by = {r["attack"]: r for r in doc["records"] if r["setting"] == "white-box"}
    assert set(by) == {"apgd-ce", "apgd-t", "fab-t", "square", "autoattack", "worst-case"}
    assert not by["apgd-ce"].get("on_survivors") and all(by[a]["on_survivors"] for a in ("apgd-t", "fab-t", "square"))
    assert by["autoattack"]["standard"] is False and by["apgd-t"]["target_classes"] == 3
    assert by["autoattack"]["top1_err"] == by["worst-case"]["top1_err"] >= by["apgd-ce"]["top1_err"]
    assert doc["config"]["cascade"] is True and doc["config"]["settings"] == ["white-box"]


def test_fewer_than_four_classes_is_one_line():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with pytest.raises(RobustmixError, match="at least 4 classes"):
        apgd_targeted(model, torch.rand(2, 1, 2, 2), torch.tensor([0, 1]), eps=0.1, iters=2)


def test_autoattack_record_without_its_attacks_is_refused(ckpts, capsys):
    d, paths = ckpts
    assert main(["attack", "--targets", paths["erm"], "--attacks", "apgd-ce,autoattack", "--settings", "white-box", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--suite autoattack" in err[0]
