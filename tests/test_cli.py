"""The CLI end to end on digits: quickstart, then `attack --eps 4 --iters 10` with no other flags."""

import os
import subprocess
import sys

import pytest

from robustmix.cli import main
from robustmix.store.results import load_results


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder where `robustmix quickstart --epochs 3` has run."""
    d = tmp_path_factory.mktemp("qs")
    old = os.getcwd()
    os.chdir(d)
    try:
        assert main(["quickstart", "--epochs", "3"]) == 0
    finally:
        os.chdir(old)
    return d


@pytest.fixture()
def in_workdir(workdir):
    old = os.getcwd()
    os.chdir(workdir)
    yield workdir
    os.chdir(old)


def test_quickstart_table_has_erm_and_mixup_and_attacks_raise_error(in_workdir):
    doc = load_results(next((in_workdir / "runs" / "results").glob("quickstart-*.json")))
    recs = doc["records"]
    assert {r["method"] for r in recs} == {"erm", "mixup"}
    assert {r["setting"] for r in recs} == {"clean", "white-box", "black-box"}
    clean = {r["target"]: r for r in recs if r["setting"] == "clean"}
    for r in recs:
        if r["setting"] != "clean":
            # FGSM is not guaranteed to be monotone per example, but on a whole test set at these eps it is.
            assert r["top1_err"] >= clean[r["target"]]["top1_err"], r
            assert len(r["top1_correct"]) == r["n"] == 360


def test_attack_works_with_defaults_after_quickstart(in_workdir, capsys):
    assert main(["attack", "--eps", "4", "--iters", "10"]) == 0
    out = capsys.readouterr().out
    assert "| white-box | Top-1 | ERM |" in out and "mixup (α=1)" in out and "| black-box |" in out
    assert "FGSM | I-FGSM" in out
    doc = load_results(in_workdir / "runs" / "results" / "attack-eps4-iters10.json")
    assert doc["config"]["iters"] == 10
    assert {r["surrogate"] for r in doc["records"] if r["setting"] == "black-box"} == {"digits-cnn-erm-s0-surrogate"}


def test_iters_one_is_fgsm_only(in_workdir, capsys):
    assert main(["attack", "--eps", "8", "--iters", "1", "--out", "r1.json"]) == 0
    out = capsys.readouterr().out
    assert "FGSM" in out and "I-FGSM" not in out


def test_report_prints_table_and_writes_csv(in_workdir, capsys):
    res = in_workdir / "runs" / "results" / "attack-eps4-iters10.json"
    assert main(["report", str(res)]) == 0
    assert "| Setting | Metric | Method |" in capsys.readouterr().out
    assert res.with_suffix(".table3.csv").read_text().startswith("eps_255,Setting,Metric,Method")


BAD = [
    (["attack", "--eps", "-1"], "eps"),
    (["attack", "--eps", "four"], "eps"),
    (["attack", "--eps", "300"], "255"),
    (["attack", "--iters", "0"], "iters"),
    (["attack", "--iters", "x"], "iters"),
    (["attack", "--targets", "no/such/checkpoint"], "does not exist"),
    (["attack", "--runs", "empty-runs"], "no checkpoints"),
    (["train", "--dataset", "imagenet-22k"], "unknown data set"),
    (["train", "--model", "vgg99"], "unknown model"),
    (["train", "--method", "magic"], "unknown method"),
    (["train", "--epochs", "0"], "epochs"),
    (["report", "missing.json"], "does not exist"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(argv, needle, in_workdir, capsys):
    before = sorted(str(p) for p in in_workdir.rglob("*"))
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]
    assert sorted(str(p) for p in in_workdir.rglob("*")) == before


def test_bad_input_from_a_real_process_has_no_traceback(in_workdir):
    p = subprocess.run([sys.executable, "-m", "robustmix", "attack", "--eps", "nan"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr and "eps" in p.stderr


# --- help: the top level and every registered command (and alias) render ---------------------

from robustmix.cli import ALIASES, COMMANDS  # noqa: E402


@pytest.mark.parametrize("argv", [["--help"], ["-h"]] + [[name, "--help"] for name in COMMANDS]
                         + [[alias, "--help"] for names in ALIASES.values() for alias in names], ids=" ".join)
def test_help_renders(argv, capsys):
    """argparse %-formats help lines: a bare '%' in one (report's "95% intervals") crashed `robustmix --help`."""
    from robustmix.cli import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: robustmix")
    if argv[0] in ("--help", "-h"):
        assert all(name in out for name in COMMANDS) and "95%" in out


def test_old_module_paths_import_as_aliases_of_the_new_ones():
    """robustmix 0.1's flat modules moved into stage folders; the old paths still import (the same
    module objects), with a DeprecationWarning naming the new path."""
    import importlib

    import robustmix
    from robustmix.runtime.moved import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(f"robustmix.{old}", None) if old not in ("train", "evaluate") else None  # found afresh
        with pytest.warns(DeprecationWarning, match=f"robustmix.{new}") if old not in ("train", "evaluate") else _nothing():
            assert importlib.import_module(f"robustmix.{old}") is importlib.import_module(f"robustmix.{new}")
    from robustmix.evaluate import EvalConfig, evaluate  # the notebook-era spelling
    from robustmix.train import lr_factor  # noqa: F401

    assert robustmix.evaluate is evaluate and robustmix.EvalConfig is EvalConfig and callable(robustmix.train)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
