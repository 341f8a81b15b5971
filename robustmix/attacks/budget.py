"""How much work the strong attacks do, and their seed: one frozen value the evaluator hands to
every attack (through `Crafting`) and the planner prices (through each registry entry's plan step).
The defaults are the papers': APGD 100 iterations (Croce & Hein 2020), Square 5,000 queries
(AutoAttack); PGD 40 iterations (Madry et al.'s MNIST setting, adv-lib's default) with 5 restarts;
APGD-T and FAB-T against the 9 highest other classes, 100 iterations each (AutoAttack's standard).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..runtime.errors import RobustmixError

IFGSM_ITERS = 10
PGD_ITERS = 40
PGD_RESTARTS = 5
APGD_ITERS = 100
APGD_RESTARTS = 1
SQUARE_QUERIES = 5000
TARGETS = 9  # APGD-T's and FAB-T's target classes (AutoAttack: n_target_classes = 9), at most classes − 1
FAB_ITERS = 100
# Which examples Square queries: "all" of them, or "survivors": only those every gradient attack
# run before it (for the same model, setting and eps) left correctly classified, as AutoAttack runs
# each attack on the points still robust after the previous ones. The per-example worst case is
# the same (top-1); Square's own record then counts only what it adds.
SQUARE_ON = ("all", "survivors")


@dataclass(frozen=True)
class Budget:
    """The attacks' iterations, restarts, queries and seed (`robustmix attack --pgd-iters` etc.).

    Examples:
        >>> from robustmix.attacks import Budget
        >>> Budget(pgd_iters=20, pgd_restarts=2).doubled().pgd_iters
        40
    """

    iters: int = IFGSM_ITERS  # I-FGSM steps (step eps / iters)
    pgd_iters: int = PGD_ITERS  # PGD steps per restart (step 2.5 · eps / pgd_iters)
    pgd_restarts: int = PGD_RESTARTS
    apgd_iters: int = APGD_ITERS  # APGD-CE and APGD-DLR iterations
    apgd_restarts: int = APGD_RESTARTS
    square_queries: int = SQUARE_QUERIES
    seed: int = 0  # random starts and Square's search: same seed, same adversarial examples
    square_on: str = "all"  # one of SQUARE_ON
    target_classes: int = TARGETS  # APGD-T and FAB-T: the top-k other classes attacked in turn
    fab_iters: int = FAB_ITERS
    square_rescale: bool = True  # Square's p schedule rescaled to its queries (False: AutoAttack's standard suite)
    # every attack after the first runs on the examples (per eps) that none before it fooled, white-box:
    # AutoAttack's cascade (the per-example worst case is the same; each record counts what it adds)
    cascade: bool = False

    def validate(self) -> None:
        for name in ("iters", "pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries", "target_classes", "fab_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RobustmixError(f"{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise RobustmixError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("square_rescale", "cascade"):
            if not isinstance(getattr(self, name), bool):
                raise RobustmixError(f"{name.replace('_', '-')} must be true or false, got {getattr(self, name)!r}")
        if self.square_on not in SQUARE_ON:
            raise RobustmixError(f"unknown square_on {self.square_on!r}: choose from {', '.join(SQUARE_ON)}")

    def doubled(self) -> "Budget":
        """Twice the iterations and restarts (the convergence check's rerun)."""
        return replace(self, pgd_iters=2 * self.pgd_iters, pgd_restarts=2 * self.pgd_restarts)
