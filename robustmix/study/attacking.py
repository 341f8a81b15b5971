"""A study's stages, each resumable and each reusing what is already on disk:

1. train   every (target, seed) and the surrogate into DIR/models/<name>-s<seed>/ (`robustmix.study.training`:
           reused when its meta.json records the spec's config, resumed when only the resume state
           exists, refused when it records another config; one at a time or in parallel processes);
2. attack  the paper suite on the [data] examples and the strong suite on its stratified subset, one
           `evaluate` call and one results file per suite × model (DIR/results/<suite>-<model>.json,
           the `robustmix attack` format), so an interruption loses at most one model's work; a file
           is reused when its recorded config and the checkpoints' sha256 match. The surrogate's
           black-box examples are crafted once per suite and shared by every model (`robustmix.evaluation.transfer`),
           kept in DIR/results/transfer-<suite>.safetensors until the suite is complete (so an
           interruption does not craft them again) and their crafting time in transfer-<suite>.json;
3. probes  Figure 2 (per pair) and calibration, one file per model in DIR/data/probes/, reused likewise
           (`robustmix.study.probing`).
The report (`robustmix.study.report`) is rebuilt from these files every time. Nothing in results/ or
data/ needs the weights once written: a results file is matched against the checkpoints' meta.json,
so a study folder kept without its weights (committed, or moved to another machine) reuses all of
it, and `robustmix.study.schedule` names the models whose weights a run must rebuild and runs the
stages model by model, so a long study keeps each model's results as soon as it is trained.
Library code: progress goes to the callbacks the CLI passes; nothing is printed here.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..data import Dataset, load_dataset, stratified_subset
from ..evaluation.evaluator import EvalConfig, evaluate
from ..evaluation.transfer import (
    Transfer,
    craft_transfer,
    inputs_sha256,
    load_transfer,
    save_transfer,
    transfer_meta,
)
from ..runtime import files
from ..runtime.devices import host_and_job, processor
from ..runtime.errors import RobustmixError
from ..soundness.checks import soundness_checks
from ..store.checkpoint import (
    META,
    WEIGHTS,
    Checkpoint,
    load_checkpoint,
    provenance,
    read_meta,
)
from ..store.results import load_results, save_results
from .spec import StudySpec
from .training import IGNORED, Model, models_of, normalised, same_data, split_models

SUITES = ("paper", "strong")


def suite_config(spec: StudySpec, suite: str, target: str | None = None) -> tuple[EvalConfig, int | None, int] | None:
    """(eval config, examples or None for all, subset seed) of a suite; None when the spec has no such suite.
    With `target` (a [[targets]] name), the suite as that target is scored: its settings narrowed to the
    target's own (`settings = [...]`), None when none is left."""
    if suite == "paper":
        got = spec.bench.eval, spec.bench.examples, 0
    elif spec.strong is None:
        return None
    else:
        got = spec.strong, spec.strong_examples, spec.strong.seed
    limit = spec.settings_of(target) if target is not None else ()
    if not limit:
        return got
    kept = tuple(s for s in got[0].settings if s in limit)
    return (replace(got[0], settings=kept), *got[1:]) if kept else None


