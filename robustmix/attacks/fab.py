"""FAB-T (Croce & Hein, ICML 2020, "Minimally distorted adversarial examples with a fast adaptive
boundary attack"), L∞, targeted version as in AutoAttack's standard suite: a *minimal-norm* attack.

The algorithm, as in the authors' code (`fab_base.py` / `fab_pt.py` of fra31/auto-attack, read,
not copied; adv-lib's `fab` is a port):
- targets: the top-k other classes by clean logit, k = min(9, classes − 1), in turn (as APGD-T);
  each target runs on the examples not yet fooled;
- per iteration at the current point x1 (start: x itself; AutoAttack's FAB-T has one restart, so
  no random start): linearise g = z_t − z_y around x1 (one forward + backward), project both x1 and
  x onto the hyperplane g(x1) + ∇g·(z − x1) = 0 within the box [0, 1] with the smallest L∞ step
  (`project_linf`), and move to the biased combination
  x1 ← clip((x1 + η·d1)(1 − α) + (x + η·d2)·α), α = min(‖d1‖∞ / (‖d1‖∞ + ‖d2‖∞), α_max),
  η = 1.05, α_max = 0.1; if x1 is now misclassified (one forward), it is kept when closer to x
  than the best so far and x1 ← x + β(x1 − x), β = 0.9 (back towards x);
- 100 iterations per target; the result per example is the closest misclassified point found
  and its L∞ distance.

A minimal-norm attack does not depend on eps: the same run answers every eps (an example is fooled
at eps when its best distance is at most eps; otherwise x is returned, as AutoAttack does), so the
planner counts FAB-T once however many eps are stacked, and `fab_minimal` gives each example's
smallest distance found (the minimal-perturbation search uses it as an upper bound).

Where the code comes from: our own, for the stacking above, the evaluator's `only` mask and batch
independence (FAB has no random numbers here; every row's work is its own). The projection is
written from its definition (sort + cumulative sums, no bisection): for each row, the smallest δ
with Σ_i |w_i|·min(δ, room_i) ≥ |w·t − b| (room_i: how far coordinate i can move towards the
hyperplane inside [0, 1]) is read off the sorted breakpoints; where even the whole box cannot reach
the hyperplane, every coordinate moves to its bound (the authors' code does the same).
tests/test_autoattack_agreement.py compares it with adv-lib's FAB and torchattacks' FAB.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .apgd_targeted import check_targets, clean_targets
from .budget import FAB_ITERS, TARGETS
from .execution import Crafting, autocast, check_eps, check_iters, memory_format, prepare_inputs, standard_layout

ALPHA_MAX, ETA, BETA = 0.1, 1.05, 0.9  # AutoAttack's FAB parameters


def project_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row of t (n×d), the step d with the smallest ‖d‖∞ such that w·(t + d) = b and t + d ∈ [0, 1]^d;
    where the box cannot reach the hyperplane, the largest step towards it (every coordinate to its bound)."""
    c = (w * t).sum(1) - b  # > 0: w·z must fall by c
    toward = torch.where(c >= 0, -1.0, 1.0).unsqueeze(1) * torch.sign(w)  # the direction each coordinate moves (0 where w_i = 0)
    room = torch.where(toward > 0, 1 - t, t) * (w != 0)  # how far it can move inside [0, 1]
    need, weight = c.abs().unsqueeze(1), w.abs()
    r, order = room.sort(dim=1)
    a = weight.gather(1, order)
    cum_ar, cum_a = (a * r).cumsum(1), a.cumsum(1)
    total = cum_a[:, -1:]
    reach = cum_ar + r * (total - cum_a)  # how far w·z moves with every step capped at r_j: non-decreasing in j
    j = torch.searchsorted(reach.contiguous(), need.contiguous())  # the first breakpoint that reaches the hyperplane
    reachable = j < r.shape[1]
    jm = (j - 1).clamp(min=0)
    before_ar = torch.where(j > 0, cum_ar.gather(1, jm), 0.0)
    before_a = torch.where(j > 0, cum_a.gather(1, jm), 0.0)
    delta = ((need - before_ar) / (total - before_a).clamp(min=1e-30)).clamp(min=0.0)
    delta = torch.where(reachable, delta, torch.full_like(delta, float("inf")))
    return toward * torch.minimum(room, delta)


def _difference_and_gradient(model, x1, y, target, amp):
    """g = z_t − z_y at x1 and ∇x g (float32): one forward + backward."""
    x1 = x1.detach().requires_grad_(True)
    with torch.enable_grad():
        with autocast(x1, amp, gradient=True):
            logits = model(x1)
        logits = logits.float()
        g = logits.gather(1, target.view(-1, 1)).view(-1) - logits.gather(1, y.view(-1, 1)).view(-1)
        (grad,) = torch.autograd.grad(g.sum(), x1)
    return g.detach(), grad


def _predicted(model, x, amp) -> torch.Tensor:
    with torch.no_grad(), autocast(x, amp):
        return model(x).float().argmax(1)


