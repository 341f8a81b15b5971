"""Run an evaluation: targets × (white-box, black-box) × attacks × eps -> records.

One record per target × setting × attack × eps (plus one `clean` record per target), each with
top-1/top-5 error and the per-example correctness behind it, so any table, interval or paired
test can be recomputed from the records alone.

The work is planned first (`robustmix.evaluation.plan`): every pass that can be shared is shared (the clean
forward is the forward of the gradient at x; one gradient gives FGSM at every eps and the first
I-FGSM step; I-FGSM runs every eps stacked in one batch; black-box examples are crafted once on
the surrogate and scored on every target, or taken from `transfer=`, crafted once by
`robustmix.evaluation.transfer.craft_transfer` for many calls). The records are the same, bit for bit on CPU,
as one attack call per target × setting × attack × eps (tests/test_shared_work.py).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import nn

from ..attacks import (
    ATTACKS,
    AUTOATTACK,
    CLEAN,
    NO_ATTACK,
    WORST,
    Crafting,
    autocast,
    chunking,
    eval_mode,
    logits_and_gradient,
    memory_format,
    model_layout,
    prepare_inputs,
    standard_layout,
)
from ..data import pixels
from ..models.predict import topk_correct
from ..runtime import distributed
from ..runtime.errors import RobustmixError
from ..store.checkpoint import Checkpoint
from .config import EvalConfig, channels_last_for, place_models, resolve_batch_size  # noqa: F401 (API)
from .guards import check_evaluation
from .plan import Pass, build_plan
from .probes import checks_on, model_record, probe_budget, probe_plan, probe_subset
from .records import autoattack_records, bits, worst_case_records
from .tally import Tally

if TYPE_CHECKING:  # transfer.py imports this module
    from .transfer import Transfer


def plan_evaluation(
    target_names: Sequence[str], surrogate_name: str | None, config: EvalConfig, batch_size: int, probe_share: float = 1.0
) -> tuple[list[Pass], int]:
    """(plan for one chunk, examples per chunk) for a request; batch_size already resolved;
    `probe_share`: the share of the examples the checks' probes run on (config.probe_examples)."""
    chunk, per_pass = chunking(batch_size, len(config.eps), config.stack_eps)
    plan = build_plan(
        target_names,
        surrogate_name if "black-box" in config.settings else None,
        attacks=config.attacks,
        eps=config.eps,
        iters=config.iters,
        settings=config.settings,
        eps_per_pass=per_pass,
        budget=config.budget,
        gradients=checks_on(config),
        nest=config.nest_eps,
    )
    return plan + probe_plan(target_names, config, per_pass, probe_share), chunk


def _stack(t: torch.Tensor, fmt) -> torch.Tensor:
    """k×N×C×H×W -> (k·N)×C×H×W in a standard layout (so results match N-row passes bit for bit)."""
    return standard_layout(t.reshape(-1, *t.shape[2:]), fmt)


