"""Device choice: `auto` means cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from .errors import RobustmixError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobustmixError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RobustmixError(f"device {name!r} asked for but CUDA is not available here: use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RobustmixError(f"device {name!r} asked for but MPS is not available here: use --device cpu or auto")
    return device
