"""Record statistics: per-example views of records, error rates with intervals, paired tests
between targets (Holm-adjusted) and the verdicts they allow. Pure functions of records; no model
is run here (model probes, Figure 2 and calibration: `robustmix.evaluation.probes`).

Every interval and paired test comes from `robustmix.analysis.stats` (seeded bootstrap over test examples;
exact McNemar for differences on the same examples). Error rates are in percent; eps is stored
in [0, 1] units and shown on the 0–255 scale (`eps_255`).
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd

from ..attacks import attack_label
from ..evaluation.records import as_bool, error_rate
from ..runtime.errors import RobustmixError
from ..soundness.verdicts import paired_verdict
from ..store.results import PER_EXAMPLE
from ..training.methods import get_method, method_options
from .stats import at_edge, bootstrap_ci, clopper_pearson, paired_difference, wilson_ci

METRIC_COLUMNS = {"top1": "top1_correct", "top5": "top5_correct"}
METRIC_LABELS = {"top1": "Top-1", "top5": "Top-5"}
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
    """The columns that say which evaluation a record is (target, method, setting, attack, eps,
    and the surrogate that crafted a black-box record's examples; square_on where a record has it)."""
    return {
        "target": r["target"],
        "method": r["method"],
        "alpha": r.get("alpha"),
        "setting": r["setting"],
        "attack": r["attack"],
        "eps_255": r.get("eps_255", round(r["eps"] * 255, 6)),
        "iters": r.get("iters"),
        "surrogate": r.get("surrogate"),
        **({"square_on": r["square_on"]} if r.get("square_on") else {}),  # Square made on survivors (labelled so)
        **({"on_survivors": True} if r.get("on_survivors") else {}),  # an attack in a cascade, after the first (labelled so)
        **({"standard": r["standard"]} if "standard" in r else {}),  # AutoAttack's record: its standard budget or not
    }


def column_label(frame: pd.DataFrame, attack: str) -> str:
    """An attack's column label in a frame of records: `attack_label`, "Square (on survivors)" when
    its records were made with square_on "survivors", "APGD-T (on survivors)" when made in a cascade
    after the first attack (they carry the markers), "AutoAttack (standard)" only for records made
    with AutoAttack's standard budget."""
    rows = frame.attack == attack

    def marked(column: str, value) -> bool:
        return column in frame.columns and bool((frame.loc[rows, column] == value).any())

    standard = not marked("standard", False)
    return attack_label(attack, "survivors" if marked("square_on", "survivors") else None, on_survivors=marked("on_survivors", True),
                        standard=standard)


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


def error_rates(records: list[dict]) -> pd.DataFrame:
    """One row per record × metric: the identity columns, metric (top1/top5) and err (%) as the
    record states it; the frame `error_intervals` gives with intervals."""
    return pd.DataFrame([{**identity(r), "metric": m, "err": r[f"{m}_err"]} for r in records for m in METRIC_COLUMNS])


def error_intervals(
    records: list[dict], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0, interval: str = "bootstrap"
) -> pd.DataFrame:
    """One row per record × metric: the error rate (%) and its interval: by default the seeded
    percentile bootstrap over test examples, exact (Clopper–Pearson) where fewer than 10 examples are
    wrong or right (`stats.at_edge`: the bootstrap collapses to a zero-width interval at 0 or 100%);
    `interval="wilson"` gives the Wilson score interval throughout.

    Columns: target, method, alpha, setting, attack, eps_255, iters, metric (top1/top5), n, err, lo, hi.
    """
    if interval not in INTERVALS:
        raise RobustmixError(f"unknown interval {interval!r}: choose from {', '.join(INTERVALS)}")
    check_per_example(records)
    rows = []
    for r in records:
        for metric, col in METRIC_COLUMNS.items():
            c = as_bool(r[col])
            wrong = int(c.size - np.count_nonzero(c))
            if interval == "bootstrap" and at_edge(wrong, c.size):  # the bootstrap collapses there: the exact interval
                lo, hi = clopper_pearson(wrong, c.size, level=level)
            else:
                lo, hi = bootstrap_ci(c, level=level, n_boot=n_boot, seed=seed) if interval == "bootstrap" else wilson_ci(c, level=level)
            rows.append(
                {
                    **identity(r),
                    "metric": metric,
                    "n": int(c.size),
                    "err": error_rate(c),
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
                        "err_a": error_rate(ra[col]),
                        "err_b": error_rate(rb[col]),
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
    df["verdict"] = [paired_verdict(row) if row.significant else "" for row in df.itertuples(index=False)]
    return df


def method_label(r: dict) -> str:
    """How a record's or a meta.json's method is printed: "ERM", "mixup (α=1)", the bare method when
    alpha is unknown, any method option that differs from its default: "puzzle-mix (α=1, adv_p=0.1)", and
    adversarial training: "ERM + PGD-AT (ε = 8/255, 10 steps)"."""
    adv = r.get("adversarial")
    adv = adv.get("label") if isinstance(adv, dict) else adv
    if r["method"] == "erm":
        return "ERM" + (f" + {adv}" if adv else "")
    parts = ([f"α={r['alpha']:g}"] if r.get("alpha") is not None else []) + option_changes(r["method"], r.get("method_options"))
    return (f"{r['method']} ({', '.join(parts)})" if parts else r["method"]) + (f" + {adv}" if adv else "")


def option_changes(method: str, options: dict | None) -> list[str]:
    """["adv_p=0.1", ...]: the options in `options` that differ from `method`'s defaults ([] when none,
    or when the method is not one robustmix knows)."""
    if not options:
        return []
    try:
        defaults = method_options(get_method(method)) or {}
    except RobustmixError:
        return []
    defaults = json.loads(json.dumps(defaults))  # tuples as lists, as a JSON file holds them
    return [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items() if k in defaults and defaults[k] != v]


def row_labels(records: list[dict]) -> dict[str, str]:
    """Target name -> label: its method (with alpha), or the target's name where methods repeat."""
    methods = {r["target"]: method_label(r) for r in records}
    counts = pd.Series(list(methods.values())).value_counts()
    return {t: (m if counts[m] == 1 else f"{m} [{t}]") for t, m in methods.items()}
