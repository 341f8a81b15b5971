"""The CIFAR residual networks of the mixup papers: PreAct ResNet-18 and WideResNet-28-10."""

from __future__ import annotations

import torch
from torch import nn

from ..runtime.errors import RobustmixError
from .normalize import Normalize


def bn_relu_pool_head(bn: nn.Module, head: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """The pre-activation networks' ending: BN, ReLU, global average pool, linear head."""
    return head(nn.functional.adaptive_avg_pool2d(torch.relu(bn(out)), 1).flatten(1))


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
    """PreAct ResNet (He et al. 2016) in the CIFAR form used by the mixup paper's code.

    `width` is the first group's channel count (64 in the paper); groups double it.
    """

    def __init__(self, in_channels, num_classes, mean, std, blocks=(2, 2, 2, 2), width: int = 64, dropout: float = 0.0):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        layers, in_planes = [], width
        self.group_ends = []
        for i, n in enumerate(blocks):
            planes, stride = width * 2**i, (1 if i == 0 else 2)
            for s in [stride] + [1] * (n - 1):
                layers.append(PreActBlock(in_planes, planes, s, dropout))
                in_planes = planes
            self.group_ends.append(len(layers))
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.head = nn.Linear(in_planes, num_classes)

    def tail(self, out: torch.Tensor) -> torch.Tensor:
        return bn_relu_pool_head(self.bn, self.head, out)

    def stages(self):
        """Mixing points: the input, after group 1, after group 2 (Verma et al.'s choice)."""
        g1, g2 = self.group_ends[0], self.group_ends[1]
        return [lambda x: self.layers[:g1](self.conv1(self.normalize(x))), self.layers[g1:g2],
                lambda h: self.tail(self.layers[g2:](h))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.layers(self.conv1(self.normalize(x))))


class WideBlock(nn.Module):
    """BN-ReLU-conv3×3-(dropout)-BN-ReLU-conv3×3 plus shortcut (Zagoruyko & Komodakis 2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(torch.relu(self.bn2(self.drop(self.conv1(out)))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-width: depth = 6n + 4 (28 -> 4 blocks per group), widths 16·width, 32·width, 64·width.

    WRN-28-10 is the mixup paper's; `--depth 10 --width 2` gives a WRN-10-2 that trains on a CPU.
    """

    def __init__(self, in_channels, num_classes, mean, std, depth: int = 28, width: int = 10, dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise RobustmixError(f"WideResNet --depth must be 6n+4 and >= 10 (10, 16, 22, 28, ...), got {depth}")
        n = (depth - 4) // 6
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        groups, in_planes = [], 16
        for i, planes in enumerate((16 * width, 32 * width, 64 * width)):
            blocks = []
            for j in range(n):
                blocks.append(WideBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1, dropout))
                in_planes = planes
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(in_planes)
        self.head = nn.Linear(in_planes, num_classes)

    def tail(self, out: torch.Tensor) -> torch.Tensor:
        return bn_relu_pool_head(self.bn, self.head, out)

    def stages(self):
        return [lambda x: self.groups[0](self.conv1(self.normalize(x))), self.groups[1],
                lambda h: self.tail(self.groups[2](h))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.groups(self.conv1(self.normalize(x))))
