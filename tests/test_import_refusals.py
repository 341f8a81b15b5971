"""`robustmix import` under planted mistakes and hostile files, table-driven: every invocation exits 2
with one line on stderr naming the mistake, runs nothing from the file, and leaves the folder as it
was (no checkpoint, no partial folder)."""

import hashlib
import shutil
import sys

import pytest
import torch
from torch import nn

import hostile_programs as hp
from hostile import MARKER, write_hostile_pt
from import_fixtures import PERM, script, trace, write_exports
from robustmix.cli import main
from robustmix.models.programs import load_pt2, load_torchscript


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, trained, digits):
    """Every file the table below imports, plus an existing checkpoint folder."""
    d = tmp_path_factory.mktemp("import-bad")
    f = write_exports(d, trained[0], digits.x_test)
    for name, make in {**hp.REFUSED_PT2, **hp.NEUTRALISED_PT2}.items():
        make(f["exported"], d / f"{name.replace(' ', '-')}.pt2")
    hp.torchscript_with_hostile_pickle(f["scripted"], d / "hostile-pickle.ts")
    script(hp.SetState(), d / "setstate.ts")
    script(hp.ReadsFile(), d / "reads-file.ts")
    script(hp.with_saving_hook(), d / "saving-hook.ts")
    train_mode = trace(trained[0].__class__(1, 10, (0.5,), (0.25,)).train(), digits.x_test, d / "train-mode.ts")
    assert train_mode.exists()
    script(nn.Sequential(trained[0], nn.Linear(10, 9)), d / "nine-classes.ts")
    torch.export.save(torch.export.export(trained[0].eval(), (digits.x_test[:2],)), d / "batch-of-2.pt2")
    write_hostile_pt(d / "hostile.pt")
    (d / "notes.txt").write_text("not a model")
    (d / "existing").mkdir()
    (d / "existing" / "meta.json").write_text("{}")
    return d


MEAN = ["--mean", "0.305383", "--std", "0.376121"]  # digits' statistics
# (argv after "import", words the one stderr line must contain)
BAD = [
    (["bare.ts"], "the model expects normalised input; add --expects-normalized"),
    (["cnn.ts", "--expects-normalized"], "the model normalises its own input; drop --expects-normalized"),
    (["cnn.pt2", *MEAN], "the model normalises its own input; drop --mean/--std"),
    (["permuted.pt2"], f"class order differs from the data set's (output 0 is '5', output 1 is '6', output 2 is '1' and 7 more); pass --class-order {','.join(map(str, PERM))}"),
    (["softmax.ts"], "the model outputs probabilities"),
    (["train-mode.ts"], "changes its buffers (net.features.1.running_mean) in eval mode"),
    (["nine-classes.ts"], "outputs 9 classes but the data set has 10"),
    (["batch-of-2.pt2"], "fails on a batch of 64 test images of shape [1, 8, 8] (Expected input at *args[0].shape[0] to be equal to 2"),
    (["torchvision:resnet18", "--weights", "hostile.pt"], "hostile.pt: refused, the file carries pickled code"),
    (["timm:resnet18", "--weights", "hostile.pt"], "hostile.pt: refused, the file carries pickled code"),
    (["robustmix:cnn", "--weights", "hostile.pt"], "hostile.pt: refused, the file carries pickled code"),
    (["pickled-weight.pt2"], "stored as a pickle or a custom object"),
    (["opaque-object.pt2"], "'data/constants/opaque_obj_0' (pickled, compiled or unknown content)"),
    (["compiled-library.pt2"], "(pickled, compiled or unknown content)"),
    (["os.system-target.pt2"], "calls 'torch.os.system'; only aten operators are accepted"),
    (["code-in-a-shape-expression.pt2"], "which is not plain arithmetic"),
    (["code-in-an-argument-name.pt2"], "is not an identifier"),
    (["code-in-a-parameter-name.pt2"], "is not a plain name"),
    (["hostile-pickle.ts"], "TorchScript could not load it"),
    (["setstate.ts"], "defines __setstate__"),
    (["reads-file.ts"], "calls aten::from_file"),
    (["saving-hook.ts"], "calls aten::save"),
    (["notes.txt"], "not a zip archive"),
    (["missing.ts"], "neither a file nor torchvision:ARCH"),
    (["torchvision:resnet18"], "needs its weights: pass --weights"),
    (["cnn.ts", "--weights", "cnn.pt"], "drop --weights"),
    (["torchvision:resnet9000", "--weights", "cnn.pt"], "unknown torchvision architecture 'resnet9000'"),
    (["torchvision:resnet18", "--weights", "cnn.pt"], "cnn.pt: the weights do not fit torchvision:resnet18"),
    (["robustmix:cnn", "--weights", "notes.txt"], "notes.txt: refused"),
    (["cnn.ts", "--mean", "0.3"], "give both --mean and --std"),
    (["cnn.ts", *MEAN, "--expects-normalized"], "not both"),
    (["cnn.ts", "--mean", "78", "--std", "96"], "look like the 0–255 scale"),
    (["cnn.ts", "--mean", "0.3,0.3,0.3", "--std", "0.3,0.3,0.3"], "need 1 value(s)"),
    (["cnn.ts", "--mean", "0.3", "--std", "0"], "--std finite numbers > 0"),
    (["cnn.ts", "--mean", "a", "--std", "0.3"], "not a comma-separated list of numbers"),
    (["cnn.ts", "--bgr"], "but the data set has 1 channel(s)"),
    (["cnn.ts", "--class-order", "1,0"], "each of the 10 classes exactly once"),
    (["cnn.ts", "--class-order", "0,1,2,3,4,5,6,7,8,cat"], "'cat' is neither a class"),
    (["cnn.ts", "--out", "existing"], "existing already exists: pass --overwrite"),
    (["cnn.ts", "--dataset", "imagenet-22k"], "unknown data set 'imagenet-22k'"),
    (["cnn.ts", "--role", "attacker"], "--role"),
]