def evaluate(
    targets: list[Checkpoint],
    x: torch.Tensor,
    y: torch.Tensor,
    config: EvalConfig,
    *,
    surrogate: Checkpoint | None = None,
    device: torch.device | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    world: distributed.World | None = None,
    probes: list[dict] | None = None,
    transfer: Transfer | None = None,
) -> list[dict]:
    """Evaluate every target clean and under every (setting, attack, eps). Returns records.

    Under torchrun pass `world` (from `distributed.init`): each rank evaluates its shard of the
    examples and every rank returns the records of the whole set, equal to a single process's.

    x: N×C×H×W pixels (float in [0, 1] or uint8), y: N labels; eps in config in [0, 1] units.
    Models are moved to `device`; they run in channels_last if `channels_last_for(config, device)`
    and are handed back in the mode and memory format they came in.

    With "worst-case" among config.attacks the records include the per-example worst case over the
    other attacks. Pass a list as `probes` to receive the soundness checks' probe records
    (`robustmix.evaluation.probes`; for `robustmix.soundness.soundness_checks(records + probes)`); without one, or with
    config.checks off, no probe runs. Pass `transfer` (from `robustmix.evaluation.transfer.craft_transfer`, with
    the same surrogate, x, y and config) to score those black-box examples instead of crafting them.

    Examples:
        >>> import robustmix
        >>> from robustmix.data import load_dataset
        >>> from robustmix import EvalConfig, evaluate
        >>> target = robustmix.import_model(robustmix.train(robustmix.TrainConfig(epochs=1, device="cpu"))[0], "digits")
        >>> data = load_dataset("digits")
        >>> records = evaluate([target], data.x_test[:50], data.y_test[:50], EvalConfig(eps=(8 / 255,), settings=("white-box",)))
        >>> sorted({(r["setting"], r["attack"]) for r in records})
        [('clean', 'none'), ('white-box', 'fgsm'), ('white-box', 'ifgsm')]
    """
    if probes is None:
        config = replace(config, checks=False)
    config.validate()
    device = device or torch.device("cpu")
    checkpoints = models_to_run(targets, surrogate, config)
    world = world or distributed.World()
    if transfer is not None:
        transfer.check(surrogate, targets, x, y, config, world)
        del checkpoints[surrogate.name]  # its examples are given: it runs no pass
    run = place_models(checkpoints, config, device)
    findings = check_evaluation(targets, x, y, surrogate)
    probe_mask = probe_subset(y, config.probe_examples, config.seed)  # over the whole set, before sharding
    first = 0  # this process's first example in the whole set: random numbers follow the example
    if world.distributed:
        part = distributed.shard(x.shape[0], world)
        x, y, first = x[part], y[part], part.start
        probe_mask = probe_mask[part]

    batch_size = resolve_batch_size(config, [c.model for c in checkpoints.values()], x, device)
    plan, chunk = plan_evaluation([t.name for t in targets], surrogate.name if surrogate else None, config, batch_size,
                                  probe_share=float(probe_mask.float().mean()) if probe_mask.numel() else 1.0)
    plan = [p for p in plan if p.model in checkpoints]  # with transfer: not the surrogate's gradient and craft passes
    fmt = torch.channels_last if channels_last_for(config, device) else torch.contiguous_format
    tally = Tally(checks_on(config))
    n_chunks = math.ceil(x.shape[0] / chunk)
    with ExitStack() as stack:
        for c in checkpoints.values():
            stack.enter_context(eval_mode(c.model))
            stack.enter_context(model_layout(c.model, fmt))
        for b, (xb, yb) in enumerate(zip(x.split(chunk), y.split(chunk))):
            xb, yb = prepare_inputs(None, standard_layout(pixels(xb.to(device)), fmt), yb.to(device))
            index = torch.arange(first + b * chunk, first + b * chunk + xb.shape[0], device=device)
            rows = probe_mask[b * chunk : b * chunk + xb.shape[0]].to(device)
            run_chunk(plan, run, xb, yb, config, tally, {t.name for t in targets}, index, transfer, rows)
            if on_batch is not None:
                on_batch(b + 1, n_chunks)
    records = tally.records(targets, surrogate, config, world)
    if checks_on(config):
        subset = {"probe_subset": bits(distributed.gather_cat(probe_mask.to(device), world).cpu())} if config.probe_examples else {}
        probes += [{**r, **subset} for r in records if r.get("probe")] + [model_record(t.name, findings[t.name]) for t in targets]
        records = [r for r in records if not r.get("probe")]
    combined = autoattack_records(records, config) if AUTOATTACK in config.attacks else []
    return records + combined + (worst_case_records(records) if WORST in config.attacks else [])


def models_to_run(targets: list[Checkpoint], surrogate: Checkpoint | None, config: EvalConfig) -> dict[str, Checkpoint]:
    """name -> checkpoint of every model the request runs: the targets, and the surrogate for black-box."""
    if not targets:
        raise RobustmixError("no target checkpoints to evaluate")
    if "black-box" in config.settings and surrogate is None:
        raise RobustmixError("black-box evaluation needs a surrogate checkpoint")
    checkpoints = {t.name: t for t in targets}
    if surrogate is not None and "black-box" in config.settings:
        checkpoints.setdefault(surrogate.name, surrogate)
    return checkpoints


