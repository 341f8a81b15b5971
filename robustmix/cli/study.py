"""`robustmix study SPEC --out DIR`: train, attack, probe and report a whole study, resumably.

Every stage reuses what DIR already holds (checkpoints whose recorded config matches, results
whose config and weights match), so a rerun trains nothing and changes no number, and an
interrupted study continues where it stopped. Without --stage the models are taken one by one
(trained, attacked, probed), so each model's results are kept as soon as it is trained; a study
folder kept without its weights reuses every result and rebuilds only the weights something needs.
The report is rebuilt every time.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..runtime.devices import resolve_device
from ..study import (
    attack_stage,
    build_report,
    dry_run,
    load_study,
    needs_weights,
    probes_stage,
    run_models,
    train_stage,
)
from .common import bar, positive_int, say, writable_path
from .train import train_in_lane, train_with_progress

HELP = "run a study from a spec (the gate's TOML plus [strong], [figures], [claims]): train, attack, probe, write a report folder"
STAGES = ("train", "attack", "probes", "report", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="study spec, TOML (e.g. benchmarks/study-digits.toml): a robustmix bench spec with optional [strong], [figures], [claims]")
    p.add_argument("--out", type=Path, required=True, help="the study folder: models/, results/, data/, figures/, README.md, report.html, study.json")
    p.add_argument("--dataset", default=None, help="override the spec's [data] dataset, e.g. imagefolder:/work/data/cifar10-jpeg (recorded in every checkpoint)")
    p.add_argument("--device", default=None, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: the spec's [train] device, cpu unless set)")
    p.add_argument("--stage", choices=STAGES, default="all",
                   help="run one stage only, over every model (each needs the ones before it on disk); 'all' (default) takes the models one "
                        "by one, training, attacking and probing each before the next, then writes the report")
    p.add_argument("--retrain", action="store_true",
                   help="replace a checkpoint in DIR/models whose recorded config differs from the spec's, or accept rebuilt weights that "
                        "differ from the recorded ones (another processor); never done otherwise")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="train the missing models in N parallel processes, each with 1/N of the torch threads (default 1). "
                        "On a 2-core CPU, --jobs 2 trained CIFAR-10 1.14x faster in all (two 1-thread processes vs one "
                        "2-thread process, benchmarks/parallel_train_speed.py); memory grows N-fold. The weights depend on the thread count (recorded in each "
                        "checkpoint): rerun with the same --jobs to get the same numbers. Attacks run in one process")
    p.add_argument("--dry-run", action="store_true", help="print what would be trained, resumed or reused and each suite's plan with its pass counts; change nothing")


def run(args: argparse.Namespace) -> int:
    spec = load_study(args.spec, dataset=args.dataset)
    if args.device is not None:
        spec = spec.with_device(args.device)
    if args.dry_run:
        print(dry_run(spec, args.out, retrain=args.retrain))
        return 0
    writable_path(args.out / "study.json")
    device = resolve_device(spec.bench.eval.device)
    command = "robustmix study " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["study"] else \
        f"robustmix study {args.spec} --out {args.out}"
    walls: dict[str, float] = {}
    bars: dict[str, object] = {}

    def on_batch(label: str, done: int, total: int) -> None:
        b = bars.get(label) or bars.setdefault(label, bar(total=total, desc=label))
        b.update(1)
        if done == total:
            b.close()

    train_fn = train_with_progress if args.jobs == 1 else train_in_lane
    if args.stage == "all":
        walls.update(run_models(spec, args.out, device, jobs=args.jobs, retrain=args.retrain, train_fn=train_fn, keep_memory=True,
                                on_progress=say, on_batch=on_batch))
    for stage in ("report",) if args.stage == "all" else (args.stage,):
        start = time.perf_counter()
        if stage == "train":
            train_stage(spec, args.out, retrain=args.retrain, train_fn=train_fn, on_progress=say, jobs=args.jobs, keep_memory=True,
                        on_epoch=on_batch, need=needs_weights(spec, args.out))
        elif stage == "attack":
            attack_stage(spec, args.out, device, on_progress=say, on_batch=on_batch)
        elif stage == "probes":
            say("probes: reused (same checkpoints)" if probes_stage(spec, args.out, device) is None else "probes: Figure 2 and calibration written")
        else:
            doc = build_report(spec, args.out, command=command, device=str(device), walls=walls)
            say(doc["numbers"]["headline"])
            say(f"wrote {args.out / 'README.md'}, {args.out / 'report.html'} and {args.out / 'study.json'}")
        walls[stage] = round(time.perf_counter() - start, 3)
    return 0
