"""Wall time of a whole study run as model jobs through submitit's local executor (`robustmix study
--executor local`), one job at a time against two at a time, in this one run; with the study in one
process (no --executor) beside them for reference.

Each run is a fresh `python -m robustmix study SPEC --out FRESH_DIR` (train, attack, probe every model,
write the report) at THREADS torch threads in all: in one process all of them; with --jobs 1 each job
all of them; with --jobs 2 each job half (as --jobs N shares them). Rounds alternate the three runs.
Reported: each run's wall time (median over rounds), the ratio to one job at a time, the processor,
the load average before and after (the machine may be shared), and whether the runs at the same
thread count trained the same weights (they must).

    PYTHONPATH=$PWD nice python benchmarks/study_jobs_speed.py --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from robustmix.runtime.devices import processor

ROOT = Path(__file__).resolve().parents[1]


def run(spec: Path, out: Path, threads: int, extra: list[str]) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "robustmix", "study", str(spec), "--out", str(out), *extra], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"study_jobs_speed: robustmix study {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def weights(out: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted((out / "models").glob("*/model.safetensors")):
        digest.update(p.read_bytes())
    return digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "benchmarks" / "study-digits.toml")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads in all (default: this machine's)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    runs = {"one process (no --executor)": [], "--executor local --jobs 1": [], "--executor local --jobs 2": []}
    sums: dict[str, set[str]] = {k: set() for k in runs}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, name in enumerate(runs):
                out = Path(tmp) / f"r{r}-{i}"
                runs[name].append(run(args.spec, out, args.threads, name.split()[:4] if name.startswith("--") else []))
                sums[name].add(weights(out))
    one_job = statistics.median(runs["--executor local --jobs 1"])
    print(f"{processor()}; {os.cpu_count()} logical cores; torch {torch.__version__}; {args.threads} torch threads in all; "
          f"spec {args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec}; {args.rounds} round(s); "
          f"load average before / after: {load:.2f} / {os.getloadavg()[0]:.2f}\n")
    print("| run | wall (s), each round | median wall (s) | vs one job at a time |")
    print("|---|---|---:|---:|")
    for name, walls in runs.items():
        print(f"| {name} | {'; '.join(f'{w:.1f}' for w in walls)} | {statistics.median(walls):.1f} | "
              f"{one_job / statistics.median(walls):.2f}× |")
    same = sums["one process (no --executor)"] | sums["--executor local --jobs 1"]
    print(f"\nSame weights in one process and as one job at a time (both at {args.threads} threads): {'yes' if len(same) == 1 else 'NO'}; "
          f"two jobs at a time ({max(1, args.threads // 2)} thread(s) each) gave the same weights every round: "
          f"{'yes' if len(sums['--executor local --jobs 2']) == 1 else 'NO'}.")


if __name__ == "__main__":
    main()
