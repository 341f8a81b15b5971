"""Data-set registry. Every data set is a `Dataset` of NCHW tensors; pixels in [0, 1].

Images are held whole in memory (uint8 where the source is 8-bit, float32 otherwise) and moved to
the training device once; `pixels` turns a batch into float32 in [0, 1]. Normalisation is *not*
applied here: it is the first layer of every model, so attacks work in pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import RobustmixError


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # N×C×H×W, uint8 (0–255) or float32 (0–1)
    y_train: torch.Tensor  # N, int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per-channel mean of the training pixels in [0, 1], for the model's first layer
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "Dataset":
        return Dataset(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.classes,
            self.mean,
            self.std,
        )


def pixels(x: torch.Tensor) -> torch.Tensor:
    """A batch as float32 in [0, 1], whatever its storage dtype."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = pixels(x).double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1,797 images, offline), a fixed stratified split.

    The split depends only on `split_seed` (fixed at 0 by the registry), never on a training seed,
    so every checkpoint trained on `digits` is evaluated on the same 360 test images.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # pixel values 0..16 -> [0, 1]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )
    x_train = torch.from_numpy(np.ascontiguousarray(x_tr))
    mean, std = channel_stats(x_train)
    return Dataset(
        name="digits",
        x_train=x_train,
        y_train=torch.from_numpy(y_tr),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te)),
        y_test=torch.from_numpy(y_te),
        classes=tuple(str(c) for c in range(10)),
        mean=mean,
        std=std,
    )


# name -> loader. Plain dict; tests are generated from it.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
}


def load_dataset(name: str, **kwargs) -> Dataset:
    try:
        loader = DATASETS[name]
    except KeyError:
        raise RobustmixError(
            f"unknown data set {name!r}: choose one of {', '.join(sorted(DATASETS))}"
        ) from None
    return loader(**kwargs)


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch: one permutation, cut into batches (the last may be short)."""
    perm = torch.randperm(n, generator=gen)
    return list(perm.split(batch_size))
