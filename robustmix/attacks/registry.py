"""The attack registry: every attack's name, label and what the planner, the evaluator and the
tests need to know about it. The one vocabulary of attacks and settings: the planner, evaluator,
reports, figures, verdicts, gate and CLI read names, labels and settings from here only.

Adding an attack: a file under `robustmix/attacks/` with the pure attack, its `craft` (the
evaluator's version, stacked over eps) and its plan step; then one entry in ATTACKS below. The
attack property tests (tests/test_attacks.py) are generated from ATTACKS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from .apgd import apgd, craft_apgd
from .apgd_targeted import apgd_targeted, craft_apgd_targeted
from .budget import APGD_ITERS, FAB_ITERS, SQUARE_QUERIES, TARGETS, Budget
from .execution import Crafting
from .fab import craft_fab_targeted, fab_targeted
from .fgsm import craft_fgsm, craft_ifgsm, fgsm, ifgsm
from .pgd import craft_pgd, pgd
from .square import craft_square, square

SETTINGS = ("white-box", "black-box")  # white-box: crafted on the target; black-box: on the surrogate
CLEAN = "clean"  # the setting of a record without attack (its attack is NO_ATTACK)
NO_ATTACK = "none"
WORST = "worst-case"  # the per-example worst case over every attack run (a record, not an attack)
AUTOATTACK = "autoattack"  # AutoAttack's cascade: wrong under any of its four attacks (a record, not an attack)
COMBINED = (WORST, AUTOATTACK)  # records computed from the others' per-example results: no pass of their own


@dataclass(frozen=True)
class Step:
    """One crafting pass for a stack of eps, beyond the shared gradient at x: forward and backward
    passes over the stacked rows, and what it does (shown by `robustmix attack --dry-run`)."""

    forwards: int
    backwards: int
    what: str
    eps_free: bool = False  # one run answers every eps stacked (a minimal-norm attack): counted once, not per eps


@dataclass(frozen=True)
class Attack:
    """One attack, as the registry knows it.

    fn         the pure attack, (model, x, y, *, eps, ...) -> x_adv, eps in [0, 1] units
    craft      the evaluator's version: (Crafting, eps tuple) -> k×N×C×H×W adversarial examples
    plan       budget -> the Step that crafts one stack of eps, or None when the attack is made
               from the shared sign(∇x loss) at x alone (no pass of its own); for attacks that
               stop early (restarts on the examples not yet fooled, Square) the most it can cost
    cost       budget -> (forward, backward) passes of one stand-alone call (the naive loop's price)
    settings   budget -> what a record of this attack states beyond its name (iters, restarts, ...)
    direction  what the shared sign(∇x loss) at x gives this attack, for the plan ("" if unused)
    iterative  takes `iters`; records carry them
    gradient_free, randomized (uses a seeded random start: same seed, same x_adv)
    minimal_norm  a minimal-norm attack: x_adv is x unless it found an adversarial point within eps
    nests      with `nest_eps` (white-box), runs at a larger eps only on the examples it left at the
               next smaller one, carrying the adversarial images it found there (they lie in the
               larger ball): a strong attack with passes of its own per eps. Not FGSM (no pass of its
               own), not I-FGSM (every eps starts from the shared gradient at x, stacked: the paper's
               attack stays stand-alone), not FAB-T (one run answers every eps already)
    """

    name: str
    label: str
    fn: Callable[..., torch.Tensor]
    craft: Callable[[Crafting, tuple[float, ...]], torch.Tensor]
    plan: Callable[[Budget], Step | None]
    cost: Callable[[Budget], tuple[int, int]]
    direction: str = ""
    iterative: bool = False
    gradient_free: bool = False
    randomized: bool = False
    settings: Callable[[Budget], dict] = lambda b: {}
    minimal_norm: bool = False
    nests: bool = False

    def record_iters(self, budget: Budget) -> int:
        """The iterations a record of this attack states."""
        return int(self.settings(budget).get("iters", budget.iters if self.iterative else 1))


def _ifgsm_step(b: Budget) -> Step | None:
    if b.iters == 1:
        return None  # one step of size eps from x is FGSM: the shared gradient gives it
    return Step(b.iters - 1, b.iters - 1, f"I-FGSM steps 2..{b.iters}")


def _pgd_step(b: Budget) -> Step:
    return Step(b.pgd_restarts * (b.pgd_iters + 1), b.pgd_restarts * b.pgd_iters,
                f"PGD {b.pgd_iters} steps + 1 check × {b.pgd_restarts} restart(s), at most")


def _apgd_step(loss: str):
    return lambda b: Step(b.apgd_restarts * (b.apgd_iters + 1), b.apgd_restarts * (b.apgd_iters + 1),
                          f"APGD-{loss.upper()} {b.apgd_iters} iterations + start × {b.apgd_restarts} restart(s), at most")


def _apgd_t_step(b: Budget) -> Step:
    runs = b.target_classes * b.apgd_restarts
    return Step(1 + runs * (b.apgd_iters + 1), runs * (b.apgd_iters + 1),
                f"APGD-T: clean targets + {b.target_classes} target(s) × {b.apgd_restarts} restart(s) × ({b.apgd_iters} iterations + start), "
                "at most (stops per example once fooled)")


def _fab_t_step(b: Budget) -> Step:
    return Step(1 + 2 * b.target_classes * b.fab_iters, b.target_classes * b.fab_iters,
                f"FAB-T: clean targets + {b.target_classes} target(s) × {b.fab_iters} iterations × (gradient + check), at most; "
                "one run for every eps", eps_free=True)


def _square_step(b: Budget) -> Step:
    on = " on the survivors of the gradient attacks" if b.square_on == "survivors" else ""
    return Step(b.square_queries + 1, 0, f"Square{on}: start + {b.square_queries} queries, at most (stops per example once fooled)")


def _targeted_settings(iters: str):
    return lambda b: {"iters": getattr(b, iters), "target_classes": b.target_classes, **({"restarts": b.apgd_restarts, "attack_seed": b.seed}
                                                                            if iters == "apgd_iters" else {})}


def _square_settings(b: Budget) -> dict:
    """What a Square record states; the marker "square_on" only when it ran on survivors, so
    records made on every example are as before the option existed."""
    on = {"square_on": b.square_on} if b.square_on != "all" else {}
    schedule = {} if b.square_rescale else {"square_schedule": "autoattack"}  # p halved at queries 10, 50, ... as written
    return {"iters": b.square_queries, "queries": b.square_queries, "attack_seed": b.seed, **on, **schedule}


def _steps(step):
    """A stand-alone call's cost is its plan step's (these attacks share nothing with FGSM)."""
    return lambda b: (step(b).forwards, step(b).backwards)


# name -> Attack. Plain dict built here; the attack property tests are generated from it.
ATTACKS: dict[str, Attack] = {
    "fgsm": Attack(
        "fgsm", "FGSM", fgsm, craft_fgsm, plan=lambda b: None, cost=lambda b: (1, 1), direction="FGSM"
    ),
    "ifgsm": Attack(
        "ifgsm", "I-FGSM", ifgsm, craft_ifgsm, plan=_ifgsm_step, cost=lambda b: (b.iters, b.iters),
        direction="I-FGSM step 1", iterative=True,
    ),
    "pgd": Attack(
        "pgd", "PGD", pgd, craft_pgd, plan=_pgd_step, cost=_steps(_pgd_step), iterative=True, randomized=True,
        settings=lambda b: {"iters": b.pgd_iters, "restarts": b.pgd_restarts, "attack_seed": b.seed}, nests=True,
    ),
    "apgd-ce": Attack(
        "apgd-ce", "APGD-CE", partial(apgd, loss="ce"), craft_apgd("ce"), plan=_apgd_step("ce"), cost=_steps(_apgd_step("ce")),
        iterative=True, randomized=True, settings=lambda b: {"iters": b.apgd_iters, "restarts": b.apgd_restarts, "attack_seed": b.seed},
        nests=True,
    ),
    "apgd-dlr": Attack(
        "apgd-dlr", "APGD-DLR", partial(apgd, loss="dlr"), craft_apgd("dlr"), plan=_apgd_step("dlr"), cost=_steps(_apgd_step("dlr")),
        iterative=True, randomized=True, settings=lambda b: {"iters": b.apgd_iters, "restarts": b.apgd_restarts, "attack_seed": b.seed},
        nests=True,
    ),
    "apgd-t": Attack(
        "apgd-t", "APGD-T", apgd_targeted, craft_apgd_targeted, plan=_apgd_t_step, cost=_steps(_apgd_t_step), iterative=True,
        randomized=True, settings=_targeted_settings("apgd_iters"), nests=True,
    ),
    "fab-t": Attack(
        "fab-t", "FAB-T", fab_targeted, craft_fab_targeted, plan=_fab_t_step, cost=_steps(_fab_t_step), iterative=True,
        settings=_targeted_settings("fab_iters"), minimal_norm=True,
    ),
    "square": Attack(
        "square", "Square", square, craft_square, plan=_square_step, cost=_steps(_square_step), gradient_free=True,
        randomized=True, settings=_square_settings, nests=True,
    ),
}
"""Every attack by name: its label, function, crafting step and cost; the one vocabulary of the CLI,
the planner and the records (tests are generated from it)."""

# Every attack name a record may carry, in table order: the crafted attacks, then the combined records.
RECORD_ATTACKS: tuple[str, ...] = (*ATTACKS, AUTOATTACK, WORST)

# AutoAttack's standard version (fra31/auto-attack, `version='standard'`, L∞): its attacks in order.
AUTOATTACK_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")

# Suites: named attack lists for --suite. The worst case (and AutoAttack's record) is computed from
# the records of the others.
SUITES: dict[str, tuple[str, ...]] = {
    "paper": ("fgsm", "ifgsm"),
    "strong": ("fgsm", "ifgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", WORST),
    "autoattack": (*AUTOATTACK_ATTACKS, AUTOATTACK, WORST),
}

# What a suite sets besides its attacks (EvalConfig fields): AutoAttack's standard budget and cascade
# (each attack on the examples still robust after the ones before it; Square's p schedule as
# AutoAttack builds it, resc_schedule=False), white-box only.
SUITE_SETTINGS: dict[str, dict] = {
    "autoattack": {"cascade": True, "square_rescale": False, "apgd_iters": APGD_ITERS, "apgd_restarts": 1, "target_classes": TARGETS,
                   "fab_iters": FAB_ITERS, "square_queries": SQUARE_QUERIES, "settings": ("white-box",)},
}


def suite_text(name: str, *, beyond: str | None = None) -> str:
    """A suite's attacks in words, read from SUITES (so a registered attack is never left out): their
    labels, the worst case last; `beyond`: without another suite's attacks. E.g. suite_text("strong",
    beyond="paper") is "PGD, APGD-CE, APGD-DLR, APGD-T, Square and the per-example worst case"."""
    skip = set(SUITES[beyond]) if beyond else set()
    labels = [ATTACKS[a].label for a in SUITES[name] if a in ATTACKS and a not in skip]
    combined = {WORST: "the per-example worst case", AUTOATTACK: "AutoAttack's record"}
    labels += [combined[a] for a in SUITES[name] if a in combined and a not in skip]
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else "".join(labels)


def is_standard_autoattack(b: Budget) -> bool:
    """Whether a budget is AutoAttack's standard one (what "AutoAttack (standard)" may be quoted for)."""
    aa = SUITE_SETTINGS["autoattack"]
    return all(getattr(b, k) == v for k, v in aa.items() if k != "settings")


# The paper's Table 3 attacks: what `robustmix attack` and a bench spec run unless told otherwise.
# Named here, not taken as "every attack": registering an attack must not change existing specs.
DEFAULT_ATTACKS = ("fgsm", "ifgsm")


def attack_label(name: str, square_on: str | None = None, *, on_survivors: bool = False, standard: bool = True) -> str:
    """The label of an attack name as stored in records ("Clean" for no attack); `square_on`: the
    records' "square_on" marker, "survivors" labelling Square "Square (on survivors)" (its error
    is then not a stand-alone attack's: it queried only the examples the gradient attacks missed);
    `on_survivors`: the records' marker of an attack run in a cascade on the survivors of the ones
    before it; `standard`: whether an AutoAttack record was made with AutoAttack's standard budget."""
    if name == NO_ATTACK:
        return "Clean"
    if name == WORST:
        return "Worst case"
    if name == AUTOATTACK:
        return "AutoAttack (standard)" if standard else "AutoAttack cascade (reduced budget)"
    label = ATTACKS[name].label if name in ATTACKS else name
    survivors = on_survivors or (square_on == "survivors" and name in ATTACKS and ATTACKS[name].gradient_free)
    return f"{label} (on survivors)" if survivors and name in ATTACKS else label
