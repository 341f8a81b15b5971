"""The compact attack tables of reports/puzzlemix.md from a `robustmix report --out-dir D` folder.

Reads D/table3.csv and D/paired.csv and prints, as Markdown: top-1 error with its 95% interval per
model (clean, then FGSM and I-FGSM at each eps), and the paired differences of every model against
one reference model (default ERM), with the Holm-adjusted p-value of each.

    robustmix report runs/results/*-eps4-8-iters10.json --out-dir report
    python benchmarks/attack_table.py report
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def cell(err: float, lo: float, hi: float) -> str:
    return f"{err:.1f} [{lo:.1f}, {hi:.1f}]"


def error_table(table: pd.DataFrame, metric: str) -> str:
    rows = table[(table.Metric == metric) & (table.Setting == "white-box")]
    eps = sorted(rows.eps_255.unique())
    head = ["Model", "clean"] + [f"{a} {e:g}" for e in eps for a in ("FGSM", "I-FGSM")]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for method in rows.Method.unique():
        r = rows[rows.Method == method].set_index("eps_255")
        first = r.iloc[0]
        cells = [method, cell(first.Clean, first.Clean_lo, first.Clean_hi)]
        for e in eps:
            cells += [cell(r.loc[e, a], r.loc[e, f"{a}_lo"], r.loc[e, f"{a}_hi"]) for a in ("FGSM", "I-FGSM")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(paired: pd.DataFrame, metric: str, reference: str) -> str:
    rows = paired[(paired.metric == metric) & ((paired.method_a == reference) | (paired.method_b == reference))].copy()
    flip = rows.method_b == reference  # always "model − reference"
    rows["other"] = rows.method_b.where(~flip, rows.method_a)
    rows["d"], rows["l"], rows["h"] = rows["diff"].where(~flip, -rows["diff"]), rows.lo.where(~flip, -rows.hi), rows.hi.where(~flip, -rows.lo)
    rows["col"] = [("clean" if s == "clean" else f"{'FGSM' if a == 'fgsm' else 'I-FGSM'} {e:g}")
                   for s, a, e in zip(rows.setting, rows.attack, rows.eps_255)]
    cols = list(dict.fromkeys(rows.sort_values(["eps_255", "attack"]).col))
    lines = ["| Model − " + reference + " | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for other in rows.other.unique():
        r = rows[rows.other == other].set_index("col")
        cells = [f"{r.loc[c, 'd']:+.1f} [{r.loc[c, 'l']:+.1f}, {r.loc[c, 'h']:+.1f}], p {r.loc[c, 'p_holm']:.2g}" for c in cols]
        lines.append(f"| {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="folder written by robustmix report --out-dir")
    p.add_argument("--metric", default="top1", choices=("top1", "top5"))
    p.add_argument("--reference", default="ERM", help="the model every other is paired against (its row label)")
    args = p.parse_args()
    table = pd.read_csv(args.report / "table3.csv")
    paired = pd.read_csv(args.report / "paired.csv")
    label = "Top-1" if args.metric == "top1" else "Top-5"
    print(error_table(table, label) + "\n\n" + paired_table(paired, args.metric, args.reference))


if __name__ == "__main__":
    main()
