"""The claims C1–C12 (docs/protocol.md#claims) judged by the verdict rule (docs/protocol.md#verdict-rule)
on a study's records, with the training seed as the unit of replication (`robustmix.analysis.replication`).

Every claim is a difference d = method − reference (negative favours the method), read at the
[claims] eps; a claim in two parts (C5, C9, C11) gives one row per part. Each row is checked in
this order (every rule is robustmix.soundness.verdicts'):
1. not tested: the study has no model or attack the claim needs (the reason says which);
2. not testable: the data cannot decide it: C5's top-5 on ≤ 10 classes, C12 without mixup's FGSM
   advantage (its premise: C1's 95% interval below 0), or every arm within `margin` pp of 100% or
   of 0% (the ceiling, the floor);
3. not reproduced: a soundness check failed for a model the claim rests on;
4. inconclusive: an arm has fewer training seeds than [claims] min_seeds (default 3, at least 2);
5. the rows left are the family: each has a two-sided p-value of "d = null" (null 0 for a
   directional claim, −margin for a "no improvement" claim), Holm-adjusted across the family, and
   its verdict is judge_sign / judge_no_improvement of the adjusted p (`decide`); C2 also needs both
   errors ≥ `broken` %, else a reproduced C2 is inconclusive.
Before all of them, the controls (docs/protocol.md#controls): a spec's positive and negative controls
are read (`read_controls`) and, when one misreads, every row is "not valid" with the reason.
Controls are attacked like targets and enter no claim's arms.
Pure functions of records, probe data and the spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..analysis.comparisons import holm
from ..analysis.replication import (
    BORROWED,
    EXAMPLES_ONLY,
    SeedInterval,
    difference_interval,
    mean_difference_interval,
)
from ..evaluation.records import as_bool
from ..soundness.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    NOT_TESTED,
    NOT_VALID,
    POSITIVE_CONTROL,
    REPRODUCED,
    ControlReading,
    at_bound,
    controls_misread,
    few_classes,
    judge_no_improvement,
    judge_sign,
    no_improvement_null,
    read_negative_control,
    read_positive_control,
    too_few_seeds,
)
from .spec import StudySpec

PAPER_EPOCHS = 200  # the paper's CIFAR-10 training length (C8)
PENDING = ""  # a row in the family, before `decide`


@dataclass(frozen=True)
class Claim:
    claim: str  # "C1", or "C5" for each of its parts
    part: str  # what this row tests
    verdict: str
    difference: float | None = None  # method − reference (pp, or the quantity's units for C7)
    lo: float | None = None  # its 95% seed-level interval (unadjusted)
    hi: float | None = None
    p_value: float | None = None  # two-sided p of "difference = null", unadjusted
    p_holm: float | None = None  # Holm-adjusted across the rows judged (the family); None outside it
    null: float | None = None  # the difference the p-value tests: 0, or −margin for a "no improvement" claim
    margin: float | None = None  # pp, for a "no improvement" claim (one-sided: the advantage stays below it)
    unit: str = "pp"
    interval: str = ""  # the interval's method (replication.TWO_WAY, BORROWED, EXAMPLES_ONLY)
    rests_on: str = ""  # the models, attack, eps and examples
    reason: str = ""  # why it is not tested / not testable / inconclusive before any test / not reproduced by a check
    note: str = ""  # caveats: training length, the data, the interval's method

    @property
    def anchor(self) -> str:
        return self.claim.lower()

    @property
    def rule(self) -> str:
        if self.margin is None:
            return "direction: difference < 0"
        return f"no improvement: advantage < {self.margin:g} pp (difference > −{self.margin:g})"

    def to_dict(self) -> dict:
        return {**asdict(self), "rule": self.rule if self.difference is not None else ""}


class Study:
    """The study's records and roles: which target is ERM, mixup, CutMix, … and its seed slots."""

    def __init__(self, spec: StudySpec, paper: list[dict], strong: list[dict], checks: list[dict], pairs: dict | None,
                 num_classes: int):
        self.spec, self.paper, self.strong, self.pairs, self.num_classes = spec, paper, strong, pairs or {}, num_classes
        self.eps = spec.claims.eps
        self.failed = {}
        for c in checks:
            if c["status"] == "fail":
                self.failed.setdefault(c["target"], []).append(c["check"])
        self.slots = {t.name: [f"{t.name}-s{c.seed}" for c in t.configs] for t in spec.bench.targets}
        self.seeds = {t.name: [c.seed for c in t.configs] for t in spec.bench.targets}
        self.configs = {t.name: t.configs[0] for t in spec.bench.targets}
        self.controls = spec.controls  # {name: role}: attacked like targets, in no claim's arms

    def role(self, method: str, adv: bool | None = None) -> str | None:
        """The first target (not a control) trained with `method` (puzzle-mix: with or without its adv option)."""
        for name, c in self.configs.items():
            if name in self.controls:
                continue
            if c.method == method and (adv is None or bool(c.method_options.get("adv_p", 0)) == adv):
                return name
        return None

    def bits(self, records: list[dict], name: str, setting: str, attack: str, eps: float, metric: str = "top1") -> list[str] | None:
        index = {(r["target"], r["setting"], r["attack"], round(r["eps_255"], 6)): r for r in records}
        out = [index.get((slot, setting, attack, round(eps, 6) if setting != "clean" else 0.0)) for slot in self.slots[name]]
        return None if any(r is None for r in out) else [r[f"{metric}_correct"] for r in out]

    def paired(self, a: str, b: str) -> bool:
        return self.seeds[a] == self.seeds[b]

    def label(self, name: str) -> str:
        return f"{name} (seed{'s' if len(self.seeds[name]) > 1 else ''} {', '.join(map(str, self.seeds[name]))})"

    def failures(self, *names: str) -> str:
        bad = [f"{check} failed for {slot}" for n in names for slot in self.slots[n] for check in self.failed.get(slot, [])]
        return "; ".join(bad)


