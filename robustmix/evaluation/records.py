"""Records: one per target × setting × attack × eps, with the per-example correctness behind its
error rates as '0101…' bit-strings. Decoding them, the error rate of one, and the per-example worst
case over attacks (`worst_case_records`: the number a robustness claim should quote)."""

from __future__ import annotations

import numpy as np

from ..attacks import WORST
from ..models.predict import percent_wrong


def as_bool(correct) -> np.ndarray:
    """A bool array from a bool/0-1 array or a '0101…' bit-string."""
    if isinstance(correct, str):
        return np.frombuffer(correct.encode("ascii"), dtype=np.uint8) == ord("1")
    return np.asarray(correct).astype(bool)


def error_rate(correct) -> float:
    """Error in percent (0–100) from per-example correctness (booleans, or a bit string from a results
    record); NaN for no examples.
    """
    c = as_bool(correct)
    return percent_wrong(int(c.size - np.count_nonzero(c)), c.size)


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
        keep.update({"adversarial": first["adversarial"]} if first.get("adversarial") else {})
        on = {"square_on": "survivors"} if any(r.get("square_on") == "survivors" for r in recs) else {}  # provenance, not a label
        out.append({**keep, **on, "attack": WORST, "iters": None, "attacks": [r["attack"] for r in recs],
                    "top1_err": error_rate(c1), "top5_err": error_rate(c5),
                    "top1_correct": _bits(c1), "top5_correct": _bits(c5)})
    return out
