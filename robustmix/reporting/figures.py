"""Figures as PNG (matplotlib, Agg; no pyplot state): robustness curves, the paper's Figure 2,
reliability diagrams. Each `*_figure` function takes a DataFrame built in `robustmix.analysis.comparisons`
(or `robustmix.reporting.tables.evidence`) or `robustmix.evaluation.probes` and returns a matplotlib Figure;
`save_png` writes it atomically.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

from ..analysis.comparisons import column_label
from ..attacks import CLEAN, NO_ATTACK, RECORD_ATTACKS, SETTINGS, WORST, attack_label
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


PAGE_WIDTH = 7.6  # inches: 912 px at save_png's 120 dpi, shown 1:1 in a report page's column (its text 8 pt and up)


def panels(iv: pd.DataFrame) -> list[tuple[str, str]]:
    """(setting, attack) of the attacked records, in SETTINGS × RECORD_ATTACKS order."""
    return [(s, a) for s in SETTINGS for a in RECORD_ATTACKS if ((iv.setting == s) & (iv.attack == a)).any()]


def several_eps(intervals: pd.DataFrame) -> bool:
    """Whether some (setting, attack) was measured at two eps or more: where a curve says something."""
    adv = intervals[intervals.setting != CLEAN]
    return bool(len(adv)) and int(adv.groupby(["setting", "attack"]).eps_255.nunique().max()) >= 2


def robustness_figure(
    intervals: pd.DataFrame, labels: dict[str, str] | None = None, *, metric: str = "top1", band: str = "95% bootstrap CI"
) -> Figure:
    """Error vs eps (0–255 scale) per checkpoint, one panel per setting × attack measured at two eps or
    more (two columns, the page's width), with the interval as a band; eps = 0 is the clean error.
    Where every attack was measured at one eps only, a curve would be two points: the dot plot
    (`dots_figure`) at that eps instead. `intervals` is `analysis.error_intervals(records)`."""
    if not several_eps(intervals):
        return dots_figure(intervals, labels, metric=metric, band=band)
    labels = labels or {}
    iv = intervals[intervals.metric == metric]
    shown = [(s, a) for s, a in panels(iv) if iv[(iv.setting == s) & (iv.attack == a)].eps_255.nunique() >= 2]
    cols = min(2, len(shown))
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(PAGE_WIDTH, 2.9 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    targets = list(dict.fromkeys(iv.target))
    clean = iv[iv.setting == CLEAN]
    for k, (setting, attack) in enumerate(shown):
        ax = axes[k // cols][k % cols]
        for j, t in enumerate(targets):
            pts = pd.concat([clean[clean.target == t], iv[(iv.target == t) & (iv.setting == setting) & (iv.attack == attack)]])
            pts = pts.sort_values("eps_255")
            if len(pts) < 2:
                continue
            ax.plot(pts.eps_255, pts.err, marker="o", ms=4, color=f"C{j}", label=labels.get(t, t))
            ax.fill_between(pts.eps_255, pts.lo, pts.hi, color=f"C{j}", alpha=0.18, lw=0)
        ax.set_title(f"{setting} {column_label(iv, attack)}{crafted_on(iv, setting, attack)}", fontsize=10)
        ax.set_xticks(sorted({0.0, *iv[iv.setting != CLEAN].eps_255}))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
        if k // cols == rows - 1:
            ax.set_xlabel("eps (L∞, 0–255 pixel scale)", fontsize=9)
        if k % cols == 0:
            ax.set_ylabel(f"{metric.replace('top', 'top-')} error (%)", fontsize=9)
    for k in range(len(shown), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(3, len(names)), fontsize=9)
    fig.suptitle(f"{metric.replace('top', 'Top-')} error vs eps (eps 0 = clean; bands: {band})", fontsize=11)
    return fig


def dots_figure(intervals: pd.DataFrame, labels: dict[str, str] | None = None, *, metric: str = "top1",
                band: str = "95% bootstrap CI", eps: float | None = None) -> Figure:
    """A dot plot at one eps (default: the largest measured): one row per attack (clean first, the worst
    case last and emphasised), one dot per checkpoint with its interval, one panel per setting. Square
    run on survivors is left out (its error is the clean error by construction; its count is in the
    report's table)."""
    labels = labels or {}
    iv = intervals[intervals.metric == metric]
    adv = iv[iv.setting != CLEAN]
    eps = float(adv.eps_255.max()) if eps is None and len(adv) else eps
    at = adv[(adv.eps_255 - (eps or 0)).abs() < 1e-6]
    if "square_on" in at:  # (the worst case carries the marker too, as provenance: it stays)
        at = at[~((at.attack == "square") & (at.square_on.fillna("") == "survivors"))]
    settings = [s for s in SETTINGS if (at.setting == s).any()] or [CLEAN]
    targets = list(dict.fromkeys(iv.target))
    height = [len([a for a in RECORD_ATTACKS if ((at.setting == s) & (at.attack == a)).any()]) + 1 for s in settings]
    row = 0.12 * len(targets) + 0.15  # inches per attack: the checkpoints' dots side by side
    fig = Figure(figsize=(PAGE_WIDTH, row * sum(height) + 0.6 * len(settings) + 0.9), layout="constrained")
    axes = fig.subplots(len(settings), 1, squeeze=False, sharex=True, height_ratios=height)[:, 0]
    step = 0.8 / max(1, len(targets))
    for ax, setting in zip(axes, settings):
        rows = [(attack_label(NO_ATTACK), iv[iv.setting == CLEAN])] + [
            (column_label(at, a), at[(at.setting == setting) & (at.attack == a)]) for a in RECORD_ATTACKS
            if ((at.setting == setting) & (at.attack == a)).any()]
        for y, (name, part) in enumerate(rows):
            worst = name == attack_label(WORST)
            if worst:
                ax.axhspan(y - 0.5, y + 0.5, color="#fde2e1", zorder=0)
            for j, t in enumerate(targets):
                hit = part[part.target == t]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                yy = y - 0.4 + step * (j + 0.5)
                ax.errorbar(r.err, yy, xerr=[[max(0.0, r.err - r.lo)], [max(0.0, r.hi - r.err)]], fmt="D" if worst else "o",
                            ms=6 if worst else 4.5, color=f"C{j}", capsize=2, lw=1.2, label=labels.get(t, t) if y == 0 else None)
        ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=9)
        for tick, (name, _) in zip(ax.get_yticklabels(), rows):
            tick.set_fontweight("bold" if name == attack_label(WORST) else "normal")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(-1, 101.5)  # a dot at 0% or 100% whole
        ax.set_xticks(range(0, 101, 10))
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=9)
        ax.set_title(f"{setting}{crafted_on(at, setting, at.attack.iloc[0]) if setting != CLEAN and len(at) else ''}", fontsize=10)
    axes[-1].set_xlabel(f"{metric.replace('top', 'top-')} error (%)", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(3, len(names)), fontsize=9)
    fig.suptitle(f"{metric.replace('top', 'Top-')} error at eps {eps:g}/255 per attack (intervals: {band}; worst case: "
                 "wrong under any attack)", fontsize=10)
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
    fig = Figure(figsize=(PAGE_WIDTH, 3.8), layout="constrained")
    ax_miss, ax_grad = fig.subplots(1, 2)
    for k, (name, c) in enumerate(curves.groupby("checkpoint", sort=False)):
        ax_miss.plot(c.lam, c.miss_rate, marker="o", ms=3, color=f"C{k}", label=name)
        ax_grad.plot(c.lam, c.grad_norm, marker="o", ms=3, color=f"C{k}", label=name)
    n_pairs = int(curves.n_pairs.iloc[0])
    which = "y_i ≠ y_j" if bool(curves.distinct_labels.iloc[0]) else "any labels"
    ax_miss.set_title("(a) prediction error in-between data", fontsize=10)
    ax_miss.set_ylabel("% miss (neither y_i nor y_j)")
    ax_grad.set_title("(b) norm of the input gradient of the loss", fontsize=10)
    ax_grad.set_ylabel("mean ‖∇x loss‖₂ (pixels in [0, 1])")
    for ax in (ax_miss, ax_grad):
        ax.tick_params(labelsize=9)
        ax.set_xlabel("λ  (x = λ·x_i + (1−λ)·x_j)")
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    handles, names = ax_miss.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(3, len(names)), fontsize=9)
    fig.suptitle(
        f"Figure 2: {n_pairs} random training pairs ({which}, seed {int(curves.seed.iloc[0])});\n"
        "loss = CE with target λ·y_i + (1−λ)·y_j",
        fontsize=10,
    )
    return fig


