"""Checkpoints in folders: the name a checkpoint is reported under, the checkpoints of a runs
folder by role, the checks that let several be evaluated together, and the data they were trained
on, in the form their metadata records. (The checkpoint type, saving and loading: `checkpoint.py`.)"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import Dataset, load_dataset, stratified_subset
from ..runtime.errors import RobustmixError
from .checkpoint import (
    META,
    WEIGHTS,
    Checkpoint,
    checkpoint_folder,
    load_checkpoint,
    read_meta,
)

COMPATIBLE = ("dataset", "num_classes", "input_shape")  # what checkpoints evaluated together must share


def checkpoint_name(path: str | Path) -> str:
    """A checkpoint's name: its folder's name (also when the path names a file inside it)."""
    return checkpoint_folder(path).name


def open_checkpoints(paths: list[Path], device: str | torch.device = "cpu", *, allow_legacy: bool = False,
                     what: str = "checkpoints") -> list[Checkpoint]:
    """Load every checkpoint under its name; two with one name are refused before any is loaded."""
    check_distinct([checkpoint_name(p) for p in paths], what)
    return [Checkpoint(checkpoint_name(p), *load_checkpoint(p, device, allow_legacy=allow_legacy)) for p in paths]


def checkpoints_in(runs: Path) -> list[Path]:
    """The checkpoint folders directly inside `runs`, sorted (none if it is not a folder)."""
    return sorted(p.parent for p in Path(runs).glob(f"*/{META}") if (p.parent / WEIGHTS).is_file())


def discover(runs: Path) -> list[Path]:
    """Every checkpoint folder in `runs`; an error naming the fix if there is none."""
    if not Path(runs).is_dir():
        raise RobustmixError(f"no checkpoints: {runs} is not a folder; train first (robustmix quickstart) or pass --targets")
    found = checkpoints_in(runs)
    if not found:
        raise RobustmixError(f"no checkpoints in {runs}: train first (robustmix quickstart) or pass --targets")
    return found


def with_role(folders: list[Path], role: str) -> list[Path]:
    """The folders whose metadata records `role` ("target" or "surrogate")."""
    return [p for p in folders if read_meta(p).get("role") == role]


def find_targets(runs: Path) -> list[Path]:
    """The checkpoints of `runs` whose role is target."""
    targets = with_role(discover(runs), "target")
    if not targets:
        raise RobustmixError(f"no checkpoint with role 'target' in {runs}: pass --targets")
    return targets


def find_surrogate(runs: Path) -> Path:
    """The one checkpoint of `runs` whose role is surrogate."""
    surrogates = with_role(checkpoints_in(runs), "surrogate")
    if len(surrogates) > 1:
        names = ", ".join(str(p) for p in surrogates)
        raise RobustmixError(f"several surrogates in {runs} ({names}): choose one with --surrogate")
    if not surrogates:
        raise RobustmixError(
            f"black-box needs a surrogate and none has role 'surrogate' in {runs}: pass --surrogate PATH or --settings white-box"
        )
    return surrogates[0]


def check_compatible(checkpoints: list[Checkpoint]) -> str:
    """Checkpoints evaluated together share a data set, classes and input shape; returns the data set."""
    first = checkpoints[0].meta
    for c in checkpoints[1:]:
        for key in COMPATIBLE:
            if c.meta.get(key) != first.get(key):
                raise RobustmixError(
                    f"{c.name} was trained with {key}={c.meta.get(key)!r} but {checkpoints[0].name} with "
                    f"{first.get(key)!r}: evaluate checkpoints of one data set together"
                )
    return first["dataset"]


def load_data_of(meta: dict) -> Dataset:
    """The data set a checkpoint was trained on, in the form its config records: the same image
    size, data folder and decode cache (a model trained on resized images is evaluated on them)."""
    config = meta.get("config") or {}
    return load_dataset(meta["dataset"], data_dir=config.get("data_dir") or None, image_size=config.get("image_size") or 0,
                        cache_dir=config.get("cache_dir") or None)


def evaluation_examples(data: Dataset, examples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the test set, or of a stratified subset of `examples` of them (seed 0: the same
    subset every time, for every checkpoint)."""
    n = data.y_test.numel()
    if not examples:
        return data.x_test, data.y_test
    if examples > n:
        raise RobustmixError(f"asked for {examples} examples but {data.name} has {n} test examples: ask for at most {n}")
    idx = stratified_subset(data.y_test, examples, 0)
    return data.x_test[idx], data.y_test[idx]


def check_fits(meta: dict, num_classes: int, input_shape, *, name: str, dataset: str) -> None:
    """A checkpoint's recorded classes and input shape must match the data set it is evaluated on."""
    if meta.get("num_classes") != num_classes:
        raise RobustmixError(
            f"{name} has {meta.get('num_classes')} classes but data set {dataset!r} has {num_classes}: "
            "evaluate it on the data set it was trained on"
        )
    if list(meta.get("input_shape") or []) != list(input_shape):
        raise RobustmixError(
            f"{name} takes inputs of shape {meta.get('input_shape')} but data set {dataset!r} has {list(input_shape)}: "
            "evaluate it on the data set it was trained on"
        )


def check_distinct(names: list[str], what: str = "checkpoints") -> None:
    """Results, tables and figures are keyed by checkpoint name: two with one name would merge."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RobustmixError(f"two {what} are named {dup[0]!r}: give checkpoints distinct folder names")
