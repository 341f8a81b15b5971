"""The claims C1–C12 (docs/protocol.md#claims) judged by the verdict rule (docs/protocol.md#verdict-rule)
on a study's records, with the training seed as the unit of replication (`robustmix.analysis.replication`).

Every claim is a difference "method − reference" (negative favours the method), read at the
[claims] eps; a claim in two parts (C5, C9, C11) gives one row per part. A row is
- reproduced: the sign the paper reports, and the 95% seed-level interval excludes 0 (for a "no
  meaningful difference" claim: the whole interval lies within ±margin, and for C2 both errors are
  at least `broken` %);
- not reproduced: the interval lies entirely on the other side of 0 (outside ±margin), or a
  soundness check failed for a model the claim rests on;
- inconclusive: otherwise;
- not tested: the study has no model or attack the claim needs (the reason says which).
Pure functions of records, probe data and the spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..analysis.replication import (
    EXAMPLES_ONLY,
    SeedInterval,
    difference_interval,
    mean_difference_interval,
)
from ..evaluation.records import as_bool
from ..soundness.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
    judge_margin,
    judge_sign,
)
from .spec import StudySpec

PAPER_EPOCHS = 200  # the paper's CIFAR-10 training length (C8)


@dataclass(frozen=True)
class Claim:
    claim: str  # "C1", or "C5" for each of its parts
    part: str  # what this row tests
    verdict: str
    difference: float | None = None  # method − reference (pp, or the quantity's units for C7)
    lo: float | None = None
    hi: float | None = None
    p_value: float | None = None
    unit: str = "pp"
    interval: str = ""  # the interval's method (replication.TWO_WAY / EXAMPLES_ONLY)
    rests_on: str = ""  # the models, attack, eps and examples
    note: str = ""  # the reason for "not tested", the margin, a failed check, a caveat

    @property
    def anchor(self) -> str:
        return self.claim.lower()

    def to_dict(self) -> dict:
        return asdict(self)


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

    def role(self, method: str, adv: bool | None = None) -> str | None:
        """The first target trained with `method` (puzzle-mix: with or without its adv option)."""
        for name, c in self.configs.items():
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


def _row(study: Study, claim: str, part: str, iv: SeedInterval, verdict: str, rests_on: str, note: str = "",
         unit: str = "pp", sound: tuple[str, ...] = ()) -> Claim:
    bad = study.failures(*sound)
    if bad:
        verdict, note = NOT_REPRODUCED, f"soundness check(s) failed: {bad}" + (f"; {note}" if note else "")
    if iv.method == EXAMPLES_ONLY:
        note = (note + "; " if note else "") + "one seed: the interval covers test-set noise only"
    return Claim(claim, part, verdict, iv.estimate, iv.lo, iv.hi, iv.p_value, unit, iv.method, rests_on, note)


def compare(study: Study, claim: str, part: str, method: str | None, ref: str | None, setting: str, attack: str, *,
            suite: str = "paper", metric: str = "top1", margin: float | None = None, expected: int = -1,
            note: str = "", needs: str = "") -> Claim:
    """One error-rate claim: err(method) − err(ref) under (setting, attack) at the claims eps."""
    if method is None or ref is None:
        return Claim(claim, part, NOT_TESTED, note=f"no {needs} model in the study")
    records = study.paper if suite == "paper" else study.strong
    a = study.bits(records, ref, setting, attack, study.eps, metric)
    b = study.bits(records, method, setting, attack, study.eps, metric)
    if a is None or b is None:
        return Claim(claim, part, NOT_TESTED, note=f"the {suite} suite has no {setting} {attack} at eps {study.eps:g}/255")
    iv = difference_interval(a, b, paired_seeds=study.paired(ref, method))
    where = "clean" if setting == "clean" else f"{setting} {attack} at eps {study.eps:g}/255"
    rests = f"{study.label(method)} − {study.label(ref)}, {where}, {metric.replace('top', 'top-')}, {iv.n} examples ({suite} suite)"
    verdict = judge_sign(iv, expected) if margin is None else judge_margin(iv, margin)
    if margin is not None:
        note = (f"margin ±{margin:g} pp; " + note).rstrip("; ")
    return _row(study, claim, part, iv, verdict, rests, note, sound=() if setting == "clean" else (method, ref))


def claim_c2(study: Study, erm: str | None, mixup: str | None) -> Claim:
    row = compare(study, "C2", "white-box I-FGSM: both broken, no meaningful difference", mixup, erm, "white-box", "ifgsm",
                  margin=study.spec.claims.margin, needs="ERM and mixup")
    if row.verdict in (NOT_TESTED,):
        return row
    level = study.spec.claims.broken
    errs = {n: 100 * np.mean([1 - as_bool(b).mean() for b in study.bits(study.paper, n, "white-box", "ifgsm", study.eps)])
            for n in (erm, mixup)}
    low = [f"{n} {e:.1f}%" for n, e in errs.items() if e < level]
    note = f"{row.note}; both errors ≥ {level:g}%: " + ("yes" if not low else f"no ({', '.join(low)})")
    verdict = INCONCLUSIVE if low and row.verdict == REPRODUCED else row.verdict
    return Claim(**{**row.to_dict(), "verdict": verdict, "note": note})


def claim_probe(study: Study, claim: str, erm: str | None, mixup: str | None, quantity: str) -> Claim:
    """C6 (miss rate between training pairs, pp) and C7 (input-gradient norm) at λ, per pair and seed."""
    part = "Figure 2(a): fewer misses in between" if quantity == "miss" else "Figure 2(b): smaller gradient norms in between"
    if erm is None or mixup is None:
        return Claim(claim, part, NOT_TESTED, note="no ERM and mixup models in the study")
    pairs = study.pairs.get("pairs", {})
    if any(slot not in pairs for slot in study.slots[erm] + study.slots[mixup]):
        return Claim(claim, part, NOT_TESTED, note="no Figure 2 data (run the probes stage)")
    paired = study.paired(erm, mixup)
    if quantity == "miss":  # a miss counts as an error: the interval of a difference of miss rates
        correct = lambda n: ["".join("0" if c == "1" else "1" for c in pairs[s]["miss"]) for s in study.slots[n]]  # noqa: E731
        iv, unit = difference_interval(correct(erm), correct(mixup), paired_seeds=paired), "pp"
    else:
        values = lambda n: [pairs[s]["grad"] for s in study.slots[n]]  # noqa: E731
        iv, unit = mean_difference_interval(values(erm), values(mixup), paired_seeds=paired), "‖∇x‖₂"
    lam = study.pairs.get("lam", study.spec.claims.lam)
    rests = f"{study.label(mixup)} − {study.label(erm)}, {iv.n} training pairs at λ = {lam:g}"
    return _row(study, claim, part, iv, judge_sign(iv), rests, unit=unit)


def claim_c12(study: Study, erm: str | None, mixup: str | None) -> Claim:
    part = "advantage under the worst case − advantage under FGSM (white-box)"
    if erm is None or mixup is None:
        return Claim("C12", part, NOT_TESTED, note="no ERM and mixup models in the study")
    eps = [r["eps_255"] for r in study.strong if r["attack"] == "worst-case" and r["setting"] == "white-box"]
    if not eps:
        return Claim("C12", part, NOT_TESTED, note="no strong suite with a white-box worst case in the study")
    at = study.eps if any(abs(e - study.eps) < 1e-6 for e in eps) else max(eps)
    get = lambda n, attack: study.bits(study.strong, n, "white-box", attack, at)  # noqa: E731
    if any(get(n, a) is None for n in (erm, mixup) for a in ("fgsm", "worst-case")):
        return Claim("C12", part, NOT_TESTED, note="the strong suite has no white-box FGSM on the same examples")
    wrong = lambda bits: (~as_bool(bits)).astype(float)  # noqa: E731
    gap = lambda n: [wrong(w) - wrong(f) for w, f in zip(get(n, "worst-case"), get(n, "fgsm"))]  # noqa: E731
    iv = mean_difference_interval(gap(mixup), gap(erm), paired_seeds=study.paired(erm, mixup))
    iv = SeedInterval(**{**iv.to_dict(), **{k: 100 * getattr(iv, k) for k in ("estimate", "lo", "hi", "se")}})
    rests = f"{study.label(erm)} and {study.label(mixup)}, white-box worst case vs FGSM at eps {at:g}/255, {iv.n} examples (strong suite)"
    note = "" if at == study.eps else f"read at eps {at:g}/255, the strong suite's largest (not at the claims eps)"
    return _row(study, "C12", part, iv, judge_sign(iv), rests, note, sound=(erm, mixup))


def judge_claims(study: Study) -> list[Claim]:
    """Every claim C1–C12, one row per part, in order."""
    erm, mixup = study.role("erm"), study.role("mixup")
    wb, bb, wf, wi = "white-box", "black-box", "fgsm", "ifgsm"
    rows = [
        compare(study, "C1", "white-box FGSM: mixup below ERM", mixup, erm, wb, wf, needs="ERM and mixup"),
        claim_c2(study, erm, mixup),
        compare(study, "C3", "black-box FGSM: mixup below ERM", mixup, erm, bb, wf, needs="ERM and mixup"),
        compare(study, "C4", "black-box I-FGSM: mixup below ERM", mixup, erm, bb, wi, needs="ERM and mixup"),
    ]
    for setting, attack, what in ((wb, wf, "white-box FGSM"), (bb, wf, "black-box FGSM"), (bb, wi, "black-box I-FGSM")):
        if study.num_classes <= 10:
            rows.append(Claim("C5", f"top-5, {what}", NOT_TESTED, note=f"top-5 error on {study.num_classes} classes is near 0 for most models: it cannot follow top-1"))
        else:
            rows.append(compare(study, "C5", f"top-5, {what}", mixup, erm, setting, attack, metric="top5", needs="ERM and mixup"))
    rows += [claim_probe(study, "C6", erm, mixup, "miss"), claim_probe(study, "C7", erm, mixup, "grad")]
    epochs = study.configs[mixup].epochs if mixup else 0
    rows.append(compare(study, "C8", "clean error: mixup ≤ ERM", mixup, erm, "clean", "none", needs="ERM and mixup",
                        note=f"{epochs} epochs, not the paper's {PAPER_EPOCHS}: a claim about shorter training" if mixup and epochs < PAPER_EPOCHS else ""))
    manifold = study.role("manifold-mixup")
    rows.append(compare(study, "C9", "Manifold Mixup, white-box FGSM: below ERM", manifold, erm, wb, wf, needs="Manifold Mixup"))
    rows.append(compare(study, "C9", "Manifold Mixup, white-box PGD: no meaningful difference from ERM", manifold, erm, wb, "pgd",
                        suite="strong", margin=study.spec.claims.margin, needs="Manifold Mixup"))
    rows.append(compare(study, "C10", "CutMix below mixup under white-box FGSM", study.role("cutmix"), mixup, wb, wf,
                        needs="CutMix (and mixup)", note=f"the paper's claim is about ImageNet at 8/255; tested on {study.spec.bench.dataset} at eps {study.eps:g}/255"))
    puzzle = study.role("puzzle-mix", adv=False)
    half = puzzle and erm and study.configs[puzzle].epochs < study.configs[erm].epochs  # the paper's "half": its FGSM error 92.57
    rows.append(compare(study, "C11", "Puzzle Mix, white-box FGSM: no meaningful difference from ERM", puzzle,
                        erm, wb, wf, margin=study.spec.claims.margin, needs="Puzzle Mix (without adv)",
                        note=f"Puzzle Mix trained {study.configs[puzzle].epochs} epochs against ERM's {study.configs[erm].epochs} "
                             "(the paper's \"half\" variant: the same network evaluations)" if half else ""))
    rows.append(compare(study, "C11", "Puzzle Mix (adv), white-box FGSM: below ERM", study.role("puzzle-mix", adv=True), erm, wb, wf,
                        needs="Puzzle Mix adv (adv_p > 0)"))
    rows.append(claim_c12(study, erm, mixup))
    return rows
