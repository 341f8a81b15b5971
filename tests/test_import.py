"""`robustmix import` round trips: a checkpoint trained here, exported every way, imported back,
gives identical logits and identical attack records; the folder works with attack and report; the
Python API (`import_model`) takes any nn.Module with the same checks."""

import json

import pytest
import torch

from import_fixtures import PERM, Bare, Permuted, write_exports
from robustmix import import_model, load_checkpoint
from robustmix.store.checkpoint import Checkpoint
from robustmix.cli import main
from robustmix.training.config import TrainConfig
from robustmix.runtime.errors import RobustmixError
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.training.loop import train

CFG = EvalConfig(eps=(8 / 255,), iters=3, batch_size=96)
SAME = ("setting", "attack", "eps", "n", "top1_err", "top5_err", "top1_correct", "top5_correct")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, trained, digits):
    folder = tmp_path_factory.mktemp("exports")
    return write_exports(folder, trained[0], digits.x_test)


def records(model, surrogate, batch):
    x, y = batch
    out = evaluate([Checkpoint("t", model)], x, y, CFG, surrogate=Checkpoint("s", surrogate))
    return sorted(({k: r[k] for k in SAME} for r in out), key=lambda r: (r["setting"], r["attack"]))


@pytest.fixture(scope="module")
def reference(trained, trained_mixup, digits):
    """The trained model's own records on the first 96 test images (computed once per module)."""
    return records(trained[0].eval(), trained_mixup[0], (digits.x_test[:96], digits.y_test[:96]))


def import_cli(tmp_path, source, *flags, name="imported"):
    out = tmp_path / name
    code = main(["import", str(source), "--dataset", "digits", "--out", str(out), "--device", "cpu", *flags])
    assert code == 0
    return out


MEAN_STD = lambda d: ["--mean", ",".join(map(str, d.mean)), "--std", ",".join(map(str, d.std))]  # noqa: E731

# name -> (export, extra flags as a function of the data set). Each must give back the trained model exactly.
ROUND_TRIPS = {
    "TorchScript, scripted": ("scripted", lambda d: []),
    "TorchScript, traced": ("traced", lambda d: []),
    "torch.export": ("exported", lambda d: []),
    "TorchScript without normalisation, --mean/--std": ("bare-scripted", MEAN_STD),
    "torch.export without normalisation, --expects-normalized": ("bare-exported", lambda d: ["--expects-normalized"]),
    "torch.export, permuted outputs, --class-order": ("permuted", lambda d: ["--class-order", ",".join(map(str, PERM))]),
    "robustmix state dict (torch.save)": ("state-dict", lambda d: ["--weights"]),
    "robustmix state dict (safetensors)": ("safetensors", lambda d: ["--weights"]),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_round_trip_gives_identical_logits_and_attack_records(case, exports, trained, trained_mixup, reference, digits, batch, tmp_path):
    model, _ = trained
    export, flags = ROUND_TRIPS[case]
    flags = flags(digits)
    source = exports[export]
    if flags[:1] == ["--weights"]:
        source, flags = "robustmix:cnn", ["--weights", str(exports[export])]
    folder = import_cli(tmp_path, source, *flags)
    loaded, meta = load_checkpoint(folder)
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test), model.eval()(digits.x_test))
    assert records(loaded, trained_mixup[0], batch) == reference
    imp = meta["import"]
    assert meta["clean_top1_err"] == pytest.approx(trained[1]["clean_top1_err"])
    assert imp["warnings"] == [] and imp["forced"] is False
    assert meta["classes"] == list(digits.classes) and meta["num_classes"] == 10
    assert len(imp["file_sha256"]) == 64 and imp["file"].endswith(exports[export].name)


def test_program_sources_keep_the_checked_program_beside_the_weights(exports, tmp_path):
    for export, name in (("scripted", "program.ts"), ("exported", "program.pt2")):
        folder = import_cli(tmp_path, exports[export], name=export)
        meta = json.loads((folder / "meta.json").read_text())
        assert sorted(p.name for p in folder.iterdir()) == sorted(["meta.json", "model.safetensors", name])
        assert meta["import"]["program"] == name and len(meta["import"]["program_sha256"]) == 64
        assert meta["format"] == "robustmix-checkpoint/1" and meta["role"] == "target" and meta["method"] == "imported"


