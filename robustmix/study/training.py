"""The study's models: which (target, seed) and surrogate checkpoints to reuse, resume or train, and
training them, one at a time or in parallel processes (`robustmix study --jobs N`). A checkpoint is
reused when its meta.json records the spec's config (`config_differs`), resumed when only the resume
state exists, and refused (one line naming the keys) when it records another config.

A checkpoint whose meta.json is kept but whose weights are not on this machine ("kept": a study
folder committed without its weights, or copied to another machine) still counts as trained: its
results are reused as long as nothing needs the weights. When something does (a results file of it
is missing or stale), it is rebuilt: trained again from its recorded config into
models/<slot>.rebuild/ and adopted only if the weights come out byte for byte the ones recorded
(sha256), which they do on the same kind of processor at the same thread count. Other weights
(another processor) are refused with one line, the rebuild kept, unless --retrain accepts them (and
with them recomputes every result that came from the old weights).
Library code: progress goes to the callbacks the CLI passes; nothing is printed here.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..data import load_dataset
from ..runtime import files
from ..runtime.allocator import keep_freed_memory
from ..runtime.errors import RobustmixError
from ..store.checkpoint import META, WEIGHTS, read_meta
from ..training.config import TrainConfig
from ..training.methods import get_method, network_passes
from ..training.save import train_and_save
from .headline import DATA
from .spec import StudySpec

STATE = "resume.safetensors"  # the resume state `robustmix train` writes into a checkpoint folder
IGNORED = ("device",)  # config keys a reused checkpoint or result need not match


@dataclass(frozen=True)
class Model:
    name: str  # the spec's name ("surrogate" for the surrogate)
    config: TrainConfig
    folder: Path

    @property
    def slot(self) -> str:
        return self.folder.name


def models_of(spec: StudySpec, out: Path) -> list[Model]:
    """The surrogate (if any) then every target × seed, each with its checkpoint folder."""
    out = Path(out) / "models"
    found = []
    if spec.bench.surrogate is not None:
        c = spec.bench.surrogate.configs[0]
        found.append(Model("surrogate", c, out / f"surrogate-s{c.seed}"))
    for t in spec.bench.targets:
        found += [Model(t.name, c, out / f"{t.name}-s{c.seed}") for c in t.configs]
    return found


def split_models(models: list[Model]) -> tuple[Model | None, list[Model]]:
    """(the surrogate or None, the targets) of `models_of`'s list."""
    surrogate = models[0] if models and models[0].name == "surrogate" else None
    return surrogate, [m for m in models if m is not surrogate]


def normalised(d: dict) -> dict:
    return json.loads(json.dumps(d))


def same_data(saved: str | None, given: str | None) -> bool:
    """A committed study names an image folder without this machine's path ("imagefolder:$DATA", or
    "imagefolder:DATA"): it matches the folder `--dataset` gives, wherever that lies."""
    kind, _, where = str(saved).partition(":")
    return saved == given or (kind == "imagefolder" and where in (DATA, DATA.lstrip("$")) and str(given).startswith("imagefolder:"))


def config_differs(saved: dict, config: TrainConfig) -> list[str]:
    """Keys in which a saved config differs from `config`: compared as JSON stores them, `device`
    ignored, an image folder named without its path matches any (`same_data`), alpha ignored when both are ERM (which ignores it), and a key an older checkpoint lacks
    counts as TrainConfig's default (so adding a field later does not invalidate old checkpoints)."""
    now = normalised(config.to_dict())
    then = {**normalised(TrainConfig().to_dict()), **normalised(saved)}
    keys = sorted(k for k in set(now) | set(then) if k not in IGNORED and now.get(k) != then.get(k))
    if "dataset" in keys and same_data(then.get("dataset"), now.get("dataset")):
        keys.remove("dataset")
    if now.get("method") == "erm" and then.get("method") == "erm":
        keys = [k for k in keys if k != "alpha"]
    return keys


def rebuild_folder(m: Model) -> Path:
    """Where a kept checkpoint's weights are trained again (beside it, not inside it)."""
    return m.folder.with_name(m.folder.name + ".rebuild")


def status_of(m: Model, retrain: bool = False) -> str:
    """"reuse", "kept" (meta.json of the spec's config, weights not here), "resume", "train" or
    "retrain"; RobustmixError for a finished checkpoint of another config."""
    if (m.folder / META).is_file():
        differ = config_differs(read_meta(m.folder, need_weights=False).get("config") or {}, m.config)
        if not differ:
            return "reuse" if (m.folder / WEIGHTS).is_file() else "kept"
        if retrain:
            return "retrain"
        raise RobustmixError(f"{m.folder} holds a checkpoint trained with another config (differs in {', '.join(differ)}): "
                             "pass --retrain to replace it, or another --out")
    return "resume" if (m.folder / STATE).is_file() else "train"


