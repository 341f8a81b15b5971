"""Augmentation on whole batches (airbench style): one random draw per batch from a seeded
generator, no per-image PIL round trip. Works on uint8 or float batches, on any device.

torchvision.transforms.v2.RandomCrop/RandomHorizontalFlip draw one crop for the whole batch tensor
and use the global RNG, so per-image crops from a checkpointable `torch.Generator` are written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_flip_lr(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def batch_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Each image zero-padded by `pad` pixels and cropped back at a random offset (RandomCrop(padding=pad))."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # N×H'×W'×C
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # N×H×1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # N×1×W
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def no_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x


def crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return batch_crop(x, 4 if min(x.shape[-2:]) >= 16 else 0, gen)


def crop_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return batch_flip_lr(crop(x, gen), gen)


# name -> (batch, gen) -> batch. "crop" pads by 4 (the paper's CIFAR setting); images under 16 px are not cropped.
AUGMENTS = {"none": no_augment, "crop": crop, "crop-flip": crop_flip}


def augment_batch(name: str, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return AUGMENTS[name](x, gen)
