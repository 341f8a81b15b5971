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


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        # The mixup paper's Table 2 puts dropout after the ReLU between the two convolutions.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.drop(torch.relu(self.bn2(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """PreAct ResNet (He et al. 2016) in the CIFAR form used by the mixup paper's code."""

    def __init__(self, in_channels, num_classes, mean, std, blocks=(2, 2, 2, 2), width: int = 64, dropout: float = 0.0):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        layers, in_planes = [], width
        for i, n in enumerate(blocks):
            planes, stride = width * 2**i, (1 if i == 0 else 2)
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(in_planes, planes, s, dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.head = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(self.normalize(x)))
        out = torch.relu(self.bn(out))
        out = nn.functional.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.head(out)


ModelFactory = Callable[..., nn.Module]

# name -> factory(in_channels, num_classes, image_size, mean, std, **options). Plain dict;
# the model tests are generated from it.
MODELS: dict[str, ModelFactory] = {
    "cnn": lambda in_channels, num_classes, image_size, mean, std, **kw: SmallCNN(
        in_channels, num_classes, mean, std, **kw
    ),
    "preact_resnet18": lambda in_channels, num_classes, image_size, mean, std, **kw: PreActResNet(
        in_channels, num_classes, mean, std, blocks=(2, 2, 2, 2), **kw
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
