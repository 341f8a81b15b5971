"""Typed, frozen configs. CLI flags, config keys and metadata keys share one name."""

from __future__ import annotations

import math
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .data import AUGMENTS
from .errors import RobustmixError
from .methods import get_method

ROLES = ("target", "surrogate")
SCHEDULES = ("cosine", "step", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
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
    schedule: str = "cosine"  # cosine (per step) | step (lr × lr_decay at each milestone epoch) | onecycle
    milestones: tuple[int, ...] = (100, 150)  # epochs after which the step schedule decays the lr
    lr_decay: float = 0.1
    warmup: float = 0.25  # onecycle: fraction of the steps spent rising to the peak lr
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
        get_method(self.method)

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
        dataset = self.dataset
        if dataset.startswith("imagefolder:"):
            dataset = "imagefolder-" + (dataset.rstrip("/").rsplit("/", 1)[-1] or "root")
        return f"{dataset}-{self.model}-{method}-s{self.seed}-{self.role}"


def config_mismatch(saved: dict, current: dict, ignore=("device",)) -> list[str]:
    """Keys whose value differs between a saved config and the current one, compared as JSON
    stores them (a tuple and the list it was saved as are equal); `ignore`d keys do not count."""
    a, b = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))
