"""Minimal-perturbation robustness (`robustmix attack --minimal`, robustmix.evaluation.minimal): on the
trained digits checkpoint, the error read off the eps* records at a grid eps equals a direct
fixed-eps run of the same attack (same budget, seed and examples) up to the examples whose success
is not monotone in eps (MISMATCH_PP); the search is seeded and batch-independent; FAB-T's distance
bounds eps* from above; the CLI writes the records and prints the table."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from robustmix.analysis.minimal import error_at, medians
from robustmix.attacks import Budget, apgd, fab_minimal
from robustmix.cli import main
from robustmix.evaluation.minimal import Search, minimal_eps, minimal_records
from robustmix.runtime.errors import RobustmixError
from robustmix.store.checkpoint import Checkpoint, save_checkpoint
from robustmix.store.results import load_results

N = 120
SEARCH = Search(attacks=("apgd-ce",), eps_max=48 / 255, precision=2 / 255)
BUDGET = Budget(apgd_iters=10)
GRID = (4, 8, 16, 24, 32)  # 0–255, on the search's grid
MISMATCH_PP = 1.0  # measured (AMD EPYC, 1 thread): 0 examples apart at 4, 8, 16, 24/255, 1 of 120 at 32/255 (0.8 pp)


@pytest.fixture(scope="module")
def found(trained, digits):
    model = trained[0].eval()
    x, y = digits.x_test[:N].float(), digits.y_test[:N]
    record = minimal_records([Checkpoint("erm", model, trained[1])], x, y, SEARCH, BUDGET, batch_size=50)[0]
    return model, x, y, record


def test_error_read_off_eps_star_equals_a_direct_fixed_eps_run(found):
    model, x, y, record = found
    for e in GRID:
        with torch.no_grad():
            direct = 100.0 * (model(apgd(model, x, y, eps=e / 255, loss="ce", iters=BUDGET.apgd_iters, seed=BUDGET.seed)).argmax(1)
                              != y).float().mean().item()
        read = error_at(record, e)
        assert abs(read - direct) <= MISMATCH_PP, (e, read, direct)
    assert error_at(record, 48) > error_at(record, 4) + 30  # a curve, not a constant


def test_the_search_is_seeded_and_batch_independent(found):
    model, x, y, record = found
    again = minimal_eps(model, x, y, SEARCH, BUDGET)  # one batch instead of 50-example chunks
    stars = [math.inf if v is None else v for v in record["eps_star_255"]]
    assert [round(v * 255, 6) if math.isfinite(v) else math.inf for v in again.tolist()] == stars
    assert all(v == 0 or math.isinf(v) or abs(v / 2 - round(v / 2)) < 1e-6 for v in stars)  # on the 2/255 grid


def test_fab_bounds_eps_star_from_above(found):
    model, x, y, _ = found
    budget = dataclasses.replace(BUDGET, fab_iters=10, target_classes=3)
    search = dataclasses.replace(SEARCH, attacks=("fab-t", "apgd-ce"))
    stars = minimal_eps(model, x, y, search, budget)
    _, dist = fab_minimal(model, x, y, iters=10, target_classes=3)
    bound = torch.ceil(dist / search.precision - 1e-6) * search.precision
    ok = dist <= search.eps_max
    assert ok.any() and bool((stars[ok] <= bound[ok] + 1e-9).all())


def test_medians_and_the_bad_search_message(found):
    *_, record = found
    med = medians([record]).iloc[0]
    assert 0 < med.median_eps_255 <= 48 and med.lo <= med.median_eps_255 <= med.hi
    assert error_at(record, med.median_eps_255) >= 50 > error_at(record, med.median_eps_255 - 2)
    with pytest.raises(RobustmixError, match="precision"):
        Search(precision=0.0).validate()
    with pytest.raises(RobustmixError, match="attacks"):
        Search(attacks=("fgsm",)).validate()


def test_cli_minimal_writes_eps_star_and_prints_the_table(trained, tmp_path, capsys, monkeypatch):
    path = save_checkpoint(tmp_path / "erm", *trained)
    monkeypatch.chdir(tmp_path)
    argv = ["attack", "--targets", str(path), "--minimal", "--eps", "8,16", "--eps-max", "32", "--precision", "4",
            "--minimal-attacks", "apgd-ce", "--apgd-iters", "5", "--examples", "60"]
    assert main([*argv, "--dry-run"]) == 0
    assert "minimal-perturbation search over (0, 32]/255 in steps of 4/255: at most 4 round(s)" in capsys.readouterr().out
    assert main([*argv, "--out", "m.json"]) == 0
    out = capsys.readouterr().out
    assert "Median eps*" in out and "err @ 8" in out and "err @ 16" in out
    doc = load_results(tmp_path / "m.json")
    (record,) = doc["records"]
    assert record["attack"] == "minimal" and len(record["eps_star_255"]) == 60 and record["precision_255"] == 4
    assert doc["config"]["minimal"]["attacks"] == ["apgd-ce"]
    assert main([*argv, "--settings", "black-box"]) == 2
    assert "white-box only" in capsys.readouterr().err
