"""The per-example worst case over attacks, and verdicts that obey the soundness checks.

- `worst_case_records(records)`: one record per target × setting × eps whose per-example
  correctness is "right under every attack run" (attack "worst-case"): the number a robustness
  claim should quote.
- `sound_verdicts(comparisons, checks)`: the paired tests of `analysis.paired_comparisons` with
  each significant row's sentence rewritten by what the checks and the worst case allow:
  * a check failed for either model: "inconclusive: <check> failed for <model> — possible
    gradient masking", with the numbers;
  * else, where the strong suite ran (a worst-case record at that setting and eps over an attack
    other than FGSM and I-FGSM): "supported"
    only when the worst-case difference is significant in the same direction, else "not supported
    by the worst case", with its numbers;
  * else (FGSM/I-FGSM only): the sentence, marked as resting on FGSM/I-FGSM alone.
Pure functions; no torch.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from ..attacks import CLEAN, attack_label
from .checks import WORST, Check

PAPER_ATTACKS = ("fgsm", "ifgsm")


class Interval(Protocol):
    """What a claim's verdict reads of an interval (robustmix.analysis.replication.SeedInterval)."""

    lo: float
    hi: float


# a claim's verdict (robustmix.study.claims; docs/protocol.md#verdict-rule)
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED = "reproduced", "not reproduced", "inconclusive", "not tested"
STATUS = ("supported", "inconclusive", "not supported", "paper suite only", "")
PAPER_ONLY = "rests on FGSM/I-FGSM alone: run --suite strong before quoting it"


def _failed(checks: list[Check], target: str) -> list[Check]:
    return [c for c in checks if c.target == target and c.status == "fail"]


def _inconclusive(row, checks: list[Check]) -> str | None:
    for target, label in ((row.a, row.method_a), (row.b, row.method_b)):
        bad = _failed(checks, target)
        if bad:
            names = ", ".join(c.check for c in bad)
            return (f"inconclusive: {names} check{'s' if len(bad) > 1 else ''} failed for {label} — possible gradient masking "
                    f"({bad[0].check}: {bad[0].detail}; see {bad[0].link})")
    return None


def strong_cells(records: list[dict]) -> set[tuple]:
    """(setting, eps_255) where a worst-case record covers an attack beyond FGSM and I-FGSM."""
    return {(r["setting"], r["eps_255"]) for r in records
            if r["attack"] == WORST and any(a not in PAPER_ATTACKS for a in r.get("attacks", ()))}


def sound_verdicts(comparisons: pd.DataFrame, checks: list[Check], records: list[dict]) -> pd.DataFrame:
    """comparisons (from analysis.paired_comparisons over `records`, worst-case rows included) with
    two columns added: `status` (one of STATUS; '' for rows with no claim) and `sound_verdict` (the
    sentence to print)."""
    df = comparisons.copy()
    if df.empty:
        return df.assign(status=pd.Series(dtype=str), sound_verdict=pd.Series(dtype=str))
    strong = strong_cells(records)
    worst = {(r.setting, r.eps_255, r.metric, r.a, r.b): r for r in df.itertuples(index=False)
             if r.attack == WORST and (r.setting, r.eps_255) in strong}
    status, text = [], []
    for row in df.itertuples(index=False):
        if not row.significant or row.setting == "clean":
            status.append("supported" if row.significant else "")
            text.append(row.verdict if row.significant else "")
            continue
        why = _inconclusive(row, checks)
        if why is not None:
            status.append("inconclusive")
            text.append(f"{row.verdict.rstrip('.')} — {why}")
            continue
        w = worst.get((row.setting, row.eps_255, row.metric, row.a, row.b))
        if w is None:  # no strong attack at this setting and eps
            status.append("paper suite only")
            text.append(f"{row.verdict.rstrip('.')} — {PAPER_ONLY}")
        elif w.significant and (w.diff > 0) == (row.diff > 0):
            status.append("supported")
            text.append(row.verdict if row.attack == WORST else f"{row.verdict.rstrip('.')} — supported by the worst case over all attacks ({abs(w.diff):.1f} points, Holm-adjusted p = {w.p_holm:.2g})")
        else:
            status.append("not supported")
            text.append(f"{row.verdict.rstrip('.')} — not supported by the worst case over all attacks: B − A = {w.diff:+.1f} points [{w.lo:+.1f}, {w.hi:+.1f}], Holm-adjusted p = {w.p_holm:.2g}")
    df["status"], df["sound_verdict"] = status, text
    return df


def judge_sign(iv: Interval, expected: int = -1) -> str:
    """A directional claim's verdict from the interval of err(method) − err(reference): reproduced when
    the whole interval has the expected sign (−1: the method's error is lower), not reproduced when the
    whole interval has the other sign, else inconclusive."""
    if expected * iv.lo > 0 and expected * iv.hi > 0:
        return REPRODUCED
    if expected * iv.lo < 0 and expected * iv.hi < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def judge_margin(iv: Interval, margin: float) -> str:
    """A "no difference" claim's verdict: reproduced when the interval lies inside ±margin (points),
    not reproduced when it lies wholly outside, else inconclusive."""
    if -margin <= iv.lo and iv.hi <= margin:
        return REPRODUCED
    if iv.lo > margin or iv.hi < -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def paired_verdict(row) -> str:
    """The sentence a paper may print, for a significant row of `paired_comparisons`."""
    better, worse = (row.method_b, row.method_a) if row.diff < 0 else (row.method_a, row.method_b)
    metric = row.metric.replace("top", "top-")
    if row.setting == CLEAN:
        return f"{better} has a lower clean {metric} error than {worse}: {abs(row.diff):.1f} points (Holm-adjusted p = {row.p_holm:.2g})."
    return (
        f"{better} is more robust than {worse} to {row.setting} {attack_label(row.attack)} at eps {row.eps_255:g}/255: "
        f"{metric} error {abs(row.diff):.1f} points lower (Holm-adjusted p = {row.p_holm:.2g})."
    )


def gate_verdict(diff: float, lo: float, hi: float, up: float, down: float, *, significant: bool = True) -> str:
    """The gate's verdict on one metric, d = now − baseline in points with its paired interval [lo, hi]:
    "regression" when d exceeds the tolerance `up` (and, with `significant`, the interval excludes 0),
    "improved" when −d exceeds `down` (likewise), else "pass". An override tolerance (robustmix bench's
    spec) judges d against it alone (`significant=False`)."""
    worse = diff > up and (lo > 0 or not significant)
    better = -diff > down and (hi < 0 or not significant)
    return "regression" if worse else "improved" if better else "pass"
