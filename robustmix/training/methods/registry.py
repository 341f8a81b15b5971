"""The methods by name (`METHODS`, a plain dict: tests are generated from it), their options, and
how the trainer calls any of them: `apply_method` hides whether a method mixes inputs or needs the
model, and the loss (`soft_cross_entropy`) never needs to know that mixing happened."""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

from ...runtime.errors import RobustmixError
from .mixing import (
    cutmix,
    erm,
    manifold_mixup,
    mixup,
    mixup_cross_class,
    mixup_inputs_only,
    puzzle_mix,
)

Method = Callable[..., tuple[torch.Tensor, torch.Tensor]]

# name -> method. Plain dict; tests are generated from it.
METHODS: dict[str, Method] = {
    "erm": erm,
    "mixup": mixup,
    "mixup-inputs-only": mixup_inputs_only,
    "mixup-cross-class": mixup_cross_class,
    "cutmix": cutmix,
    "manifold-mixup": manifold_mixup,
    "puzzle-mix": puzzle_mix,
}


def get_method(name: str, options: dict | None = None) -> Method:
    """The method `name`, with `options` (e.g. from --method-option) bound if given; raises
    RobustmixError for an unknown name, or options the method does not take."""
    try:
        method = METHODS[name]
    except KeyError:
        raise RobustmixError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}") from None
    if not options:
        return method
    kind = getattr(method, "options", None)
    if kind is None:
        raise RobustmixError(f"method {name} takes no options (got {', '.join(options)}): drop them, or choose a method that has them")
    bound = functools.partial(method, options=kind.from_dict(options))
    return functools.update_wrapper(bound, method)


def method_options(method: Method) -> dict | None:
    """The options a method runs with, all of them (defaults included), or None if it takes none."""
    kind = getattr(method, "options", None)
    if kind is None:
        return None
    given = getattr(method, "keywords", {}).get("options")
    return (given or kind()).to_dict()


def network_passes(method: Method) -> int:
    """Forward+backward passes of the batch per training step (1 for all but Puzzle Mix's 2)."""
    return getattr(method, "network_passes", 1)


def apply_method(method: Method, model, x, y, *, num_classes: int, alpha: float, gen: torch.Generator,
                 after_mix: Callable | None = None):
    """(logits, y_soft) for one training batch, whatever kind of method it is. `after_mix(x_mix, y_soft)`,
    if given, replaces the mixed input before the model sees it (adversarial training crafting on the
    mixed input: robustmix.training.adversarial)."""
    if getattr(method, "needs_model", False):
        if after_mix is None:
            return method(model, x, y, num_classes=num_classes, alpha=alpha, gen=gen)
        if not getattr(method, "takes_after_mix", False):
            raise RobustmixError(f"{getattr(method, '__name__', method)} mixes inside the network: nothing can be done to its mixed input")
        return method(model, x, y, num_classes=num_classes, alpha=alpha, gen=gen, after_mix=after_mix)
    x_mix, y_soft = method(x, y, num_classes=num_classes, alpha=alpha, gen=gen)
    if after_mix is not None:
        x_mix = after_mix(x_mix, y_soft)
    return model(x_mix), y_soft


def soft_cross_entropy(logits: torch.Tensor, y_soft: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_k y_k log softmax(logits)_k; equals lam·CE(y) + (1−lam)·CE(y_perm)."""
    return -(y_soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
