"""Augmentation on whole batches (airbench style): one random draw per batch from a seeded
generator, no per-image PIL round trip. Works on uint8 or float batches, on any device.

torchvision.transforms.v2.RandomCrop/RandomHorizontalFlip draw one crop for the whole batch tensor
and use the global RNG, so per-image crops from a checkpointable `torch.Generator` are written here.

The fast recipe's augmentations (after airbench94): "translate" shifts each image by up to 2 px
with reflect padding; "altflip-translate" adds the alternating flip: each training image has a
fixed random orientation (a hash of its index and the seed) and is mirrored in every other epoch,
so every image is seen both ways within two epochs. They need to know which images a batch holds
and the epoch: `augment_batch(name, x, gen, idx=..., epoch=..., seed=...)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_flip_lr(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def batch_crop(x: torch.Tensor, pad: int, gen: torch.Generator, mode: str = "constant") -> torch.Tensor:
    """Each image padded by `pad` pixels (zeros, or "reflect") and cropped back at a random offset
    (RandomCrop(padding=pad)); with reflect padding this is airbench's random translate."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode).permute(0, 2, 3, 1)  # N×H'×W'×C
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # N×H×1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # N×1×W
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def base_orientation(idx: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed pseudo-random bit per training image (True: mirrored in even epochs), from its index and
    the seed. An integer hash rather than a stored draw, so resuming needs nothing; every product stays
    under 2⁶³ (int64 arithmetic never overflows)."""
    h = (idx.long() + (seed % 2**31) * 97) % 2**31
    h = (h * 1103515245 + 12345) % 2**31
    h = h ^ (h >> 13)
    h = (h * 1274126177) % 2**31
    return ((h >> 16) & 1).bool()


def alternating_flip(x: torch.Tensor, idx: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """airbench's alternating flip: image i is mirrored iff its base orientation differs from the epoch's parity."""
    flip = base_orientation(idx, seed) ^ bool(epoch % 2)
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def no_augment(x: torch.Tensor, gen: torch.Generator, **_) -> torch.Tensor:
    return x


def crop(x: torch.Tensor, gen: torch.Generator, **_) -> torch.Tensor:
    return batch_crop(x, 4 if min(x.shape[-2:]) >= 16 else 0, gen)


def crop_flip(x: torch.Tensor, gen: torch.Generator, **_) -> torch.Tensor:
    return batch_flip_lr(crop(x, gen), gen)


def translate(x: torch.Tensor, gen: torch.Generator, **_) -> torch.Tensor:
    return batch_crop(x, 2 if min(x.shape[-2:]) >= 16 else 0, gen, mode="reflect")


def altflip_translate(x: torch.Tensor, gen: torch.Generator, *, idx: torch.Tensor | None = None, epoch: int = 0,
                      seed: int = 0) -> torch.Tensor:
    if idx is None:
        raise ValueError("altflip-translate needs the batch's example indices (idx=...)")
    return translate(alternating_flip(x, idx, epoch, seed), gen)


# name -> (batch, gen, *, idx, epoch, seed) -> batch. "crop" pads by 4 (the paper's CIFAR setting);
# "translate" by 2 with reflection (airbench); images under 16 px are not cropped or translated.
AUGMENTS = {"none": no_augment, "crop": crop, "crop-flip": crop_flip, "translate": translate,
            "altflip-translate": altflip_translate}


def augment_batch(name: str, x: torch.Tensor, gen: torch.Generator, *, idx: torch.Tensor | None = None,
                  epoch: int = 0, seed: int = 0) -> torch.Tensor:
    """Augment a batch; `idx` (the batch's indices into the training set), `epoch` and `seed` are used
    by the alternating flip only."""
    return AUGMENTS[name](x, gen, idx=idx, epoch=epoch, seed=seed)
