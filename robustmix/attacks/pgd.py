"""PGD (Madry et al. 2018), L∞, untargeted: a uniform random start in the eps-ball, `iters` signed
gradient steps of cross-entropy, each projected back to the ball and to [0, 1], and `restarts`
random restarts, keeping the worst case per example.

Where the code comes from: our own, because no library's PGD is all of what the evaluator needs:
- bit for bit torchattacks' PGD given the same start (its arithmetic: x_adv + step·sign(g), then
  delta = clamp(x_adv − x, −eps, eps), x_adv = clamp(x + delta, 0, 1));
  tests/test_strong_attacks.py checks it on CPU;
- every eps stacked in one batch (per-example eps and step), like I-FGSM;
- seeded without the global RNG and independent of batch size and sharding (`noise.uniform`);
- no silent success: an example fooled at any step of any restart is returned as an adversarial
  example (adv-lib keeps the first one it finds; here the final iterate when it is adversarial, so
  the torchattacks comparison holds, else the first adversarial iterate); later restarts attack
  only the examples not fooled yet, so R restarts are never weaker than one run, per example.
adv-lib's `pgd_linf` (best PGD in AttackBench) is the second implementation it is compared with
(tests/test_strong_agreement.py) and timed against (benchmarks/attack_speed.py).

eps and step in [0, 1] pixel units (the CLI's 0–255 scale divided by 255).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .budget import PGD_ITERS
from .execution import (
    Crafting,
    check_eps,
    check_iters,
    logits_and_gradient,
    memory_format,
    prepare_inputs,
    standard_layout,
)
from .noise import uniform
from .rows import Rows, on_rows, stack_rows, unstack

PGD_STEP_SCALE = 2.5  # step = 2.5 · eps / iters: a run can cross the ball and come back (Madry et al.'s robustness library)


def check_restarts(restarts: int) -> int:
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise RobustmixError(f"restarts must be an integer >= 1, got {restarts!r}")
    return restarts


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    iters: int = PGD_ITERS,
    step: float | None = None,
    restarts: int = 1,
    seed: int = 0,
    start: torch.Tensor | None = None,
    amp: str | None = None,
) -> torch.Tensor:
    """PGD with random start and restarts; returns x_adv (N×C×H×W in [0, 1], ‖x_adv − x‖∞ ≤ eps).

    step defaults to 2.5·eps/iters. `start`: an explicit first perturbation for the first restart
    (N×C×H×W, |start| ≤ eps), e.g. to reproduce another library's run; else the start is drawn
    uniformly from the ball, from `seed` (same seed, same examples).

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import pgd
        >>> x_adv = pgd(model, x, y, eps=8 / 255, iters=5, restarts=2, seed=0)
        >>> bool(x_adv.equal(pgd(model, x, y, eps=8 / 255, iters=5, restarts=2, seed=0)))  # same seed, same result
        True
    """
    eps = check_eps(eps)
    iters = check_iters(iters)
    step = PGD_STEP_SCALE * eps / iters if step is None else check_eps(step)
    x, y = prepare_inputs(model, x, y)
    if start is not None and (start.shape != x.shape or start.abs().max().item() > eps * (1 + 1e-6)):
        raise RobustmixError(f"start must have x's shape {tuple(x.shape)} and lie in the eps-ball (|start| <= eps)")
    rows = stack_rows(x, y, [eps], [step], None)
    with eval_mode(model):
        return _pgd_rows(model, rows, iters, check_restarts(restarts), seed, start, amp)


def pgd_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    iters: int = PGD_ITERS,
    restarts: int = 1,
    seed: int = 0,
    index: torch.Tensor | None = None,
    amp: str | None = None,
    only: torch.Tensor | None = None,
) -> dict[float, torch.Tensor]:
    """PGD at several eps in one stacked batch (step 2.5·eps/iters each); {eps: x_adv}, each equal
    bit for bit to ``pgd(model, x, y, eps=e, iters=iters, restarts=restarts, seed=seed)``.

    `index`: the examples' positions in the whole data set (default 0..N-1); the random starts
    are a function of (seed, restart, index), so an example gets the same start in any batch.
    `only`: a len(eps)×N bool mask of the (eps, example) rows to attack; the others keep x.
    """
    eps_list = [check_eps(e) for e in eps]
    iters = check_iters(iters)
    x, y = prepare_inputs(model, x, y)
    if not eps_list:
        return {}
    rows = stack_rows(x, y, eps_list, [PGD_STEP_SCALE * e / iters for e in eps_list], index)
    with eval_mode(model):
        restarts = check_restarts(restarts)
        x_adv = on_rows(rows, only, len(eps_list), lambda sub, _: _pgd_rows(model, sub, iters, restarts, seed, None, amp))
    return unstack(x_adv, eps_list, x.shape[0])


def craft_pgd(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """The evaluator's PGD: every eps stacked, k×N×C×H×W, with the budget's iterations, restarts
    and seed, the random starts following the examples' indices."""
    b = job.budget
    adv = pgd_sweep(job.model, job.x, job.y, eps=eps, iters=b.pgd_iters, restarts=b.pgd_restarts, seed=b.seed, index=job.index, amp=job.amp,
                    only=job.only)
    return torch.stack([adv[e] for e in eps])


