"""Evidence from records and checkpoints: per-example views, error rates with intervals, paired
tests between methods, the paper's Figure 2 quantities and calibration. Pure functions.

Every interval and paired test comes from `robustmix.stats` (seeded bootstrap over test examples;
exact McNemar for differences on the same examples). Error rates are in percent; eps is stored
in [0, 1] units and shown on the 0–255 scale (`eps_255`).

Figure 2 (see shared PROTOCOL.md), robustmix's stated choices: pairs of *training* examples drawn
at random with a seeded generator, by default only pairs with y_i != y_j (equal-label pairs can
never miss); x = λ·x_i + (1−λ)·x_j on a λ grid from 0 to 1; (a) miss rate = % of pairs predicted
as neither y_i nor y_j; (b) the per-example L2 norm of ∇x of the cross-entropy with the mixed
target λ·onehot(y_i) + (1−λ)·onehot(y_j), averaged over pairs.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .attacks import attack_label, eval_mode
from .data import pixels
from .errors import RobustmixError
from .metrics import predict_logits
from .results import PER_EXAMPLE
from .stats import as_bool, bootstrap_ci, paired_difference, wilson_ci

METRIC_COLUMNS = {"top1": "top1_correct", "top5": "top5_correct"}
KEY = ("setting", "attack", "eps_255")
SIGNIFICANCE = 0.05
INTERVALS = ("bootstrap", "wilson")


# --- records -> frames -------------------------------------------------------------------------


def check_per_example(records: list[dict]) -> None:
    """Refuse records without the per-example bit-strings every interval and test is computed from."""
    for r in records:
        if not all(isinstance(r.get(c), str) and len(r[c]) == r.get("n", len(r[c])) for c in PER_EXAMPLE):
            raise RobustmixError(
                f"record for {r.get('target')!r} ({r.get('setting')}, {r.get('attack')}) has no per-example results: "
                "rerun 'robustmix attack' to write a results file that has them"
            )


def identity(r: dict) -> dict:
    """The columns that say which evaluation a record is (target, method, setting, attack, eps)."""
    return {
        "target": r["target"],
        "method": r["method"],
        "alpha": r.get("alpha"),
        "setting": r["setting"],
        "attack": r["attack"],
        "eps_255": r.get("eps_255", round(r["eps"] * 255, 6)),
        "iters": r.get("iters"),
    }


def per_example_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record × test example: target, method, alpha, setting, attack, eps_255, iters,
    example (index in the test set), top1_correct, top5_correct (bool). For notebooks: slice with
    pandas, e.g. examples that mixup gets right and ERM gets wrong under FGSM."""
    check_per_example(records)
    frames = []
    for r in records:
        c1, c5 = as_bool(r["top1_correct"]), as_bool(r["top5_correct"])
        frames.append(
            pd.DataFrame(
                {
                    **identity(r),
                    "example": np.arange(c1.size),
                    "top1_correct": c1,
                    "top5_correct": c5,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def error_intervals(
    records: list[dict], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0, interval: str = "bootstrap"
) -> pd.DataFrame:
    """One row per record × metric: the error rate (%) and its interval: by default the seeded
    percentile bootstrap over test examples; `interval="wilson"` gives the Wilson score interval,
    which (unlike the bootstrap) is not degenerate when no example, or every one, is wrong.

    Columns: target, method, alpha, setting, attack, eps_255, iters, metric (top1/top5), n, err, lo, hi.
    """
    if interval not in INTERVALS:
        raise RobustmixError(f"unknown interval {interval!r}: choose from {', '.join(INTERVALS)}")
    check_per_example(records)
    rows = []
    for r in records:
        for metric, col in METRIC_COLUMNS.items():
            c = as_bool(r[col])
            lo, hi = bootstrap_ci(c, level=level, n_boot=n_boot, seed=seed) if interval == "bootstrap" else wilson_ci(c, level=level)
            rows.append(
                {
                    **identity(r),
                    "metric": metric,
                    "n": int(c.size),
                    "err": 100.0 * (1.0 - c.mean()),
                    "lo": lo,
                    "hi": hi,
                }
            )
    return pd.DataFrame(rows)


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error control over all comparisons).

    Written by hand because it is four lines and statsmodels is not a dependency.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_comparisons(
    records: list[dict], *, labels: dict[str, str] | None = None, level: float = 0.95, alpha: float = SIGNIFICANCE
) -> pd.DataFrame:
    """Every pair of targets measured on the same examples (same setting, attack, eps), per metric.

    Columns: setting, attack, eps_255, metric, a, b (target names), method_a, method_b, n,
    err_a, err_b, diff (= err_b − err_a, percentage points), lo, hi (paired interval), p_value
    (exact McNemar), p_holm (Holm-adjusted over all rows), significant (p_holm < alpha), verdict
    (a sentence only when significant, else ''). `labels` maps target -> the name to print
    (default: its method, e.g. "mixup (α=1)").
    """
    labels = labels or {}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["setting"], r["attack"], r.get("eps_255", round(r["eps"] * 255, 6))), []).append(r)
    rows = []
    for key, recs in groups.items():
        for ra, rb in combinations(recs, 2):
            if ra["n"] != rb["n"]:
                continue  # not the same examples: no paired test
            for metric, col in METRIC_COLUMNS.items():
                d = paired_difference(ra[col], rb[col], level=level)
                rows.append(
                    {
                        **dict(zip(KEY, key)),
                        "metric": metric,
                        "a": ra["target"],
                        "b": rb["target"],
                        "method_a": labels.get(ra["target"], method_label(ra)),
                        "method_b": labels.get(rb["target"], method_label(rb)),
                        "n": d.n,
                        "err_a": 100.0 * (1 - as_bool(ra[col]).mean()),
                        "err_b": 100.0 * (1 - as_bool(rb[col]).mean()),
                        "diff": d.diff,
                        "lo": d.lo,
                        "hi": d.hi,
                        "p_value": d.p_value,
                    }
                )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p_holm"] = holm(df["p_value"].to_numpy())
    df["significant"] = df["p_holm"] < alpha
    df["verdict"] = [verdict(row) if row.significant else "" for row in df.itertuples(index=False)]
    return df


