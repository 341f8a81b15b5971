"""L∞ attacks as pure functions (model, x, y, *, eps, ...) -> x_adv, eps in [0, 1] pixel units.

    registry.py   ATTACKS (name -> Attack: label, function, plan step), SETTINGS: the one vocabulary
    fgsm.py       fgsm, ifgsm and their shared-work sweeps
    pgd.py        PGD with random start and restarts (worst case per example, no silent success)
    apgd.py       APGD-CE and APGD-DLR (Croce & Hein 2020), 100 iterations by default
    apgd_targeted.py  APGD-T: APGD on the targeted DLR loss, the top-9 other classes in turn (AutoAttack)
    fab.py        FAB-T (Croce & Hein 2020), a minimal-norm attack: one run answers every eps
    square.py     Square (Andriushchenko et al. 2020), gradient-free, 5,000 queries by default
    budget.py     the strong attacks' iterations, restarts, queries and seed (Budget)
    noise.py      seeded per-example random numbers (same seed, same examples, in any batch)
    rows.py       k eps × N examples stacked as one batch with per-row eps, step and example index;
                  an attack on a chosen subset of those rows (a cascade's survivors)
    execution.py  the plumbing under them: memory layouts, autocast, the input gradient,
                  projection, input preparation, batch sizing
    inputs.py     the input checks every attack runs on entry (pixels in [0, 1], labels in range)

The functions are re-exported here, so `robustmix.attacks.fgsm` is the *function* fgsm (it shadows
the submodule of that name); reach a module itself with importlib.import_module("robustmix.attacks.fgsm").

May import: runtime, models.
"""

from ..models.predict import eval_mode  # re-exported: attacks run models in eval mode
from .apgd import apgd, apgd_sweep
from .apgd_targeted import apgd_targeted, apgd_targeted_sweep
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
from .fab import fab_minimal, fab_targeted, fab_targeted_sweep
from .fgsm import fgsm, fgsm_sweep, ifgsm, ifgsm_sweep
from .pgd import pgd, pgd_sweep
from .registry import (
    ATTACKS,
    AUTOATTACK,
    AUTOATTACK_ATTACKS,
    CLEAN,
    COMBINED,
    DEFAULT_ATTACKS,
    NO_ATTACK,
    RECORD_ATTACKS,
    SETTINGS,
    SUITE_SETTINGS,
    SUITES,
    WORST,
    Attack,
    Step,
    attack_label,
    is_standard_autoattack,
    suite_text,
)
from .square import square, square_sweep

# The API: the attacks, their sweeps, the registry and the budget. The plumbing imported above (memory
# layouts, autocast, projection, batch sizing, Crafting) stays importable for robustmix's own stages and
# tests, but is not listed: the API reference leaves it out.
__all__ = [
    "fgsm", "ifgsm", "pgd", "apgd", "apgd_targeted", "fab_targeted", "square", "fab_minimal",
    "fgsm_sweep", "ifgsm_sweep", "pgd_sweep", "apgd_sweep", "apgd_targeted_sweep", "fab_targeted_sweep", "square_sweep",
    "input_gradient", "attack_label", "is_standard_autoattack", "ATTACKS", "Attack", "Budget", "Step", "SETTINGS",
    "SUITES", "SUITE_SETTINGS", "AUTOATTACK", "AUTOATTACK_ATTACKS", "COMBINED", "DEFAULT_ATTACKS",
    "RECORD_ATTACKS", "CLEAN", "NO_ATTACK", "WORST", "AMP_MODES",
]
