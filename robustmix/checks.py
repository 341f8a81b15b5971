"""Checks that refuse what robustmix cannot evaluate correctly, before any attack runs.

- `check_inputs(model, x, y)`: x is N×C×H×W floats in [0, 1] with no NaN/inf (never clamped
  silently: torchattacks 3.5 does, issue #172), y holds N class indices inside the model's classes.
  A min/max and a look at the model's last linear layer: no forward pass, cheap enough for every
  attack call.
- `check_model(model, x)`: one probe batch, two forward passes in eval mode (run once per
  evaluation, not per attack): logits must be finite; a warning (`RobustmixWarning`) when the two
  passes differ (a randomized model: gradients and error rates are then unreliable) or when the
  outputs look like probabilities instead of logits (cross-entropy on them masks gradients).
  Modelled on AutoAttack's checks.py.
- `check_fits(meta, dataset)`: a checkpoint's classes and input shape against a data set.

Each failure is a `RobustmixError` whose one-line message names the problem and the fix.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .errors import RobustmixError

PROBE = 64  # examples in the probe batch of check_model


class RobustmixWarning(UserWarning):
    """Something that makes robustness numbers doubtful but not necessarily wrong."""


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


def check_model(model: nn.Module, x: torch.Tensor, *, name: str = "model") -> torch.Tensor:
    """Two forward passes on a probe batch (the first PROBE images of x, float in [0, 1]).

    Raises on non-finite logits; warns (RobustmixWarning) on a randomized model or on outputs that
    look like probabilities. The model is evaluated in eval mode and handed back in its own mode.
    Returns the probe logits.
    """
    param = next(model.parameters(), None)
    probe = x[:PROBE].to(param.device if param is not None else x.device)
    if probe.dtype == torch.uint8:
        probe = probe.float() / 255
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            a = model(probe).float()
            b = model(probe).float()
    finally:
        model.train(was_training)
    if a.dim() != 2 or a.shape[0] != probe.shape[0]:
        raise RobustmixError(f"{name} returned shape {tuple(a.shape)} for {probe.shape[0]} images: it must return N×classes logits")
    if not torch.isfinite(a).all():
        raise RobustmixError(f"{name} returns NaN or inf logits on clean inputs: fix or retrain the model before attacking it")
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-5):
        warnings.warn(
            f"{name} looks randomized (two forward passes in eval mode differ by up to {(a - b).abs().max().item():.3g}): "
            "its gradients and error rates are unreliable; use a deterministic model or average over passes (EOT)",
            RobustmixWarning,
            stacklevel=2,
        )
    if a.shape[1] > 1 and a.min() >= 0 and a.max() <= 1 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4):
        warnings.warn(
            f"{name} seems to output probabilities (rows in [0, 1] summing to 1), not logits: cross-entropy on "
            "probabilities masks gradients and understates attacks; remove the final softmax",
            RobustmixWarning,
            stacklevel=2,
        )
    return a


def check_fits(meta: dict, num_classes: int, input_shape, *, name: str, dataset: str) -> None:
    """A checkpoint's recorded classes and input shape must match the data set it is evaluated on."""
    if meta.get("num_classes") != num_classes:
        raise RobustmixError(
            f"{name} has {meta.get('num_classes')} classes but data set {dataset!r} has {num_classes}: "
            "evaluate it on the data set it was trained on"
        )
    if list(meta.get("input_shape") or []) != list(input_shape):
        raise RobustmixError(
            f"{name} takes inputs of shape {meta.get('input_shape')} but data set {dataset!r} has {list(input_shape)}: "
            "evaluate it on the data set it was trained on"
        )


def check_evaluation(targets: list, x: torch.Tensor, y: torch.Tensor, surrogate=None) -> None:
    """Once per evaluation: inputs, labels and every model (targets and surrogate) on a probe batch.

    `targets` and `surrogate` are `evaluate.Checkpoint`s (anything with .name, .model and .meta).
    """
    check_pixels(x, allow_uint8=True)
    names = [t.name for t in targets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RobustmixError(f"two targets are named {dup[0]!r}: give checkpoints distinct folder names")
    for c in targets + ([surrogate] if surrogate is not None else []):
        shape = (c.meta or {}).get("input_shape")
        if shape and list(shape) != list(x.shape[1:]):
            raise RobustmixError(
                f"{c.name} takes inputs of shape {list(shape)} but x has {list(x.shape[1:])}: "
                "evaluate it on the data set it was trained on"
            )
        logits = check_model(c.model, x, name=c.name)
        check_labels(y, x.shape[0], logits.shape[1])
