"""ImageFolder trees (`ROOT/train/<class>/*`, `ROOT/test/<class>/*`), decoded once and cached.

The first load decodes every image to uint8 and writes one safetensors file beside the data
(`ROOT/.robustmix-cache/`, or under `cache_dir`), named by a fingerprint of every file's path and
bytes plus the load options; later loads hash the files, find the cache and skip decoding. Changing,
adding or removing an image changes the fingerprint, so a stale cache is never used.
Grayscale trees stay one channel, colour trees are three; the image size comes from the data
unless `image_size` is given (then: resize the shorter side, centre crop).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..runtime import files
from ..runtime.errors import RobustmixError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
CACHE_FORMAT = "robustmix-imagefolder/1"


def list_split(root: Path, split: str) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names, [(file, label)]) of ROOT/split, sorted so the order never depends on the OS."""
    folder = root / split
    if not folder.is_dir():
        raise RobustmixError(f"{folder} is not a folder: an ImageFolder tree needs ROOT/train/<class>/* and ROOT/test/<class>/*")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = []
    for label, name in enumerate(classes):
        for f in sorted((folder / name).iterdir()):
            if f.suffix.lower() in EXTENSIONS and f.is_file():
                items.append((f, label))
    if not items:
        raise RobustmixError(f"{folder} has no images in class subfolders: put them in {folder}/<class>/")
    return classes, items


def tree_sha256(root: str | Path) -> tuple[str, int, int]:
    """(sha256 of the tree's content, training images, test images): the images that would be loaded
    (train then test, in load order), each hashed as its path relative to ROOT, a NUL byte, its size,
    a NUL byte and its bytes. It names a data set's content independently of where it lies on a machine
    (a report quotes it instead of the path); it does not depend on load options, unlike the cache's
    fingerprint."""
    root = Path(root).expanduser()
    h, counts = hashlib.sha256(), []
    for split in ("train", "test"):
        _, items = list_split(root, split)
        for path, _ in items:
            blob = path.read_bytes()
            h.update(f"{path.relative_to(root).as_posix()}\0{len(blob)}\0".encode())
            h.update(blob)
        counts.append(len(items))
    return h.hexdigest(), counts[0], counts[1]


def decode(blob: bytes, path: Path) -> torch.Tensor:
    """One image as a C×H×W uint8 tensor, channels as stored (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    except RuntimeError:  # formats torchvision cannot decode (bmp, tiff, ...): PIL
        import numpy as np
        from PIL import Image

        try:
            img = Image.open(io.BytesIO(blob))
            img = img.convert("L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB")
        except Exception as e:  # PIL raises many types on corrupt input
            raise RobustmixError(f"{path}: not a readable image ({e.__class__.__name__}): remove or replace it") from None
        a = np.asarray(img)
        return torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1).copy())


def to_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return img[:1]
    if img.shape[0] < 3:  # gray (+alpha) in a colour tree
        return img[:1].expand(3, -1, -1)
    return img[:3]  # drop alpha


def resize(img: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    if tuple(img.shape[-2:]) == (size, size):
        return img
    return TF.center_crop(TF.resize(img, size, antialias=True), [size, size])


def read_tree(root: Path, image_size: int) -> tuple[dict[str, list], str]:
    """All files' bytes and labels per split, and the content fingerprint of the tree + options."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{CACHE_FORMAT} image_size={image_size}".encode())
    out: dict[str, list] = {}
    for split in ("train", "test"):
        classes, items = list_split(root, split)
        h.update(json.dumps([split, classes]).encode())
        blobs = []
        for path, label in items:
            blob = path.read_bytes()
            h.update(f"{path.relative_to(root).as_posix()}\0{len(blob)}\0".encode())
            h.update(blob)
            blobs.append((path, label, blob))
        out[split] = [classes, blobs]
    if out["test"][0] != out["train"][0]:
        raise RobustmixError(f"{root}: train and test have different class folders: give both the same <class> names")
    return out, h.hexdigest()


def decode_tree(tree: dict[str, list], image_size: int, root: Path) -> dict[str, torch.Tensor]:
    imgs = {s: [decode(blob, p) for p, _, blob in tree[s][1]] for s in ("train", "test")}
    every = imgs["train"] + imgs["test"]
    channels = 1 if all(i.shape[0] <= 2 for i in every) else 3
    if not image_size:
        sizes = {tuple(i.shape[-2:]) for i in every}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise RobustmixError(f"{root}: images differ in size ({a[0]}×{a[1]}, {b[0]}×{b[1]}, ...): pass --image-size N to resize")
    out = {}
    for s in ("train", "test"):
        batch = [to_channels(i, channels) for i in imgs[s]]
        if image_size:
            batch = [resize(i, image_size) for i in batch]
        out[f"x_{s}"] = torch.stack(batch).contiguous()
        out[f"y_{s}"] = torch.tensor([label for _, label, _ in tree[s][1]], dtype=torch.int64)
    return out


def load_imagefolder_tensors(root: str | Path, *, image_size: int = 0, cache_dir: str | Path | None = None
                             ) -> tuple[dict[str, torch.Tensor], tuple[str, ...], Path]:
    """({x_train, y_train, x_test, y_test}, classes, cache file); decodes only on a cache miss."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise RobustmixError(f"imagefolder root {str(root)!r} is not a folder: give --dataset imagefolder:ROOT with ROOT/train and ROOT/test")
    tree, fingerprint = read_tree(root, image_size)
    classes = tuple(tree["train"][0])
    cache = Path(cache_dir).expanduser() if cache_dir else root / ".robustmix-cache"
    cache_file = cache / f"imagefolder-{fingerprint}.safetensors"
    if cache_file.is_file():
        try:
            return st_load(cache_file.read_bytes()), classes, cache_file
        except Exception:  # a damaged cache is rebuilt (it is only a cache)
            pass
    tensors = decode_tree(tree, image_size, root)
    try:
        files.write_bytes(cache_file, st_save(tensors, metadata={"format": CACHE_FORMAT, "root": str(root)}))
    except OSError as e:
        raise RobustmixError(f"cannot write the decode cache {cache_file} ({e.strerror}): pass --cache-dir to a writable folder") from None
    return tensors, classes, cache_file