def reliability_figure(calib: pd.DataFrame) -> Figure:
    """Reliability diagrams (accuracy vs confidence per bin), one per checkpoint, three to a row at the
    page's width, each with its ECE and, beneath it, how many examples each bin holds (log scale).
    `calib` is `robustmix.evaluation.probes.calibration_frame`."""
    names = list(dict.fromkeys(calib.checkpoint))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(PAGE_WIDTH, 3.3 * rows + 0.8), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1] * rows)
    for k, name in enumerate(names):
        r, col = divmod(k, cols)
        ax = fig.add_subplot(grid[2 * r, col])
        counts = fig.add_subplot(grid[2 * r + 1, col], sharex=ax)
        c = calib[calib.checkpoint == name]
        width = (c.bin_hi - c.bin_lo).to_numpy()
        ax.bar(c.bin_lo, c.accuracy.fillna(0) * 100, width=width, align="edge", color=f"C{k}", alpha=0.7, edgecolor="k", lw=0.5,
               label="accuracy in bin")
        ax.plot([0, 1], [0, 100], "k--", lw=1, label="perfect calibration")
        ax.plot(c.confidence, c.confidence * 100, "kx", ms=5, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 100)
        ax.set_title(f"{textwrap.fill(name, 28)}\nECE {c.ece.iloc[0]:.1f}% (n = {int(c.n.iloc[0])})", fontsize=9)
        ax.tick_params(labelbottom=False, labelsize=8)
        ax.grid(alpha=0.3)
        counts.bar(c.bin_lo, c["count"].clip(lower=0), width=width, align="edge", color="0.55", edgecolor="k", lw=0.4)
        counts.set_yscale("log")
        counts.set_ylim(0.8, max(10, float(c["count"].max()) * 2))
        counts.tick_params(labelsize=8)
        counts.set_xlabel("confidence", fontsize=8)
        if col == 0:
            ax.set_ylabel("accuracy (%)", fontsize=9)
            counts.set_ylabel("examples", fontsize=8)
        if k == 0:
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Reliability on the test set (top-1, equal-width bins of max softmax probability; below: examples per bin)", fontsize=10)
    return fig
