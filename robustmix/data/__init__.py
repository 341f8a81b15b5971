"""Data sets as whole tensors (NCHW, uint8 0–255 or float32 0–1); pixels in [0, 1] via `pixels`.

    core.py         Dataset, pixels, channel_stats, shuffled_batches, stratified subsets, label noise
    sources.py      the registry: digits (bundled), torchvision sets, `imagefolder:ROOT`
    imagefolder.py  ImageFolder trees, decoded once and cached as uint8 safetensors
    augment.py      random crop with padding and horizontal flip on whole batches

May import: runtime.
"""

from .augment import AUGMENTS, augment_batch
from .core import (
    Dataset,
    channel_stats,
    corrupt_labels,
    pixels,
    shuffled_batches,
    stratified_subset,
)
from .sources import (
    DATASETS,
    DEFAULT_AUGMENT,
    load_dataset,
    load_digits,
    prepare_dataset,
)

__all__ = [
    "AUGMENTS", "DATASETS", "DEFAULT_AUGMENT", "Dataset", "augment_batch", "channel_stats", "corrupt_labels",
    "load_dataset", "load_digits", "pixels", "prepare_dataset", "shuffled_batches", "stratified_subset",
]
