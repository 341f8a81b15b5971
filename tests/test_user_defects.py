"""The defects found by trying robustmix as a new user (issue 12), one regression test each, run
through the command line and the functions a user touches. Each failed on the code before the fix."""

import json
import shutil

import pandas as pd
import pytest

from robustmix import save_checkpoint
from robustmix.cli import build_parser, main
from robustmix.cli.train import config_from_args
from robustmix.reporting.figures import robustness_figure
from robustmix.reporting.tables import evidence
from robustmix.store.results import load_results, save_results

from test_data import write_tree
from test_report_figures import sweep


def run(argv, capsys):
    """(exit code, stdout, stderr) of one CLI invocation, argparse's own exits included."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# 1 ------------------------------------------------------------------------------------------------
def test_a_second_quickstart_in_the_same_folder_reuses_the_checkpoints(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["quickstart", "--epochs", "1", "--eps", "8", "--iters", "2"]
    assert run(argv, capsys)[0] == 0
    weights = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/model.safetensors")}
    assert len(weights) == 3
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert err.count("reusing") == 3
    assert {p: p.stat().st_mtime_ns for p in weights} == weights  # not retrained
    assert "next: robustmix attack --eps 4 --iters 10   (uses the checkpoints in runs/)" in err
    shutil.copytree(tmp_path / "runs", tmp_path / "my runs")  # the hint names a --runs folder it was given
    code, _, err = run([*argv, "--runs", "my runs"], capsys)
    assert code == 0 and err.count("reusing") == 3, err
    assert "next: robustmix attack --eps 4 --iters 10 --runs 'my runs'   (uses the checkpoints in my runs/)" in err


# 2 ------------------------------------------------------------------------------------------------
def test_train_out_naming_a_weights_file_is_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "--epochs", "1", "--out", "runs/erm.safetensors"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "--out runs/erm" in err and "folder" in err
    assert not (tmp_path / "runs").exists()


def test_checkpoint_folders_with_a_file_suffix_are_named_by_the_folder(tmp_path, monkeypatch, capsys, trained, trained_mixup):
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "runs" / "erm.safetensors", *trained)
    save_checkpoint(tmp_path / "runs" / "mixup.safetensors", *trained_mixup)
    argv = ["attack", "--targets", "runs/erm.safetensors", "runs/mixup.safetensors", "--settings", "white-box",
            "--eps", "8", "--iters", "1", "--out", "r.json"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert {r["target"] for r in load_results(tmp_path / "r.json")["records"]} == {"erm.safetensors", "mixup.safetensors"}


# 3 ------------------------------------------------------------------------------------------------
def test_figures_draws_every_checkpoint_and_refuses_two_with_one_name(tmp_path, capsys, trained, trained_mixup):
    save_checkpoint(tmp_path / "a", *trained)
    save_checkpoint(tmp_path / "b", *trained_mixup)
    out = tmp_path / "figs"
    files = [str(tmp_path / "a" / "model.safetensors"), str(tmp_path / "b" / "model.safetensors")]
    code, _, err = run(["figures", "--checkpoints", *files, "--out-dir", str(out), "--pairs", "20", "--lams", "3",
                        "--device", "cpu"], capsys)
    assert code == 0, err
    assert set(pd.read_csv(out / "figure2.csv").checkpoint) == {"a", "b"}

    save_checkpoint(tmp_path / "x" / "erm", *trained)
    save_checkpoint(tmp_path / "y" / "erm", *trained_mixup)
    code, _, err = run(["figures", "--checkpoints", str(tmp_path / "x" / "erm"), str(tmp_path / "y" / "erm"),
                        "--out-dir", str(tmp_path / "figs2"), "--device", "cpu"], capsys)
    assert code == 2 and "two checkpoints are named 'erm'" in err
    assert not (tmp_path / "figs2").exists()


# 4 ------------------------------------------------------------------------------------------------
SMALL_SPEC = """
[train]
epochs = 1
{train}
[[targets]]
name = "erm"
{model}
[attack]
attacks = ["fgsm"]
eps = [16]
settings = ["white-box"]
"""


@pytest.mark.parametrize(
    "train, model, key",
    [("image_size = 16", "", "image_size"), ('data_dir = "~/data"', "", "data_dir"), ("download = true", "", "download"),
     ('cache_dir = "/tmp/cache"', "", "cache_dir"), ("", "image_size = 16", "image_size")],
)
def test_bench_spec_refuses_data_options_it_would_hash_and_ignore(train, model, key, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_SPEC.format(train=train, model=model))
    code, _, err = run(["bench", "--spec", str(spec), "--baseline", str(tmp_path / "b.json"), "--update-baseline"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and key in err, err
    assert not (tmp_path / "b.json").exists()


# 5 ------------------------------------------------------------------------------------------------
def test_robustness_figure_names_the_surrogate_the_records_name():
    records = [dict(r, surrogate="mixup-sur" if r["setting"] == "black-box" else None) for r in sweep(n=50)]
    ev = evidence(records, n_boot=50)
    titles = [ax.get_title() for ax in robustness_figure(ev["intervals"], ev["labels"]).axes]
    black = [t for t in titles if t.startswith("black-box")]
    assert black and all("mixup-sur" in t and "ERM" not in t for t in black), titles
    assert all("surrogate" not in t and "from" not in t for t in titles if t.startswith("white-box"))


# 6 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("drop", [True, False])
def test_report_takes_records_without_alpha(drop, tmp_path, capsys):
    records = [{k: v for k, v in r.items() if k != "alpha"} if drop else dict(r, alpha=None) for r in sweep(n=40)]
    results = save_results(tmp_path / "r.json", records, config={}, checkpoints={})
    code, out, err = run(["report", str(results), "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert "| white-box | Top-1 | ERM |" in out and "| mixup | " in out and "None" not in out


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["flase", "ture", "2", ""])
def test_boolean_flags_refuse_anything_but_true_or_false(text, capsys):
    code, _, err = run(["train", "--nesterov", text, "--epochs", "0"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "--nesterov" in err and f"{text!r}" in err


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("yes", True), ("0", False)])
def test_boolean_flags_take_true_and_false(text, value):
    args = build_parser().parse_args(["train", "--nesterov", text])
    assert config_from_args(args)[0].nesterov is value


# 8 ------------------------------------------------------------------------------------------------
def test_baseline_whose_error_rates_disagree_with_its_own_bits_is_refused(tmp_path, capsys):
    spec, base = tmp_path / "spec.toml", tmp_path / "base.json"
    spec.write_text(SMALL_SPEC.format(train="", model=""))
    assert run(["bench", "--spec", str(spec), "--baseline", str(base), "--update-baseline"], capsys)[0] == 0
    doc = json.loads(base.read_text())
    metric = "erm/white-box/fgsm/16/top1"
    doc["metrics"][metric]["err"] += 10.0  # an edited summary: the bits say otherwise
    base.write_text(json.dumps(doc))
    code, _, err = run(["bench", "--spec", str(spec), "--baseline", str(base)], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert metric in err and "--update-baseline" in err


# 9, 10 --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree_checkpoint(tmp_path_factory):
    """A 16×16 grayscale ImageFolder tree (9 test images, 3 classes) and a model trained on it
    resized to 8×8 with the default augmentation: (root, checkpoint folder)."""
    d = tmp_path_factory.mktemp("tree")
    write_tree(d / "tree", "L", size=(16, 16))
    out = d / "ck"
    assert main(["train", "--dataset", f"imagefolder:{d / 'tree'}", "--image-size", "8", "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "--out", str(out)]) == 0
    return d / "tree", out


def test_attack_evaluates_on_the_data_form_the_checkpoint_records(tree_checkpoint, tmp_path, capsys):
    _, ck = tree_checkpoint
    base = ["attack", "--targets", str(ck), "--settings", "white-box", "--eps", "8", "--iters", "1"]
    code, _, err = run([*base, "--out", str(tmp_path / "all.json")], capsys)
    assert code == 0, err
    assert "9 test examples" in err
    assert {r["n"] for r in load_results(tmp_path / "all.json")["records"]} == {9}
    code, _, err = run([*base, "--examples", "6", "--out", str(tmp_path / "six.json")], capsys)
    assert code == 0, err
    assert "6 test examples" in err
    doc = load_results(tmp_path / "six.json")
    assert {r["n"] for r in doc["records"]} == {6} and doc["config"]["examples"] == 6


def test_augment_auto_does_not_flip_imagefolder_trees(tree_checkpoint, capsys):
    _, ck = tree_checkpoint
    assert json.loads((ck / "meta.json").read_text())["augment"] == "crop"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    start = help_text.rindex("--augment {")  # the option's own entry, not the usage line
    entry = help_text[start:help_text.index(" --model ", start)]
    assert "imagefolder" in entry and "flip" in entry, entry
