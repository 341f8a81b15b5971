"""Imports: a model from elsewhere, checked, as a robustmix checkpoint (folder or in-memory object).

`import_source(ImportConfig)` reads a SOURCE (robustmix.importing.sources), wraps it with its normalisation,
runs robustmix.importing.conventions and returns (model, meta, program bytes); `save_imported` writes the
folder: `model.safetensors` (the wrapper's whole state dict: normalisation, class order, network
weights), `meta.json`, and for TorchScript / torch.export sources the (checked) program,
`program.ts` / `program.pt2`, whose sha256 meta.json records. `load_checkpoint` rebuilds the
network from meta["import"] (and the program file) and loads the safetensors weights into it.

`import_model(module, dataset=...)` is the same path for notebooks: any nn.Module plus its
normalisation becomes a `checkpoint.Checkpoint`, with the same checks; nothing is written.
Pixels are in [0, 1]; mean/std are in [0, 1] units too (ImageNet's are 0.485,0.456,0.406 /
0.229,0.224,0.225).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..data import Dataset, load_dataset
from ..models.foreign import PROGRAM_FILES, sha256_of
from ..models.imported import ImportedModel
from ..runtime.errors import RobustmixError
from ..store.checkpoint import FORMAT, Checkpoint, save_checkpoint
from .conventions import FLAGS, run_checks
from .sources import (
    check_stats,
    normalization,
    parse_class_order,
    parse_source,
    read_source,
)

ROLES = ("target", "surrogate")


@dataclass(frozen=True)
class ImportConfig:
    """Everything `robustmix import` was asked; recorded in `meta.json["import"]["config"]`."""

    source: str
    dataset: str
    weights: str | None = None
    mean: tuple[float, ...] | None = None  # [0, 1] units, the statistics the network was trained with
    std: tuple[float, ...] | None = None
    expects_normalized: bool = False  # the network expects the data set's usual mean/std
    bgr: bool = False  # the network expects BGR channel order
    class_order: tuple[str, ...] | None = None  # output k stands for data-set class class_order[k]
    role: str = "target"
    method: str = "imported"  # how it was trained, if known (report labels); alpha likewise
    alpha: float | None = None
    force: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def wrap_checked(net: nn.Module, data: Dataset, *, mean=None, std=None, expects_normalized=False, bgr=False,
                 class_order=None, force=False, name="the model", style="cli", device=None):
    """(ImportedModel, findings, normalization, class order, forced warnings); raises on a diagnosis unless forced."""
    device = torch.device(device or "cpu")
    norm = normalization(data.input_shape[0], (data.mean, data.std), mean=mean, std=std,
                         expects_normalized=expects_normalized, bgr=bgr)
    order = parse_class_order(class_order, data.classes) if class_order is not None else None
    model = ImportedModel(net, norm.mean, norm.std, bgr=norm.bgr, class_order=order).to(device)
    found = run_checks(model, data, norm, device=device, name=name, style=style)
    if found.problems and not force:
        raise RobustmixError(f"{found.problems[0]} ({FLAGS[style]['force']} imports anyway)")
    return model, found, norm, order, list(found.problems)


def describe(found, norm, order, forced: list[str], notes: list[str]) -> dict:
    """The part of meta["import"] that records what the checks saw."""
    return {
        "normalization": norm.to_dict(),
        "class_order": order,
        "warnings": forced + notes,
        "forced": bool(forced),
        "probe_error_under": {k: round(v, 4) for k, v in found.alternatives.items()},
        "suspected_class_order": found.suspected_order,
    }


def base_meta(name: str, data: Dataset, dataset: str, role: str, method: str, alpha, found, model_name: str) -> dict:
    """The metadata common to every imported checkpoint (format, versions, name, role, data set,
    classes, input shape, method, clean error from the import's checks `found`).
    """
    from ..runtime.version import __version__

    return {
        "format": FORMAT,
        "robustmix_version": __version__,
        "name": name,
        "role": role,
        "model": model_name,
        "dataset": dataset,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "input_shape": list(data.input_shape),
        "method": method,
        "alpha": alpha,
        "seed": None,
        "clean_top1_err": found.top1,
        "clean_top5_err": found.top5,
        "torch_version": torch.__version__,
    }


def import_source(config: ImportConfig, *, name: str, data: Dataset | None = None,
                  device: torch.device | str | None = None) -> tuple[ImportedModel, dict, bytes | None]:
    """Read, wrap and check one SOURCE. Returns (model on the CPU in eval mode, meta, program bytes or None)."""
    if config.role not in ROLES:
        raise RobustmixError(f"role must be one of {', '.join(ROLES)}, got {config.role!r}")
    check_stats(config.mean, config.std, config.expects_normalized)  # before reading any data
    parse_source(config.source, config.weights)
    data = data or load_dataset(config.dataset)
    net, info, program = read_source(config.source, config.weights, data.input_shape, data.num_classes)
    model, found, norm, order, forced = wrap_checked(
        net, data, mean=config.mean, std=config.std, expects_normalized=config.expects_normalized, bgr=config.bgr,
        class_order=config.class_order, force=config.force, name=Path(str(config.source)).name, device=device)
    model_name = info["source"] + (f":{info['arch']}" if info["arch"] else "")
    meta = base_meta(name, data, config.dataset, config.role, config.method, config.alpha, found, model_name)
    meta["import"] = {**info, **describe(found, norm, order, forced, found.notes), "config": config.to_dict()}
    if program is not None:
        meta["import"]["program"] = PROGRAM_FILES[info["source"]]
        meta["import"]["program_sha256"] = sha256_of(program)
    versions = {"torch": torch.__version__}
    for lib in ("torchvision", "timm"):
        if info["source"] == lib:
            versions[lib] = __import__(lib).__version__
    meta["import"]["versions"] = versions
    return model.cpu().eval(), meta, program


def save_imported(out: str | Path, model: nn.Module, meta: dict, program: bytes | None, *, overwrite: bool = False) -> Path:
    """Write the checkpoint folder whole or not at all: into a hidden sibling folder, then renamed."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise RobustmixError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")
    if out.exists() and not out.is_dir():
        raise RobustmixError(f"{out} exists and is not a folder: choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        if program is not None:
            from ..runtime import files

            files.write_bytes(tmp / meta["import"]["program"], program)
        save_checkpoint(tmp, model, meta)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def import_model(module: nn.Module, dataset: str | Dataset = "digits", *, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, expects_normalized: bool = False, bgr: bool = False,
                 class_order: Sequence | None = None, force: bool = False, name: str = "imported",
                 role: str = "target", method: str = "imported", alpha: float | None = None,
                 device: torch.device | str | None = None):
    """Wrap any nn.Module (taking the input it was trained on) into a checked `Checkpoint` for `evaluate`.

    mean/std: the statistics the module expects its input normalised with, in [0, 1] units
    (robustmix adds the layer); expects_normalized=True: the data set's usual mean/std; neither: the
    module takes [0, 1] pixels itself. bgr=True reverses the colour channels first. class_order[k]:
    the data-set class (name or index) that output k stands for. Refuses (RobustmixError) a model
    outputting probabilities, a likely wrong normalisation or a permuted class order, unless force=True.
    The module itself is wrapped, not copied: the checkpoint's model shares its weights.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import robustmix
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))  # yours: here untrained, taking [0, 1] pixels
        >>> checkpoint = robustmix.import_model(net, "digits", name="linear")
        >>> checkpoint.name, checkpoint.model(torch.rand(2, 1, 8, 8)).shape
        ('linear', torch.Size([2, 10]))
    """
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    model, found, norm, order, forced = wrap_checked(
        module, data, mean=mean, std=std, expects_normalized=expects_normalized, bgr=bgr, class_order=class_order,
        force=force, name=name, style="api", device=device)
    meta = base_meta(name, data, data.name, role, method, alpha, found, f"python:{type(module).__name__}")
    meta["import"] = {"source": "python", "arch": type(module).__qualname__, "file": None, "file_sha256": None,
                      **describe(found, norm, order, forced, found.notes)}
    return Checkpoint(name, model.eval(), meta)
