"""The MODELS registry, build_model, model_options, run_stages (manifold mixup's stage runner) and
scale_head (a study's planted masked model)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..runtime.errors import RobustmixError
from .imagenet import TorchvisionResNet
from .resnets import PreActResNet, WideResNet
from .small import FastCNN, LeNet5, SmallCNN
from .whiten import LearnedStemCNN, WhitenCNN


def run_stages(model: nn.Module, x: torch.Tensor, *, mix_at: int = -1, mix: Callable | None = None) -> torch.Tensor:
    """model(x) computed stage by stage; `mix` is applied to the input of stage `mix_at` (if any)."""
    h = x
    for i, stage in enumerate(model.stages()):
        if i == mix_at and mix is not None:
            h = mix(h)
        h = stage(h)
    return h


ModelFactory = Callable[..., nn.Module]


# name -> factory(in_channels, num_classes, image_size, mean, std, **options). Plain dict;
# the model tests are generated from it. Options: width, depth, dropout (where the model has them).
MODELS: dict[str, ModelFactory] = {
    "cnn": lambda c, k, size, mean, std, **kw: SmallCNN(c, k, mean, std, **kw),
    "fast_cnn": lambda c, k, size, mean, std, **kw: FastCNN(c, k, mean, std, **kw),
    "lenet5": lambda c, k, size, mean, std, **kw: LeNet5(c, k, mean, std, image_size=size, **kw),
    "whiten_cnn": lambda c, k, size, mean, std, **kw: WhitenCNN(c, k, mean, std, **kw),
    "learned_stem_cnn": lambda c, k, size, mean, std, **kw: LearnedStemCNN(c, k, mean, std, **kw),
    "preact_resnet18": lambda c, k, size, mean, std, **kw: PreActResNet(c, k, mean, std, blocks=(2, 2, 2, 2), **kw),
    "wrn28_10": lambda c, k, size, mean, std, **kw: WideResNet(c, k, mean, std, **kw),
    "resnet18": lambda c, k, size, mean, std, **kw: TorchvisionResNet("resnet18", c, k, mean, std, **kw),
    "resnet50": lambda c, k, size, mean, std, **kw: TorchvisionResNet("resnet50", c, k, mean, std, **kw),
    "resnet101": lambda c, k, size, mean, std, **kw: TorchvisionResNet("resnet101", c, k, mean, std, **kw),
}


def model_options(*, width: int = 0, depth: int = 0, dropout: float = 0.0) -> dict:
    """The options a config asks for (0 = the model's default), as recorded in meta["model_options"]."""
    out: dict = {}
    if width:
        out["width"] = int(width)
    if depth:
        out["depth"] = int(depth)
    if dropout:
        out["dropout"] = float(dropout)
    return out


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: int, mean: Sequence[float],
                std: Sequence[float], **options) -> nn.Module:
    """A registered model (`MODELS[name]`) for images of `in_channels`×`image_size`×`image_size`,
    with `num_classes` outputs (logits). Its first layer normalises [0, 1] pixels with `mean`/`std`
    (per channel, [0, 1] units); `options` are the model's own (e.g. `width`, `depth`, `dropout`).

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4])
        >>> model(torch.rand(5, 1, 8, 8)).shape  # N×C×H×W pixels in [0, 1] -> N×classes logits
        torch.Size([5, 10])
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise RobustmixError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}") from None
    try:
        return factory(in_channels, num_classes, image_size, tuple(mean), tuple(std), **options)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        bad = str(e).split("'")[-2] if "'" in str(e) else "?"
        raise RobustmixError(f"model {name!r} has no --{bad} option: drop it or choose another --model") from None


def scale_head(model: nn.Module, factor: float) -> nn.Module:
    """`model` with its head (its last linear layer) multiplied by `factor` in place, so its logits are
    multiplied by `factor` and its predictions unchanged; returned. A study's negative control is made so
    (TrainConfig.head_scale): at × 1e4 the float32 softmax saturates and the cross-entropy's input
    gradient is exactly zero on every example classified with a logit margin above about 0.01, which
    is gradient masking, planted. `factor` 1: the model as it is."""
    if factor == 1:
        return model
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise RobustmixError(f"{type(model).__name__} has no linear layer to scale: head_scale needs a model whose head is one")
    with torch.no_grad():
        heads[-1].weight.mul_(factor)
        if heads[-1].bias is not None:
            heads[-1].bias.mul_(factor)
    return model
