"""The soundness checks' own measurements (probes), planned and recorded like the attacks.

`robustmix.soundness` reads four kinds of probe record, one per target (key "probe"):
- "unbounded": white-box PGD at eps 128/255, with the run's PGD budget (check 5);
- "converged": white-box PGD at every eps with twice the iterations and twice the restarts
  (check 6), compared with the run's PGD records;
- "gradients": how many examples have an all-zero, or a NaN/inf, input gradient at x, counted on
  the shared gradient pass (free; check 7);
- "model": how far two forward passes differ and whether the outputs look like probabilities,
  from the once-per-evaluation model check (free; check 8).
The PGD probes run only when PGD is among the attacks (the strong suite) and white-box is a
setting; `--dry-run` counts their passes. Checks run on every evaluation with more than one
attack unless `EvalConfig.checks` is off.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .attacks import ATTACKS, WORST, Budget
from .plan import Pass, eps_groups

UNBOUNDED_EPS = 128 / 255
PROBE_ATTACK = "pgd"


def checks_on(config) -> bool:
    """Soundness checks run on an evaluation with more than one attack (unless switched off)."""
    return bool(config.checks) and len([a for a in config.attacks if a != WORST]) > 1


def probe_budget(budget: Budget, probe: str) -> Budget:
    return budget.doubled() if probe == "converged" else budget


def probe_plan(targets: Sequence[str], config, per_pass: int) -> list[Pass]:
    """The probes' passes for one chunk: per target, PGD at 128/255 and PGD doubled at every eps."""
    if not checks_on(config) or PROBE_ATTACK not in config.attacks or "white-box" not in config.settings:
        return []
    plan = []
    for t in targets:
        for probe, groups in (("unbounded", [(UNBOUNDED_EPS,)]), ("converged", eps_groups(config.eps, per_pass))):
            step = ATTACKS[PROBE_ATTACK].plan(probe_budget(config.budget, probe))
            for group in groups:
                plan.append(Pass("craft", t, attack=PROBE_ATTACK, eps=group, forwards=step.forwards, backwards=step.backwards,
                                 what=f"check {probe}: {step.what}", probe=probe))
                plan.append(Pass("score", t, source=t, setting="white-box", attack=PROBE_ATTACK, eps=group, forwards=1, probe=probe))
    return plan


def bad_gradients(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: (input gradient all zero, input gradient has a NaN or inf)."""
    flat = grad.flatten(1)
    return (flat == 0).all(1), ~torch.isfinite(flat).all(1)


def model_record(name: str, findings: dict) -> dict:
    """The "model" probe record of one target, from `checks.check_model`'s findings."""
    return {"target": name, "setting": "white-box", "attack": "none", "probe": "model", "eps": 0.0, "eps_255": 0.0, **findings}