def snapshot(folder):
    return {str(p.relative_to(folder)): ("dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_refused_import_exits_2_with_one_line_and_writes_nothing(argv, needle, workdir, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    args = ["import", *argv]
    if "--dataset" not in args:
        args += ["--dataset", "digits"]
    if "--out" not in args:
        args += ["--out", "runs/new"]
    try:
        code = main(args + ["--device", "cpu"])
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert code == 2, (code, captured.err)
    assert len(err) == 1, err
    assert needle in err[0], err[0]
    assert err[0].startswith("robustmix") and "Traceback" not in captured.err and captured.out == ""
    assert not (workdir / MARKER).exists(), "a payload ran"
    assert snapshot(workdir) == before, "a refused import changed files on disk"


def test_diagnoses_are_forced_with_force_and_recorded(workdir, tmp_path, capsys):
    import json

    out = tmp_path / "forced"
    assert main(["import", str(workdir / "bare.ts"), "--dataset", "digits", "--out", str(out), "--force", "--device", "cpu"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["import"]["forced"] is True
    assert "the model expects normalised input" in meta["import"]["warnings"][0]
    assert meta["clean_top1_err"] > 50 and meta["import"]["probe_error_under"]["dataset"] < 5
    assert "imported despite: clean error" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(hp.NEUTRALISED_PT2))
def test_hostile_parts_never_reach_torch(name, workdir, tmp_path, monkeypatch):
    """Sample inputs and guard code are dropped from the archive torch reads: the import succeeds and nothing runs."""
    monkeypatch.chdir(tmp_path)
    path = workdir / f"{name.replace(' ', '-')}.pt2"
    assert main(["import", str(path), "--dataset", "digits", "--out", "ck", "--device", "cpu"]) == 0
    assert not (tmp_path / MARKER).exists()


def test_torch_itself_would_run_the_sample_inputs_payload(workdir, tmp_path, monkeypatch):
    """Why robustmix never hands the user's .pt2 to torch.export.load: torch 2.14 retries the sample
    inputs with weights_only=False. If a later torch stops doing so this skips (the guard stays)."""
    monkeypatch.chdir(tmp_path)
    try:
        torch.export.load(workdir / "hostile-sample-inputs.pt2")
    except Exception:
        pass
    if not (tmp_path / MARKER).exists():
        pytest.skip(f"torch {torch.__version__} no longer unpickles the sample inputs with weights_only=False")
    (tmp_path / MARKER).unlink()
    load_pt2((workdir / "hostile-sample-inputs.pt2").read_bytes(), "x.pt2")
    assert not (tmp_path / MARKER).exists()


def test_torchscript_setstate_really_runs_inside_torch_jit_load(workdir):
    """Why __setstate__ is refused: torch.jit.load runs it (here it would only copy a tensor)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert hasattr(torch.jit.load(str(workdir / "setstate.ts")), "w")
    with pytest.raises(Exception, match="__setstate__"):
        load_torchscript((workdir / "setstate.ts").read_bytes(), "setstate.ts")


def test_timm_missing_is_one_line_naming_the_extra(workdir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    monkeypatch.chdir(workdir)
    assert main(["import", "timm:resnet18", "--weights", "cnn.pt", "--dataset", "digits", "--out", "runs/t", "--device", "cpu"]) == 2
    assert "pip install 'robustmix[timm]'" in capsys.readouterr().err
    assert not (workdir / "runs").exists()


def test_overwrite_replaces_a_folder_whole(workdir, tmp_path):
    out = tmp_path / "ck"
    shutil.copytree(workdir / "existing", out)
    assert main(["import", str(workdir / "cnn.ts"), "--dataset", "digits", "--out", str(out), "--overwrite", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "model.safetensors", "program.ts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"], "no temporary folder left behind"
