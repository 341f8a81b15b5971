"""Merging results files of one evaluation on different targets (`robustmix report A.json B.json`):
the merge of separate runs must equal one joint run, and files that do not belong together are refused."""

import json

import pandas as pd
import pytest

from robustmix.store.checkpoint import Checkpoint
from robustmix.cli import main
from robustmix.runtime.errors import RobustmixError
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.store.results import load_results, merge_results, save_results

# FGSM and I-FGSM (deterministic) plus PGD with a random start (seeded per example index): the
# soundness probes run too (PGD at 128/255 and the doubled budget), so probes are merged as well.
CONFIG = EvalConfig(eps=(8 / 255, 16 / 255), attacks=("fgsm", "ifgsm", "pgd"), iters=3, pgd_iters=3, pgd_restarts=2,
                    settings=("white-box", "black-box"), batch_size=64, device="cpu")
N = 120


def run(models: dict, surrogate, digits, config=CONFIG) -> dict:
    x, y = digits.x_test[:N], digits.y_test[:N]
    probes: list[dict] = []
    targets = [Checkpoint(name, m, {"method": name}) for name, m in models.items()]
    records = evaluate(targets, x, y, config, surrogate=Checkpoint("s", surrogate, {"method": "erm", "seed": 9}), probes=probes)
    checkpoints = {c.name: dict(c.meta) for c in targets} | {"s": {"method": "erm", "seed": 9}}
    setup = {**config.to_dict(), "dataset": "digits", "examples": N, "device": "cpu"}
    return {"format": "robustmix-results/1", "config": setup, "checkpoints": checkpoints, "records": records, "probes": probes}


def key(r: dict) -> tuple:
    return r["target"], r["setting"], r["attack"], r.get("probe", ""), r["eps"]


@pytest.fixture(scope="module")
def runs(trained, trained_mixup, digits):
    a, b, s = trained[0], trained_mixup[0], trained_mixup[0]
    return run({"a": a, "b": b}, s, digits), run({"a": a}, s, digits), run({"b": b}, s, digits)


def test_merge_of_separate_runs_equals_the_joint_run(runs):
    joint, only_a, only_b = runs
    merged = merge_results([only_a, only_b], ["a.json", "b.json"])
    for part in ("records", "probes"):
        got = sorted(merged[part], key=key)
        want = sorted(joint[part], key=key)
        assert [key(r) for r in got] == [key(r) for r in want] and len(got) > 4
        assert got == want  # every field, the per-example bit-strings included
    assert merged["checkpoints"] == joint["checkpoints"]
    assert [m["file"] for m in merged["config"]["merged_from"]] == ["a.json", "b.json"]
    assert {k: v for k, v in merged["config"].items() if k != "merged_from"} == joint["config"]
    # a merged file merges again, keeping where every part came from
    again = merge_results([merged, {**only_a, "records": [dict(r, target="c") for r in only_a["records"]], "probes": []}],
                          ["ab.json", "c.json"])
    assert [m["file"] for m in again["config"]["merged_from"]] == ["a.json", "b.json", "c.json"]


def test_merge_refuses_files_that_do_not_belong_together(runs):
    _, only_a, only_b = runs
    with pytest.raises(RobustmixError, match="differ in eps"):
        merge_results([only_a, {**only_b, "config": {**only_b["config"], "eps": [4 / 255]}}], ["a.json", "b.json"])
    with pytest.raises(RobustmixError, match="'a' is in both a.json and again.json"):
        merge_results([only_a, only_a], ["a.json", "again.json"])
    other_surrogate = {**only_b, "checkpoints": {**only_b["checkpoints"], "s": {"method": "mixup", "seed": 9}}}
    with pytest.raises(RobustmixError, match="checkpoint 's' differs"):
        merge_results([only_a, other_surrogate], ["a.json", "b.json"])


def test_report_cli_merges_files_into_one_table_with_paired_tests(runs, tmp_path, capsys):
    _, only_a, only_b = runs
    paths = []
    for name, doc in (("a", only_a), ("b", only_b)):
        paths.append(str(save_results(tmp_path / f"{name}.json", doc["records"], config=doc["config"],
                                      checkpoints=doc["checkpoints"], probes=doc["probes"])))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as e:  # several files and no --out-dir: one line, exit 2, nothing written
        raise SystemExit(main(["report", *paths]))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "--out-dir" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    assert main(["report", *paths, "--out-dir", str(tmp_path / "ab"), "--format", "markdown,csv,json"]) == 0
    out = capsys.readouterr().out
    assert "| a |" in out and "| b |" in out
    paired = pd.read_csv(tmp_path / "ab" / "paired.csv")
    assert {(r.a, r.b) for r in paired.itertuples()} == {("a", "b")} and len(paired) > 0
    report = json.loads((tmp_path / "ab" / "report.json").read_text())
    assert [m["file"] for m in report["results_config"]["merged_from"]] == paths
