"""Predictions and top-k error, batched, with no autograd graph; `eval_mode` (a model in eval mode
for a block, handed back in its own mode); `percent_wrong`, the one formula behind every error rate."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..data import pixels


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


def percent_wrong(wrong: int, n: int) -> float:
    """100 · wrong / n from the integer counts: the one formula behind every error rate robustmix
    prints, so a number reads the same in every table (a float32 or float64 mean of the
    correctness gives 9.5 in one place and 9.6 in another for 955 of 10,000). NaN for n = 0."""
    return 100.0 * int(wrong) / int(n) if n else float("nan")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block, and back in the mode it came in after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