def test_a_replaced_program_is_refused_at_load(exports, tmp_path):
    folder = import_cli(tmp_path, exports["scripted"])
    (folder / "program.ts").write_bytes(exports["traced"].read_bytes())
    with pytest.raises(RobustmixError, match="program does not match meta.json"):
        load_checkpoint(folder)


def test_attack_and_report_work_unchanged_on_imported_folders(exports, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(exports["exported"]), "--dataset", "digits", "--out", "runs/exported", "--device", "cpu"]) == 0
    assert main(["import", str(exports["bare-scripted"]), "--dataset", "digits", "--out", "runs/surrogate", "--role", "surrogate",
                 "--expects-normalized", "--method", "erm", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["attack", "--eps", "8", "--iters", "2", "--out", "results.json"]) == 0
    out = capsys.readouterr().out
    assert "| white-box | Top-1 | imported |" in out and "| black-box |" in out
    quoted = json.loads((tmp_path / "results.json").read_text())["checkpoints"]
    assert quoted["exported"]["import"]["source"] == "torch.export" and quoted["surrogate"]["import"]["normalization"]["kind"] == "dataset"
    assert main(["report", "results.json"]) == 0
    assert main(["figures", "--pairs", "20", "--lams", "3", "--out-dir", "figs", "--device", "cpu"]) == 0
    assert (tmp_path / "figs" / "figure2.png").is_file()


# --- torchvision and timm: a robustmix resnet18 (torchvision's network) trained here ----------------


@pytest.fixture(scope="module")
def resnet(digits, tmp_path_factory):
    """A torchvision resnet18 trained briefly on digits (robustmix's resnet18 wraps torchvision's)."""
    model, meta = train(TrainConfig(model="resnet18", epochs=1, train_subset=400, batch_size=50, seed=0), data=digits)
    path = tmp_path_factory.mktemp("resnet") / "resnet18-digits.pt"
    torch.save(model.net.state_dict(), path)  # the torchvision network's own state dict, no normalisation
    return model.eval(), path


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_torchvision_and_timm_state_dicts_round_trip(library, resnet, trained_mixup, digits, tmp_path):
    if library == "timm":
        pytest.importorskip("timm")
    model, weights = resnet
    folder = import_cli(tmp_path, f"{library}:resnet18", "--weights", str(weights), "--expects-normalized")
    loaded, meta = load_checkpoint(folder)
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test), model(digits.x_test))
    small = (digits.x_test[:48], digits.y_test[:48])
    assert records(loaded, trained_mixup[0], small) == records(model, trained_mixup[0], small)
    assert meta["model"] == f"{library}:resnet18" and library in meta["import"]["versions"]


# --- the Python API -----------------------------------------------------------------------------


def test_import_model_wraps_a_module_for_evaluate(trained, trained_mixup, reference, digits, batch):
    model, meta = trained
    bare = import_model(Bare(model), digits, mean=digits.mean, std=digits.std, name="bare")
    assert bare.meta["clean_top1_err"] == pytest.approx(meta["clean_top1_err"])
    assert records(bare.model, trained_mixup[0], batch) == reference
    perm = import_model(Permuted(model), "digits", class_order=[str(c) for c in PERM])
    assert records(perm.model, trained_mixup[0], batch) == reference
    assert perm.meta["import"]["class_order"] == PERM
    norm = bare.meta["import"]["normalization"]
    assert norm["kind"] == "custom" and norm["mean"] == list(digits.mean) and bare.meta["import"]["source"] == "python"


API_MISTAKES = {
    "missing normalisation": (lambda m: Bare(m), {}, "add expects_normalized=True"),
    "doubled normalisation": (lambda m: m, {"expects_normalized": True}, "drop expects_normalized=True"),
    "permuted classes": (lambda m: Permuted(m), {}, f"pass class_order=[{','.join(map(str, PERM))}]"),
    "softmax output": (lambda m: torch.nn.Sequential(m, torch.nn.Softmax(dim=1)), {}, "outputs probabilities"),
}


@pytest.mark.parametrize("case", sorted(API_MISTAKES))
def test_import_model_refuses_mistakes_and_force_records_them(case, trained, digits):
    make, kwargs, words = API_MISTAKES[case]
    module = make(trained[0])
    with pytest.raises(RobustmixError, match=words.replace("[", r"\[").replace("]", r"\]")):
        import_model(module, digits, **kwargs)
    forced = import_model(module, digits, force=True, **kwargs)
    assert forced.meta["import"]["forced"] and words in forced.meta["import"]["warnings"][0]
