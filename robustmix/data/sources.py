"""The data-set registry: name -> loader(*, data_dir, download, image_size, cache_dir) -> Dataset.

`digits` is bundled with scikit-learn (offline; tests and CI use it). The torchvision sets are read
from `data_dir` (`download=True` fetches them for users who are online). `imagefolder:ROOT` reads
any ImageFolder tree through the decode-once cache in `imagefolder.py`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..runtime.errors import RobustmixError
from .core import Dataset, channel_stats, corrupt_labels, stratified_subset, take

IMAGEFOLDER = "imagefolder:"


def load_digits(test_fraction: float = 0.2, split_seed: int = 0, **_) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1,797 images, offline), a fixed stratified split.

    The split depends only on `split_seed` (fixed at 0 by the registry), never on a training seed,
    so every checkpoint trained on `digits` is evaluated on the same 360 test images.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # pixel values 0..16 -> [0, 1]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    return make_dataset("digits", torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(y_tr),
                        torch.from_numpy(np.ascontiguousarray(x_te)), torch.from_numpy(y_te), tuple(str(c) for c in range(10)))


def make_dataset(name, x_train, y_train, x_test, y_test, classes, image_size: int = 0) -> Dataset:
    if image_size and tuple(x_train.shape[-2:]) != (image_size, image_size):
        from torchvision.transforms.v2 import functional as TF

        x_train, x_test = (TF.resize(x, [image_size, image_size], antialias=True) for x in (x_train, x_test))
    mean, std = channel_stats(x_train)
    return Dataset(name, x_train.contiguous(), y_train.long(), x_test.contiguous(), y_test.long(), tuple(classes), mean, std)


def torchvision_loader(cls_name: str, channels_last: bool, split_arg: bool = False) -> Callable[..., Dataset]:
    """A loader for one torchvision data set, converted to NCHW uint8 tensors."""

    def load(*, data_dir: str | None = None, download: bool = False, image_size: int = 0, **_) -> Dataset:
        import torchvision.datasets as tvd

        root = Path(data_dir or "data").expanduser()
        cls = getattr(tvd, cls_name)
        parts = []
        for train in (True, False):
            kw = {"split": "train" if train else "test"} if split_arg else {"train": train}
            try:
                # Note: torchvision reads CIFAR's official "python version" archive with pickle.
                ds = cls(str(root), download=download, **kw)
            except RuntimeError as e:
                hint = "pass --download to fetch it" if not download else "check the network or the folder"
                raise RobustmixError(f"{cls_name} not found in {root} ({str(e).splitlines()[0]}): pass --data-dir, or {hint}") from None
            x = torch.as_tensor(np.asarray(ds.data))
            x = x.permute(0, 3, 1, 2) if channels_last else (x[:, None] if x.ndim == 3 else x)
            y = torch.as_tensor(np.asarray(ds.labels if split_arg else ds.targets), dtype=torch.int64)
            parts += [x, y]
        classes = getattr(ds, "classes", None) or [str(c) for c in range(int(parts[1].max()) + 1)]
        return make_dataset(cls_name.lower(), *parts, classes, image_size)

    return load


def load_imagefolder(root: str, *, image_size: int = 0, cache_dir: str | None = None, **_) -> Dataset:
    from .imagefolder import load_imagefolder_tensors

    t, classes, _ = load_imagefolder_tensors(root, image_size=image_size, cache_dir=cache_dir)
    return make_dataset(IMAGEFOLDER + root, t["x_train"], t["y_train"], t["x_test"], t["y_test"], classes)


# name -> loader. Plain dict; tests are generated from it. `imagefolder:ROOT` is parsed by load_dataset.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "cifar10": torchvision_loader("CIFAR10", channels_last=True),
    "cifar100": torchvision_loader("CIFAR100", channels_last=True),
    "mnist": torchvision_loader("MNIST", channels_last=False),
    "fashion-mnist": torchvision_loader("FashionMNIST", channels_last=False),
    "svhn": torchvision_loader("SVHN", channels_last=False, split_arg=True),
}

# Batch augmentation used when a config says augment="auto". Horizontal flips only where the data
# is known to be flip-safe (photos of objects, clothing); never for digits or text (a flipped 2 is
# not a 2), and not for an imagefolder tree, whose content robustmix cannot know: crop only.
DEFAULT_AUGMENT = {"digits": "none", "mnist": "crop", "svhn": "crop", "fashion-mnist": "crop-flip",
                   "cifar10": "crop-flip", "cifar100": "crop-flip", IMAGEFOLDER: "crop"}


def load_dataset(name: str, **options) -> Dataset:
    """A data set by name; options (data_dir, download, image_size, cache_dir) go to its loader.

    Examples:
        >>> from robustmix.data import load_dataset
        >>> data = load_dataset("digits")                         # bundled with scikit-learn, offline
        >>> data.x_train.shape, data.x_train.dtype, data.x_test.shape, data.classes[:3]
        (torch.Size([1437, 1, 8, 8]), torch.float32, torch.Size([360, 1, 8, 8]), ('0', '1', '2'))
    """
    if name.startswith(IMAGEFOLDER):
        root = name[len(IMAGEFOLDER):]
        if not root:
            raise RobustmixError("imagefolder needs a folder: --dataset imagefolder:ROOT (with ROOT/train and ROOT/test)")
        return load_imagefolder(root, **options)
    try:
        loader = DATASETS[name]
    except KeyError:
        raise RobustmixError(
            f"unknown data set {name!r}: choose one of {', '.join(sorted(DATASETS))} or imagefolder:ROOT"
        ) from None
    return loader(**options)


def prepare_dataset(data: Dataset, *, train_subset: int = 0, test_subset: int = 0, label_noise: float = 0.0,
                    seed: int = 0) -> tuple[Dataset, dict]:
    """Subsets and label noise, as the config asks; returns the data and what was done (for metadata).

    The training subset and the label noise follow the training `seed`; the test subset uses a fixed
    seed (0), so every model trained on the same data set is scored on the same test images.
    """
    info: dict = {}
    if train_subset:
        data = take(data, train_idx=stratified_subset(data.y_train, train_subset, seed))
    if test_subset:
        data = take(data, test_idx=stratified_subset(data.y_test, test_subset, 0))
    info["train_examples"], info["test_examples"] = int(data.y_train.numel()), int(data.y_test.numel())
    if label_noise:
        y, mask = corrupt_labels(data.y_train, label_noise, data.num_classes, seed)
        data = take(data, y_train=y)
        info["label_noise_corrupted"] = int(mask.sum())
        info["label_noise_mask_sha256"] = hashlib.sha256(mask.numpy().tobytes()).hexdigest()
    return data, info


def default_augment(name: str) -> str:
    """What augment="auto" means for data set `name` (none where the data set is not listed)."""
    return DEFAULT_AUGMENT.get(IMAGEFOLDER if name.startswith(IMAGEFOLDER) else name, "none")
