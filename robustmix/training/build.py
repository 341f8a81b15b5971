"""What a run builds before its first step: the data on its device, the precision (amp, memory layout),
the seeded network (with its data-initialised stem, if it has one, and DistributedDataParallel under
torchrun), and the optimiser with its per-step lr schedule. `loop.train` calls these in that order;
each is a pure function of the config (and the data), so a benchmark can build a run without training it.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import Dataset, load_dataset, pixels, prepare_dataset
from ..data.sources import default_augment
from ..models import build_model, model_options
from ..runtime import distributed
from .config import TrainConfig
from .optim import decoupled_sgd
from .precision import memory_format, resolve_amp, resolve_channels_last

STEM_IMAGES = 5000  # training images a data-initialised stem is computed from (airbench94: 5,000)


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


def build_precision(config: TrainConfig, device: torch.device) -> tuple[str, bool]:
    """(amp, channels_last) resolved for `device`: "none" or "bf16", and the memory layout
    (robustmix.training.precision says where "auto" turns each on and why)."""
    amp = resolve_amp(config.amp, device)
    return amp, resolve_channels_last(config.channels_last, device, amp, config.model)


def build_network(config: TrainConfig, data: Dataset, world: distributed.World, device: torch.device,
                  channels_last: bool = False) -> tuple[nn.Module, nn.Module, dict]:
    """(model, net, stem): the freshly initialised model (seeded) on `device` in its training layout,
    what the batches go through (the model, or DistributedDataParallel around it under torchrun),
    and what `init_stem` did."""
    torch.manual_seed(config.seed)  # weight initialisation (and dropout)
    model = make_model(config, data).to(device)
    stem = init_stem(config, model, data)
    model = model.to(memory_format=memory_format(channels_last))
    if not world.distributed:
        return model, model, stem
    # Batch statistics over the global batch, so N ranks train like one process.
    model = distributed.sync_batchnorm(model, device)
    return model, DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None), stem


def init_stem(config: TrainConfig, model: nn.Module, data: Dataset) -> dict:
    """Models with a data-initialised stem (WhitenCNN's patch whitening) compute it from a seeded
    subset of STEM_IMAGES training images (its own generator: shuffling and mixing are unaffected).
    Returns what was done, for the metadata; the stem's weights are in the checkpoint like any other."""
    if not hasattr(model, "init_from_data"):
        return {}
    n = data.x_train.shape[0]
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))[:STEM_IMAGES]
    return model.init_from_data(pixels(data.x_train[pick.to(data.x_train.device)]))


def build_optimiser(config: TrainConfig, model: nn.Module, n: int):
    """(SGD optimiser, per-step lr schedule, steps per epoch) for n training examples. "decoupled-sgd"
    is airbench's parametrisation (robustmix.training.optim.decoupled_sgd; always Nesterov)."""
    if config.optimizer == "decoupled-sgd":
        opt = decoupled_sgd(model, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum,
                            batch_size=config.batch_size)
    else:
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
    if config.schedule == "triangle":  # airbench94's: 0.2 → 1 at `warmup` of the steps → 0.07 at the end
        peak = int(config.warmup * total)
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return 1.0 - 0.93 * (step - peak) / max(1, total - peak)
    return 0.5 * (1 + math.cos(math.pi * step / total))
