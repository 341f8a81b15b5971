"""A study's models as jobs (`robustmix study --executor local|slurm`): one job per model slot, which
trains that model (or resumes or reuses it), attacks it with every suite and probes it, exactly as the
model-by-model schedule (robustmix.study.schedule) does on one machine, so the files it leaves are
the ones a run on one machine leaves. The surrogate's job runs first: it trains the surrogate and
crafts its black-box examples once per suite into DIR/results/transfer-<suite>.safetensors, which the
target jobs read (a file system shared by every job is assumed: the study folder is their only channel).

A preempted job, or one that reaches its time limit, is requeued by submitit after asking the job
for its checkpoint (`ModelJob.checkpoint`): the same call again, which resumes from what is on disk
(the trainer's resume.safetensors after each finished epoch, each results and probe file once written).
A job that fails (an error, SIGKILL, a lost node) leaves its model unfinished; the driver
(`run_jobs`) submits the unfinished models again, up to [cluster] retries times, and they resume the
same way. Whatever is left is named in one line. The driver decides nothing from a job's return
value: a model is finished when its files on disk say so (`unfinished`).

submitit passes the call to the job as a pickle that this submission writes into DIR/jobs and only
the job reads (robustmix never unpickles a file it did not write).
Library code: progress goes to the callbacks the CLI passes; nothing is printed here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..runtime import files
from ..runtime.allocator import keep_freed_memory
from ..runtime.devices import host_and_job, resolve_device
from ..runtime.errors import RobustmixError
from ..training.save import train_and_save
from .attacking import attack_stage, craft_transfers, stale_suites, suite_config
from .cluster import check_devices, jobs_folder, make_executor, require_submitit, submitit_parameters
from .probing import probes_reusable, probes_stage
from .schedule import needs_weights
from .spec import ClusterSpec, StudySpec
from .training import Model, models_of, split_models, status_of, train_stage


def unfinished(spec: StudySpec, out: Path, retrain: bool = False) -> list[Model]:
    """The models with work left, in the spec's order: not trained (or to be retrained), a suite's results
    missing or stale, or probes missing or stale; and the surrogate whenever a target still has a
    black-box suite to score (its examples are crafted in the surrogate's job)."""
    models = models_of(spec, out)
    surrogate, targets = split_models(models)
    stale = {m.slot: stale_suites(spec, out, m, surrogate) for m in targets}
    left = [m for m in models if status_of(m, retrain) in ("train", "resume", "retrain") or stale.get(m.slot)
            or not probes_reusable(spec, out, m)]
    black = any("black-box" in suite_config(spec, s, m.name)[0].settings for m in targets for s in stale[m.slot])
    if surrogate is not None and black and surrogate not in left:
        left.insert(0, surrogate)
    return left


def status_path(out: Path, slot: str) -> Path:
    return jobs_folder(out) / f"{slot}.json"


@dataclass
class ModelJob:
    """One model slot's job: train (or resume, or reuse), then, for the surrogate, craft its black-box
    examples of every suite a target still needs, for a target attack it with every suite; then probe it.
    Callable with no argument (what submitit runs); `checkpoint` makes submitit requeue it on preemption
    or timeout (its protocol, which submitit.helpers.Checkpointable implements in the same way: this class
    does not derive from it, so that this module imports without submitit)."""
    spec: StudySpec
    out: Path
    slot: str
    threads: int | None = None  # torch threads; None: SLURM_CPUS_PER_TASK when set, else torch's default
    retrain: bool = False
    keep_memory: bool = False
    train_fn: Callable = train_and_save
    on_progress: Callable[[str], None] = lambda s: None

    def __call__(self) -> dict:
        threads = self.threads or int(os.environ.get("SLURM_CPUS_PER_TASK") or 0)
        if threads:
            torch.set_num_threads(threads)
        if self.keep_memory:
            keep_freed_memory()
        start, where = time.time(), {"slot": self.slot, **host_and_job(), "pid": os.getpid(), "torch_threads": torch.get_num_threads()}
        files.write_json(status_path(self.out, self.slot), {**where, "state": "running", "started": round(start, 3)})
        spec, out, say = self.spec, Path(self.out), self.on_progress
        device = resolve_device(spec.bench.eval.device)
        surrogate = split_models(models_of(spec, out))[0]
        train_stage(spec, out, only={self.slot}, need=needs_weights(spec, out), retrain=self.retrain, train_fn=self.train_fn,
                    on_progress=say)
        if surrogate is not None and surrogate.slot == self.slot:
            craft_transfers(spec, out, device, on_progress=say)
        else:
            attack_stage(spec, out, device, on_progress=say, only={self.slot})
        probes_stage(spec, out, device, only={self.slot})
        done = {**where, "state": "finished", "started": round(start, 3), "seconds": round(time.time() - start, 3)}
        files.write_json(status_path(out, self.slot), done)
        return done

    def checkpoint(self, *args, **kwargs):
        """What submitit requeues after a preemption or a timeout: this same call, which resumes from disk."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def failure(job) -> str:
    """Why a job ended without a result, in a few words, and where its log is."""
    try:
        job.result()
        return "it ended, but its model is not finished"
    except Exception as e:  # submitit's UncompletedJobError (killed: no result written) or FailedJobError (an error)
        what = "it was killed or stopped before it finished" if "has not produced any output" in str(e) else "it raised an error"
    return f"{what} (log: {job.paths.stderr})"


def wait_for(jobs: dict[str, object], poll: float, on_end: Callable[[str], None] = lambda slot: None) -> None:
    """Until every job in {slot: job} has ended (submitit's done(): its result file, or the scheduler's state)."""
    while jobs:
        for slot, job in list(jobs.items()):
            if job.done():
                del jobs[slot]
                on_end(slot)
        if jobs:
            time.sleep(poll)


@dataclass(frozen=True)
class Submission:
    """What run_jobs needs to make and submit each model's job."""
    kind: str  # "local" or "slurm"
    cluster: ClusterSpec
    cap: int  # jobs at once
    threads: int | None
    retrain: bool = False
    keep_memory: bool = False
    train_fn: Callable = train_and_save
    job_progress: Callable[[str], None] = lambda s: None  # what a job says (into its log)
    poll: float = 1.0  # seconds between looks at the jobs' state


@dataclass
class Round:
    """One round of jobs: the surrogate's (if it has work) first, then the targets', at most `sub.cap` at once."""
    spec: StudySpec
    out: Path
    sub: Submission
    surrogate: str | None
    targets: list[str]
    on_progress: Callable[[str], None]

    def job(self, slot: str) -> ModelJob:
        s = self.sub
        return ModelJob(self.spec, Path(self.out), slot, s.threads, s.retrain, s.keep_memory, s.train_fn, s.job_progress)

    def executor(self, dependency: str | None = None):
        params = submitit_parameters(self.sub.kind, self.sub.cluster, self.sub.cap, name=f"robustmix-{Path(self.out).name}",
                                     device=self.spec.bench.eval.device, dependency=dependency)
        return make_executor(self.sub.kind, jobs_folder(self.out), params)

    def ended(self, slot: str, job) -> None:
        """Say how a job ended: its model finished (judged from disk; the surrogate's job by its result), or why not."""
        ok = _returned(job) if slot == self.surrogate else all(m.slot != slot for m in unfinished(self.spec, self.out, self.sub.retrain))
        self.on_progress(f"job {job.job_id} ({slot}): {'done' if ok else 'not done: ' + failure(job)}")

    def on_slurm(self, wait: bool) -> dict[str, object]:
        """The surrogate's job and one job array of the targets after it (afterok), submitted at once; with
        `wait`, until they end (the targets cancelled if the surrogate's job fails)."""
        submitted = self.submit_surrogate()
        if self.targets:
            first = submitted.get(self.surrogate)
            array = self.executor(f"afterok:{first.job_id}" if first else None).submit_array([self.job(s) for s in self.targets])
            submitted.update(zip(self.targets, array))
            n = len(self.targets)
            self.on_progress(f"submitted {n} job(s) {array[0].job_id.split('_')[0]}{'' if n == 1 else f'_[0-{n - 1}%{min(self.sub.cap, n)}]'}: "
                             f"{', '.join(self.targets)}" + (f" (after job {first.job_id})" if first else ""))
        record(self.out, self.sub.kind, submitted)
        running = dict(submitted) if wait else {}

        def on_end(slot: str) -> None:
            self.ended(slot, submitted[slot])
            if slot == self.surrogate and not _returned(submitted[slot]):
                for s in self.targets:  # they wait on it (afterok) and would wait for ever
                    if running.pop(s, None) is not None:
                        submitted[s].cancel(check=False)
        wait_for(running, self.sub.poll, on_end)
        return submitted

    def here(self) -> dict[str, object]:
        """On this machine: the surrogate's job, then the targets' jobs, at most `cap` at once (submitit's local
        executor starts every job it is given; the cap is kept here). An interrupt stops them (their progress is on disk)."""
        submitted = self.submit_surrogate()
        try:
            if self.surrogate is not None:
                wait_for(dict(submitted), self.sub.poll, lambda s: self.ended(s, submitted[s]))
                if not _returned(submitted[self.surrogate]):
                    return submitted  # the targets would need what it did not make
            queue, running = list(self.targets), {}
            while queue or running:
                while queue and len(running) < self.sub.cap:
                    slot = queue.pop(0)
                    running[slot] = submitted[slot] = self.executor().submit(self.job(slot))
                    self.on_progress(f"started job {running[slot].job_id}: {slot}")
                for slot, j in list(running.items()):
                    if j.done():
                        del running[slot]
                        self.ended(slot, j)
                time.sleep(self.sub.poll if running else 0)
        finally:
            for j in submitted.values():
                if not j.done():
                    j.cancel(check=False)
            record(self.out, self.sub.kind, submitted)
        return submitted

    def submit_surrogate(self) -> dict[str, object]:
        if self.surrogate is None:
            return {}
        job = self.executor().submit(self.job(self.surrogate))
        self.on_progress(f"submitted job {job.job_id}: {self.surrogate} (the surrogate and its black-box examples)")
        return {self.surrogate: job}


def run_round(spec: StudySpec, out: Path, sub: Submission, left: list[Model], *, wait: bool,
              on_progress: Callable[[str], None]) -> dict[str, str]:
    """Submit one job per model in `left` (the surrogate's first) and, with `wait` (always on this machine),
    wait for them. Returns {slot: job id} of what was submitted."""
    surrogate = next((m.slot for m in left if m.name == "surrogate"), None)
    r = Round(spec, Path(out), sub, surrogate, [m.slot for m in left if m.slot != surrogate], on_progress)
    submitted = r.on_slurm(wait) if sub.kind == "slurm" else r.here()
    return {s: j.job_id for s, j in submitted.items()}


def _returned(job) -> bool:
    try:
        job.result()
        return True
    except Exception:  # noqa: BLE001 — any way a job can end without its result
        return False


def record(out: Path, kind: str, submitted: dict[str, object]) -> None:
    """DIR/jobs/submitted.json: the executor and {slot: job id} of the last submission."""
    files.write_json(jobs_folder(out) / "submitted.json", {"executor": kind, "jobs": {s: j.job_id for s, j in submitted.items()}})


def live_jobs(out: Path) -> list[str]:
    """Slurm jobs of the last submission (DIR/jobs/submitted.json) that are still queued or running."""
    import json

    path = jobs_folder(out) / "submitted.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if doc.get("executor") != "slurm" or not doc.get("jobs"):
        return []
    from submitit.slurm.slurm import SlurmJob

    return [jid for jid in doc["jobs"].values() if not SlurmJob(jobs_folder(out), jid).done(force_check=True)]


def run_jobs(spec: StudySpec, out: Path, sub: Submission, *, wait: bool = True,
             on_progress: Callable[[str], None] = lambda s: None) -> dict[str, float]:
    """Every unfinished model of the study as a job (`run_round`), again for those still unfinished
    after a failed job, up to `sub.cluster.retries` more rounds (each resumes from disk). Without `wait`
    (Slurm), submit once and return. RobustmixError (one line) naming the models still unfinished.
    Returns {"jobs": this run's wall seconds}."""
    start = time.perf_counter()
    check_devices(sub.kind, sub.cluster, spec.bench.eval.device)
    require_submitit(sub.kind)
    if sub.kind == "slurm":
        live = live_jobs(out)
        if live:
            raise RobustmixError(f"jobs of an earlier submission into {out} are still queued or running ({', '.join(live)}; "
                                 f"{jobs_folder(out) / 'submitted.json'}): wait for them (squeue --me) or scancel them, then run this again")
    for attempt in range(sub.cluster.retries + 1):
        left = unfinished(spec, out, sub.retrain)
        if not left:
            break
        if attempt:
            on_progress(f"submitting again (round {attempt + 1} of {sub.cluster.retries + 1}): {', '.join(m.slot for m in left)}; "
                        "each resumes from its last finished epoch or written result")
        run_round(spec, out, sub, left, wait=wait, on_progress=on_progress)
        if not wait:
            return {"jobs": round(time.perf_counter() - start, 3)}
    left = unfinished(spec, out, sub.retrain)
    if left:
        raise RobustmixError(f"{len(left)} model(s) still unfinished after {sub.cluster.retries + 1} round(s) of jobs: "
                             f"{', '.join(m.slot for m in left)}: see their logs in {jobs_folder(out)}, then run this again (they resume)")
    return {"jobs": round(time.perf_counter() - start, 3)}
