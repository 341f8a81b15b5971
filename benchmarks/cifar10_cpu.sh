#!/usr/bin/env bash
# The runs behind reports/cifar10-cpu.md: ERM and mixup (alpha 1) under the fast-cifar recipe at its
# two lengths (10 epochs; fast-cifar-3x, 30 epochs), seed 0, on the 10,000 CIFAR-10 test images.
# Idempotent and resumable: a finished checkpoint is skipped, an interrupted one continues from its
# last finished epoch (--resume), so rerunning this after any interruption picks up where it stopped.
#   benchmarks/cifar10_cpu.sh DATA_ROOT RUNS_DIR     e.g. /work/data/cifar10-jpeg /work/runs14
# --augment altflip-translate: CIFAR-10 is flip-safe, but an imagefolder: tree is not known to be,
# so without it the recipe would translate only (as in benchmarks/study-cifar10.toml).
set -euo pipefail
data=${1:?usage: cifar10_cpu.sh DATA_ROOT RUNS_DIR}
runs=${2:?usage: cifar10_cpu.sh DATA_ROOT RUNS_DIR}
robustmix=${ROBUSTMIX:-robustmix}
mkdir -p "$runs"
for recipe in fast-cifar fast-cifar-3x; do
  for method in erm mixup; do
    out="$runs/$method-$recipe-s0"
    if [[ -f "$out/meta.json" ]]; then echo "done: $out"; continue; fi
    echo "training $out ($(date -u +%FT%TZ))"
    /usr/bin/time -v $robustmix train --dataset "imagefolder:$data" --recipe "$recipe" --method "$method" \
        --augment altflip-translate --seed 0 --out "$out" --resume 2> >(tee "$out.time" >&2)
  done
done
