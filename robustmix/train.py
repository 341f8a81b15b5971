"""train(config) -> (model, metadata): the epoch loop, seeded and reproducible on CPU."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn

from . import __version__
from .config import ROLES, TrainConfig
from .data import Dataset, load_dataset, pixels, shuffled_batches
from .devices import resolve_device
from .errors import RobustmixError
from .methods import get_method, soft_cross_entropy
from .metrics import predict_logits, topk_error
from .models import build_model


def validate(config: TrainConfig) -> None:
    if config.epochs < 1:
        raise RobustmixError(f"--epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 1:
        raise RobustmixError(f"--batch-size must be >= 1, got {config.batch_size}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise RobustmixError(f"--lr must be a positive number, got {config.lr}")
    if not (config.alpha >= 0 and math.isfinite(config.alpha)):
        raise RobustmixError(f"--alpha must be >= 0 (0 means no mixing), got {config.alpha}")
    if config.role not in ROLES:
        raise RobustmixError(f"--role must be one of {', '.join(ROLES)}, got {config.role!r}")
    get_method(config.method)


def make_model(config: TrainConfig, data: Dataset) -> nn.Module:
    c, h, _ = data.input_shape
    return build_model(
        config.model, in_channels=c, num_classes=data.num_classes, image_size=h, mean=data.mean, std=data.std
    )


def train(
    config: TrainConfig,
    *,
    data: Dataset | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> tuple[nn.Module, dict]:
    """Train one model. Returns the model (in eval mode, on the CPU) and its metadata.

    `on_step` (optional) receives {epoch, step, steps, loss} after each optimiser step: the CLI
    draws its progress bar from it; the library itself never prints.
    """
    validate(config)
    method = get_method(config.method)
    device = resolve_device(config.device)
    data = (data or load_dataset(config.dataset)).to(device)

    torch.manual_seed(config.seed)  # weight initialisation
    gen = torch.Generator().manual_seed(config.seed)  # shuffling and mixing
    model = make_model(config, data).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
    )
    n = data.x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))

    started = time.perf_counter()
    history = []
    step = 0
    for epoch in range(config.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        for idx in shuffled_batches(n, config.batch_size, gen):
            idx = idx.to(device)
            x, y = pixels(data.x_train[idx]), data.y_train[idx]
            x_mix, y_soft = method(x, y, num_classes=data.num_classes, alpha=config.alpha, gen=gen)
            loss = soft_cross_entropy(model(x_mix), y_soft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.detach() * idx.numel()
            if on_step is not None:
                on_step({"epoch": epoch + 1, "step": step, "steps": total, "loss": loss.item()})
        history.append({"epoch": epoch + 1, "train_loss": float(loss_sum) / n})
    seconds = time.perf_counter() - started

    model.eval()
    logits = predict_logits(model, data.x_test)
    meta = {
        "format": "robustmix-checkpoint/1",
        "robustmix_version": __version__,
        "name": config.run_name,
        "role": config.role,
        "model": config.model,
        "dataset": config.dataset,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "method": config.method,
        "alpha": config.alpha if config.method != "erm" else 0.0,
        "seed": config.seed,
        "epochs": config.epochs,
        "clean_top1_err": topk_error(logits, data.y_test, 1),
        "clean_top5_err": topk_error(logits, data.y_test, 5),
        "train_seconds": round(seconds, 3),
        "train_images_per_second": round(n * config.epochs / max(seconds, 1e-9), 1),
        "device": str(device),
        "torch_version": torch.__version__,
        "history": history,
        "config": config.to_dict(),
    }
    return model.cpu(), meta
