"""The CLI under bad input, table-driven: every invocation exits 2 with exactly one line on
stderr naming the problem, no traceback, and not one file created, changed or removed."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from hostile import MARKER, write_hostile_pt
from robustmix import save_checkpoint
from robustmix.cli import main
from robustmix.training.config import TrainConfig
from robustmix.data import Dataset
from robustmix.training.loop import train


def toy_dataset(name="toy", classes=3, size=12, n=48) -> Dataset:
    """A tiny synthetic data set of another shape and class count (generated, nothing downloaded)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.arange(n) % classes
    return Dataset(name, x, y, x[:12], y[:12], tuple(map(str, range(classes))), (0.5,), (0.29,))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, trained, trained_mixup):
    """runs/ with a digits target and surrogate, plus a zoo of other and broken checkpoints."""
    d = tmp_path_factory.mktemp("bad")
    model, meta = trained
    save_checkpoint(d / "runs" / "erm-target", model, {**meta, "role": "target"})
    save_checkpoint(d / "runs" / "erm-surrogate", model, {**meta, "role": "surrogate"})
    mix_model, mix_meta = trained_mixup
    save_checkpoint(d / "mixup-target", mix_model, mix_meta)
    # a surrogate trained on another data set (3 classes, 12×12)
    toy_model, toy_meta = train(TrainConfig(dataset="toy", epochs=1, batch_size=16, role="surrogate"), data=toy_dataset())
    save_checkpoint(d / "toy-surrogate", toy_model, toy_meta)
    # claims to be digits but has 3 classes and 12×12 inputs
    save_checkpoint(d / "fake-digits", toy_model, {**toy_meta, "dataset": "digits"})
    # damaged copies of the digits target
    for name in ("truncated", "bad-meta", "wrong-arch", "legacy", "hostile"):
        shutil.copytree(d / "runs" / "erm-target", d / name)
    w = d / "truncated" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-64])
    (d / "bad-meta" / "meta.json").write_text('{"format": "robustmix-checkpoint/1", "model": ')
    (d / "wrong-arch" / "meta.json").write_text(json.dumps({**meta, "model": "preact_resnet18"}))
    for name in ("legacy", "hostile"):
        (d / name / "model.safetensors").unlink()
    torch.save(model.state_dict(), d / "legacy" / "model.pt")
    write_hostile_pt(d / "hostile" / "model.pt")
    (d / "empty-runs").mkdir()
    (d / "not-a-folder").write_text("x")
    (d / "notes.txt").write_text("not results")
    (d / "other.json").write_text('{"format": "something-else", "records": []}')
    (d / "meta-is-dir" / "meta.json").mkdir(parents=True)
    (d / "meta-is-dir" / "model.safetensors").write_bytes(b"")
    return d


E = ["--eps", "16", "--iters", "2"]  # small, so the few invocations that reach an attack stay fast
T = ["--targets", "runs/erm-target"]
S = ["--surrogate", "runs/erm-surrogate"]

