"""Figures as PNG (matplotlib, Agg; no pyplot state): robustness curves, the paper's Figure 2,
reliability diagrams. Each `*_figure` function takes a DataFrame built in `robustmix.analysis.comparisons`
(or `robustmix.reporting.tables.evidence`) or `robustmix.evaluation.probes` and returns a matplotlib Figure;
`save_png` writes it atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

from ..analysis.comparisons import column_label
from ..attacks import CLEAN, RECORD_ATTACKS, SETTINGS
from ..runtime import files


TEXT_PX = "Smallest text (px)"  # a PNG text chunk: the height of the figure's smallest text in its own pixels


def smallest_text_px(fig: Figure, dpi: int) -> float:
    """The font size of the figure's smallest visible, non-empty text, in pixels at `dpi` (what a page
    compares with the size it shows the image at)."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=0.0) * dpi / 72


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG, atomically (never a half-written file), with its smallest text's height
    in pixels as the text chunk TEXT_PX (bbox "tight" crops, it never rescales)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={TEXT_PX: f"{smallest_text_px(fig, dpi):.1f}"})
    return files.write_bytes(path, buf.getvalue())


def robustness_figure(
    intervals: pd.DataFrame, labels: dict[str, str] | None = None, *, metric: str = "top1", band: str = "95% bootstrap CI"
) -> Figure:
    """Error vs eps (0–255 scale) per checkpoint, one panel per setting × attack, with the 95%
    bootstrap band; eps = 0 is the clean error. `intervals` is `analysis.error_intervals(records)`."""
    labels = labels or {}
    iv = intervals[intervals.metric == metric]
    attacks = [a for a in RECORD_ATTACKS if (iv.attack == a).any()]
    settings = [s for s in SETTINGS if (iv.setting == s).any()]
    fig = Figure(figsize=(4.2 * max(1, len(attacks)), 3.4 * max(1, len(settings))), layout="constrained")
    axes = fig.subplots(max(1, len(settings)), max(1, len(attacks)), squeeze=False, sharex=True, sharey=True)
    targets = list(dict.fromkeys(iv.target))
    clean = iv[iv.setting == CLEAN]
    for r, setting in enumerate(settings):
        for c, attack in enumerate(attacks):
            ax = axes[r][c]
            for k, t in enumerate(targets):
                pts = pd.concat([clean[clean.target == t], iv[(iv.target == t) & (iv.setting == setting) & (iv.attack == attack)]])
                pts = pts.sort_values("eps_255")
                if len(pts) < 2:
                    continue
                color = f"C{k}"
                ax.plot(pts.eps_255, pts.err, marker="o", ms=3, color=color, label=labels.get(t, t))
                ax.fill_between(pts.eps_255, pts.lo, pts.hi, color=color, alpha=0.2, lw=0)
            ax.set_title(f"{setting} {column_label(iv, attack)}{crafted_on(iv, setting, attack)}", fontsize=10)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if r == len(settings) - 1:
                ax.set_xlabel("eps (L∞, 0–255 pixel scale)")
            if c == 0:
                ax.set_ylabel(f"{metric.replace('top', 'top-')} error (%)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Robustness curves: {metric.replace('top', 'top-')} error vs eps (eps 0 = clean; bands: {band})", fontsize=11)
    return fig


def crafted_on(intervals: pd.DataFrame, setting: str, attack: str) -> str:
    """" (from SURROGATE)": the surrogate(s) the records name for a black-box panel, else ""."""
    if "surrogate" not in intervals:
        return ""
    panel = intervals[(intervals.setting == setting) & (intervals.attack == attack)]
    names = sorted(set(panel.surrogate.dropna()))
    return f" (from {', '.join(names)})" if names else ""


def figure2(curves: pd.DataFrame) -> Figure:
    """The paper's Figure 2, both panels, from `robustmix.evaluation.probes.figure2_curves`."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_miss, ax_grad = fig.subplots(1, 2)
    for k, (name, c) in enumerate(curves.groupby("checkpoint", sort=False)):
        ax_miss.plot(c.lam, c.miss_rate, marker="o", ms=3, color=f"C{k}", label=name)
        ax_grad.plot(c.lam, c.grad_norm, marker="o", ms=3, color=f"C{k}", label=name)
    n_pairs = int(curves.n_pairs.iloc[0])
    which = "y_i ≠ y_j" if bool(curves.distinct_labels.iloc[0]) else "any labels"
    ax_miss.set_title("(a) prediction error in-between data", fontsize=10)
    ax_miss.set_ylabel("% miss (predicted neither y_i nor y_j)")
    ax_grad.set_title("(b) norm of the input gradient of the loss", fontsize=10)
    ax_grad.set_ylabel("mean ‖∇x loss‖₂ (pixels in [0, 1])")
    for ax in (ax_miss, ax_grad):
        ax.set_xlabel("λ  (x = λ·x_i + (1−λ)·x_j)")
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, names = ax_miss.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(3, len(names)), fontsize=8)
    fig.suptitle(
        f"Figure 2: {n_pairs} random training pairs ({which}, seed {int(curves.seed.iloc[0])}); "
        "loss = CE with target λ·y_i + (1−λ)·y_j",
        fontsize=10,
    )
    return fig


def reliability_figure(calib: pd.DataFrame) -> Figure:
    """Reliability diagrams (accuracy vs confidence per bin), one panel per checkpoint, with ECE.
    `calib` is `robustmix.evaluation.probes.calibration_frame`."""
    names = list(dict.fromkeys(calib.checkpoint))
    fig = Figure(figsize=(3.4 * len(names), 3.6), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
    for k, (ax, name) in enumerate(zip(axes, names)):
        c = calib[calib.checkpoint == name]
        width = (c.bin_hi - c.bin_lo).to_numpy()
        ax.bar(c.bin_lo, c.accuracy.fillna(0) * 100, width=width, align="edge", color=f"C{k}", alpha=0.7, edgecolor="k", lw=0.5, label="accuracy")
        ax.plot([0, 1], [0, 100], "k--", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 100)
        ax.plot(c.confidence, c.confidence * 100, "kx", ms=4, label="mean confidence")
        for lo, w, n in zip(c.bin_lo, width, c["count"]):  # how many examples each bar stands on
            if n:
                ax.text(lo + w / 2, 2, f"{int(n)}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_title(f"{name}\nECE = {c.ece.iloc[0]:.1f}% (n = {int(c.n.iloc[0])})", fontsize=9)
        ax.set_xlabel("confidence (max softmax probability)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy in bin (%)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Reliability diagrams on the test set (top-1; equal-width bins; numbers: examples per bin)", fontsize=11)
    return fig
