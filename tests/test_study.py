"""`robustmix study` on the committed tiny digits spec: the report folder, a rerun that trains
nothing and changes no number, an interrupted attack stage that continues, the spec language
shared with the gate, the surrogate's black-box examples crafted once per suite (and reused after an
interruption only from the same surrogate), and the report opened in a real (headless) browser."""

from __future__ import annotations

import dataclasses
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
from robustmix.study.attacking import same_setup, setup_of
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
    # a committed study names its image folder without this machine's path: it matches any folder, no other data set
    folder = dataclasses.replace(c, dataset="imagefolder:/data/cifar10")
    for named in ("imagefolder:$DATA", "imagefolder:DATA", "imagefolder:/data/cifar10"):
        assert config_differs(dict(saved, dataset=named), folder) == []
    assert config_differs(dict(saved, dataset="imagefolder:/elsewhere/cifar10"), folder) == ["dataset"]
    assert config_differs(dict(saved, dataset="imagefolder:$DATA"), c) == ["dataset"]  # digits is not an image folder
    setup = setup_of(spec, "paper")
    assert same_setup(dict(setup, dataset="imagefolder:$DATA"), dict(setup, dataset="imagefolder:/data/cifar10"))
    assert not same_setup(dict(setup, dataset="imagefolder:$DATA"), setup)


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


# What a page may not print: a path of the machine that wrote it (Linux, macOS, Windows) or a file: URL.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:home|work|tmp|root|Users|mnt|var|opt|srv|private)/|[A-Za-z]:\\\\|file:/")

# JavaScript run in the page: every element with text of its own that sticks out of the viewport (with
# every fold open), unless it sits in a box that scrolls (a wide table), and every such box that does.
OVERFLOW = """
document.querySelectorAll('details').forEach(d => d.open = true);
const W = document.documentElement.clientWidth, bad = [];
for (const el of document.querySelectorAll('body *')) {
  const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  const r = el.getBoundingClientRect();
  if (own && r.width && !el.closest('.scroll') && el.id !== 'tip' && (r.right > W + 1 || r.left < -1))
    bad.push(el.tagName + ': ' + el.textContent.trim().slice(0, 60));
}
document.querySelectorAll('.scroll, figure, pre, nav').forEach(el => {
  if (el.getBoundingClientRect().right > W + 1) bad.push('box ' + el.tagName + '.' + el.className); });
return [W, document.documentElement.scrollWidth, bad];
"""


def number(text: str) -> float:
    return float(text.replace("−", "-"))