def pooled_error(per_seed: list) -> float:
    """The error (%) of an arm pooled over its seeds."""
    return 100 * float(np.mean([1 - as_bool(b).mean() for b in per_seed]))


def _interval_note(iv: SeedInterval, ref: str) -> str:
    if iv.method.startswith(BORROWED):
        return f"one-seed arm: its seed variance borrowed from {ref} (assumes the same spread between seeds)"
    if iv.method.startswith(EXAMPLES_ONLY):
        return "one seed per arm: the interval covers test-set noise only"
    return ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def judgeable(study: Study, row: Claim, arms: tuple[str, ...], errors: dict[str, float], *, sound: tuple[str, ...] = (),
              premise: str = "") -> Claim:
    """Steps 2–4 of the rule (module docstring): the row with its verdict and reason, or PENDING."""
    bound = at_bound(errors, study.spec.claims.margin)
    if premise or bound:
        return replace(row, verdict=NOT_TESTABLE, reason=_join(premise, bound))
    bad = study.failures(*sound)
    if bad:
        return replace(row, verdict=NOT_REPRODUCED, reason=f"soundness check(s) failed: {bad}")
    few = too_few_seeds({a: len(study.seeds[a]) for a in arms}, study.spec.claims.min_seeds)
    if few:
        return replace(row, verdict=INCONCLUSIVE, reason=few)
    return replace(row, verdict=PENDING)


def compare(study: Study, claim: str, part: str, method: str | None, ref: str | None, setting: str, attack: str, *,
            suite: str = "paper", metric: str = "top1", margin: float | None = None, note: str = "", needs: str = "") -> Claim:
    """One error-rate claim: err(method) − err(ref) under (setting, attack) at the claims eps; `margin`:
    a "no improvement" claim (the method's advantage stays below it)."""
    if method is None or ref is None:
        return Claim(claim, part, NOT_TESTED, reason=f"no {needs} model in the study")
    records = study.paper if suite == "paper" else study.strong
    a = study.bits(records, ref, setting, attack, study.eps, metric)
    b = study.bits(records, method, setting, attack, study.eps, metric)
    if a is None or b is None:
        return Claim(claim, part, NOT_TESTED, reason=f"the {suite} suite has no {setting} {attack} at eps {study.eps:g}/255")
    null = 0.0 if margin is None else no_improvement_null(margin)
    iv = difference_interval(a, b, paired_seeds=study.paired(ref, method), null=null, borrow=True)
    where = "clean" if setting == "clean" else f"{setting} {attack} at eps {study.eps:g}/255"
    rests = f"{study.label(method)} − {study.label(ref)}, {where}, {metric.replace('top', 'top-')}, {iv.n} examples ({suite} suite)"
    row = Claim(claim, part, PENDING, iv.estimate, iv.lo, iv.hi, iv.p_value, None, null, margin, "pp", iv.method, rests,
                note=_join(note, _interval_note(iv, ref)))
    return judgeable(study, row, (method, ref), {method: pooled_error(b), ref: pooled_error(a)},
                     sound=() if setting == "clean" else (method, ref))


