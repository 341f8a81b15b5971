#!/usr/bin/env bash
# The runs behind reports/puzzlemix.md's CIFAR-10 comparison (issue 16): CutMix, Puzzle Mix and
# Puzzle Mix "adv" (adv_p = 0.1) under the fast-cifar recipe, seed 0, beside the ERM and mixup
# checkpoints of benchmarks/cifar10_cpu.sh in the same RUNS_DIR; then all five attacked white-box
# with FGSM and I-FGSM (10 steps) at eps 4 and 8 (0–255 scale) on the 10,000 test images.
# Idempotent and resumable like cifar10_cpu.sh (run that first for ERM and mixup).
#   benchmarks/cifar10_methods.sh DATA_ROOT RUNS_DIR
set -euo pipefail
data=${1:?usage: cifar10_methods.sh DATA_ROOT RUNS_DIR}
runs=${2:?usage: cifar10_methods.sh DATA_ROOT RUNS_DIR}
robustmix=${ROBUSTMIX:-robustmix}
train() {  # name, then robustmix train flags
  local out="$runs/$1-fast-cifar-s0"; shift
  if [[ -f "$out/meta.json" ]]; then echo "done: $out"; return; fi
  echo "training $out ($(date -u +%FT%TZ))"
  /usr/bin/time -v $robustmix train --dataset "imagefolder:$data" --recipe fast-cifar --augment altflip-translate \
      --seed 0 --out "$out" --resume "$@" 2> >(tee "$out.time" >&2)
}
train cutmix --method cutmix
train puzzle-mix --method puzzle-mix
train puzzle-mix-adv --method puzzle-mix --method-option adv_p=0.1
results="$runs/results/methods-eps4-8-iters10.json"
if [[ -f "$results" ]]; then echo "done: $results"; exit 0; fi
targets=()
for m in erm mixup cutmix puzzle-mix puzzle-mix-adv; do targets+=("$runs/$m-fast-cifar-s0"); done
/usr/bin/time -v $robustmix attack --targets "${targets[@]}" --eps 4,8 --iters 10 --settings white-box \
    --out "$results" 2> >(tee "$results.time" >&2)
