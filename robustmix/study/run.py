"""A study's stages, each resumable and each reusing what is already on disk:

1. train   every (target, seed) and the surrogate into DIR/models/<name>-s<seed>/ (`robustmix.study.training`:
           reused when its meta.json records the spec's config, resumed when only the resume state
           exists, refused when it records another config; one at a time or in parallel processes);
2. attack  the paper suite on the [data] examples and the strong suite on its stratified subset, one
           `evaluate` call and one results file per suite × model (DIR/results/<suite>-<model>.json,
           the `robustmix attack` format), so an interruption loses at most one model's work; a file
           is reused when its recorded config and the checkpoints' sha256 match. The surrogate's
           black-box examples are crafted once per suite and shared by every model (`robustmix.transfer`),
           kept in DIR/results/transfer-<suite>.safetensors until the suite is complete (so an
           interruption does not craft them again) and their crafting time in transfer-<suite>.json;
3. probes  Figure 2 (per pair, every model) and calibration into DIR/data/, reused likewise.
The report (`robustmix.study.report`) is rebuilt from these files every time.
Library code: progress goes to the callbacks the CLI passes; nothing is printed here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import files
from ..checkpoint import META, Checkpoint, load_checkpoint, provenance
from ..data import Dataset, load_dataset, stratified_subset
from ..errors import RobustmixError
from ..evaluate import EvalConfig, evaluate, plan_evaluation
from ..plan import total_cost
from ..probes import calibration_frame, interpolation_metrics, sample_pairs
from ..results import load_results, save_results
from ..soundness import soundness_checks
from ..transfer import Transfer, craft_transfer, inputs_sha256, load_transfer, save_transfer, transfer_meta
from .spec import StudySpec
from .training import IGNORED, Model, models_of, normalised, status_of

SUITES = ("paper", "strong")


def suite_config(spec: StudySpec, suite: str) -> tuple[EvalConfig, int | None, int] | None:
    """(eval config, examples or None for all, subset seed) of a suite; None when the spec has no such suite."""
    if suite == "paper":
        return spec.bench.eval, spec.bench.examples, 0
    if spec.strong is None:
        return None
    return spec.strong, spec.strong_examples, spec.strong.seed


def suite_examples(data: Dataset, examples: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = data.y_test.numel()
    if not examples:
        return data.x_test, data.y_test
    if examples > n:
        raise RobustmixError(f"the spec asks for {examples} examples but {data.name} has {n} test examples: ask for at most {n}")
    idx = stratified_subset(data.y_test, examples, seed)
    return data.x_test[idx], data.y_test[idx]


def setup_of(spec: StudySpec, suite: str) -> dict:
    config, examples, seed = suite_config(spec, suite)
    return {**config.to_dict(), "suite": suite, "dataset": spec.bench.dataset, "examples": examples, "subset_seed": seed}


def results_path(out: Path, suite: str, slot: str) -> Path:
    return Path(out) / "results" / f"{suite}-{slot}.json"


def same_setup(saved: dict | None, setup: dict) -> bool:
    """A recorded setup equals `setup`, device and timing aside; an EvalConfig key a file older than
    it lacks counts as its default (so adding an option does not invalidate results on disk)."""
    defaults = normalised(EvalConfig().to_dict())
    strip = lambda d: {k: v for k, v in {**defaults, **normalised(d)}.items() if k not in (*IGNORED, "seconds")}  # noqa: E731
    return strip(saved or {}) == strip(setup)


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
    info = {"setup": setup, "device": str(device), "seconds": round(seconds, 3)}
    save_transfer(path, transfer, info)
    files.write_json(path.with_suffix(".json"), {"format": "robustmix-study-transfer/1", "surrogate": surrogate.name,
                                                  "weights_sha256": transfer.weights_sha256, **info})
    return transfer, seconds


def transfer_seconds(spec: StudySpec, out: Path, suite: str) -> float:
    """Seconds spent crafting the suite's surrogate examples (from transfer-<suite>.json when it has this setup), else 0."""
    path = transfer_path(out, suite).with_suffix(".json")
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return float(doc.get("seconds", 0.0)) if same_setup(doc.get("setup"), setup_of(spec, suite)) else 0.0


