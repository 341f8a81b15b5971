"""Execution plumbing under the attacks: model mode and memory layout, autocast, the input
gradient, projection, input preparation and batch sizing. Pure and device-agnostic.

Mixed precision (`amp`, opt-in, any device: CPU autocast supports bf16):
- "none": everything float32.
- "bf16": only forward-only passes (clean and scoring forwards in `evaluate`) run under bfloat16
  autocast; every gradient an attack steps along is computed in float32, because bf16 flips the
  sign of small gradient entries (measured: FGSM error on a trained digits CNN moved by 0.56 pp
  with bf16 gradients, 2 of 360 images, on a Xeon with AMX). The attacks compute only gradients,
  so for them "bf16" is float32.
- "bf16-all": the gradient passes too (forward and backward under autocast): the fastest, and the
  adversarial examples are no longer the float32 ones (reports/perf.md gives the measured moves).
Logits are cast to float32 before the loss, so the loss, the input gradient and x_adv stay float32.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .budget import Budget
from .inputs import check_inputs

AMP_MODES = ("none", "bf16", "bf16-all")
CPU_AUTO_BATCH = 512  # rows per pass for --batch-size auto off CUDA (see auto_batch_size)


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
    """eps as a float, checked: finite, >= 0 and <= 1 ([0, 1] pixel units; the CLI's `--eps 4` is 4/255
    here). Raises RobustmixError otherwise (eps=4 says to use 4/255).
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise RobustmixError(f"eps must be a finite number >= 0 in [0, 1] pixel units, got {eps!r}")
    if eps > 1:
        raise RobustmixError(
            f"eps={eps!r} is above 1: the Python API takes eps in [0, 1] units (use {eps}/255 for the 0–255 scale)"
        )
    return float(eps)


def check_iters(iters: int) -> int:
    """iters as an int, checked: an integer >= 1 (not a bool). Raises RobustmixError otherwise."""
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

    Input-domain validation (x in [0, 1], NaN, labels in range) happens here: `inputs.check_inputs`
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


@dataclass(frozen=True)
class Crafting:
    """What the evaluator hands an attack's `craft` for one crafting model and one chunk of
    examples: x (prepared, in a standard layout) and y on the model's device, the iterations,
    the amp mode, sign(∇x loss) at x when the plan computed it (the shared gradient pass), the
    strong attacks' budget, the examples' indices and, for Square on survivors, which rows to attack."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    iters: int
    amp: str = "none"
    direction: torch.Tensor | None = None
    budget: Budget = Budget()  # the strong attacks' iterations, restarts, queries and seed
    index: torch.Tensor | None = None  # the examples' positions in the data set (random numbers follow them)
    only: torch.Tensor | None = None  # k×N bool per stacked eps: Square crafts these rows, the others keep x (square_on="survivors")


# --- batch sizing -------------------------------------------------------------------------------


def find_largest(fits: Callable[[int], bool], *, start: int = 32, limit: int) -> int:
    """The largest b <= limit with fits(b), assuming fits is monotone: doubling, then bisection."""
    if limit < 1:
        raise RobustmixError("nothing to evaluate: no examples")
    b = min(start, limit)
    if not fits(b):
        lo, hi = 0, b  # fits(lo) assumed, fits(hi) false
    else:
        while b < limit and fits(min(2 * b, limit)):
            b = min(2 * b, limit)
        if b == limit:
            return b
        lo, hi = b, min(2 * b, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    if lo == 0:
        raise RobustmixError("not even one example fits in device memory: use a smaller model or --device cpu")
    return lo


def auto_batch_size(models: Sequence[nn.Module], example: torch.Tensor, *, limit: int, amp: str = "none") -> int:
    """Most rows per pass that fit: on CUDA, probed with a forward+backward of every model
    (an out-of-memory error means "does not fit"), keeping 10% headroom.

    Off CUDA there is no safe probe (a CPU allocation that is too large can bring the whole
    machine down rather than raise), and CPU throughput stops growing long before memory runs
    out, so auto means min(limit, CPU_AUTO_BATCH).
    """
    if example.device.type != "cuda":
        return min(limit, CPU_AUTO_BATCH)

    def fits(rows: int) -> bool:
        x = example[:1].expand(rows, *example.shape[1:]).contiguous()
        y = torch.zeros(rows, dtype=torch.long, device=example.device)
        try:
            for m in models:
                with eval_mode(m):
                    logits_and_gradient(m, x, y, amp=amp)
            torch.cuda.synchronize(example.device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del x, y
            torch.cuda.empty_cache()

    return max(1, int(find_largest(fits, limit=limit) * 0.9))


def chunking(batch_size: int, n_eps: int, stack_eps: bool) -> tuple[int, int]:
    """(examples per chunk, eps per stacked pass) so that no call exceeds batch_size rows."""
    if not stack_eps:
        return batch_size, 1
    per_pass = max(1, min(n_eps, batch_size))
    return max(1, batch_size // per_pass), per_pass
