"""What a trained model's checkpoint records (`checkpoint_meta`): the full config, the data it
saw, versions, device and processor, and what it measured (clean error, per-epoch history, speed).
Saving and loading the folder: `robustmix.store.checkpoint`."""

from __future__ import annotations

import torch

from ..data import Dataset
from ..models import model_options
from ..runtime.devices import cpu_kernels, host_and_job, processor
from ..runtime.version import __version__
from ..store.checkpoint import FORMAT
from .adversarial import Setting, passes
from .config import TrainConfig
from .methods import get_method, method_options, network_passes


def checkpoint_meta(config: TrainConfig, data: Dataset, *, data_info: dict, augment: str, clean_errors: tuple[float, float],
                    history: list[dict], resumed_at_epoch: int, device: torch.device | str, world_size: int,
                    amp: str = "none", channels_last: bool = False, stem: dict | None = None,
                    adversarial: Setting | None = None, warnings: list[str] = ()) -> dict:
    """The metadata a trained model's checkpoint carries: how it was made (the full config, the
    data it saw, versions, device) and what it measured (clean error, per-epoch history, speed).
    `save_checkpoint` adds the sha256 of the weights."""
    seconds = sum(r["seconds"] for r in history)
    n = data.x_train.shape[0]
    method = get_method(config.method, config.method_options)
    return {
        "format": FORMAT,
        "robustmix_version": __version__,
        "name": config.run_name,
        "role": config.role,
        "model": config.model,
        "model_options": model_options(width=config.width, depth=config.depth, dropout=config.dropout),
        "dataset": config.dataset,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "method": config.method,
        "alpha": config.alpha if config.method != "erm" else 0.0,
        "method_options": method_options(method),  # all of them, defaults included (None: the method has none)
        # forward+backward passes per training batch (adversarial training: its crafting steps included)
        "network_passes_per_batch": passes(adversarial, network_passes(method)),
        "adversarial": adversarial.to_dict() if adversarial is not None else None,  # the resolved setting and its label
        "ema_decay": config.ema_decay,  # > 0: the saved weights are the EMA of the trained ones
        "epochs_trained": len([r for r in history if not r.get("rolled_back")]),
        "warnings": list(warnings),  # e.g. the catastrophic-overfitting guard's roll-back
        "seed": config.seed,
        "epochs": config.epochs,
        "recipe": config.recipe,
        "augment": augment,
        "label_noise": config.label_noise,
        "data": data_info,
        "clean_top1_err": clean_errors[0],
        "clean_top5_err": clean_errors[1],
        "train_seconds": round(seconds, 3),
        "train_images_per_second": round(n * len(history) / max(seconds, 1e-9), 1),
        "resumed_at_epoch": resumed_at_epoch,
        "device": str(device),
        "processor": processor(device),
        "cpu_kernels": cpu_kernels(device),  # AVX2 / AVX512 / ...: the same seed gives other weights on another
        "amp": amp,  # resolved: "none" (float32) or "bf16" (autocast, float32 weights)
        "channels_last": channels_last,
        "recipe_reason": config.recipe_reason,
        "stem": stem or {},  # what a data-initialised stem was computed from (WhitenCNN)
        "world_size": world_size,
        "torch_threads": torch.get_num_threads(),  # CPU results are bit-identical only at the same thread count
        **host_and_job(),  # the machine and the scheduler's job (Slurm, submitit) that finished the training
        "torch_version": torch.__version__,
        "history": history,
        "config": config.to_dict(),
    }
