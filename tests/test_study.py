"""`robustmix study` on the committed tiny digits spec: the report folder, a rerun that trains
nothing and changes no number, an interrupted attack stage that continues, the spec language
shared with the gate, the surrogate's black-box examples crafted once per suite (and reused after an
interruption only from the same surrogate), and the report opened in a real (headless) browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustmix.study import attacking as study_run
from robustmix.gate.spec import parse_spec
from robustmix.cli import main
from robustmix.runtime.errors import RobustmixError
from robustmix.evaluation.evaluator import evaluate
from robustmix.study import load_study, parse_study, status_of
from robustmix.study.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from robustmix.soundness.verdicts import judge_no_improvement, judge_sign
from robustmix.study.training import config_differs, models_of
from robustmix.evaluation.transfer import Transfer, craft_transfer, load_transfer, save_transfer, transfer_meta

from study_runs import CIFAR, DIGITS, run_study, snapshot

CLAIMS = [f"C{i}" for i in range(1, 13)]


@pytest.fixture()
def study(digits_study) -> Path:
    """The digits study of the session (tests/conftest.py): a test that changes it restores it."""
    return digits_study


def test_report_folder(study):
    for name in ("README.md", "report.html", "study.json"):
        assert (study / name).is_file(), name
    figures = {p.name for p in (study / "figures").glob("*.png")}
    # the strong suite measured one eps: a dot plot, no two-point curve
    assert figures == {"robustness-paper.png", "strong-suite.png", "figure2.png", "calibration.png", "training-curves.png"}
    for name in ("table3.csv", "table3-per-seed.csv", "strong.csv", "claims.csv", "checks.csv", "models.csv", "calibration.csv",
                 "figure2.csv", "training-curves.csv"):
        assert (study / "data" / name).stat().st_size > 0, name
    slots = {m.slot for m in models_of(load_study(DIGITS), study)}
    assert {p.name for p in (study / "models").iterdir()} == slots == {"surrogate-s100", "erm-s0", "erm-s1", "mixup-s0", "mixup-s1", "cutmix-s0"}
    for suite in ("paper", "strong"):
        assert {p.stem for p in (study / "results").glob(f"{suite}-*.json")} == {f"{suite}-{s}" for s in slots if s != "surrogate-s100"}
    # the surrogate's examples: crafted for the paper suite (the strong suite is white-box only), removed once it is complete
    assert json.loads((study / "results" / "transfer-paper.json").read_text())["seconds"] > 0
    assert not list((study / "results").glob("*.safetensors")) and not (study / "results" / "transfer-strong.json").exists()
    doc = json.loads((study / "study.json").read_text())
    assert doc["format"] == "robustmix-study/1" and doc["processor"] and doc["device"] == "cpu"
    assert set(doc["timing"]["compute"]["train_seconds"]) == slots
    # the compute is told by where it ran: here one processor, its share the whole total
    by_place = doc["timing"]["compute"]["by_place"]
    assert list(by_place) == [f"{doc['processor'].split(',')[0]} (cpu)"]
    assert abs(sum(by_place.values()) - doc["timing"]["total_compute_seconds"]) < 0.01
    assert all(json.loads((study / "results" / f"paper-{s}.json").read_text())["config"]["processor"] for s in slots - {"surrogate-s100"})
    assert [c["claim"] for c in doc["numbers"]["claims"]][:1] == ["C1"]
    assert {c["claim"] for c in doc["numbers"]["claims"]} == set(CLAIMS)
    readme = (study / "README.md").read_text()
    for heading in ("Table 3 at eps 32/255", "Strong suite and worst case", "Robustness curves", "Figure 2 (a) and (b)",
                    "Calibration", "Training curves", "Soundness checks", "Claims C1–C12", "Uncertainty"):
        assert f"## {heading}" in readme, heading
    assert "docs/protocol.md#c12" in readme and "covers test-set noise only" in readme  # cutmix has one seed
    assert "each model trained at 1 torch thread(s)" in readme  # the fixture trains at one thread; the checkpoints record it
    html = (study / "report.html").read_text()
    assert "src=\"http" not in html and "<link" not in html and html.count("data:image/png;base64,") == len(figures)


def test_rerun_trains_nothing_and_changes_no_number(study, capsys):
    before = snapshot(study)
    numbers = json.loads((study / "study.json").read_text())["numbers"]
    capsys.readouterr()
    assert run_study(DIGITS, "--out", study) == 0
    err = capsys.readouterr().err
    assert not re.search(r"(?m)^training ", err) and err.count("reusing") == 6 + 10, err
    assert snapshot(study) == before  # byte for byte: checkpoints and results untouched
    again = json.loads((study / "study.json").read_text())["numbers"]
    assert json.dumps(again, sort_keys=True) == json.dumps(numbers, sort_keys=True)


def test_parallel_training_gives_the_sequential_weights(study, tmp_path, capfd):
    """--jobs 2 trains the same checkpoints as one process at the workers' thread count (1 here): same
    weights byte for byte, the thread count recorded, each model's log.csv written, and a rerun reuses them."""
    out = tmp_path / "parallel"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # shared out between 2 jobs: 1 thread each, as the fixture trained
    try:
        assert main(["study", str(DIGITS), "--out", str(out), "--stage", "train", "--jobs", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capfd.readouterr().err  # capfd: the workers are processes of their own, writing to fd 2
    assert "in 2 parallel processes at 1 torch thread(s) each" in err and "surrogate-s100: epoch 4/4" in err
    slots = sorted(p.name for p in (study / "models").iterdir())
    assert sorted(p.name for p in (out / "models").iterdir()) == slots and len(slots) == 6
    for slot in slots:
        mine, theirs = out / "models" / slot, study / "models" / slot
        assert (mine / "model.safetensors").read_bytes() == (theirs / "model.safetensors").read_bytes(), slot
        assert json.loads((mine / "meta.json").read_text())["torch_threads"] == 1
        assert len((mine / "log.csv").read_text().splitlines()) == 1 + 4
    assert main(["study", str(DIGITS), "--out", str(out), "--stage", "train", "--jobs", "2"]) == 0
    assert capfd.readouterr().err.count("reusing ") == 6


def test_interrupted_attack_continues_with_the_same_records(study, capsys):
    victim = study / "results" / "strong-mixup-s1.json"
    records = json.loads(victim.read_text())["records"]
    victim.unlink()  # as if the study had been stopped before this model's strong suite
    capsys.readouterr()
    assert run_study(DIGITS, "--out", study, "--stage", "attack") == 0
    err = capsys.readouterr().err
    assert "strong suite on mixup-s1" in err and err.count("reusing") == 9
    assert json.loads(victim.read_text())["records"] == records


def records_of(study: Path, names: list[str]) -> dict[str, list]:
    return {n: json.loads((study / "results" / n).read_text())["records"] for n in names}


def counted(monkeypatch, crafted: list, stop_at: int | None = None) -> None:
    """Count the study's craft_transfer calls; with stop_at, interrupt (Ctrl-C) its stop_at-th evaluate call."""
    monkeypatch.setattr(study_run, "craft_transfer", lambda *a, **k: crafted.append(a[0].name) or craft_transfer(*a, **k))
    calls = []

    def stopping(*a, **k):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return evaluate(*a, **k)

    monkeypatch.setattr(study_run, "evaluate", stopping)


def test_surrogate_examples_are_crafted_once_per_suite(study, monkeypatch):
    victims = ["paper-erm-s0.json", "paper-mixup-s1.json", "paper-cutmix-s0.json", "strong-erm-s1.json"]
    before = records_of(study, victims)
    for v in victims:
        (study / "results" / v).unlink()
    crafted: list[str] = []
    counted(monkeypatch, crafted)
    assert run_study(DIGITS, "--out", study, "--stage", "attack") == 0
    assert crafted == ["surrogate-s100"]  # once for the paper suite's three models; the strong suite is white-box only
    assert records_of(study, victims) == before
    assert not study_run.transfer_path(study, "paper").exists()  # the suite is complete


def interrupt_paper_suite(study: Path, monkeypatch, victims: list[str], crafted: list) -> None:
    """Delete two paper results files and stop the attack stage in the second one's evaluate call."""
    for v in victims:
        (study / "results" / v).unlink()
    counted(monkeypatch, crafted, stop_at=2)
    assert run_study(DIGITS, "--out", study, "--stage", "attack") == 130
    assert (study / "results" / victims[0]).is_file() and not (study / "results" / victims[1]).exists()
    assert study_run.transfer_path(study, "paper").is_file()
    counted(monkeypatch, crafted)


def test_interrupted_suite_reuses_the_stored_examples(study, monkeypatch, capsys):
    victims = ["paper-erm-s1.json", "paper-mixup-s0.json"]
    before = records_of(study, victims)
    crafted: list[str] = []
    interrupt_paper_suite(study, monkeypatch, victims, crafted)
    capsys.readouterr()
    assert run_study(DIGITS, "--out", study, "--stage", "attack") == 0
    assert crafted == ["surrogate-s100"] and "reusing " + str(study_run.transfer_path(study, "paper")) in capsys.readouterr().err
    assert records_of(study, victims) == before


def test_stored_examples_of_another_surrogate_are_not_reused(study, monkeypatch):
    victims = ["paper-erm-s1.json", "paper-mixup-s0.json"]
    before = records_of(study, victims)
    crafted: list[str] = []
    interrupt_paper_suite(study, monkeypatch, victims, crafted)
    path = study_run.transfer_path(study, "paper")
    t, meta = load_transfer(path), transfer_meta(path)
    # the same setup and examples, but other weights (and examples that would change the records if used)
    other = Transfer(t.surrogate, "0" * 64, t.crafting, t.inputs_sha256, {k: torch.zeros_like(v) for k, v in t.examples.items()})
    save_transfer(path, other, {k: meta[k] for k in ("setup", "device", "seconds")})
    assert run_study(DIGITS, "--out", study, "--stage", "attack") == 0
    assert crafted == ["surrogate-s100"] * 2  # crafted again
    assert records_of(study, victims) == before


def test_changed_config_is_refused_and_dry_run_says_so(study, tmp_path, capsys):
    text = re.sub(r"(?m)^epochs = \d+", "epochs = 99", DIGITS.read_text())
    assert "epochs = 99" in text
    spec = parse_study(text, base=DIGITS.parent)
    with pytest.raises(RobustmixError, match="differs in epochs.*--retrain"):
        status_of(models_of(spec, study)[1])
    assert status_of(models_of(spec, study)[1], retrain=True) == "retrain"
    (tmp_path / "s.toml").write_text(text)
    assert main(["study", str(tmp_path / "s.toml"), "--out", str(study), "--dry-run"]) == 0
    assert "REFUSED" in capsys.readouterr().out
    assert run_study(tmp_path / "s.toml", "--out", study, "--stage", "train") == 2  # one line, nothing overwritten


def test_config_matching_rules():
    spec = load_study(DIGITS)
    c = spec.bench.targets[0].configs[0]
    saved = c.to_dict()
    assert config_differs(dict(saved, device="cuda"), c) == []
    assert config_differs(dict(saved, alpha=1.0), c) == []  # ERM ignores alpha
    assert config_differs({k: v for k, v in saved.items() if k != "label_smoothing"}, c) == []  # older meta: default
    assert config_differs(dict(saved, label_smoothing=0.1), c) == ["label_smoothing"]
    assert config_differs(dict(saved, epochs=9, lr=1.0), c) == ["epochs", "lr"]


def test_recipe_gives_the_config_robustmix_train_records(tmp_path):
    """A checkpoint trained by hand as benchmarks/cifar10_cpu.sh does (`robustmix train --recipe fast-cifar-3x
    --method M --augment altflip-translate --seed 0`, no --role) is reused by the study."""
    from robustmix.cli import build_parser
    from robustmix.cli.train import config_from_args

    spec = load_study(CIFAR, dataset="imagefolder:/data/c10")
    for target, method in (("erm", "erm"), ("mixup", "mixup")):
        mine = next(t for t in spec.bench.targets if t.name == target).configs[1]
        args = build_parser().parse_args(["train", "--recipe", "fast-cifar-3x", "--method", method, "--seed", str(mine.seed),
                                          "--dataset", "imagefolder:/data/c10", "--augment", "altflip-translate"])
        by_hand, _ = config_from_args(args)
        assert config_differs(by_hand.to_dict(), mine) == []
        assert mine.model == "whiten_cnn" and mine.recipe == "fast-cifar-3x" and mine.epochs == 30 and mine.augment == "altflip-translate"


def test_cifar_spec_dry_run(capsys):
    assert main(["study", str(CIFAR), "--out", "/nonexistent/study", "--dataset", "imagefolder:/data/c10", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for slot in ("surrogate-s100", "erm-s0", "erm-s1", "erm-s2", "mixup-s0", "mixup-s1", "mixup-s2", "cutmix-s0",
                 "manifold-mixup-s0", "puzzle-mix-half-s0"):
        assert f"/models/{slot} " in out, slot
    assert re.search(r"/models/puzzle-mix-half-s0 .*, 15 epochs, .*; scored white-box only", out)  # the "half" variant
    assert "paper suite: attacks fgsm, ifgsm; eps 1, 2, 4, 8/255" in out and "all test examples" not in out.split("strong suite")[1]
    assert "1000 test examples (stratified" in out
    # the surrogate's crafting is counted once, for the paper suite (the strong suite is white-box only)
    assert out.count("the surrogate's black-box examples, crafted once per suite and scored by 8 of the 9 models") == 1
    assert not Path("/nonexistent/study").exists()


def test_gate_refuses_study_sections_and_shares_the_rest():
    text = DIGITS.read_text()
    with pytest.raises(RobustmixError, match=r"\[strong\] is a section of robustmix study.*robustmix study"):
        parse_spec(text)
    stripped = text.split("\n[strong]")[0]
    assert parse_spec(stripped).hash == parse_study(text).bench.hash  # one language: the same models and paper suite
    with pytest.raises(RobustmixError, match=r"\[claims\]: margin"):
        parse_study(text.replace("margin = 2.0", "margin = -1"))
    with pytest.raises(RobustmixError, match=r"\[strong\]: unknown key"):
        parse_study(text.replace("seed = 0\npgd_iters", "sede = 0\npgd_iters"))
    with pytest.raises(RobustmixError, match="eps 4 is not among"):
        parse_study(text.replace("eps = 32\nmargin", "eps = 4\nmargin"))


def test_verdict_rule():
    """Directional claims: the adjusted p decides, the estimate gives the direction; "no improvement" claims
    are one-sided (a method worse than the reference has no advantage)."""
    assert judge_sign(-3.0, 0.01) == REPRODUCED and judge_sign(+3.0, 0.01) == NOT_REPRODUCED and judge_sign(-3.0, 0.2) == INCONCLUSIVE
    assert judge_sign(+3.0, 0.01, expected=+1) == REPRODUCED
    assert judge_no_improvement(+4.0, 0.01, 2) == REPRODUCED and judge_no_improvement(-1.0, 0.01, 2) == REPRODUCED
    assert judge_no_improvement(-4.0, 0.01, 2) == NOT_REPRODUCED and judge_no_improvement(-1.0, 0.3, 2) == INCONCLUSIVE


# --- the browser test ------------------------------------------------------------------------------

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def browser():
    """Headless Chromium through selenium and Debian's chromedriver; in CI (CI=true) a missing browser fails."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("selenium is missing: pip install -e '.[dev]'")
        pytest.skip("selenium not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or str(CHROMIUM)
    driver = shutil.which("chromedriver") or str(DRIVER)
    if not (Path(chromium).is_file() and Path(driver).is_file()):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium/chromedriver missing: apt-get install -y chromium chromium-driver (.ci/run does)")
        pytest.skip("chromium and chromedriver not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,2000"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_in_a_real_browser(study):
    from io import BytesIO

    from PIL import Image

    doc = json.loads((study / "study.json").read_text())
    drv = browser()
    try:
        drv.get((study / "report.html").resolve().as_uri())
        widths = drv.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == 5 and all(w > 0 for w in widths), widths
        rows = drv.execute_script("return Array.from(document.querySelectorAll('table')).filter(t => !t.closest('#notes'))"
                                 ".map(t => t.tBodies[0].rows.length)")
        # claims, models, Table 3 (2 settings × top-1/top-5 × 3 methods), per seed (× 5 checkpoints), strong (top-1 × 3), ECE,
        # the checks' grid (a row per checkpoint), the checks that ran
        checks = sum(c["status"] != "skip" for c in doc["numbers"]["checks"])
        assert rows == [len(doc["numbers"]["claims"]), 4, 12, 20, 3, 3, 5, checks], rows
        claims = drv.execute_script(
            "const t = Array.from(document.querySelectorAll('table')).find(t => t.tHead.textContent.includes('Verdict'));"
            "return Array.from(t.tBodies[0].rows).map(r => r.cells[0].textContent)")
        assert sorted(set(claims), key=lambda c: int(c[1:])) == CLAIMS and len(claims) == len(doc["numbers"]["claims"])
        shot = Image.open(BytesIO(drv.get_screenshot_as_png())).convert("RGB")
        colours = shot.getcolors(maxcolors=1 << 20)
        assert shot.size[0] > 600 and len(colours) > 20, "the screenshot is blank"
    finally:
        drv.quit()


def test_compute_is_told_by_where_it_ran():
    """A study that spans machines (some models trained and attacked on a GPU, one on a CPU, a rebuild
    logged before the device field) sums each part where it ran; a results file older than the processor
    field is named by its device."""
    from robustmix.study.report import compute_places
    from robustmix.study.attacking import place
    metas = {"erm-s0": {"processor": "NVIDIA H200", "device": "cuda", "train_seconds": 40.0},
             "mixup-s0": {"processor": "NVIDIA H200", "device": "cuda", "train_seconds": 43.0},
             "puzzle-mix-s0": {"processor": "AMD EPYC", "device": "cpu", "train_seconds": 6000.0}}
    attacks = [(30.0, place({"device": "cuda"})), (20.0, place({"device": "cuda", "processor": "NVIDIA H200"})),
               (900.0, place({"device": "cpu", "processor": "AMD EPYC"})), (0.0, "")]
    rebuilds = [{"seconds": 100.0, "processor": "AMD EPYC"}]
    assert compute_places(metas, attacks, rebuilds) == {"NVIDIA H200 (cuda)": 103.0, "AMD EPYC (cpu)": 6900.0, "cuda (processor not recorded)": 30.0,
                                                        "AMD EPYC": 100.0}


def test_a_target_limited_to_white_box_needs_no_surrogate(study, tmp_path, capsys):
    """[[targets]] settings = ["white-box"]: the target is scored white-box only, so a study whose
    surrogate weights are gone (a lost machine) still attacks it, without rebuilding the surrogate, and
    the other targets' black-box results stay as they were; the gate refuses the study-only key."""
    text = DIGITS.read_text().replace('name = "cutmix"\n', 'name = "cutmix"\nsettings = ["white-box"]\n')
    assert 'name = "cutmix"\nsettings = ["white-box"]\nmethod' in text
    (tmp_path / "s.toml").write_text(text)
    spec = load_study(tmp_path / "s.toml")
    assert spec.settings_of("cutmix") == ("white-box",) and spec.settings_of("erm") == ()
    assert study_run.suite_config(spec, "paper", "cutmix")[0].settings == ("white-box",)
    assert study_run.suite_config(spec, "paper", "erm")[0].settings == ("white-box", "black-box")
    out = tmp_path / "study"
    shutil.copytree(study, out)
    (out / "models" / "surrogate-s100" / "model.safetensors").unlink()
    others = [p.name for p in (out / "results").glob("paper-*.json") if "cutmix" not in p.name]
    before = records_of(out, others)
    capsys.readouterr()
    assert run_study(tmp_path / "s.toml", "--out", out) == 0
    err = capsys.readouterr().err
    assert "rebuild" not in err and "crafting" not in err, err
    assert not (out / "models" / "surrogate-s100" / "model.safetensors").exists()
    records = records_of(out, ["paper-cutmix-s0.json"])["paper-cutmix-s0.json"]
    assert {r["setting"] for r in records} == {"clean", "white-box"}
    assert records_of(out, others) == before
    readme = (out / "README.md").read_text()
    assert "cutmix: scored white-box only" in readme
    table3 = pd.read_csv(out / "data" / "table3.csv")
    black = table3[table3.Setting == "black-box"].Method
    assert len(black) and not black.str.contains("cutmix").any() and table3.Method.str.contains("cutmix").any()
    with pytest.raises(RobustmixError, match="settings, a robustmix study key"):
        parse_spec(text.split("\n[strong]")[0])
    with pytest.raises(RobustmixError, match="not a non-empty list of distinct settings"):
        parse_study(text.replace('settings = ["white-box"]\nmethod', 'settings = ["grey-box"]\nmethod'), base=DIGITS.parent)


def test_puzzle_mix_half_is_named_in_its_label_and_in_c11():
    """The CIFAR-10 spec's Puzzle Mix trains 15 epochs against the baselines' 30 (the paper's "half"
    variant): its row label and its C11 row say so, and C11 is judged on its white-box FGSM errors."""
    from robustmix.study.claims import Study, judge_claims
    from robustmix.study.tables import method_labels

    spec = load_study(CIFAR)
    rng = torch.Generator().manual_seed(0)
    records = []
    for name, slots in {"erm": ["erm-s0", "erm-s1", "erm-s2"], "puzzle-mix-half": ["puzzle-mix-half-s0"]}.items():
        for slot in slots:
            for setting, attack, eps in (("clean", "none", 0.0), ("white-box", "fgsm", 4.0)):
                bits = (torch.rand(400, generator=rng) < (0.9 if setting == "clean" else 0.35)).tolist()
                records.append({"target": slot, "setting": setting, "attack": attack, "eps_255": eps,
                                "top1_correct": bits, "top5_correct": bits})
    study = Study(spec, records, [], [], None, 10)
    assert method_labels(study)["puzzle-mix-half"] == "puzzle-mix (α=1), 15 epochs" and method_labels(study)["erm"] == "ERM"
    c11 = [c for c in judge_claims(study) if c.claim == "C11"]
    assert c11[0].verdict == "inconclusive" and c11[0].reason.startswith("1 seed") and c11[0].difference is not None
    assert "15 epochs against ERM's 30" in c11[0].note
    assert c11[1].verdict == "not tested" and "adv" in c11[1].reason
