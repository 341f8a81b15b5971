"""L∞ attacks as pure functions (model, x, y, *, eps, ...) -> x_adv, eps in [0, 1] pixel units.

    registry.py   ATTACKS (name -> Attack: label, function, plan step), SETTINGS: the one vocabulary
    fgsm.py       fgsm, ifgsm and their shared-work sweeps
    execution.py  the plumbing under them: eval mode, memory layouts, autocast, the input gradient,
                  projection, input preparation, batch sizing
"""

from .execution import (
    AMP_MODES,
    CPU_AUTO_BATCH,
    Crafting,
    auto_batch_size,
    autocast,
    box,
    check_eps,
    check_iters,
    chunking,
    eval_mode,
    find_largest,
    input_gradient,
    logits_and_gradient,
    memory_format,
    model_layout,
    prepare_inputs,
    project,
    standard_layout,
    strides,
)
from .fgsm import fgsm, fgsm_sweep, ifgsm, ifgsm_sweep
from .apgd import apgd, apgd_sweep
from .budget import Budget
from .pgd import pgd, pgd_sweep
from .registry import ATTACKS, CLEAN, NO_ATTACK, RECORD_ATTACKS, SETTINGS, SUITES, WORST, Attack, Step, attack_label
from .square import square, square_sweep

__all__ = [
    "AMP_MODES", "ATTACKS", "Attack", "Budget", "CLEAN", "RECORD_ATTACKS", "SUITES", "WORST", "apgd", "apgd_sweep", "pgd", "pgd_sweep",
    "square", "square_sweep", "CPU_AUTO_BATCH", "Crafting", "NO_ATTACK", "SETTINGS", "Step",
    "attack_label", "auto_batch_size", "autocast", "box", "check_eps", "check_iters", "chunking", "eval_mode",
    "fgsm", "fgsm_sweep", "find_largest", "ifgsm", "ifgsm_sweep", "input_gradient", "logits_and_gradient",
    "memory_format", "model_layout", "prepare_inputs", "project", "standard_layout", "strides",
]