# (argv, words the one stderr line must contain)
BAD = [
    ([], "no command given"),
    (["frobnicate"], "invalid choice"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "2.5"], "not an integer"),
    (["train", "--batch-size", "-8"], "--batch-size"),
    (["train", "--lr", "nan"], "not a finite number"),
    (["train", "--lr", "0"], "lr must be a positive number, got 0"),
    (["train", "--alpha", "-1"], "--alpha"),
    (["train", "--weight-decay", "-0.1"], "--weight-decay"),
    (["train", "--seed", "one"], "--seed"),
    (["train", "--dataset", "imagenet-22k"], "unknown data set 'imagenet-22k'"),
    (["train", "--model", "vgg99"], "unknown model 'vgg99'"),
    (["train", "--method", "magic"], "unknown method 'magic'"),
    (["train", "--role", "attacker"], "--role"),
    (["train", "--device", "tpu9"], "device"),
    (["train", "--epochs", "1", "--out", "runs/erm-target"], "--overwrite"),
    (["train", "--epochs", "1", "--out", "not-a-folder"], "not-a-folder exists"),
    (["train", "--learning-rate", "0.1"], "unrecognized arguments"),
    (["train", "--method", "mixup", "--method-option", "adv_p=0.1"], "takes no options"),
    (["train", "--method", "puzzle-mix", "--method-option", "adv_p"], "is not KEY=VALUE"),
    (["train", "--method", "puzzle-mix", "--method-option", "beta=high"], "beta='high' is not a float"),
    (["train", "--method", "puzzle-mix", "--method-option", "grids=3"], "no puzzle-mix block grid divides 8×8"),
    (["attack", *T, "--eps", "-1"], "eps '-1'"),
    (["attack", *T, "--eps", "four"], "eps 'four' is not a number"),
    (["attack", *T, "--eps", "300"], "above 255"),
    (["attack", *T, "--eps", "nan"], "eps 'nan'"),
    (["attack", *T, "--eps", "4,,8"], "eps '' is not a number"),
    (["attack", *T, "--iters", "0"], "--iters"),
    (["attack", *T, "--batch-size", "0"], "--batch-size"),
    (["attack", *T, "--attacks", "pdg"], "--attacks"),
    (["attack", *T, "--settings", "grey-box"], "--settings"),
    (["attack", "--targets", "no/such/checkpoint"], "does not exist"),
    (["attack", "--runs", "empty-runs"], "no checkpoints in empty-runs"),
    (["attack", "--runs", "no-such-runs"], "not a folder"),
    (["attack", "--targets", "not-a-folder"], "not a robustmix checkpoint"),
    (["attack", "--targets", "meta-is-dir", "--settings", "white-box"], "meta.json"),
    (["attack", *T, "--surrogate", "toy-surrogate"], "dataset='toy'"),
    (["attack", "--targets", "toy-surrogate", "--settings", "white-box"], "unknown data set 'toy'"),
    (["attack", "--targets", "fake-digits", "--settings", "white-box"], "has 3 classes but data set 'digits' has 10"),
    (["attack", *T, "--settings", "black-box", "--runs", "no-such-runs"], "black-box needs a surrogate"),
    (["attack", "--targets", "mixup-target", "--runs", "empty-runs"], "pass --surrogate PATH or --settings white-box"),
    (["attack", "--targets", "runs/erm-target/meta.json", "runs/erm-target", *S], "two targets are named 'erm-target'"),
    (["attack", *T, *S, "--settings", "white-box"], "--surrogate is only used for black-box"),
    (["attack", "--targets", "runs/erm-target", "mixup-target/../runs/erm-target", *S], "two targets are named 'erm-target'"),
    (["attack", "--targets", "truncated", *S], "truncated/model.safetensors: weights do not match"),
    (["attack", "--targets", "bad-meta", *S], "bad-meta/meta.json: unreadable metadata"),
    (["attack", "--targets", "wrong-arch", *S], "wrong-arch/model.safetensors: weights do not fit the 'preact_resnet18'"),
    (["attack", "--targets", "legacy", *S], "pass --allow-legacy"),
    (["attack", "--targets", "hostile", *S, "--allow-legacy"], "hostile/model.pt: refused, the file carries pickled code"),
    (["attack", *T, "--device", "cuda:7"], "device"),
    (["attack", *T, "--square-on", "some"], "--square-on"),
    (["attack", *T, *S, "--suite", "strong", "--square-on", "survivors"], "white-box only"),
    (["attack", *T, *S, *E, "--out", "not-a-folder/r.json"], "not-a-folder is a file, not a folder"),
    (["report", "missing.json"], "does not exist"),
    (["report", "notes.txt"], "not a readable results file"),
    (["report", "other.json"], "not a robustmix results file"),
    (["quickstart", "--epochs", "0"], "--epochs"),
    (["quickstart", "--eps", "256"], "above 255"),
]


def snapshot(folder: Path) -> dict:
    """Every path under `folder` -> (sha256, mtime_ns) for files, 'dir' for folders."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(folder))] = "dir" if p.is_dir() else (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a) or "(nothing)" for a, _ in BAD])
def test_bad_invocation_exits_2_with_one_line_and_no_change(argv, needle, workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    marker = workdir / MARKER
    before = snapshot(workdir)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert code == 2, (code, captured.err)
    assert len(err) == 1, err
    assert needle in err[0], err[0]
    assert err[0].startswith("robustmix") and "Traceback" not in captured.err
    assert captured.out == ""
    assert not marker.exists(), "the hostile pickle ran"
    assert snapshot(workdir) == before, "a bad invocation changed files on disk"


def test_table_is_big_enough():
    assert len(BAD) >= 25


def test_legacy_state_dict_loads_with_allow_legacy(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    argv = ["attack", "--targets", "legacy", *S, *E, "--attacks", "fgsm", "--allow-legacy", "--out", str(workdir.parent / "legacy-out.json")]
    assert main(argv) == 0, capsys.readouterr().err
    assert "FGSM" in capsys.readouterr().out
    assert os.path.exists(workdir.parent / "legacy-out.json")


def test_warnings_are_one_line_on_the_cli(capsys):
    import warnings

    from robustmix.runtime.errors import RobustmixWarning
    from robustmix.cli.common import one_line_warnings

    with one_line_warnings("attack"):
        warnings.warn("t looks randomized", RobustmixWarning)
    assert capsys.readouterr().err == "robustmix attack: warning: t looks randomized\n"