def test_report_in_a_real_browser(study, tmp_path):
    """report.html opened as a reader would, copied alone into an empty folder: the verdict panel says
    what claims.csv says, every link and image resolves, no machine path, the figures' text is readable
    at the size they are shown, tables sort, folds open, per-seed values on hover, and at phone width
    (390 px) no text runs off the screen."""
    import base64
    from io import BytesIO

    from PIL import Image
    from selenium.webdriver.common.by import By

    alone = tmp_path / "alone"
    alone.mkdir()
    page = alone / "report.html"
    shutil.copy(study / "report.html", page)
    text = page.read_text(encoding="utf-8")
    assert not MACHINE_PATH.search(text) and str(study) not in text and str(Path(__file__).parents[1]) not in text
    assert "<link" not in text and "src=\"http" not in text and "<script src" not in text  # nothing fetched: it opens offline
    claims = pd.read_csv(study / "data" / "claims.csv", keep_default_na=False)
    drv = browser()
    try:
        drv.get(page.as_uri())
        js = drv.execute_script

        # every image loaded, and its smallest text at least 9 px as shown (its natural size × the displayed scale)
        imgs = js("return Array.from(document.images).map(i => [i.complete && i.naturalWidth, i.getBoundingClientRect().width, "
                  "i.dataset.textPx])")
        assert len(imgs) == 5 and all(natural > 0 for natural, _, _ in imgs), imgs
        for natural, shown, text_px in imgs:
            assert text_px and float(text_px) * shown / natural >= 9, (natural, shown, text_px)
        # every link resolves with the page alone: an element of the page, an embedded file (data:), or the web
        hrefs = js("return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
        missing = js("return Array.from(document.querySelectorAll('a[href^=\"#\"]')).map(a => a.getAttribute('href').slice(1))"
                     ".filter(id => !document.getElementById(decodeURIComponent(id)))")
        assert hrefs and not missing, missing
        assert all(h.startswith(("#", "data:", "https://")) for h in hrefs), [h[:80] for h in hrefs if not h.startswith(("#", "data:", "https://"))]
        csv = drv.find_element(By.CSS_SELECTOR, 'a[download="claims.csv"]').get_attribute("href")
        assert base64.b64decode(csv.split(",", 1)[1]).decode() == (study / "data" / "claims.csv").read_text(encoding="utf-8")
        assert js("return document.getElementById('note-c1').textContent").startswith("C1.")  # the claim's text travels with it

        # the verdict panel: the tally and every row as claims.csv has them (verdict, difference, interval, p after Holm)
        chips = js("return Array.from(document.querySelectorAll('#verdicts .chip')).map(c => c.textContent)")
        counts = claims.verdict.value_counts()
        assert all(int(c.split(" ", 1)[0]) == counts.get(c.split(" ", 1)[1], 0) for c in chips) and sum(int(c.split()[0]) for c in chips) == len(claims)
        rows = js("return Array.from(document.querySelectorAll('#verdicts li')).map(li => [li.querySelector('.cid').textContent, "
                  "li.querySelector('.badge').textContent, li.querySelector('.est').textContent])")
        assert len(rows) == len(claims)
        for (claim, verdict, est), c in zip(rows, claims.itertuples()):
            assert (claim, verdict) == (c.claim, c.verdict)
            if c.difference == "":
                assert est == "–"
                continue
            m = re.match(r"([+\-−][\d.]+) (\S+) \[([+\-−][\d.]+), ([+\-−][\d.]+)\]", est)
            tol = 0.05 if c.unit == "pp" else 0.005 * max(1, abs(float(c.difference)))
            assert m and m.group(2) == c.unit, est
            assert all(abs(number(m.group(i)) - float(v)) <= tol for i, v in ((1, c.difference), (3, c.lo), (4, c.hi))), (est, c)
            if c.p_holm != "":
                assert f"Holm {float(c.p_holm):.2g}" in est, (est, c.p_holm)

        # a table sorts by a click on its header: Table 3's FGSM column up, then down
        table = drv.find_element(By.XPATH, "//details[starts-with(@id, 'sec-table-3')]//table")
        fgsm = table.find_element(By.XPATH, ".//th[normalize-space()='FGSM']")
        column = [th.text for th in table.find_elements(By.TAG_NAME, "th")].index("FGSM")
        values = lambda: [number(r.find_elements(By.TAG_NAME, "td")[column].text.split()[0])  # noqa: E731
                          for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        js("arguments[0].scrollIntoView()", fgsm)
        fgsm.click()
        assert values() == sorted(values()) and len(set(values())) > 1
        fgsm.click()
        assert values() == sorted(values(), reverse=True)
        # per-seed values on hover: a pooled cell's note holds the seeds' numbers of data/table3-per-seed.csv
        per_seed = pd.read_csv(study / "data" / "table3-per-seed.csv")
        cell = table.find_element(By.XPATH, ".//tr[td[3][normalize-space()='ERM'] and td[1]='white-box' and td[2]='Top-1']"
                                            f"/td[{column + 1}]")
        want = per_seed[(per_seed.Setting == "white-box") & (per_seed.Metric == "Top-1") & per_seed.Method.str.startswith("ERM s")].FGSM
        assert cell.get_attribute("title") == "per seed (0, 1): " + ", ".join(f"{v:.2f}" for v in want)
        # a folded section opens: the per-seed table, and the carried protocol notes through a claim's link
        fold = drv.find_element(By.XPATH, "//details[@class='fold'][summary[starts-with(normalize-space(), 'Per seed')]]")
        assert fold.get_attribute("open") is None and not fold.find_element(By.TAG_NAME, "table").is_displayed()
        fold.find_element(By.TAG_NAME, "summary").click()
        assert fold.get_attribute("open") is not None and fold.find_element(By.TAG_NAME, "table").is_displayed()
        section = drv.find_element(By.ID, "sec-uncertainty")
        section.find_element(By.TAG_NAME, "summary").click()
        assert not section.find_element(By.TAG_NAME, "p").is_displayed()  # a section folds away, too
        assert not drv.find_element(By.ID, "note-c1").is_displayed()
        drv.find_element(By.CSS_SELECTOR, "#verdicts a[href='#note-c1']").click()
        assert drv.find_element(By.ID, "note-c1").is_displayed()
        shot = Image.open(BytesIO(drv.get_screenshot_as_png())).convert("RGB")
        assert shot.size[0] > 600 and len(shot.getcolors(maxcolors=1 << 20)) > 20, "the screenshot is blank"

        # a phone: 390 px wide, nothing runs off the screen (wide tables scroll in their own box)
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
        drv.get(page.as_uri())
        width, scroll_width, bad = js(OVERFLOW)
        assert width == 390 and scroll_width <= 390 and not bad, bad
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