def rebuilds_path(out: Path) -> Path:
    return Path(out) / "data" / "rebuilds.json"


def log_rebuild(m: Model, meta: dict) -> None:
    """Add a rebuild's training time and processor to DIR/data/rebuilds.json (the report counts it in the
    study's compute: the recorded checkpoint's own train_seconds do not include it)."""
    path = rebuilds_path(m.folder.parent.parent)
    done = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    done.append({"checkpoint": m.slot, "seconds": meta.get("train_seconds"), "processor": meta.get("processor"),
                 "device": meta.get("device"), "cpu_kernels": meta.get("cpu_kernels"), "weights_sha256": meta.get("weights_sha256")})
    files.write_json(path, done)


def adopt_rebuild(m: Model, retrain: bool = False) -> str:
    """Move a finished rebuild's weights into the kept checkpoint when they are the recorded ones
    ("same weights"); with `retrain`, replace the checkpoint by the rebuild ("other weights, accepted");
    else RobustmixError naming both processors and --retrain (the rebuild stays for that rerun)."""
    src = rebuild_folder(m)
    then, now = read_meta(m.folder, need_weights=False), read_meta(src)
    log_rebuild(m, now)
    if then.get("weights_sha256") == now.get("weights_sha256"):
        os.replace(src / WEIGHTS, m.folder / WEIGHTS)
        shutil.rmtree(src)
        return "same weights"
    if not retrain:
        raise RobustmixError(
            f"{m.folder}: trained again from its recorded config, its weights differ from the recorded ones (sha256 "
            f"{str(now.get('weights_sha256'))[:12]} vs {str(then.get('weights_sha256'))[:12]}; processor {now.get('processor')!r} "
            f"{now.get('cpu_kernels') or ''} at {now.get('torch_threads')} thread(s) vs {then.get('processor')!r} "
            f"{then.get('cpu_kernels') or ''} at {then.get('torch_threads')}): every result of the old weights would be computed "
            f"again: pass --retrain to accept the new weights (kept in {src}), or continue on the recorded kind of processor")
    shutil.rmtree(m.folder)
    os.replace(src, m.folder)
    return "other weights, accepted"


def plan_training(models: list[Model], need: set[str], retrain: bool) -> list[tuple[Model, str]]:
    """(model, what to do) for each model: a kept checkpoint is rebuilt only when its slot is in `need`."""
    plan = []
    for m in models:
        status = status_of(m, retrain)
        if status == "kept" and m.slot in need:
            r = rebuild_folder(m)
            status = "rebuilt" if (r / META).is_file() else "rebuild"
        plan.append((m, status))
    return plan


@contextlib.contextmanager
def recorded_threads(m: Model):
    """For a rebuild, the torch thread count the kept checkpoint recorded (the weights depend on it), when
    this machine has that many cores; otherwise, and for any other training, the current count."""
    threads, now = None, torch.get_num_threads()
    if m.folder.name.endswith(".rebuild"):
        kept = m.folder.with_name(m.folder.name[: -len(".rebuild")])
        threads = read_meta(kept, need_weights=False).get("torch_threads")
    if not isinstance(threads, int) or threads == now or threads > (os.cpu_count() or 1):
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(now)


def train_stage(spec: StudySpec, out: Path, *, retrain: bool = False, train_fn: Callable = train_and_save,
                on_progress: Callable[[str], None] = lambda s: None, jobs: int = 1, keep_memory: bool = False,
                on_epoch: Callable[[str, int, int], None] = lambda label, done, total: None,
                only: set[str] | None = None, need: set[str] = frozenset()) -> dict[str, float]:
    """Train what is missing (of the slots in `only`, default all), and rebuild the kept checkpoints
    whose slot is in `need` (`adopt_rebuild`), one model at a time, or in `jobs` parallel processes
    (`train_parallel`). Returns {slot: this run's wall seconds}."""
    models = [m for m in models_of(spec, out) if only is None or m.slot in only]
    plan = plan_training(models, need, retrain)
    for m, status in plan:
        if status == "reuse":
            on_progress(f"reusing {m.folder} (same config)")
        elif status == "kept":
            on_progress(f"reusing {m.folder} (same config; its weights are not here and nothing needs them)")
    rebuilds = [m for m, s in plan if s in ("rebuild", "rebuilt")]
    # a rebuild trains into its own folder, as a fresh (or resumed) training of the recorded config
    todo = [(m, s) for m, s in plan if s in ("train", "resume", "retrain")]
    todo += [(Model(m.name, m.config, rebuild_folder(m)), status_of(Model(m.name, m.config, rebuild_folder(m))))
             for m, s in plan if s == "rebuild"]
    for m in rebuilds:
        on_progress(f"rebuilding {m.folder}'s weights (its results are missing or stale): training its recorded config again "
                    f"into {rebuild_folder(m)}, kept only if the weights are the recorded ones")
    if jobs > 1 and len(todo) > 1:
        walls = train_parallel(todo, jobs, train_fn=train_fn, keep_memory=keep_memory, on_progress=on_progress, on_epoch=on_epoch)
    else:
        data = load_dataset(spec.bench.dataset) if todo else None
        walls = {}
        for m, status in todo:
            on_progress(f"{'resuming' if status == 'resume' else 'training'} {m.folder} ({m.config.method}, seed {m.config.seed})")
            start = time.perf_counter()
            with recorded_threads(m):
                meta = train_fn(m.config, m.folder, overwrite=status == "retrain", resume=status == "resume", data=data)
            walls[m.slot] = time.perf_counter() - start
            on_progress(f"trained {m.folder}: clean top-1 error {meta['clean_top1_err']:.2f}% in {meta['train_seconds']:.1f} s")
    for m in rebuilds:
        on_progress(f"rebuilt {m.folder}: {adopt_rebuild(m, retrain)}")
    return walls


