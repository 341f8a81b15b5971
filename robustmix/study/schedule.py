"""What a whole study does and in what order (`robustmix study` without --stage): model by model, the surrogate
first, each trained (or its weights rebuilt, when something needs them), then attacked with every
suite and probed, before the next one starts. A long study on a CPU thus keeps each model's results
on disk as soon as that model is trained, and an interruption (or a lost machine, when the study
folder's meta.json, results and probes are kept) costs at most the model under way. With jobs > 1,
`jobs` models train side by side, then are attacked one after another.
`needs_weights` names the models whose weights a run must rebuild; `dry_run` says all of it
without doing it. Library code: progress goes to the callbacks the CLI passes; nothing is printed here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ..evaluation.evaluator import plan_evaluation
from ..evaluation.plan import total_cost
from ..runtime.errors import RobustmixError
from ..store.checkpoint import WEIGHTS
from ..training.save import train_and_save
from .attacking import SUITES, attack_stage, results_path, stale_suites, suite_config
from .probing import probes_reusable, probes_stage
from .spec import StudySpec
from .training import models_of, plan_training, split_models, train_stage


def needs_weights(spec: StudySpec, out: Path) -> set[str]:
    """Slots whose weights a run needs: a target with a stale suite or stale probes, the surrogate when
    some target's stale suite is black-box, and a surrogate with stale probes."""
    models = models_of(spec, out)
    surrogate, targets = split_models(models)
    need = {m.slot for m in models if not probes_reusable(spec, out, m)}
    for m in targets:
        stale = stale_suites(spec, out, m, surrogate)
        if stale:
            need.add(m.slot)
        if surrogate is not None and any("black-box" in suite_config(spec, s, m.name)[0].settings for s in stale):
            need.add(surrogate.slot)
    return need


def batches(slots: list[str], jobs: int) -> list[list[str]]:
    """The model slots in spec order (the surrogate first), `jobs` at a time."""
    return [slots[i:i + jobs] for i in range(0, len(slots), jobs)]


def run_models(spec: StudySpec, out: Path, device: torch.device, *, jobs: int = 1, retrain: bool = False,
               train_fn: Callable = train_and_save, keep_memory: bool = False,
               on_progress: Callable[[str], None] = lambda s: None,
               on_batch: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
    """Train, attack and probe every model of the spec, `jobs` models at a time. Returns
    {"train": s, "attack": s, "probes": s}: this run's wall seconds in each stage."""
    walls = {"train": 0.0, "attack": 0.0, "probes": 0.0}
    models = models_of(spec, out)
    surrogate = split_models(models)[0]
    train = dict(retrain=retrain, train_fn=train_fn, on_progress=on_progress, jobs=jobs, keep_memory=keep_memory,
                 on_epoch=on_batch or (lambda label, done, total: None))
    for group in batches([m.slot for m in models], jobs):
        only = set(group)
        start = time.perf_counter()
        train_stage(spec, out, only=only, need=needs_weights(spec, out), **train)
        need = needs_weights(spec, out)  # again: a model retrained just now makes its black-box results need the surrogate
        if surrogate is not None and surrogate.slot in need and not (surrogate.folder / WEIGHTS).is_file():
            train_stage(spec, out, only={surrogate.slot}, need=need, **train)
        walls["train"] += time.perf_counter() - start
        start = time.perf_counter()
        attack_stage(spec, out, device, on_progress=on_progress, on_batch=on_batch, only=only)
        walls["attack"] += time.perf_counter() - start
        start = time.perf_counter()
        if probes_stage(spec, out, device, only=only) is not None:
            on_progress(f"probes of {', '.join(group)}: Figure 2 and calibration written")
        walls["probes"] += time.perf_counter() - start
    return {k: round(v, 3) for k, v in walls.items()}


def dry_run(spec: StudySpec, out: Path, *, retrain: bool = False) -> str:
    """What a run would do: every model (train / resume / reuse) and each suite's plan with its pass
    counts: per model, and the surrogate's crafting, done once per suite."""
    models = models_of(spec, out)
    lines = ["models:"]
    try:
        need = needs_weights(spec, out)
    except RobustmixError:
        need = set()  # a refused checkpoint: said on its line below
    for m in models:
        try:
            status = plan_training([m], need, retrain)[0][1]
        except RobustmixError as e:
            status = f"REFUSED ({e})"
        c = m.config
        lines.append(f"  {status:8} {m.folder}  {c.method}{'' if c.method == 'erm' else f' α={c.alpha:g}'}, seed {c.seed}, "
                     f"{c.model}, {c.epochs} epochs, batch {c.batch_size}, recipe {c.recipe or 'none'}, augment {c.augment}"
                     + (f", adversarial {c.adversarial} at {c.adv_eps * 255:g}/255" if c.adversarial else "")
                     + (f", head ×{c.head_scale:g} after training" if c.head_scale != 1 else "")
                     + (f"; {spec.controls[m.name].replace('-', ' ')}" if m.name in spec.controls else "")
                     + (f"; scored {', '.join(spec.settings_of(m.name))} only" if spec.settings_of(m.name) else ""))
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
        on += " (nested over eps: above the smallest eps the strong attacks' passes are at most)" if config.nest_eps and len(config.eps) > 1 else ""
        lines.append(f"{suite} suite: attacks {', '.join(config.attacks)}{on}; eps {', '.join(f'{e * 255:g}' for e in config.eps)}/255; "
                     f"settings {', '.join(config.settings)}; {n} test examples{f' (stratified, seed {seed})' if examples else ''}")
        lines.append(f"  per model ({len(targets)} models, one evaluate call each): {fwd} forward + {bwd} backward passes {chunks} "
                     f"(soundness probes included){f'; {done} results file(s) on disk, reused where config and weights match' if done else ''}")
        if any(crafting):
            black = sum(got is not None and "black-box" in got[0].settings for got in (suite_config(spec, suite, m.name) for m in targets))
            scored = f"all {len(targets)}" if black == len(targets) else f"{black} of the {len(targets)}"
            lines.append(f"  the surrogate's black-box examples, crafted once per suite and scored by {scored} models: "
                         f"{crafting[0]} forward + {crafting[1]} backward passes {chunks}")
    lines.append(f"probes: Figure 2 on {spec.figures.pairs} training pairs × {spec.figures.lams} λ points, calibration "
                 f"({spec.figures.bins} bins) on the paper suite's examples, every model")
    return "\n".join(lines) + "\n(dry run: nothing trained, attacked or written)"
