#!/usr/bin/env bash
# The runs behind reports/cifar10-adversarial.md: the adversarial fast recipe (fast-cifar-adv: FGSM-RS at
# 8/255 with the catastrophic-overfitting guard, WhitenCNN, 15 epochs), seed 0, then its evaluation at
# eps 8/255: the paper suite (FGSM, I-FGSM) on the 10,000 test images and the strong suite (PGD 40×5,
# APGD-CE, APGD-DLR, Square, worst case, with the soundness checks) on 1,000 of them, white-box.
# Idempotent and resumable: a finished step is skipped, an interrupted training continues from its last
# finished epoch (--resume), so rerunning this after any interruption picks up where it stopped.
#   benchmarks/cifar10_adversarial.sh DATA_ROOT RUNS_DIR [RECIPE [EXTRA TRAIN FLAGS...]]
#   e.g. benchmarks/cifar10_adversarial.sh /work/data/cifar10-jpeg /work/runs-adv
# Results files (no weights) go to RUNS_DIR/results/; copy them with the checkpoint's meta.json and
# log.csv into reports/cifar10-adversarial/ (the report names the data set, never this path).
set -euo pipefail
data=${1:?usage: cifar10_adversarial.sh DATA_ROOT RUNS_DIR [RECIPE [FLAGS...]]}
runs=${2:?usage: cifar10_adversarial.sh DATA_ROOT RUNS_DIR [RECIPE [FLAGS...]]}
recipe=${3:-fast-cifar-adv}
shift $(( $# < 3 ? $# : 3 ))
robustmix=${ROBUSTMIX:-robustmix}
out="$runs/$recipe-s0"
mkdir -p "$runs/results"
if [[ -f "$out/meta.json" ]]; then echo "done: $out"; else
  echo "training $out ($(date -u +%FT%TZ))"
  # --augment altflip-translate: CIFAR-10 is flip-safe; an imagefolder: tree is not known to be.
  $robustmix train --dataset "imagefolder:$data" --recipe "$recipe" --augment altflip-translate --seed 0 \
      --out "$out" --resume "$@"
fi
paper="$runs/results/$recipe-paper-eps8.json"
if [[ -f "$paper" ]]; then echo "done: $paper"; else
  echo "paper suite ($(date -u +%FT%TZ))"
  $robustmix attack --targets "$out" --settings white-box --suite paper --eps 8 --out "$paper"
fi
strong="$runs/results/$recipe-strong-eps8.json"
if [[ -f "$strong" ]]; then echo "done: $strong"; else
  echo "strong suite ($(date -u +%FT%TZ))"
  $robustmix attack --targets "$out" --settings white-box --suite strong --eps 8 --examples 1000 --out "$strong"
fi
