"""Where a study's model jobs run (`robustmix study --executor local|slurm`): submitit's executors, with
the resources of the spec's [cluster] table (robustmix.study.spec.ClusterSpec) and the command line.

submitit (https://github.com/facebookincubator/submitit, the `cluster` extra) is the engine: its
AutoExecutor submits to Slurm (an sbatch job array with a concurrency cap, `--array=0-N%cap`) or
starts each job as a process of this machine (its local executor); it requeues a job that is
preempted or reaches its time limit, after asking the job for its checkpoint
(robustmix.study.jobs.ModelJob). Nothing here schedules: it translates the spec's resources into
submitit's parameters, builds the executor, and says what would be submitted (the dry run).

Library code: nothing is printed here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..runtime.errors import RobustmixError
from .spec import OWN_SBATCH, ClusterSpec

EXECUTORS = ("local", "slurm")
EXTRA = "pip install 'robustmix[cluster]'"  # the optional dependency that brings submitit


def jobs_folder(out: Path) -> Path:
    """DIR/jobs: submitit's folder (each job's pickled call, its result, its stdout/stderr log) and one
    <slot>.json per model saying which host and job last ran it. Scratch: not part of the report."""
    return Path(out) / "jobs"


def with_overrides(cluster: ClusterSpec, **given) -> ClusterSpec:
    """The spec's [cluster] with the command line's values (those not None) in place of its own;
    `sbatch` ((key, value) pairs) is added to the spec's, a key given twice taking the command line's value."""
    sbatch, more = dict(cluster.sbatch), dict(given.pop("sbatch", None) or ())
    own = sorted(k for k in more if k.replace("_", "-") in OWN_SBATCH)
    if own:
        raise RobustmixError(f"--sbatch {own[0]}=... is set by robustmix itself: use --partition, --account, --time-min, "
                             "--gpus-per-job, --cpus-per-job, --mem-gb or --jobs instead")
    sbatch.update(more)
    return replace(cluster, **{k: v for k, v in given.items() if v is not None}, sbatch=tuple(sorted(sbatch.items())))


def job_threads(kind: str, cluster: ClusterSpec, cap: int, threads_here: int) -> int | None:
    """The torch threads of each model's job: on this machine (`local`), this process's threads shared out
    between the `cap` jobs that run side by side (as `--jobs N` shares them between its processes); on
    Slurm, the job's CPUs (`cpus`), or None: the job reads SLURM_CPUS_PER_TASK, else torch's default."""
    if kind == "local":
        return max(1, threads_here // cap)
    return cluster.cpus


def submitit_parameters(kind: str, cluster: ClusterSpec, cap: int, *, name: str, device: str,
                        dependency: str | None = None) -> dict:
    """The keyword arguments of submitit's AutoExecutor.update_parameters for each model's job: the
    generic ones (timeout_min, gpus_per_node, cpus_per_task, mem_gb, name) and, on Slurm, the
    slurm_-prefixed ones (partition, account, the array's cap, further sbatch options, setup lines,
    and `afterok` on the surrogate's job for the targets)."""
    # submitit's local executor hides every GPU from a job that asks for none (CUDA_VISIBLE_DEVICES="")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    gpus = cluster.gpus or (1 if kind == "local" and cuda else 0)
    params = {"name": name, "timeout_min": cluster.time_min, "gpus_per_node": gpus, "cpus_per_task": cluster.cpus,
              "mem_gb": cluster.mem_gb}
    if kind == "slurm":
        extra = dict(cluster.sbatch)
        if dependency is not None:
            extra["kill-on-invalid-dep"] = "yes"  # the surrogate's job failed: Slurm cancels the targets waiting on it
        params.update(slurm_partition=cluster.partition, slurm_account=cluster.account, slurm_array_parallelism=cap,
                      slurm_additional_parameters=extra or None, slurm_setup=list(cluster.setup) or None,
                      slurm_dependency=dependency)
    return {k: v for k, v in params.items() if v is not None}


def require_submitit(kind: str):
    """The submitit module; RobustmixError (one line naming the extra) when it is not installed."""
    if kind not in EXECUTORS:
        raise RobustmixError(f"unknown executor {kind!r}: choose {' or '.join(EXECUTORS)}")
    try:
        import submitit
    except ImportError:
        raise RobustmixError(f"--executor {kind} runs each model as a job through submitit, which is not installed: {EXTRA}") from None
    return submitit


def check_devices(kind: str, cluster: ClusterSpec, device: str) -> None:
    """A Slurm job on a CUDA device needs GPUs asked for: refused in one line before anything is submitted."""
    if kind == "slurm" and device.startswith("cuda") and not cluster.gpus:
        raise RobustmixError(f"--device {device} with --executor slurm asks each job for no GPU: add --gpus-per-job 1 "
                             "(or gpus = 1 in [cluster])")


def make_executor(kind: str, folder: Path, params: dict):
    """submitit's AutoExecutor for `kind` ("local" or "slurm") with `params`; RobustmixError (one line) when
    submitit is not installed or, for Slurm, when this machine cannot submit (no `srun`)."""
    submitit = require_submitit(kind)
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    except RuntimeError as e:  # SlurmExecutor: 'Could not detect "srun"'
        raise RobustmixError(f"--executor slurm: this machine cannot submit to Slurm ({e}): run it where sbatch and srun "
                             "work (a login node), or use --executor local") from None
    executor.update_parameters(**params)
    return executor


def describe(kind: str, surrogate: str | None, targets: list[str], params: dict, threads: int | None, cap: int) -> list[str]:
    """The dry run's lines: the jobs that would be submitted, their resources and their order."""
    if not surrogate and not targets:
        return [f"jobs ({kind}): none: every model is trained, attacked and probed"]
    res = [f"{params['timeout_min']} min", f"{params.get('gpus_per_node', 0)} GPU(s)"]
    res += [f"{params['cpus_per_task']} CPU(s)"] if "cpus_per_task" in params else []
    res += [f"{params['mem_gb']:g} GB"] if "mem_gb" in params else []
    res += [f"partition {params['slurm_partition']}"] if "slurm_partition" in params else []
    res += [f"account {params['slurm_account']}"] if "slurm_account" in params else []
    extra = {k: v for k, v in (params.get("slurm_additional_parameters") or {}).items() if k != "kill-on-invalid-dep"}
    res += [f"sbatch {' '.join(f'--{k}={v}' for k, v in extra.items())}"] if extra else []
    res += [f"setup {'; '.join(params['slurm_setup'])}"] if params.get("slurm_setup") else []
    res += [f"{threads} torch thread(s)" if threads else "torch threads: the job's CPUs"]
    lines = [f"jobs ({kind}): one per model (train, then attack and probe it), each {', '.join(res)}"]
    if surrogate:
        lines.append(f"  job 1: {surrogate} (trains the surrogate and crafts its black-box examples once per suite, into DIR/results)")
    if targets:
        first = 2 if surrogate else 1
        after = (" after the surrogate's job ends well (afterok)" if kind == "slurm" else " once the surrogate's job has ended") if surrogate else ""
        if kind == "slurm" and len(targets) > 1:
            how = f"a job array of {len(targets)}, at most {cap} at once (--array=0-{len(targets) - 1}%{min(cap, len(targets))})"
        else:
            how = f"{len(targets)} job(s), at most {min(cap, len(targets))} at once"
        span = f"job {first}" if len(targets) == 1 else f"jobs {first}–{first + len(targets) - 1}"
        lines.append(f"  {span}: {', '.join(targets)}: {how}{after}")
    return lines
