"""Minimal-perturbation robustness: per example, the smallest L∞ eps at which the attacks fool it
(eps*), to a stated precision. Its distribution is the whole robust-accuracy-vs-eps curve from one
run, and it never saturates: where every model reads 99–100% error at a fixed eps, their eps*
still differ.

The search, per example (`minimal_eps`):
- eps lives on a grid of step `precision` up to `eps_max` (both [0, 1] units; the CLI's are 0–255);
- an example misclassified at x has eps* = 0;
- with "fab-t" among the attacks, FAB-T (a minimal-norm attack) runs once first, every target to
  the end: the distance it reaches, rounded up to the grid, is an upper bound where it is at most
  eps_max (that grid point counts as fooled: the point FAB found lies inside its ball);
- the other attacks are tried at eps_max, then by bisection on the grid: at each step every example
  still searching is attacked at the midpoint of its bracket (each example at its own eps: the
  attacks run on stacked rows with per-row eps), the attacks in the order given, each on the
  examples the ones before it left (a cascade); fooled halves the bracket from above, else from below;
- eps* is the smallest grid point known to be fooled: the attacks found an adversarial example
  within eps*, and none at the grid point below it on the example's search path. Not fooled at
  eps_max: eps* = inf (robust within the search range).
So err(eps) read off the eps* records (the share of examples with eps* ≤ eps) is, at a grid point,
what a fixed-eps run of the same attacks gives, except where an attack's success is not monotone
in eps for an example (tests/test_minimal.py measures the two against each other). Seeded: the
attacks' random starts follow (seed, example index), so the same seed gives the same eps*.

Cost: FAB-T's run (if asked) plus 1 + ⌈log2(eps_max / precision)⌉ rounds of the other attacks, each
on the examples still searching; `search_plan` states it for `--dry-run`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import torch
from torch import nn

from ..attacks import ATTACKS, Budget, Crafting, eval_mode, fab_minimal, memory_format, prepare_inputs, standard_layout
from ..data import pixels
from ..runtime.errors import RobustmixError
from ..store.checkpoint import Checkpoint
from .tally import adversarial_of

MINIMAL = "minimal"  # the attack name of a minimal-perturbation record
SEARCH_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")  # attacks the search can use (no shared gradient)


@dataclass(frozen=True)
class Search:
    """What the minimal-perturbation search runs: the attacks (in order; "fab-t" runs first, once,
    as a minimal-norm upper bound), the range (0, eps_max] and the grid step `precision`, [0, 1] units."""

    attacks: tuple[str, ...] = ("apgd-ce", "apgd-t")
    eps_max: float = 32 / 255
    precision: float = 0.25 / 255

    def validate(self) -> None:
        bad = [a for a in self.attacks if a not in SEARCH_ATTACKS]
        if not self.attacks or bad:
            raise RobustmixError(f"the minimal-perturbation search takes attacks among {', '.join(SEARCH_ATTACKS)}"
                                 + (f", not {', '.join(bad)}" if bad else ""))
        if not (0 < self.precision <= self.eps_max <= 1):
            raise RobustmixError(f"the search needs 0 < precision <= eps max <= 255/255, got precision {self.precision * 255:g}/255 "
                                 f"and eps max {self.eps_max * 255:g}/255 (0–255 scale on the command line)")

    @property
    def steps(self) -> int:
        """Grid points above 0: eps = precision, 2·precision, ..., eps_max."""
        return max(1, math.ceil(self.eps_max / self.precision - 1e-9))

    def value(self, j: int) -> float:
        return min(j * self.precision, self.eps_max)

    @property
    def rounds(self) -> int:
        """Attack rounds at most: eps_max, then the bisection."""
        return 1 + math.ceil(math.log2(self.steps))

    def to_dict(self) -> dict:
        return {"attacks": list(self.attacks), "eps_max_255": round(self.eps_max * 255, 6), "precision_255": round(self.precision * 255, 6)}


def search_plan(search: Search, budget: Budget) -> list[tuple[str, int, int]]:
    """(what, forwards, backwards) per example, at most: FAB-T once, then each attack per round."""
    out = []
    if "fab-t" in search.attacks:
        step = ATTACKS["fab-t"].plan(budget)
        out.append(("FAB-T, every target (the minimal-norm upper bound)", step.forwards, step.backwards))
    for a in search.attacks:
        if a == "fab-t":
            continue
        step = ATTACKS[a].plan(budget)
        out.append((f"{ATTACKS[a].label} × {search.rounds} round(s) + 1 check each", search.rounds * (step.forwards + 1),
                    search.rounds * step.backwards))
    return out


def minimal_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, search: Search, budget: Budget = Budget(), *,
                index: torch.Tensor | None = None, amp: str | None = None) -> torch.Tensor:
    """eps* per example ([0, 1] units; inf where no attack fools it within search.eps_max; 0 where x
    itself is misclassified). `index`: the examples' positions in the data set (random numbers
    follow them, so a chunk gives what the whole set would)."""
    search.validate()
    x, y = prepare_inputs(model, x, y)
    n, top = x.shape[0], search.steps
    index = torch.arange(n, device=x.device) if index is None else index.to(x.device)
    with eval_mode(model), torch.no_grad():
        wrong = model(x).float().argmax(1) != y
    lo = torch.zeros(n, dtype=torch.long, device=x.device)
    hi = torch.full((n,), top + 1, dtype=torch.long, device=x.device)  # top + 1: not known to be fooled within eps_max
    hi[wrong] = 0
    if "fab-t" in search.attacks:
        _, dist = fab_minimal(model, x, y, iters=budget.fab_iters, target_classes=budget.target_classes, amp=amp)
        grid = torch.ceil(dist / search.precision - 1e-6).clamp(min=1)
        hi = torch.where((dist <= search.eps_max) & ~wrong, grid.clamp(max=top).long(), hi)
    attacks = [a for a in search.attacks if a != "fab-t"]
    first = (hi == top + 1) & ~wrong
    fooled = _fooled_at(model, x, y, torch.full_like(hi, top), first, attacks, search, budget, index, amp)
    hi[first & fooled] = top
    lo[first & ~fooled] = top + 1  # robust within the range: the bracket is closed
    while True:
        active = (hi - lo > 1) & (hi <= top)
        if not bool(active.any()):
            break
        mid = (lo + hi) // 2
        fooled = _fooled_at(model, x, y, mid, active, attacks, search, budget, index, amp)
        hi = torch.where(active & fooled, mid, hi)
        lo = torch.where(active & ~fooled, mid, lo)
    values = torch.tensor([search.value(j) for j in range(top + 1)] + [float("inf")], dtype=torch.float64, device=x.device)
    return values[hi.clamp(max=top + 1)]


def _fooled_at(model, x, y, at: torch.Tensor, active: torch.Tensor, attacks: Sequence[str], search: Search, budget: Budget,
               index: torch.Tensor, amp) -> torch.Tensor:
    """N bools: whether the attacks, in order (each on the rows the ones before it left), fool each
    active example at its own eps, search.value(at[i]); inactive examples are not attacked (False)."""
    fooled = torch.zeros_like(active)
    if not bool(active.any()) or not attacks:
        return fooled
    points = sorted({int(j) for j in at[active].tolist()})
    eps = tuple(search.value(j) for j in points)
    wanted = torch.stack([active & (at == j) for j in points])  # k × N: one eps per example
    job = Crafting(model, x, y, budget.iters, amp or "none", budget=budget, index=index)
    for a in attacks:
        still = wanted & ~fooled.unsqueeze(0)
        if not bool(still.any()):
            break
        adv = ATTACKS[a].craft(replace(job, only=still), eps)  # k × N × C × H × W
        rows = still.nonzero()
        with eval_mode(model), torch.no_grad():
            logits = model(standard_layout(adv[rows[:, 0], rows[:, 1]], memory_format(x))).float()
        fooled[rows[:, 1]] |= logits.argmax(1) != y[rows[:, 1]]
    return fooled


def minimal_records(targets: list[Checkpoint], x: torch.Tensor, y: torch.Tensor, search: Search, budget: Budget, *,
                    batch_size: int = 500, amp: str = "none", device: torch.device | None = None,
                    on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
    """One record per target: its examples' eps* (0–255 scale, None where robust within eps_max),
    the search and the attacks' budget. x: N×C×H×W pixels (float or uint8), y: N labels."""
    search.validate()
    budget.validate()
    device = device or torch.device("cpu")
    out = []
    chunks = math.ceil(x.shape[0] / batch_size)
    for t in targets:
        t.model.to(device)
        found = []
        for b, (xb, yb) in enumerate(zip(x.split(batch_size), y.split(batch_size))):
            index = torch.arange(b * batch_size, b * batch_size + xb.shape[0], device=device)
            found.append(minimal_eps(t.model, pixels(xb.to(device)), yb.to(device), search, budget, index=index, amp=amp).cpu())
            if on_batch is not None:
                on_batch(b + 1, chunks)
        eps_star = torch.cat(found)
        meta = t.meta
        out.append({
            "target": t.name, "method": meta.get("method", "?"), "alpha": meta.get("alpha"), "seed": meta.get("seed"),
            "setting": "white-box", "attack": MINIMAL, "n": int(eps_star.numel()), **search.to_dict(),
            "eps_star_255": [None if not math.isfinite(v) else round(v * 255, 6) for v in eps_star.tolist()],
            "budget": {k: v for k, v in asdict(budget).items() if k not in ("square_on", "cascade")},
            "amp": amp, **adversarial_of(meta),
        })
    return out
