"""Training recipes: named sets of TrainConfig values. Explicit CLI flags override them.

paper-cifar    The mixup paper's CIFAR setup (authors' code; docs/protocol.md#cifar-recipe): PreAct ResNet-18,
               SGD momentum 0.9 (no Nesterov), lr 0.1, weight decay 1e-4, batch 128, 200 epochs,
               lr ÷10 after epochs 100 and 150, alpha 1, random crop (pad 4) + horizontal flip.
cpu-fast       FastCNN (4 conv-BN-ReLU layers, width 32), batch 128, 2 epochs of a triangular one-cycle
               lr (0 → 0.1 over 25% of the steps → 0), Nesterov 0.9, weight decay 5e-4, crop + flip.
fast-cifar     After airbench94 (Keller Jordan, 2024), in our own code: WhitenCNN (2×2 patch-whitening
               stem computed from the training data), batch 1,024, Nesterov SGD momentum 0.85 with lr
               11.5 and weight decay 0.0153 per 1,024 examples (decoupled, loss summed, BatchNorm
               biases at 64× lr), label smoothing 0.2, airbench's triangular lr (0.2 → 1 at 23% of the
               steps → 0.07), lookahead from epoch 3, the stem's bias trained for 3 epochs, alternating
               flip + 2 px translate (translate only where flips are not safe), 10 epochs, amp auto.
               No test-time augmentation: the attacked function is the model itself.
fast-cifar-3x  fast-cifar for 30 epochs (lookahead from epoch 9; the stem bias still 3 epochs, as
               airbench95 does for longer runs): mixup needs longer training than ERM to pay off.
small-cnn      For images under 16 px (8×8 digits): the small CNN, width 32, batch 64, 30 epochs, cosine
               lr 0.05, Nesterov 0.9, weight decay 5e-4 (TrainConfig's defaults).
fast-cifar-adv Fast adversarial training (FGSM-RS, Wong et al. 2020) at eps 8/255 with its catastrophic-
               overfitting guard, on fast-cifar's network with a learned stem (learned_stem_cnn: the frozen
               whitening stem made FGSM-RS collapse within 2 epochs at every learning rate tried), and Wong et
               al.'s optimisation: SGD (Nesterov) momentum 0.9, weight decay 5e-4, batch 256, a one-cycle lr
               peaking at 0.2 at 40% of 15 epochs; no label smoothing (it can mask gradients under attack).
               reports/cifar10-adversarial.md has what it reaches, and what was tried first.

Adversarial training with `auto` (`--adversarial KIND` and no --adv-eps): the radius is chosen from the
data (`adversarial_defaults`): 8/255 for colour images (the CIFAR standard), 0.3 for grayscale images
of 16 px or more (MNIST's standard), 32/255 for the 8×8 digits (two of their 17 grey levels); label
smoothing is off.

`auto` (the CLI default) chooses one from the data's shape and size: `auto_recipe`, table in
docs/guides/train.md. Measured results: reports/cifar10-cpu.md.
"""

from __future__ import annotations

import math

from ..data.sources import default_augment
from ..runtime.errors import RobustmixError
from .config import TrainConfig

FAST = dict(model="whiten_cnn", alpha=1.0, epochs=10, batch_size=1024, optimizer="decoupled-sgd", lr=11.5,
            momentum=0.85, nesterov=True, weight_decay=0.0153, schedule="triangle", warmup=0.23,
            label_smoothing=0.2, lookahead_after=3, whiten_bias_epochs=3, augment="altflip-translate", amp="auto")

RECIPES: dict[str, dict] = {
    "paper-cifar": dict(
        dataset="cifar10", model="preact_resnet18", alpha=1.0, epochs=200, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", milestones=(100, 150), lr_decay=0.1, augment="crop-flip",
    ),
    "cpu-fast": dict(
        dataset="cifar10", model="fast_cnn", width=32, alpha=1.0, epochs=2, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup=0.25, augment="crop-flip",
    ),
    "fast-cifar": dict(dataset="cifar10", **FAST),
    "fast-cifar-3x": dict(dataset="cifar10", **dict(FAST, epochs=30, lookahead_after=9)),
    "small-cnn": dict(model="cnn", alpha=1.0, epochs=30, batch_size=64, lr=0.05, momentum=0.9,
                      nesterov=True, weight_decay=5e-4, schedule="cosine", augment="auto"),
    # Wong et al.'s fast adversarial training on fast-cifar's network with a learned stem: FGSM-RS (1.25·eps),
    # SGD momentum 0.9, weight decay 5e-4, batch 256, a one-cycle lr peaking at 0.2 at 40% of 15 epochs.
    "fast-cifar-adv": dict(dataset="cifar10", model="learned_stem_cnn", alpha=1.0, epochs=15, batch_size=256, optimizer="sgd",
                           lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup=0.4,
                           label_smoothing=0.0, lookahead_after=0, augment="altflip-translate", amp="auto",
                           adversarial="fgsm-rs", adv_eps=8 / 255),
}

