"""Model registry. Every model takes pixels in [0, 1] and normalises them in its first layer.

`build_model(name, ...)` is the one way models are made, by the trainer and by the checkpoint
loader alike, so a checkpoint's metadata is enough to rebuild its architecture.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .errors import RobustmixError


class Normalize(nn.Module):
    """(x − mean) / std per channel. Buffers, so the checkpoint carries them."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """Three 3×3 convolutions and a linear head; for 8×8 digits and other small images."""

    def __init__(self, in_channels: int, num_classes: int, mean, std, width: int = 32):
        super().__init__()
        w = width
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


ModelFactory = Callable[..., nn.Module]

# name -> factory(in_channels, num_classes, image_size, mean, std, **options). Plain dict;
# the model tests are generated from it.
MODELS: dict[str, ModelFactory] = {
    "cnn": lambda in_channels, num_classes, image_size, mean, std, **kw: SmallCNN(
        in_channels, num_classes, mean, std, **kw
    ),
}


def build_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    **options,
) -> nn.Module:
    try:
        factory = MODELS[name]
    except KeyError:
        raise RobustmixError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}") from None
    return factory(in_channels, num_classes, image_size, tuple(mean), tuple(std), **options)
