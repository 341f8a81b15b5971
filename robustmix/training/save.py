"""Train and save one checkpoint folder: the overwrite policy, resume state, the epoch log.

`train_and_save(config, out)` is the library operation behind `robustmix train`, the study and the
quickstart: it refuses to replace a finished checkpoint unless asked, resumes an interrupted run
from `<out>/resume.safetensors`, rewrites `<out>/log.csv` after every epoch (and TensorBoard
scalars if asked), saves the checkpoint and removes the resume state. What is shown while it runs
(bars, a line per epoch) is the caller's: pass `on_step` / `on_epoch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..data import Dataset
from ..runtime import files
from ..runtime.distributed import world_from_env
from ..runtime.errors import RobustmixError
from ..store.checkpoint import checkpoint_folder, save_checkpoint
from .config import TrainConfig
from .loop import train

STATE = "resume.safetensors"  # an interrupted run's state, in the checkpoint folder until it finishes
LOG = "log.csv"  # one row per finished epoch, rewritten after each


def refuse_overwrite(out: Path, resume: bool = False) -> None:
    """Refuse to write into `out` when it holds a finished checkpoint, an interrupted run (unless
    `resume`) or anything else: one line naming the flag that allows it."""
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
    """(on_epoch callback, TensorBoard writer or None): the callback rewrites <out>/log.csv
    (atomically) and optionally adds TensorBoard scalars."""
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


def train_and_save(config: TrainConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
                   tensorboard: bool = False, data: Dataset | None = None,
                   on_step: Callable[[dict], None] | None = None,
                   on_epoch: Callable[[dict, list[dict]], None] | None = None) -> dict:
    """Train `config` into the checkpoint folder `out` and return its metadata.

    Refuses to replace `out` unless `overwrite` (or `resume`, which continues an interrupted run
    from its last finished epoch). Writes <out>/log.csv after every epoch, then the checkpoint,
    then removes the resume state. `on_step` / `on_epoch` are the caller's display (the CLI's bars
    and lines); under torchrun only rank 0 logs and writes.
    """
    out = Path(out)
    if not overwrite:
        refuse_overwrite(out, resume)
    elif out.exists() and not out.is_dir():
        raise RobustmixError(f"{out} exists and is not a folder: choose another --out")
    if overwrite and (out / STATE).is_file() and not resume:
        (out / STATE).unlink()
    if not world_from_env().is_main:  # under torchrun, rank 0 alone logs and writes
        model, meta = train(config, data=data, resume=resume, state_path=out / STATE)
        return meta
    log_epoch, writer = epoch_logger(out, tensorboard)

    def epoch(row: dict, history: list[dict]) -> None:
        log_epoch(row, history)
        if on_epoch is not None:
            on_epoch(row, history)

    try:
        model, meta = train(config, data=data, on_step=on_step, on_epoch=epoch, state_path=out / STATE, resume=resume)
    finally:
        if writer is not None:
            writer.close()
    save_checkpoint(out, model, meta)
    checkpoint_folder(out)
    (out / STATE).unlink(missing_ok=True)  # finished: the checkpoint replaces the resume state
    return meta
