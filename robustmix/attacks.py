"""L∞ attacks as pure functions: (model, x, y, *, eps, ...) -> x_adv.

eps is in [0, 1] pixel units here (the paper's eps = 4 on the 0–255 scale is 4/255).
Untargeted, cross-entropy loss. Every attack
- evaluates the model in eval mode and hands it back in the mode it came in,
- never touches parameter gradients (only d loss / d x is computed),
- returns x_adv with ‖x_adv − x‖∞ ≤ eps and x_adv ∈ [0, 1].

Shared-work variants give the same examples as one call per eps, with less work:
`fgsm_sweep` (one backward pass for every eps) and `ifgsm_sweep` (every eps stacked into one
batch with per-example eps and step; the first step, taken at x itself, is shared too).

Mixed precision (`amp`, opt-in, any device: CPU autocast supports bf16):
- "none": everything float32.
- "bf16": only forward-only passes (clean and scoring forwards in `evaluate`) run under bfloat16
  autocast; every gradient an attack steps along is computed in float32, because bf16 flips the
  sign of small gradient entries (measured: FGSM error on a trained digits CNN moved by 0.56 pp
  with bf16 gradients, 2 of 360 images, on a Xeon with AMX). The attacks here compute only
  gradients, so for them "bf16" is float32.
- "bf16-all": the gradient passes too (forward and backward under autocast): the fastest, and the
  adversarial examples are no longer the float32 ones (reports/perf.md gives the measured moves).
Logits are cast to float32 before the loss, so the loss, the input gradient and x_adv stay float32.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_inputs
from .errors import RobustmixError

AMP_MODES = ("none", "bf16", "bf16-all")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def model_layout(model: nn.Module, fmt: torch.memory_format) -> Iterator[nn.Module]:
    """The model's 4-D weights in memory format `fmt` inside the block, and back in the format
    they came in after it: a convolution's kernel (and so its float results) depends on the
    weights' layout as well as x's, so an evaluation must not leave the caller's model changed.
    """
    weights = [p for p in model.parameters() if p.dim() == 4]
    before = memory_format(weights[0]) if weights else fmt
    model.to(memory_format=fmt)
    try:
        yield model
    finally:
        if before != fmt:
            model.to(memory_format=before)


def autocast(x: torch.Tensor, amp: str | None, *, gradient: bool = False):
    """bfloat16 autocast on x's device for a forward-only pass when amp is "bf16" or "bf16-all",
    and for a pass that will be differentiated (`gradient=True`) only when amp is "bf16-all";
    else nothing."""
    if amp not in (None, *AMP_MODES):
        raise RobustmixError(f"unknown amp mode {amp!r}: choose from {', '.join(AMP_MODES)}")
    if amp in (None, "none") or (gradient and amp != "bf16-all"):
        return nullcontext()
    return torch.autocast(x.device.type, dtype=torch.bfloat16)


def logits_and_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, amp: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits at x (detached) and d/dx of the summed cross-entropy, from one forward and
    one backward pass; the logits are the clean predictions, so the clean pass costs nothing extra.

    (A sum, not a mean: dividing by the batch size would make each example's gradient depend on
    how many others share its batch.) Parameter .grad fields are left untouched: only the path to
    x is differentiated, so no weight gradient is computed either.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        with autocast(x, amp, gradient=True):
            logits = model(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return logits.detach(), grad


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, amp: str | None = None) -> torch.Tensor:
    """d/dx of the summed cross-entropy, one example's gradient independent of the others'."""
    return logits_and_gradient(model, x, y, amp=amp)[1]


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Back into the L∞ ball of radius eps around x, then into the valid pixel range [0, 1].

    eps is a number or a tensor that broadcasts against x (per-example eps: N×1×1×1).
    """
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def box(x: torch.Tensor, eps: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) = (max(x − eps, 0), min(x + eps, 1)): the pixel-wise box that `project` clamps to.

    Why by hand: computed once per attack, each I-FGSM step's projection is then one clamp
    (`x_adv.clamp_(lo, hi)`) instead of four elementwise ops and three fresh tensors. For x in
    [0, 1] and eps >= 0 it is exactly `project` (comparisons only, no new rounding):
    tests/test_shared_work.py checks it bit for bit.
    """
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise RobustmixError(f"eps must be a finite number >= 0 in [0, 1] pixel units, got {eps!r}")
    if eps > 1:
        raise RobustmixError(
            f"eps={eps!r} is above 1: the Python API takes eps in [0, 1] units (use {eps}/255 for the 0–255 scale)"
        )
    return float(eps)


def check_iters(iters: int) -> int:
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise RobustmixError(f"iters must be an integer >= 1, got {iters!r}")
    return iters


def strides(x: torch.Tensor, fmt: torch.memory_format) -> tuple[int, ...]:
    """The strides a dense tensor of x's shape has in memory format `fmt`."""
    return torch.empty(x.shape, device="meta", memory_format=fmt).stride()


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last if x's strides are exactly those of channels_last, else NCHW.

    Exact strides, not `is_contiguous`: a 1-channel batch passes both contiguity checks whatever
    its strides, yet convolution picks its kernel from the strides, and (HW, 1, W, 1), the
    layout numpy and torchvision hand 1-channel images over in, runs the channels_last kernel,
    measured 1.16× faster for the digits CNN on CPU than (HW, HW, W, 1) (10 forward+backward
    passes on 256 images: 189 vs 220 ms). Keeping the caller's layout keeps that speed (and the
    same kernel, so the same bits, as torchattacks on that x).
    """
    if x.dim() == 4 and x.stride() != strides(x, torch.contiguous_format) and x.stride() == strides(x, torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def standard_layout(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """x detached, with the standard strides of `fmt`.

    Why: convolution picks its memory format (and so its oneDNN kernel and summation order) from
    the strides, so the same images gave gradients differing by ~1e-6 depending on how the batch
    was built (a stacked copy of a batch, a slice of it). With one fixed layout per call the CPU
    results are bit-identical whatever the batch size (tests/test_shared_work.py).
    """
    x = x.detach()
    if x.dim() != 4 or x.stride() == strides(x, fmt):
        return x
    return x.clone(memory_format=fmt)


def prepare_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one entry point every attack (and the evaluator) passes its inputs through before any
    work: checks them and returns (x, y) detached, x in a standard memory layout.

    Input-domain validation (x in [0, 1], NaN, labels in range) happens here: `checks.check_inputs`
    (model=None skips it: `evaluate` has already checked the whole set once, in `check_evaluation`).
    """
    if model is not None:
        check_inputs(model, x, y)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise RobustmixError("x must be an N×C×H×W tensor of pixels in [0, 1]")
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(x.shape[:1]):
        raise RobustmixError(
            f"y must hold one class index per image: got shape {tuple(getattr(y, 'shape', ()))} for {x.shape[0]} images"
        )
    return standard_layout(x, memory_format(x)), y.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, amp: str | None = None) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015), L∞, untargeted.

    x_adv = clip_[0,1](x + eps · sign(∇x CE(f(x), y))).

    Args: model returning logits; x: N×C×H×W floats in [0, 1]; y: N class indices; eps in [0, 1]
    units. Example: ``x_adv = fgsm(model, x, y, eps=4/255)``.
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
    Example: ``x_adv = ifgsm(model, x, y, eps=4/255, iters=10)``.
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


Attack = Callable[..., torch.Tensor]

# name -> attack. Plain dict; the attack property tests are generated from it.
ATTACKS: dict[str, Attack] = {
    "fgsm": fgsm,
    "ifgsm": ifgsm,
}


def fgsm_sweep(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps, direction: torch.Tensor | None = None, amp: str | None = None
) -> dict[float, torch.Tensor]:
    """FGSM at several eps from one backward pass: sign(∇x loss) does not depend on eps.

    Returns {eps: x_adv}, each identical to ``fgsm(model, x, y, eps=eps)``. Pass `direction`
    (sign of the input gradient at x) to reuse one already computed.
    """
    eps_list = [check_eps(e) for e in eps]
    x, y = prepare_inputs(model, x, y)
    if direction is None:
        with eval_mode(model):
            direction = input_gradient(model, x, y, amp=amp).sign()
    return {e: (x + e * direction).clamp_(0.0, 1.0) for e in eps_list}