MIN_SIDE = 16  # the whitening network pools 3 times by 2; smaller images get the small CNN
MIN_STEPS = 300  # fast-cifar takes 490 steps on CIFAR-10; smaller sets train for more epochs to reach this...
MAX_EPOCHS = 100  # ...up to this many epochs


def auto_recipe(input_shape: tuple[int, int, int], train_examples: int) -> tuple[str, dict, str]:
    """(recipe, values that adapt it to the data, why) for training images of `input_shape` (C, H, W).

    - under 16 px (8×8 digits): small-cnn;
    - otherwise fast-cifar, at full width for colour images and at width 32 for one channel (a
      grayscale image carries a third of the information; the narrower net trains ~3× faster);
    - the batch is about an eighth of the training set, between 128 and 1,024 (CPU convolutions
      process a batch of 64 several times less efficiently per image than one of 512), and small
      sets train for more epochs, so that there are at least MIN_STEPS optimiser steps (at most
      MAX_EPOCHS epochs); lookahead starts at the same fraction of training as in fast-cifar.
    """
    c, h, w = input_shape
    size = f"{h}×{w}, {'1 channel' if c == 1 else f'{c} channels'}, {train_examples:,} training images"
    if min(h, w) < MIN_SIDE:
        return "small-cnn", {}, f"{size}: under {MIN_SIDE} px, too small for fast-cifar's three 2× poolings"
    values: dict = {}
    why = [f"{size}: fast-cifar"]
    if c == 1:
        values["width"] = 32
        why.append("width 32 for one channel")
    batch = min(FAST["batch_size"], max(128, 2 ** int(math.log2(max(1, train_examples // 8)))))
    epochs = min(MAX_EPOCHS, max(FAST["epochs"], math.ceil(MIN_STEPS / math.ceil(train_examples / batch))))
    if (batch, epochs) != (FAST["batch_size"], FAST["epochs"]):
        values.update(batch_size=batch, epochs=epochs,
                      lookahead_after=round(epochs * FAST["lookahead_after"] / FAST["epochs"]))
        why.append(f"batch {batch} and {epochs} epochs for at least {MIN_STEPS} steps")
    return "fast-cifar", values, "; ".join(why)


def adversarial_defaults(input_shape: tuple[int, int, int]) -> tuple[dict, str]:
    """(values, why) that `auto` adds when adversarial training is asked without a radius."""
    c, h, w = input_shape
    if min(h, w) < MIN_SIDE:
        return {"adv_eps": 32 / 255}, "adversarial eps 32/255 (8×8 images with 17 grey levels)"
    if c == 1:
        return {"adv_eps": 0.3, "label_smoothing": 0.0}, "adversarial eps 0.3 (grayscale: MNIST's standard), no label smoothing"
    return {"adv_eps": 8 / 255, "label_smoothing": 0.0}, "adversarial eps 8/255 (colour: CIFAR's standard), no label smoothing"


def resolve_config(recipe: str | None, *, auto: tuple[tuple[int, int, int], int] | None = None, **explicit) -> TrainConfig:
    """TrainConfig from a recipe's values, overridden by every explicit (non-None) value.

    recipe "auto" needs `auto` = (input shape, number of training images) of the data: `auto_recipe`
    chooses; the config records the chosen recipe and why (`recipe_reason`). A recipe's
    alternating flip becomes a plain translate on data whose default augmentation has no flip
    (digits, SVHN: a mirrored 3 is not a 3).
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    values: dict = {}
    if recipe == "auto":
        if auto is None:
            raise RobustmixError("recipe auto needs the data's shape: load the data set first (the CLI does)")
        recipe, adapt, why = auto_recipe(*auto)
        if given.get("adversarial"):
            extra, reason = adversarial_defaults(auto[0])
            adapt, why = {**adapt, **extra}, f"{why}; {reason}"
        values.update(RECIPES[recipe], **adapt, recipe_reason=f"auto: {why}")
    elif recipe:
        try:
            values.update(RECIPES[recipe])
        except KeyError:
            raise RobustmixError(f"unknown recipe {recipe!r}: choose auto or one of {', '.join(RECIPES)}") from None
    if recipe:
        values["recipe"] = recipe
    values.update(given)
    dataset = values.get("dataset", TrainConfig.dataset)
    if values.get("augment") == "altflip-translate" and "augment" not in given and "flip" not in default_augment(dataset):
        values["augment"] = "translate"
    return TrainConfig(**values)
