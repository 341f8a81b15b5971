"""A network brought from elsewhere, behind the input and output conventions robustmix relies on.

Pixels in [0, 1] come in; the wrapper optionally reverses the colour channels (for networks
trained on BGR images), normalises with the statistics the network was trained with, runs the
network, and reorders its outputs into the data set's class order when they differ. With no
normalisation the layer holds mean 0 and std 1, which leaves every float unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..runtime.errors import RobustmixError
from .normalize import Normalize


class ImportedModel(nn.Module):
    """[0, 1] pixels -> (BGR flip) -> Normalize(mean, std) -> net -> logits in the data set's class order.

    `class_order[k]` is the data-set class that the network's output k stands for.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], *, bgr: bool = False,
                 class_order: Sequence[int] | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.bgr = bool(bgr)
        self.net = net
        self.class_order = None if class_order is None else [int(c) for c in class_order]
        index = None
        if class_order is not None:
            index = torch.empty(len(self.class_order), dtype=torch.long)
            index[torch.tensor(self.class_order)] = torch.arange(len(self.class_order))
        self.register_buffer("class_index", index)  # logits[:, c] = output[:, index[c]]
        # A fresh Module is in train mode whatever `net` is in. Take net's mode instead: the checks
        # hand a model back "in the mode it came in", and a train-mode wrapper around an eval-mode
        # net (with_normalization shares the net) would leave the caller's net in train mode.
        self.train(net.training)

    def with_normalization(self, mean: Sequence[float], std: Sequence[float], bgr: bool) -> "ImportedModel":
        """The same network (shared, not copied) behind another normalisation."""
        return ImportedModel(self.net, mean, std, bgr=bgr, class_order=self.class_order).to(self.normalize.mean.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        out = self.net(self.normalize(x))
        if not isinstance(out, torch.Tensor):
            raise RobustmixError(
                f"the imported network returned a {type(out).__name__}, not a tensor of logits: "
                "export a module whose forward returns the logits only"
            )
        if self.class_index is not None:
            out = out.index_select(1, self.class_index)
        return out
