"""Checkpoints: a folder with `model.safetensors` (weights) and `meta.json` (how it was made).

Loading never unpickles anything. The metadata records the sha256 of the weights it belongs to,
so a folder whose two files do not match is refused rather than half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from . import files
from .errors import RobustmixError
from .models import build_model

WEIGHTS = "model.safetensors"
META = "meta.json"


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """Write weights then metadata, each atomically. Returns the checkpoint folder."""
    folder = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = st_save(state, metadata={"format": "robustmix-checkpoint/1"})
    meta = dict(meta, weights_sha256=hashlib.sha256(blob).hexdigest())
    files.write_bytes(folder / WEIGHTS, blob)
    files.write_json(folder / META, meta)
    return folder


def checkpoint_folder(path: str | Path) -> Path:
    p = Path(path)
    if p.name in (WEIGHTS, META):
        p = p.parent
    if not p.exists():
        raise RobustmixError(f"checkpoint {str(path)!r} does not exist: give a folder written by 'robustmix train'")
    if not p.is_dir() or not (p / META).is_file() or not (p / WEIGHTS).is_file():
        raise RobustmixError(
            f"{str(path)!r} is not a robustmix checkpoint (a folder with {WEIGHTS} and {META}): "
            "give a folder written by 'robustmix train'"
        )
    return p


def read_meta(path: str | Path) -> dict:
    folder = checkpoint_folder(path)
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RobustmixError(f"{folder / META}: unreadable metadata ({e.__class__.__name__}): retrain or restore it") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("robustmix-checkpoint/"):
        raise RobustmixError(f"{folder / META}: not robustmix checkpoint metadata: give a folder written by 'robustmix train'")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from its metadata, load its weights; returns (model in eval mode, metadata)."""
    folder = checkpoint_folder(path)
    meta = read_meta(folder)
    blob = (folder / WEIGHTS).read_bytes()
    want = meta.get("weights_sha256")
    if want is not None and hashlib.sha256(blob).hexdigest() != want:
        raise RobustmixError(
            f"{folder / WEIGHTS}: weights do not match {META} (sha256 differs; truncated or replaced): retrain or restore it"
        )
    try:
        state = st_load(blob)
    except Exception as e:  # safetensors raises several exception types on corrupt input
        raise RobustmixError(f"{folder / WEIGHTS}: corrupt safetensors file ({e}): retrain or restore it") from None
    try:
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
    except (KeyError, TypeError, ValueError) as e:
        raise RobustmixError(f"{folder / META}: incomplete metadata ({e}): retrain or restore it") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise RobustmixError(
            f"{folder / WEIGHTS}: weights do not fit the {meta['model']!r} architecture in {META} ({first})"
        ) from None
    model.eval()
    return model.to(device), meta