def _pgd_rows(model, rows: Rows, iters: int, restarts: int, seed: int, start, amp) -> torch.Tensor:
    """PGD over stacked rows; restart r attacks only the rows no earlier restart fooled."""
    result = rows.x.clone()
    found = torch.zeros(rows.n, dtype=torch.bool, device=rows.x.device)
    for r in range(restarts):
        todo = (~found).nonzero().view(-1)
        if todo.numel() == 0:
            break
        sub = rows if r == 0 else rows.select(todo)
        if r == 0 and start is not None:
            delta = start.to(sub.x)
        else:
            u = uniform(seed, r, sub.index, sub.x[0].numel()).view(sub.x.shape).to(sub.x)
            delta = (2 * u - 1).mul_(sub.eps)
        x_adv, fooled = _pgd_run(model, sub, (sub.x + delta).clamp_(0.0, 1.0), iters, amp)
        # A later restart replaces a row only where it found an adversarial point: the last point
        # of an earlier run may be adversarial unseen (only found rows get the final forward).
        result[todo] = x_adv if r == 0 else torch.where(fooled.view(-1, 1, 1, 1), x_adv, result[todo])
        found[todo] = fooled
    return result


def _pgd_run(model, rows: Rows, x_adv: torch.Tensor, iters: int, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """One PGD run from x_adv: (x_adv to return, rows known to be fooled).

    Each step: one forward+backward (its logits say whether the current point is adversarial:
    the first adversarial point is kept), then the torchattacks arithmetic in place. For the rows
    that met an adversarial point, one more forward at the last point decides between it and the
    kept one (the other rows return their last point whatever it is: nothing better was seen).
    """
    x, y, eps, step = rows.x, rows.y, rows.eps, rows.step
    neg_eps = -eps
    first = torch.empty_like(x)
    found = torch.zeros(rows.n, dtype=torch.bool, device=x.device)
    for _ in range(iters):
        logits, grad = logits_and_gradient(model, x_adv, y, amp=amp)
        new = (logits.argmax(1) != y) & ~found  # no host sync in the loop: torch.where, not indexing
        first = torch.where(new.view(-1, 1, 1, 1), x_adv, first)
        found |= new
        x_adv = x_adv.addcmul_(step, grad.sign_())
        x_adv.sub_(x).clamp_(neg_eps, eps).add_(x).clamp_(0.0, 1.0)
    rows_found = found.nonzero().view(-1)
    if rows_found.numel():
        with torch.inference_mode():
            lost = model(standard_layout(x_adv[rows_found], memory_format(x))).float().argmax(1) == y[rows_found]
        x_adv[rows_found[lost]] = first[rows_found[lost]]
    return x_adv, found
