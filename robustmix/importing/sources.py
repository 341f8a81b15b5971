"""Bring a model trained elsewhere: read it safely, put robustmix's input conventions in front of it.

SOURCE kinds (`SOURCES`, a plain dict):
    torchvision:ARCH + weights   torchvision.models.get_model(ARCH, num_classes=K) and a state dict
    timm:ARCH + weights          timm.create_model(ARCH, num_classes=K, in_chans=C) (extra: robustmix[timm])
    robustmix:MODEL + weights    a robustmix architecture (robustmix.models.MODELS), default options
    a file                       a TorchScript archive or a torch.export .pt2 (robustmix.models.programs)

State dicts load from safetensors, or through `torch.load(weights_only=True)` (its restricted
unpickler refuses pickled code, which never runs). A dict holding the state dict under "state_dict",
"model_state_dict" or "model" is unwrapped, and a "module." prefix (DataParallel) is dropped. For
torchvision architectures whose first convolution takes another number of channels than the weights
(e.g. 1-channel digits), that convolution is rebuilt to the weights' shape.

The imported network sits inside `ImportedModel` (models/imported.py): [0, 1] pixels, then the
normalisation it expects (`Normalization`), then the network, then the data set's class order.
Nothing here downloads anything: weights always come from a local file.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..models import programs
from ..models.foreign import build_net, load_net_state, read_bytes, sha256_of
from ..runtime.errors import RobustmixError

PREFIXES = ("torchvision", "timm", "robustmix")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CONTAINERS = ("state_dict", "model_state_dict", "model")


@dataclass(frozen=True)
class Normalization:
    """What the network expects: (x - mean) / std of [0, 1] pixels, channels reversed if bgr.

    kind: "none" (it takes [0, 1] pixels), "dataset" (the data set's usual mean/std), "custom"
    (--mean/--std) or "imagenet" (only ever a diagnosis candidate).
    """

    kind: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}


def check_stats(mean: Sequence[float] | None, std: Sequence[float] | None, expects_normalized: bool = False) -> None:
    """The declared statistics on their own (before any data is read): both or neither, finite, [0, 1] units."""
    if (mean is None) != (std is None):
        raise RobustmixError("give both --mean and --std (mean= and std=), or neither")
    if mean is not None and expects_normalized:
        raise RobustmixError("give --mean/--std or --expects-normalized, not both: --expects-normalized means the data set's usual mean/std")
    if mean is None:
        return
    values = [float(v) for v in mean] + [float(v) for v in std]
    if not all(v == v and abs(v) != float("inf") for v in values) or min(float(v) for v in std) <= 0:
        raise RobustmixError("--mean must be finite numbers and --std finite numbers > 0")
    if max(abs(float(v)) for v in mean) > 1 or max(float(v) for v in std) > 1:
        raise RobustmixError(
            f"--mean {','.join(f'{float(v):g}' for v in mean)} --std {','.join(f'{float(v):g}' for v in std)} look like the 0–255 "
            "scale: robustmix pixels are in [0, 1]; divide them by 255 (e.g. 123.68 -> 0.485)"
        )


def normalization(channels: int, dataset_stats: tuple, *, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None, expects_normalized: bool = False, bgr: bool = False) -> Normalization:
    """The normalisation the user declared (CLI --mean/--std, --expects-normalized, --bgr), validated."""
    check_stats(mean, std, expects_normalized)
    if bgr and channels != 3:
        raise RobustmixError(f"--bgr (bgr=True) reverses colour channels, but the data set has {channels} channel(s): drop it")
    if mean is None:
        if expects_normalized:
            return Normalization("dataset", tuple(dataset_stats[0]), tuple(dataset_stats[1]), bgr)
        return Normalization("none", (0.0,) * channels, (1.0,) * channels, bgr)
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != channels or len(std) != channels:
        raise RobustmixError(f"--mean and --std need {channels} value(s), one per channel of the data set; got {len(mean)} and {len(std)}")
    return Normalization("custom", mean, std, bgr)


def parse_source(source: str, weights: str | Path | None) -> tuple[str, str]:
    """(kind, arch): kind is one of PREFIXES or 'program' (arch is then the file)."""
    prefix, _, arch = source.partition(":")
    if prefix in PREFIXES and arch:
        if weights is None:
            raise RobustmixError(f"{source} needs its weights: pass --weights FILE (a state dict, .pt/.pth/.bin or .safetensors)")
        return prefix, arch
    if weights is not None:
        raise RobustmixError(f"--weights is for torchvision:/timm:/robustmix:ARCH sources; {source!r} is a program file that holds its weights: drop --weights")
    if not Path(source).is_file():
        raise RobustmixError(
            f"SOURCE {source!r} is neither a file nor torchvision:ARCH, timm:ARCH or robustmix:MODEL: "
            "give a TorchScript file, a torch.export .pt2, or an architecture with --weights"
        )
    return "program", source


def read_state_dict(path: str | Path, blob: bytes) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch.save file (weights_only=True: pickled code is refused)."""
    if blob[8:9] == b"{" or str(path).endswith(".safetensors"):
        from safetensors.torch import load as st_load

        try:
            state = st_load(blob)
        except Exception as e:  # safetensors raises several types on corrupt input
            raise RobustmixError(f"{path}: corrupt safetensors file ({str(e).splitlines()[0][:120]}): restore or re-save it") from None
    else:
        state = _unwrap(path)
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):  # saved from DataParallel / DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    if not state:
        raise RobustmixError(f"{path}: an empty state dict: save model.state_dict() of the trained model")
    return state


