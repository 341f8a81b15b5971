"""Normalize: every model's first layer, so the models take pixels in [0, 1] and attacks work in
pixel space. Its own module so that the model files (which use it) and the registry in core.py
(which imports the model files) import in one direction."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """(x − mean) / std per channel. Buffers, so the checkpoint carries them."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
