"""Checks that refuse what robustmix cannot evaluate correctly, before any attack runs.

- `check_inputs(model, x, y)` (in `robustmix.inputs`, re-exported here): x is N×C×H×W floats in
  [0, 1] with no NaN/inf, y holds N class indices inside the model's classes; no forward pass,
  cheap enough for every attack call.
- `check_model(model, x)`: one probe batch, two forward passes in eval mode (run once per
  evaluation, not per attack): logits must be finite; a warning (`RobustmixWarning`) when the two
  passes differ (a randomized model: gradients and error rates are then unreliable) or when the
  outputs look like probabilities instead of logits (cross-entropy on them masks gradients).
  Modelled on AutoAttack's checks.py.
- `check_fits(meta, dataset)`: a checkpoint's classes and input shape against a data set.
- `check_distinct(names)`: no two checkpoints evaluated or drawn together share a name.

Each failure is a `RobustmixError` whose one-line message names the problem and the fix.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .attacks.execution import eval_mode
from .errors import RobustmixError
from .inputs import check_inputs, check_labels, check_pixels, model_classes  # noqa: F401 (the input checks, re-exported)

PROBE = 64  # examples in the probe batch of check_model


class RobustmixWarning(UserWarning):
    """Something that makes robustness numbers doubtful but not necessarily wrong."""


def check_model(model: nn.Module, x: torch.Tensor, *, name: str = "model") -> torch.Tensor:
    """Two forward passes on a probe batch (the first PROBE images of x, float in [0, 1]).

    Raises on non-finite logits; warns (RobustmixWarning) on a randomized model or on outputs that
    look like probabilities. The model is evaluated in eval mode and handed back in its own mode.
    Returns the probe logits.
    """
    return probe_model(model, x, name=name)[0]


def probe_model(model: nn.Module, x: torch.Tensor, *, name: str = "model") -> tuple[torch.Tensor, dict]:
    """`check_model`, also returning its findings for the soundness checks:
    {"rerun_max_diff": largest difference of the two passes, "probabilities": outputs look like
    probabilities}."""
    param = next(model.parameters(), None)
    probe = x[:PROBE].to(param.device if param is not None else x.device)
    if probe.dtype == torch.uint8:
        probe = probe.float() / 255
    with eval_mode(model), torch.inference_mode():
        a = model(probe).float()
        b = model(probe).float()
    if a.dim() != 2 or a.shape[0] != probe.shape[0]:
        raise RobustmixError(f"{name} returned shape {tuple(a.shape)} for {probe.shape[0]} images: it must return N×classes logits")
    if not torch.isfinite(a).all():
        raise RobustmixError(f"{name} returns NaN or inf logits on clean inputs: fix or retrain the model before attacking it")
    probabilities = bool(a.shape[1] > 1 and a.min() >= 0 and a.max() <= 1 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4))
    findings = {"rerun_max_diff": (a - b).abs().max().item(), "probabilities": probabilities}
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-5):
        warnings.warn(
            f"{name} looks randomized (two forward passes in eval mode differ by up to {(a - b).abs().max().item():.3g}): "
            "its gradients and error rates are unreliable; use a deterministic model or average over passes (EOT)",
            RobustmixWarning,
            stacklevel=2,
        )
    if probabilities:
        warnings.warn(
            f"{name} seems to output probabilities (rows in [0, 1] summing to 1), not logits: cross-entropy on "
            "probabilities masks gradients and understates attacks; remove the final softmax",
            RobustmixWarning,
            stacklevel=2,
        )
    return a, findings


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


def check_distinct(names: list[str], what: str = "checkpoints") -> None:
    """Results, tables and figures are keyed by checkpoint name: two with one name would merge."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RobustmixError(f"two {what} are named {dup[0]!r}: give checkpoints distinct folder names")


def check_evaluation(targets: list, x: torch.Tensor, y: torch.Tensor, surrogate=None) -> dict[str, dict]:
    """Once per evaluation: inputs, labels and every model (targets and surrogate) on a probe batch.

    `targets` and `surrogate` are `checkpoint.Checkpoint`s (anything with .name, .model and .meta).
    Returns each model's `probe_model` findings by name.
    """
    findings = {}
    check_pixels(x, allow_uint8=True)
    check_distinct([t.name for t in targets], "targets")
    for c in targets + ([surrogate] if surrogate is not None else []):
        shape = (c.meta or {}).get("input_shape")
        if shape and list(shape) != list(x.shape[1:]):
            raise RobustmixError(
                f"{c.name} takes inputs of shape {list(shape)} but x has {list(x.shape[1:])}: "
                "evaluate it on the data set it was trained on"
            )
        logits, findings[c.name] = probe_model(c.model, x, name=c.name)
        check_labels(y, x.shape[0], logits.shape[1])
    return findings
