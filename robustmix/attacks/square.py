"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), L∞, untargeted: a
gradient-free random search, so it sees through masked gradients (the masking check).

The algorithm, as in the authors' code (AutoAttack's `square.py`, ported by torchattacks):
- start: vertical stripes, x + eps · s with s = ±1 drawn per (channel, column), clipped;
- each query: a square of side round(sqrt(p·H·W)) (at least 1) at a random place gets ±2·eps per
  channel on top of the best point so far, projected to the eps-ball and [0, 1]; kept when the
  margin loss z_y − max_{i≠y} z_i drops (or the example becomes misclassified);
- p starts at p_init = 0.8 and is halved at queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000
  of a 10,000-query schedule, rescaled to the budget (`rescale=True`, the authors' default) or
  not (`rescale=False`: AutoAttack's standard suite builds Square with resc_schedule=False, so with
  5,000 queries p halves at queries 10, 50, ..., 4000 as written);
- a query budget per example (AutoAttack uses 5,000); a fooled example stops being queried.

Where the code comes from: our own. torchattacks' Square is faithful, but it draws one square
place and one set of signs per iteration for the whole batch (so an example's attack depends on
which others share its batch), takes one scalar eps, reseeds the global RNG, and torchattacks
pins requests 2.25.1 (no core dependency). Here each example draws its own place and signs from
`noise.uniform` (the same seed gives the same examples in any batch and shard), every eps is
stacked in one batch, and each query is one forward pass over the examples still correctly
classified. tests/test_strong_agreement.py compares its error rates with torchattacks' Square.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .budget import SQUARE_QUERIES
from .execution import Crafting, autocast, check_eps, prepare_inputs
from .noise import uniform
from .rows import Rows, on_rows, stack_rows, unstack

SQUARE_P_INIT = 0.8
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of 10,000 queries: p halves after each


def square_fraction(i: int, queries: int, p_init: float = SQUARE_P_INIT, rescale: bool = True) -> float:
    """p at query i: the share of the image a square covers (the authors' p_selection, rescaled to
    the budget unless `rescale` is off)."""
    it = int(i / queries * 10000) if rescale else i
    return p_init / 2 ** sum(it > s for s in _SCHEDULE)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{i≠y} z_i per example: > 0 while the example is correctly classified."""
    z_y = logits.gather(1, y.view(-1, 1)).view(-1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return z_y - others.amax(1)


def square(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, queries: int = SQUARE_QUERIES, seed: int = 0, amp: str | None = None,
    rescale: bool = True,
) -> torch.Tensor:
    """Square attack with a budget of `queries` random-search steps per example (one forward each,
    after one for the start); returns x_adv.
    eps in [0, 1] units.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import square
        >>> x_adv = square(model, x, y, eps=8 / 255, queries=20, seed=0)
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        (torch.Size([6, 1, 8, 8]), True)
    """
    return square_sweep(model, x, y, eps=[eps], queries=queries, seed=seed, amp=amp, rescale=rescale)[check_eps(eps)]


def square_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    queries: int = SQUARE_QUERIES,
    seed: int = 0,
    index: torch.Tensor | None = None,
    amp: str | None = None,
    only: torch.Tensor | None = None,
    rescale: bool = True,
) -> dict[float, torch.Tensor]:
    """Square at several eps in one stacked batch; {eps: x_adv}. `index`: the examples' positions
    in the data set (their random squares follow the example, not the batch). `only`: a
    len(eps)×N bool mask; Square queries those (eps, example) rows alone and the others keep x
    (no query, no perturbation). An attacked row gets the x_adv it gets without the mask."""
    eps_list = [check_eps(e) for e in eps]
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise RobustmixError(f"queries must be an integer >= 1, got {queries!r}")
    x, y = prepare_inputs(model, x, y)
    if not eps_list:
        return {}
    rows = stack_rows(x, y, eps_list, eps_list, index)
    with eval_mode(model), torch.inference_mode():
        # the rows' noise is keyed by example index, so a subset draws what the full batch would
        x_adv = on_rows(rows, only, len(eps_list), lambda sub, _: _square_rows(model, sub, queries, seed, amp, rescale))
    return unstack(x_adv, eps_list, x.shape[0])


def craft_square(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """The evaluator's Square: every eps stacked, k×N×C×H×W, with the budget's queries and seed;
    with `job.only` (square_on="survivors") on those rows alone."""
    b = job.budget
    adv = square_sweep(job.model, job.x, job.y, eps=eps, queries=b.square_queries, seed=b.seed, index=job.index, amp=job.amp,
                       only=job.only, rescale=b.square_rescale)
    return torch.stack([adv[e] for e in eps])


def _square_rows(model, rows: Rows, queries: int, seed: int, amp, rescale: bool = True) -> torch.Tensor:
    x, y, eps = rows.x, rows.y, rows.eps
    n, c, h, w = x.shape

    def loss(xq: torch.Tensor, yq: torch.Tensor) -> torch.Tensor:
        with autocast(xq, amp):
            return margin(model(xq).float(), yq)

    stripes = torch.sign(2 * uniform(seed, 0, rows.index, c * w) - 1).to(x).view(n, c, 1, w)
    best = (x + eps * stripes).clamp_(0.0, 1.0)
    best_margin = loss(best, y)
    rr, cc = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    for i in range(queries):  # after the start, as the authors' loop (queries + 1 forwards at most)
        todo = (best_margin > 0).nonzero().view(-1)
        if todo.numel() == 0:
            break
        s = max(int(round(math.sqrt(square_fraction(i, queries, rescale=rescale) * h * w))), 1)
        s = min(s, h, w)
        u = uniform(seed, i + 1, rows.index[todo], 2 + c)
        top = (u[:, 0] * (h - s)).long().view(-1, 1, 1, 1)  # place: uniform in [0, H − s), as the authors
        left = (u[:, 1] * (w - s)).long().view(-1, 1, 1, 1)
        signs = torch.sign(2 * u[:, 2:] - 1).to(x).view(-1, c, 1, 1)
        inside = ((rr.view(1, 1, h, 1) >= top) & (rr.view(1, 1, h, 1) < top + s)
                  & (cc.view(1, 1, 1, w) >= left) & (cc.view(1, 1, 1, w) < left + s))
        x_t, e_t = x[todo], eps[todo]
        cand = torch.where(inside, best[todo] + 2 * e_t * signs, best[todo])
        cand = torch.min(torch.max(cand, x_t - e_t), x_t + e_t).clamp_(0.0, 1.0)
        m = loss(cand, y[todo])
        take = (m < best_margin[todo]) | (m <= 0)
        keep = todo[take]
        best[keep], best_margin[keep] = cand[take], m[take]
    return best