def _fab_run(model, x0: torch.Tensor, y: torch.Tensor, target: torch.Tensor, iters: int, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """One targeted FAB run from x0 itself: (closest misclassified point found, its L∞ distance; inf if none)."""
    n, fmt = x0.shape[0], memory_format(x0)
    flat0 = x0.reshape(n, -1)
    x1 = x0.clone()
    best_adv, best = x0.clone(), torch.full((n,), float("inf"), device=x0.device)
    for _ in range(iters):
        g, grad = _difference_and_gradient(model, x1, y, target, amp)
        w = grad.reshape(n, -1)
        b = (w * x1.reshape(n, -1)).sum(1) - g  # the hyperplane w·z = b: g linearised at x1 is zero
        d = project_linf(torch.cat((x1.reshape(n, -1), flat0)), torch.cat((w, w)), torch.cat((b, b)))
        d1, d2 = d[:n], d[n:]
        a1 = d1.abs().amax(1).clamp(min=1e-8).view(-1, 1)
        a2 = d2.abs().amax(1).clamp(min=1e-8).view(-1, 1)
        alpha = (a1 / (a1 + a2)).clamp(0.0, ALPHA_MAX)
        step = ((x1.reshape(n, -1) + ETA * d1) * (1 - alpha) + (flat0 + ETA * d2) * alpha).clamp_(0.0, 1.0)
        x1 = standard_layout(step.view_as(x0), fmt)
        wrong = _predicted(model, x1, amp) != y
        dist = (x1 - x0).flatten(1).abs().amax(1)
        closer = wrong & (dist < best)
        best_adv = torch.where(closer.view(-1, 1, 1, 1), x1, best_adv)
        best = torch.where(closer, dist, best)
        x1 = torch.where(wrong.view(-1, 1, 1, 1), x0 + (x1 - x0) * BETA, x1)
    return best_adv, best


def fab_minimal(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iters: int = FAB_ITERS,
    target_classes: int = TARGETS,
    stop: torch.Tensor | float = 0.0,
    amp: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FAB-T's minimal perturbation per example: (x_adv, ‖x_adv − x‖∞), the closest misclassified
    point found over the targets (distance inf and x where none was found; 0 and x for an example
    misclassified at x). `stop` (a number or one per example, [0, 1] units): an example is no longer
    attacked once a point at most this far is found (0: every target runs, the smallest distance)."""
    adv = best = None
    for adv, best in _over_targets(model, x, y, iters=iters, target_classes=target_classes, stop=stop, amp=amp):
        pass
    return adv, best


def _over_targets(model, x, y, *, iters: int, target_classes: int, stop, amp) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(closest misclassified points, their distances) after each target in turn (once before the first)."""
    check_iters(iters)
    check_targets(target_classes)
    x, y = prepare_inputs(model, x, y)
    stop = torch.as_tensor(stop, dtype=torch.float32, device=x.device).expand(x.shape[0])
    with eval_mode(model):
        ranked, correct = clean_targets(model, x, y, target_classes, amp, "FAB-T")
        adv = x.clone()
        best = torch.where(correct, float("inf"), 0.0)
        yield adv, best
        for t in range(ranked.shape[1]):
            todo = (best > stop).nonzero().view(-1)
            if todo.numel() == 0:
                break
            sub = standard_layout(x[todo], memory_format(x))
            found, dist = _fab_run(model, sub, y[todo], ranked[todo, t], iters, amp)
            closer = dist < best[todo]
            adv[todo] = torch.where(closer.view(-1, 1, 1, 1), found, adv[todo])
            best[todo] = torch.where(closer, dist, best[todo])
            yield adv, best


def fab_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, iters: int = FAB_ITERS, target_classes: int = TARGETS,
                 amp: str | None = None) -> torch.Tensor:
    """FAB-T at eps: the closest misclassified point found where it lies within eps, else x. eps in [0, 1] units.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import fab_targeted
        >>> x_adv = fab_targeted(model, x, y, eps=8 / 255, iters=10, target_classes=3)
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        (torch.Size([6, 1, 8, 8]), True)
    """
    return fab_targeted_sweep(model, x, y, eps=[eps], iters=iters, target_classes=target_classes, amp=amp)[check_eps(eps)]


def fab_targeted_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    iters: int = FAB_ITERS,
    target_classes: int = TARGETS,
    amp: str | None = None,
    only: torch.Tensor | None = None,
) -> dict[float, torch.Tensor]:
    """FAB-T at several eps from one run; {eps: x_adv}, each equal to `fab_targeted` at that eps.
    `only`: a len(eps)×N bool mask of the (eps, example) rows wanted; an example runs once, until it
    is fooled within the smallest eps it is wanted at, and the other rows keep x."""
    eps_list = [check_eps(e) for e in eps]
    x, y = prepare_inputs(model, x, y)
    if not eps_list:
        return {}
    k, n = len(eps_list), x.shape[0]
    eps_t = torch.tensor(eps_list, dtype=torch.float32, device=x.device).view(-1, 1)
    wanted = torch.ones(k, n, dtype=torch.bool, device=x.device) if only is None else only.to(x.device)
    if tuple(wanted.shape) != (k, n):
        raise RobustmixError(f"only must be a {k}×{n} mask (eps × examples), got shape {tuple(wanted.shape)}")
    out = {e: x.clone() for e in eps_list}
    rows = wanted.any(0).nonzero().view(-1)
    if rows.numel() == 0:
        return out
    stop = torch.where(wanted, eps_t, float("inf")).amin(0)[rows]
    # each eps gets what a call at that eps alone returns: the closest point over the targets run
    # until one came within it (AutoAttack stops there); an example runs on for its smaller eps
    done = ~wanted[:, rows]
    for adv, dist in _over_targets(model, standard_layout(x[rows], memory_format(x)), y[rows], iters=iters, target_classes=target_classes,
                                   stop=stop, amp=amp):
        for i, e in enumerate(eps_list):
            take = ~done[i] & (dist <= e)
            out[e][rows[take]] = adv[take]
            done[i] |= take
    return out


def craft_fab_targeted(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """The evaluator's FAB-T: one run for every eps (k×N×C×H×W), the budget's iterations and targets;
    with `job.only` on those rows alone."""
    b = job.budget
    adv = fab_targeted_sweep(job.model, job.x, job.y, eps=eps, iters=b.fab_iters, target_classes=b.target_classes, amp=job.amp, only=job.only)
    return torch.stack([adv[e] for e in eps])
