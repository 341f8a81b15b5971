"""torchvision's ImageNet ResNets (resnet18/50/101), randomly initialised, behind our Normalize.

For ImageFolder data at ImageNet-like sizes (e.g. --image-size 224). We use torchvision's
implementation rather than our own; only the first convolution is replaced for 1-channel data.
"""

from __future__ import annotations

import torch
from torch import nn

from .normalize import Normalize


class TorchvisionResNet(nn.Module):
    def __init__(self, arch: str, in_channels: int, num_classes: int, mean, std, dropout: float = 0.0):
        super().__init__()
        import torchvision.models as tvm

        self.normalize = Normalize(mean, std)
        self.net = getattr(tvm, arch)(weights=None, num_classes=num_classes)
        if in_channels != 3:
            self.net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        if dropout > 0:
            self.net.fc = nn.Sequential(nn.Dropout(dropout), self.net.fc)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(self.normalize(x)))))

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.fc(torch.flatten(n.avgpool(n.layer4(n.layer3(h))), 1))

    def stages(self):
        return [lambda x: self.net.layer1(self.stem(x)), self.net.layer2, self.tail]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))
