"""Stacked rows: k eps values × N examples as one batch of k·N rows with a per-row eps, step and
example index, so an attack runs every eps in one batch and its random numbers follow the
example, not the row (see `noise`). `on_rows` runs an attack on a chosen subset of the rows (a
k×N mask: the survivors of the attacks before it in a cascade, or one eps per example in the
minimal-perturbation search); the other rows keep x."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..runtime.errors import RobustmixError
from .execution import memory_format, standard_layout
from .noise import example_index


@dataclass(frozen=True)
class Rows:
    x: torch.Tensor  # n×C×H×W clean images
    y: torch.Tensor  # n labels
    eps: torch.Tensor  # n×1×1×1
    step: torch.Tensor  # n×1×1×1
    index: torch.Tensor  # n example indices (int64)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def select(self, rows: torch.Tensor) -> "Rows":
        """The given rows, x in the same standard memory layout (so results match a full batch)."""
        fmt = memory_format(self.x)
        return Rows(standard_layout(self.x[rows], fmt), self.y[rows], self.eps[rows], self.step[rows], self.index[rows])


def stack_rows(x: torch.Tensor, y: torch.Tensor, eps: Sequence[float], step: Sequence[float], index) -> Rows:
    """k = len(eps) copies of (x, y), copy i with eps[i] and step[i] (float32 values of the Python
    floats, as a single-eps call uses)."""
    k, n, fmt = len(eps), x.shape[0], memory_format(x)
    per_row = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).repeat_interleave(n).view(-1, 1, 1, 1)  # noqa: E731
    xs = x if k == 1 else standard_layout(x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:]), fmt)
    idx = example_index(n, index, x.device)
    return Rows(xs, y.repeat(k), per_row(list(eps)), per_row(list(step)), idx.repeat(k))


def unstack(x_adv: torch.Tensor, eps: Sequence[float], n: int) -> dict[float, torch.Tensor]:
    return {e: x_adv[i * n : (i + 1) * n] for i, e in enumerate(eps)}


def on_rows(rows: Rows, only: torch.Tensor | None, k: int, attack: Callable[[Rows, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`attack` ((the chosen Rows, their row numbers in `rows`) -> x_adv of those rows) run on the
    rows a k×N bool mask `only` selects, the other rows keeping x (no pass, no perturbation); on
    every row when `only` is None. An attacked row gets what it gets without the mask: each row's
    work and random numbers are its own."""
    if only is None:
        return attack(rows, torch.arange(rows.n, device=rows.x.device))
    n = rows.n // max(1, k)
    if tuple(only.shape) != (k, n):
        raise RobustmixError(f"only must be a {k}×{n} mask (eps × examples), got shape {tuple(only.shape)}")
    x_adv, todo = rows.x.clone(), only.to(rows.x.device).reshape(-1).nonzero().view(-1)
    if todo.numel():
        x_adv[todo] = attack(rows.select(todo), todo)
    return x_adv
