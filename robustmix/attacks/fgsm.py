"""FGSM and I-FGSM (BIM), L∞, untargeted, cross-entropy: pure functions (model, x, y, *, eps, ...) -> x_adv.

eps is in [0, 1] pixel units here (the paper's eps = 4 on the 0–255 scale is 4/255). Every attack
- evaluates the model in eval mode and hands it back in the mode it came in,
- never touches parameter gradients (only d loss / d x is computed),
- returns x_adv with ‖x_adv − x‖∞ ≤ eps and x_adv ∈ [0, 1].

Shared-work variants give the same examples as one call per eps, with less work:
`fgsm_sweep` (one backward pass for every eps) and `ifgsm_sweep` (every eps stacked into one
batch with per-example eps and step; the first step, taken at x itself, is shared too).
`craft_fgsm` / `craft_ifgsm` are what the evaluator runs (see `registry.ATTACKS`): they start from
sign(∇x loss) at x, which the evaluator computes once per crafting model and chunk.
`amp` selects mixed precision (see `execution`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..models.predict import eval_mode
from .execution import (
    Crafting,
    box,
    check_eps,
    check_iters,
    input_gradient,
    memory_format,
    prepare_inputs,
    project,
    standard_layout,
)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, amp: str | None = None) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015), L∞, untargeted.

    `x_adv = clip_[0,1](x + eps · sign(∇x CE(f(x), y)))`.

    Args: model returning logits; x: N×C×H×W floats in [0, 1]; y: N class indices; eps in [0, 1]
    units.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import fgsm
        >>> x_adv = fgsm(model, x, y, eps=4 / 255)                # eps in [0, 1] units: the CLI's --eps 4
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 4 / 255 + 1e-6), bool(x_adv.min() >= 0 and x_adv.max() <= 1)
        (torch.Size([6, 1, 8, 8]), True, True)
    """
    eps = check_eps(eps)
    x, y = prepare_inputs(model, x, y)
    with eval_mode(model):
        grad = input_gradient(model, x, y, amp=amp)
    return (x + eps * grad.sign()).clamp_(0.0, 1.0)


def ifgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    iters: int = 10,
    step: float | None = None,
    amp: str | None = None,
) -> torch.Tensor:
    """Iterative FGSM / BIM (Kurakin et al. 2017), L∞, untargeted, no random start.

    `iters` steps of size `step` (default eps / iters, as in the mixup paper), each projected to
    the eps-ball around x and to [0, 1]. eps and step in [0, 1] units.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import ifgsm
        >>> x_adv = ifgsm(model, x, y, eps=8 / 255, iters=10)     # 10 steps of eps/10
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        (torch.Size([6, 1, 8, 8]), True)
    """
    eps = check_eps(eps)
    iters = check_iters(iters)
    step = eps / iters if step is None else check_eps(step)
    x, y = prepare_inputs(model, x, y)
    with eval_mode(model):
        return _ifgsm_steps(model, x, y, x.clone(), eps, step, iters, amp)


def _ifgsm_steps(model, x, y, x_adv, eps, step, iters: int, amp) -> torch.Tensor:
    """`iters` I-FGSM steps from x_adv (which this function owns and updates in place).
    eps and step: numbers or per-example N×1×1×1 tensors.

    Each step is one forward+backward, then three in-place elementwise ops on x_adv: sign,
    x_adv += step · sign (exact: step · ±1 needs no rounding, so this is the same float as
    x_adv + step * sign), and one clamp to the precomputed box. No host synchronisation:
    nothing in the loop reads a value back to Python.
    """
    lo, hi = box(x, eps)
    for _ in range(iters):
        direction = input_gradient(model, x_adv, y, amp=amp).sign_()
        if isinstance(step, torch.Tensor):
            x_adv.addcmul_(step, direction)
        else:
            x_adv.add_(direction, alpha=step)
        x_adv.clamp_(lo, hi)
    return x_adv


