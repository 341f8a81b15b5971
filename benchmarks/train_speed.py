"""Epoch time of robustmix's data path vs a plain torchvision DataLoader + per-image transforms.

Same model (the cpu-fast recipe's FastCNN), same optimiser, batch size and training images, in one
process; the three loops are interleaved epoch by epoch (ours-ERM, DataLoader-ERM, ours-mixup), so
CPU contention from other users hits all of them alike, and the medians over several epochs give
the ratios. Prints a Markdown table with `uptime` before and after.

    PYTHONPATH=$PWD python benchmarks/train_speed.py --root /work/data/cifar10-jpeg --images 2048 --epochs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch
from torch.utils.data import DataLoader, Subset

from robustmix.data import augment_batch, load_dataset, pixels, shuffled_batches, stratified_subset
from robustmix.methods import apply_method, get_method, soft_cross_entropy
from robustmix.models import build_model
from robustmix.recipes import resolve_config


def make(data, cfg):
    torch.manual_seed(0)
    model = build_model(cfg.model, in_channels=3, num_classes=data.num_classes, image_size=32, mean=data.mean,
                        std=data.std, width=cfg.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return model.train(), opt


def step(model, opt, logits_and_targets):
    logits, y_soft = logits_and_targets
    loss = soft_cross_entropy(logits, y_soft)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def ours_epoch(model, opt, x, y, method, bs, gen):
    """The trainer's data path: one uint8 tensor, one permutation, whole-batch crop+flip."""
    for idx in shuffled_batches(x.shape[0], bs, gen):
        xb = pixels(augment_batch("crop-flip", x[idx], gen))
        step(model, opt, apply_method(method, model, xb, y[idx], num_classes=10, alpha=1.0, gen=gen))


def loader_epoch(model, opt, loader, method, gen):
    """The usual torchvision loop: ImageFolder (decode each JPEG with PIL) + per-image transforms."""
    for xb, yb in loader:
        step(model, opt, apply_method(method, model, xb, yb, num_classes=10, alpha=1.0, gen=gen))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="ImageFolder root with train/ and test/")
    p.add_argument("--images", type=int, default=2048, help="training images per epoch (stratified subset)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: the 2 cores train the model)")
    a = p.parse_args()
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    uptime0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    cfg = resolve_config("cpu-fast")
    data = load_dataset(f"imagefolder:{a.root}")
    idx = stratified_subset(data.y_train, a.images, seed=0)
    x, y = data.x_train[idx], data.y_train[idx]
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
    ds = Subset(ImageFolder(f"{a.root}/train", transform=tf), idx.tolist())
    assert [ds.dataset.targets[i] for i in idx[:50].tolist()] == y[:50].tolist(), "same images, same labels"
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=a.workers,
                        generator=torch.Generator().manual_seed(0))
    runs = {
        "ours, erm": (lambda m, o, g: ours_epoch(m, o, x, y, get_method("erm"), cfg.batch_size, g)),
        "DataLoader + per-image transforms, erm": (lambda m, o, g: loader_epoch(m, o, loader, get_method("erm"), g)),
        "ours, mixup": (lambda m, o, g: ours_epoch(m, o, x, y, get_method("mixup"), cfg.batch_size, g)),
    }
    state = {name: (*make(data, cfg), torch.Generator().manual_seed(0)) for name in runs}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(a.epochs):
        for name, epoch in runs.items():
            t = time.perf_counter()
            epoch(*state[name])
            times[name].append(time.perf_counter() - t)
    uptime1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.images} training images per epoch, batch {cfg.batch_size}, {cfg.model} width {cfg.width}, "
          f"{a.epochs} interleaved epochs each, torch threads {torch.get_num_threads()}, DataLoader workers {a.workers}\n")
    print("| loop | epoch seconds (each) | median s | images/s | time ratio vs ours-ERM |\n|---|---|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {', '.join(f'{s:.1f}' for s in v)} | {med[k]:.1f} | {a.images / med[k]:.0f} | {med[k] / med['ours, erm']:.2f} |")
    print(f"\nuptime before: {uptime0}\nuptime after:  {uptime1}")


if __name__ == "__main__":
    main()
