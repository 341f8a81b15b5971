"""distributed.py on 2 CPU processes with gloo (torch.multiprocessing, no torchrun needed)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from robustmix.runtime.distributed import World, gather_cat, shard, sync_batchnorm


def test_shards_cover_every_item_once_in_order():
    for n in (0, 1, 7, 360):
        for size in (1, 2, 3, 8):
            parts = [list(range(n))[shard(n, World(rank=r, size=size))] for r in range(size)]
            assert sum(parts, []) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.set_num_threads(1)
    # float64: the maths is compared, not float32 rounding (a conv followed by BatchNorm has
    # near-zero, cancellation-dominated weight gradients)
    torch.set_default_dtype(torch.float64)
    world = World(rank=rank, size=size)
    # gather: uneven pieces come back whole and in rank order
    x = torch.arange(7)[shard(7, world)]
    out[f"gather{rank}"] = gather_cat(x, world).tolist()
    # CPU sync batchnorm == plain batchnorm on the global batch (forward, grads, running stats)
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    xs = torch.randn(10, 2, 4, 4)
    local = xs[shard(10, world)]
    model = sync_batchnorm(bn, torch.device("cpu"))
    y = model(local)
    w = torch.linspace(-1, 1, 10 * 3 * 16).view(10, 3, 4, 4)
    (torch.sin(y) * w[shard(10, world)]).sum().backward()  # this rank's share of the global loss
    grads = [p.grad.clone() for p in model.parameters()]
    for g in grads:
        dist.all_reduce(g)
    out[f"y{rank}"] = y.detach()
    out[f"grads{rank}"] = grads
    out[f"running{rank}"] = model[1].running_var.clone()
    dist.destroy_process_group()


def test_gather_and_cpu_sync_batchnorm_on_two_gloo_processes():
    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    assert out["gather0"] == out["gather1"] == list(range(7))
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        ref = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
        xs = torch.randn(10, 2, 4, 4)
        y = ref(xs)
        (torch.sin(y) * torch.linspace(-1, 1, 10 * 3 * 16).view(10, 3, 4, 4)).sum().backward()
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.allclose(torch.cat([out["y0"], out["y1"]]), y.detach(), atol=1e-10)
    for g0, g in zip(out["grads0"], [p.grad for p in ref.parameters()]):
        assert torch.allclose(g0, g, atol=1e-10)
    assert torch.allclose(out["running0"], ref[1].running_var, atol=1e-10)
