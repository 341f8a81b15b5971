"""Minimal-perturbation records (`robustmix.evaluation.minimal`) read as statistics: the error at any
eps read off the eps* of every example, the whole robust-accuracy-vs-eps curve at once, and each
method's median eps* with a seed-level interval.

The median's interval inverts the seed-level interval of the error curve
(`replication.error_interval`: the training seed as the unit of replication, two-way with the test
examples): the median is the smallest eps at which the error (pooled over the method's seeds)
reaches 50%, and its 95% interval is every eps whose error interval contains 50% — the eps at
which the upper bound first reaches 50% to the eps at which the lower bound does. A method's
median is "robust within the range" (inf) when its error never reaches 50% up to eps_max.
Methods are compared by the mean eps* (each example's eps* capped at eps_max) with
`replication.mean_difference_interval`, paired by seed when the seeds match.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..runtime.errors import RobustmixError
from .comparisons import method_label
from .replication import error_interval, mean_difference_interval

MINIMAL = "minimal"


def eps_star(record: dict) -> np.ndarray:
    """A record's eps* per example, 0–255 scale (inf where robust within the search's eps_max)."""
    if record.get("attack") != MINIMAL or "eps_star_255" not in record:
        raise RobustmixError(f"record of {record.get('target')!r} is not a minimal-perturbation record: run robustmix attack --minimal")
    return np.array([np.inf if v is None else float(v) for v in record["eps_star_255"]], dtype=float)


def correct_at(record: dict, eps_255: float) -> np.ndarray:
    """Per example: still correct at eps (0–255 scale), i.e. eps* > eps, read off the record."""
    return eps_star(record) > eps_255 + 1e-9


def error_at(record: dict, eps_255: float) -> float:
    """% of examples fooled within eps (0–255), read off the eps* record."""
    return float(100.0 * (~correct_at(record, eps_255)).mean())


def grid_of(records: list[dict]) -> np.ndarray:
    """Every eps (0–255) at which some curve steps, from 0 to the largest eps_max: the curve at all eps."""
    values = {0.0}
    for r in records:
        e = eps_star(r)
        values |= set(e[np.isfinite(e)].tolist())
        values.add(float(r["eps_max_255"]))
    return np.array(sorted(values))


def groups(records: list[dict]) -> dict[str, list[dict]]:
    """Records by method label (a method's seeds together), in the order they come."""
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(method_label(r), []).append(r)
    return out


def curve(records: list[dict]) -> pd.DataFrame:
    """Robust accuracy vs eps for every method at every step of any curve: columns method, eps_255,
    err (%), lo, hi (the seed-level 95% interval of the error), robust (% = 100 − err), seeds, n."""
    grid = grid_of(records)
    rows = []
    for method, recs in groups(records).items():
        for e in grid:
            iv = error_interval([correct_at(r, e) for r in recs])
            rows.append({"method": method, "eps_255": float(e), "err": iv.estimate, "lo": max(0.0, iv.lo), "hi": min(100.0, iv.hi),
                         "robust": 100.0 - iv.estimate, "seeds": iv.seeds, "n": iv.n})
    return pd.DataFrame(rows)


def medians(records: list[dict]) -> pd.DataFrame:
    """Per method: median eps* (0–255, pooled over seeds) with its seed-level 95% interval (inf: the
    error stays below 50% up to eps_max), the share robust within eps_max, eps_max, seeds, examples."""
    frame = curve(records)
    rows = []
    for method, recs in groups(records).items():
        c = frame[frame.method == method].sort_values("eps_255")

        def first(values: pd.Series) -> float:
            hit = c.eps_255[values >= 50.0 - 1e-9]
            return float(hit.iloc[0]) if len(hit) else float("inf")

        pooled = np.concatenate([eps_star(r) for r in recs])
        rows.append({"method": method, "median_eps_255": first(c.err), "lo": first(c.hi), "hi": first(c.lo),
                     "robust_within_max": float(100.0 * np.isinf(pooled).mean()), "eps_max_255": float(recs[0]["eps_max_255"]),
                     "precision_255": float(recs[0]["precision_255"]), "seeds": len(recs), "n": int(recs[0]["n"])})
    return pd.DataFrame(rows)


def mean_difference(records: list[dict], reference: str, method: str, *, level: float = 0.95) -> dict:
    """mean eps*(method) − mean eps*(reference), 0–255 scale, each example's eps* capped at eps_max,
    with the seed-level interval (paired by seed when both have the same seeds)."""
    by = groups(records)
    a, b = by[reference], by[method]
    capped = lambda recs: [np.minimum(eps_star(r), float(r["eps_max_255"])) for r in recs]  # noqa: E731
    paired = sorted(r.get("seed") for r in a) == sorted(r.get("seed") for r in b)
    iv = mean_difference_interval(capped(sorted(a, key=lambda r: r.get("seed") or 0)), capped(sorted(b, key=lambda r: r.get("seed") or 0)),
                                  paired_seeds=paired, level=level)
    return {"reference": reference, "method": method, **iv.to_dict()}


def render_minimal(records: list[dict], eps_255: tuple[float, ...] = ()) -> str:
    """Markdown: per method, median eps* [95% seed-level interval], the error read off at each of
    `eps_255`, and the share robust within the search range."""
    med = medians(records)
    cols = [f"err @ {e:g}" for e in eps_255]
    lines = ["| Method | Median eps* | 95% interval | " + " | ".join([*cols, "Robust within eps max"]) + " |",
             "|---|---:|---|" + "---:|" * (len(cols) + 1)]
    by = groups(records)
    for row in med.itertuples(index=False):
        errs = [f"{np.mean([error_at(r, e) for r in by[row.method]]):.1f}" for e in eps_255]
        shown = lambda v: "> max" if not np.isfinite(v) else f"{v:g}"  # noqa: E731
        lines.append(f"| {row.method} | {shown(row.median_eps_255)} | [{shown(row.lo)}, {shown(row.hi)}] | "
                     + " | ".join([*errs, f"{row.robust_within_max:.1f}%"]) + " |")
    r0 = records[0]
    note = (f"\neps* on the 0–255 scale: the smallest eps (grid step {r0['precision_255']:g}, up to {r0['eps_max_255']:g}) at which "
            f"{', '.join(r0['attacks'])} fooled the example; errors in % read off eps*; interval: seed-level (training seeds × test examples), "
            "from the error curve's interval.\n")
    return "\n".join(lines) + "\n" + note
