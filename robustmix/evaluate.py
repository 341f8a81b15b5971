"""Run an evaluation: targets × (white-box, black-box) × attacks × eps -> records.

One record per target × setting × attack × eps (plus one `clean` record per target), each with
top-1/top-5 error and the per-example correctness behind it, so any table, interval or paired
test can be recomputed from the records alone.

Work that can be shared is shared: clean predictions once per target; one input gradient per
model and batch serves FGSM at every eps; black-box examples are crafted once on the surrogate
and scored on every target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from .attacks import eval_mode, fgsm_sweep, ifgsm
from .checks import check_evaluation
from .data import pixels
from .errors import RobustmixError
from .metrics import topk_correct

SETTINGS = ("white-box", "black-box")
ATTACK_LABELS = {"fgsm": "FGSM", "ifgsm": "I-FGSM"}


@dataclass(frozen=True)
class EvalConfig:
    eps: tuple[float, ...] = (4 / 255,)  # [0, 1] units
    attacks: tuple[str, ...] = ("fgsm", "ifgsm")
    iters: int = 10  # I-FGSM steps; step = eps / iters
    settings: tuple[str, ...] = SETTINGS
    batch_size: int = 500
    device: str = "auto"

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
        if self.batch_size < 1:
            raise RobustmixError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass
class Checkpoint:
    """A loaded model and the metadata of the checkpoint it came from."""

    name: str
    model: nn.Module
    meta: dict = field(default_factory=dict)


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if b else "0" for b in mask.tolist())


def evaluate(
    targets: list[Checkpoint],
    x: torch.Tensor,
    y: torch.Tensor,
    config: EvalConfig,
    *,
    surrogate: Checkpoint | None = None,
    device: torch.device | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Evaluate every target clean and under every (setting, attack, eps). Returns records."""
    config.validate()
    if not targets:
        raise RobustmixError("no target checkpoints to evaluate")
    if "black-box" in config.settings and surrogate is None:
        raise RobustmixError("black-box evaluation needs a surrogate checkpoint")
    device = device or torch.device("cpu")
    models = {t.name: t.model.to(device) for t in targets}
    if surrogate is not None:
        surrogate.model.to(device)
    check_evaluation(targets, x, y, surrogate)

    # correctness per key -> list of per-batch bool tensors
    top1: dict[tuple, list[torch.Tensor]] = {}
    top5: dict[tuple, list[torch.Tensor]] = {}

    def score(key: tuple, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> None:
        with torch.inference_mode():
            logits = model(xb).float()
        top1.setdefault(key, []).append(topk_correct(logits, yb, 1).cpu())
        top5.setdefault(key, []).append(topk_correct(logits, yb, 5).cpu())

    def craft(model: nn.Module, attack: str, xb, yb) -> dict[float, torch.Tensor]:
        if attack == "fgsm":
            return fgsm_sweep(model, xb, yb, eps=config.eps)
        return {e: ifgsm(model, xb, yb, eps=e, iters=config.iters) for e in config.eps}

    n_batches = math.ceil(x.shape[0] / config.batch_size)
    contexts = [eval_mode(m) for m in models.values()] + ([eval_mode(surrogate.model)] if surrogate else [])
    for c in contexts:
        c.__enter__()
    try:
        for b, (xb, yb) in enumerate(zip(x.split(config.batch_size), y.split(config.batch_size))):
            xb, yb = pixels(xb.to(device)), yb.to(device)
            for name, model in models.items():
                score((name, "clean", "none", 0.0), model, xb, yb)
                if "white-box" in config.settings:
                    for attack in config.attacks:
                        for e, x_adv in craft(model, attack, xb, yb).items():
                            score((name, "white-box", attack, e), model, x_adv, yb)
            if "black-box" in config.settings:
                for attack in config.attacks:
                    for e, x_adv in craft(surrogate.model, attack, xb, yb).items():
                        for name, model in models.items():
                            score((name, "black-box", attack, e), model, x_adv, yb)
            if on_batch is not None:
                on_batch(b + 1, n_batches)
    finally:
        for c in reversed(contexts):
            c.__exit__(None, None, None)

    metas = {t.name: t.meta for t in targets}
    records = []
    for key in top1:
        name, setting, attack, e = key
        c1, c5 = torch.cat(top1[key]), torch.cat(top5[key])
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
            }
        )
    return records
