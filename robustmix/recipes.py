"""Training recipes: named sets of TrainConfig values. Explicit CLI flags override them.

paper-cifar  The mixup paper's CIFAR setup (authors' code; docs/protocol.md#cifar-recipe): PreAct ResNet-18,
             SGD momentum 0.9 (no Nesterov), lr 0.1, weight decay 1e-4, batch 128, 200 epochs,
             lr ÷10 after epochs 100 and 150, alpha 1, random crop (pad 4) + horizontal flip.
cpu-fast     A CIFAR-10 model on 2 CPU cores in minutes: FastCNN (4 conv-BN-ReLU layers, width 32,
             ~15M multiply-adds per image), batch 128, 2 epochs of a triangular one-cycle lr
             (0 → 0.1 over the first 25% of steps, then → 0), Nesterov momentum 0.9, weight decay
             5e-4, crop + flip. Measured results: reports/cifar10-cpu.md.
"""

from __future__ import annotations

from .config import TrainConfig
from .errors import RobustmixError

RECIPES: dict[str, dict] = {
    "paper-cifar": dict(
        dataset="cifar10", model="preact_resnet18", alpha=1.0, epochs=200, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", milestones=(100, 150), lr_decay=0.1, augment="crop-flip",
    ),
    "cpu-fast": dict(
        dataset="cifar10", model="fast_cnn", width=32, alpha=1.0, epochs=2, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup=0.25, augment="crop-flip",
    ),
}


def resolve_config(recipe: str | None, **explicit) -> TrainConfig:
    """TrainConfig from a recipe's values, overridden by every explicit (non-None) value."""
    values: dict = {}
    if recipe:
        try:
            values.update(RECIPES[recipe])
        except KeyError:
            raise RobustmixError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}") from None
        values["recipe"] = recipe
    values.update({k: v for k, v in explicit.items() if v is not None})
    return TrainConfig(**values)
