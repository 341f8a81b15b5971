"""Report renderers (Markdown, CSV, LaTeX, JSON), figures and the report/figures CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from robustmix.analysis.comparisons import error_intervals
from robustmix.evaluation.probes import calibration_frame, figure2_curves
from robustmix.store.checkpoint import save_checkpoint
from robustmix.cli import main
from robustmix.analysis.curves import curves_figure
from robustmix.reporting.figures import PAGE_WIDTH, TEXT_PX, dots_figure, figure2, reliability_figure, robustness_figure, save_png
from robustmix.reporting.tables import evidence, render_report_markdown, report_csv, report_json, report_latex
from robustmix.store.results import save_results

from test_analysis import record


def sweep(n=300, seed=0, gap=0.25):
    """Clean + white-box/black-box FGSM/I-FGSM records at eps 2, 8 for ERM and mixup; mixup better."""
    rng = np.random.default_rng(seed)
    recs = []
    for t, method, alpha, shift in (("erm-t", "erm", None, 0.0), ("mix-t", "mixup", 1.0, gap)):
        recs.append(record(t, method, rng.random(n) < 0.95, setting="clean", attack="none", eps_255=0.0, alpha=alpha))
        for setting in ("white-box", "black-box"):
            for attack in ("fgsm", "ifgsm"):
                for e in (2.0, 8.0):
                    p = max(0.05, 0.9 - e / 10 + shift)
                    recs.append(record(t, method, rng.random(n) < p, setting=setting, attack=attack, eps_255=e, alpha=alpha))
    return recs


def png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_markdown_has_intervals_paired_tests_and_a_verdict_only_when_significant():
    recs = sweep()
    text = render_report_markdown(evidence(recs), recs)
    assert "### eps = 2/255" in text and "### eps = 8/255" in text
    assert "| white-box | Top-1 | ERM |" in text and "[" in text
    assert "B − A (points)" in text and "p (McNemar)" in text
    assert "checkpoint mix-t (mixup (α=1)) is more robust than checkpoint erm-t (ERM)" in text
    assert "not about their training methods" in text and "robustmix study" in text
    same = [dict(r, target=f"{r['target']}-copy") for r in recs if r["target"] == "erm-t"] + [r for r in recs if r["target"] == "erm-t"]
    text = render_report_markdown(evidence(same), same)
    assert "is more robust" not in text and "No difference between the checkpoints is significant" in text


def test_csv_latex_json_agree_with_the_intervals():
    recs = sweep()
    ev = evidence(recs)
    csv = report_csv(ev)
    assert list(csv.columns[:4]) == ["eps_255", "Setting", "Metric", "Method"]
    assert {"Clean", "Clean_lo", "FGSM", "FGSM_hi", "I-FGSM"} <= set(csv.columns)
    assert (csv.FGSM_lo <= csv.FGSM).all() and (csv.FGSM <= csv.FGSM_hi).all()
    tex = report_latex(ev)
    assert tex.count("\\begin{tabular}") == 2 and "\\toprule" in tex and "$\\alpha$" in tex
    doc = json.loads(json.dumps(report_json(ev, {"iters": 10})))
    assert len(doc["intervals"]) == 2 * len(recs) and doc["comparisons"][0]["p_value"] <= 1


def test_robustness_calibration_and_figure2_pngs_are_written(tmp_path, trained, trained_mixup, digits):
    recs = sweep()
    ev = evidence(recs)
    assert png_ok(save_png(robustness_figure(ev["intervals"], ev["labels"]), tmp_path / "r.png"))
    models = {"erm": trained[0], "mixup": trained_mixup[0]}
    curves = figure2_curves(models, digits.x_train, digits.y_train, n_pairs=50, lams=np.linspace(0, 1, 5))
    assert png_ok(save_png(figure2(curves), tmp_path / "f2.png"))
    calib = calibration_frame(models, digits.x_test, digits.y_test)
    assert png_ok(save_png(reliability_figure(calib), tmp_path / "cal.png"))
    # made for the page: as wide as its column (shown 1:1, never shrunk), the smallest text 8 pt (13 px at 120 dpi)
    from PIL import Image

    for name in ("r.png", "f2.png", "cal.png"):
        with Image.open(tmp_path / name) as im:
            assert im.width <= PAGE_WIDTH * 120 + 40 and float(im.text[TEXT_PX]) >= 13, (name, im.size, im.text)


def test_one_eps_is_a_dot_plot_with_the_worst_case_last_not_a_two_point_curve(tmp_path):
    recs = [r for r in sweep() if r["eps_255"] in (0.0, 8.0)]
    recs += [dict(r, attack="worst-case") for r in recs if r["attack"] == "ifgsm"]
    iv = evidence(recs)["intervals"]
    fig = robustness_figure(iv)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows == ["Clean", "FGSM", "I-FGSM", "Worst case"], rows
    assert [t.get_fontweight() for t in fig.axes[0].get_yticklabels()][-1] == "bold"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "white-box" and titles[1].startswith("black-box") and len(titles) == 2, titles
    two = robustness_figure(evidence(sweep())["intervals"])  # two eps: curves, one panel per setting × attack
    assert len([ax for ax in two.axes if ax.get_visible()]) == 4 and two.axes[0].get_title() == "white-box FGSM"
    assert [t.get_text() for t in dots_figure(evidence(sweep())["intervals"], eps=2.0).axes[0].get_yticklabels()][:2] == ["Clean", "FGSM"]


def test_report_cli_writes_every_format_and_figures(tmp_path, capsys):
    res = save_results(tmp_path / "res.json", sweep(), config={"iters": 10}, checkpoints={})
    out = tmp_path / "out"
    assert main(["report", str(res), "--format", "markdown,csv,latex,json", "--out-dir", str(out), "--figures"]) == 0
    assert "(mixup (α=1)) is more robust than checkpoint" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert names == {"table3.md", "table3.csv", "paired.csv", "table3.tex", "report.json", "robustness-top1.png", "robustness-top5.png"}
    assert pd.read_csv(out / "paired.csv").p_value.between(0, 1).all()
    assert png_ok(out / "robustness-top1.png")


def test_report_cli_rejects_an_unknown_format(tmp_path, capsys):
    res = save_results(tmp_path / "res.json", sweep(n=20), config={}, checkpoints={})
    with pytest.raises(SystemExit) as e:
        main(["report", str(res), "--format", "pdf"])
    assert e.value.code == 2 and "markdown, csv, latex, json" in capsys.readouterr().err


def test_figures_cli_draws_figure2_and_calibration(tmp_path, trained, trained_mixup):
    for name, (model, meta) in (("erm", trained), ("mix", trained_mixup)):
        save_checkpoint(tmp_path / "runs" / name, model, meta)
    out = tmp_path / "figs"
    assert main(["figures", "--runs", str(tmp_path / "runs"), "--out-dir", str(out), "--pairs", "40", "--lams", "5", "--device", "cpu"]) == 0
    assert png_ok(out / "figure2.png") and png_ok(out / "calibration.png")
    curves = pd.read_csv(out / "figure2.csv")
    assert set(curves.checkpoint) == {"erm", "mix"} and len(curves) == 10
    meta = json.loads((out / "figures.json").read_text())
    assert meta["config"]["pairs"] == 40 and set(meta["ece"]) == {"erm", "mix"}
    assert main(["figures", "--checkpoints", str(tmp_path / "nothing")]) == 2


def test_report_cli_refuses_records_without_per_example_results(tmp_path, capsys):
    recs = [{k: v for k, v in r.items() if k != "top5_correct"} for r in sweep(n=20)]
    res = save_results(tmp_path / "old.json", recs, config={}, checkpoints={})
    assert main(["report", str(res), "--out-dir", str(tmp_path / "out")]) == 2
    assert "no per-example results" in capsys.readouterr().err and not (tmp_path / "out").exists()
