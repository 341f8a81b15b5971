"""`robustmix train`: train one checkpoint (safetensors + JSON metadata)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import checkpoint_folder, save_checkpoint
from ..config import ROLES, TrainConfig
from ..data import DATASETS
from ..errors import RobustmixError
from ..methods import METHODS
from ..models import MODELS
from ..train import train
from .common import bar, finite_float, nonneg_float, positive_int, say

HELP = "train one model (ERM or mixup) and write its checkpoint folder"
D = TrainConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=D.dataset, help=f"data set: {', '.join(DATASETS)} (default {D.dataset})")
    p.add_argument("--model", default=D.model, help=f"architecture: {', '.join(MODELS)} (default {D.model})")
    p.add_argument("--method", default=D.method, help=f"training method: {', '.join(METHODS)} (default {D.method})")
    p.add_argument("--alpha", type=nonneg_float, default=D.alpha, help=f"mixup Beta(alpha, alpha) parameter (default {D.alpha}); ignored by erm")
    p.add_argument("--epochs", type=positive_int, default=D.epochs, help=f"training epochs (default {D.epochs})")
    p.add_argument("--batch-size", type=positive_int, default=D.batch_size, help=f"batch size (default {D.batch_size})")
    p.add_argument("--lr", type=finite_float, default=D.lr, help=f"peak SGD learning rate, cosine schedule (default {D.lr})")
    p.add_argument("--weight-decay", type=nonneg_float, default=D.weight_decay, help=f"weight decay (default {D.weight_decay})")
    p.add_argument("--seed", type=int, default=D.seed, help=f"seed for initialisation, shuffling and mixing (default {D.seed})")
    p.add_argument("--role", choices=ROLES, default=D.role, help="target (attacked) or surrogate (crafts black-box examples); default target")
    p.add_argument("--device", default=D.device, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--out", type=Path, default=None, help="checkpoint folder (default runs/<dataset>-<model>-<method>-s<seed>-<role>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out (never done otherwise)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset,
        model=args.model,
        method=args.method,
        alpha=args.alpha,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        role=args.role,
        device=args.device,
    )


def refuse_overwrite(out: Path) -> None:
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            return
        raise RobustmixError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")


def train_and_save(config: TrainConfig, out: Path, *, overwrite: bool = False) -> dict:
    """Train, save to `out`, return the metadata. Refuses to replace `out` unless `overwrite`."""
    if not overwrite:
        refuse_overwrite(out)
    elif out.exists() and not out.is_dir():
        raise RobustmixError(f"{out} exists and is not a folder: choose another --out")
    progress = bar(total=0, desc=f"train {config.run_name}")

    def on_step(s: dict) -> None:
        if progress.total != s["steps"]:
            progress.total = s["steps"]
        progress.update(1)
        progress.set_postfix(epoch=s["epoch"], loss=f"{s['loss']:.3f}", refresh=False)

    try:
        model, meta = train(config, on_step=on_step)
    finally:
        progress.close()
    save_checkpoint(out, model, meta)
    checkpoint_folder(out)
    return meta


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = args.out or Path("runs") / config.run_name
    meta = train_and_save(config, out, overwrite=args.overwrite)
    say(
        f"wrote {out}: {meta['method']} {meta['model']} on {meta['dataset']}, seed {meta['seed']}, "
        f"clean top-1 error {meta['clean_top1_err']:.2f}% ({meta['train_seconds']:.1f} s)"
    )
    print(out)
    return 0