def _unwrap(path) -> dict[str, torch.Tensor]:
    """load_legacy_state (weights_only=True), also for a state dict kept inside a training checkpoint."""
    import warnings

    from ..store.legacy import load_legacy_state

    try:
        return load_legacy_state(Path(path))
    except RobustmixError as e:
        if "not a state dict" not in str(e):
            raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = torch.load(path, map_location="cpu", weights_only=True)  # already accepted by the restricted unpickler above
    for key in CONTAINERS:
        inner = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(inner, dict) and inner and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in inner.items()):
            return inner
    raise RobustmixError(f"{path}: not a state dict (a dict of name -> tensor, or one under {', '.join(CONTAINERS)}): save model.state_dict()")


def read_source(source: str, weights: str | Path | None, input_shape, num_classes: int) -> tuple[nn.Module, dict, bytes | None]:
    """(network with its weights, provenance, program bytes to keep or None) for a SOURCE."""
    kind, arch = parse_source(source, weights)
    if kind == "program":
        blob = read_bytes(arch)
        program_kind = programs.program_kind(blob, arch)
        info = {"source": program_kind, "arch": None, "file": str(arch), "file_sha256": sha256_of(blob)}
        if program_kind == "torch.export":
            blob = programs.sanitized_pt2(blob, arch)  # what the folder keeps (and load_pt2 re-checks): the checked archive
        return programs.KINDS[program_kind](blob, arch), info, blob
    blob = read_bytes(weights)
    state = read_state_dict(weights, blob)
    net = build_net(kind, arch, input_shape, num_classes, state)
    load_net_state(net, state, str(weights), f"{kind}:{arch} with {num_classes} classes and {input_shape[0]} input channel(s)")
    info = {"source": kind, "arch": arch, "file": str(weights), "file_sha256": sha256_of(blob)}
    return net, info, None


def parse_class_order(text: str | Sequence, classes: Sequence[str]) -> list[int]:
    """--class-order: for each network output k, the data-set class (a name, or an index) it stands for."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p) for p in text]
    names = {c: i for i, c in enumerate(classes)}
    order = []
    for p in parts:
        if p in names:
            order.append(names[p])
        elif re.fullmatch(r"[0-9]+", p) and int(p) < len(classes):
            order.append(int(p))
        else:
            raise RobustmixError(f"--class-order: {p!r} is neither a class of the data set nor an index below {len(classes)}")
    if sorted(order) != list(range(len(classes))):
        raise RobustmixError(f"--class-order must name each of the {len(classes)} classes exactly once (a permutation), got {len(order)} entries")
    return order