def lane_threads(jobs: int) -> int:
    """Torch threads for each of `jobs` parallel trainings: this process's threads shared out, at least 1."""
    return max(1, torch.get_num_threads() // jobs)


def training_cost(config: TrainConfig) -> int:
    """Relative cost of training `config` (network passes per batch × epochs): orders the parallel queue."""
    return network_passes(get_method(config.method, config.method_options)) * config.epochs


def _lane_setup(threads: int, keep_memory: bool) -> None:  # runs first in each worker process
    if keep_memory:
        keep_freed_memory()
    torch.set_num_threads(threads)


def _train_timed(train_fn: Callable, config: TrainConfig, folder: Path, status: str) -> tuple[dict, float]:
    start = time.perf_counter()
    meta = train_fn(config, folder, overwrite=status == "retrain", resume=status == "resume")
    return meta, time.perf_counter() - start


def epochs_logged(folder: Path) -> int:
    """Finished epochs of a training in progress, from its log.csv (0 when there is none yet)."""
    try:
        return max(0, (folder / "log.csv").read_text().count("\n") - 1)
    except OSError:
        return 0


def train_parallel(todo: list[tuple[Model, str]], jobs: int, *, train_fn: Callable = train_and_save, keep_memory: bool = False,
                   on_progress: Callable[[str], None] = lambda s: None,
                   on_epoch: Callable[[str, int, int], None] = lambda label, done, total: None) -> dict[str, float]:
    """Train `todo` in `jobs` worker processes, each at `lane_threads(jobs)` torch threads and loading
    its own copy of the data (memory × jobs), the costliest models first so the workers end close
    together. On a CPU, several processes of fewer threads each train more images per second in all
    than one process of all the threads (2 cores: two 1-thread processes 1.14× one 2-thread process,
    CIFAR-10 fast-cifar, benchmarks/parallel_train_speed.py); the same `jobs` on the same machine gives the same weights
    (the weights depend on the thread count, which each checkpoint records). A fresh process per
    model (`maxtasksperchild=1`) returns each model's memory. `train_fn` must be a module-level
    function (it is sent to the workers). Returns {slot: wall seconds}."""
    threads = lane_threads(jobs)
    queue = sorted(todo, key=lambda ms: -training_cost(ms[0].config))  # stable: the spec's order among equals
    on_progress(f"training {len(queue)} models in {jobs} parallel processes at {threads} torch thread(s) each, the costliest first")
    # spawn, not fork: forking a process whose torch thread pools have started can deadlock
    pool = multiprocessing.get_context("spawn").Pool(jobs, _lane_setup, (threads, keep_memory), maxtasksperchild=1)
    walls: dict[str, float] = {}
    try:
        running = {m.slot: (m, pool.apply_async(_train_timed, (train_fn, m.config, m.folder, status))) for m, status in queue}
        pool.close()
        shown = {slot: epochs_logged(m.folder) for slot, (m, _) in running.items()}
        while running:
            for slot, (m, result) in list(running.items()):
                for epoch in range(shown[slot] + 1, min(epochs_logged(m.folder), m.config.epochs) + 1):
                    on_epoch(slot, epoch, m.config.epochs)
                    shown[slot] = epoch
                if result.ready():
                    meta, walls[slot] = result.get()  # a worker's error is raised here
                    del running[slot]
                    on_progress(f"trained {m.folder}: clean top-1 error {meta['clean_top1_err']:.2f}% in {meta['train_seconds']:.1f} s")
            time.sleep(0.5 if running else 0)
        pool.join()
    finally:
        pool.terminate()  # on an error or an interrupt: the other workers stop too (their resume state is kept)
    return walls
