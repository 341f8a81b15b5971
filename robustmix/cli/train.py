"""`robustmix train`: train one checkpoint (safetensors + JSON metadata), resumable, with a per-epoch log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import files
from ..distributed import world_from_env
from ..checkpoint import LEGACY, META, WEIGHTS, checkpoint_folder, save_checkpoint
from ..config import ROLES, SCHEDULES, TrainConfig
from ..data import AUGMENTS, DATASETS, DEFAULT_AUGMENT
from ..data.sources import IMAGEFOLDER
from ..errors import RobustmixError
from ..methods import METHODS
from ..models import MODELS
from ..recipes import RECIPES, resolve_config
from ..train import train
from .common import bar, boolean, finite_float, nonneg_float, nonneg_int, positive_int, say

HELP = "train one model (ERM, mixup, cutmix, manifold mixup, ...) and write its checkpoint folder"
D = TrainConfig()
STATE = "resume.safetensors"
LOG = "log.csv"


def fraction(text: str) -> float:
    v = nonneg_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction in [0, 1]")
    return v


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs (e.g. 100,150)") from None


def auto_augment_help() -> str:
    """What --augment auto chooses, per data set, from the one table that decides it."""
    by_choice: dict[str, list[str]] = {}
    for name, choice in DEFAULT_AUGMENT.items():
        by_choice.setdefault(choice, []).append("imagefolder trees" if name == IMAGEFOLDER else name)
    return "; ".join(f"{choice} for {', '.join(names)}" for choice, names in by_choice.items())


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Every value flag defaults to None: None means "the recipe's value, else TrainConfig's default".
    a = p.add_argument
    a("--recipe", choices=list(RECIPES), default=None, help="start from a recipe: paper-cifar (the paper's CIFAR setup) or cpu-fast (CIFAR-10 on 2 CPU cores in minutes); explicit flags override it")
    a("--dataset", default=None, help=f"data set: {', '.join(DATASETS)} or imagefolder:ROOT (ROOT/train/<class>/*, ROOT/test/<class>/*) (default {D.dataset})")
    a("--data-dir", default=None, help="folder of the torchvision data sets (default ./data)")
    a("--download", action="store_true", default=None, help="download a torchvision data set into --data-dir if missing (needs network)")
    a("--cache-dir", default=None, help="folder for the imagefolder decode cache (default ROOT/.robustmix-cache)")
    a("--image-size", type=positive_int, default=None, help="resize images to N×N (default: the data's own size)")
    a("--train-subset", type=nonneg_int, default=None, help="train on a stratified, seeded subset of N images (0 = all)")
    a("--test-subset", type=nonneg_int, default=None, help="evaluate on a stratified subset of N test images, the same for every seed (0 = all)")
    a("--label-noise", type=fraction, default=None, help="replace this fraction of training labels with a wrong random label, seeded (paper Table 2)")
    a("--augment", choices=["auto", *AUGMENTS], default=None, help=f"batch augmentation (default auto: {auto_augment_help()}; flips only for data known to be flip-safe)")
    a("--model", default=None, help=f"architecture: {', '.join(MODELS)} (default {D.model})")
    a("--width", type=positive_int, default=None, help="model width (cnn/fast_cnn: first channels; preact_resnet18: 64; wrn28_10: widening factor 10)")
    a("--depth", type=positive_int, default=None, help="model depth (wrn28_10 only: 6n+4, e.g. 10, 16, 28)")
    a("--dropout", type=fraction, default=None, help="dropout probability where the model has dropout (default 0)")
    a("--method", default=None, help=f"training method: {', '.join(METHODS)} (default {D.method})")
    a("--alpha", type=nonneg_float, default=None, help=f"Beta(alpha, alpha) for the mixing methods (default {D.alpha}); ignored by erm")
    a("--epochs", type=positive_int, default=None, help=f"training epochs (default {D.epochs})")
    a("--batch-size", type=positive_int, default=None, help=f"batch size (default {D.batch_size})")
    a("--lr", type=finite_float, default=None, help=f"peak SGD learning rate (default {D.lr})")
    a("--momentum", type=nonneg_float, default=None, help=f"SGD momentum (default {D.momentum})")
    a("--nesterov", type=boolean, default=None, help="Nesterov momentum: true or false (default true)")
    a("--schedule", choices=SCHEDULES, default=None, help=f"lr schedule: cosine, step (× --lr-decay at --milestones), onecycle (default {D.schedule})")
    a("--milestones", type=int_list, default=None, help="step schedule: epochs after which the lr decays, e.g. 100,150")
    a("--lr-decay", type=nonneg_float, default=None, help="step schedule: lr factor at each milestone (default 0.1)")
    a("--warmup", type=fraction, default=None, help="onecycle: fraction of steps rising to the peak lr (default 0.25)")
    a("--weight-decay", type=nonneg_float, default=None, help=f"weight decay (default {D.weight_decay})")
    a("--seed", type=int, default=None, help=f"seed for initialisation, subsets, label noise, shuffling, augmentation and mixing (default {D.seed})")
    a("--role", choices=ROLES, default=None, help="target (attacked) or surrogate (crafts black-box examples); default target")
    a("--device", default=None, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    a("--out", type=Path, default=None, help="checkpoint folder, named without a file suffix (default runs/<dataset>-<model>-<method>-s<seed>-<role>)")
    a("--overwrite", action="store_true", help="replace an existing checkpoint at --out (never done otherwise)")
    a("--resume", action="store_true", help=f"continue an interrupted run from its last finished epoch ({STATE} in --out)")
    a("--tensorboard", action="store_true", help="also write TensorBoard scalars to <out>/tensorboard")


FIELDS = ("dataset", "data_dir", "download", "cache_dir", "image_size", "train_subset", "test_subset", "label_noise",
          "augment", "model", "width", "depth", "dropout", "method", "alpha", "epochs", "batch_size", "lr", "momentum",
          "nesterov", "schedule", "milestones", "lr_decay", "warmup", "weight_decay", "seed", "role", "device")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return resolve_config(args.recipe, **{f: getattr(args, f) for f in FIELDS})


def refuse_overwrite(out: Path, resume: bool = False) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise RobustmixError(f"{out} exists and is not a folder: choose another --out")
    finished = (out / "meta.json").is_file()
    if resume and not finished:
        return
    if finished:
        raise RobustmixError(f"{out} already holds a finished checkpoint: pass --overwrite to replace it, or choose another --out")
    if (out / STATE).is_file():
        raise RobustmixError(f"{out} holds an interrupted run: pass --resume to continue it, --overwrite to restart, or another --out")
    raise RobustmixError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")


def epoch_logger(out: Path, tensorboard: bool):
    """on_epoch callback: rewrite <out>/log.csv (atomically) and optionally add TensorBoard scalars."""
    writer = None
    if tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RobustmixError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        writer = SummaryWriter(str(out / "tensorboard"))

    def on_epoch(row: dict, history: list[dict]) -> None:
        import pandas as pd

        files.write_text(out / LOG, pd.DataFrame(history).to_csv(index=False))
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, row["epoch"])
            writer.flush()

    return on_epoch, writer


class Progress:
    """What the CLI shows and logs while training: a progress bar per epoch, a line per epoch on a
    terminal, and the epoch log (<out>/log.csv, optionally TensorBoard scalars)."""

    def __init__(self, out: Path, epochs: int, tensorboard: bool):
        self.epochs, self.bar = epochs, None
        self.log_epoch, self.writer = epoch_logger(out, tensorboard)

    def on_step(self, s: dict) -> None:
        if self.bar is None:
            self.bar = bar(total=s["steps"] // s["epochs"], desc=f"epoch {s['epoch']}/{s['epochs']}")
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{s['loss']:.3f}", acc=f"{s['acc']:.1f}%", img_s=f"{s['images_per_second']:.0f}", refresh=False)

    def on_epoch(self, row: dict, history: list[dict]) -> None:
        self.close_bar()
        self.log_epoch(row, history)
        if sys.stderr.isatty():
            say(f"epoch {row['epoch']}/{self.epochs}: train loss {row['train_loss']:.3f}, acc {row['train_acc']:.1f}%, "
                f"test error {row['test_err']:.2f}%, {row['images_per_second']:.0f} img/s")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_bar()
        if self.writer is not None:
            self.writer.close()


def train_and_save(config: TrainConfig, out: Path, *, overwrite: bool = False, resume: bool = False,
                   tensorboard: bool = False) -> dict:
    """Train, save to `out`, return the metadata. Refuses to replace `out` unless `overwrite` (or `resume`)."""
    if not overwrite:
        refuse_overwrite(out, resume)
    elif out.exists() and not out.is_dir():
        raise RobustmixError(f"{out} exists and is not a folder: choose another --out")
    if overwrite and (out / STATE).is_file() and not resume:
        (out / STATE).unlink()
    if not world_from_env().is_main:  # under torchrun, rank 0 alone logs and writes
        model, meta = train(config, resume=resume, state_path=out / STATE)
        return meta
    progress = Progress(out, config.epochs, tensorboard)
    try:
        model, meta = train(config, on_step=progress.on_step, on_epoch=progress.on_epoch, state_path=out / STATE, resume=resume)
    finally:
        progress.close()
    save_checkpoint(out, model, meta)
    checkpoint_folder(out)
    (out / STATE).unlink(missing_ok=True)  # finished: the checkpoint replaces the resume state
    return meta


def check_out(out: Path) -> None:
    """--out is the checkpoint folder: a name ending like a weights or metadata file is a mistake
    (a folder named erm.safetensors would be written), refused with the folder name to give."""
    if out.suffix in (Path(WEIGHTS).suffix, Path(META).suffix, *LEGACY):
        raise RobustmixError(
            f"--out {out} names a file, but a checkpoint is a folder (it holds {WEIGHTS} and {META}): pass --out {out.with_suffix('')}"
        )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.validate()
    out = args.out or Path("runs") / config.run_name
    check_out(out)
    meta = train_and_save(config, out, overwrite=args.overwrite, resume=args.resume, tensorboard=args.tensorboard)
    if not world_from_env().is_main:
        return 0
    say(
        f"wrote {out}: {meta['method']} {meta['model']} on {meta['dataset']}, seed {meta['seed']}, "
        f"clean top-1 error {meta['clean_top1_err']:.2f}% ({meta['train_seconds']:.1f} s, "
        f"{meta['train_images_per_second']:.0f} img/s)"
    )
    print(out)
    return 0