def claim_probe(study: Study, claim: str, erm: str | None, mixup: str | None, quantity: str) -> Claim:
    """C6 (miss rate between training pairs, pp) and C7 (input-gradient norm) at λ, per pair and seed."""
    part = "Figure 2(a): fewer misses in between" if quantity == "miss" else "Figure 2(b): smaller gradient norms in between"
    if erm is None or mixup is None:
        return Claim(claim, part, NOT_TESTED, reason="no ERM and mixup models in the study")
    pairs = study.pairs.get("pairs", {})
    if any(slot not in pairs for slot in study.slots[erm] + study.slots[mixup]):
        return Claim(claim, part, NOT_TESTED, reason="no Figure 2 data (run the probes stage)")
    paired, errors = study.paired(erm, mixup), {}
    if quantity == "miss":  # a miss counts as an error: the interval of a difference of miss rates
        correct = lambda n: ["".join("0" if c == "1" else "1" for c in pairs[s]["miss"]) for s in study.slots[n]]  # noqa: E731
        iv, unit = difference_interval(correct(erm), correct(mixup), paired_seeds=paired, borrow=True), "pp"
        errors = {mixup: pooled_error(correct(mixup)), erm: pooled_error(correct(erm))}
    else:
        values = lambda n: [pairs[s]["grad"] for s in study.slots[n]]  # noqa: E731
        iv, unit = mean_difference_interval(values(erm), values(mixup), paired_seeds=paired, borrow=True), "‖∇x‖₂"
    lam = study.pairs.get("lam", study.spec.claims.lam)
    rests = f"{study.label(mixup)} − {study.label(erm)}, {iv.n} training pairs at λ = {lam:g}"
    row = Claim(claim, part, PENDING, iv.estimate, iv.lo, iv.hi, iv.p_value, None, 0.0, None, unit, iv.method, rests,
                note=_interval_note(iv, erm))
    return judgeable(study, row, (mixup, erm), errors)


def claim_c12(study: Study, erm: str | None, mixup: str | None, c1: Claim) -> Claim:
    """C12 on the strong suite: (worst − FGSM) of mixup minus that of ERM; its premise is C1's advantage."""
    part = "advantage under the worst case − advantage under FGSM (white-box)"
    if erm is None or mixup is None:
        return Claim("C12", part, NOT_TESTED, reason="no ERM and mixup models in the study")
    eps = [r["eps_255"] for r in study.strong if r["attack"] == "worst-case" and r["setting"] == "white-box"]
    if not eps:
        return Claim("C12", part, NOT_TESTED, reason="no strong suite with a white-box worst case in the study")
    at = study.eps if any(abs(e - study.eps) < 1e-6 for e in eps) else max(eps)
    get = lambda n, attack: study.bits(study.strong, n, "white-box", attack, at)  # noqa: E731
    if any(get(n, a) is None for n in (erm, mixup) for a in ("fgsm", "worst-case")):
        return Claim("C12", part, NOT_TESTED, reason="the strong suite has no white-box FGSM on the same examples")
    wrong = lambda bits: (~as_bool(bits)).astype(float)  # noqa: E731
    gap = lambda n: [wrong(w) - wrong(f) for w, f in zip(get(n, "worst-case"), get(n, "fgsm"))]  # noqa: E731
    iv = mean_difference_interval(gap(mixup), gap(erm), paired_seeds=study.paired(erm, mixup), borrow=True)
    iv = SeedInterval(**{**iv.to_dict(), **{k: 100 * getattr(iv, k) for k in ("estimate", "lo", "hi", "se")}})
    rests = f"{study.label(erm)} and {study.label(mixup)}, white-box worst case vs FGSM at eps {at:g}/255, {iv.n} examples (strong suite)"
    note = "" if at == study.eps else f"read at eps {at:g}/255, the strong suite's largest (not at the claims eps)"
    premise = ""
    if c1.difference is None or not (c1.hi is not None and c1.hi < 0):
        shown = "not measured" if c1.difference is None else f"C1: {c1.difference:+.1f} pp [{c1.lo:+.1f}, {c1.hi:+.1f}]"
        premise = f"premise fails: mixup has no white-box FGSM advantage to shrink ({shown})"
    row = Claim("C12", part, PENDING, iv.estimate, iv.lo, iv.hi, iv.p_value, None, 0.0, None, "pp", iv.method, rests,
                note=_join(note, _interval_note(iv, erm)))
    worst = {n: pooled_error(get(n, "worst-case")) for n in (mixup, erm)}
    return judgeable(study, row, (mixup, erm), worst, sound=(erm, mixup), premise=premise)


