"""train(config) -> (model, metadata): the epoch loop, seeded, resumable and reproducible on CPU.

`train` reads as its steps: build the data, the model, the optimiser and its schedule; resume;
run the epochs; evaluate; make the checkpoint metadata (`checkpoint.checkpoint_meta`). Each step
is a function below that can be read (and changed) on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .checkpoint import checkpoint_meta
from .config import TrainConfig, config_mismatch
from .data import Dataset, augment_batch, load_dataset, pixels, prepare_dataset, shuffled_batches
from .data.sources import default_augment
from .devices import resolve_device
from .errors import RobustmixError
from .methods import Method, apply_method, get_method, soft_cross_entropy
from .metrics import predict_logits, topk_error
from .models import build_model, model_options
from .resume import load_state, restore_state, save_state


@dataclass
class Trainer:
    """What one training run works with, built by `train` step by step."""

    config: TrainConfig
    world: distributed.World
    device: torch.device
    data: Dataset
    method: Method
    augment: str
    model: nn.Module  # the model being trained (and saved)
    net: nn.Module  # what the batches go through: DistributedDataParallel under torchrun
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator  # shuffling, augmentation and mixing
    steps_per_epoch: int


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
    config.validate()
    world, device = distributed.init(resolve_device(config.device))
    method = get_method(config.method)
    if world.distributed and getattr(method, "needs_model", False):
        raise RobustmixError(f"method {config.method} mixes inside the model and does not run under torchrun yet: train it in one process")
    data, data_info = build_data(config, data, device)
    model, net = build_network(config, data, world, device)
    opt, sched, steps_per_epoch = build_optimiser(config, model, data.x_train.shape[0])
    t = Trainer(config, world, device, data, method, augment_of(config), model, net, opt, sched,
                torch.Generator().manual_seed(config.seed), steps_per_epoch)
    history, start = resume_run(t, state_path) if resume else ([], 0)
    for epoch in range(start, config.epochs):
        history.append(run_epoch(t, epoch, on_step))
        if state_path is not None and world.is_main:
            save_state(state_path, model=model, opt=opt, sched=sched, gen=t.gen, epoch=epoch + 1,
                       config=config.to_dict(), history=history)
        if on_epoch is not None:
            on_epoch(history[-1], history)
    model.eval()
    meta = checkpoint_meta(config, data, data_info=data_info, augment=t.augment, clean_errors=clean_errors(model, data),
                           history=history, resumed_at_epoch=start, device=device, world_size=world.size)
    return model.cpu(), meta


def augment_of(config: TrainConfig) -> str:
    """The batch augmentation: the config's, or for "auto" the data set's default (data.sources)."""
    return config.augment if config.augment != "auto" else default_augment(config.dataset)


def build_data(config: TrainConfig, data: Dataset | None, device: torch.device) -> tuple[Dataset, dict]:
    """The data set (loaded as the config says unless given), its subsets and label noise, on `device`;
    and what was done to it (for the metadata)."""
    if data is None:
        data = load_dataset(config.dataset, data_dir=config.data_dir or None, download=config.download,
                            image_size=config.image_size, cache_dir=config.cache_dir or None)
    data, info = prepare_dataset(data, train_subset=config.train_subset, test_subset=config.test_subset,
                                 label_noise=config.label_noise, seed=config.seed)
    return data.to(device), info


def make_model(config: TrainConfig, data: Dataset) -> nn.Module:
    c, h, _ = data.input_shape
    return build_model(config.model, in_channels=c, num_classes=data.num_classes, image_size=h, mean=data.mean,
                       std=data.std, **model_options(width=config.width, depth=config.depth, dropout=config.dropout))


def build_network(config: TrainConfig, data: Dataset, world: distributed.World, device: torch.device
                  ) -> tuple[nn.Module, nn.Module]:
    """(model, net): the freshly initialised model (seeded) on `device`, and what the batches go
    through (the model, or DistributedDataParallel around it under torchrun)."""
    torch.manual_seed(config.seed)  # weight initialisation (and dropout)
    model = make_model(config, data).to(device)
    if not world.distributed:
        return model, model
    # Batch statistics over the global batch, so N ranks train like one process.
    model = distributed.sync_batchnorm(model, device)
    return model, DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def build_optimiser(config: TrainConfig, model: nn.Module, n: int):
    """(SGD optimiser, per-step lr schedule, steps per epoch) for n training examples."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0)
    steps_per_epoch = math.ceil(n / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, config=config, steps_per_epoch=steps_per_epoch))
    return opt, sched, steps_per_epoch


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


