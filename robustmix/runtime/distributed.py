"""torch.distributed plumbing for `torchrun ... -m robustmix {train,attack}`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `init` joins the process group with the backend
that suits the device (nccl on CUDA, gloo on CPU). Without torchrun everything here is a no-op,
so single-process code paths are the same functions with world_size = 1.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    return World(
        rank=int(os.environ.get("RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group if launched by torchrun; returns (world, this rank's device)."""
    world = world_from_env()
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world, device


def finish() -> None:
    """Leave the process group cleanly (a no-op without torchrun).

    A rank that exits with the group still alive can have gloo's threads destroyed while they are
    joinable ("terminate called without an active exception", SIGABRT) when it finishes before
    the others: every rank waits for the rest, then the group is torn down.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(n: int, world: World) -> slice:
    """This rank's contiguous block of n items (sizes differ by at most one across ranks).

    Contiguous blocks, concatenated in rank order, give back the original order exactly.
    """
    return slice(n * world.rank // world.size, n * (world.rank + 1) // world.size)


def gather_cat(t: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate every rank's `t` (first dimensions may differ) in rank order."""
    if not world.distributed:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world.size)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over ranks (its backward sums the gradients over ranks)."""
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # deprecated in favour of a private API; still correct
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(t)


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of `t` over ranks (no gradient)."""
    t = t.clone()
    dist.all_reduce(t)
    return t


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics are taken over every rank's batch, on any device.

    torch's nn.SyncBatchNorm runs on GPUs only (it raises on CPU tensors); this is the same maths
    in a few lines with a differentiable all-reduce, so gloo runs on CPU train exactly like one
    process with the global batch (up to floating-point reduction order).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)

        # Two passes (mean, then squared deviations), as one process's BatchNorm does: the
        # one-pass E[x²] − E[x]² loses digits to cancellation.
        c = x.shape[1]
        count = torch.full((1,), float(x.numel() // c), device=x.device, dtype=x.dtype)
        stats = _all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        total = stats[-1]
        mean = stats[:c] / total
        var = _all_reduce((x - mean.view(1, c, 1, 1)).square().sum((0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * total / (total - 1))
                self.num_batches_tracked.add_(1)
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over all ranks: torch's SyncBatchNorm on CUDA, ours elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            sync_batchnorm(child, device)
    return model
