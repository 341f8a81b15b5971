"""Soundness checks: is an evaluation strong enough to believe? Pure functions over records.

Eight checks per target, from the field's checklist (Carlini et al. 2019, Athalye et al. 2018,
AutoAttack's flags; see docs/protocol.md), each `pass`, `warn` or `fail` with the numbers behind
it, `skip` when the records cannot say (e.g. one eps only), or `not informative` where the model
sits at the ceiling and the check could not fail whatever the attacks did (e.g. "converged" when
PGD already fools every example: doubling it cannot move the error up; a model broken at every
eps passes checks 1–6 trivially, and a pass there would read as evidence it is not):

1. iterative      white-box iterative attacks on the same loss (I-FGSM, PGD, APGD-CE) reach at
                  least FGSM's error
2. transfer       white-box (worst over attacks) reaches at least each black-box attack's error
3. gradient-free  Square does not beat the best gradient attack by more than 0.2 pp (AutoAttack);
                  Square on survivors: it fools at most 0.2 pp of the examples beyond them
4. monotone       error does not fall as eps grows
5. unbounded      PGD at eps 128/255 reaches ~100% error (at least chance)
6. converged      PGD with twice the iterations and restarts moves error by at most 1 pp
7. gradients      examples whose input gradient at x is all zero, NaN or inf
8. deterministic  two forward passes agree, and the outputs are logits, not probabilities

Checks 1–4 read the attack records; 5–8 read *probe* records (key "probe": "unbounded",
"converged", "gradients", "model") that the evaluator adds when it runs the checks. A warn is a
violation within the stated margin (noise at this number of examples); a fail is beyond it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..evaluation.records import as_bool

NOT_INFORMATIVE = "not informative"
STATUSES = ("pass", "warn", "fail", "skip", NOT_INFORMATIVE)
CHECKS = ("iterative", "transfer", "gradient-free", "monotone", "unbounded", "converged", "gradients", "deterministic")
PROTOCOL = "docs/protocol.md"
SINGLE_STEP = ("fgsm",)
ITERATIVE = ("ifgsm", "pgd", "apgd-ce")  # iterative attacks on FGSM's own loss (cross-entropy)
GRADIENT = SINGLE_STEP + ITERATIVE + ("apgd-dlr", "apgd-t", "fab-t")  # every gradient attack
GRADIENT_FREE = ("square",)
WORST = "worst-case"
UNBOUNDED_EPS = 128 / 255


@dataclass(frozen=True)
class Margins:
    """The stated margins, in percentage points of error (and fractions of examples)."""

    iterative_pp: float = 1.0
    transfer_pp: float = 1.0
    gradient_free_pp: float = 0.2  # AutoAttack's flag
    monotone_pp: float = 1.0
    unbounded_pp: float = 1.0  # pass at >= 100 − this; warn down to chance
    converged_pp: float = 1.0
    gradients_fraction: float = 0.01  # warn above 0, fail above this share of examples
    deterministic_atol: float = 1e-5


@dataclass(frozen=True)
class Check:
    """One soundness check of one target: `status` is pass, warn, fail or skip, `detail` the
    numbers behind it in one line, `link` its entry in docs/protocol.md."""

    check: str
    target: str
    status: str
    detail: str  # one line: the numbers behind the status
    numbers: dict = field(default_factory=dict)

    @property
    def link(self) -> str:
        return f"{PROTOCOL}#check-{self.check}"

    def to_dict(self) -> dict:
        return {**asdict(self), "link": self.link}


def err(r: dict) -> float:
    """Top-1 error in percent (0–100) of one record, from its per-example correctness."""
    wrong = ~as_bool(r["top1_correct"])
    return float(100.0 * wrong.sum() / max(1, wrong.size))


def fooled(r: dict):
    """Per-example booleans: True where the record's example is misclassified (top-1)."""
    return ~as_bool(r["top1_correct"])


def _e(eps_255: float) -> str:
    return f"{eps_255:g}/255"


def _grade(violation: float, margin: float) -> str:
    """pass when violation <= 0, warn when within the margin, fail beyond it."""
    return "pass" if violation <= 1e-9 else "warn" if violation <= margin + 1e-9 else "fail"


def at_ceiling(err_pp: float, margin: float) -> bool:
    """An error so close to 100% that a check needing it to fall short by more than `margin` cannot fail."""
    return err_pp >= 100.0 - margin - 1e-9


