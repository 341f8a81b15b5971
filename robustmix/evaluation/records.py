"""Records: one per target × setting × attack × eps, with the per-example correctness behind its
error rates as '0101…' bit-strings. Decoding them, the error rate of one, the per-example worst
case over attacks (`worst_case_records`: the number a robustness claim should quote) and
AutoAttack's record (`autoattack_records`: wrong under any of its four attacks, the number to quote
as "AutoAttack (standard)")."""

from __future__ import annotations

import numpy as np

from ..attacks import AUTOATTACK, AUTOATTACK_ATTACKS, COMBINED, WORST, is_standard_autoattack
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


def bits(c) -> str:
    """Per-example booleans (a bool array or tensor) as a '0101…' bit-string."""
    return "".join("1" if b else "0" for b in (c.tolist() if hasattr(c, "tolist") else c))


_bits = bits


def worst_case_records(records: list[dict]) -> list[dict]:
    """Per target × setting × eps with two or more attacks: correct only if correct under every
    attack. Probe records and existing combined records (worst case, AutoAttack) are ignored."""
    return combined_records(records, WORST)


def autoattack_records(records: list[dict], config) -> list[dict]:
    """AutoAttack's record per target × eps (white-box): correct only if correct under each of its
    four attacks, as AutoAttack's robust accuracy counts; "standard" says whether `config` held
    AutoAttack's standard budget and cascade (the only case its label claims the name)."""
    standard = bool(config.cascade) and is_standard_autoattack(config.budget)
    return [{**r, "standard": standard} for r in combined_records(records, AUTOATTACK, AUTOATTACK_ATTACKS)
            if r["setting"] == "white-box"]


def combined_records(records: list[dict], name: str, attacks: tuple[str, ...] | None = None) -> list[dict]:
    """Per target × setting × eps with two or more of `attacks` (None: every attack run): a record
    `name` correct only where every one of them is. Probe records and combined records are ignored."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["setting"] == "clean" or r.get("probe") or r["attack"] in COMBINED or (attacks is not None and r["attack"] not in attacks):
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
        on.update({"cascade": True} if any(r.get("on_survivors") for r in recs) else {})
        on.update({"nested": True} if any(r.get("nested") for r in recs) else {})  # some attack nested over eps
        out.append({**keep, **on, "attack": name, "iters": None, "attacks": [r["attack"] for r in recs],
                    "top1_err": error_rate(c1), "top5_err": error_rate(c5),
                    "top1_correct": _bits(c1), "top5_correct": _bits(c5)})
    return out
