"""`robustmix report`: a results file -> the paper's Table 3 layout (Markdown on stdout, CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import files
from ..report import render_markdown, table_csv
from ..results import csv_text, load_results
from .common import say

HELP = "print a results file as the paper's Table 3 (Markdown) and write it as CSV"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="results JSON written by 'robustmix attack' or 'robustmix quickstart'")
    p.add_argument("--csv", type=Path, default=None, help="where to write the table as CSV (default: RESULTS with suffix .table3.csv)")


def run(args: argparse.Namespace) -> int:
    doc = load_results(args.results)
    records = doc["records"]
    print(render_markdown(records))
    out = args.csv or args.results.with_suffix(".table3.csv")
    files.write_text(out, csv_text(table_csv(records)))
    say(f"wrote {out}")
    return 0