def run_chunk(plan: list[Pass], run: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, config: EvalConfig,
              tally: Tally, targets: set[str], index: torch.Tensor | None = None, transfer: Transfer | None = None,
              probe_rows: torch.Tensor | None = None) -> None:
    """Run one chunk's plan, pass by pass, into `tally`. Adversarial examples are crafted at their
    attack's `craft` pass (or, made from the shared gradient alone, where first scored) and
    dropped after their last scoring; black-box ones come from `transfer` when given. With
    config.square_on "survivors", Square crafts only the rows (eps, example) that every white-box
    gradient attack scored before it left correctly classified (top-1); the others keep x. With
    config.cascade, every white-box attack does so after the ones before it (AutoAttack's cascade).
    With config.nest_eps, a nested attack's pass at an eps above the smallest crafts only the rows it
    would craft that its score at the next smaller eps left correctly classified (top-1); the others
    of those rows take the adversarial image scored there (inside this ball), the rest keep x.
    `probe_rows` (N bool): the examples the checks' probes run on (None: all)."""
    n, layout = x.shape[0], memory_format(x)
    jobs: dict[str, Crafting] = {}
    crafted: dict[tuple, torch.Tensor] = {}
    last_use = {(p.source, p.attack, p.eps, p.probe, p.nest): i for i, p in enumerate(plan) if p.kind == "score"}
    clean_done: set[str] = set()
    survivors, cascade = config.square_on == "survivors", config.cascade
    alive: dict[tuple[str, float], torch.Tensor] = {}  # (model, eps) -> correct under every white-box (gradient) attack so far
    probing = probe_rows if probe_rows is not None and not bool(probe_rows.all()) else None  # the probes' subset, if any
    # (model, attack, probe) -> (N bool: fooled, top-1, N×C×H×W: the images scored) at the last eps a nested attack scored
    carry: dict[tuple[str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def job(name: str, probe: str = "") -> Crafting:
        j = jobs.get(name) or Crafting(run[name], x, y, config.iters, config.amp, budget=config.budget, index=index)
        return replace(j, budget=probe_budget(j.budget, probe)) if probe else j

    def craft(attack: str, name: str, eps: tuple[float, ...], probe: str, after: float | None = None) -> torch.Tensor:
        j = job(name, probe)
        if (cascade or (survivors and ATTACKS[attack].gradient_free)) and not probe:
            everyone = torch.ones(n, dtype=torch.bool, device=x.device)
            j = replace(j, only=torch.stack([alive.get((name, e), everyone) for e in eps]))
        elif probe and probing is not None:
            j = replace(j, only=probing.expand(len(eps), n))
        if after is None:
            return ATTACKS[attack].craft(j, eps)
        # nested, one eps: the rows fooled at `after` are not attacked again; they take the image that fooled them there
        fooled, before = carry[(name, attack, probe)]
        rows = j.only[0] if j.only is not None else torch.ones(n, dtype=torch.bool, device=x.device)
        adv = ATTACKS[attack].craft(replace(j, only=(rows & ~fooled).view(1, n)), eps)
        kept = (rows & fooled).view(1, n, *[1] * (adv.dim() - 2))
        return torch.where(kept, before.unsqueeze(0), adv)  # not in place: Square's examples are inference tensors

    for i, p in enumerate(plan):
        if p.kind == "clean":
            tally.add((p.model, CLEAN, NO_ATTACK, 0.0), forward(run[p.model], x, config.amp), y)
            clean_done.add(p.model)
        elif p.kind == "gradient":
            # its logits are the clean predictions: no separate clean pass
            logits, grad = logits_and_gradient(run[p.model], x, y, amp=config.amp)
            if p.model in targets and p.model not in clean_done:
                tally.add((p.model, CLEAN, NO_ATTACK, 0.0), logits, y)
                clean_done.add(p.model)
            jobs[p.model] = Crafting(run[p.model], x, y, config.iters, config.amp, direction=grad.sign(), budget=config.budget, index=index)
            if p.model in targets:
                tally.add_gradient(p.model, grad)
        elif p.kind == "craft":
            crafted[(p.model, p.attack, p.eps, p.probe, p.nest)] = craft(p.attack, p.model, p.eps, p.probe, p.after)
        else:  # score
            key = (p.source, p.attack, p.eps, p.probe, p.nest)
            if key not in crafted:
                given = transfer is not None and p.setting == "black-box"
                crafted[key] = transfer.rows(p.attack, p.eps, index) if given else craft(p.attack, p.source, p.eps, p.probe, p.after)
            adv = crafted.pop(key) if last_use[key] == i else crafted[key]
            logits = forward(run[p.model], _stack(adv, layout), config.amp).view(len(p.eps), n, -1)
            if p.nest:  # what the next eps of this nested attack skips, and the images it carries
                carry[(p.source, p.attack, p.probe)] = (~topk_correct(logits[0], y, 1), adv[0])
            narrows = (cascade or (survivors and not ATTACKS[p.attack].gradient_free)) and p.setting == "white-box" and not p.probe
            for j, e in enumerate(p.eps):
                if p.probe and probing is not None:
                    tally.add((p.model, p.setting, p.attack, e), logits[j][probing], y[probing], p.probe)
                    continue
                tally.add((p.model, p.setting, p.attack, e), logits[j], y, p.probe)
                if narrows:
                    ok = topk_correct(logits[j], y, 1)
                    alive[(p.model, e)] = ok & alive.get((p.model, e), ok)


def forward(model: nn.Module, x: torch.Tensor, amp: str) -> torch.Tensor:
    """Float32 logits from a forward-only pass (no autograd; bf16 autocast if amp asks)."""
    with torch.inference_mode(), autocast(x, amp):
        return model(x).float()