def method_label(r: dict) -> str:
    return "ERM" if r["method"] == "erm" else f"{r['method']} (α={r['alpha']:g})" if r.get("alpha") is not None else r["method"]


def verdict(row) -> str:
    """The sentence a paper may print, for a significant row of `paired_comparisons`."""
    better, worse = (row.method_b, row.method_a) if row.diff < 0 else (row.method_a, row.method_b)
    metric = row.metric.replace("top", "top-")
    if row.setting == "clean":
        return f"{better} has a lower clean {metric} error than {worse}: {abs(row.diff):.1f} points (Holm-adjusted p = {row.p_holm:.2g})."
    return (
        f"{better} is more robust than {worse} to {row.setting} {attack_label(row.attack)} at eps {row.eps_255:g}/255: "
        f"{metric} error {abs(row.diff):.1f} points lower (Holm-adjusted p = {row.p_holm:.2g})."
    )


# --- Figure 2 ----------------------------------------------------------------------------------


def sample_pairs(y: torch.Tensor, n_pairs: int, *, seed: int = 0, distinct_labels: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (i, j) of `n_pairs` random pairs of examples, i != j, drawn with a seeded generator;
    with `distinct_labels`, only pairs with y[i] != y[j]."""
    y = torch.as_tensor(y).cpu()
    n = y.numel()
    if n_pairs < 1:
        raise RobustmixError(f"n_pairs must be >= 1, got {n_pairs}")
    if n < 2 or (distinct_labels and y.unique().numel() < 2):
        raise RobustmixError("need at least two examples (with two different labels) to draw pairs: use more data")
    gen = torch.Generator().manual_seed(seed)
    i_out, j_out, have = [], [], 0
    while have < n_pairs:  # rejection sampling: draw a surplus, keep the valid pairs
        i = torch.randint(n, (2 * n_pairs,), generator=gen)
        j = torch.randint(n, (2 * n_pairs,), generator=gen)
        keep = (i != j) & ((y[i] != y[j]) if distinct_labels else True)
        i_out.append(i[keep])
        j_out.append(j[keep])
        have += int(keep.sum())
    return torch.cat(i_out)[:n_pairs], torch.cat(j_out)[:n_pairs]


def interpolation_metrics(
    model: nn.Module,
    x_i: torch.Tensor,
    x_j: torch.Tensor,
    y_i: torch.Tensor,
    y_j: torch.Tensor,
    lams,
    *,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """The paper's Figure 2 quantities at x = λ·x_i + (1−λ)·x_j for each λ in `lams`.

    Returns {"lam": λ grid, "miss_rate": % of pairs predicted as neither y_i nor y_j,
    "grad_norm": mean over pairs of ‖∇x CE(f(x), λ·onehot(y_i) + (1−λ)·onehot(y_j))‖₂}.
    Pixels in [0, 1]; the model is evaluated in eval mode and handed back in the mode it came in;
    parameter gradients are not touched.
    """
    lams = np.asarray(lams, dtype=float)
    device = next(model.parameters()).device
    miss, norms = np.zeros(lams.size), np.zeros(lams.size)
    n = x_i.shape[0]
    with eval_mode(model):
        for b in range(0, n, batch_size):
            xi, xj = pixels(x_i[b : b + batch_size].to(device)), pixels(x_j[b : b + batch_size].to(device))
            yi, yj = y_i[b : b + batch_size].to(device), y_j[b : b + batch_size].to(device)
            k = xi.shape[0]
            with torch.inference_mode():
                num_classes = model(xi[:1]).shape[1]
            oi, oj = F.one_hot(yi, num_classes).float(), F.one_hot(yj, num_classes).float()
            for li, lam in enumerate(lams):
                x = (lam * xi + (1 - lam) * xj).detach().requires_grad_(True)
                with torch.enable_grad():
                    logits = model(x)
                    # Sum over examples so each example's gradient is its own loss's gradient.
                    loss = F.cross_entropy(logits, lam * oi + (1 - lam) * oj, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x)
                pred = logits.detach().argmax(1)
                miss[li] += float(((pred != yi) & (pred != yj)).sum())
                norms[li] += float(grad.flatten(1).norm(dim=1).sum())
    return {"lam": lams, "miss_rate": 100.0 * miss / n, "grad_norm": norms / n}


def figure2_curves(checkpoints: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, n_pairs: int = 1000,
                   lams=None, seed: int = 0, distinct_labels: bool = True) -> pd.DataFrame:
    """Figure 2 for several models on the *same* pairs of (training) examples.

    Returns a long DataFrame: checkpoint, lam, miss_rate (%), grad_norm, n_pairs, seed, distinct_labels.
    """
    lams = np.linspace(0, 1, 21) if lams is None else np.asarray(lams, dtype=float)
    i, j = sample_pairs(y, n_pairs, seed=seed, distinct_labels=distinct_labels)
    frames = []
    for name, model in checkpoints.items():
        m = interpolation_metrics(model, x[i], x[j], y[i], y[j], lams)
        frames.append(pd.DataFrame({"checkpoint": name, **m, "n_pairs": n_pairs, "seed": seed, "distinct_labels": distinct_labels}))
    return pd.concat(frames, ignore_index=True)


# --- calibration -------------------------------------------------------------------------------


def calibration(logits: torch.Tensor, y: torch.Tensor, *, n_bins: int = 10) -> dict:
    """Reliability diagram data and expected calibration error (ECE) of top-1 predictions.

    Equal-width confidence bins on [0, 1]; ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b|, in
    percent. Written by hand (a few lines of numpy) because no dependency of ours provides it for
    multi-class top-1 confidence (sklearn's calibration_curve is binary only).
    Returns {"bin_lo", "bin_hi", "count", "confidence", "accuracy" (arrays; NaN for empty bins),
    "ece" (%), "n"}.
    """
    probs = torch.softmax(logits.float(), dim=1)
    conf, pred = probs.max(dim=1)
    conf = conf.cpu().numpy().astype(float)
    correct = (pred.cpu() == torch.as_tensor(y).cpu()).numpy()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct.astype(float), minlength=n_bins) / count
    filled = count > 0
    ece = 100.0 * float(np.sum(count[filled] / conf.size * np.abs(acc[filled] - mean_conf[filled])))
    return {"bin_lo": edges[:-1], "bin_hi": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc, "ece": ece, "n": int(conf.size)}


def calibration_frame(checkpoints: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, n_bins: int = 10) -> pd.DataFrame:
    """Calibration of several models on the same (test) examples: one row per checkpoint × bin,
    with columns checkpoint, bin_lo, bin_hi, count, confidence, accuracy, ece (%), n."""
    frames = []
    for name, model in checkpoints.items():
        c = calibration(predict_logits(model, x), y, n_bins=n_bins)
        frames.append(pd.DataFrame({"checkpoint": name, **c}))
    return pd.concat(frames, ignore_index=True)
