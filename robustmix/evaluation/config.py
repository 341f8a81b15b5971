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
    AUTOATTACK,
    AUTOATTACK_ATTACKS,
    COMBINED,
    DEFAULT_ATTACKS,
    SETTINGS,
    Budget,
    auto_batch_size,
    standard_layout,
)
from ..attacks.budget import (
    APGD_ITERS,
    APGD_RESTARTS,
    FAB_ITERS,
    PGD_ITERS,
    PGD_RESTARTS,
    SQUARE_QUERIES,
    TARGETS,
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
    target_classes: int = TARGETS  # APGD-T and FAB-T: the top-k other classes attacked in turn (AutoAttack: 9)
    fab_iters: int = FAB_ITERS
    square_rescale: bool = True  # False: Square's p schedule as AutoAttack's standard suite builds it
    # True: each attack runs on the examples (per eps) no attack before it fooled, white-box, in the
    # order of `attacks`: AutoAttack's cascade (`--suite autoattack`); each record counts what its attack adds
    cascade: bool = False
    # the checks' PGD probes (unbounded, converged) on a seeded subset of this many examples (None: all);
    # docs/guides/sound-evaluation.md says why the checks stay sound on it
    probe_examples: int | None = None
    # True: white-box, each attack whose registry entry nests (PGD, APGD-CE/DLR/T, Square) runs the eps in
    # increasing order, at each eps only on the examples it left at the smaller one; the others carry the
    # adversarial image it found there (inside this ball). Records above the smallest eps say "nested": their
    # top-1 error is at least a stand-alone run's, per example (docs/protocol.md#nested-eps)
    nest_eps: bool = False

    # fields added after results files and gate baselines were first written: a file or spec without
    # them means their defaults (robustmix.gate.spec drops them from its hash while at the default)
    LATER = ("target_classes", "fab_iters", "square_rescale", "cascade", "probe_examples", "nest_eps")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def budget(self) -> Budget:
        return Budget(self.iters, self.pgd_iters, self.pgd_restarts, self.apgd_iters, self.apgd_restarts, self.square_queries, self.seed,
                      self.square_on, self.target_classes, self.fab_iters, self.square_rescale, self.cascade)

    def validate(self) -> None:
        if not self.eps:
            raise RobustmixError("no eps given: pass at least one value, e.g. --eps 4")
        for e in self.eps:
            if not (math.isfinite(e) and 0 <= e <= 1):
                raise RobustmixError(f"eps {e!r} is outside [0, 1] pixel units (0–255 on the CLI)")
        for a in self.attacks:
            if a not in ATTACKS and a not in COMBINED:
                raise RobustmixError(f"unknown attack {a!r}: choose from {', '.join([*ATTACKS, *COMBINED])}")
        if AUTOATTACK in self.attacks and not set(AUTOATTACK_ATTACKS) <= set(self.attacks):
            raise RobustmixError(f"the {AUTOATTACK} record needs all of AutoAttack's attacks ({', '.join(AUTOATTACK_ATTACKS)}): "
                                 "use --suite autoattack")
        self.budget.validate()
        if not isinstance(self.nest_eps, bool):
            raise RobustmixError(f"nest_eps must be true or false, got {self.nest_eps!r}")
        if self.nest_eps and self.cascade:
            # AutoAttack's cascade runs every eps in full; nested, its record would no longer be AutoAttack's
            raise RobustmixError("nest_eps does not combine with a cascade (--suite autoattack runs AutoAttack's standard version, "
                                 "every eps in full): drop --nest-eps, or use --suite strong")
        for s in self.settings:
            if s not in SETTINGS:
                raise RobustmixError(f"unknown setting {s!r}: choose from {', '.join(SETTINGS)}")
        if self.square_on == "survivors" and "square" in self.attacks and "black-box" in self.settings:
            # Black-box Square is crafted once on the surrogate and scored on every target (and a
            # study's examples once for all of its targets), so there is no one target whose survivors it could attack.
            raise RobustmixError("square_on 'survivors' is white-box only (black-box Square is crafted once on the surrogate "
                                 "for every target): use settings white-box, or square_on 'all'")
        if self.cascade and "black-box" in self.settings:
            # a cascade attacks what a target's own white-box attacks left; black-box examples are crafted
            # once on the surrogate for every target, so there is no one target's survivors to attack
            raise RobustmixError("a cascade (--suite autoattack) is white-box only: use --settings white-box")
        if self.probe_examples is not None and (isinstance(self.probe_examples, bool) or not isinstance(self.probe_examples, int)
                                                or self.probe_examples < 1):
            raise RobustmixError(f"probe examples must be an integer >= 1 (or all), got {self.probe_examples!r}")
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