def _case(status: str, violation: float, detail: str, numbers: dict, ceiling: bool) -> tuple:
    """One case of a check; at the ceiling it is not informative (and says why)."""
    if ceiling:
        return (NOT_INFORMATIVE, float("-inf"), f"{detail} — at the ceiling: this check could not fail here", numbers)
    return (status, violation, detail, numbers)


def _worst(checks: list[tuple[str, float, str, dict]], name: str, target: str, empty: str) -> Check:
    """The check's result: the worst (status, violation) over its informative cases, with that case's
    numbers; "not informative" when no case is."""
    if not checks:
        return Check(name, target, "skip", empty)
    order = {NOT_INFORMATIVE: -1, "pass": 0, "warn": 1, "fail": 2}
    status, _, detail, numbers = max(checks, key=lambda c: (order[c[0]], c[1]))
    return Check(name, target, status, detail, numbers)


def on_survivors(r: dict) -> bool:
    """A record of an attack that ran only on the examples the attacks before it left (Square with
    square_on "survivors", or any attack after the first in a cascade): its error is not a stand-alone attack's."""
    return r.get("square_on") == "survivors" or bool(r.get("on_survivors"))


def nested(r: dict) -> bool:
    """A record of an attack run nested over eps (EvalConfig.nest_eps) above the smallest eps: the
    examples it fooled at a smaller eps carry that adversarial image (inside this ball) instead of a
    fresh run. Per example its top-1 error is at least a stand-alone run's, so it stands wherever a
    check asks an attack to reach an error (checks 1-3, 6 against a probe nested alike); it cannot
    fall as eps grows by construction, so check 4 leaves it out (a pass there would say nothing)."""
    return bool(r.get("nested"))


def _attack_records(records: list[dict], target: str) -> dict[tuple, dict]:
    return {
        (r["setting"], r["attack"], r["eps_255"]): r
        for r in records
        if r["target"] == target and not r.get("probe") and r["setting"] != "clean"
    }


def check_iterative(recs: dict, target: str, m: Margins) -> Check:
    """Check 1 (docs/protocol.md#check-iterative): white-box iterative attacks beat FGSM at each eps.
    `recs`: (setting, attack, eps_255) -> record of one target.
    """
    cases = []
    for (setting, attack, e), r in recs.items():
        if setting != "white-box" or attack not in SINGLE_STEP:
            continue
        for it in ITERATIVE:
            ri = recs.get((setting, it, e))
            if ri is None or on_survivors(ri):
                continue
            only = int((fooled(r) & ~fooled(ri)).sum())
            d = err(r) - err(ri)
            nums = {"eps_255": e, "attack": it, "err_fgsm": err(r), "err_iterative": err(ri), "fgsm_only": only}
            cases.append(_case(_grade(d, m.iterative_pp), d, f"eps {_e(e)}: FGSM {err(r):.1f}%, {it} {err(ri):.1f}%; FGSM fools {only} example(s) {it} does not",
                               nums, at_ceiling(err(ri), m.iterative_pp)))
    return _worst(cases, "iterative", target, "needs white-box FGSM and an iterative attack at the same eps")


def check_transfer(recs: dict, target: str, m: Margins) -> Check:
    """Check 2 (docs/protocol.md#check-transfer): white-box attacks beat transfer (black-box) attacks
    at each eps.
    """
    cases = []
    for (setting, attack, e), r in recs.items():
        if setting != "black-box" or attack_is_combined(attack):
            continue
        white = [w for (s, a, ee), w in recs.items() if s == "white-box" and ee == e and not attack_is_combined(a)]
        if not white:
            continue
        missed = fooled(r).copy()
        for w in white:
            missed &= ~fooled(w)
        best = max(white, key=err)
        d = err(r) - err(best)
        nums = {"eps_255": e, "attack": attack, "err_black_box": err(r), "err_white_box": err(best), "black_box_only": int(missed.sum())}
        cases.append(_case(_grade(d, m.transfer_pp), d, f"eps {_e(e)}: black-box {attack} {err(r):.1f}% vs white-box {best['attack']} {err(best):.1f}%; {int(missed.sum())} example(s) fooled by transfer and by no white-box attack",
                           nums, at_ceiling(err(best), m.transfer_pp)))
    return _worst(cases, "transfer", target, "needs white-box and black-box records at the same eps")


