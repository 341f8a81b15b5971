"""`robustmix report`: one results file, or several of the same evaluation on different targets
(merged), -> the paper's Table 3 with 95% intervals and paired tests (Markdown on stdout; Markdown,
CSV, LaTeX, JSON files) and the robustness-curve figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.comparisons import INTERVALS
from ..reporting.figures import robustness_figure, save_png
from ..reporting.tables import (
    REPORT_FORMATS,
    evidence,
    render_report_markdown,
    report_csv,
    report_json,
    report_latex,
)
from ..runtime import files
from ..runtime.errors import RobustmixError
from ..store.results import csv_text, load_results, merge_results
from .common import name_list, nonneg_int, positive_int, say

HELP = ("print a results file (or several of the same evaluation on different targets, merged) as the paper's Table 3 "
        "with 95% intervals and paired tests; write tables and figures")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, nargs="+",
                   help="results JSON written by 'robustmix attack' or 'robustmix quickstart'; several files of the same "
                   "evaluation (same flags, examples and surrogate) on different targets are merged into one table, "
                   "with paired tests across files (then give --out-dir)")
    p.add_argument(
        "--format",
        type=name_list(REPORT_FORMATS),
        default=("markdown", "csv"),
        help="comma-separated file formats to write: markdown, csv, latex, json (default markdown,csv); "
        "the Markdown is always printed",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="folder for table3.md/.csv/.tex, paired.csv, report.json and robustness-*.png "
        "(default: beside RESULTS, named RESULTS.table3.csv etc.; required with several results files)",
    )
    p.add_argument("--csv", type=Path, default=None, help="where to write the table as CSV (overrides the default name)")
    p.add_argument("--figures", action="store_true", help="also write robustness curves (error vs eps, 0–255 scale) as PNG")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the bootstrap over test examples (default 0)")
    p.add_argument(
        "--interval",
        choices=INTERVALS,
        default="bootstrap",
        help="95%% interval of each error rate: bootstrap over test examples (default) or wilson (better at 0 or 100%% error)",
    )
    p.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples per interval (default 2000)")


def run(args: argparse.Namespace) -> int:
    if len(args.results) > 1 and args.out_dir is None:
        raise RobustmixError("several results files are merged into one report: give --out-dir for its files")
    doc = merge_results([load_results(p) for p in args.results], [str(p) for p in args.results])
    records = doc["records"]
    ev = evidence(records, n_boot=args.n_boot, seed=args.seed, interval=args.interval, probes=doc.get("probes", []))
    text = render_report_markdown(ev, records)
    print(text)

    def target(name: str, ext: str) -> Path:
        if args.out_dir is not None:
            return args.out_dir / f"{name}.{ext}"
        return args.results[0].with_suffix(f".{name}.{ext}")

    written = []
    if "markdown" in args.format:
        written.append(files.write_text(target("table3", "md"), text))
    if "csv" in args.format:
        written.append(files.write_text(args.csv or target("table3", "csv"), csv_text(report_csv(ev))))
        written.append(files.write_text(target("paired", "csv"), csv_text(ev["comparisons"])))
    if "latex" in args.format:
        written.append(files.write_text(target("table3", "tex"), report_latex(ev)))
    if "json" in args.format:
        written.append(files.write_json(target("report", "json"), report_json(ev, doc.get("config"))))
    if args.figures:
        for metric in ("top1", "top5"):
            fig = robustness_figure(ev["intervals"], ev["labels"], metric=metric, band=f"95% {args.interval} CI")
            written.append(save_png(fig, target(f"robustness-{metric}", "png")))
    say("wrote " + ", ".join(str(p) for p in written))
    return 0
