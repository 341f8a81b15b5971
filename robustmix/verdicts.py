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

import pandas as pd

from .soundness import WORST, Check
from .stats import as_bool, error_rate

PAPER_ATTACKS = ("fgsm", "ifgsm")
STATUS = ("supported", "inconclusive", "not supported", "paper suite only", "")
PAPER_ONLY = "rests on FGSM/I-FGSM alone: run --suite strong before quoting it"


def _bits(c) -> str:
    return "".join("1" if b else "0" for b in c)


def worst_case_records(records: list[dict]) -> list[dict]:
    """Per target × setting × eps with two or more attacks: correct only if correct under every
    attack. Probe records and existing worst-case records are ignored."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["setting"] == "clean" or r.get("probe") or r["attack"] == WORST:
            continue
        groups.setdefault((r["target"], r["setting"], r["eps_255"]), []).append(r)
    out = []
    for (_, _, _), recs in groups.items():
        if len(recs) < 2 or len({r["n"] for r in recs}) != 1:
            continue
        first = recs[0]
        c1 = as_bool(first["top1_correct"]).copy()
        c5 = as_bool(first["top5_correct"]).copy()
        for r in recs[1:]:
            c1 &= as_bool(r["top1_correct"])
            c5 &= as_bool(r["top5_correct"])
        keep = {k: first.get(k) for k in ("target", "method", "alpha", "seed", "setting", "eps", "eps_255", "surrogate", "n", "amp")}
        on = {"square_on": "survivors"} if any(r.get("square_on") == "survivors" for r in recs) else {}  # provenance, not a label
        out.append({**keep, **on, "attack": WORST, "iters": None, "attacks": [r["attack"] for r in recs],
                    "top1_err": error_rate(c1), "top5_err": error_rate(c5),
                    "top1_correct": _bits(c1), "top5_correct": _bits(c5)})
    return out


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


def render_verdicts(df: pd.DataFrame, *, alpha: float = 0.05) -> str:
    """The verdicts to print (Markdown list): every claim a significant paired test makes, with
    what the checks and the worst case say about it; then a note when no strong attack ran."""
    if df.empty:
        return "- No paired tests: a paired test needs two or more targets evaluated on the same examples.\n"
    claims = df[df.status != ""]
    if claims.empty:
        return "- No difference between methods is significant: this data does not show any method to be more robust.\n"
    order = {s: i for i, s in enumerate(STATUS)}
    lines = [f"- **{row.status}**: {row.sound_verdict}" for row in sorted(claims.itertuples(index=False), key=lambda r: order[r.status])]
    if (claims.status == "paper suite only").any():
        lines.append(f"\nThese verdicts rest on FGSM/I-FGSM alone (Holm-adjusted p < {alpha:g}); run `robustmix attack --suite strong` "
                     "for PGD, APGD-CE, APGD-DLR, Square and the per-example worst case.")
    return "\n".join(lines) + "\n"
