"""The attack registry: every attack's name, label and what the planner, the evaluator and the
tests need to know about it. The one vocabulary of attacks and settings: the planner, evaluator,
reports, figures, verdicts, gate and CLI read names, labels and settings from here only.

Adding an attack: a file under `robustmix/attacks/` with the pure attack, its `craft` (the
evaluator's version, stacked over eps) and its plan step; then one entry in ATTACKS below. The
attack property tests (tests/test_attacks.py) are generated from ATTACKS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .execution import Crafting
from .fgsm import craft_fgsm, craft_ifgsm, fgsm, ifgsm

SETTINGS = ("white-box", "black-box")  # white-box: crafted on the target; black-box: on the surrogate
CLEAN = "clean"  # the setting of a record without attack (its attack is NO_ATTACK)
NO_ATTACK = "none"


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
    plan       iters -> the Step that crafts one stack of eps, or None when the attack is made
               from the shared sign(∇x loss) at x alone (no pass of its own)
    cost       iters -> (forward, backward) passes of one stand-alone call (the naive loop's price)
    direction  what the shared sign(∇x loss) at x gives this attack, for the plan ("" if unused)
    iterative  takes `iters`; records carry them
    gradient_free, randomized (uses a seeded random start: same seed, same x_adv)
    """

    name: str
    label: str
    fn: Callable[..., torch.Tensor]
    craft: Callable[[Crafting, tuple[float, ...]], torch.Tensor]
    plan: Callable[[int], Step | None]
    cost: Callable[[int], tuple[int, int]]
    direction: str = ""
    iterative: bool = False
    gradient_free: bool = False
    randomized: bool = False

    def record_iters(self, iters: int) -> int:
        """The iterations a record of this attack states."""
        return iters if self.iterative else 1


def _ifgsm_step(iters: int) -> Step | None:
    if iters == 1:
        return None  # one step of size eps from x is FGSM: the shared gradient gives it
    return Step(iters - 1, iters - 1, f"I-FGSM steps 2..{iters}")


# name -> Attack. Plain dict built here; the attack property tests are generated from it.
ATTACKS: dict[str, Attack] = {
    "fgsm": Attack(
        "fgsm", "FGSM", fgsm, craft_fgsm, plan=lambda iters: None, cost=lambda iters: (1, 1), direction="FGSM"
    ),
    "ifgsm": Attack(
        "ifgsm", "I-FGSM", ifgsm, craft_ifgsm, plan=_ifgsm_step, cost=lambda iters: (iters, iters),
        direction="I-FGSM step 1", iterative=True,
    ),
}


# The paper's Table 3 attacks: what `robustmix attack` and a bench spec run unless told otherwise.
# Named here, not taken as "every attack": registering an attack must not change existing specs.
DEFAULT_ATTACKS = ("fgsm", "ifgsm")


def attack_label(name: str) -> str:
    """The label of an attack name as stored in records ("Clean" for no attack)."""
    if name == NO_ATTACK:
        return "Clean"
    return ATTACKS[name].label if name in ATTACKS else name
