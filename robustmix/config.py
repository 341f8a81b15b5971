"""Typed, frozen configs. CLI flags, config keys and metadata keys share one name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ROLES = ("target", "surrogate")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"
    model: str = "cnn"
    method: str = "erm"
    alpha: float = 1.0  # Beta(alpha, alpha) for mixup; ignored by erm
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    role: str = "target"  # "target" (attacked) or "surrogate" (crafts black-box examples)
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)

    @property
    def run_name(self) -> str:
        """A descriptive default folder name, e.g. digits-cnn-mixup-a1-s1-target."""
        method = self.method if self.method == "erm" else f"{self.method}-a{self.alpha:g}"
        return f"{self.dataset}-{self.model}-{method}-s{self.seed}-{self.role}"
