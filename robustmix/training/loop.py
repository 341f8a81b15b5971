"""train(config) -> (model, metadata): the epoch loop, seeded, resumable and reproducible on CPU.

`train` reads as its steps: build the data, the precision (amp, memory layout), the model (with
its data-initialised stem, if it has one), the optimiser and its schedule (all in `build`); resume; run the epochs
(each step: augment, autocast forward, loss, backward, drop the gradients of parameters whose
training has ended, optimiser step, lookahead averaging); evaluate; make the checkpoint metadata
(`checkpoint.checkpoint_meta`). Each step is a function below that can be read (and changed) on
its own. The fast recipe's pieces live in `optim` (decoupled SGD, lookahead, label smoothing),
`precision` (bf16 autocast, channels_last) and `models.whiten` (the whitening stem).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..data import Dataset, augment_batch, pixels, shuffled_batches
from ..models import scale_head
from ..models.predict import predict_logits, topk_error
from ..runtime import distributed
from ..runtime.devices import resolve_device
from ..runtime.errors import RobustmixError
from . import adversarial
from . import guard as overfitting
from .build import augment_of, build_data, build_network, build_optimiser, build_precision
from .build import lr_factor  # noqa: F401  (importable from here too: robustmix 0.1's `robustmix.train` had it)
from .config import TrainConfig, config_mismatch
from .meta import checkpoint_meta
from .methods import (
    Method,
    apply_method,
    get_method,
    network_passes,
    soft_cross_entropy,
)
from .optim import Lookahead, ema_model, loss_scale, smooth_labels
from .precision import (
    autocast,
    to_layout,
)
from .resume import load_state, restore_state, save_state

PROGRESS_SECONDS = 0.5  # on_step's loss/accuracy are read from the device at most this often


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
    amp: str = "none"  # resolved: "none" or "bf16"
    channels_last: bool = False  # resolved
    lookahead: Lookahead | None = None
    adv: adversarial.Setting | None = None  # adversarial training, resolved (None: none)
    ema: nn.Module | None = None  # the weight average (torch.optim.swa_utils.AveragedModel), if the config asks
    guard: tuple[torch.Tensor, torch.Tensor] | None = None  # the held-out batch the guard measures PGD accuracy on

    @property
    def evaluated(self) -> nn.Module:
        """The model that is evaluated and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model


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

    Examples:
        >>> from robustmix import TrainConfig, train
        >>> model, meta = train(TrainConfig(dataset="digits", method="mixup", alpha=1.0, epochs=1, seed=0, device="cpu"))
        >>> meta["method"], meta["epochs"], model.training
        ('mixup', 1, False)
        >>> 0 <= meta["clean_top1_err"] <= 100                   # percent, on the 360 digits test images
        True
    """
    config.validate()
    world, device = distributed.init(resolve_device(config.device))
    method = get_method(config.method, config.method_options)
    if world.distributed and getattr(method, "needs_model", False):
        raise RobustmixError(f"method {config.method} mixes inside the model and does not run under torchrun yet: train it in one process")
    adv = adversarial.resolve(config)
    data, data_info = build_data(config, data, device)
    data, guard, data_info = overfitting.hold_out(data, data_info, adv, config.seed)
    amp, channels_last = build_precision(config, device)
    model, net, stem = build_network(config, data, world, device, channels_last)
    opt, sched, steps_per_epoch = build_optimiser(config, model, data.x_train.shape[0])
    t = Trainer(config, world, device, data, method, augment_of(config), model, net, opt, sched,
                torch.Generator().manual_seed(config.seed), steps_per_epoch, amp, channels_last,
                Lookahead() if config.lookahead_after else None, adv, ema_model(model, config.ema_decay) if config.ema_decay else None,
                guard)
    history, start = resume_run(t, state_path) if resume else ([], 0)
    last_good, warnings = overfitting.snapshot(t) if guard is not None else None, []
    for epoch in range(start, config.epochs):
        history.append(run_epoch(t, epoch, on_step))
        stop = (why := overfitting.collapse(history) if guard is not None else None) is not None
        if stop:  # catastrophic overfitting: back to the last good epoch, and no further
            warnings.append(overfitting.roll_back(t, last_good, history, why))
        else:
            last_good = overfitting.snapshot(t) if guard is not None else None
            if state_path is not None and world.is_main:
                save_state(state_path, model=model, opt=opt, sched=sched, gen=t.gen, epoch=epoch + 1,
                           config=config.to_dict(), history=history, lookahead=t.lookahead, ema=t.ema)
        if on_epoch is not None:
            on_epoch(history[-1], history)
        if stop:
            break
    final = scale_head(t.evaluated.eval().to(memory_format=torch.contiguous_format), config.head_scale)  # usual layout; a planted mask
    meta = checkpoint_meta(config, data, data_info=data_info, augment=t.augment, clean_errors=clean_errors(final, data),
                           history=history, resumed_at_epoch=start, device=device, world_size=world.size,
                           amp=amp, channels_last=channels_last, stem=stem, adversarial=adv, warnings=warnings)
    return final.cpu(), meta


def resume_run(t: Trainer, state_path: str | Path | None) -> tuple[list[dict], int]:
    """(history, first epoch to run): from the resume state at `state_path` if there is one (the
    model, optimiser, schedule and generators restored), else from scratch."""
    if state_path is None or not Path(state_path).is_file():
        return [], 0
    tensors, info = load_state(state_path)
    differ = config_mismatch(info["config"], t.config.to_dict())
    if differ:
        raise RobustmixError(f"{state_path}: saved with different settings ({', '.join(differ)}): use the same flags, or --overwrite to start again")
    restore_state(tensors, info, model=t.model, opt=t.opt, sched=t.sched, gen=t.gen, lookahead=t.lookahead, ema=t.ema)
    return info["history"], info["epoch"]


def run_epoch(t: Trainer, epoch: int, on_step: Callable[[dict], None] | None) -> dict:
    """One pass over the shuffled training set; returns the epoch's log row (loss, accuracy, test
    error, lr, time, throughput)."""
    config, n = t.config, t.data.x_train.shape[0]
    t.model.train()
    started = shown = time.perf_counter()
    # Running sums stay on the device (reading waits for it): on_step reads at most every PROGRESS_SECONDS.
    loss_sum = torch.zeros((), dtype=torch.float64, device=t.device)
    correct = torch.zeros((), dtype=torch.int64, device=t.device)
    seen, shown_values = 0, None
    step = epoch * t.steps_per_epoch
    for idx in shuffled_batches(n, config.batch_size, t.gen):
        loss, hits, size = train_step(t, idx.to(t.device), step)
        step += 1
        average_weights(t, epoch, step)
        if t.ema is not None:
            t.ema.update_parameters(t.model)
        loss_sum += loss.detach().double() * size
        correct += hits
        seen += size
        if on_step is not None:
            now = time.perf_counter()
            if shown_values is None or now - shown >= PROGRESS_SECONDS or step % t.steps_per_epoch == 0:
                shown, shown_values = now, {"loss": loss.item(), "acc": 100.0 * int(correct) / seen}
            on_step({"epoch": epoch + 1, "epochs": config.epochs, "step": step, "steps": t.steps_per_epoch * config.epochs,
                     **shown_values, "images_per_second": seen / max(now - started, 1e-9)})
    if t.lookahead is not None:
        t.lookahead.end_epoch(t.model)
    seconds = time.perf_counter() - started
    loss_sum, correct = loss_sum.cpu(), int(correct)
    if t.world.distributed:  # epoch statistics over every rank's shard
        totals = distributed.sum_over_ranks(torch.tensor([float(loss_sum), float(correct)], device=t.device))
        loss_sum, correct = totals[0].cpu(), int(totals[1])
    test_err = topk_error(predict_logits(t.evaluated, t.data.x_test), t.data.y_test, 1)
    row = {"epoch": epoch + 1, "train_loss": float(loss_sum) / n, "train_acc": 100.0 * correct / n,
           "test_err": test_err, "lr": t.opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
           "images_per_second": round(n / max(seconds, 1e-9), 1),
           # cumulative forward+backward passes of a batch (adversarial training: crafting steps included)
           "network_passes": step * adversarial.passes(t.adv, network_passes(t.method))}
    if t.guard is not None:
        row.update(overfitting.check(t.model, *t.guard, t.adv, amp=t.amp))
    return row


def clean_errors(model: nn.Module, data: Dataset) -> tuple[float, float]:
    """(top-1, top-5) error in % of the model on the test set."""
    logits = predict_logits(model, data.x_test)
    return topk_error(logits, data.y_test, 1), topk_error(logits, data.y_test, 5)


def average_weights(t: Trainer, epoch: int, step: int) -> None:
    """Lookahead (if the config asks for it) after optimiser step `step` (1-based), from epoch
    `lookahead_after` on."""
    if t.lookahead is not None and epoch >= t.config.lookahead_after:
        t.lookahead.after_step(t.model, step, t.steps_per_epoch * t.config.epochs)


def drop_finished_gradients(t: Trainer, epoch: int) -> None:
    """Parameters trained only in the first epochs (WhitenCNN's stem bias, `whiten_bias_epochs`) lose
    their gradient afterwards, so SGD skips them (no step, no decay): as requires_grad=False would,
    but without changing the parameter set DistributedDataParallel registered."""
    if epoch >= t.config.whiten_bias_epochs:
        for p in getattr(t.model, "early_parameters", list)():
            p.grad = None


def train_step(t: Trainer, idx: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One optimiser step on the batch `idx` (global step `step`): (the batch's mean loss, examples
    whose prediction is the dominant target (a device tensor), examples in this rank's batch)."""
    epoch = step // t.steps_per_epoch
    x = augment_batch(t.augment, t.data.x_train[idx], t.gen, idx=idx, epoch=epoch, seed=t.config.seed)
    x = to_layout(pixels(x), t.channels_last)
    y = t.data.y_train[idx]
    global_n = idx.numel()
    mix_gen = t.gen
    if t.world.distributed:
        # Every rank drew the same global batch (same gen); each keeps its shard. Mixing draws from a
        # per-step generator (same seed on every rank, so the same lam), leaving gen in step on every
        # rank however large each shard is, and consumed exactly as in one process; mixup partners
        # come from within the rank's shard.
        mix_gen = torch.Generator().manual_seed(t.config.seed * 1_000_003 + step)
        part = distributed.shard(idx.numel(), t.world)
        x, y, idx = x[part], y[part], idx[part]
    if t.adv is not None:  # crafting and loss: robustmix.training.adversarial
        loss, logits, y_soft = adversarial.adversarial_step(
            t.adv, t.method, t.model, t.net, x, y, num_classes=t.data.num_classes, alpha=t.config.alpha, gen=mix_gen,
            amp=t.amp, smoothing=t.config.label_smoothing, layout=partial(to_layout, channels_last=t.channels_last))
    else:
        with autocast(t.device, t.amp):  # bf16 forward (and so backward) when amp says so; weights stay float32
            logits, y_soft = apply_method(t.method, t.net, x, y, num_classes=t.data.num_classes, alpha=t.config.alpha, gen=mix_gen)
        loss = soft_cross_entropy(logits.float(), smooth_labels(y_soft, t.config.label_smoothing))
    scaled = loss
    if t.world.distributed:
        # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
        # batch makes that average the global batch's mean loss exactly.
        scaled = loss * (idx.numel() * t.world.size / global_n)
    if t.config.optimizer != "sgd":  # decoupled SGD expects the loss summed over the (global) batch
        scaled = scaled * loss_scale(t.config.optimizer, global_n)
    t.opt.zero_grad(set_to_none=True)
    scaled.backward()
    drop_finished_gradients(t, epoch)
    t.opt.step()
    t.sched.step()
    # Accuracy against the dominant target (the true label for erm).
    return loss, (logits.detach().argmax(1) == y_soft.argmax(1)).sum(), idx.numel()
