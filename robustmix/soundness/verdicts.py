"""Every verdict rule: the paired verdicts of `robustmix attack`/`report` (about checkpoints), the
claims' verdicts of a study (about methods; docs/protocol.md#verdict-rule) and the gate's.

Claims (robustmix.study.claims builds the evidence, these functions decide):
- `judge_sign(estimate, p_holm, expected)`: a directional claim (two-sided test of "difference = 0",
  the direction read from the estimate);
- `judge_no_improvement(estimate, p_holm, margin)`: a "no improvement" claim, one-sided: the method's
  advantage over the reference stays below `margin` (tested as "difference = −margin");
- `at_bound(errors, within)`: "not testable" when every arm is within `within` pp of 100% or of 0%;
- `too_few_seeds(seeds, required)`: "inconclusive: 1 seed" when an arm has fewer seeds than required
  (never fewer than MIN_SEEDS: one seed has no seed variance);
- ALPHA: the family-wise level; the p-values these functions read are Holm-adjusted across the
  claims a study judges;
- the controls (docs/protocol.md#controls): `read_positive_control` (an adversarially trained model
  must read clearly robust: its worst case at least `gap` pp below the ERM target's, off the ceiling,
  no masking check failed), `read_negative_control` (a planted masked model must be flagged: a masking
  check failed on every checkpoint of it) and `controls_misread`: the reason every claim of a study
  is NOT_VALID when a control misreads.

Paired verdicts (two checkpoints on the same examples; outside a study):
- `paired_verdict(row)`: "checkpoint A (ERM) has a lower ... than checkpoint B (mixup)": about two
  training runs, never their methods (CHECKPOINTS_ONLY says so under the verdicts);
- `sound_verdicts(comparisons, checks)`: the paired tests of `analysis.paired_comparisons` with
  each significant row's sentence rewritten by what the checks and the worst case allow:
  * both checkpoints within BOUND_PP of 0% or 100%: "not testable" (the floor, the ceiling);
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

from dataclasses import dataclass

from ..attacks import CLEAN, attack_label
from .checks import CHECKS, WORST, Check

PAPER_ATTACKS = ("fgsm", "ifgsm")


# a claim's verdict (robustmix.study.claims; docs/protocol.md#verdict-rule)
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_TESTABLE, NOT_TESTED = "not testable", "not tested"  # the data cannot decide it / the study lacks a model or attack
NOT_VALID = "not valid"  # a control of the study misread: the evaluation itself is in doubt, so no claim is judged
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE, NOT_TESTED, NOT_VALID)
SHOWN_IF_ANY = (NOT_TESTED, NOT_VALID)  # a tally names these only when some claim has them
ALPHA = 0.05  # family-wise error rate of a study's claims (Holm)
MIN_SEEDS = 2  # an arm with fewer training seeds has no seed variance: no reproduced / not reproduced
FEW_CLASSES = 10  # top-5 on this many classes or fewer asks only whether the true class is in the top half
STATUS = ("supported", "inconclusive", "not supported", "paper suite only", NOT_TESTABLE, "")
PAPER_ONLY = "rests on FGSM/I-FGSM alone: run --suite strong before quoting it"
CHECKPOINTS_ONLY = ("These verdicts are about the checkpoints compared (one training run each, tested on the noise of the test "
                    "examples only), not about their training methods: a claim about a method needs several training seeds per "
                    "method and `robustmix study` (docs/protocol.md#verdict-rule).")
BOUND_PP = 2.0  # a paired verdict with both checkpoints within this many pp of 0% or 100% is not testable (a study's margin)


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
        bound = at_bound({row.a: row.err_a, row.b: row.err_b}, BOUND_PP) if row.significant else None
        if bound:
            status.append(NOT_TESTABLE)
            text.append(f"{row.verdict.rstrip('.')} — not testable: {bound}")
            continue
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


def judge_sign(estimate: float, p_holm: float, expected: int = -1, *, alpha: float = ALPHA) -> str:
    """A directional claim about d = method − reference (expected −1: the method's error is lower), from
    its two-sided p-value of "d = 0", Holm-adjusted: reproduced when significant with the expected sign,
    not reproduced when significant with the other sign, else inconclusive."""
    if not p_holm < alpha or estimate == 0:
        return INCONCLUSIVE
    return REPRODUCED if expected * estimate > 0 else NOT_REPRODUCED


def no_improvement_null(margin: float, expected: int = -1) -> float:
    """The difference a "no improvement" claim tests: the method better than the reference by `margin`."""
    return expected * margin


def judge_no_improvement(estimate: float, p_holm: float, margin: float, expected: int = -1, *, alpha: float = ALPHA) -> str:
    """A "no improvement" claim (one-sided): the method's advantage over the reference (expected·d: the
    reference's error minus the method's, for expected −1) stays below `margin` pp. Its p-value tests
    "d = expected·margin" (Holm-adjusted): reproduced when significant with the advantage below the
    margin (a method that is worse has no advantage), not reproduced when significant with the
    advantage above it, else inconclusive. Unadjusted, with the two-sided 95% interval: reproduced ⟺
    the interval lies wholly on the no-advantage side of −margin, a one-sided test at 2.5%, as
    non-inferiority is judged (ICH E9)."""
    advantage = expected * estimate
    if not p_holm < alpha or advantage == margin:
        return INCONCLUSIVE
    return REPRODUCED if advantage < margin else NOT_REPRODUCED


def at_bound(errors: dict[str, float], within: float) -> str | None:
    """Why a claim on these error rates (label -> %) is not testable: every arm within `within` pp of
    100% (the ceiling) or of 0% (the floor), so no difference as large as `within` can show; else None."""
    if not errors:
        return None
    shown = ", ".join(f"{k} {v:.1f}%" for k, v in errors.items())
    if all(v >= 100 - within for v in errors.values()):
        return f"at the ceiling: every arm within {within:g} pp of 100% ({shown})"
    if all(v <= within for v in errors.values()):
        return f"at the floor: every arm within {within:g} pp of 0% ({shown})"
    return None


def too_few_seeds(seeds: dict[str, int], required: int) -> str | None:
    """Why a claim about training methods gets no reproduced / not reproduced: an arm (label -> its
    number of training seeds) has fewer than `required` (at least MIN_SEEDS); else None."""
    required = max(required, MIN_SEEDS)
    short = {k: n for k, n in seeds.items() if n < required}
    if not short:
        return None
    fewest = min(short.values())
    return f"{fewest} seed{'s' if fewest != 1 else ''} ({', '.join(f'{k}: {n}' for k, n in short.items())}; the rule needs {required} per arm)"


def few_classes(num_classes: int) -> str | None:
    """Why a top-5 claim is not meaningful on this many classes; else None."""
    if num_classes > FEW_CLASSES:
        return None
    return (f"not meaningful on ≤ {FEW_CLASSES} classes: top-5 of {num_classes} classes asks only whether the true class is "
            f"in the top {5 / num_classes:.0%} of the ranking, not a top-1-like error under attack")


def checkpoint_label(name: str, label: str) -> str:
    """"checkpoint erm-s1 (ERM)": a paired verdict names the checkpoint (one training run), then its method."""
    label = label.removesuffix(f" [{name}]")
    return f"checkpoint {name}" if label == name else f"checkpoint {name} ({label})"


def paired_verdict(row) -> str:
    """The sentence a paper may print, for a significant row of `paired_comparisons`: about the two
    checkpoints compared (two training runs), never about their methods (CHECKPOINTS_ONLY)."""
    a, b = checkpoint_label(row.a, row.method_a), checkpoint_label(row.b, row.method_b)
    better, worse = (b, a) if row.diff < 0 else (a, b)
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


# a study's controls (robustmix.study.claims reads the evidence; docs/protocol.md#controls)
POSITIVE_CONTROL, NEGATIVE_CONTROL = "positive-control", "negative-control"
CONTROLS = (POSITIVE_CONTROL, NEGATIVE_CONTROL)
CONTROL_GAP = 10.0  # pp a positive control's worst case must lie below the ERM target's ([claims] control_gap)
# The checks whose failure is a sign of gradient masking (Athalye et al. 2018; AutoAttack's flags): every
# check but "converged", which tests the attack's budget, not the model (with a small budget it fails on
# honest models too), so it cannot tell a masked model from an honest one.
MASKING_CHECKS = tuple(c for c in CHECKS if c != "converged")


@dataclass(frozen=True)
class ControlReading:
    """How one control of a study read: `reads` is True when it reads as its role says (a positive control
    robust, a negative control flagged); `said` is the evidence in one line."""

    name: str
    role: str
    reads: bool
    said: str

    @property
    def verdict(self) -> str:
        """"reads robust" / "does not read robust" (positive), "is flagged" / "is not flagged" (negative)."""
        if self.role == POSITIVE_CONTROL:
            return "reads robust" if self.reads else "does not read robust"
        return "is flagged" if self.reads else "is not flagged"

    def sentence(self) -> str:
        """"the negative control 'masked' is flagged: ...": the reading in words, with its evidence."""
        return f"the {self.role.replace('-', ' ')} '{self.name}' {self.verdict}: {self.said}"

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "reads": self.reads, "verdict": self.verdict, "said": self.said}


def read_positive_control(name: str, worst: float | None, reference: float | None, failed: dict[str, list[str]], *,
                          gap: float = CONTROL_GAP, margin: float = BOUND_PP, where: str = "") -> ControlReading:
    """A positive control (an adversarially trained model) reads robust when its white-box worst-case
    error under the strongest suite (`worst`, %, pooled over its seeds) is at least `gap` pp below the ERM
    target's (`reference`), is not within `margin` pp of 100% (the ceiling), and no masking check
    (MASKING_CHECKS) failed on any of its checkpoints (`failed`: checkpoint -> the checks that failed
    there, every suite): its robust reading is not masking's. A failed "converged" is said, not counted:
    it tests the attack's budget (judged per model wherever a claim rests on one), and the control is
    read by its worst case over every attack, which goes beyond the PGD that check doubles."""
    if worst is None or reference is None:
        return ControlReading(name, POSITIVE_CONTROL, False, "no white-box worst case of it and of the ERM target under the "
                                                             "strong suite: it cannot show that the attacks read robustness")
    masking = [f"{c} failed for {slot}" for slot, checks in failed.items() for c in dict.fromkeys(checks) if c in MASKING_CHECKS]
    other = [f"{c} failed for {slot}" for slot, checks in failed.items() for c in dict.fromkeys(checks) if c not in MASKING_CHECKS]
    below = reference - worst
    said = (f"white-box worst-case error {worst:.1f}% vs the ERM target's {reference:.1f}%{where}: {below:.1f} pp below "
            f"(it must be at least {gap:g} pp below, and more than {margin:g} pp from 100%); "
            + (f"masking check(s) failed: {'; '.join(masking)}" if masking else "no masking check failed")
            + (f" (also {'; '.join(other)}: the attack's budget, not counted)" if other else ""))
    return ControlReading(name, POSITIVE_CONTROL, below >= gap and worst < 100 - margin and not masking, said)


def read_negative_control(name: str, failed: dict[str, list[str]]) -> ControlReading:
    """A negative control (a planted masked model) is flagged when a masking check (MASKING_CHECKS) failed on
    every one of its checkpoints (`failed`: checkpoint -> the checks that failed there, every suite)."""
    flags = {slot: [c for c in dict.fromkeys(checks) if c in MASKING_CHECKS] for slot, checks in failed.items()}
    missed = [slot for slot, f in flags.items() if not f]
    found = "; ".join(f"{slot}: {', '.join(f)}" for slot, f in flags.items() if f)
    if flags and not missed:
        return ControlReading(name, NEGATIVE_CONTROL, True, f"masking checks failed ({found})")
    return ControlReading(name, NEGATIVE_CONTROL, False,
                          f"no masking check failed for {', '.join(missed) or name}" + (f" (they failed for {found})" if found else "")
                          + "; \"converged\" does not count: it tests the attack's budget, not the model")


def controls_misread(readings: list[ControlReading]) -> str | None:
    """Why every claim of the study is NOT_VALID: the controls that misread (their evidence is in their
    readings); None when every control reads as its role says (or there are none)."""
    bad = [r for r in readings if not r.reads]
    if not bad:
        return None
    return "the controls misread: " + "; ".join(f"the {r.role.replace('-', ' ')} '{r.name}' {r.verdict}" for r in bad)
