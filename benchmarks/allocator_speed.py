"""Training speed with the robustmix program's malloc settings (robustmix.runtime.allocator) vs glibc's defaults.

malloc's settings are process-wide, so the two variants are separate `python -m robustmix train`
processes, run alternately (kept, system, kept, system, ...) in this one run so that contention
from other work hits both alike; each trains the same stratified subset for the same epochs with
the same seed, and the weights must come out identical. Reported per variant: the trainer's
images/s in the last epoch (the first epoch includes warm-up), the minor page faults and the
kernel (system) CPU time of the whole process, and the ratio of the medians.

    PYTHONPATH=$PWD python benchmarks/allocator_speed.py --dataset imagefolder:/work/data/cifar10-jpeg --images 4096 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robustmix.runtime.devices import processor

VARIANTS = {"kept (robustmix default)": {}, "system (ROBUSTMIX_MALLOC=system)": {"ROBUSTMIX_MALLOC": "system"}}


def run_once(args: argparse.Namespace, extra_env: dict, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "ROBUSTMIX_MALLOC"}
    env.update(extra_env)
    cmd = [sys.executable, "-m", "robustmix", "train", "--dataset", args.dataset, "--recipe", args.recipe,
           "--train-subset", str(args.images), "--test-subset", "500", "--epochs", str(args.epochs), "--seed", "0",
           "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"allocator_speed: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    rows = list(csv.DictReader((out / "log.csv").open()))
    meta = json.loads((out / "meta.json").read_text())
    return {"images_per_second": float(rows[-1]["images_per_second"]), "wall": wall,
            "faults": after.ru_minflt - before.ru_minflt, "sys": after.ru_stime - before.ru_stime,
            "user": after.ru_utime - before.ru_utime, "sha": meta["weights_sha256"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="imagefolder:/work/data/cifar10-jpeg")
    p.add_argument("--recipe", default="fast-cifar")
    p.add_argument("--images", type=int, default=4096, help="training images (stratified subset)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="runs per variant, alternated")
    a = p.parse_args()
    uptime0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name, env in VARIANTS.items():
                runs[name].append(run_once(a, env, Path(tmp) / f"{r}-{len(runs[name])}-{'sys' if env else 'kept'}"))
    uptime1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    shas = {run["sha"] for v in runs.values() for run in v}
    med = {k: statistics.median(r["images_per_second"] for r in v) for k, v in runs.items()}
    ref = list(VARIANTS)[1]
    print(f"{processor()}; {a.dataset}, recipe {a.recipe}, {a.images} training images, {a.epochs} epochs, "
          f"{a.rounds} alternated runs per variant\n")
    print("| malloc | images/s, last epoch (each run) | median | speed vs system | minor page faults per run | kernel CPU s per run | user CPU s per run |")
    print("|---|---|---|---|---|---|---|")
    for k, v in runs.items():
        each = ", ".join(f"{r['images_per_second']:.0f}" for r in v)
        print(f"| {k} | {each} | {med[k]:.0f} | {med[k] / med[ref]:.2f} | "
              f"{statistics.median(r['faults'] for r in v):,.0f} | {statistics.median(r['sys'] for r in v):.1f} | "
              f"{statistics.median(r['user'] for r in v):.1f} |")
    print(f"\nweights identical across all runs: {'yes' if len(shas) == 1 else 'NO (' + str(len(shas)) + ' digests)'}")
    print(f"uptime before: {uptime0}\nuptime after:  {uptime1}")


if __name__ == "__main__":
    main()
