"""Training methods as small pure functions: (x, y, *, num_classes, alpha, gen) -> (x_mix, y_soft).

Each returns *soft targets*, so the loss (`soft_cross_entropy`) never needs to know that mixing
happened. Nothing is changed in place and all randomness comes from the `gen` passed in.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from scipy.special import betaincinv

from .errors import RobustmixError


def sample_lam(alpha: float, gen: torch.Generator) -> float:
    """lam ~ Beta(alpha, alpha), drawn from `gen` (alpha <= 0 gives 1.0, i.e. no mixing).

    torch.distributions.Beta cannot take a generator, so we invert the Beta CDF at a uniform draw
    from `gen`: one seeded generator then drives everything, and its state can be checkpointed.
    """
    if alpha <= 0:
        return 1.0
    u = torch.rand((), generator=gen, dtype=torch.float64).item()
    return float(betaincinv(alpha, alpha, u))


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).float()


def erm(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    return x, one_hot(y, num_classes)


def mixup(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Zhang et al. 2018: one lam per batch, partner = a random permutation of the batch."""
    lam = sample_lam(alpha, gen)
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    x_mix = lam * x + (1.0 - lam) * x[perm]
    y1 = one_hot(y, num_classes)
    return x_mix, lam * y1 + (1.0 - lam) * y1[perm]


Method = Callable[..., tuple[torch.Tensor, torch.Tensor]]

# name -> method. Plain dict; tests are generated from it.
METHODS: dict[str, Method] = {
    "erm": erm,
    "mixup": mixup,
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise RobustmixError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}") from None


def soft_cross_entropy(logits: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_k y_k log softmax(logits)_k; equals lam·CE(y) + (1−lam)·CE(y_perm)."""
    return -(y_soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
