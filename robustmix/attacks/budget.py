"""How much work the strong attacks do, and their seed: one frozen value the evaluator hands to
every attack (through `Crafting`) and the planner prices (through each registry entry's plan step).
The defaults are the papers': APGD 100 iterations (Croce & Hein 2020), Square 5,000 queries
(AutoAttack); PGD 40 iterations (Madry et al.'s MNIST setting, adv-lib's default) with 5 restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import RobustmixError

IFGSM_ITERS = 10
PGD_ITERS = 40
PGD_RESTARTS = 5
APGD_ITERS = 100
APGD_RESTARTS = 1
SQUARE_QUERIES = 5000


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

    def validate(self) -> None:
        for name in ("iters", "pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RobustmixError(f"{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise RobustmixError(f"seed must be an integer >= 0, got {self.seed!r}")

    def doubled(self) -> "Budget":
        """Twice the iterations and restarts (the convergence check's rerun)."""
        return replace(self, pgd_iters=2 * self.pgd_iters, pgd_restarts=2 * self.pgd_restarts)
