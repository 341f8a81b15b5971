"""Checkpoints: a folder with `model.safetensors` (weights) and `meta.json` (how it was made);
the `Checkpoint` type (a loaded model, its name and metadata), the metadata a trained model's
checkpoint carries (`checkpoint_meta`) and what result files quote of it (`provenance`).
Finding checkpoints in a runs folder, naming them and checking they go together: `runs.py`.

Loading never unpickles anything. The metadata records the sha256 of the weights it belongs to,
so a folder whose two files do not match is refused rather than half-loaded.

Legacy PyTorch files (`model.pt` / `model.pth`, a state dict written by `torch.save`, beside a
`meta.json`) load only with `allow_legacy=True` (CLI `--allow-legacy`), and then only through
`torch.load(..., weights_only=True)`: its restricted unpickler accepts tensors and plain
containers and refuses any pickled code (which never runs). Every failure names the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..models import build_model
from ..runtime import files
from ..runtime.errors import RobustmixError
from .legacy import load_legacy_state

FORMAT = "robustmix-checkpoint/1"
WEIGHTS = "model.safetensors"
META = "meta.json"
LEGACY = (".pt", ".pth")
# What result files, figures and the gate's baseline quote of each checkpoint they used.
PROVENANCE = ("role", "method", "alpha", "seed", "model", "dataset", "epochs", "clean_top1_err", "weights_sha256")
IMPORT_PROVENANCE = ("source", "arch", "file", "file_sha256", "normalization", "class_order", "forced", "warnings")


@dataclass
class Checkpoint:
    """A loaded model, the name it is reported under, and the metadata of the checkpoint it came from."""

    name: str
    model: nn.Module
    meta: dict = field(default_factory=dict)


def provenance(meta: dict) -> dict:
    """The part of a checkpoint's metadata that a result quotes to say which model it measured
    (for a model brought in by `robustmix import`, also where it came from and how it was wrapped)."""
    out = {k: meta.get(k) for k in PROVENANCE}
    scale = (meta.get("config") or {}).get("head_scale", 1)
    if scale != 1:  # a planted masked model (a study's negative control): its head scaled after training
        out["head_scale"] = scale
    if isinstance(meta.get("import"), dict):
        out["import"] = {k: meta["import"].get(k) for k in IMPORT_PROVENANCE}
    return out


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """Write weights then metadata, each atomically. Returns the checkpoint folder.

    Examples:
        >>> import robustmix
        >>> model, meta = robustmix.train(robustmix.TrainConfig(epochs=1, device="cpu"))
        >>> folder = robustmix.save_checkpoint("runs/tiny", model, meta)
        >>> sorted(p.name for p in folder.iterdir())
        ['meta.json', 'model.safetensors']
    """
    folder = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = st_save(state, metadata={"format": FORMAT})
    meta = dict(meta, weights_sha256=hashlib.sha256(blob).hexdigest())
    files.write_bytes(folder / WEIGHTS, blob)
    files.write_json(folder / META, meta)
    return folder


def checkpoint_folder(path: str | Path) -> Path:
    """The checkpoint folder that `path` names (the folder itself, or its meta.json, model.safetensors
    or a legacy weights file). Raises RobustmixError when it is not a robustmix checkpoint.
    """
    p = Path(path)
    if p.name in (META, WEIGHTS) or (p.suffix in LEGACY and not p.is_dir()):
        p = p.parent
    if not Path(path).exists():
        raise RobustmixError(f"checkpoint {str(path)!r} does not exist: give a folder written by 'robustmix train'")
    if Path(path).suffix in LEGACY and not (p / META).is_file():
        raise RobustmixError(f"{path}: a legacy weights file needs the {META} of its model beside it: write one (see 'robustmix train')")
    if not p.is_dir() or not (p / META).is_file() or not ((p / WEIGHTS).is_file() or legacy_files(p)):
        raise RobustmixError(
            f"{str(path)!r} is not a robustmix checkpoint (a folder with {WEIGHTS} and {META}): "
            "give a folder written by 'robustmix train'"
        )
    return p


def legacy_files(folder: Path) -> list[Path]:
    """Legacy weight files (.pt/.pth) in a checkpoint folder, sorted; they load only with
    allow_legacy=True.
    """
    return sorted(p for p in folder.iterdir() if p.suffix in LEGACY and p.is_file())


def weights_file(path: str | Path, folder: Path, allow_legacy: bool) -> Path:
    """The weights to load: model.safetensors, or (only with allow_legacy) a .pt/.pth file."""
    p = Path(path)
    if p.suffix in LEGACY:
        legacy = p
    elif (folder / WEIGHTS).is_file():
        return folder / WEIGHTS
    else:
        found = legacy_files(folder)
        if len(found) > 1:
            raise RobustmixError(f"{folder}: several legacy weight files ({', '.join(f.name for f in found)}): give one of them as the path")
        legacy = found[0]
    if not allow_legacy:
        raise RobustmixError(
            f"{legacy}: a legacy PyTorch pickle file, not safetensors: pass --allow-legacy (allow_legacy=True) to load "
            "it as a plain state dict with torch.load(weights_only=True), or re-save it as safetensors"
        )
    return legacy


def read_meta(path: str | Path, *, need_weights: bool = True) -> dict:
    """The metadata (meta.json) of a checkpoint, without loading its weights. Raises RobustmixError
    when it is unreadable or not robustmix checkpoint metadata. With need_weights=False the folder
    may hold its meta.json alone (a study folder kept without its weights: `robustmix.study.training`).
    """
    if need_weights:
        folder = checkpoint_folder(path)
    else:
        folder = Path(path).parent if Path(path).name == META else Path(path)
        if not (folder / META).is_file():
            raise RobustmixError(f"{folder} has no {META}: give a folder written by 'robustmix train'")
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RobustmixError(f"{folder / META}: unreadable metadata ({e.__class__.__name__}): retrain or restore it") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("robustmix-checkpoint/"):
        raise RobustmixError(f"{folder / META}: not robustmix checkpoint metadata: give a folder written by 'robustmix train'")
    return meta


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", *, allow_legacy: bool = False
) -> tuple[nn.Module, dict]:
    """Rebuild the model from its metadata, load its weights; returns (model in eval mode, metadata).

    `path` is a checkpoint folder (or a file in it). Legacy `.pt`/`.pth` state dicts load only with
    `allow_legacy=True`, through torch.load(weights_only=True), which refuses pickled code.

    Examples:
        >>> import robustmix
        >>> robustmix.save_checkpoint("runs/tiny", *robustmix.train(robustmix.TrainConfig(epochs=1, device="cpu")))
        PosixPath('runs/tiny')
        >>> model, meta = robustmix.load_checkpoint("runs/tiny")
        >>> meta["model"], meta["dataset"], model.training
        ('cnn', 'digits', False)
    """
    folder = checkpoint_folder(path)
    meta = read_meta(folder)
    weights = weights_file(path, folder, allow_legacy)
    if weights.suffix in LEGACY:
        state = load_legacy_state(weights)
    else:
        state = load_safetensors(weights, meta)
    try:
        if "import" in meta:  # a model brought in by `robustmix import`: robustmix.importing.sources rebuilds it
            from ..models.foreign import rebuild

            model = rebuild(meta, folder, state)
        else:
            c, h, _ = meta["input_shape"]
            model = build_model(
                meta["model"],
                in_channels=c,
                num_classes=meta["num_classes"],
                image_size=h,
                mean=[0.0] * c,  # the real mean/std are buffers in the weights
                std=[1.0] * c,
                **meta.get("model_options", {}),
            )
    except RobustmixError as e:
        raise RobustmixError(f"{folder / META}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise RobustmixError(f"{folder / META}: incomplete metadata ({e.__class__.__name__}: {e}): retrain or restore it") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0]).rstrip(".")  # line 0 is only "Error(s) in loading state_dict for ..."
        raise RobustmixError(
            f"{weights}: weights do not fit the {meta['model']!r} architecture in {META} ({detail[:100]}…): "
            "give the meta.json that belongs to these weights"
        ) from None
    model.eval()
    return model.to(device), meta


def load_safetensors(weights: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The tensors of a model.safetensors file, after checking its sha256 against
    `meta['weights_sha256']` (a truncated or replaced file is refused with RobustmixError). Never
    unpickles.
    """
    try:
        blob = weights.read_bytes()
    except OSError as e:
        raise RobustmixError(f"{weights}: unreadable ({e.strerror}): check its permissions") from None
    want = meta.get("weights_sha256")
    if want is not None and hashlib.sha256(blob).hexdigest() != want:
        raise RobustmixError(
            f"{weights}: weights do not match {META} (sha256 differs; truncated or replaced): retrain or restore it"
        )
    try:
        return st_load(blob)
    except Exception as e:  # safetensors raises several exception types on corrupt input
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise RobustmixError(f"{weights}: corrupt safetensors file ({first[:160]}): retrain or restore it") from None
