"""Issue 17's CIFAR-10 study on one GPU, with Puzzle Mix overlapped: how reports/cifar10's first nine
models were made (an NVIDIA H200, 2026-12-04; the log is reports/cifar10/logs/h200.log).

    python benchmarks/cifar10_study_gpu.py [JOBS]     # then, to write the report:
    robustmix study benchmarks/study-cifar10.toml --out reports/cifar10 --dataset imagefolder:/work/data/cifar10-jpeg --device cuda

Why not `robustmix study --device cuda --jobs N` alone: on a GPU, Puzzle Mix's graph cuts (robustmix.training.methods.graphcut,
scipy on one CPU core) are its bottleneck: 1,200-2,200 img/s against 30,000-57,000 for ERM and mixup, so
its 30 epochs take about 16 minutes while each other model trains in under a minute. This script makes the
same library calls as the study command (train_stage, attack_stage, probes_stage) in another order: Puzzle
Mix trains in a process of its own from the start, while the other models train in JOBS parallel lanes
(default 5) and are then attacked and probed; Puzzle Mix is attacked and probed once it is trained. The
checkpoints, results and probe files are the ones `robustmix study` would write, and it reuses them all.
"""
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

from robustmix.cli.train import train_in_lane
from robustmix.data import load_dataset
from robustmix.runtime.devices import resolve_device
from robustmix.study import attack_stage, load_study, models_of, needs_weights, probes_stage, status_of, train_stage

SPEC, OUT, DATASET = "benchmarks/study-cifar10.toml", Path("reports/cifar10"), "imagefolder:/work/data/cifar10-jpeg"
T0 = time.time()


def log(s: str) -> None:
    print(f"[{time.time() - T0:7.1f} s] {s}", flush=True)


def train_one(config, folder: Path, status: str) -> None:  # the Puzzle Mix lane (a spawned process)
    torch.set_num_threads(4)
    meta = train_in_lane(config, folder, resume=status == "resume")
    print(f"puzzle lane: trained {folder}: {meta['clean_top1_err']:.2f}% in {meta['train_seconds']:.1f} s", flush=True)


def main(jobs: int) -> None:
    spec = load_study(SPEC, dataset=DATASET).with_device("cuda")
    device = resolve_device("cuda")
    log(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {torch.get_num_threads()} threads")
    load_dataset(spec.bench.dataset)  # decode the JPEGs once, into the cache every lane then reads
    log("data decoded and cached")
    models = models_of(spec, OUT)
    order = [m.slot for m in models]
    slow = [m for m in models if m.config.method == "puzzle-mix"]
    rest = {m.slot for m in models} - {m.slot for m in slow}
    lanes = []
    for m in slow:
        if status_of(m) in ("train", "resume"):
            lanes.append(mp.get_context("spawn").Process(target=train_one, args=(m.config, m.folder, status_of(m))))
            lanes[-1].start()
            log(f"{m.slot}: training in a lane of its own")
    train_stage(spec, OUT, only=rest, need=needs_weights(spec, OUT), jobs=jobs, train_fn=train_in_lane, on_progress=log)
    for slot in sorted(rest, key=order.index):
        attack_stage(spec, OUT, device, only={slot}, on_progress=log)
        probes_stage(spec, OUT, device, only={slot})
        log(f"attacked and probed {slot}")
    for lane in lanes:
        lane.join()
    for m in slow:
        attack_stage(spec, OUT, device, only={m.slot}, on_progress=log)
        probes_stage(spec, OUT, device, only={m.slot})
        log(f"attacked and probed {m.slot}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
