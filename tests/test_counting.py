"""The counting rule (docs/protocol.md#how-to-read, AutoAttack's convention): an example the model gets
wrong without attack counts as wrong under every attack, in the records the evaluator writes and in
results files written before the rule, read again (no new attack)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from robustmix.evaluation.config import EvalConfig
from robustmix.evaluation.records import worst_case_records
from robustmix.evaluation.tally import Tally
from robustmix.runtime.distributed import World
from robustmix.store.results import FORMAT, count_clean_errors, load_results

N = 10


def bits(wrong) -> str:
    return "".join("0" if i in set(wrong) else "1" for i in range(N))


def rec(target, setting, attack, wrong, eps_255=8.0, **extra):
    return {"target": target, "method": "mixup", "setting": setting, "attack": attack, "eps_255": 0.0 if setting == "clean" else eps_255,
            "eps": eps_255 / 255, "n": N, "top1_err": 10.0 * len(wrong), "top5_err": 10.0 * len(wrong),
            "top1_correct": bits(wrong), "top5_correct": bits(wrong), **extra}


def planted() -> list[dict]:
    """mixup-s1 gets examples 0 and 1 wrong clean; FGSM 'corrects' them (as in the CIFAR-10 records) and fools 5-7."""
    return [rec("m", "clean", "none", [0, 1]), rec("m", "white-box", "fgsm", [5, 6, 7]), rec("m", "black-box", "fgsm", [0, 9]),
            rec("e", "clean", "none", []), rec("e", "white-box", "fgsm", [3])]


def wrong_of(r, metric="top1"):
    return {i for i, b in enumerate(r[f"{metric}_correct"]) if b == "0"}


def test_an_example_wrong_without_attack_is_wrong_under_attack():
    out = {(r["target"], r["setting"]): r for r in count_clean_errors(planted())}
    assert wrong_of(out["m", "white-box"]) == {0, 1, 5, 6, 7} and out["m", "white-box"]["top1_err"] == 50.0
    assert wrong_of(out["m", "black-box"], "top5") == {0, 1, 9} and out["m", "black-box"]["top5_err"] == 30.0
    assert out["e", "white-box"]["top1_err"] == 10.0 and out["m", "clean"]["top1_err"] == 20.0  # clean records as they were
    assert count_clean_errors(count_clean_errors(planted())) == count_clean_errors(planted())  # idempotent


def test_old_results_files_are_read_under_the_rule(tmp_path):
    path = tmp_path / "old.json"
    probe = rec("m", "white-box", "pgd", [8], eps_255=128.0, probe="unbounded")
    path.write_text(json.dumps({"format": FORMAT, "config": {}, "checkpoints": {}, "records": planted(), "probes": [probe]}))
    doc = load_results(path)
    fgsm = next(r for r in doc["records"] if r["target"] == "m" and r["setting"] == "white-box")
    assert wrong_of(fgsm) == {0, 1, 5, 6, 7} and fgsm["top1_err"] == 50.0
    assert wrong_of(doc["probes"][0]) == {0, 1, 8}
    # the per-example worst case of the read records inherits the rule
    (w,) = worst_case_records([r for r in doc["records"] if r["target"] == "m" and r["setting"] == "white-box"]
                              + [rec("m", "white-box", "ifgsm", [4])])
    assert wrong_of(w) == {0, 1, 4, 5, 6, 7}


def test_the_evaluator_s_records_follow_the_rule():
    tally = Tally()
    y = torch.arange(N) % 3
    right = torch.nn.functional.one_hot(y, 6).float() * 5
    clean = right.clone()
    clean[0] = torch.nn.functional.one_hot((y[0] + 1) % 3, 6).float() * 5  # example 0 wrong without attack
    tally.add(("m", "clean", "none", 0.0), clean, y)
    tally.add(("m", "white-box", "fgsm", 8 / 255), right, y)  # ... and right under FGSM
    target = SimpleNamespace(name="m", meta={"method": "erm", "seed": 0})
    records = tally.records([target], None, EvalConfig(eps=(8 / 255,)), World())
    fgsm = next(r for r in records if r["attack"] == "fgsm")
    assert fgsm["top1_correct"][0] == "0" and fgsm["top1_err"] == 10.0
