#!/usr/bin/env bash
# The runs behind reports/puzzlemix.md's CIFAR-10 comparison (issue 16): ERM, mixup (alpha 1),
# CutMix, Puzzle Mix and Puzzle Mix "adv" (adv_p = 0.1) under the fast-cifar recipe, seed 0. Each
# model is attacked white-box with FGSM and I-FGSM (10 steps) at eps 4 and 8 (0–255 scale) on the
# 10,000 test images as soon as it is trained, into its own results file; `robustmix report`
# merges the five files into one table with paired tests (the attacks are deterministic, so a
# model attacked alone gives the records it would get beside the others, tests/test_results_merge.py).
# Idempotent and resumable: a finished checkpoint or results file is skipped, an interrupted
# training continues from its last finished epoch (--resume); a lost machine costs only the models
# whose results were not yet kept.
#   benchmarks/cifar10_methods.sh DATA_ROOT RUNS_DIR [NAME ...]    (default: all five, in this order)
set -euo pipefail
data=${1:?usage: cifar10_methods.sh DATA_ROOT RUNS_DIR [NAME ...]}
runs=${2:?usage: cifar10_methods.sh DATA_ROOT RUNS_DIR [NAME ...]}
shift 2
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(erm mixup cutmix puzzle-mix puzzle-mix-adv)
robustmix=${ROBUSTMIX:-robustmix}
mkdir -p "$runs/results"
for name in "${names[@]}"; do
  case $name in
    erm|mixup|cutmix) flags=(--method "$name") ;;
    puzzle-mix) flags=(--method puzzle-mix) ;;
    puzzle-mix-adv) flags=(--method puzzle-mix --method-option adv_p=0.1) ;;
    *) echo "unknown run $name: erm, mixup, cutmix, puzzle-mix or puzzle-mix-adv" >&2; exit 2 ;;
  esac
  out="$runs/$name-fast-cifar-s0"
  if [[ -f "$out/meta.json" ]]; then echo "done: $out"; else
    echo "training $out ($(date -u +%FT%TZ))"
    /usr/bin/time -v $robustmix train --dataset "imagefolder:$data" --recipe fast-cifar --augment altflip-translate \
        --seed 0 --out "$out" --resume "${flags[@]}" 2> >(tee "$out.time" >&2)
  fi
  results="$runs/results/$name-eps4-8-iters10.json"
  if [[ -f "$results" ]]; then echo "done: $results"; continue; fi
  echo "attacking $out ($(date -u +%FT%TZ))"
  /usr/bin/time -v $robustmix attack --targets "$out" --eps 4,8 --iters 10 --settings white-box \
      --out "$results" 2> >(tee "$results.time" >&2)
done
echo "all done ($(date -u +%FT%TZ)); the table: robustmix report $runs/results/*-eps4-8-iters10.json --out-dir REPORT"
