"""`robustmix study SPEC --out DIR`: train, attack, probe and report a whole study, resumably.

Every stage reuses what DIR already holds (checkpoints whose recorded config matches, results
whose config and weights match), so a rerun trains nothing and changes no number, and an
interrupted study continues where it stopped. Without --stage the models are taken one by one
(trained, attacked, probed), so each model's results are kept as soon as it is trained; a study
folder kept without its weights reuses every result and rebuilds only the weights something needs.
With --executor local|slurm each model is a job of its own through submitit (robustmix.study.jobs):
on this machine, or on a Slurm cluster as a job array. The report is rebuilt every time, and only
once every model is finished.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from ..runtime.devices import resolve_device
from ..runtime.errors import RobustmixError
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
from ..study.attacking import tidy_transfers
from ..study.cluster import EXECUTORS, describe, job_threads, submitit_parameters, with_overrides
from ..study.jobs import Submission, run_jobs, unfinished
from .common import bar, nonneg_int, positive_float, positive_int, say, writable_path
from .train import key_value, train_in_lane, train_with_progress

HELP = "run a study from a spec (the gate's TOML plus [strong], [figures], [claims], [cluster]): train, attack, probe, write a report folder"
STAGES = ("train", "attack", "probes", "report", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="study spec, TOML (e.g. benchmarks/study-digits.toml): a robustmix bench spec with optional [strong], [figures], [claims], [cluster]")
    p.add_argument("--out", type=Path, required=True, help="the study folder: models/, results/, data/, figures/, README.md, report.html, study.json")
    p.add_argument("--dataset", default=None, help="override the spec's [data] dataset, e.g. imagefolder:/work/data/cifar10-jpeg (recorded in every checkpoint)")
    p.add_argument("--device", default=None, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: the spec's [train] device, cpu unless set)")
    p.add_argument("--stage", choices=STAGES, default="all",
                   help="run one stage only, over every model (each needs the ones before it on disk); 'all' (default) takes the models one "
                        "by one, training, attacking and probing each before the next, then writes the report")
    p.add_argument("--retrain", action="store_true",
                   help="replace a checkpoint in DIR/models whose recorded config differs from the spec's, or accept rebuilt weights that "
                        "differ from the recorded ones (another processor); never done otherwise")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="with --executor: the model jobs that run at once (default: 1 for local; [cluster] max_parallel, else every "
                        "one, for slurm). Without: train the missing models in N parallel processes, each with 1/N of the torch threads (default 1). "
                        "On a 2-core CPU, --jobs 2 trained CIFAR-10 1.14x faster in all (two 1-thread processes vs one "
                        "2-thread process, benchmarks/parallel_train_speed.py); memory grows N-fold. The weights depend on the thread count (recorded in each "
                        "checkpoint): rerun with the same --jobs to get the same numbers. Attacks run in one process")
    p.add_argument("--dry-run", action="store_true", help="print what would be trained, resumed or reused and each suite's plan with its pass counts "
                   "(with --executor, also the jobs that would be submitted: models, resources, order); change nothing")
    c = p.add_argument_group("cluster", "each model as a job of its own (train, attack, probe) through submitit (pip install "
                             "'robustmix[cluster]'); these flags override the spec's [cluster] table. See docs/guides/cluster.md")
    c.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local: each model a job process of this machine, --jobs N at once; slurm: each model a job of a Slurm job "
                        "array (the surrogate's job first), at most --jobs N (or [cluster] max_parallel) at once; a shared file system "
                        "holds DIR. Default: neither (this process, training --jobs N models side by side)")
    c.add_argument("--partition", default=None, help="Slurm partition of the jobs")
    c.add_argument("--account", default=None, help="Slurm account the jobs are charged to")
    c.add_argument("--time-min", type=positive_int, default=None,
                   help="time limit of each job in minutes (default 240); a job that reaches it is requeued and resumes")
    c.add_argument("--gpus-per-job", type=nonneg_int, default=None, help="GPUs of each job (default 0)")
    c.add_argument("--cpus-per-job", type=positive_int, default=None, help="CPUs of each job, also its torch threads (default: Slurm's)")
    c.add_argument("--mem-gb", type=positive_float, default=None, help="memory of each job in GB (default: Slurm's)")
    c.add_argument("--sbatch", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                   help="a further sbatch option of every job, e.g. --sbatch qos=high --sbatch constraint=a100 (repeat the flag)")
    c.add_argument("--no-wait", action="store_true",
                   help="with --executor slurm: submit and return; when the jobs have ended, --stage report writes the report")


CLUSTER_FLAGS = ("partition", "account", "time_min", "gpus_per_job", "cpus_per_job", "mem_gb", "sbatch", "no_wait")


def cluster_of(args: argparse.Namespace, spec):
    """The spec's [cluster] with the command line's flags over it."""
    return with_overrides(spec.cluster, partition=args.partition, account=args.account, time_min=args.time_min,
                          gpus=args.gpus_per_job, cpus=args.cpus_per_job, mem_gb=args.mem_gb, sbatch=args.sbatch)


def job_cap(args: argparse.Namespace, cluster) -> int:
    """Jobs at once: --jobs, else [cluster] max_parallel, else 1 on this machine and every job on Slurm."""
    return args.jobs or cluster.max_parallel or (1 if args.executor == "local" else 256)


def check_flags(args: argparse.Namespace) -> None:
    given = [f"--{f.replace('_', '-')}" for f in CLUSTER_FLAGS if getattr(args, f) not in (None, False)]
    if given and args.executor is None:
        raise RobustmixError(f"{given[0]} is an option of the jobs of --executor local|slurm: add --executor slurm (or local), or drop it")
    if args.no_wait and args.executor != "slurm":
        raise RobustmixError("--no-wait is for --executor slurm (jobs on this machine end with this command): drop it")
    if args.executor is not None and args.stage != "all":
        raise RobustmixError(f"--executor runs each model whole (train, attack, probe) as a job, not --stage {args.stage}: drop --stage, "
                             "or drop --executor (--stage report writes the report from the jobs' files)")


def jobs_dry_run(args: argparse.Namespace, spec) -> str:
    cluster = cluster_of(args, spec)
    cap = job_cap(args, cluster)
    try:
        left = unfinished(spec, args.out, args.retrain)
    except RobustmixError as e:
        return f"jobs ({args.executor}): none can be planned: {e}"
    surrogate = next((m.slot for m in left if m.name == "surrogate"), None)
    params = submitit_parameters(args.executor, cluster, cap, name=f"robustmix-{args.out.name}", device=spec.bench.eval.device,
                                 dependency="afterok:SURROGATE" if surrogate else None)
    return "\n".join(describe(args.executor, surrogate, [m.slot for m in left if m.slot != surrogate], params,
                              job_threads(args.executor, cluster, cap, torch.get_num_threads()), cap))


def report_device(spec):
    """Where the report is written: the spec's device when this machine has it (one that submits jobs to GPUs may not)."""
    try:
        return resolve_device(spec.bench.eval.device)
    except RobustmixError:
        return torch.device("cpu")


