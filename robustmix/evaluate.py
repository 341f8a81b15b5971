"""Run an evaluation: targets × (white-box, black-box) × attacks × eps -> records.

One record per target × setting × attack × eps (plus one `clean` record per target), each with
top-1/top-5 error and the per-example correctness behind it, so any table, interval or paired
test can be recomputed from the records alone.

The work is planned first (`robustmix.plan`): every pass that can be shared is shared (the clean
forward is the forward of the gradient at x; one gradient gives FGSM at every eps and the first
I-FGSM step; I-FGSM runs every eps stacked in one batch; black-box examples are crafted once on
the surrogate and scored on every target). The records are the same, bit for bit on CPU, as one
attack call per target × setting × attack × eps (tests/test_shared_work.py).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .attacks import (
    AMP_MODES,
    autocast,
    eval_mode,
    ifgsm_sweep,
    logits_and_gradient,
    memory_format,
    model_layout,
    prepare_inputs,
    standard_layout,
)
from . import distributed
from .checks import check_evaluation
from .data import pixels
from .errors import RobustmixError
from .metrics import topk_correct
from .plan import Pass, build_plan

SETTINGS = ("white-box", "black-box")
ATTACK_LABELS = {"fgsm": "FGSM", "ifgsm": "I-FGSM"}
CPU_AUTO_BATCH = 512  # rows per pass for --batch-size auto off CUDA (see auto_batch_size)


@dataclass(frozen=True)
class EvalConfig:
    eps: tuple[float, ...] = (4 / 255,)  # [0, 1] units
    attacks: tuple[str, ...] = ("fgsm", "ifgsm")
    iters: int = 10  # I-FGSM steps; step = eps / iters
    settings: tuple[str, ...] = SETTINGS
    batch_size: int | str = 500  # most rows in one model call (stacked eps count), or "auto"
    device: str = "auto"
    stack_eps: bool = True  # I-FGSM and scoring: all eps in one batch (per-example eps and step)
    amp: str = "none"  # "bf16": forward-only passes in bfloat16, gradients float32; "bf16-all": gradients too
    channels_last: bool | str = "auto"  # models and batches in channels_last; "auto": see channels_last_for
    compile: bool = False  # torch.compile the models (meant for CUDA)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if not self.eps:
            raise RobustmixError("no eps given: pass at least one value, e.g. --eps 4")
        for e in self.eps:
            if not (math.isfinite(e) and 0 <= e <= 1):
                raise RobustmixError(f"eps {e!r} is outside [0, 1] pixel units (0–255 on the CLI)")
        for a in self.attacks:
            if a not in ATTACK_LABELS:
                raise RobustmixError(f"unknown attack {a!r}: choose from {', '.join(ATTACK_LABELS)}")
        for s in self.settings:
            if s not in SETTINGS:
                raise RobustmixError(f"unknown setting {s!r}: choose from {', '.join(SETTINGS)}")
        if self.iters < 1:
            raise RobustmixError(f"iters must be >= 1, got {self.iters}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise RobustmixError(f"batch size must be an integer >= 1 or 'auto', got {self.batch_size!r}")
        if self.channels_last not in (True, False, "auto"):
            raise RobustmixError(f"channels_last must be true, false or 'auto', got {self.channels_last!r}")
        if self.amp not in AMP_MODES:
            raise RobustmixError(f"unknown amp mode {self.amp!r}: choose from {', '.join(AMP_MODES)}")


@dataclass
class Checkpoint:
    """A loaded model and the metadata of the checkpoint it came from."""

    name: str
    model: nn.Module
    meta: dict = field(default_factory=dict)


def channels_last_for(config: EvalConfig, device: torch.device) -> bool:
    """Whether an evaluation runs in channels_last: config.channels_last, or for "auto" on CPU
    (oneDNN's convolutions prefer NHWC: measured, the paper's table 1.12× faster for the digits CNN
    and no slower for PreAct ResNet-18, reports/perf.md) and on CUDA under bf16 autocast (tensor-core convolutions want
    NHWC). CPU results are bit-identical to attacking with the model and x in that layout.
    """
    if config.channels_last != "auto":
        return bool(config.channels_last)
    return device.type == "cpu" or (device.type == "cuda" and config.amp != "none")


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if b else "0" for b in mask.tolist())


def find_largest(fits: Callable[[int], bool], *, start: int = 32, limit: int) -> int:
    """The largest b <= limit with fits(b), assuming fits is monotone: doubling, then bisection."""
    if limit < 1:
        raise RobustmixError("nothing to evaluate: no examples")
    b = min(start, limit)
    if not fits(b):
        lo, hi = 0, b  # fits(lo) assumed, fits(hi) false
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        if lo == 0:
            raise RobustmixError("not even one example fits in device memory: use a smaller model or --device cpu")
        return lo
    while b < limit and fits(min(2 * b, limit)):
        b = min(2 * b, limit)
    if b == limit:
        return b
    lo, hi = b, min(2 * b, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def auto_batch_size(models: Sequence[nn.Module], example: torch.Tensor, *, limit: int, amp: str = "none") -> int:
    """Most rows per pass that fit: on CUDA, probed with a forward+backward of every model
    (an out-of-memory error means "does not fit"), keeping 10% headroom.

    Off CUDA there is no safe probe (a CPU allocation that is too large can bring the whole
    machine down rather than raise), and CPU throughput stops growing long before memory runs
    out, so auto means min(limit, CPU_AUTO_BATCH).
    """
    if example.device.type != "cuda":
        return min(limit, CPU_AUTO_BATCH)

    def fits(rows: int) -> bool:
        x = example[:1].expand(rows, *example.shape[1:]).contiguous()
        y = torch.zeros(rows, dtype=torch.long, device=example.device)
        try:
            for m in models:
                with eval_mode(m):
                    logits_and_gradient(m, x, y, amp=amp)
            torch.cuda.synchronize(example.device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del x, y
            torch.cuda.empty_cache()

    return max(1, int(find_largest(fits, limit=limit) * 0.9))


def chunking(batch_size: int, n_eps: int, stack_eps: bool) -> tuple[int, int]:
    """(examples per chunk, eps per stacked pass) so that no call exceeds batch_size rows."""
    if not stack_eps:
        return batch_size, 1
    per_pass = max(1, min(n_eps, batch_size))
    return max(1, batch_size // per_pass), per_pass


def resolve_batch_size(config: EvalConfig, models: Sequence[nn.Module], x: torch.Tensor, device: torch.device) -> int:
    """config.batch_size, or for "auto" the most rows per pass that fit (see auto_batch_size).
    The models must already be on `device`."""
    if config.batch_size != "auto":
        return int(config.batch_size)
    limit = x.shape[0] * (len(config.eps) if config.stack_eps else 1)
    fmt = torch.channels_last if channels_last_for(config, device) else torch.contiguous_format
    probe = standard_layout(pixels(x[:1].to(device)), fmt)
    return auto_batch_size(models, probe, limit=limit, amp=config.amp)


def plan_evaluation(
    target_names: Sequence[str], surrogate_name: str | None, config: EvalConfig, batch_size: int
) -> tuple[list[Pass], int]:
    """(plan for one chunk, examples per chunk) for a request; batch_size already resolved."""
    chunk, per_pass = chunking(batch_size, len(config.eps), config.stack_eps)
    plan = build_plan(
        target_names,
        surrogate_name if "black-box" in config.settings else None,
        attacks=config.attacks,
        eps=config.eps,
        iters=config.iters,
        settings=config.settings,
        eps_per_pass=per_pass,
    )
    return plan, chunk


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
) -> list[dict]:
    """Evaluate every target clean and under every (setting, attack, eps). Returns records.

    Under torchrun pass `world` (from `distributed.init`): each rank evaluates its shard of the
    examples and every rank returns the records of the whole set, equal to a single process's.

    x: N×C×H×W pixels (float in [0, 1] or uint8), y: N labels; eps in config in [0, 1] units.
    Models are moved to `device`; they run in channels_last if `channels_last_for(config, device)`
    and are handed back in the mode and memory format they came in.
    """
    config.validate()
    if not targets:
        raise RobustmixError("no target checkpoints to evaluate")
    if "black-box" in config.settings and surrogate is None:
        raise RobustmixError("black-box evaluation needs a surrogate checkpoint")
    device = device or torch.device("cpu")
    fmt = torch.channels_last if channels_last_for(config, device) else torch.contiguous_format
    checkpoints = {t.name: t for t in targets}
    if surrogate is not None and "black-box" in config.settings:
        checkpoints.setdefault(surrogate.name, surrogate)
    for c in checkpoints.values():
        c.model.to(device=device)
    run = {name: (torch.compile(c.model) if config.compile else c.model) for name, c in checkpoints.items()}
    check_evaluation(targets, x, y, surrogate)
    world = world or distributed.World()
    if world.distributed:
        part = distributed.shard(x.shape[0], world)
        x, y = x[part], y[part]

    batch_size = resolve_batch_size(config, [c.model for c in checkpoints.values()], x, device)
    plan, chunk = plan_evaluation([t.name for t in targets], surrogate.name if surrogate else None, config, batch_size)
    last_use = {(p.source, p.eps): i for i, p in enumerate(plan) if p.kind == "score" and p.attack == "ifgsm"}

    # correctness per key -> list of per-chunk bool tensors, kept on the device until the end
    top1: dict[tuple, list[torch.Tensor]] = {}
    top5: dict[tuple, list[torch.Tensor]] = {}
    target_names = set(c.name for c in targets)

    def record(key: tuple, logits: torch.Tensor, yb: torch.Tensor) -> None:
        top1.setdefault(key, []).append(topk_correct(logits, yb, 1))
        top5.setdefault(key, []).append(topk_correct(logits, yb, 5))

    def forward(name: str, xb: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(xb, config.amp):
            return run[name](xb).float()

    n_chunks = math.ceil(x.shape[0] / chunk)
    with ExitStack() as stack:
        for c in checkpoints.values():
            stack.enter_context(eval_mode(c.model))
            stack.enter_context(model_layout(c.model, fmt))
        for b, (xb, yb) in enumerate(zip(x.split(chunk), y.split(chunk))):
            xb, yb = prepare_inputs(None, standard_layout(pixels(xb.to(device)), fmt), yb.to(device))
            layout = memory_format(xb)
            n = xb.shape[0]
            direction: dict[str, torch.Tensor] = {}
            clean_done: set[str] = set()
            ifgsm_adv: dict[tuple, torch.Tensor] = {}
            for i, p in enumerate(plan):
                if p.kind == "clean":
                    record((p.model, "clean", "none", 0.0), forward(p.model, xb), yb)
                    clean_done.add(p.model)
                elif p.kind == "gradient":
                    # its logits are the clean predictions: no separate clean pass
                    logits, grad = logits_and_gradient(run[p.model], xb, yb, amp=config.amp)
                    if p.model in target_names and p.model not in clean_done:
                        record((p.model, "clean", "none", 0.0), logits, yb)
                        clean_done.add(p.model)
                    direction[p.model] = grad.sign()
                elif p.kind == "ifgsm":
                    adv = ifgsm_sweep(run[p.model], xb, yb, eps=p.eps, iters=config.iters, direction=direction[p.model], amp=config.amp)
                    ifgsm_adv[(p.model, p.eps)] = torch.stack([adv[e] for e in p.eps])
                else:  # score
                    eps_t = torch.tensor(p.eps, dtype=xb.dtype, device=device).view(-1, 1, 1, 1, 1)
                    if p.attack == "fgsm" or config.iters == 1:
                        adv = (xb.unsqueeze(0) + eps_t * direction[p.source].unsqueeze(0)).clamp_(0.0, 1.0)
                    else:
                        adv = ifgsm_adv[(p.source, p.eps)]
                        if last_use[(p.source, p.eps)] == i:
                            del ifgsm_adv[(p.source, p.eps)]
                    logits = forward(p.model, _stack(adv, layout)).view(len(p.eps), n, -1)
                    for j, e in enumerate(p.eps):
                        record((p.model, p.setting, p.attack, e), logits[j], yb)
            if on_batch is not None:
                on_batch(b + 1, n_chunks)

    metas = {t.name: t.meta for t in targets}
    records = []
    for key in top1:
        name, setting, attack, e = key
        # Under torchrun each rank scored its contiguous shard; gathered in rank order they are the
        # whole set in its original order, so the records equal a single process's.
        c1 = distributed.gather_cat(torch.cat(top1[key]), world).cpu()
        c5 = distributed.gather_cat(torch.cat(top5[key]), world).cpu()
        meta = metas[name]
        records.append(
            {
                "target": name,
                "method": meta.get("method", "?"),
                "alpha": meta.get("alpha"),
                "seed": meta.get("seed"),
                "setting": setting,
                "attack": attack,
                "iters": (config.iters if attack == "ifgsm" else 1) if attack != "none" else 0,
                "eps": e,
                "eps_255": round(e * 255, 6),
                "surrogate": surrogate.name if setting == "black-box" else None,
                "n": int(c1.numel()),
                "top1_err": 100.0 * (1 - c1.float().mean().item()),
                "top5_err": 100.0 * (1 - c5.float().mean().item()),
                "top1_correct": _bits(c1),
                "top5_correct": _bits(c5),
                "amp": config.amp,
            }
        )
    return records