def decide(rows: list[Claim]) -> list[Claim]:
    """Step 5: Holm across the rows still PENDING (the family), each judged on its adjusted p."""
    family = [i for i, r in enumerate(rows) if r.verdict == PENDING]
    out = list(rows)
    if not family:
        return out
    raw = [rows[i].p_value if rows[i].p_value is not None and np.isfinite(rows[i].p_value) else 1.0 for i in family]
    for i, p in zip(family, holm(raw)):
        r = rows[i]
        verdict = judge_sign(r.difference, p) if r.margin is None else judge_no_improvement(r.difference, p, r.margin)
        out[i] = replace(r, verdict=verdict, p_holm=float(p))
    return out


def broken_check(study: Study, row: Claim, erm: str, mixup: str) -> Claim:
    """C2 needs both white-box I-FGSM errors ≥ `broken` %: a reproduced C2 without it is inconclusive."""
    level = study.spec.claims.broken
    errs = {n: pooled_error(study.bits(study.paper, n, "white-box", "ifgsm", study.eps)) for n in (erm, mixup)}
    low = [f"{n} {e:.1f}%" for n, e in errs.items() if e < level]
    said = f"both errors ≥ {level:g}%: " + ("yes" if not low else f"no ({', '.join(low)})")
    if low and row.verdict == REPRODUCED:
        return replace(row, verdict=INCONCLUSIVE, reason=said)
    return replace(row, note=_join(said, row.note))


def strong_eps(study: Study) -> float | None:
    """The eps at which the strong suite's white-box worst case is read: the claims eps when it ran there, else
    its largest; None without such records."""
    eps = [r["eps_255"] for r in study.strong if r["attack"] == "worst-case" and r["setting"] == "white-box"]
    return None if not eps else study.eps if any(abs(e - study.eps) < 1e-6 for e in eps) else max(eps)


def read_controls(study: Study) -> list[ControlReading]:
    """Each control of the spec, read by its rule (robustmix.soundness.verdicts): a positive control's pooled
    white-box worst case under the strong suite against the ERM target's, and every control's failed checks."""
    at, erm, out = strong_eps(study), study.role("erm"), []
    for name, role in study.controls.items():
        failed = {slot: study.failed.get(slot, []) for slot in study.slots[name]}
        if role != POSITIVE_CONTROL:
            out.append(read_negative_control(name, failed))
            continue
        worst = {n: study.bits(study.strong, n, "white-box", "worst-case", at) if at is not None and n else None for n in (name, erm)}
        err = {n: pooled_error(b) if b is not None else None for n, b in worst.items()}
        where = f" (eps {at:g}/255, strong suite, {len(worst[name][0])} examples)" if worst[name] is not None else ""
        out.append(read_positive_control(name, err[name], err.get(erm), {s: f for s, f in failed.items() if f},
                                         gap=study.spec.claims.control_gap, margin=study.spec.claims.margin, where=where))
    return out


