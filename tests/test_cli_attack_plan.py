"""`robustmix attack --dry-run`, --batch-size auto, --amp bf16, --no-stack-eps from the command line."""

import pytest

from robustmix.store.checkpoint import save_checkpoint
from robustmix.cli import main
from robustmix.store.results import load_results


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, trained, trained_mixup):
    d = tmp_path_factory.mktemp("ckpts")
    paths = {}
    for name, (model, meta) in {"sur": trained, "erm": trained, "mix": trained_mixup}.items():
        paths[name] = str(save_checkpoint(d / name, model, meta))
    return d, paths


def listing(d):
    return sorted(str(p) for p in d.rglob("*"))


def test_dry_run_prints_plan_and_writes_nothing(ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    before = listing(d)
    argv = ["attack", "--targets", paths["erm"], paths["mix"], "--surrogate", paths["sur"], "--eps", "4", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # Table 3 at one eps: 3 crafting models × (1 gradient + 9 I-FGSM steps); 8 scoring forwards.
    assert "total: 38 forward + 30 backward passes per chunk; 38 + 30 over all chunks" in out
    assert "54 forward + 44 backward per chunk" in out  # one attack call per cell
    assert "nothing written" in out
    assert listing(d) == before


@pytest.mark.parametrize("amp,layout,recorded", [("bf16", [], "auto"), ("bf16-all", ["--no-channels-last"], False)])
def test_attack_with_auto_batch_bf16_and_no_stacking(amp, layout, recorded, ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    argv = ["attack", "--targets", paths["erm"], "--settings", "white-box", "--eps", "4,8", "--iters", "2",
            "--batch-size", "auto", "--amp", amp, "--no-stack-eps", *layout, "--out", "r.json"]
    assert main(argv) == 0
    doc = load_results(d / "r.json")
    assert doc["config"]["batch_size"] == "auto" and doc["config"]["amp"] == amp and doc["config"]["stack_eps"] is False
    assert doc["config"]["channels_last"] == recorded
    assert {(r["attack"], r["eps_255"]) for r in doc["records"]} == {("none", 0), ("fgsm", 4), ("fgsm", 8), ("ifgsm", 4), ("ifgsm", 8)}
    assert all(r["n"] == 360 for r in doc["records"])


@pytest.mark.parametrize("argv,needle", [(["--batch-size", "0"], "auto"), (["--amp", "fp8"], "amp")])
def test_bad_flags_are_one_line_exit_2(argv, needle, ckpts, capsys):
    with pytest.raises(SystemExit) as e:
        main(["attack", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_strong_suite_dry_run_counts_every_attack_and_probe(ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    argv = ["attack", "--targets", paths["erm"], "--surrogate", paths["sur"], "--eps", "4,8", "--suite", "strong", "--dry-run",
            "--pgd-iters", "7", "--pgd-restarts", "3", "--apgd-iters", "11", "--square-queries", "50"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PGD 7 steps + 1 check × 3 restart(s), at most, eps 4,8/255 stacked" in out
    assert "APGD-CE 11 iterations" in out and "APGD-DLR 11 iterations" in out and "Square: start + 50 queries" in out
    assert "check unbounded: PGD 7 steps + 1 check × 3 restart(s), at most, eps 128/255 stacked" in out
    assert "check converged: PGD 14 steps + 1 check × 6 restart(s), at most, eps 4,8/255 stacked" in out
    with pytest.raises(SystemExit):  # checks off: no probe passes
        main([*argv, "--no-checks", "--pgd-iters", "0"])
    assert main([*argv, "--no-checks"]) == 0
    assert "check unbounded" not in capsys.readouterr().out


def test_strong_suite_prints_checks_and_verdicts_and_saves_them(ckpts, capsys, monkeypatch):
    d, paths = ckpts
    monkeypatch.chdir(d)
    argv = ["attack", "--targets", paths["erm"], paths["mix"], "--surrogate", paths["sur"], "--eps", "16", "--suite", "strong",
            "--pgd-iters", "5", "--pgd-restarts", "2", "--apgd-iters", "10", "--square-queries", "50", "--out", "s.json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for needle in ("| PGD |", "APGD-CE", "APGD-DLR", "Square", "Worst case", "## Soundness checks", "docs/protocol.md#check-unbounded", "## Verdicts"):
        assert needle in out, needle
    doc = load_results(d / "s.json")
    assert {r["attack"] for r in doc["records"]} == {"none", "fgsm", "ifgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "worst-case"}
    assert {p["probe"] for p in doc["probes"]} == {"unbounded", "converged", "gradients", "model"}
    assert {c["check"] for c in doc["checks"]} >= {"iterative", "transfer", "gradient-free", "unbounded", "converged", "gradients"}
    assert doc["config"]["pgd_restarts"] == 2 and doc["config"]["seed"] == 0
