"""Data: ImageFolder trees written by the test (gray and colour), the decode cache, subsets, label
noise, batch augmentation and a torchvision loader on fake MNIST files. Never downloads anything."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from robustmix.data import DATASETS, augment_batch, corrupt_labels, load_dataset, prepare_dataset, stratified_subset
from robustmix.data import imagefolder
from robustmix.data.augment import batch_crop, batch_flip_lr
from robustmix.runtime.errors import RobustmixError


def write_tree(root, mode, size=(12, 10), per_class=(5, 3), classes=("cat", "dog", "emu"), vary=False):
    """ROOT/{train,test}/<class>/*.png with pixel value encoding (split, class, index); returns expected arrays."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (size[0] + (i % 2) * 4, size[1]) if vary else size
                shape = (h, w) if mode == "L" else (h, w, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / split / c / f"{i:03d}.png")


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_imagefolder_shapes_labels_and_cache(tmp_path, monkeypatch, mode, channels):
    root = tmp_path / "tree"
    write_tree(root, mode)
    data = load_dataset(f"imagefolder:{root}")
    assert data.x_train.shape == (15, channels, 12, 10) and data.x_test.shape == (9, channels, 12, 10)
    assert data.x_train.dtype == torch.uint8 and data.classes == ("cat", "dog", "emu")
    assert data.y_train.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    first = np.asarray(Image.open(root / "train" / "dog" / "002.png"))
    got = data.x_train[7].numpy()
    assert np.array_equal(got[0] if mode == "L" else got.transpose(1, 2, 0), first)
    caches = list((root / ".robustmix-cache").glob("*.safetensors"))
    assert len(caches) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(imagefolder, "decode", no_decoding)
    again = load_dataset(f"imagefolder:{root}")
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    monkeypatch.undo()
    # Changing one image changes the fingerprint: a new cache, the new pixels.
    Image.fromarray(np.zeros((12, 10) if mode == "L" else (12, 10, 3), np.uint8), mode).save(root / "train" / "dog" / "002.png")
    changed = load_dataset(f"imagefolder:{root}")
    assert changed.x_train[7].sum() == 0 and len(list((root / ".robustmix-cache").glob("*.safetensors"))) == 2


def test_imagefolder_sizes_and_mixed_channels(tmp_path):
    root = tmp_path / "mixed"
    write_tree(root, "RGB", vary=True)
    with pytest.raises(RobustmixError, match="--image-size"):
        load_dataset(f"imagefolder:{root}", cache_dir=str(tmp_path / "c"))
    Image.fromarray(np.full((12, 10), 7, np.uint8), "L").save(root / "test" / "emu" / "000.png")  # a gray image in a colour tree
    data = load_dataset(f"imagefolder:{root}", image_size=8, cache_dir=str(tmp_path / "c"))
    assert data.x_train.shape == (15, 3, 8, 8) and data.x_test.shape == (9, 3, 8, 8)
    assert list((tmp_path / "c").glob("*.safetensors")) and not (root / ".robustmix-cache").exists()


def test_imagefolder_bad_trees_are_clear_errors(tmp_path):
    with pytest.raises(RobustmixError, match="not a folder"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "t" / "train" / "a").mkdir(parents=True)
    with pytest.raises(RobustmixError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path / 't'}")


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_label_noise_corrupts_exactly_the_requested_fraction(digits, fraction):
    y = digits.y_train
    y_new, mask = corrupt_labels(y, fraction, 10, seed=3)
    assert int(mask.sum()) == round(fraction * len(y))
    assert torch.equal(y_new != y, mask), "exactly the chosen labels are wrong"
    assert y_new.min() >= 0 and y_new.max() < 10
    assert torch.equal(corrupt_labels(y, fraction, 10, seed=3)[0], y_new)
    if 0 < fraction < 1:
        assert not torch.equal(corrupt_labels(y, fraction, 10, seed=4)[1], mask)
        counts = torch.bincount(y_new[mask], minlength=10).float()
        assert counts.min() > 0.5 * counts.mean(), "new labels are spread over the classes"


def test_subsets_are_stratified_seeded_and_recorded(digits):
    idx = stratified_subset(digits.y_train, 200, seed=1)
    assert len(idx) == 200 and len(set(idx.tolist())) == 200
    assert torch.bincount(digits.y_train[idx], minlength=10).min() >= 19
    assert torch.equal(idx, stratified_subset(digits.y_train, 200, seed=1))
    assert not torch.equal(idx, stratified_subset(digits.y_train, 200, seed=2))
    data, info = prepare_dataset(digits, train_subset=200, test_subset=50, label_noise=0.5, seed=1)
    assert info["train_examples"] == 200 and info["test_examples"] == 50 and info["label_noise_corrupted"] == 100
    other, _ = prepare_dataset(digits, test_subset=50, seed=7)
    assert torch.equal(other.y_test, data.y_test), "the test subset does not depend on the training seed"
    with pytest.raises(RobustmixError, match="at least 10"):
        stratified_subset(digits.y_train, 5, seed=0)


def test_a_subset_of_labels_with_a_one_example_class():
    """sklearn's stratified split refuses a class with one example (a small imported test set, a probe
    subset of one): the subset is still made, each class in proportion, seeded."""
    y = torch.tensor([0] * 30 + [1] * 30 + [2] * 19 + [3])
    idx = stratified_subset(y, 40, seed=0)
    assert len(idx) == 40 and len(set(idx.tolist())) == 40 and torch.equal(idx, idx.sort().values)
    assert torch.bincount(y[idx], minlength=4).tolist() == [15, 15, 10, 0]  # 40 × (30, 30, 19, 1)/80, largest remainder
    assert torch.equal(idx, stratified_subset(y, 40, seed=0)) and not torch.equal(idx, stratified_subset(y, 40, seed=1))
    assert torch.bincount(y[stratified_subset(y, 79, seed=0)], minlength=4).tolist() == [30, 29, 19, 1]  # the one example too


def test_batch_augmentation_moves_and_flips_whole_images():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16) + 1
    gen = torch.Generator().manual_seed(0)
    flipped = batch_flip_lr(x.repeat(32, 1, 1, 1), gen)
    same = (flipped == x.repeat(32, 1, 1, 1)).flatten(1).all(1)
    mirrored = (flipped == x.repeat(32, 1, 1, 1).flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 10 < int(mirrored.sum()) < 54
    crops = batch_crop(x.repeat(50, 1, 1, 1), 4, gen)
    assert crops.shape == (100, 3, 16, 16)
    for img, src in zip(crops, x.repeat(50, 1, 1, 1)):
        # a crop of the zero-padded image: the non-zero part is a shifted window of the original
        rows, cols = img[0].nonzero(as_tuple=True)
        r0, c0 = rows.min(), cols.min()
        h, w = rows.max() - r0 + 1, cols.max() - c0 + 1
        window = img[:, r0:r0 + h, c0:c0 + w]
        assert any(torch.equal(window, src[:, a:a + h, b:b + w]) for a in (0, 16 - h) for b in (0, 16 - w))
    u8 = (x % 256).to(torch.uint8)
    assert augment_batch("crop-flip", u8, gen).dtype == torch.uint8
    assert torch.equal(augment_batch("none", u8, gen), u8)


def write_idx(path, arr):
    """MNIST's IDX format (what torchvision reads), gzip-free."""
    dims = arr.shape
    code = 0x08
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims))
        f.write(arr.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_fake_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_dataset("mnist", data_dir=str(tmp_path))
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    assert data.x_train.dtype == torch.uint8 and data.y_train[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    with pytest.raises(RobustmixError, match="--download"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


def test_registry_names_and_unknown(tmp_path):
    assert {"digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "svhn"} <= set(DATASETS)
    with pytest.raises(RobustmixError, match="imagefolder:ROOT"):
        load_dataset("imagenet-22k")