def invalidate(rows: list[Claim], readings: list[ControlReading]) -> list[Claim]:
    """Every row "not valid" (its numbers kept, no Holm family) when a control misreads; else the rows as they are."""
    why = controls_misread(readings)
    return rows if why is None else [replace(r, verdict=NOT_VALID, reason=why, p_holm=None) for r in rows]


def judge_claims(study: Study) -> list[Claim]:
    """Every claim C1–C12, one row per part, in order, judged; all "not valid" when a control misreads."""
    erm, mixup = study.role("erm"), study.role("mixup")
    wb, bb, wf, wi = "white-box", "black-box", "fgsm", "ifgsm"
    margin = study.spec.claims.margin
    rows = [
        compare(study, "C1", "white-box FGSM: mixup below ERM", mixup, erm, wb, wf, needs="ERM and mixup"),
        compare(study, "C2", "white-box I-FGSM: both broken, mixup's advantage below the margin", mixup, erm, wb, wi,
                margin=margin, needs="ERM and mixup"),
        compare(study, "C3", "black-box FGSM: mixup below ERM", mixup, erm, bb, wf, needs="ERM and mixup"),
        compare(study, "C4", "black-box I-FGSM: mixup below ERM", mixup, erm, bb, wi, needs="ERM and mixup"),
    ]
    for setting, attack, what in ((wb, wf, "white-box FGSM"), (bb, wf, "black-box FGSM"), (bb, wi, "black-box I-FGSM")):
        few = few_classes(study.num_classes)
        rows.append(Claim("C5", f"top-5, {what}", NOT_TESTABLE, reason=few) if few else
                    compare(study, "C5", f"top-5, {what}", mixup, erm, setting, attack, metric="top5", needs="ERM and mixup"))
    rows += [claim_probe(study, "C6", erm, mixup, "miss"), claim_probe(study, "C7", erm, mixup, "grad")]
    epochs = study.configs[mixup].epochs if mixup else 0
    rows.append(compare(study, "C8", "clean error: mixup ≤ ERM", mixup, erm, "clean", "none", needs="ERM and mixup",
                        note=f"{epochs} epochs, not the paper's {PAPER_EPOCHS}: a claim about shorter training" if mixup and epochs < PAPER_EPOCHS else ""))
    manifold = study.role("manifold-mixup")
    rows.append(compare(study, "C9", "Manifold Mixup, white-box FGSM: below ERM", manifold, erm, wb, wf, needs="Manifold Mixup"))
    rows.append(compare(study, "C9", "Manifold Mixup, white-box PGD: advantage over ERM below the margin", manifold, erm, wb, "pgd",
                        suite="strong", margin=margin, needs="Manifold Mixup"))
    rows.append(compare(study, "C10", "CutMix below mixup under white-box FGSM", study.role("cutmix"), mixup, wb, wf,
                        needs="CutMix (and mixup)", note=f"the paper's claim is about ImageNet at 8/255; tested on {study.spec.data_label} at eps {study.eps:g}/255"))
    puzzle = study.role("puzzle-mix", adv=False)
    half = puzzle and erm and study.configs[puzzle].epochs < study.configs[erm].epochs  # the paper's "half": its FGSM error 92.57
    rows.append(compare(study, "C11", "Puzzle Mix, white-box FGSM: advantage over ERM below the margin", puzzle,
                        erm, wb, wf, margin=margin, needs="Puzzle Mix (without adv)",
                        note=f"Puzzle Mix trained {study.configs[puzzle].epochs} epochs against ERM's {study.configs[erm].epochs} "
                             "(the paper's \"half\" variant: the same network evaluations)" if half else ""))
    rows.append(compare(study, "C11", "Puzzle Mix (adv), white-box FGSM: below ERM", study.role("puzzle-mix", adv=True), erm, wb, wf,
                        needs="Puzzle Mix adv (adv_p > 0)"))
    rows.append(claim_c12(study, erm, mixup, rows[0]))
    rows = decide(rows)
    rows = [broken_check(study, r, erm, mixup) if r.claim == "C2" and r.difference is not None else r for r in rows]
    return invalidate(rows, read_controls(study))
