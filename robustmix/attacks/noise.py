"""Seeded per-example random numbers for the randomized attacks (PGD and APGD starts, Square).

Why not a `torch.Generator`: a generator hands out one stream per call, so the random start an
example gets would depend on its position in the batch, on the batch size, on which examples an
earlier restart already fooled, on how eps values are stacked and on the torchrun shard: the same
seed would give different records for `--batch-size 100` and `--batch-size 500`. Here every number
is a pure function of (seed, stream, example index, position): a counter-based generator (the
SplitMix64 finaliser, Steele, Lea & Flood 2014, applied to a counter), computed with int64
tensor ops on the examples' device. So an example's noise is the same whatever batch, shard,
stack or device it is attacked in, and the global RNG is never touched.

int64 multiplication wraps modulo 2**64 in PyTorch on CPU and CUDA, which is the arithmetic
SplitMix64 needs; right shifts are made logical by masking off the sign extension.
"""

from __future__ import annotations

import torch

_GAMMA = 0x9E3779B97F4A7C15 - (1 << 64)  # the constants as signed int64
_M1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_M2 = 0x94D049BB133111EB - (1 << 64)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def _key(seed: int, stream: int) -> int:
    """One int64 key per (seed, stream), computed on a 1-element tensor so it wraps like the rest."""
    z = torch.tensor([(seed * 1_000_003 + stream) % (1 << 63)], dtype=torch.int64)
    return int(_mix(_mix(z) + _GAMMA)[0])


def uniform(seed: int, stream: int, index: torch.Tensor, n: int) -> torch.Tensor:
    """len(index) × n float32 numbers in [0, 1): row i depends only on (seed, stream, index[i]).

    `index`: int64 example indices (on the device the numbers are wanted on); `stream` names the
    use (a restart, an iteration), so different uses get independent numbers.
    """
    index = index.to(torch.int64).view(-1, 1)
    counter = index * n + torch.arange(n, device=index.device, dtype=torch.int64)
    z = _mix(counter * _GAMMA + _key(seed, stream))
    return _shr(z, 40).to(torch.float32) * (1.0 / (1 << 24))  # top 24 bits: exact in float32


def example_index(n: int, index: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """The examples' indices: `index` when given (e.g. positions in the whole test set), else 0..n-1."""
    if index is None:
        return torch.arange(n, device=device)
    return index.to(device=device, dtype=torch.int64).view(-1)
