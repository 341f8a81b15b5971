"""Training curves: train accuracy and test error per epoch for each checkpoint, from its training log.

Every checkpoint's `meta.json` carries its per-epoch log (`history`, the rows of `log.csv`). The
curves put ERM and the mixing methods on the same axes: the seeds' figure, where mixup's training
accuracy (measured against each mixed example's dominant label) sits lower and its test accuracy
higher. Checkpoints trained for different lengths are drawn against their own epochs, with the
length in the legend.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..runtime.errors import RobustmixError
from ..store.checkpoint import read_meta

COLUMNS = ("checkpoint", "method", "alpha", "seed", "epochs", "epoch", "train_acc", "test_err", "train_loss", "network_passes")


def read_history(folder: str | Path) -> tuple[dict, list[dict]]:
    """(metadata, per-epoch rows) of a checkpoint folder: `meta["history"]`, else its `log.csv` (the
    weights need not be there)."""
    meta = read_meta(folder, need_weights=False)
    history = meta.get("history")
    if not history and (Path(folder) / "log.csv").is_file():
        history = pd.read_csv(Path(folder) / "log.csv").to_dict("records")
    if not history:
        raise RobustmixError(f"{folder}: no training log (meta.json history or log.csv): retrain it with 'robustmix train'")
    return meta, history


def curves_frame(runs: dict[str, tuple[dict, list[dict]]]) -> pd.DataFrame:
    """One row per checkpoint × epoch (COLUMNS) from {name: (meta, history)}."""
    rows = []
    for name, (meta, history) in runs.items():
        for r in history:
            rows.append({"checkpoint": name, "method": meta.get("method", "?"), "alpha": meta.get("alpha"),
                         "seed": meta.get("seed"), "epochs": len(history), "epoch": int(r["epoch"]),
                         "train_acc": float(r["train_acc"]), "test_err": float(r["test_err"]),
                         "train_loss": float(r.get("train_loss", float("nan"))),
                         "network_passes": r.get("network_passes")})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def curves_figure(frame: pd.DataFrame) -> Figure:
    """Two panels against epoch, one line per checkpoint in each: (a) train accuracy, (b) test error.
    One colour per method, one line style per checkpoint of that method; lengths in the legend."""
    fig = Figure(figsize=(7.6, 3.9), layout="constrained")  # the page width of robustmix.reporting.figures
    ax_acc, ax_err = fig.subplots(1, 2, sharex=True)
    methods = list(dict.fromkeys(frame.method))
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    for name, c in frame.groupby("checkpoint", sort=False):
        method = c.method.iloc[0]
        k = seen[method] = seen.get(method, -1) + 1
        style = dict(color=f"C{methods.index(method)}", ls=styles[k % len(styles)], marker="o" if len(c) < 12 else None, ms=3)
        label = f"{name} ({int(c.epochs.iloc[0])} epochs)"
        ax_acc.plot(c.epoch, c.train_acc, label=label, **style)
        ax_err.plot(c.epoch, c.test_err, label=label, **style)
    ax_acc.set_title("(a) training accuracy\n(mixing methods: against the dominant label)", fontsize=9)
    ax_acc.set_ylabel("train accuracy (%)")
    ax_err.set_title("(b) test error\n(clean, top-1)", fontsize=9)
    ax_err.set_ylabel("test error (%)")
    for ax in (ax_acc, ax_err):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    handles, names = ax_acc.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(3, len(names)), fontsize=8)
    fig.suptitle("Training curves per checkpoint, from its training log", fontsize=11)
    return fig
