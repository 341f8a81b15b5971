"""Training precision and memory layout: bfloat16 autocast (float32 master weights) and channels_last.

amp "none" trains in float32; "bf16" runs forward and backward under bfloat16 autocast on CPU or
CUDA, while the weights, the optimiser state and the gradients stay float32 (autocast casts
copies of the weights per op; no loss scaling is needed for bfloat16's float32 exponent range);
"auto" chooses bf16 only where it was measured faster: on CUDA, and on CPUs with AMX (Intel
Sapphire Rapids and later). Elsewhere bf16 has no hardware support on the CPU and is emulated: on
the AVX2 AMD EPYC this project is developed on, the fast CIFAR network trained ~16× *slower* in
bf16 than in float32 (reports/cifar10-cpu.md), so "auto" is float32 there.

channels_last (NHWC memory) is what oneDNN's and cuDNN's fastest convolution kernels want for
networks of 3×3 convolutions on images; "auto" follows `CHANNELS_LAST_MODELS` (measured per model).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

AMP_MODES = ("auto", "none", "bf16")

# Models measured faster in channels_last than NCHW on the CPU, float32 (reports/cifar10-cpu.md).
# "auto" keeps every other model in NCHW on the CPU, so their float32 runs are unchanged.
CHANNELS_LAST_MODELS = frozenset({"whiten_cnn", "learned_stem_cnn"})  # the same layout


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bfloat16 tiles (Linux /proc/cpuinfo flag amx_bf16, or torch's dispatch level)."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return "amx_bf16" in cpu_flags() or "AMX" in str(capability).upper()


def resolve_amp(amp: str, device: torch.device) -> str:
    """"none" or "bf16" for a config's amp on `device`; "auto" is bf16 on CUDA (with bf16 support)
    and on CPUs with AMX, float32 everywhere else (MPS included)."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    if device.type == "cpu" and cpu_has_amx():
        return "bf16"
    return "none"


def resolve_channels_last(setting: bool | str, device: torch.device, amp: str, model: str) -> bool:
    """A config's channels_last ("auto", True or False): auto is on for CUDA under bf16 (tensor-core
    convolutions want NHWC) and, on any device, for the models in CHANNELS_LAST_MODELS."""
    if setting != "auto":
        return bool(setting)
    return (device.type == "cuda" and amp == "bf16") or model in CHANNELS_LAST_MODELS


def autocast(device: torch.device, amp: str):
    """The context a training forward pass (and its loss) runs in: bf16 autocast, or nothing."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d batch in the training layout (a no-op when it already is)."""
    return x.contiguous(memory_format=memory_format(channels_last)) if x.dim() == 4 else x
