"""Device choice (`auto` means cuda, then mps, then cpu), and where a run is: the processor, its kernels,
the host and the scheduler's job."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import torch

from .errors import RobustmixError


def cpu_kernels(device: torch.device | str = "cpu") -> str | None:
    """The instruction set of torch's CPU kernels ("AVX2", "AVX512", ...; None off the CPU).

    Recorded beside `processor` because a model name such as "AMD EPYC" covers chips with and
    without AVX-512, whose kernels give other weights from the same seed (a Zen 4 EPYC and an AVX2
    EPYC trained different CIFAR-10 models from seed 0, reports/puzzlemix.md).
    """
    if torch.device(device).type != "cpu":
        return None
    return getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()


def processor(device: torch.device | str = "cpu") -> str:
    """The chip a device's numbers come from: the GPU's name, or the CPU's model name.

    Recorded beside results that are compared bit for bit (the bench baseline): CPU float kernels
    differ between processor models (oneDNN picks AVX2, AVX-512 or AMX code), so the same code and
    seed give slightly different weights and per-example results on another CPU.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_and_job() -> dict:
    """{"hostname": this machine's name, "job_id": the scheduler's job this process runs in, or None}:
    "slurm:1234_5" in a Slurm array task (1234 the array, 5 the task), "slurm:1234" in a plain Slurm job,
    "submitit-local:PID" in a job of submitit's local executor. Read from the environment the scheduler
    sets, so recording it needs no scheduler package."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    elif env.get("SLURM_JOB_ID"):
        job = f"slurm:{env['SLURM_JOB_ID']}"
    elif env.get("SUBMITIT_LOCAL_JOB_ID"):
        job = f"submitit-local:{env['SUBMITIT_LOCAL_JOB_ID']}"
    else:
        job = None
    return {"hostname": socket.gethostname(), "job_id": job}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobustmixError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RobustmixError(f"device {name!r} asked for but CUDA is not available here: use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RobustmixError(f"device {name!r} asked for but MPS is not available here: use --device cpu or auto")
    return device
