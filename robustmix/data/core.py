"""The Dataset type and pure helpers on it. Every data set is a `Dataset` of NCHW tensors; pixels in [0, 1].

Images are held whole in memory (uint8 where the source is 8-bit, float32 otherwise) and moved to
the training device once; `pixels` turns a batch into float32 in [0, 1]. Normalisation is *not*
applied here: it is the first layer of every model, so attacks work in pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..runtime.errors import RobustmixError


@dataclass(frozen=True)
class Dataset:
    """A data set as whole tensors: images N×C×H×W, uint8 (0–255) or float32 (0–1) (`pixels`
    turns a batch into float32 in [0, 1]), labels N int64 class indices, class names, and the
    per-channel mean/std of the training pixels in [0, 1] units (for the model's first layer)."""

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
    """A batch as float32 in [0, 1], whatever its storage dtype.

    Examples:
        >>> import torch
        >>> from robustmix.data import pixels
        >>> pixels(torch.tensor([[0, 51, 255]], dtype=torch.uint8))
        tensor([[0.0000, 0.2000, 1.0000]])
    """
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images N×C×H×W (uint8 or float), in [0, 1] units, rounded to 6
    places; std at least 1e-3. Returns (mean, std), each a C-tuple.
    """
    x = pixels(x).double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch: one permutation, cut into batches (the last may be short)."""
    perm = torch.randperm(n, generator=gen)
    return list(perm.split(batch_size))


def stratified_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded, class-stratified subset of n labels (sklearn's stratified split)."""
    from sklearn.model_selection import train_test_split

    total = int(y.numel())
    if n >= total:
        return torch.arange(total)
    labels = y.cpu().numpy()
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):
        raise RobustmixError(f"subset of {n} is smaller than the {len(classes)} classes: ask for at least {len(classes)} examples")
    if counts.min() >= 2:
        idx, _ = train_test_split(range(total), train_size=n, stratify=labels, random_state=seed)
        return torch.tensor(sorted(idx), dtype=torch.int64)
    # Hand-written only where sklearn refuses (a class with one example, e.g. a small imported test set):
    # each class gets its share of n by largest remainder, its examples drawn by a seeded permutation.
    rng = np.random.default_rng(seed)
    share = counts * n / total
    take = np.floor(share).astype(int)
    take[np.argsort(-(share - take), kind="stable")[: n - take.sum()]] += 1
    idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)])
    return torch.tensor(sorted(idx.tolist()), dtype=torch.int64)


def corrupt_labels(y: torch.Tensor, fraction: float, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Table 2's label corruption: (new labels, boolean mask of the corrupted examples).

    Exactly round(fraction·N) examples, chosen with a seeded generator, get a label drawn uniformly
    from the *other* num_classes − 1 classes, so exactly that fraction of the labels is wrong. (The
    paper's "random labels" may coincide with the true one 1/K of the time; drawing from the other
    classes makes the corrupted set exactly the wrong set, which is what a memorisation test needs.)
    """
    if not 0.0 <= fraction <= 1.0:
        raise RobustmixError(f"--label-noise must be a fraction in [0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    n = int(y.numel())
    m = round(fraction * n)
    chosen = torch.randperm(n, generator=gen)[:m]
    shift = torch.randint(1, num_classes, (m,), generator=gen)  # 1..K-1: never the true label
    y_new = y.clone()
    y_new[chosen] = (y[chosen].cpu() + shift).remainder(num_classes).to(y.dtype).to(y.device)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return y_new, mask


def take(data: Dataset, *, train_idx: torch.Tensor | None = None, test_idx: torch.Tensor | None = None,
         y_train: torch.Tensor | None = None) -> Dataset:
    """A copy of `data` restricted to the given indices (and/or with replaced training labels)."""
    x_tr, y_tr = data.x_train, data.y_train if y_train is None else y_train
    if train_idx is not None:
        x_tr, y_tr = x_tr[train_idx], y_tr[train_idx]
    x_te, y_te = data.x_test, data.y_test
    if test_idx is not None:
        x_te, y_te = x_te[test_idx], y_te[test_idx]
    return replace(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
