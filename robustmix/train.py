"""train(config) -> (model, metadata): the epoch loop, seeded, resumable and reproducible on CPU."""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import __version__, distributed
from .config import ROLES, SCHEDULES, TrainConfig
from .data import AUGMENTS, Dataset, augment_batch, load_dataset, pixels, prepare_dataset, shuffled_batches
from .data.sources import default_augment
from .devices import resolve_device
from .errors import RobustmixError
from .methods import apply_method, get_method, method_options, network_passes, soft_cross_entropy
from .metrics import predict_logits, topk_error
from .models import build_model, model_options
from .resume import config_mismatch, load_state, restore_state, save_state


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
    if config.schedule not in SCHEDULES:
        raise RobustmixError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")
    if config.augment != "auto" and config.augment not in AUGMENTS:
        raise RobustmixError(f"--augment must be auto or one of {', '.join(AUGMENTS)}, got {config.augment!r}")
    if not 0.0 <= config.label_noise <= 1.0:
        raise RobustmixError(f"--label-noise must be a fraction in [0, 1], got {config.label_noise}")
    if not 0.0 <= config.dropout < 1.0:
        raise RobustmixError(f"--dropout must be in [0, 1), got {config.dropout}")
    if not 0.0 <= config.warmup < 1.0:
        raise RobustmixError(f"--warmup must be a fraction in [0, 1), got {config.warmup}")
    get_method(config.method, config.method_options)


def make_model(config: TrainConfig, data: Dataset) -> nn.Module:
    c, h, _ = data.input_shape
    return build_model(config.model, in_channels=c, num_classes=data.num_classes, image_size=h, mean=data.mean,
                       std=data.std, **options_of(config))


def options_of(config: TrainConfig) -> dict:
    return model_options(width=config.width, depth=config.depth, dropout=config.dropout)


def lr_factor(step: int, *, config: TrainConfig, steps_per_epoch: int) -> float:
    """The lr multiplier after `step` optimiser steps (a pure function, so resuming needs only the step)."""
    total = steps_per_epoch * config.epochs
    if config.schedule == "step":  # the paper's: × lr_decay after each milestone epoch
        epoch = step // steps_per_epoch
        return config.lr_decay ** sum(epoch >= m for m in config.milestones)
    if config.schedule == "onecycle":  # triangular: linear up over `warmup` of the steps, then linear to 0
        peak = max(1, round(config.warmup * total))
        return (step + 1) / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    return 0.5 * (1 + math.cos(math.pi * step / total))


def load_training_data(config: TrainConfig, data: Dataset | None) -> tuple[Dataset, dict]:
    if data is None:
        data = load_dataset(config.dataset, data_dir=config.data_dir or None, download=config.download,
                            image_size=config.image_size, cache_dir=config.cache_dir or None)
    return prepare_dataset(data, train_subset=config.train_subset, test_subset=config.test_subset,
                           label_noise=config.label_noise, seed=config.seed)


