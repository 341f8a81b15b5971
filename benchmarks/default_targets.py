"""What `robustmix train --dataset X` gives with no other flag: the README's per-data-set targets.

Each run is the plain command (the automatic recipe, seed 0) in a fresh process, timed; the table
gives the recipe it chose, the clean top-1 test error and the training time. Data sets:

- digits: scikit-learn's bundled 8×8 digits (the embedded default);
- digits-28: the same digits as a grayscale 28×28 `imagefolder:` tree (written here, bilinear
  upsampling, the digits loader's train/test split): the shape of MNIST, the case the automatic
  recipe must handle for any handwritten-digit tree;
- cifar10 (with --cifar ROOT): CIFAR-10 as an `imagefolder:` tree (an hour on a 2-core CPU; or pass
  --cifar-checkpoint DIR to read a finished `robustmix train --dataset imagefolder:ROOT` run).

MNIST, Fashion-MNIST, SVHN and CIFAR-100 need a download (torchvision): run
`robustmix train --dataset mnist --data-dir D --download` where the network allows.

    PYTHONPATH=$PWD python benchmarks/default_targets.py --out /tmp/targets
    PYTHONPATH=$PWD python benchmarks/default_targets.py --out /tmp/targets --cifar-checkpoint /work/runs14/erm-fast-cifar-s0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustmix.data import load_digits
from robustmix.runtime.devices import processor


def write_digits_tree(root: Path, size: int = 28) -> None:
    """The digits loader's split, upsampled to size×size, as ROOT/{train,test}/<digit>/NNNN.png."""
    data = load_digits()
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        big = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        pixels = (big[:, 0] * 255).round().to(torch.uint8).numpy()
        for i, (img, label) in enumerate(zip(pixels, y.tolist())):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img), "L").save(folder / f"{i:04d}.png")


def train(dataset: str, out: Path) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "robustmix", "train", "--dataset", dataset, "--seed", "0", "--out", str(out)],
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"default_targets: training on {dataset} failed:\n{p.stderr[-2000:]}")
    meta = json.loads((out / "meta.json").read_text())
    return dict(meta, wall=time.perf_counter() - t0)


def row(name: str, meta: dict) -> str:
    c = meta["config"]
    shape = "×".join(map(str, meta["input_shape"]))
    wall = f"{meta['wall']:.0f} s" if "wall" in meta else "–"
    return (f"| {name} | {shape} | {meta['data']['train_examples']:,} | {meta['recipe']} | {c['model']} width {c.get('width') or 'default'}, "
            f"batch {c['batch_size']}, {meta['epochs']} epochs, augment {meta['augment']} | {meta['clean_top1_err']:.2f}% | {meta['train_seconds']:.0f} s | {wall} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the trees and checkpoints")
    p.add_argument("--cifar", default="", help="CIFAR-10 imagefolder root to train on (about an hour on 2 CPU cores)")
    p.add_argument("--cifar-checkpoint", default="", help="or a finished default run on it to read")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tree = out / "digits-28"
    if not (tree / "test").is_dir():
        write_digits_tree(tree)
    rows = [row("digits", train("digits", out / "digits")), row("digits-28 (imagefolder)", train(f"imagefolder:{tree}", out / "digits-28-run"))]
    if a.cifar:
        rows.append(row("CIFAR-10 (imagefolder)", train(f"imagefolder:{a.cifar}", out / "cifar10")))
    elif a.cifar_checkpoint:
        rows.append(row(f"CIFAR-10 (imagefolder; finished run {a.cifar_checkpoint})", json.loads((Path(a.cifar_checkpoint) / "meta.json").read_text())))
    print(f"{processor()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| data set | image | training images | recipe | model, batch, epochs, augmentation | test error (top-1) | train time | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
