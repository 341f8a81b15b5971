"""Typed, frozen configs. CLI flags, config keys and metadata keys share one name."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..data import AUGMENTS
from ..runtime.errors import RobustmixError
from .adversarial import resolve as resolve_adversarial
from .methods import get_method

ROLES = ("target", "surrogate")
SCHEDULES = ("cosine", "step", "onecycle", "triangle")
OPTIMIZERS = ("sgd", "decoupled-sgd")
AMP_MODES = ("auto", "none", "bf16")
# Keys added after gate baselines and checkpoints existed (issue 14's fast-recipe keys); their
# defaults keep the earlier behaviour, so `TrainConfig.canonical` leaves them out at the default.
LATER_KEYS = ("amp", "channels_last", "optimizer", "label_smoothing", "lookahead_after", "whiten_bias_epochs",
              "recipe_reason", "adversarial", "adv_eps", "adv_steps", "adv_step_size", "adv_mode", "adv_random_start",
              "adv_compose", "trades_beta", "adv_guard", "ema_decay", "head_scale")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run is asked (the CLI's `robustmix train` flags), frozen, recorded
    in full in the checkpoint's `meta.json`. `run_name` names its checkpoint folder; `with_`
    returns a copy with some fields changed. A `recipe` fills the fields it names; explicit values win.

    Examples:
        >>> from robustmix import TrainConfig
        >>> cfg = TrainConfig(dataset="digits", method="mixup", alpha=1.0, seed=1)
        >>> cfg.run_name, cfg.with_(seed=2).run_name
        ('digits-cnn-mixup-a1-s1-target', 'digits-cnn-mixup-a1-s2-target')
    """

    dataset: str = "digits"  # a DATASETS name or imagefolder:ROOT
    model: str = "cnn"
    method: str = "erm"
    alpha: float = 1.0  # Beta(alpha, alpha) for the mixing methods; ignored by erm
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    role: str = "target"  # "target" (attacked) or "surrogate" (crafts black-box examples)
    device: str = "auto"
    # --- added with issue 3 (defaults keep the foundation's behaviour) ---
    nesterov: bool = True
    schedule: str = "cosine"  # cosine (per step) | step (lr × lr_decay at each milestone epoch) | onecycle | triangle
    milestones: tuple[int, ...] = (100, 150)  # epochs after which the step schedule decays the lr
    lr_decay: float = 0.1
    warmup: float = 0.25  # onecycle, triangle: fraction of the steps spent rising to the peak lr
    augment: str = "auto"  # none | crop | crop-flip | auto (the data set's default; none for digits)
    width: int = 0  # model options; 0 = the model's default
    depth: int = 0
    dropout: float = 0.0
    train_subset: int = 0  # stratified, seeded subsets; 0 = all
    test_subset: int = 0
    label_noise: float = 0.0  # fraction of training labels replaced by a wrong random label (Table 2)
    image_size: int = 0  # resize to image_size × image_size; 0 = the data's own size
    data_dir: str = ""  # torchvision data sets live here ("" = ./data)
    download: bool = False
    cache_dir: str = ""  # imagefolder decode cache ("" = ROOT/.robustmix-cache)
    recipe: str = ""  # the recipe the values came from, if any (explicit flags override it)
    # --- added with issue 16 ---
    # e.g. puzzle-mix's {"adv_p": 0.1}; {} = the method's defaults. Compared, not hashed (a dict); treat as read-only.
    method_options: dict[str, Any] = field(default_factory=dict, hash=False)
    # --- added with issue 14 (defaults keep the earlier behaviour) ---
    amp: str = "none"  # none | bf16 (autocast, float32 master weights) | auto (bf16 on CUDA and AMX CPUs)
    channels_last: bool | str = "auto"  # True | False | "auto" (robustmix.training.precision.resolve_channels_last)
    optimizer: str = "sgd"  # sgd | decoupled-sgd (lr and weight decay per 1,024 examples, summed loss; airbench)
    label_smoothing: float = 0.0  # applied to every method's soft targets
    lookahead_after: int = 0  # lookahead weight averaging from this epoch on (0: none)
    whiten_bias_epochs: int = 3  # whiten_cnn: the epochs in which the whitening stem's bias is trained
    recipe_reason: str = ""  # why `--recipe auto` chose `recipe` for this data
    # --- added with issue 35: adversarial training, an option of every method (robustmix.training.adversarial) ---
    adversarial: str = ""  # "" (none) | pgd (PGD-AT) | fgsm-rs (fast AT) | trades
    adv_eps: float = 0.0  # [0, 1] pixel units (the CLI's --adv-eps is on the 0–255 scale); 0 = the recipe's
    adv_steps: int = 0  # crafting steps; 0 = the kind's default (pgd 10, fgsm-rs 1, trades 10)
    adv_step_size: float = 0.0  # [0, 1] units; 0 = the kind's default (pgd/trades 2.5·eps/steps, fgsm-rs 1.25·eps)
    adv_mode: str = "auto"  # the mode the model crafts in: auto (the paper's: train for pgd/fgsm-rs, eval for trades) | train | eval
    adv_random_start: bool = True  # False only to study what the random start prevents (catastrophic overfitting)
    adv_compose: str = "auto"  # with a mixing method: auto (its paper's) | iat | mixed
    trades_beta: float = 6.0  # TRADES's β (the authors' CIFAR-10 value)
    adv_guard: str = "auto"  # the catastrophic-overfitting guard: auto (on for fgsm-rs) | on | off
    ema_decay: float = 0.0  # weight averaging: EMA of the weights (and BN statistics), evaluated and saved; 0 = none
    # --- added with issue 36: a study's negative control (robustmix.models.core.scale_head) ---
    head_scale: float = 1.0  # after training, the head (last linear layer) × this: logits × it; 1e4 plants gradient masking; 1 = none

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["method_options"]:  # omitted when empty: configs (and bench spec hashes) from before it stay equal
            del d["method_options"]
        return d

    def canonical(self) -> dict[str, Any]:
        """`to_dict` without the keys added after gate baselines and checkpoints existed, where they
        hold their default: what compares configs across versions (the gate's spec hash, the
        study's reuse of a checkpoint), so that adding a key with a default that keeps the old
        behaviour invalidates nothing."""
        d = self.to_dict()
        for f in fields(self):
            if f.name in LATER_KEYS and f.name in d and d[f.name] == DEFAULTS[f.name]:
                del d[f.name]
        return d

    def validate(self) -> None:
        """Refuse values training cannot use, with a one-line message naming the key (the CLI flag
        and the bench spec key share its name)."""
        if self.epochs < 1:
            raise RobustmixError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise RobustmixError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise RobustmixError(f"lr must be a positive number, got {self.lr}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise RobustmixError(f"alpha must be >= 0 (0 means no mixing), got {self.alpha}")
        if self.role not in ROLES:
            raise RobustmixError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.schedule not in SCHEDULES:
            raise RobustmixError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.augment != "auto" and self.augment not in AUGMENTS:
            raise RobustmixError(f"augment must be auto or one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise RobustmixError(f"label_noise must be a fraction in [0, 1], got {self.label_noise}")
        if not 0.0 <= self.dropout < 1.0:
            raise RobustmixError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.warmup < 1.0:
            raise RobustmixError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.amp not in AMP_MODES:
            raise RobustmixError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.channels_last not in (True, False, "auto"):
            raise RobustmixError(f"channels_last must be true, false or auto, got {self.channels_last!r}")
        if self.optimizer not in OPTIMIZERS:
            raise RobustmixError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "decoupled-sgd" and not 0.0 <= self.momentum < 1.0:
            raise RobustmixError(f"momentum must be in [0, 1) for decoupled-sgd, got {self.momentum}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise RobustmixError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lookahead_after < 0 or self.whiten_bias_epochs < 0:
            raise RobustmixError("lookahead_after and whiten_bias_epochs must be >= 0 (epochs)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise RobustmixError(f"ema_decay must be in [0, 1) (0: no weight averaging), got {self.ema_decay}")
        if isinstance(self.head_scale, bool) or not isinstance(self.head_scale, (int, float)) or not (
                math.isfinite(self.head_scale) and self.head_scale > 0):
            raise RobustmixError(f"head_scale must be a positive number (1: the head as trained), got {self.head_scale!r}")
        get_method(self.method, self.method_options)
        resolve_adversarial(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "milestones" in kw:
            kw["milestones"] = tuple(int(m) for m in kw["milestones"])
        return cls(**kw)

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)

    @property
    def run_name(self) -> str:
        """A descriptive default folder name, e.g. digits-cnn-mixup-a1-s1-target."""
        method = self.method if self.method == "erm" else f"{self.method}-a{self.alpha:g}"
        for key, value in sorted(self.method_options.items()):  # e.g. puzzle-mix-a1-adv_p0.1
            method += f"-{key}{','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
        if self.adversarial:  # e.g. erm-pgd8
            method += f"-{self.adversarial}{self.adv_eps * 255:g}"
        dataset = self.dataset
        if dataset.startswith("imagefolder:"):
            dataset = "imagefolder-" + (dataset.rstrip("/").rsplit("/", 1)[-1] or "root")
        return f"{dataset}-{self.model}-{method}-s{self.seed}-{self.role}"


def config_mismatch(saved: dict, current: dict, ignore=("device",)) -> list[str]:
    """Keys whose value differs between a saved config and the current one, compared as JSON
    stores them (a tuple and the list it was saved as are equal); `ignore`d keys do not count."""
    a, b = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name in LATER_KEYS}
