"""Confidence intervals and paired tests for error rates measured on the same examples.

Inputs are per-example correctness (bool arrays, or the '0101…' bit-strings stored in records).
Error rates and their intervals are in percent. Built on numpy and scipy.stats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..evaluation.records import as_bool


def bootstrap_ci(correct, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (over examples, seeded) of the error rate, in percent."""
    wrong = ~as_bool(correct)
    n = wrong.size
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # Resampled error counts are Binomial(n, p̂) draws: identical in law to resampling examples,
    # and O(n_boot) instead of O(n_boot · n).
    rates = 100.0 * rng.binomial(n, wrong.mean(), size=n_boot) / n
    a = (1 - level) / 2
    lo, hi = np.quantile(rates, [a, 1 - a])
    return float(lo), float(hi)


EDGE = 10  # fewer wrong (or right) examples than this: the normal approximation fails (np ≥ 10 and n(1 − p) ≥ 10)


def at_edge(wrong: float, n: int) -> bool:
    """Whether an error count is too close to 0 or to n for a normal-approximation interval."""
    return min(wrong, n - wrong) < EDGE


def clopper_pearson(wrong: float, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of an error rate, in percent, from `wrong` errors in `n`
    examples: never of zero width, and never outside [0, 100].

    For an integer count it is scipy.stats.binomtest(wrong, n).proportion_ci(method="exact") (the test
    checks it); its beta-quantile form is written here because a count pooled over training seeds (the
    mean number of errors per seed) need not be an integer, which binomtest refuses."""
    a = (1 - level) / 2
    lo = 0.0 if wrong <= 0 else float(stats.beta.ppf(a, wrong, n - wrong + 1))
    hi = 1.0 if wrong >= n else float(stats.beta.ppf(1 - a, wrong + 1, n - wrong))
    return 100.0 * lo, 100.0 * hi


def wilson_ci(correct, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the error rate, in percent (good at rates near 0 or 100)."""
    wrong = ~as_bool(correct)
    n, k = wrong.size, int(wrong.sum())
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return 100.0 * ci.low, 100.0 * ci.high


@dataclass(frozen=True)
class PairedDifference:
    """Error of b minus error of a, on the same examples, in percentage points."""

    diff: float
    lo: float
    hi: float
    p_value: float  # exact McNemar test of "same error rate"
    n: int
    a_only_wrong: int  # examples a gets wrong and b right
    b_only_wrong: int


def paired_difference(a_correct, b_correct, *, level: float = 0.95) -> PairedDifference:
    """Difference of two error rates measured on the same examples, with a paired interval
    (Wald on the discordant pairs, as for McNemar; where either rate is at the edge, `at_edge`, never
    narrower than Newcombe's square-and-add interval from the two exact Clopper–Pearson intervals, so
    never of zero width) and the exact McNemar p-value."""
    a, b = as_bool(a_correct), as_bool(b_correct)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same examples: {a.size} vs {b.size}")
    n = a.size
    a_only = int((~a & b).sum())  # a wrong, b right
    b_only = int((a & ~b).sum())  # b wrong, a right
    d = (b_only - a_only) / n
    var = ((a_only + b_only) / n - d**2) / n
    z = stats.norm.ppf(0.5 + level / 2)
    half = z * np.sqrt(max(var, 0.0))
    lo, hi = 100 * (d - half), 100 * (d + half)
    wrong_a, wrong_b = int((~a).sum()), int((~b).sum())
    if at_edge(wrong_a, n) or at_edge(wrong_b, n):  # Wald fails there: widened to Newcombe's interval from exact arms
        (la, ua), (lb, ub) = clopper_pearson(wrong_a, n, level=level), clopper_pearson(wrong_b, n, level=level)
        pa, pb = 100 * wrong_a / n, 100 * wrong_b / n
        lo, hi = min(lo, 100 * d - float(np.hypot(pb - lb, ua - pa))), max(hi, 100 * d + float(np.hypot(ub - pb, pa - la)))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else stats.binomtest(b_only, discordant, 0.5).pvalue
    return PairedDifference(100 * d, lo, hi, float(p), n, a_only, b_only)