def suite_examples(data: Dataset, examples: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = data.y_test.numel()
    if not examples:
        return data.x_test, data.y_test
    if examples > n:
        raise RobustmixError(f"the spec asks for {examples} examples but {data.name} has {n} test examples: ask for at most {n}")
    idx = stratified_subset(data.y_test, examples, seed)
    return data.x_test[idx], data.y_test[idx]


def setup_of(spec: StudySpec, suite: str, target: str | None = None) -> dict:
    config, examples, seed = suite_config(spec, suite, target)
    return {**config.to_dict(), "suite": suite, "dataset": spec.bench.dataset, "examples": examples, "subset_seed": seed}


WHERE = ("processor", "seconds", "hostname", "job_id")  # where and how long a suite ran: recorded, never matched


def place(record: dict | None) -> str:
    """Where a results or transfer file's attacks ran, as it records it: "NVIDIA H200 (cuda)", "AMD EPYC (cpu)",
    or the device alone in a file older than the processor field."""
    record = record or {}
    proc, device = record.get("processor"), record.get("device")
    if proc and device:
        return f"{proc} ({device})"
    return proc or (f"{device} (processor not recorded)" if device else "unknown")


def results_path(out: Path, suite: str, slot: str) -> Path:
    return Path(out) / "results" / f"{suite}-{slot}.json"


def same_setup(saved: dict | None, setup: dict) -> bool:
    """A recorded setup equals `setup`, device, processor and timing aside; an EvalConfig key a file older
    than it lacks counts as its default (so adding an option does not invalidate results on disk), and an image
    folder named without its path matches any (`same_data`)."""
    defaults = normalised(EvalConfig().to_dict())
    strip = lambda d: {k: v for k, v in {**defaults, **normalised(d)}.items() if k not in (*IGNORED, *WHERE, "dataset")}  # noqa: E731
    return strip(saved or {}) == strip(setup) and same_data((saved or {}).get("dataset"), setup.get("dataset"))


def reusable(path: Path, setup: dict, checkpoints: dict) -> bool:
    """A results file made with this setup (device and timing aside) from these very weights."""
    if not path.is_file():
        return False
    try:
        doc = load_results(path)
    except RobustmixError:
        return False
    same_weights = {k: (v or {}).get("weights_sha256") for k, v in doc.get("checkpoints", {}).items()} == {
        k: v.get("weights_sha256") for k, v in checkpoints.items()}
    return same_setup(doc.get("config"), setup) and same_weights


def transfer_path(out: Path, suite: str) -> Path:
    return Path(out) / "results" / f"transfer-{suite}.safetensors"


def suite_transfer(spec: StudySpec, out: Path, suite: str, surrogate: Checkpoint, x: torch.Tensor, y: torch.Tensor,
                   device: torch.device, on_progress: Callable[[str], None], step) -> tuple[Transfer, float | None]:
    """(the surrogate's black-box examples of a suite, seconds spent crafting them now or None):
    read from transfer_path when made with this setup from these weights and examples, else crafted and stored."""
    path, setup = transfer_path(out, suite), setup_of(spec, suite)
    meta = transfer_meta(path) or {}
    if (same_setup(meta.get("setup"), setup) and meta.get("weights_sha256") == surrogate.meta.get("weights_sha256")
            and meta.get("inputs_sha256") == inputs_sha256(x, y)):
        try:
            transfer = load_transfer(path)
            on_progress(f"reusing {path}")
            return transfer, None
        except RobustmixError:
            pass  # unreadable: crafted again below
    on_progress(f"{suite} suite: crafting {surrogate.name}'s black-box examples once, for every model")
    start = time.perf_counter()
    transfer = craft_transfer(surrogate, x, y, suite_config(spec, suite)[0], device=device, on_batch=step)
    seconds = time.perf_counter() - start
    info = {"setup": setup, "device": str(device), "processor": processor(device), "seconds": round(seconds, 3), **host_and_job()}
    save_transfer(path, transfer, info)
    files.write_json(path.with_suffix(".json"), {"format": "robustmix-study-transfer/1", "surrogate": surrogate.name,
                                                  "weights_sha256": transfer.weights_sha256, **info})
    return transfer, seconds


def transfer_seconds(spec: StudySpec, out: Path, suite: str) -> tuple[float, str]:
    """(seconds spent crafting the suite's surrogate examples, where) from transfer-<suite>.json when it has
    this setup, else (0, "")."""
    path = transfer_path(out, suite).with_suffix(".json")
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return (float(doc.get("seconds", 0.0)), place(doc)) if same_setup(doc.get("setup"), setup_of(spec, suite)) else (0.0, "")


def open_model(m: Model, device) -> Checkpoint:
    if not (m.folder / META).is_file():
        raise RobustmixError(f"{m.folder} is not trained yet: run the train stage first (robustmix study SPEC --out DIR --stage train)")
    if not (m.folder / WEIGHTS).is_file():
        raise RobustmixError(f"{m.folder} holds only its meta.json (its weights are not here) and its results are missing or stale: "
                             "run the train stage first, which rebuilds them (robustmix study SPEC --out DIR --stage train)")
    return Checkpoint(m.slot, *load_checkpoint(m.folder, device))


def recorded(m: Model) -> dict:
    """The provenance a results file of this model quotes, from its meta.json alone (no weights needed)."""
    return provenance(read_meta(m.folder, need_weights=False)) if (m.folder / META).is_file() else {}


def stale_suites(spec: StudySpec, out: Path, target: Model, surrogate: Model | None) -> list[str]:
    """The suites whose results file for `target` is missing or not reusable (other setup or other weights)."""
    stale = []
    for suite in SUITES:
        got = suite_config(spec, suite, target.name)
        if got is None:
            continue
        black = surrogate is not None and "black-box" in got[0].settings
        used = [target] + ([surrogate] if black else [])
        if not reusable(results_path(out, suite, target.slot), setup_of(spec, suite, target.name), {m.slot: recorded(m) for m in used}):
            stale.append(suite)
    return stale


def attack_stage(spec: StudySpec, out: Path, device: torch.device, *, on_progress: Callable[[str], None] = lambda s: None,
                 on_batch: Callable[[str, int, int], None] | None = None, only: set[str] | None = None) -> dict[str, float]:
    """Evaluate every target (of the slots in `only`, default all) under each suite, one results file
    per suite × model, the surrogate's black-box examples crafted once per suite. A reusable file is
    kept without loading any weights. Returns {file name: this run's wall seconds} for the results
    files (and transfer examples) computed now."""
    models = models_of(spec, out)
    surrogate_m, targets = split_models(models)
    data, surrogate, walls = None, None, {}
    stale = {m.slot: stale_suites(spec, out, m, surrogate_m) for m in targets}  # read each results file once
    for suite in SUITES:
        if suite_config(spec, suite) is None:
            continue
        _, examples, seed = suite_config(spec, suite)
        transfer, x, y = None, None, None
        for m in targets:
            got = suite_config(spec, suite, m.name)  # the suite's settings, narrowed to the target's own
            if only is not None and m.slot not in only or got is None:
                continue
            config = got[0]
            black = surrogate_m is not None and "black-box" in config.settings
            path, setup = results_path(out, suite, m.slot), setup_of(spec, suite, m.name)
            if suite not in stale[m.slot]:
                on_progress(f"reusing {path}")
                continue
            target = open_model(m, device)
            if black and surrogate is None:
                surrogate = open_model(surrogate_m, device)
            if x is None:
                data = data or load_dataset(spec.bench.dataset)
                x, y = suite_examples(data, examples, seed)
            if black and transfer is None:
                step = (lambda done, total, label=f"{suite} surrogate": on_batch(label, done, total)) if on_batch else None
                transfer, seconds = suite_transfer(spec, out, suite, surrogate, x, y, device, on_progress, step)
                walls.update({transfer_path(out, suite).name: seconds} if seconds is not None else {})
            checkpoints = {c.name: provenance(c.meta) for c in [target] + ([surrogate] if black else [])}
            on_progress(f"{suite} suite on {m.slot}: {x.shape[0]} examples")
            start = time.perf_counter()
            probes: list[dict] = []
            step = (lambda done, total, label=f"{suite} {m.slot}": on_batch(label, done, total)) if on_batch else None
            records = evaluate([target], x, y, config, surrogate=surrogate if black else None, device=device, on_batch=step,
                               probes=probes, transfer=transfer)
            seconds = time.perf_counter() - start
            checks = soundness_checks(records + probes)
            save_results(path, records, config={**setup, "device": str(device), "processor": processor(device),
                                                          "seconds": round(seconds, 3), **host_and_job()},
                         checkpoints=checkpoints, probes=probes, checks=[c.to_dict() for c in checks])
            walls[path.name] = seconds
            stale[m.slot].remove(suite)
        if not any(suite in stale[m.slot] for m in targets):
            # every results file of the suite is on disk: the examples (N × eps × attacks images, about
            # 1 GB for the CIFAR-10 paper suite) are no longer needed to resume, and stay out of the report folder
            transfer_path(out, suite).unlink(missing_ok=True)
    return walls


def black_box_stale(spec: StudySpec, out: Path, suite: str) -> list[Model]:
    """The targets whose results file of `suite` is missing or stale and scored black-box in it: the ones
    that need the surrogate's examples of that suite."""
    surrogate, targets = split_models(models_of(spec, out))
    return [m for m in targets if surrogate is not None and suite in stale_suites(spec, out, m, surrogate)
            and "black-box" in suite_config(spec, suite, m.name)[0].settings]


def craft_transfers(spec: StudySpec, out: Path, device: torch.device, *, on_progress: Callable[[str], None] = lambda s: None,
                    on_batch: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
    """The surrogate's black-box examples of every suite that some target still needs, crafted (or found
    reusable) in DIR/results/transfer-<suite>.safetensors before the targets are attacked: what the
    surrogate's job does on a cluster (`robustmix.study.jobs`), so that the target jobs, which may run
    side by side, read them rather than each crafting its own. Returns {file name: seconds} of those crafted now."""
    surrogate_m, walls, surrogate, data = split_models(models_of(spec, out))[0], {}, None, None
    for suite in SUITES:
        if suite_config(spec, suite) is None or not black_box_stale(spec, out, suite):
            continue
        surrogate = surrogate or open_model(surrogate_m, device)
        data = data or load_dataset(spec.bench.dataset)
        _, examples, seed = suite_config(spec, suite)
        x, y = suite_examples(data, examples, seed)
        step = (lambda done, total, label=f"{suite} surrogate": on_batch(label, done, total)) if on_batch else None
        _, seconds = suite_transfer(spec, out, suite, surrogate, x, y, device, on_progress, step)
        walls.update({transfer_path(out, suite).name: seconds} if seconds is not None else {})
    return walls


def tidy_transfers(spec: StudySpec, out: Path) -> list[Path]:
    """Remove the surrogate's stored examples of each suite no target needs any more (as the attack stage
    does when it completes a suite itself); returns the files removed."""
    gone = [transfer_path(out, s) for s in SUITES if suite_config(spec, s) is not None and transfer_path(out, s).is_file()
            and not black_box_stale(spec, out, s)]
    for path in gone:
        path.unlink()
    return gone
