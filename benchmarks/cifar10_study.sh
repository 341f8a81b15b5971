#!/usr/bin/env bash
# Issue 17's CIFAR-10 study (benchmarks/study-cifar10.toml), continued on whatever machine this is:
# unpack the data if it is not there, then run `robustmix study` into reports/cifar10 in the
# foreground (start it with nohup ... & for a long run). The study goes model by model (train, attack,
# probe), reuses everything reports/cifar10 already holds, and rebuilds only the weights still needed
# (the surrogate, while a model's black-box results are missing), refusing weights that differ from
# the recorded ones (another kind of processor) with one line.
#   benchmarks/cifar10_study.sh [DATA_PARENT [ARCHIVE]]   run on DATA_PARENT/cifar10-jpeg (default /work/data: the place is
#                                                          recorded in every checkpoint's config, so keep it the same)
#   benchmarks/cifar10_study.sh --evidence                 list the files of finished models to commit
# What to commit as the study goes (never the weights: .gitignore keeps *.safetensors out):
#   git add $(benchmarks/cifar10_study.sh --evidence)
set -euo pipefail
cd "$(dirname "$0")/.."
out=reports/cifar10
if [[ ${1:-} == --evidence ]]; then
  for meta in "$out"/models/*/meta.json; do                   # finished models only (an unfinished one has no meta.json)
    [[ -f $meta ]] && echo "$meta"
    [[ -f $meta && -f $(dirname "$meta")/log.csv ]] && echo "$(dirname "$meta")/log.csv"   # the CLI's per-epoch log; meta.json's history has the same rows
  done
  ls "$out"/results/*.json "$out"/results/*.csv "$out"/data/probes/*.json 2>/dev/null || true
  exit 0
fi
parent=${1:-/work/data}
if [[ ! -d $parent/cifar10-jpeg/train ]]; then
  archive=${2:?the data is not in $parent/cifar10-jpeg: give the archive (cifar10-jpeg.tar.gz) to unpack there}
  mkdir -p "$parent" && tar xzf "$archive" -C "$parent"
fi
robustmix=${ROBUSTMIX:-robustmix}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed -E 's/(Flags:).*(avx512f|avx2).*/\1 … \2 …/'
$robustmix study benchmarks/study-cifar10.toml --out "$out" --dataset "imagefolder:$parent/cifar10-jpeg" --dry-run
exec $robustmix study benchmarks/study-cifar10.toml --out "$out" --dataset "imagefolder:$parent/cifar10-jpeg"
