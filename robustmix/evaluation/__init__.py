"""Evaluation: targets × (white-box, black-box) × attacks × eps -> records, with every pass that can
be shared planned once, and the probes the soundness checks and the figures need.

    config.py     EvalConfig (what an evaluation runs) and how it runs on a device (batch, layout)
    plan.py       the passes a request needs, before paying for them (`--dry-run`)
    evaluator.py  evaluate(targets, x, y, config) -> records; plan_evaluation
    tally.py      per-example correctness, chunk after chunk, into records
    transfer.py   a surrogate's black-box examples, crafted once and scored on many targets
    records.py    what a record holds: bit-strings, error rates, the per-example worst case, AutoAttack's record
    guards.py     what is refused before any attack runs (inputs, labels, models)
    probes.py     measurements besides the attack table: the checks' probes, Figure 2, calibration
    minimal.py    minimal-perturbation robustness: per example the smallest eps the attacks fool it at

May import: runtime, data, models, attacks, store.
"""

from .config import EvalConfig
from .evaluator import evaluate, plan_evaluation
from .transfer import craft_transfer

__all__ = ["EvalConfig", "craft_transfer", "evaluate", "plan_evaluation"]
