"""What an evaluation runs (`EvalConfig`) and how it runs it on a device: the memory layout, the
batch size and the models' placement. Below `evaluate`, `robustmix.evaluation.transfer` and `robustmix.evaluation.tally`,
which all read it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

from ..attacks import (
    AMP_MODES,
    ATTACKS,
    DEFAULT_ATTACKS,
    SETTINGS,
    WORST,
    Budget,
    auto_batch_size,
    standard_layout,
)
from ..attacks.budget import (
    APGD_ITERS,
    APGD_RESTARTS,
    PGD_ITERS,
    PGD_RESTARTS,
    SQUARE_QUERIES,
)
from ..data import pixels
from ..runtime.errors import RobustmixError
from ..store.checkpoint import Checkpoint


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` runs: eps in [0, 1] units (the CLI's `--eps 4` is 4/255), the attacks, the
    settings (white-box, black-box), the strong attacks' budget, batching and precision."""

    eps: tuple[float, ...] = (4 / 255,)  # [0, 1] units
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    iters: int = 10  # I-FGSM steps; step = eps / iters
    settings: tuple[str, ...] = SETTINGS
    batch_size: int | str = 500  # most rows in one model call (stacked eps count), or "auto"
    device: str = "auto"
    stack_eps: bool = True  # I-FGSM and scoring: all eps in one batch (per-example eps and step)
    amp: str = "none"  # "bf16": forward-only passes in bfloat16, gradients float32; "bf16-all": gradients too
    channels_last: bool | str = "auto"  # models and batches in channels_last; "auto": see channels_last_for
    compile: bool = False  # torch.compile the models (meant for CUDA)
    pgd_iters: int = PGD_ITERS  # the strong attacks' budget (see attacks.Budget)
    pgd_restarts: int = PGD_RESTARTS
    apgd_iters: int = APGD_ITERS
    apgd_restarts: int = APGD_RESTARTS
    square_queries: int = SQUARE_QUERIES
    seed: int = 0  # random starts and Square's search
    # "all": Square queries every example; "survivors": only those no gradient attack run before it
    # fooled (AutoAttack's order; the worst case is the same, at a fraction of the queries). White-box only.
    square_on: str = "all"
    checks: bool = True  # soundness checks (and their probes) on a run with more than one attack

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def budget(self) -> Budget:
        return Budget(self.iters, self.pgd_iters, self.pgd_restarts, self.apgd_iters, self.apgd_restarts, self.square_queries, self.seed,
                      self.square_on)

    def validate(self) -> None:
        if not self.eps:
            raise RobustmixError("no eps given: pass at least one value, e.g. --eps 4")
        for e in self.eps:
            if not (math.isfinite(e) and 0 <= e <= 1):
                raise RobustmixError(f"eps {e!r} is outside [0, 1] pixel units (0–255 on the CLI)")
        for a in self.attacks:
            if a not in ATTACKS and a != WORST:
                raise RobustmixError(f"unknown attack {a!r}: choose from {', '.join([*ATTACKS, WORST])}")
        self.budget.validate()
        for s in self.settings:
            if s not in SETTINGS:
                raise RobustmixError(f"unknown setting {s!r}: choose from {', '.join(SETTINGS)}")
        if self.square_on == "survivors" and "square" in self.attacks and "black-box" in self.settings:
            # Black-box Square is crafted once on the surrogate and scored on every target (and a
            # study's examples once for all of its targets), so there is no one target whose survivors it could attack.
            raise RobustmixError("square_on 'survivors' is white-box only (black-box Square is crafted once on the surrogate "
                                 "for every target): use settings white-box, or square_on 'all'")
        if self.iters < 1:
            raise RobustmixError(f"iters must be >= 1, got {self.iters}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise RobustmixError(f"batch size must be an integer >= 1 or 'auto', got {self.batch_size!r}")
        if self.channels_last not in (True, False, "auto"):
            raise RobustmixError(f"channels_last must be true, false or 'auto', got {self.channels_last!r}")
        if self.amp not in AMP_MODES:
            raise RobustmixError(f"unknown amp mode {self.amp!r}: choose from {', '.join(AMP_MODES)}")


def channels_last_for(config: EvalConfig, device: torch.device) -> bool:
    """Whether an evaluation runs in channels_last: config.channels_last, or for "auto" on CPU
    (oneDNN's convolutions prefer NHWC: measured, the paper's table 1.12× faster for the digits CNN
    and no slower for PreAct ResNet-18, reports/perf.md) and on CUDA under bf16 autocast (tensor-core convolutions want
    NHWC). CPU results are bit-identical to attacking with the model and x in that layout.
    """
    if config.channels_last != "auto":
        return bool(config.channels_last)
    return device.type == "cpu" or (device.type == "cuda" and config.amp != "none")


def resolve_batch_size(config: EvalConfig, models: Sequence[nn.Module], x: torch.Tensor, device: torch.device) -> int:
    """config.batch_size, or for "auto" the most rows per pass that fit (see auto_batch_size).
    The models must already be on `device`."""
    if config.batch_size != "auto":
        return int(config.batch_size)
    limit = x.shape[0] * (len(config.eps) if config.stack_eps else 1)
    fmt = torch.channels_last if channels_last_for(config, device) else torch.contiguous_format
    probe = standard_layout(pixels(x[:1].to(device)), fmt)
    return auto_batch_size(models, probe, limit=limit, amp=config.amp)


def place_models(checkpoints: dict[str, Checkpoint], config: EvalConfig, device: torch.device) -> dict[str, nn.Module]:
    """Every model moved to `device`; name -> what runs (the model, compiled if config.compile)."""
    for c in checkpoints.values():
        c.model.to(device=device)
    return {name: (torch.compile(c.model) if config.compile else c.model) for name, c in checkpoints.items()}
