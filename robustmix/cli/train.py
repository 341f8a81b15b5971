"""`robustmix train`: train one checkpoint (safetensors + JSON metadata), resumable, with a per-epoch log."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data import AUGMENTS, DATASETS, DEFAULT_AUGMENT, Dataset, load_dataset
from ..data.sources import IMAGEFOLDER
from ..models import MODELS
from ..runtime.distributed import world_from_env
from ..runtime.errors import RobustmixError
from ..store.checkpoint import LEGACY, META, WEIGHTS
from ..training.adversarial import COMPOSITIONS, GUARD_MODES, KINDS, MODES
from ..training.config import AMP_MODES, OPTIMIZERS, ROLES, SCHEDULES, TrainConfig
from ..training.methods import METHODS, get_method, method_options
from ..training.recipes import RECIPES, resolve_config
from ..training.save import STATE, train_and_save
from .common import (
    bar,
    boolean,
    finite_float,
    nonneg_float,
    nonneg_int,
    positive_int,
    say,
)

HELP = "train one model (ERM, mixup, cutmix, manifold mixup, ...) and write its checkpoint folder"
D = TrainConfig()


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
    a("--recipe", choices=["auto", *RECIPES], default="auto", help="start from a recipe; explicit flags override it. auto (default) chooses from the data: small-cnn for images under 16 px, else fast-cifar (WhitenCNN after airbench94; width 32 for one channel; smaller batches and more epochs under 25,000 images), recorded with the reason in the checkpoint's meta.json; fast-cifar-3x (3× the epochs, for mixup), paper-cifar (the paper's CIFAR setup), cpu-fast, small-cnn")
    a("--dataset", default=None, help=f"data set: {', '.join(DATASETS)} or imagefolder:ROOT (ROOT/train/<class>/*, ROOT/test/<class>/*) (default {D.dataset})")
    a("--data-dir", default=None, help="folder of the torchvision data sets (default ./data)")
    a("--download", action="store_true", default=None, help="download a torchvision data set into --data-dir if missing (needs network)")
    a("--cache-dir", default=None, help="folder for the imagefolder decode cache (default ROOT/.robustmix-cache)")
    a("--image-size", type=positive_int, default=None, help="resize images to N×N (default: the data's own size)")
    a("--train-subset", type=nonneg_int, default=None, help="train on a stratified, seeded subset of N images (0 = all)")
    a("--test-subset", type=nonneg_int, default=None, help="evaluate on a stratified subset of N test images, the same for every seed (0 = all)")
    a("--label-noise", type=fraction, default=None, help="replace this fraction of training labels with a wrong random label, seeded (paper Table 2)")
    a("--augment", choices=["auto", *AUGMENTS], default=None, help=f"batch augmentation (default: the recipe's; auto: {auto_augment_help()}; flips only for data known to be flip-safe); translate = 2 px with reflection, altflip-translate adds airbench's alternating flip (the fast recipes use it on flip-safe data, translate elsewhere)")
    a("--model", default=None, help=f"architecture: {', '.join(MODELS)} (default {D.model})")
    a("--width", type=positive_int, default=None, help="model width (cnn/fast_cnn/whiten_cnn: first channels, whiten_cnn 64 with 4× that after; preact_resnet18: 64; wrn28_10: widening factor 10)")
    a("--depth", type=positive_int, default=None, help="model depth (wrn28_10 only: 6n+4, e.g. 10, 16, 28)")
    a("--dropout", type=fraction, default=None, help="dropout probability where the model has dropout (default 0)")
    a("--method", default=None, help=f"training method: {', '.join(METHODS)} (default {D.method})")
    a("--method-option", action="append", default=None, metavar="KEY=VALUE", type=key_value,
      help="a method's option, repeatable; puzzle-mix: beta, gamma, eta, xi, m, grids (e.g. 2,4,8), neigh, transport, "
           "transport_size, adv_p, adv_eps (0–255 scale), clean_lam (see robustmix.training.methods.puzzlemix.PuzzleOptions)")
    a("--alpha", type=nonneg_float, default=None, help=f"Beta(alpha, alpha) for the mixing methods (default {D.alpha}); ignored by erm")
    a("--epochs", type=positive_int, default=None, help=f"training epochs (default {D.epochs})")
    a("--batch-size", type=positive_int, default=None, help=f"batch size (default {D.batch_size})")
    a("--lr", type=finite_float, default=None, help=f"peak SGD learning rate (default {D.lr})")
    a("--momentum", type=nonneg_float, default=None, help=f"SGD momentum (default {D.momentum})")
    a("--nesterov", type=boolean, default=None, help="Nesterov momentum: true or false (default true)")
    a("--schedule", choices=SCHEDULES, default=None, help=f"lr schedule: cosine, step (× --lr-decay at --milestones), onecycle, triangle (airbench's 0.2 → 1 at --warmup → 0.07) (default {D.schedule})")
    a("--milestones", type=int_list, default=None, help="step schedule: epochs after which the lr decays, e.g. 100,150")
    a("--lr-decay", type=nonneg_float, default=None, help="step schedule: lr factor at each milestone (default 0.1)")
    a("--warmup", type=fraction, default=None, help="onecycle, triangle: fraction of steps rising to the peak lr (default 0.25)")
    a("--optimizer", choices=OPTIMIZERS, default=None, help="sgd (lr and weight decay as PyTorch's, mean loss) or decoupled-sgd (airbench: lr and weight decay per 1,024 examples, summed loss, Nesterov, BatchNorm biases at 64× lr) (default sgd)")
    a("--label-smoothing", type=fraction, default=None, help="label smoothing applied to every method's soft targets (default 0)")
    a("--lookahead-after", type=nonneg_int, default=None, help="lookahead weight averaging (airbench's schedule) from this epoch on; 0 = none (default 0)")
    a("--whiten-bias-epochs", type=nonneg_int, default=None, help="whiten_cnn: epochs in which the whitening stem's bias is trained (default 3)")
    a("--amp", choices=AMP_MODES, default=None, help="bfloat16 autocast with float32 master weights: bf16, none (float32), or auto = bf16 on CUDA and on CPUs with AMX, float32 elsewhere (bf16 is ~16× slower on CPUs without AMX, reports/cifar10-cpu.md) (default: the recipe's; none without one)")
    a("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="model and batches in channels_last memory; --no-channels-last for NCHW (default auto: on for whiten_cnn, measured faster on the CPU, and on CUDA under bf16)")
    a("--weight-decay", type=nonneg_float, default=None, help=f"weight decay (default {D.weight_decay})")
    a("--adversarial", choices=tuple(KINDS), default=None,
      help="adversarial training, with any --method: pgd (PGD-AT, Madry et al.), fgsm-rs (fast AT, Wong et al.; guarded against "
           "catastrophic overfitting), trades (Zhang et al.); with a mixing method it composes as its paper does (--adv-compose) "
           "(default: none)")
    a("--adv-eps", type=nonneg_float, default=None, help="adversarial training's radius, on the 0–255 pixel scale (8 means 8/255) "
      "(default with --recipe auto: 8 for colour images, 76.5 (0.3) for 28 px grayscale, 32 for 8×8 digits)")
    a("--adv-steps", type=positive_int, default=None, help="crafting steps (default: pgd 10, fgsm-rs 1, trades 10)")
    a("--adv-step-size", type=nonneg_float, default=None, help="crafting step on the 0–255 scale (default: pgd and trades 2.5·eps/steps, fgsm-rs 1.25·eps)")
    a("--adv-mode", choices=MODES, default=None, help="the mode the model crafts in: auto (the paper's: train for pgd and fgsm-rs, eval for trades), train, eval")
    a("--adv-compose", choices=("auto", *COMPOSITIONS), default=None,
      help="with a mixing method: iat (Lamb et al.: craft on the clean batch, mix clean and adversarial, average the losses; "
           "auto for mixup and manifold-mixup) or mixed (Rebuffi et al.: craft on the mixed input against its soft target; auto for "
           "cutmix and puzzle-mix, and always for trades)")
    a("--adv-random-start", action=argparse.BooleanOptionalAction, default=None,
      help="start crafting from a random point in the ball (default on; --no-adv-random-start only to study what it prevents)")
    a("--trades-beta", type=nonneg_float, default=None, help="TRADES's β (default 6)")
    a("--adv-guard", choices=GUARD_MODES, default=None,
      help="the catastrophic-overfitting guard: PGD accuracy on held-out training images after every epoch; a fall of more than "
           "20 points rolls back to the last good epoch and stops (auto: on for fgsm-rs)")
    a("--ema-decay", type=fraction, default=None, help="weight averaging: an EMA of the weights with this decay per step (e.g. 0.999), "
      "evaluated and saved instead of the trained weights (default 0: none)")
    a("--seed", type=int, default=None, help=f"seed for initialisation, subsets, label noise, shuffling, augmentation and mixing (default {D.seed})")
    a("--role", choices=ROLES, default=None, help="target (attacked) or surrogate (crafts black-box examples); default target")
    a("--device", default=None, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    a("--out", type=Path, default=None, help="checkpoint folder, named without a file suffix (default runs/<dataset>-<model>-<method>-s<seed>-<role>)")
    a("--overwrite", action="store_true", help="replace an existing checkpoint at --out (never done otherwise)")
    a("--resume", action="store_true", help=f"continue an interrupted run from its last finished epoch ({STATE} in --out)")
    a("--tensorboard", action="store_true", help="also write TensorBoard scalars to <out>/tensorboard")


FIELDS = ("dataset", "data_dir", "download", "cache_dir", "image_size", "train_subset", "test_subset", "label_noise",
          "augment", "model", "width", "depth", "dropout", "method", "alpha", "epochs", "batch_size", "lr", "momentum",
          "nesterov", "schedule", "milestones", "lr_decay", "warmup", "weight_decay", "seed", "role", "device",
          "optimizer", "label_smoothing", "lookahead_after", "whiten_bias_epochs", "amp", "channels_last",
          "adversarial", "adv_steps", "adv_mode", "adv_compose", "adv_random_start", "trades_beta", "adv_guard", "ema_decay")
SCALED = ("adv_eps", "adv_step_size")  # on the 0–255 scale on the command line, [0, 1] in TrainConfig


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. adv_p=0.1)")
    return key.strip(), value.strip()


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, Dataset | None]:
    """The config the flags ask for, and the data set if it had to be loaded to choose the recipe
    (--recipe auto: its shape and size decide; the data is then handed to training, not loaded twice)."""
    explicit = {f: getattr(args, f) for f in FIELDS}
    explicit.update({f: getattr(args, f) / 255 if getattr(args, f) is not None else None for f in SCALED})
    if getattr(args, "method_option", None):  # stored typed, as the method reads them (checked by train)
        method = get_method(args.method or resolve_config(args.recipe if args.recipe != "auto" else "").method,
                            dict(args.method_option))
        explicit["method_options"] = {k: v for k, v in method_options(method).items() if k in dict(args.method_option)}
    if args.recipe != "auto":
        return resolve_config(args.recipe, **explicit), None
    data = load_dataset(args.dataset or D.dataset, data_dir=args.data_dir, download=bool(args.download),
                        image_size=args.image_size or 0, cache_dir=args.cache_dir)
    n = data.x_train.shape[0] if not args.train_subset else min(args.train_subset, data.x_train.shape[0])
    return resolve_config("auto", auto=(data.input_shape, n), **dict(explicit, dataset=args.dataset or D.dataset)), data


class Progress:
    """What the CLI shows while training: a progress bar per epoch on a terminal, and a line per epoch
    on stderr (also when it is a log file: a long background run must say how it is doing). With a
    `label` (one of several trainings running side by side) each line starts with it and there is no bar.
    (The epoch log, <out>/log.csv, is written by `robustmix.training.save`.)"""

    def __init__(self, epochs: int, label: str | None = None):
        self.epochs, self.bar, self.label = epochs, None, label

    def on_step(self, s: dict) -> None:
        if self.label is not None:
            return
        if self.bar is None:
            self.bar = bar(total=s["steps"] // s["epochs"], desc=f"epoch {s['epoch']}/{s['epochs']}")
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{s['loss']:.3f}", acc=f"{s['acc']:.1f}%", img_s=f"{s['images_per_second']:.0f}", refresh=False)

    def on_epoch(self, row: dict, history: list[dict]) -> None:
        self.close_bar()
        say(f"{self.label + ': ' if self.label else ''}epoch {row['epoch']}/{self.epochs}: train loss {row['train_loss']:.3f}, acc {row['train_acc']:.1f}%, "
            f"test error {row['test_err']:.2f}%, {row['images_per_second']:.0f} img/s")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None



def train_with_progress(config: TrainConfig, out: Path, *, overwrite: bool = False, resume: bool = False,
                        tensorboard: bool = False, data: Dataset | None = None, label: str | None = None) -> dict:
    """`robustmix.training.save.train_and_save` with the CLI's progress: bars, and a line per epoch
    (naming the model when `label` is given, as in `train_in_lane`)."""
    progress = Progress(config.epochs, label)
    try:
        return train_and_save(config, out, overwrite=overwrite, resume=resume, tensorboard=tensorboard, data=data,
                              on_step=progress.on_step, on_epoch=progress.on_epoch)
    finally:
        progress.close_bar()


def train_in_lane(config: TrainConfig, out: Path, *, overwrite: bool = False, resume: bool = False,
                  data: Dataset | None = None) -> dict:
    """`train_with_progress` in one of several parallel training processes (`robustmix study --jobs N`):
    the same checkpoint and log.csv, each epoch's line naming the model, no bar (the processes would
    draw over each other; the parent draws one per model from log.csv)."""
    return train_with_progress(config, out, overwrite=overwrite, resume=resume, data=data, label=out.name)


def check_out(out: Path) -> None:
    """--out is the checkpoint folder: a name ending like a weights or metadata file is a mistake
    (a folder named erm.safetensors would be written), refused with the folder name to give."""
    if out.suffix in (Path(WEIGHTS).suffix, Path(META).suffix, *LEGACY):
        raise RobustmixError(
            f"--out {out} names a file, but a checkpoint is a folder (it holds {WEIGHTS} and {META}): pass --out {out.with_suffix('')}"
        )


def run(args: argparse.Namespace) -> int:
    config, data = config_from_args(args)
    config.validate()
    out = args.out or Path("runs") / config.run_name
    check_out(out)
    meta = train_with_progress(config, out, overwrite=args.overwrite, resume=args.resume, tensorboard=args.tensorboard,
                               data=data)
    if not world_from_env().is_main:
        return 0
    for warning in meta.get("warnings", []):  # e.g. the catastrophic-overfitting guard rolled back and stopped
        say(f"warning: {warning}")
    say(
        f"wrote {out}: {meta['method']} {meta['model']} on {meta['dataset']}, seed {meta['seed']}, "
        f"clean top-1 error {meta['clean_top1_err']:.2f}% ({meta['train_seconds']:.1f} s, "
        f"{meta['train_images_per_second']:.0f} img/s); recipe {meta['recipe'] or 'none'}"
        + (f" ({meta['recipe_reason']})" if meta.get("recipe_reason") else "")
    )
    print(out)
    return 0
