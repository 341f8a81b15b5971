"""L∞ attacks as pure functions (model, x, y, *, eps, ...) -> x_adv, eps in [0, 1] pixel units.

    registry.py   ATTACKS (name -> Attack: label, function, plan step), SETTINGS: the one vocabulary
    fgsm.py       fgsm, ifgsm and their shared-work sweeps
    pgd.py        PGD with random start and restarts (worst case per example, no silent success)
    apgd.py       APGD-CE and APGD-DLR (Croce & Hein 2020), 100 iterations by default
    square.py     Square (Andriushchenko et al. 2020), gradient-free, 5,000 queries by default
    budget.py     the strong attacks' iterations, restarts, queries and seed (Budget)
    noise.py      seeded per-example random numbers (same seed, same examples, in any batch)
    rows.py       k eps × N examples stacked as one batch with per-row eps, step and example index
    execution.py  the plumbing under them: memory layouts, autocast, the input gradient,
                  projection, input preparation, batch sizing
    inputs.py     the input checks every attack runs on entry (pixels in [0, 1], labels in range)

The functions are re-exported here, so `robustmix.attacks.fgsm` is the *function* fgsm (it shadows
the submodule of that name); reach a module itself with importlib.import_module("robustmix.attacks.fgsm").

May import: runtime, models.
"""

from ..models.predict import eval_mode  # re-exported: attacks run models in eval mode
from .apgd import apgd, apgd_sweep
from .budget import Budget
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
from .pgd import pgd, pgd_sweep
from .registry import (
    ATTACKS,
    CLEAN,
    DEFAULT_ATTACKS,
    NO_ATTACK,
    RECORD_ATTACKS,
    SETTINGS,
    SUITES,
    WORST,
    Attack,
    Step,
    attack_label,
)
from .square import square, square_sweep

# The API: the attacks, their sweeps, the registry and the budget. The plumbing imported above (memory
# layouts, autocast, projection, batch sizing, Crafting) stays importable for robustmix's own stages and
# tests, but is not listed: the API reference leaves it out.
__all__ = [
    "fgsm", "ifgsm", "pgd", "apgd", "square", "fgsm_sweep", "ifgsm_sweep", "pgd_sweep", "apgd_sweep", "square_sweep",
    "input_gradient", "attack_label", "ATTACKS", "Attack", "Budget", "Step", "SETTINGS", "SUITES", "DEFAULT_ATTACKS",
    "RECORD_ATTACKS", "CLEAN", "NO_ATTACK", "WORST", "AMP_MODES",
]