def ifgsm_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    iters: int = 10,
    direction: torch.Tensor | None = None,
    amp: str | None = None,
) -> dict[float, torch.Tensor]:
    """I-FGSM at several eps in one stacked batch: the k eps values become k copies of x with a
    per-example eps and step (eps / iters), so each step is one forward and one backward pass over
    k·N rows instead of a Python loop over eps.

    The first step is taken at x itself for every eps, so it needs only sign(∇x loss) at x, from one
    pass over N rows (pass it as `direction` if you already have it, e.g. from FGSM); the other
    iters − 1 steps run stacked. Returns {eps: x_adv}; see tests/test_shared_work.py for how
    exactly this matches ``ifgsm(model, x, y, eps=e, iters=iters)`` per eps.
    """
    eps_list = [check_eps(e) for e in eps]
    iters = check_iters(iters)
    x, y = prepare_inputs(model, x, y)
    if not eps_list:
        return {}
    k, fmt = len(eps_list), memory_format(x)
    # Per-example eps and step, computed as Python floats first so that each float32 value equals
    # the one the single-eps path uses (float32(eps / iters), not float32(eps) / iters).
    shape = (k, 1, 1, 1, 1)
    eps_t = torch.tensor(eps_list, dtype=x.dtype, device=x.device).view(shape)
    step_t = torch.tensor([e / iters for e in eps_list], dtype=x.dtype, device=x.device).view(shape)
    with eval_mode(model):
        if direction is None:
            direction = input_gradient(model, x, y, amp=amp).sign()
        x_k = x.unsqueeze(0)  # 1×N×C×H×W, broadcast against k×N×C×H×W without copying
        x_adv = project(x_k + step_t * direction.unsqueeze(0), x_k, eps_t)  # step 1, all eps at once
        if iters > 1:
            def flat(t: torch.Tensor) -> torch.Tensor:  # k×N×… -> (k·N)×…, in x's layout
                return standard_layout(t.expand(k, *t.shape[1:]).reshape(-1, *t.shape[2:]), fmt)

            x_adv = _ifgsm_steps(
                model,
                flat(x_k),
                y.repeat(k),
                flat(x_adv),
                eps_t.expand(k, x.shape[0], 1, 1, 1).reshape(-1, 1, 1, 1),
                step_t.expand(k, x.shape[0], 1, 1, 1).reshape(-1, 1, 1, 1),
                iters - 1,
                amp,
            )
        x_adv = x_adv.reshape(k, *x.shape)
    return {e: x_adv[i] for i, e in enumerate(eps_list)}


def fgsm_sweep(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps, direction: torch.Tensor | None = None, amp: str | None = None
) -> dict[float, torch.Tensor]:
    """FGSM at several eps from one backward pass: sign(∇x loss) does not depend on eps.

    Returns {eps: x_adv}, each identical to ``fgsm(model, x, y, eps=eps)``. Pass `direction`
    (sign of the input gradient at x) to reuse one already computed.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import fgsm, fgsm_sweep
        >>> by_eps = fgsm_sweep(model, x, y, eps=[2 / 255, 8 / 255])
        >>> sorted(round(e * 255) for e in by_eps), bool(by_eps[8 / 255].equal(fgsm(model, x, y, eps=8 / 255)))
        ([2, 8], True)
    """
    eps_list = [check_eps(e) for e in eps]
    x, y = prepare_inputs(model, x, y)
    if direction is None:
        with eval_mode(model):
            direction = input_gradient(model, x, y, amp=amp).sign()
    return {e: (x + e * direction).clamp_(0.0, 1.0) for e in eps_list}


# --- the evaluator's shared-work crafting (see registry.ATTACKS) ---------------------------------


def craft_fgsm(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """FGSM at every eps in `eps` from the shared direction at x: k×N×C×H×W, no pass of its own."""
    eps_t = torch.tensor(eps, dtype=job.x.dtype, device=job.x.device).view(-1, 1, 1, 1, 1)
    return (job.x.unsqueeze(0) + eps_t * job.direction.unsqueeze(0)).clamp_(0.0, 1.0)


def craft_ifgsm(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """I-FGSM at every eps in `eps`, stacked (k×N×C×H×W); step 1 comes from the shared direction.
    With one iteration I-FGSM is FGSM."""
    if job.iters == 1:
        return craft_fgsm(job, eps)
    adv = ifgsm_sweep(job.model, job.x, job.y, eps=eps, iters=job.iters, direction=job.direction, amp=job.amp)
    return torch.stack([adv[e] for e in eps])
