"""Input-domain checks every attack runs on entry: x is N×C×H×W floats in [0, 1] with no NaN/inf
(never clamped silently: torchattacks 3.5 does, issue #172), y holds N class indices inside the
model's classes. A min/max and a look at the model's last linear layer: no forward pass.

Each failure is a `RobustmixError` whose one-line message names the problem and the fix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..runtime.errors import RobustmixError


def model_classes(model: nn.Module) -> int | None:
    """The number of classes a model outputs, read from its last linear layer (None if it has none)."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return None if last is None else int(last.out_features)


def check_pixels(x: torch.Tensor, *, allow_uint8: bool = False) -> None:
    """x must be an N×C×H×W float tensor of finite pixels in [0, 1] (uint8 0–255 only if allowed)."""
    if not isinstance(x, torch.Tensor):
        raise RobustmixError(f"x must be a torch.Tensor of images, got {type(x).__name__}: convert it with torch.as_tensor")
    if x.dim() != 4:
        raise RobustmixError(f"x must be N×C×H×W, got shape {tuple(x.shape)}: add the missing batch or channel dimension")
    if x.shape[0] == 0:
        raise RobustmixError("x is empty (0 images): pass at least one image")
    if x.dtype == torch.uint8 and allow_uint8:
        return
    if not x.is_floating_point():
        raise RobustmixError(
            f"x has dtype {x.dtype}, not float: pass pixels as floats in [0, 1] (robustmix.data.pixels converts uint8)"
        )
    lo, hi = torch.aminmax(x.detach())
    lo, hi = lo.item(), hi.item()
    if lo != lo or hi != hi or abs(lo) == float("inf") or abs(hi) == float("inf"):  # NaN is never equal to itself
        raise RobustmixError("x contains NaN or inf: clean the inputs; attacks need finite pixels in [0, 1]")
    if lo < 0 or hi > 1:
        raise RobustmixError(
            f"x is outside [0, 1] (min {lo:.4g}, max {hi:.4g}): pass pixels in [0, 1] and normalise inside "
            "the model (divide 0–255 images by 255); robustmix never clamps inputs silently"
        )


def check_labels(y: torch.Tensor, n: int, num_classes: int | None) -> None:
    """y must be n integer class indices in [0, num_classes)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        got = f"shape {tuple(y.shape)}, dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise RobustmixError(f"y must be a 1-D integer tensor of class indices, got {got}: pass y.long()")
    if y.shape[0] != n:
        raise RobustmixError(f"x has {n} images but y has {y.shape[0]} labels: pass one label per image")
    lo, hi = torch.aminmax(y)
    lo, hi = int(lo), int(hi)
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        bad = lo if lo < 0 else hi
        limit = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise RobustmixError(
            f"label {bad} is outside the model's classes ({limit}): the labels do not belong to this model's data set"
        )


def check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, allow_uint8: bool = False) -> None:
    """Entry check of every attack: pixels in [0, 1] and finite, labels inside the model's classes."""
    check_pixels(x, allow_uint8=allow_uint8)
    check_labels(y, x.shape[0], model_classes(model))