def open_models(models: list[Model], device) -> dict[str, Checkpoint]:
    for m in models:
        if not (m.folder / META).is_file():
            raise RobustmixError(f"{m.folder} is not trained yet: run the train stage first (robustmix study SPEC --out DIR --stage train)")
    return {m.slot: Checkpoint(m.slot, *load_checkpoint(m.folder, device)) for m in models}


def attack_stage(spec: StudySpec, out: Path, device: torch.device, *, on_progress: Callable[[str], None] = lambda s: None,
                 on_batch: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
    """Evaluate every target under each suite, one results file per suite × model, the surrogate's
    black-box examples crafted once per suite. Returns {file name: this run's wall seconds} for the
    results files (and transfer examples) computed now."""
    models = models_of(spec, out)
    loaded = open_models(models, device)
    surrogate = loaded.get(models[0].slot) if models[0].name == "surrogate" else None
    data = load_dataset(spec.bench.dataset)
    walls = {}
    for suite in SUITES:
        if suite_config(spec, suite) is None:
            continue
        config, examples, seed = suite_config(spec, suite)
        x, y = suite_examples(data, examples, seed)
        black = surrogate is not None and "black-box" in config.settings
        transfer = None
        for m in models:
            if m.name == "surrogate":
                continue
            target = loaded[m.slot]
            used = [target] + ([surrogate] if black else [])
            checkpoints = {c.name: provenance(c.meta) for c in used}
            path, setup = results_path(out, suite, m.slot), setup_of(spec, suite)
            if reusable(path, setup, checkpoints):
                on_progress(f"reusing {path}")
                continue
            if black and transfer is None:
                step = (lambda done, total, label=f"{suite} surrogate": on_batch(label, done, total)) if on_batch else None
                transfer, seconds = suite_transfer(spec, out, suite, surrogate, x, y, device, on_progress, step)
                walls.update({transfer_path(out, suite).name: seconds} if seconds is not None else {})
            on_progress(f"{suite} suite on {m.slot}: {x.shape[0]} examples")
            start = time.perf_counter()
            probes: list[dict] = []
            step = (lambda done, total, label=f"{suite} {m.slot}": on_batch(label, done, total)) if on_batch else None
            records = evaluate([target], x, y, config, surrogate=surrogate if black else None, device=device, on_batch=step,
                               probes=probes, transfer=transfer)
            seconds = time.perf_counter() - start
            checks = soundness_checks(records + probes)
            save_results(path, records, config={**setup, "device": str(device), "seconds": round(seconds, 3)},
                         checkpoints=checkpoints, probes=probes, checks=[c.to_dict() for c in checks])
            walls[path.name] = seconds
        # every results file of the suite is on disk: the examples (N × eps × attacks images, about
        # 1 GB for the CIFAR-10 paper suite) are no longer needed to resume, and stay out of the report folder
        transfer_path(out, suite).unlink(missing_ok=True)
    return walls


def dry_run(spec: StudySpec, out: Path, *, retrain: bool = False) -> str:
    """What a run would do: every model (train / resume / reuse) and each suite's plan with its pass
    counts: per model, and the surrogate's crafting, done once per suite."""
    models = models_of(spec, out)
    lines = ["models:"]
    for m in models:
        try:
            status = status_of(m, retrain)
        except RobustmixError as e:
            status = f"REFUSED ({e})"
        c = m.config
        lines.append(f"  {status:8} {m.folder}  {c.method}{'' if c.method == 'erm' else f' α={c.alpha:g}'}, seed {c.seed}, "
                     f"{c.model}, {c.epochs} epochs, batch {c.batch_size}, recipe {c.recipe or 'none'}, augment {c.augment}")
    targets = [m for m in models if m.name != "surrogate"]
    surrogate = models[0].slot if models and models[0].name == "surrogate" else None
    for suite in SUITES:
        if suite_config(spec, suite) is None:
            lines.append(f"{suite} suite: not in the spec")
            continue
        config, examples, seed = suite_config(spec, suite)
        rows = 500 if config.batch_size == "auto" else int(config.batch_size)
        plan, chunk = plan_evaluation([targets[0].slot], surrogate, config, rows)
        fwd, bwd = total_cost([p for p in plan if p.model != surrogate])
        crafting = total_cost([p for p in plan if p.model == surrogate])
        n = examples or "all"
        chunks = f"per chunk × {-(-examples // chunk)} chunk(s) of ≤ {chunk} examples" if examples else f"per chunk of {chunk} examples"
        done = sum(results_path(out, suite, m.slot).is_file() for m in targets)
        on = " (Square on the survivors of the gradient attacks: its passes are at most)" if config.square_on == "survivors" else ""
        lines.append(f"{suite} suite: attacks {', '.join(config.attacks)}{on}; eps {', '.join(f'{e * 255:g}' for e in config.eps)}/255; "
                     f"settings {', '.join(config.settings)}; {n} test examples{f' (stratified, seed {seed})' if examples else ''}")
        lines.append(f"  per model ({len(targets)} models, one evaluate call each): {fwd} forward + {bwd} backward passes {chunks} "
                     f"(soundness probes included){f'; {done} results file(s) on disk, reused where config and weights match' if done else ''}")
        if any(crafting):
            lines.append(f"  the surrogate's black-box examples, crafted once per suite and scored by all {len(targets)} models: "
                         f"{crafting[0]} forward + {crafting[1]} backward passes {chunks}")
    lines.append(f"probes: Figure 2 on {spec.figures.pairs} training pairs × {spec.figures.lams} λ points, calibration "
                 f"({spec.figures.bins} bins) on the paper suite's examples, every model")
    return "\n".join(lines) + "\n(dry run: nothing trained, attacked or written)"


def probes_stage(spec: StudySpec, out: Path, device: torch.device) -> float | None:
    """Figure 2 per pair and calibration for every model into DIR/data/; None when reused, else seconds."""
    models = models_of(spec, out)
    loaded = open_models(models, device)
    setup = {"figures": normalised(spec.figures.__dict__), "lam": spec.claims.lam, "dataset": spec.bench.dataset,
             "examples": spec.bench.examples}
    sha = {slot: c.meta.get("weights_sha256") for slot, c in loaded.items()}
    path = Path(out) / "data" / "probes.json"
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("setup") == normalised(setup) and doc.get("checkpoints") == sha:
            return None
    start = time.perf_counter()
    data = load_dataset(spec.bench.dataset)
    f = spec.figures
    lams = np.unique(np.round(np.append(np.linspace(0, 1, f.lams), spec.claims.lam), 6))
    i, j = sample_pairs(data.y_train, f.pairs, seed=f.seed, distinct_labels=f.distinct_labels)
    curves, pairs = [], {}
    at = int(np.argmin(np.abs(lams - spec.claims.lam)))
    for slot, c in loaded.items():
        m = interpolation_metrics(c.model, data.x_train[i], data.x_train[j], data.y_train[i], data.y_train[j], lams, per_pair=True)
        curves.append(pd.DataFrame({"checkpoint": slot, "lam": lams, "miss_rate": m["miss_rate"], "grad_norm": m["grad_norm"],
                                    "n_pairs": f.pairs, "seed": f.seed, "distinct_labels": f.distinct_labels}))
        pairs[slot] = {"miss": "".join("1" if b else "0" for b in m["miss"][:, at]), "grad": [round(float(g), 8) for g in m["grad"][:, at]]}
    x, y = suite_examples(data, spec.bench.examples, 0)
    calib = calibration_frame({slot: c.model for slot, c in loaded.items()}, x, y, n_bins=f.bins)
    files.write_text(path.parent / "figure2.csv", pd.concat(curves, ignore_index=True).to_csv(index=False))
    files.write_text(path.parent / "calibration.csv", calib.to_csv(index=False))
    files.write_json(path.parent / "figure2-pairs.json", {"lam": float(lams[at]), "pairs": pairs})
    seconds = time.perf_counter() - start
    files.write_json(path, {"format": "robustmix-study-probes/1", "setup": setup, "checkpoints": sha, "seconds": round(seconds, 3),
                            "device": str(device)})
    return seconds

