"""Puzzle Mix's training time per epoch relative to mixup (and ERM, CutMix), and where its time goes.

Same model (the cpu-fast recipe's FastCNN), optimiser, batch size and images, in one process; the
methods' epochs are interleaved (erm, mixup, cutmix, puzzle-mix, puzzle-mix adv, then again), so CPU
contention from other users hits all alike; ratios are of medians. Then Puzzle Mix's parts are timed
on one batch per block grid: the saliency pass, the graph cut, the transport. Prints Markdown.

    PYTHONPATH=$PWD python benchmarks/puzzlemix_speed.py --root /work/data/cifar10-jpeg --images 2048 --epochs 3
    PYTHONPATH=$PWD python benchmarks/puzzlemix_speed.py --epochs 3            # digits (8×8), no data needed
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch

from robustmix.data import augment_batch, load_dataset, pixels, shuffled_batches, stratified_subset
from robustmix.training.methods import apply_method, get_method, soft_cross_entropy
from robustmix.models import build_model
from robustmix.training.methods.puzzlemix import PuzzleOptions, image_grids, puzzle_mask, saliency, transport
from robustmix.training.recipes import resolve_config

METHODS = {"erm": {}, "mixup": {}, "cutmix": {}, "puzzle-mix": {}, "puzzle-mix adv": {"adv_p": 0.1}}


def make(data, cfg, shape):
    torch.manual_seed(0)
    model = build_model(cfg.model, in_channels=shape[0], num_classes=data.num_classes, image_size=shape[1], mean=data.mean,
                        std=data.std, width=cfg.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return model.train(), opt


def epoch(model, opt, x, y, method, bs, gen, augment):
    for idx in shuffled_batches(x.shape[0], bs, gen):
        xb = pixels(augment_batch(augment, x[idx], gen))
        logits, y_soft = apply_method(method, model, xb, y[idx], num_classes=10, alpha=1.0, gen=gen)
        loss = soft_cross_entropy(logits, y_soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def parts(model, x, y, repeats: int = 3) -> list[str]:
    """Milliseconds per batch of each part of Puzzle Mix, per block grid (median of `repeats`)."""
    o = PuzzleOptions()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    rows = []
    t_sal = []
    for _ in range(repeats):
        t = time.perf_counter()
        sal = saliency(model, x, y)[0]
        t_sal.append(time.perf_counter() - t)
    for g in image_grids(o, *x.shape[-2:]):
        t_cut, t_move = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            mask = puzzle_mask(sal, x, perm, 0.5, g, o)
            t_cut.append(time.perf_counter() - t)
            t = time.perf_counter()
            transport(x, sal, mask, o), transport(x[perm], sal[perm], 1 - mask, o)
            t_move.append(time.perf_counter() - t)
        rows.append(f"| {g}×{g} | {statistics.median(t_sal) * 1e3:.0f} | {statistics.median(t_cut) * 1e3:.0f} | "
                    f"{statistics.median(t_move) * 1e3:.0f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="ImageFolder root with train/ (default: the embedded digits)")
    p.add_argument("--images", type=int, default=2048, help="training images per epoch (stratified subset)")
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    uptime0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    cfg = resolve_config("cpu-fast")
    data = load_dataset(f"imagefolder:{a.root}" if a.root else "digits")
    augment = "crop-flip" if a.root else "none"
    idx = stratified_subset(data.y_train, min(a.images, len(data.y_train)), seed=0)
    x, y = data.x_train[idx], data.y_train[idx]
    shape = tuple(data.input_shape)
    runs = {name: get_method(name.split()[0], opts) for name, opts in METHODS.items()}
    state = {name: (*make(data, cfg, shape), torch.Generator().manual_seed(0)) for name in runs}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(a.epochs):
        for name, method in runs.items():
            model, opt, gen = state[name]
            t = time.perf_counter()
            epoch(model, opt, x, y, method, cfg.batch_size, gen, augment)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    model = state["mixup"][0]
    xb, yb = pixels(x[: cfg.batch_size]), y[: cfg.batch_size]
    part_rows = parts(model, xb, yb)
    uptime1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{len(idx)} training images of {'x'.join(map(str, shape))} per epoch, batch {cfg.batch_size}, {cfg.model} width "
          f"{cfg.width}, {a.epochs} interleaved epochs each, torch threads {torch.get_num_threads()}\n")
    print("| method | epoch seconds (each) | median s | time ratio vs mixup |\n|---|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {', '.join(f'{s:.1f}' for s in v)} | {med[k]:.1f} | {med[k] / med['mixup']:.2f} |")
    print(f"\nPuzzle Mix's parts on one batch of {cfg.batch_size} (ms, median of 3; transport = both images):\n")
    print("| block grid | saliency pass | graph cut (mask) | transport |\n|---|---|---|---|")
    print("\n".join(part_rows))
    print(f"\nuptime before: {uptime0}\nuptime after:  {uptime1}")


if __name__ == "__main__":
    main()