def resume_run(t: Trainer, state_path: str | Path | None) -> tuple[list[dict], int]:
    """(history, first epoch to run): from the resume state at `state_path` if there is one (the
    model, optimiser, schedule and generators restored), else from scratch."""
    if state_path is None or not Path(state_path).is_file():
        return [], 0
    tensors, info = load_state(state_path)
    differ = config_mismatch(info["config"], t.config.to_dict())
    if differ:
        raise RobustmixError(f"{state_path}: saved with different settings ({', '.join(differ)}): use the same flags, or --overwrite to start again")
    restore_state(tensors, info, model=t.model, opt=t.opt, sched=t.sched, gen=t.gen)
    return info["history"], info["epoch"]


def run_epoch(t: Trainer, epoch: int, on_step: Callable[[dict], None] | None) -> dict:
    """One pass over the shuffled training set; returns the epoch's log row (loss, accuracy, test
    error, lr, time, throughput)."""
    config, n = t.config, t.data.x_train.shape[0]
    t.model.train()
    started = time.perf_counter()
    loss_sum, correct, seen = torch.zeros((), dtype=torch.float64), 0, 0
    step = epoch * t.steps_per_epoch
    for idx in shuffled_batches(n, config.batch_size, t.gen):
        loss, hits, size = train_step(t, idx.to(t.device), step)
        step += 1
        loss_sum += loss.detach().double().cpu() * size
        correct, seen = correct + hits, seen + size
        if on_step is not None:
            on_step({"epoch": epoch + 1, "epochs": config.epochs, "step": step,
                     "steps": t.steps_per_epoch * config.epochs, "loss": loss.item(), "acc": 100.0 * correct / seen,
                     "images_per_second": seen / max(time.perf_counter() - started, 1e-9)})
    seconds = time.perf_counter() - started
    if t.world.distributed:  # epoch statistics over every rank's shard
        totals = distributed.sum_over_ranks(torch.tensor([float(loss_sum), float(correct)], device=t.device))
        loss_sum, correct = totals[0].cpu(), int(totals[1])
    test_err = topk_error(predict_logits(t.model, t.data.x_test), t.data.y_test, 1)
    return {"epoch": epoch + 1, "train_loss": float(loss_sum) / n, "train_acc": 100.0 * correct / n,
            "test_err": test_err, "lr": t.opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
            "images_per_second": round(n / max(seconds, 1e-9), 1)}


def clean_errors(model: nn.Module, data: Dataset) -> tuple[float, float]:
    """(top-1, top-5) error in % of the model on the test set."""
    logits = predict_logits(model, data.x_test)
    return topk_error(logits, data.y_test, 1), topk_error(logits, data.y_test, 5)


def train_step(t: Trainer, idx: torch.Tensor, step: int) -> tuple[torch.Tensor, int, int]:
    """One optimiser step on the batch `idx` (global step `step`): (the batch's mean loss, examples
    whose prediction is the dominant target, examples in this rank's batch)."""
    x = pixels(augment_batch(t.augment, t.data.x_train[idx], t.gen))
    y = t.data.y_train[idx]
    mix_gen = t.gen
    if t.world.distributed:
        # Every rank drew the same global batch (same gen); each keeps its shard. Mixing draws from a
        # per-step generator (same seed on every rank, so the same lam), leaving gen in step on every
        # rank however large each shard is, and consumed exactly as in one process; mixup partners
        # come from within the rank's shard.
        mix_gen = torch.Generator().manual_seed(t.config.seed * 1_000_003 + step)
        part = distributed.shard(idx.numel(), t.world)
        global_n, x, y, idx = idx.numel(), x[part], y[part], idx[part]
    logits, y_soft = apply_method(t.method, t.net, x, y, num_classes=t.data.num_classes, alpha=t.config.alpha, gen=mix_gen)
    loss = soft_cross_entropy(logits, y_soft)
    scaled = loss
    if t.world.distributed:
        # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
        # batch makes that average the global batch's mean loss exactly.
        scaled = loss * (idx.numel() * t.world.size / global_n)
    t.opt.zero_grad(set_to_none=True)
    scaled.backward()
    t.opt.step()
    t.sched.step()
    # Accuracy against the dominant target (the true label for erm).
    return loss, int((logits.detach().argmax(1) == y_soft.argmax(1)).sum()), idx.numel()
