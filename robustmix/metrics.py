"""Predictions and top-k error, batched, with no autograd graph."""

from __future__ import annotations

import torch
from torch import nn

from .attacks.execution import eval_mode
from .data import pixels
from .stats import percent_wrong


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of `model` (evaluated in eval mode, then left in the mode it came in) on `x`."""
    device = next(model.parameters()).device
    with eval_mode(model):
        out = [model(pixels(xb.to(device))) for xb in x.split(batch_size)]
    return torch.cat(out).float()


def topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Bool per example: is y among the k highest logits? (k is capped at the number of classes)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y.to(logits.device).view(-1, 1)).any(dim=1)


def topk_error(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Top-k error in percent."""
    c = topk_correct(logits, y, k)
    return percent_wrong(int((~c).sum()), c.numel())
