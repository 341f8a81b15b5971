"""The robustness gate end to end on digits, through the CLI: exit codes, named metrics, files.

The four behaviours of issue 6 are run for real (each can fail): the same code twice passes; the
mixup target trained as ERM fails and is named; I-FGSM with eps silently halved fails with
--two-sided (and passes one-sided: it got *better*); a different training seed passes. Models
are trained once per configuration and shared through a cache, except where retraining is the
point of the test.
"""

import importlib
import json

import numpy as np
import pytest
import torch

from robustmix.gate import gate as bench
from robustmix.gate import spec as bench_spec
from robustmix.cli import main
from robustmix.runtime.errors import RobustmixError
from robustmix.training.loop import train

# the module, not the function `fgsm` that robustmix.attacks re-exports under the same name
fgsm_module = importlib.import_module("robustmix.attacks.fgsm")

SPEC = """
[data]
dataset = "digits"

[train]
epochs = 5

[surrogate]
method = "erm"
seeds = [0]

[[targets]]
name = "erm"
method = "erm"
seeds = [1]

[[targets]]
name = "mixup"
method = "mixup"
alpha = 1.0
seeds = [1]

[attack]
attacks = ["fgsm", "ifgsm"]
eps = [32]
iters = 5
settings = ["white-box", "black-box"]
topk = [1]

[tolerance]
"*/white-box/fgsm/32/top1" = 12
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """A folder with the spec, a baseline made by `--update-baseline`, and the models it trained."""
    d = tmp_path_factory.mktemp("gate")
    (d / "spec.toml").write_text(SPEC)
    cache = {}

    def cached_train(cfg, data=None):
        if cfg not in cache:
            cache[cfg] = train(cfg, data=data)
        return cache[cfg]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "train", cached_train)
        assert main(["bench", "--spec", str(d / "spec.toml"), "--baseline", str(d / "base.json"), "--update-baseline"]) == 0
    return d, cached_train


def run_gate(d, *extra):
    out = d / "result.json"
    rc = main(["bench", "--spec", str(d / "spec.toml"), "--baseline", str(d / "base.json"), "--json", str(out), *extra])
    return rc, json.loads(out.read_text()) if out.exists() and rc in (0, 1) else None


def test_baseline_records_provenance_and_per_example_correctness(gate):
    d, _ = gate
    doc = json.loads((d / "base.json").read_text())
    for key in ("robustmix_version", "torch_version", "device", "processor", "spec_hash", "spec"):
        assert doc[key], key
    spec = bench_spec.load_spec(d / "spec.toml")
    assert doc["spec_hash"] == spec.hash and list(doc["metrics"]) == spec.metric_ids()
    m = doc["metrics"]["mixup/black-box/ifgsm/32/top1"]
    assert m["n"] == len(m["correct"]) == 360
    assert m["err"] == pytest.approx(100 * m["correct"].count("0") / 360)
    # mixup helps against black-box examples at this eps: the gap the planted regression removes
    assert doc["metrics"]["erm/black-box/ifgsm/32/top1"]["err"] > m["err"] + 10


def test_same_code_twice_passes_with_identical_numbers(gate, capsys):
    d, _ = gate
    capsys.readouterr()
    rc, res = run_gate(d, "--two-sided")  # retrains every model from scratch
    out = capsys.readouterr().out
    assert rc == 0, out
    assert all(m["diff"] == 0 and m["verdict"] == "pass" for m in res["metrics"])
    assert out.startswith("### Robustness gate: pass") and "| metric | baseline | now |" in out
    assert "Baseline made on" not in out  # same processor: no note


def test_baseline_from_another_processor_is_named_in_the_summary(gate, tmp_path, capsys, monkeypatch):
    d, cached_train = gate
    monkeypatch.setattr(bench, "train", cached_train)
    doc = json.loads((d / "base.json").read_text())
    other = tmp_path / "spec.toml"
    other.write_text((d / "spec.toml").read_text())
    (tmp_path / "base.json").write_text(json.dumps({**doc, "processor": "Imaginary CPU 9000"}))
    capsys.readouterr()
    rc, _ = run_gate(tmp_path)
    out = capsys.readouterr().out
    assert rc == 0 and "Baseline made on Imaginary CPU 9000, this run on " in out


def test_mixup_target_trained_as_erm_fails_and_names_the_metric(gate, monkeypatch, capsys):
    d, cached_train = gate

    def planted(cfg, data=None):  # the day someone's refactor drops the mixing
        return cached_train(cfg.with_(method="erm", alpha=0.0) if cfg.method == "mixup" else cfg, data)

    monkeypatch.setattr(bench, "train", planted)
    step_summary = d / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    capsys.readouterr()
    rc, res = run_gate(d, "--summary-md", str(d / "summary.md"))
    captured = capsys.readouterr()
    assert rc == 1
    assert (d / "summary.md").read_text() == captured.out  # the same table, for a CI job summary
    assert step_summary.read_text().startswith("earlier step\n### Robustness gate: FAIL")  # appended
    assert "mixup/black-box/ifgsm/32/top1" in res["failed"] and "mixup/black-box/fgsm/32/top1" in res["failed"]
    assert not any(m.startswith("erm/") for m in res["failed"])  # the untouched target still passes
    assert "REGRESSION" in captured.out and "mixup/black-box/ifgsm/32/top1" in captured.err


def test_eps_silently_halved_passes_one_sided_and_fails_two_sided(gate, monkeypatch):
    d, cached_train = gate
    real_sweep = fgsm_module.ifgsm_sweep
    monkeypatch.setattr(bench, "train", cached_train)

    def halved(model, x, y, *, eps, iters, direction=None, **kw):
        # eps silently halved; the shared first-step direction stays valid (sign does not depend on eps)
        out = real_sweep(model, x, y, eps=tuple(e / 2 for e in eps), iters=iters, direction=direction, **kw)
        return {e: out[e / 2] for e in eps}  # filed under the eps that was asked for

    monkeypatch.setattr(fgsm_module, "ifgsm_sweep", halved)
    rc, res = run_gate(d)
    assert rc == 0  # errors went down: not a regression...
    improved = {m["metric"] for m in res["metrics"] if m["verdict"] == "improved"}
    assert "erm/white-box/ifgsm/32/top1" in improved
    rc, res = run_gate(d, "--two-sided")
    assert rc == 1  # ...but an evaluation that got weaker is caught with --two-sided
    assert "erm/white-box/ifgsm/32/top1" in res["failed"]
    assert all("/ifgsm/" in m for m in res["failed"])  # FGSM was left alone and passes


def test_other_training_seeds_pass_within_tolerance(gate, monkeypatch):
    d, _ = gate
    # A refactor that changes the random stream: every model (surrogate too) retrained, new seeds.
    monkeypatch.setattr(bench, "train", lambda cfg, data=None: train(cfg.with_(seed=cfg.seed + 10), data=data))
    rc, res = run_gate(d, "--two-sided")
    assert rc == 0, [(m["metric"], m["diff"], m["tol_up"]) for m in res["metrics"]]
    assert any(m["diff"] != 0 for m in res["metrics"])  # the models really are different
    assert res["metrics"][0]["n"] == 360


@pytest.mark.parametrize(
    "change, fragment",
    [
        (("eps = [32]", "eps = [32, 16]"), "attack.eps_255"),
        (("iters = 5", "iters = 3"), "attack.iters"),
        (('seeds = [1]\n\n[[targets]]\nname = "mixup"', 'seeds = [2]\n\n[[targets]]\nname = "mixup"'), "seed"),
    ],
)
def test_baseline_from_another_spec_is_refused_with_exit_2(gate, tmp_path, capsys, change, fragment):
    d, _ = gate
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace(*change))
    capsys.readouterr()
    assert main(["bench", "--spec", str(other), "--baseline", str(d / "base.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another spec" in err and fragment in err and "--update-baseline" in err
    assert "milestones" not in err  # a tuple in the spec and a list in the JSON baseline are the same value


def test_tolerance_overrides_do_not_change_the_spec_hash():
    a = bench_spec.parse_spec(SPEC)
    b = bench_spec.parse_spec(SPEC.replace("= 12", "= 3"))
    assert a.hash == b.hash and a.tolerance_for("erm/white-box/fgsm/32/top1") == 12
    assert b.tolerance_for("erm/white-box/fgsm/32/top1") == 3 and a.tolerance_for("erm/clean/top1") is None


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[data\n", "not valid TOML"),
        (SPEC.replace("[attack]", "[attack]\nepss = [1]"), "unknown key(s) epss"),
        (SPEC.replace("eps = [32]", "eps = [300]"), "0–255"),
        (SPEC.replace('attacks = ["fgsm", "ifgsm"]', 'attacks = ["pdg"]'), "unknown attack"),
        (SPEC.replace('dataset = "digits"', 'dataset = "cifar99"'), "unknown data set"),
        (SPEC.replace("[surrogate]\nmethod = \"erm\"\nseeds = [0]", ""), "black-box needs a [surrogate]"),
        (SPEC.replace("seeds = [1]", "seeds = []", 1), "seeds"),
        (SPEC.replace('method = "mixup"', 'method = "mixpu"'), "mixpu"),
        (SPEC.replace('"*/white-box/fgsm/32/top1" = 12', '"*/fgsm/31/*" = 12'), "matches no metric"),
        (SPEC.replace('"*/white-box/fgsm/32/top1" = 12', '"*/fgsm/*" = -1'), "percentage points"),
        (SPEC.replace('name = "mixup"', 'name = "erm"'), "repeat"),
    ],
)
def test_bad_specs_are_refused_with_one_line_and_exit_2(tmp_path, capsys, text, fragment):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    with pytest.raises(RobustmixError) as e:
        bench_spec.load_spec(spec)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert main(["bench", "--spec", str(spec), "--baseline", str(tmp_path / "b.json")]) == 2
    assert not (tmp_path / "b.json").exists()


def test_missing_or_foreign_baseline_exits_2(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    assert main(["bench", "--spec", str(spec), "--baseline", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--update-baseline" in err
    (tmp_path / "results.json").write_text('{"format": "robustmix-results/1", "records": []}')
    assert main(["bench", "--spec", str(spec), "--baseline", str(tmp_path / "results.json")]) == 2


def test_verdict_rule_scales_with_n_and_honours_overrides():
    rng = np.random.default_rng(0)

    def pair(n, flips):  # baseline 70% correct; `flips` correct examples become wrong
        base = rng.random(n) < 0.7
        now = base.copy()
        now[np.flatnonzero(base)[:flips]] = False
        return "".join("1" if b else "0" for b in base), "".join("1" if b else "0" for b in now)

    # +5 pp worse: noise on 200 examples, a real regression on 5,000
    assert bench.compare_one("m", *pair(200, 10), None).verdict == "pass"
    assert bench.compare_one("m", *pair(5000, 250), None).verdict == "regression"
    # an override replaces the statistical tolerance in both directions
    assert bench.compare_one("m", *pair(200, 10), 2.0).verdict == "regression"
    base, now = pair(5000, 250)
    assert bench.compare_one("m", now, base, None).verdict == "improved"
    assert bench.compare_one("m", now, base, 6.0).verdict == "pass"


def test_checkpoints_seeds_and_subset_pool_the_same_per_example_results(gate, tmp_path):
    """Loading saved checkpoints gives the bits the trained models gave; two seeds pool in order."""
    from robustmix.store.checkpoint import save_checkpoint

    d, cached_train = gate
    spec = bench_spec.load_spec(d / "spec.toml")
    base = json.loads((d / "base.json").read_text())["metrics"]
    erm_cfg, mixup_cfg = spec.targets[0].configs[0], spec.targets[1].configs[0]
    for name, cfg in (("erm", erm_cfg), ("mixup", mixup_cfg)):
        save_checkpoint(tmp_path / name, *cached_train(cfg))
    text = """
[data]
examples = 100
[[targets]]
name = "both"
checkpoints = ["erm", "mixup"]
[attack]
attacks = ["ifgsm"]
eps = [32]
iters = 5
settings = ["white-box"]
"""
    (tmp_path / "ckpt.toml").write_text(text)
    assert bench_spec.load_spec(tmp_path / "ckpt.toml").hash == bench_spec.parse_spec(text).hash  # not the folder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI that made the baseline: identical float reductions
    try:
        metrics, provenance = bench.measure(bench_spec.load_spec(tmp_path / "ckpt.toml"))
    finally:
        torch.set_num_threads(threads)
    bits = metrics["both/white-box/ifgsm/32/top1"]
    assert len(bits) == 200 and {p["method"] for p in provenance.values()} == {"erm", "mixup"}
    assert bits == base["erm/white-box/ifgsm/32/top1"]["correct"][:100] + base["mixup/white-box/ifgsm/32/top1"]["correct"][:100]
