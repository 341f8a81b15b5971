"""Networks from elsewhere, rebuilt: torchvision and timm architectures (`SOURCES`, a plain dict),
robustmix's own, and TorchScript / torch.export programs (`robustmix.models.programs`), each
wrapped as an `ImportedModel`. Used by `robustmix import` to build what it brings in and by
`load_checkpoint` to rebuild an imported checkpoint from its meta.json. Nothing here downloads
anything: weights always come from a local file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..runtime.errors import RobustmixError
from . import programs
from .imported import ImportedModel


def sha256_of(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise RobustmixError(f"{path}: unreadable ({e.strerror}): check the path and its permissions") from None


def adapt_first_conv(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Rebuild convolutions whose weights in `state` take another number of input channels
    (torchvision builds 3-channel stems; a state dict trained on 1-channel images has 1)."""
    for name, conv in list(net.named_modules()):
        w = state.get(f"{name}.weight")
        if not isinstance(conv, nn.Conv2d) or w is None or w.dim() != 4 or w.shape[1] * conv.groups == conv.in_channels:
            continue
        if conv.groups != 1 or tuple(w.shape[2:]) != conv.kernel_size or w.shape[0] != conv.out_channels:
            continue
        new = nn.Conv2d(w.shape[1], conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                        bias=conv.bias is not None, padding_mode=conv.padding_mode)
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        setattr(parent, name.rpartition(".")[2], new)


def _torchvision(arch: str, channels: int, num_classes: int, state: dict) -> nn.Module:
    import torchvision.models as tvm

    if arch not in tvm.list_models():
        near = [m for m in tvm.list_models() if m.startswith(arch[:4])][:5]
        raise RobustmixError(f"unknown torchvision architecture {arch!r}" + (f" (did you mean {', '.join(near)}?)" if near else "")
                             + ": see torchvision.models.list_models()")
    try:
        net = tvm.get_model(arch, weights=None, num_classes=num_classes)
    except (TypeError, ValueError) as e:
        raise RobustmixError(f"torchvision could not build {arch!r} with {num_classes} classes ({e}): choose another architecture") from None
    adapt_first_conv(net, state)
    return net


def _timm(arch: str, channels: int, num_classes: int, state: dict) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise RobustmixError("timm:ARCH sources need timm: pip install 'robustmix[timm]'") from None
    if not timm.is_model(arch):
        raise RobustmixError(f"unknown timm architecture {arch!r}: see timm.list_models()")
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=channels)


def _robustmix(arch: str, channels: int, num_classes: int, state: dict, image_size: int = 32) -> nn.Module:
    from ..models import build_model

    return build_model(arch, in_channels=channels, num_classes=num_classes, image_size=image_size,
                       mean=[0.0] * channels, std=[1.0] * channels)


# kind -> builder(arch, channels, num_classes, state) -> an untrained network. Plain dict.
SOURCES = {"torchvision": _torchvision, "timm": _timm, "robustmix": _robustmix}


def build_net(kind: str, arch: str, input_shape, num_classes: int, state: dict) -> nn.Module:
    c, h = int(input_shape[0]), int(input_shape[1])
    if kind == "robustmix":
        return _robustmix(arch, c, num_classes, state, image_size=h)
    return SOURCES[kind](arch, c, num_classes, state)


def load_net_state(net: nn.Module, state: dict, where: str, what: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0]).rstrip(".")
        raise RobustmixError(f"{where}: the weights do not fit {what} ({detail[:110]}…): give the weights of that architecture") from None


PROGRAM_FILES = {"torchscript": "program.ts", "torch.export": "program.pt2"}


def rebuild(meta: dict, folder: Path, state: dict) -> ImportedModel:
    """The untrained-then-loaded shape of an imported checkpoint's model, from its meta.json and folder
    (`state` is the checkpoint's safetensors state dict, used to shape torchvision stems)."""
    imp = meta["import"]
    kind = imp["source"]
    if kind in PROGRAM_FILES:
        path = folder / PROGRAM_FILES[kind]
        blob = read_bytes(path)
        if sha256_of(blob) != imp.get("program_sha256"):
            raise RobustmixError(f"{path}: program does not match meta.json (sha256 differs; replaced or truncated): import it again")
        net = programs.KINDS[kind](blob, str(path))
    elif kind in SOURCES:
        inner = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        net = build_net(kind, imp["arch"], meta["input_shape"], meta["num_classes"], inner)
    else:
        raise RobustmixError(f"{folder / 'meta.json'}: unknown import source {kind!r}: import it again with this robustmix")
    norm = imp["normalization"]
    return ImportedModel(net, norm["mean"], norm["std"], bgr=norm.get("bgr", False), class_order=imp.get("class_order"))
