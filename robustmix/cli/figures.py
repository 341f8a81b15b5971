"""`robustmix figures`: the paper's Figure 2 and reliability diagrams (with ECE) for checkpoints;
with --curves, their training curves instead (robustmix.analysis.curves).

Figure 2 uses random pairs of *training* examples (y_i != y_j unless --any-labels), a λ grid
from 0 to 1, the miss rate and the mean per-example L2 norm of the input gradient of the
cross-entropy with the mixed target λ·y_i + (1−λ)·y_j. Calibration uses the test set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..analysis.curves import curves_figure, curves_frame, read_history
from ..evaluation.probes import calibration_frame, figure2_curves
from ..reporting.figures import figure2, reliability_figure, save_png
from ..runtime import files
from ..runtime.devices import resolve_device
from ..store.checkpoint import provenance
from ..store.results import csv_text
from ..store.runs import (
    check_compatible,
    check_distinct,
    checkpoint_name,
    discover,
    load_data_of,
    open_checkpoints,
)
from .common import nonneg_int, positive_int, say

HELP = "draw the paper's Figure 2 (misses and gradient norm between training pairs) and reliability diagrams with ECE; --curves: training curves"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder whose checkpoints (every role) are drawn when --checkpoints is not given (default runs)")
    p.add_argument("--checkpoints", type=Path, nargs="+", default=None, help="checkpoint folders to compare (default: all in --runs)")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "figures", help="where PNGs and their CSV data go (default runs/figures)")
    p.add_argument("--pairs", type=positive_int, default=1000, help="random training pairs for Figure 2 (default 1000)")
    p.add_argument("--lams", type=positive_int, default=21, help="points on the λ grid from 0 to 1 (default 21: steps of 0.05)")
    p.add_argument("--any-labels", action="store_true", help="also draw pairs with y_i == y_j (default: only y_i != y_j, as such pairs can never miss)")
    p.add_argument("--bins", type=positive_int, default=10, help="confidence bins of the reliability diagram (default 10)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed for drawing the pairs (default 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--curves", action="store_true", help="draw only the training curves (train accuracy and test error per epoch, "
                   "from each checkpoint's log) as curves.png and curves.csv; needs no data or model")


def draw_curves(paths: list[Path], out: Path) -> list[Path]:
    check_distinct([checkpoint_name(p) for p in paths], "checkpoints")
    frame = curves_frame({checkpoint_name(p): read_history(p) for p in paths})
    return [save_png(curves_figure(frame), out / "curves.png"), files.write_text(out / "curves.csv", csv_text(frame))]


def run(args: argparse.Namespace) -> int:
    paths = args.checkpoints or discover(args.runs)
    if args.curves:
        say("wrote " + ", ".join(str(p) for p in draw_curves(paths, args.out_dir)))
        return 0
    device = resolve_device(args.device)
    cps = open_checkpoints(paths, device)
    check_compatible(cps)
    data = load_data_of(cps[0].meta)
    models = {c.name: c.model for c in cps}
    lams = np.linspace(0.0, 1.0, args.lams) if args.lams > 1 else np.array([1.0])
    curves = figure2_curves(models, data.x_train, data.y_train, n_pairs=args.pairs, lams=lams, seed=args.seed, distinct_labels=not args.any_labels)
    calib = calibration_frame(models, data.x_test, data.y_test, n_bins=args.bins)
    out = args.out_dir
    written = [
        save_png(figure2(curves), out / "figure2.png"),
        files.write_text(out / "figure2.csv", csv_text(curves)),
        save_png(reliability_figure(calib), out / "calibration.png"),
        files.write_text(out / "calibration.csv", csv_text(calib)),
        files.write_json(
            out / "figures.json",
            {
                "format": "robustmix-figures/1",
                "config": {"pairs": args.pairs, "lams": lams.tolist(), "distinct_labels": not args.any_labels, "bins": args.bins,
                           "seed": args.seed, "pairs_from": "train", "calibration_on": "test", "device": str(device)},
                "checkpoints": {c.name: provenance(c.meta) for c in cps},
                "ece": {name: float(c.ece.iloc[0]) for name, c in calib.groupby("checkpoint", sort=False)},
            },
        ),
    ]
    for name, c in calib.groupby("checkpoint", sort=False):
        say(f"{name}: ECE {c.ece.iloc[0]:.2f}% on {int(c.n.iloc[0])} test examples")
    say("wrote " + ", ".join(str(p) for p in written))
    return 0