def refuse_unfinished(spec, out) -> None:
    left = [m.slot for m in unfinished(spec, out)]
    if left:
        raise RobustmixError(f"{len(left)} model(s) of the study are not finished (trained, attacked and probed): {', '.join(left)}: "
                             "run robustmix study SPEC --out DIR to finish them (with --executor, wait for their jobs first), then the report")


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    spec = load_study(args.spec, dataset=args.dataset)
    if args.device is not None:
        spec = spec.with_device(args.device)
    if args.dry_run:
        text = dry_run(spec, args.out, retrain=args.retrain)
        if args.executor is not None:
            body, last = text.rsplit("\n", 1)
            text = f"{body}\n{jobs_dry_run(args, spec)}\n{last}"
        print(text)
        return 0
    writable_path(args.out / "study.json")
    device = resolve_device(spec.bench.eval.device) if args.executor is None else report_device(spec)
    command = "robustmix study " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["study"] else \
        f"robustmix study {args.spec} --out {args.out}"
    walls: dict[str, float] = {}
    bars: dict[str, object] = {}

    def on_batch(label: str, done: int, total: int) -> None:
        b = bars.get(label) or bars.setdefault(label, bar(total=total, desc=label))
        b.update(1)
        if done == total:
            b.close()

    jobs = args.jobs or 1
    train_fn = train_with_progress if jobs == 1 else train_in_lane
    if args.executor is not None:
        cluster = cluster_of(args, spec)
        cap = job_cap(args, cluster)
        sub = Submission(args.executor, cluster, cap, job_threads(args.executor, cluster, cap, torch.get_num_threads()),
                         retrain=args.retrain, keep_memory=True, train_fn=train_in_lane, job_progress=say,
                         poll=1.0 if args.executor == "local" else 30.0)
        walls.update(run_jobs(spec, args.out, sub, wait=not args.no_wait, on_progress=say))
        if args.no_wait:
            say(f"submitted; the jobs' logs are in {args.out / 'jobs'}. Once they have ended: robustmix study {args.spec} --out {args.out} "
                "--stage report (or this command again, which submits whatever is unfinished)")
            return 0
    elif args.stage == "all":
        walls.update(run_models(spec, args.out, device, jobs=jobs, retrain=args.retrain, train_fn=train_fn, keep_memory=True,
                                on_progress=say, on_batch=on_batch))
    for stage in ("report",) if args.stage == "all" else (args.stage,):
        start = time.perf_counter()
        if stage == "train":
            train_stage(spec, args.out, retrain=args.retrain, train_fn=train_fn, on_progress=say, jobs=jobs, keep_memory=True,
                        on_epoch=on_batch, need=needs_weights(spec, args.out))
        elif stage == "attack":
            attack_stage(spec, args.out, device, on_progress=say, on_batch=on_batch)
        elif stage == "probes":
            say("probes: reused (same checkpoints)" if probes_stage(spec, args.out, device) is None else "probes: Figure 2 and calibration written")
        else:
            refuse_unfinished(spec, args.out)
            probes_stage(spec, args.out, device, only=set())  # gathers the per-model probe files (jobs write them side by side)
            tidy_transfers(spec, args.out)
            doc = build_report(spec, args.out, command=command, device=str(device), walls=walls)
            say(doc["numbers"]["headline"])
            say(f"wrote {args.out / 'README.md'}, {args.out / 'report.html'} and {args.out / 'study.json'}")
        walls[stage] = round(time.perf_counter() - start, 3)
    return 0
