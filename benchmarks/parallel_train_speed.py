"""Images/s in all: one `robustmix train` process with every torch thread vs JOBS processes side by
side with 1/JOBS of the threads each (what `robustmix study --jobs JOBS` does), in this one run.

Alternated rounds (one process, then the JOBS processes together, ...), each training the same
stratified subset with the fast-cifar recipe; the parallel processes use seeds 0..JOBS-1. Reported:
each process's trainer images/s in its last epoch (the first includes warm-up), the sum over the
parallel processes, the whole round's wall time, and the ratios of the medians.

    PYTHONPATH=$PWD python benchmarks/parallel_train_speed.py --dataset imagefolder:/work/data/cifar10-jpeg --images 4096 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from robustmix.runtime.devices import processor


def start(args: argparse.Namespace, threads: int, seed: int, out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "robustmix", "train", "--dataset", args.dataset, "--recipe", args.recipe,
           "--augment", "altflip-translate", "--train-subset", str(args.images), "--test-subset", "500",
           "--epochs", str(args.epochs), "--seed", str(seed), "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def last_speed(out: Path) -> float:
    rows = list(csv.DictReader((out / "log.csv").open()))
    return float(rows[-1]["images_per_second"])


def round_of(args: argparse.Namespace, jobs: int, threads: int, tmp: Path, tag: str) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    procs = [(start(args, threads, seed, tmp / f"{tag}-s{seed}"), tmp / f"{tag}-s{seed}") for seed in range(jobs)]
    for p, out in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(f"parallel_train_speed: robustmix train failed:\n{err[-2000:]}")
    return [last_speed(out) for _, out in procs], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="imagefolder:/work/data/cifar10-jpeg")
    ap.add_argument("--recipe", default="fast-cifar")
    ap.add_argument("--images", type=int, default=4096, help="training images per process (stratified subset)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads in all (default: this machine's)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    per_job = max(1, args.threads // args.jobs)
    single, parallel = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            speeds, wall = round_of(args, 1, args.threads, Path(tmp), f"one-r{r}")
            single.append((speeds, wall))
            speeds, wall = round_of(args, args.jobs, per_job, Path(tmp), f"par-r{r}")
            parallel.append((speeds, wall))
    one = statistics.median(sum(s) for s, _ in single)
    par = statistics.median(sum(s) for s, _ in parallel)
    print(f"{processor()}, torch {torch.__version__}; recipe {args.recipe}, {args.images} images × {args.epochs} epochs per process\n")
    print("| run | images/s, last epoch (each process) | images/s in all | round wall (s) | speed in all |")
    print("|---|---|---:|---:|---:|")
    print(f"| 1 process × {args.threads} threads | " + "; ".join(f"{s[0]:.1f}" for s, _ in single)
          + f" | {one:.1f} | {statistics.median(w for _, w in single):.1f} | 1.00 |")
    print(f"| {args.jobs} processes × {per_job} thread(s) | " + "; ".join(" + ".join(f"{x:.1f}" for x in s) for s, _ in parallel)
          + f" | {par:.1f} | {statistics.median(w for _, w in parallel):.1f} | **{par / one:.2f}** |")
    print(f"\nThe parallel round trains {args.jobs}× the images of the single round: per image, its wall time is "
          f"{statistics.median(w for _, w in parallel) / args.jobs / statistics.median(w for _, w in single):.2f}× the single process's "
          "(data loading and evaluation included).")


if __name__ == "__main__":
    main()