def train(
    config: TrainConfig,
    *,
    data: Dataset | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_epoch: Callable[[dict, list[dict]], None] | None = None,
    state_path: str | Path | None = None,
    resume: bool = False,
) -> tuple[nn.Module, dict]:
    """Train one model. Returns the model (in eval mode, on the CPU) and its metadata.

    `on_step` receives {epoch, epochs, step, steps, loss, acc, images_per_second} after each optimiser
    step, `on_epoch` (row, history) after each epoch: the CLI draws progress bars and writes logs from
    them; the library itself never prints. With `state_path`, the resume state is written there after
    every epoch; with `resume=True` too, training continues from it (if present) and ends bit-identical
    (on CPU) to an uninterrupted run.
    """
    validate(config)
    method = get_method(config.method, config.method_options)
    augment = config.augment if config.augment != "auto" else default_augment(config.dataset)
    world, device = distributed.init(resolve_device(config.device))
    if world.distributed and getattr(method, "needs_model", False):
        raise RobustmixError(f"--method {config.method} mixes inside the model and does not run under torchrun yet: train it in one process")
    data, data_info = load_training_data(config, data)
    data = data.to(device)

    torch.manual_seed(config.seed)  # weight initialisation (and dropout)
    gen = torch.Generator().manual_seed(config.seed)  # shuffling, augmentation and mixing
    model = make_model(config, data).to(device)
    net = model  # what the batches go through: DistributedDataParallel under torchrun
    if world.distributed:
        # Batch statistics over the global batch, so N ranks train like one process.
        model = distributed.sync_batchnorm(model, device)
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0)
    n = data.x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, config=config, steps_per_epoch=steps_per_epoch))

    history: list[dict] = []
    start = 0
    if resume and state_path is not None and Path(state_path).is_file():
        tensors, info = load_state(state_path)
        differ = config_mismatch(info["config"], config.to_dict())
        if differ:
            raise RobustmixError(f"{state_path}: saved with different settings ({', '.join(differ)}): use the same flags, or --overwrite to start again")
        restore_state(tensors, info, model=model, opt=opt, sched=sched, gen=gen)
        history, start = info["history"], info["epoch"]

    step = start * steps_per_epoch
    for epoch in range(start, config.epochs):
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = 0
        seen = 0
        for idx in shuffled_batches(n, config.batch_size, gen):
            idx = idx.to(device)
            x = pixels(augment_batch(augment, data.x_train[idx], gen))
            y = data.y_train[idx]
            mix_gen = gen
            if world.distributed:
                # Every rank drew the same global batch (same gen); each keeps its shard. Mixing draws
                # from a per-step generator (same seed on every rank, so the same lam), leaving gen in
                # step on every rank however large each shard is, and consumed exactly as in one
                # process; mixup partners come from within the rank's shard.
                mix_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
                part = distributed.shard(idx.numel(), world)
                global_n, x, y, idx = idx.numel(), x[part], y[part], idx[part]
            logits, y_soft = apply_method(method, net, x, y, num_classes=data.num_classes, alpha=config.alpha, gen=mix_gen)
            loss = soft_cross_entropy(logits, y_soft)
            loss_sum += loss.detach().double().cpu() * idx.numel()
            if world.distributed:
                # DDP averages gradients over ranks; weighting each rank's mean by its share of the
                # global batch makes that average the global batch's mean loss exactly.
                loss = loss * (idx.numel() * world.size / global_n)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            seen += idx.numel()
            # Accuracy against the dominant target (the true label for erm).
            correct += int((logits.detach().argmax(1) == y_soft.argmax(1)).sum())
            if on_step is not None:
                on_step({"epoch": epoch + 1, "epochs": config.epochs, "step": step,
                         "steps": steps_per_epoch * config.epochs, "loss": loss.item(), "acc": 100.0 * correct / seen,
                         "images_per_second": seen / max(time.perf_counter() - started, 1e-9)})
        seconds = time.perf_counter() - started
        if world.distributed:  # epoch statistics over every rank's shard
            totals = distributed.sum_over_ranks(torch.tensor([float(loss_sum), float(correct)], device=device))
            loss_sum, correct = totals[0].cpu(), int(totals[1])
        test_err = topk_error(predict_logits(model, data.x_test), data.y_test, 1)
        row = {"epoch": epoch + 1, "train_loss": float(loss_sum) / n, "train_acc": 100.0 * correct / n,
               "test_err": test_err, "lr": opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
               "images_per_second": round(n / max(seconds, 1e-9), 1),
               "network_passes": step * network_passes(method)}  # cumulative forward+backward passes of a batch
        history.append(row)
        if state_path is not None and world.is_main:
            save_state(state_path, model=model, opt=opt, sched=sched, gen=gen, epoch=epoch + 1,
                       config=config.to_dict(), history=history)
        if on_epoch is not None:
            on_epoch(row, history)

    model.eval()
    logits = predict_logits(model, data.x_test)
    seconds = sum(r["seconds"] for r in history)
    meta = {
        "format": "robustmix-checkpoint/1",
        "robustmix_version": __version__,
        "name": config.run_name,
        "role": config.role,
        "model": config.model,
        "model_options": options_of(config),
        "dataset": config.dataset,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "method": config.method,
        "alpha": config.alpha if config.method != "erm" else 0.0,
        "method_options": method_options(method),
        "network_passes_per_batch": network_passes(method),
        "seed": config.seed,
        "epochs": config.epochs,
        "recipe": config.recipe,
        "augment": augment,
        "label_noise": config.label_noise,
        "data": data_info,
        "clean_top1_err": topk_error(logits, data.y_test, 1),
        "clean_top5_err": topk_error(logits, data.y_test, 5),
        "train_seconds": round(seconds, 3),
        "train_images_per_second": round(n * len(history) / max(seconds, 1e-9), 1),
        "resumed_at_epoch": start,
        "device": str(device),
        "world_size": world.size,
        "torch_version": torch.__version__,
        "history": history,
        "config": config.to_dict(),
    }
    return model.cpu(), meta
