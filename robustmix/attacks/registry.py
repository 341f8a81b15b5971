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
from .budget import Budget
from .execution import Crafting
from .fgsm import craft_fgsm, craft_ifgsm, fgsm, ifgsm
from .pgd import craft_pgd, pgd
from .square import craft_square, square

SETTINGS = ("white-box", "black-box")  # white-box: crafted on the target; black-box: on the surrogate
CLEAN = "clean"  # the setting of a record without attack (its attack is NO_ATTACK)
NO_ATTACK = "none"
WORST = "worst-case"  # the per-example worst case over every attack run (a record, not an attack)


@dataclass(frozen=True)
class Step:
    """One crafting pass for a stack of eps, beyond the shared gradient at x: forward and backward
    passes over the stacked rows, and what it does (shown by `robustmix attack --dry-run`)."""

    forwards: int
    backwards: int
    what: str


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


def _square_step(b: Budget) -> Step:
    on = " on the survivors of the gradient attacks" if b.square_on == "survivors" else ""
    return Step(b.square_queries + 1, 0, f"Square{on}: start + {b.square_queries} queries, at most (stops per example once fooled)")


def _square_settings(b: Budget) -> dict:
    """What a Square record states; the marker "square_on" only when it ran on survivors, so
    records made on every example are as before the option existed."""
    on = {"square_on": b.square_on} if b.square_on != "all" else {}
    return {"iters": b.square_queries, "queries": b.square_queries, "attack_seed": b.seed, **on}


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
        settings=lambda b: {"iters": b.pgd_iters, "restarts": b.pgd_restarts, "attack_seed": b.seed},
    ),
    "apgd-ce": Attack(
        "apgd-ce", "APGD-CE", partial(apgd, loss="ce"), craft_apgd("ce"), plan=_apgd_step("ce"), cost=_steps(_apgd_step("ce")),
        iterative=True, randomized=True, settings=lambda b: {"iters": b.apgd_iters, "restarts": b.apgd_restarts, "attack_seed": b.seed},
    ),
    "apgd-dlr": Attack(
        "apgd-dlr", "APGD-DLR", partial(apgd, loss="dlr"), craft_apgd("dlr"), plan=_apgd_step("dlr"), cost=_steps(_apgd_step("dlr")),
        iterative=True, randomized=True, settings=lambda b: {"iters": b.apgd_iters, "restarts": b.apgd_restarts, "attack_seed": b.seed},
    ),
    "square": Attack(
        "square", "Square", square, craft_square, plan=_square_step, cost=_steps(_square_step), gradient_free=True,
        randomized=True, settings=_square_settings,
    ),
}
"""Every attack by name (fgsm, ifgsm, pgd, apgd-ce, apgd-dlr, square): its label, function, crafting
step and cost; the one vocabulary of the CLI, the planner and the records (tests are generated from it)."""

# Every attack name a record may carry, in table order: the crafted attacks, then the worst case.
RECORD_ATTACKS: tuple[str, ...] = (*ATTACKS, WORST)

# Suites: named attack lists for --suite. The worst case is computed from the records of the others.
SUITES: dict[str, tuple[str, ...]] = {
    "paper": ("fgsm", "ifgsm"),
    "strong": ("fgsm", "ifgsm", "pgd", "apgd-ce", "apgd-dlr", "square", WORST),
}


# The paper's Table 3 attacks: what `robustmix attack` and a bench spec run unless told otherwise.
# Named here, not taken as "every attack": registering an attack must not change existing specs.
DEFAULT_ATTACKS = ("fgsm", "ifgsm")


def attack_label(name: str, square_on: str | None = None) -> str:
    """The label of an attack name as stored in records ("Clean" for no attack); `square_on`: the
    records' "square_on" marker, "survivors" labelling Square "Square (on survivors)" (its error
    is then not a stand-alone attack's: it queried only the examples the gradient attacks missed)."""
    if name == NO_ATTACK:
        return "Clean"
    if name == WORST:
        return "Worst case"
    label = ATTACKS[name].label if name in ATTACKS else name
    return f"{label} (on survivors)" if square_on == "survivors" and name in ATTACKS and ATTACKS[name].gradient_free else label
