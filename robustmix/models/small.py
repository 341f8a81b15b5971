"""Small models: the foundation's CNN and LeNet-5."""

from __future__ import annotations

import torch
from torch import nn

from .normalize import Normalize


class SmallCNN(nn.Module):
    """Three 3×3 convolutions and a linear head; for 8×8 digits and other small images."""

    def __init__(self, in_channels: int, num_classes: int, mean, std, width: int = 32, dropout: float = 0.0):
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
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(4 * w, num_classes)

    def stages(self):
        return [lambda x: self.features[:3](self.normalize(x)), self.features[3:7],
                lambda h: self.head(self.drop(self.features[7:](h)))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(self.normalize(x))))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as in the mixup paper's speech experiment.

    conv5×5(6) → pool → conv5×5(16) → pool → fc120 → fc84 → fc. The first convolution pads by 2
    (28×28 MNIST then behaves like the original 32×32 input); images under 16 px also pad the second,
    and the features are pooled to 5×5 so any image size works.
    """

    def __init__(self, in_channels: int, num_classes: int, mean, std, image_size: int = 32, dropout: float = 0.0):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2 if image_size < 16 else 0), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5), nn.Flatten(),
        )
        self.fc = nn.Sequential(
            nn.Linear(16 * 25, 120), nn.ReLU(inplace=True), nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(84, num_classes),
        )

    def stages(self):
        return [lambda x: self.conv[:3](self.normalize(x)), lambda h: self.fc(self.conv[3:](h))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.normalize(x)))


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FastCNN(nn.Module):
    """A CPU-sized CIFAR network (after airbench's layout): each group convolves, then halves the size.

    conv(w) → [pool, conv(2w)] → [pool, conv(4w)] → [pool, conv(8w)] → global max-pool → linear.
    With w = 32 it is ~15M multiply-adds per 32×32 image, ~10× less than PreAct ResNet-18 at width 16.
    """

    def __init__(self, in_channels: int, num_classes: int, mean, std, width: int = 32, dropout: float = 0.0):
        super().__init__()
        w = width
        self.normalize = Normalize(mean, std)
        self.stem = conv_bn(in_channels, w)
        self.group1 = nn.Sequential(nn.MaxPool2d(2), conv_bn(w, 2 * w))
        self.group2 = nn.Sequential(nn.MaxPool2d(2), conv_bn(2 * w, 4 * w))
        self.group3 = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), conv_bn(4 * w, 8 * w), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(8 * w, num_classes, bias=False)

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.group3(h)))

    def stages(self):
        return [lambda x: self.group1(self.stem(self.normalize(x))), self.group2, self.tail]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.group2(self.group1(self.stem(self.normalize(x)))))
