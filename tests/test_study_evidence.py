"""A study folder outlives its weights: kept without them (committed to git, or moved to another
machine), a rerun reuses every result and probe from the checkpoints' meta.json alone, rebuilds only
the weights that something missing needs (adopted only when they come out byte for byte the recorded
ones), and refuses other weights unless --retrain. Also: the probes are one file per model, and a
whole study runs model by model (each attacked before the next is trained)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import robustmix.cli.study as study_cli
from robustmix.study import load_study, models_of, needs_weights
from robustmix.study.training import rebuild_folder
from study_runs import DIGITS, run_study

@pytest.fixture()
def study(digits_study) -> Path:
    return digits_study


SLOTS = ["surrogate-s100", "erm-s0", "erm-s1", "mixup-s0", "mixup-s1", "cutmix-s0"]


def weightless_copy(study: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A copy of the study without any .safetensors file (as a clone of a committed study folder has
    it), and the weights it had, by slot."""
    out = tmp_path / "kept"
    shutil.copytree(study, out)
    weights = {p.parent.name: p.read_bytes() for p in (out / "models").glob("*/model.safetensors")}
    for p in out.rglob("*.safetensors"):
        p.unlink()
    assert sorted(weights) == sorted(SLOTS)
    return out, weights


def numbers(out: Path) -> str:
    return json.dumps(json.loads((out / "study.json").read_text())["numbers"], sort_keys=True)


def files_under(out: Path, *parts: str) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for part in parts for p in sorted((out / part).rglob("*")) if p.is_file()}


def test_the_pipeline_attacks_each_model_before_training_the_next(study):
    """`robustmix study` without --stage, as the session's first run said it: each model is trained,
    attacked with both suites and probed before the next one is trained; the surrogate first."""
    said = (study.parent / "first-run.log").read_text().splitlines()

    def at(text: str) -> int:
        return next(i for i, line in enumerate(said) if text in line)

    order = [at("training " + str(study / "models" / "surrogate-s100"))]
    for slot in SLOTS[1:]:
        order += [at("training " + str(study / "models" / slot)), at(f"paper suite on {slot}:"), at(f"strong suite on {slot}:")]
    assert order == sorted(order), said
    assert sorted(p.stem for p in (study / "data" / "probes").glob("*.json")) == sorted(SLOTS)


def test_a_study_kept_without_weights_reuses_everything(study, tmp_path, capsys):
    out, _ = weightless_copy(study, tmp_path)
    assert needs_weights(load_study(DIGITS), out) == set()
    before = files_under(out, "results", "data/probes", "models")
    capsys.readouterr()
    assert run_study(DIGITS, "--out", out) == 0
    err = capsys.readouterr().err
    assert not re.search(r"(?m)^training ", err) and "rebuilding" not in err and err.count("its weights are not here and nothing needs them") == 6
    assert files_under(out, "results", "data/probes", "models") == before  # nothing rebuilt, nothing rewritten
    assert not list(out.rglob("*.safetensors"))
    assert numbers(out) == numbers(study)
    for name in ("figure2.csv", "calibration.csv", "figure2-pairs.json"):
        assert (out / "data" / name).read_bytes() == (study / "data" / name).read_bytes(), name


def test_a_missing_result_rebuilds_only_the_weights_it_needs(study, tmp_path, capsys):
    out, weights = weightless_copy(study, tmp_path)
    (out / "results" / "paper-mixup-s0.json").unlink()
    (out / "data" / "probes" / "cutmix-s0.json").unlink()
    # the paper suite is black-box too: its surrogate is needed; cutmix-s0 for its probes
    assert needs_weights(load_study(DIGITS), out) == {"mixup-s0", "surrogate-s100", "cutmix-s0"}
    capsys.readouterr()
    assert run_study(DIGITS, "--out", out) == 0
    err = capsys.readouterr().err
    assert err.count("rebuilding ") == 3 and err.count(": same weights") == 3, err
    rebuilt = {p.parent.name for p in (out / "models").glob("*/model.safetensors")}
    assert rebuilt == {"mixup-s0", "surrogate-s100", "cutmix-s0"}
    for slot in rebuilt:
        assert (out / "models" / slot / "model.safetensors").read_bytes() == weights[slot], slot
        assert (out / "models" / slot / "meta.json").read_bytes() == (study / "models" / slot / "meta.json").read_bytes()
    assert not list((out / "models").glob("*.rebuild"))
    rebuilds = json.loads((out / "data" / "rebuilds.json").read_text())  # their time counts in the study's compute
    assert sorted(r["checkpoint"] for r in rebuilds) == sorted(rebuilt) and all(r["seconds"] > 0 for r in rebuilds)
    assert "(3 rebuild(s), data/rebuilds.json)" in (out / "README.md").read_text()
    for name in ("results/paper-mixup-s0.json", "data/probes/cutmix-s0.json"):
        again, first = json.loads((out / name).read_text()), json.loads((study / name).read_text())
        key = "records" if name.startswith("results") else "figure2"
        assert again[key] == first[key], name
    assert numbers(out) == numbers(study)


