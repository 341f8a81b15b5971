"""L∞ attacks as pure functions (model, x, y, *, eps, ...) -> x_adv, eps in [0, 1] pixel units.

    registry.py   ATTACKS (name -> Attack: label, function, plan step), SETTINGS: the one vocabulary
    fgsm.py       fgsm, ifgsm and their shared-work sweeps
    execution.py  the plumbing under them: eval mode, memory layouts, autocast, the input gradient,
                  projection, input preparation, batch sizing

The functions are re-exported here, so `robustmix.attacks.fgsm` is the *function* fgsm (it shadows
the submodule of that name); reach a module itself with importlib.import_module("robustmix.attacks.fgsm").
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
from .registry import ATTACKS, CLEAN, DEFAULT_ATTACKS, NO_ATTACK, SETTINGS, Attack, Step, attack_label

__all__ = [
    "AMP_MODES", "ATTACKS", "Attack", "CLEAN", "CPU_AUTO_BATCH", "Crafting", "DEFAULT_ATTACKS", "NO_ATTACK", "SETTINGS", "Step",
    "attack_label", "auto_batch_size", "autocast", "box", "check_eps", "check_iters", "chunking", "eval_mode",
    "fgsm", "fgsm_sweep", "find_largest", "ifgsm", "ifgsm_sweep", "input_gradient", "logits_and_gradient",
    "memory_format", "model_layout", "prepare_inputs", "project", "standard_layout", "strides",
]
