"""L∞ attacks as pure functions: (model, x, y, *, eps, ...) -> x_adv.

eps is in [0, 1] pixel units here (the paper's eps = 4 on the 0–255 scale is 4/255).
Untargeted, cross-entropy loss. Every attack
- evaluates the model in eval mode and hands it back in the mode it came in,
- never touches parameter gradients (only d loss / d x is computed),
- returns x_adv with ‖x_adv − x‖∞ ≤ eps and x_adv ∈ [0, 1].
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_inputs
from .errors import RobustmixError


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/dx of the summed cross-entropy, one example's gradient independent of the others'.

    (A sum, not a mean: dividing by the batch size would make each example's gradient depend on
    how many others share its batch.) Parameter .grad fields are left untouched.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Back into the L∞ ball of radius eps around x, then into the valid pixel range [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise RobustmixError(f"eps must be a finite number >= 0 in [0, 1] pixel units, got {eps!r}")
    if eps > 1:
        raise RobustmixError(
            f"eps={eps!r} is above 1: the Python API takes eps in [0, 1] units (use {eps}/255 for the 0–255 scale)"
        )
    return float(eps)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015), L∞, untargeted.

    x_adv = clip_[0,1](x + eps · sign(∇x CE(f(x), y))).

    Args: model returning logits; x: N×C×H×W floats in [0, 1]; y: N class indices; eps in [0, 1]
    units. Example: ``x_adv = fgsm(model, x, y, eps=4/255)``.
    """
    eps = check_eps(eps)
    check_inputs(model, x, y)
    with eval_mode(model):
        grad = input_gradient(model, x, y)
    return (x.detach() + eps * grad.sign()).clamp_(0.0, 1.0)


def ifgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    iters: int = 10,
    step: float | None = None,
) -> torch.Tensor:
    """Iterative FGSM / BIM (Kurakin et al. 2017), L∞, untargeted, no random start.

    `iters` steps of size `step` (default eps / iters, as in the mixup paper), each projected to
    the eps-ball around x and to [0, 1]. eps and step in [0, 1] units.
    Example: ``x_adv = ifgsm(model, x, y, eps=4/255, iters=10)``.
    """
    eps = check_eps(eps)
    check_inputs(model, x, y)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise RobustmixError(f"iters must be an integer >= 1, got {iters!r}")
    step = eps / iters if step is None else check_eps(step)
    x = x.detach()
    x_adv = x.clone()
    with eval_mode(model):
        for _ in range(iters):
            grad = input_gradient(model, x_adv, y)
            x_adv = project(x_adv + step * grad.sign(), x, eps)
    return x_adv


Attack = Callable[..., torch.Tensor]

# name -> attack. Plain dict; the attack property tests are generated from it.
ATTACKS: dict[str, Attack] = {
    "fgsm": fgsm,
    "ifgsm": ifgsm,
}


def fgsm_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps) -> dict[float, torch.Tensor]:
    """FGSM at several eps from one backward pass: sign(∇x loss) does not depend on eps.

    Returns {eps: x_adv}, each identical to ``fgsm(model, x, y, eps=eps)``.
    """
    eps_list = [check_eps(e) for e in eps]
    check_inputs(model, x, y)
    with eval_mode(model):
        direction = input_gradient(model, x, y).sign()
    x = x.detach()
    return {e: (x + e * direction).clamp_(0.0, 1.0) for e in eps_list}