def check_gradient_free(recs: dict, target: str, m: Margins) -> Check:
    """Check 3 (docs/protocol.md#check-gradient-free): Square does not beat the gradient attacks by
    more than the margin. A Square record made on survivors (square_on "survivors": it queried only
    the examples no gradient attack fooled, the others kept x) has no stand-alone error, so it is
    graded on the share of examples it fooled and no gradient attack did.
    """
    cases = []
    for (setting, attack, e), r in recs.items():
        if setting != "white-box" or attack not in GRADIENT_FREE:
            continue
        grads = [g for (s, a, ee), g in recs.items() if s == setting and ee == e and a in GRADIENT]
        if not grads:
            continue
        best = max(grads, key=err)
        only = fooled(r).copy()
        for g in grads:
            only &= ~fooled(g)
        nums = {"eps_255": e, "err_gradient_free": err(r), "err_gradient": err(best), "best_gradient_attack": best["attack"], "gradient_free_only": int(only.sum())}
        if on_survivors(r):
            d = 100.0 * float(only.sum()) / max(1, only.size)
            cases.append(_case(_grade(d, m.gradient_free_pp), d,
                               f"eps {_e(e)}: {attack} on the survivors of the gradient attacks fooled {int(only.sum())} example(s) none of them did "
                               f"({d:.1f}% of {only.size}; margin {m.gradient_free_pp:g} pp)", {**nums, "square_on": "survivors", "only_pp": d},
                               at_ceiling(_union_err(grads), m.gradient_free_pp)))
            continue
        d = err(r) - err(best)
        cases.append(_case(_grade(d, m.gradient_free_pp), d,
                           f"eps {_e(e)}: {attack} {err(r):.1f}% vs best gradient attack {best['attack']} {err(best):.1f}% (margin {m.gradient_free_pp:g} pp); {int(only.sum())} example(s) fooled only without gradients",
                           nums, at_ceiling(err(best), m.gradient_free_pp)))
    return _worst(cases, "gradient-free", target, "needs Square and a gradient attack at the same eps (--suite strong)")


def check_monotone(recs: dict, target: str, m: Margins) -> Check:
    """Check 4 (docs/protocol.md#check-monotone): error does not fall as eps grows, per setting and attack
    (not an attack run nested over eps: it cannot fall by construction; the worst case over attacks stays)."""
    cases = []
    left_out = {(s, a) for (s, a, _), r in recs.items() if (on_survivors(r) or nested(r)) and not attack_is_combined(a)}
    for setting, attack in sorted({(s, a) for (s, a, _) in recs} - left_out):
        series = sorted((e, err(r)) for (s, a, e), r in recs.items() if (s, a) == (setting, attack))
        for (e0, a0), (e1, a1) in zip(series, series[1:]):
            d = a0 - a1
            nums = {"setting": setting, "attack": attack, "eps_255": [e0, e1], "err": [a0, a1]}
            cases.append(_case(_grade(d, m.monotone_pp), d, f"{setting} {attack}: {a0:.1f}% at eps {_e(e0)}, {a1:.1f}% at eps {_e(e1)}", nums,
                               at_ceiling(a1, m.monotone_pp)))
    return _worst(cases, "monotone", target, "needs two or more eps")


def _union_err(recs: list[dict]) -> float:
    """% of examples at least one of these records fools (their per-example union)."""
    wrong = fooled(recs[0]).copy()
    for r in recs[1:]:
        wrong |= fooled(r)
    return float(100.0 * wrong.sum() / max(1, wrong.size))


def attack_is_combined(attack: str) -> bool:
    return attack in (WORST, "autoattack")


def _probe(records: list[dict], target: str, kind: str) -> dict | None:
    return next((r for r in records if r["target"] == target and r.get("probe") == kind), None)


def check_unbounded(records: list[dict], target: str, m: Margins) -> Check:
    """Check 5 (docs/protocol.md#check-unbounded): PGD at eps 128/255 (a probe) reaches nearly 100% error."""
    r = _probe(records, target, "unbounded")
    if r is None:
        return Check("unbounded", target, "skip", "no unbounded-attack probe in these records (run with --suite strong)")
    chance = 100.0 * (1 - 1 / r["num_classes"])
    e = err(r)
    status = "pass" if e >= 100 - m.unbounded_pp else "warn" if e >= chance else "fail"
    of = f" on {r['n']} examples (a subset)" if r.get("probe_subset") else ""
    detail = f"{r['attack']} at eps {_e(r['eps_255'])}: {e:.1f}% error{of} (pass >= {100 - m.unbounded_pp:g}%, chance {chance:.1f}%)"
    numbers = {"eps_255": r["eps_255"], "err": e, "chance": chance, "n": r["n"]}
    worst = max((err(a) for (s, _, _), a in _attack_records(records, target).items() if s == "white-box"), default=0.0)
    if status == "pass" and at_ceiling(worst, m.unbounded_pp):  # the run's own attacks already break it: nothing left to show
        return Check("unbounded", target, NOT_INFORMATIVE, f"{detail} — the run's attacks already reach {worst:.1f}%: this check "
                     "could not fail here", numbers)
    return Check("unbounded", target, status, detail, numbers)