def test_rebuilt_weights_that_differ_are_refused_unless_retrain(study, tmp_path, capsys, monkeypatch):
    """As on another processor: erm-s1 trains other weights from its recorded config. The run stops with
    one line (exit 2) before anything recorded changes; --retrain adopts them and recomputes its results."""
    out, _ = weightless_copy(study, tmp_path)
    (out / "results" / "strong-erm-s1.json").unlink()  # the strong suite is white-box: only erm-s1 is needed
    real = study_cli.train_with_progress

    def other_processor(config, folder, **kw):
        if folder.name.startswith("erm-s1"):
            config = config.with_(lr=config.lr * 0.5)  # other weights from the "same" config (the folder records the real one)
            meta = real(config, folder, **kw)
            on_disk = json.loads((folder / "meta.json").read_text())
            on_disk["config"]["lr"] = meta["config"]["lr"] = config.lr * 2
            (folder / "meta.json").write_text(json.dumps(on_disk))
            return meta
        return real(config, folder, **kw)

    monkeypatch.setattr(study_cli, "train_with_progress", other_processor)
    m = next(m for m in models_of(load_study(DIGITS), out) if m.slot == "erm-s1")
    kept = files_under(out, "results", "models/erm-s1")
    capsys.readouterr()
    assert run_study(DIGITS, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "its weights differ from the recorded ones" in err[-1] and "--retrain" in err[-1] and "Traceback" not in "".join(err)
    assert files_under(out, "results", "models/erm-s1") == kept  # nothing recorded changed
    assert (rebuild_folder(m) / "model.safetensors").is_file()  # the rebuild is kept for --retrain
    assert run_study(DIGITS, "--out", out, "--retrain") == 0
    assert not rebuild_folder(m).exists()
    new_meta = json.loads((out / "models" / "erm-s1" / "meta.json").read_text())
    assert new_meta["weights_sha256"] != json.loads((study / "models" / "erm-s1" / "meta.json").read_text())["weights_sha256"]
    for suite in ("paper", "strong"):  # every result of erm-s1 now quotes the new weights
        doc = json.loads((out / "results" / f"{suite}-erm-s1.json").read_text())
        assert doc["checkpoints"]["erm-s1"]["weights_sha256"] == new_meta["weights_sha256"]
    probe = json.loads((out / "data" / "probes" / "erm-s1.json").read_text())
    assert probe["weights_sha256"] == new_meta["weights_sha256"]


def test_one_model_s_probes_are_computed_alone(study, tmp_path, monkeypatch):
    """Deleting one model's probe file recomputes that model only; the gathered files come out the same."""
    out = tmp_path / "copy"
    shutil.copytree(study, out)
    (out / "data" / "probes" / "erm-s1.json").unlink()
    (out / "data" / "figure2.csv").unlink()
    import robustmix.study.probing as probing

    probed = []
    real = probing.probe_model
    monkeypatch.setattr(probing, "probe_model", lambda spec, m, *a: probed.append(m.slot) or real(spec, m, *a))
    assert run_study(DIGITS, "--out", out, "--stage", "probes") == 0
    assert probed == ["erm-s1"]
    for name in ("figure2.csv", "calibration.csv", "figure2-pairs.json"):
        assert (out / "data" / name).read_bytes() == (study / "data" / name).read_bytes(), name


@pytest.mark.parametrize("jobs, expected", [(1, [["a"], ["b"], ["c"]]), (2, [["a", "b"], ["c"]]), (5, [["a", "b", "c"]])])
def test_batches_keep_the_spec_order(jobs, expected):
    from robustmix.study.schedule import batches

    assert batches(["a", "b", "c"], jobs) == expected


def test_a_rebuild_trains_at_the_recorded_thread_count(study, tmp_path, monkeypatch):
    """The weights depend on the torch thread count: a rebuild runs at the count the kept checkpoint
    recorded (1 here), whatever the current one, and so gets the recorded weights."""
    import torch

    from robustmix.cli import main

    out, weights = weightless_copy(study, tmp_path)
    (out / "results" / "strong-mixup-s1.json").unlink()
    assert json.loads((out / "models" / "mixup-s1" / "meta.json").read_text())["torch_threads"] == 1
    seen = []
    real = study_cli.train_with_progress
    monkeypatch.setattr(study_cli, "train_with_progress", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["study", str(DIGITS), "--out", str(out)]) == 0
        assert torch.get_num_threads() == 2  # restored after the rebuild
    finally:
        torch.set_num_threads(threads)
    assert seen == [1]
    assert (out / "models" / "mixup-s1" / "model.safetensors").read_bytes() == weights["mixup-s1"]
