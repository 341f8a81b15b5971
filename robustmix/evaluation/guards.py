"""Checks that refuse what robustmix cannot evaluate correctly, before any attack runs.

- `check_inputs(model, x, y)` (in `robustmix.attacks.inputs`, re-exported here): x is N×C×H×W floats in
  [0, 1] with no NaN/inf, y holds N class indices inside the model's classes; no forward pass,
  cheap enough for every attack call.
- `check_model(model, x)`: one probe batch, two forward passes in eval mode (run once per
  evaluation, not per attack): logits must be finite; a warning (`RobustmixWarning`) when the two
  passes differ (a randomized model: gradients and error rates are then unreliable) or when the
  outputs look like probabilities instead of logits (cross-entropy on them masks gradients).
  Modelled on AutoAttack's checks.py.
- `check_evaluation(targets, x, y)`: all of it once per evaluation, returning each model's probe
  findings for the soundness checks (`robustmix.evaluation.probes.probe_model`).
(A checkpoint against a data set, and distinct names: `robustmix.store.runs`.)

Each failure is a `RobustmixError` whose one-line message names the problem and the fix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attacks.inputs import check_inputs, check_labels, check_pixels, model_classes  # noqa: F401 (the input checks, re-exported)
from ..runtime.errors import RobustmixError
from ..store.runs import check_distinct
from .probes import probe_model


def check_model(model: nn.Module, x: torch.Tensor, *, name: str = "model") -> torch.Tensor:
    """Two forward passes on a probe batch (the first PROBE images of x, float in [0, 1]).

    Raises on non-finite logits; warns (RobustmixWarning) on a randomized model or on outputs that
    look like probabilities. The model is evaluated in eval mode and handed back in its own mode.
    Returns the probe logits.
    """
    return probe_model(model, x, name=name)[0]


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