def check_converged(records: list[dict], target: str, m: Margins) -> Check:
    """Check 6 (docs/protocol.md#check-converged): doubling PGD's steps and restarts (a probe) moves
    its error by at most the margin.
    """
    cases = []
    recs = _attack_records(records, target)
    for r in records:
        if r["target"] != target or r.get("probe") != "converged":
            continue
        base = recs.get((r["setting"], r["attack"], r["eps_255"]))
        if base is None:
            continue
        if r.get("probe_subset"):  # the probe ran on a subset: compare on those same examples (paired)
            base = {**base, "top1_correct": "".join(c for c, k in zip(base["top1_correct"], r["probe_subset"]) if k == "1")}
        d = abs(err(r) - err(base))
        of = f" on the same {r['n']} examples (a subset)" if r.get("probe_subset") else ""
        nums = {"eps_255": r["eps_255"], "attack": r["attack"], "err": err(base), "err_doubled": err(r), "iters": [base.get("iters"), r.get("iters")], "restarts": [base.get("restarts"), r.get("restarts")], "n": r["n"]}
        cases.append(_case(_grade(d - m.converged_pp, m.converged_pp), d,
                           f"eps {_e(r['eps_255'])}: {r['attack']} {err(base):.1f}% ({base.get('iters')} iters × {base.get('restarts')}) vs {err(r):.1f}% ({r.get('iters')} × {r.get('restarts')}){of}; margin {m.converged_pp:g} pp",
                           nums, at_ceiling(err(base), m.converged_pp)))
    return _worst(cases, "converged", target, "no convergence probe in these records (run with --suite strong)")


def check_gradients(records: list[dict], target: str, m: Margins) -> Check:
    """Check 7 (docs/protocol.md#check-gradients): input gradients at x are not zero, NaN or inf for
    more than 1% of the examples.
    """
    r = _probe(records, target, "gradients")
    if r is None:
        return Check("gradients", target, "skip", "no gradient probe in these records")
    bad = r["zero"] + r["nonfinite"]
    share = bad / max(1, r["n"])
    status = "pass" if bad == 0 else "warn" if share <= m.gradients_fraction else "fail"
    return Check("gradients", target, status, f"{r['zero']} of {r['n']} examples have an all-zero input gradient at x, {r['nonfinite']} a NaN/inf one ({100 * share:.1f}%; fail above {100 * m.gradients_fraction:g}%)",
                 {"n": r["n"], "zero": r["zero"], "nonfinite": r["nonfinite"]})


def check_deterministic(records: list[dict], target: str, m: Margins) -> Check:
    """Check 8 (docs/protocol.md#check-deterministic): two forward passes agree and the outputs are
    logits, not probabilities.
    """
    r = _probe(records, target, "model")
    if r is None:
        return Check("deterministic", target, "skip", "no model probe in these records")
    randomized, probs = r["rerun_max_diff"] > m.deterministic_atol, bool(r["probabilities"])
    status = "fail" if randomized or probs else "pass"
    return Check("deterministic", target, status, f"two forward passes differ by up to {r['rerun_max_diff']:.3g} (fail above {m.deterministic_atol:g}); outputs {'look like probabilities' if probs else 'are logits'}",
                 {"rerun_max_diff": r["rerun_max_diff"], "probabilities": probs})


def soundness_checks(records: list[dict], *, margins: Margins | None = None) -> list[Check]:
    """Every check for every target in the records, in CHECKS order per target."""
    m = margins or Margins()
    out = []
    for target in dict.fromkeys(r["target"] for r in records):
        recs = _attack_records(records, target)
        out += [
            check_iterative(recs, target, m),
            check_transfer(recs, target, m),
            check_gradient_free(recs, target, m),
            check_monotone(recs, target, m),
            check_unbounded(records, target, m),
            check_converged(records, target, m),
            check_gradients(records, target, m),
            check_deterministic(records, target, m),
        ]
    return out


def failed(checks: list[Check], target: str) -> list[Check]:
    """The checks of `target` that failed."""
    return [c for c in checks if c.target == target and c.status == "fail"]


