"""APGD-T (Croce & Hein, ICML 2020), L∞: APGD on the *targeted* DLR loss, run against each of the
top-k other classes in turn, as in AutoAttack's standard suite (`APGDAttack_targeted` in
fra31/auto-attack's `autopgd_base.py`; adv-lib's `apgd_targeted` is a port).

The algorithm, as in the authors' code:
- targets: the k = min(9, classes − 1) classes with the highest clean logits other than y, in
  order (AutoAttack: `output.sort(dim=1)[1][:, -target_class]` for target_class = 2..k+1 on the
  correctly classified examples); fewer than 4 classes is refused (the loss needs z_π3 and z_π4);
- the loss: targeted DLR = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12), shift- and
  scale-invariant (eq. 6 of the paper);
- for each target, `restarts` APGD runs (100 iterations, the step-size schedule and momentum of
  APGD, `apgd.apgd_run`), each from a fresh random start, on the examples not fooled yet; success
  is *untargeted* (argmax ≠ y), as in AutoAttack: the target only steers the loss;
- returned: an adversarial point where one was found (no silent success), else the last run's
  highest-loss point. An example misclassified at x is returned as x (AutoAttack attacks only the
  correctly classified points).

Where the code comes from: our own, written from the authors' code (read, not copied), for the same
reasons as APGD's (`apgd.py`): every eps stacked in one batch with per-example eps and step, random
starts from `noise.uniform` (same seed, same examples in any batch or shard), and the evaluator's
`only` mask (the cascade's survivors; the minimal-perturbation search's one eps per example).
tests/test_autoattack_agreement.py compares it with adv-lib's `apgd_targeted` and torchattacks' APGDT.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .apgd import APGD_ITERS, apgd_run, random_start
from .budget import TARGETS  # AutoAttack: n_target_classes = 9 for L∞
from .execution import Crafting, autocast, check_eps, check_iters, prepare_inputs
from .pgd import check_restarts
from .rows import Rows, on_rows, stack_rows, unstack

MIN_CLASSES = 4  # the targeted DLR loss reads the 1st, 3rd and 4th largest logits
STREAM = 1000  # noise streams of APGD-T's random starts: 1000 + target · restarts + restart (APGD's are 0..restarts−1)


def check_targets(target_classes: int) -> int:
    if isinstance(target_classes, bool) or not isinstance(target_classes, int) or target_classes < 1:
        raise RobustmixError(f"target classes must be an integer >= 1, got {target_classes!r}")
    return target_classes


def check_classes(num_classes: int, attack: str) -> None:
    """DLR-based targeted attacks need at least MIN_CLASSES classes: a one-line error otherwise."""
    if num_classes < MIN_CLASSES:
        raise RobustmixError(f"{attack} needs at least {MIN_CLASSES} classes (its loss reads the 4 largest logits; the model has "
                             f"{num_classes}): use APGD-CE, PGD or Square instead")


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted difference of logits ratio per example: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)."""
    check_classes(logits.shape[1], "APGD-T")
    z = logits.sort(dim=1).values
    z_y, z_t = logits.gather(1, y.view(-1, 1)).view(-1), logits.gather(1, target.view(-1, 1)).view(-1)
    return -(z_y - z_t) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)


def ranked_targets(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """N×k: the k classes with the highest logits other than y, highest first (for a correctly
    classified example, the classes ranked 2..k+1: AutoAttack's targets)."""
    others = logits.float().scatter(1, y.view(-1, 1), float("-inf"))
    return others.argsort(dim=1, descending=True)[:, :k]


def clean_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target_classes: int, amp, attack: str
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N×k target classes, N bool: correctly classified at x) from one forward pass at x."""
    with torch.no_grad(), autocast(x, amp):
        logits = model(x).float()
    check_classes(logits.shape[1], attack)
    k = min(target_classes, logits.shape[1] - 1)
    return ranked_targets(logits, y, k), logits.argmax(1) == y


def apgd_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    iters: int = APGD_ITERS,
    target_classes: int = TARGETS,
    restarts: int = 1,
    seed: int = 0,
    amp: str | None = None,
) -> torch.Tensor:
    """APGD-T: APGD on the targeted DLR loss against the top-`target_classes` other classes in turn; returns x_adv.
    eps in [0, 1] units.

    Examples:
        >>> import torch
        >>> from robustmix.models import build_model
        >>> model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=[0.3], std=[0.4]).eval()
        >>> x, y = torch.rand(6, 1, 8, 8), torch.arange(6)      # N×C×H×W pixels in [0, 1], N labels
        >>> from robustmix.attacks import apgd_targeted
        >>> x_adv = apgd_targeted(model, x, y, eps=8 / 255, iters=10, target_classes=3)
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        (torch.Size([6, 1, 8, 8]), True)
    """
    return apgd_targeted_sweep(model, x, y, eps=[eps], iters=iters, target_classes=target_classes, restarts=restarts, seed=seed,
                               amp=amp)[check_eps(eps)]


def apgd_targeted_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float],
    iters: int = APGD_ITERS,
    target_classes: int = TARGETS,
    restarts: int = 1,
    seed: int = 0,
    index: torch.Tensor | None = None,
    amp: str | None = None,
    only: torch.Tensor | None = None,
) -> dict[float, torch.Tensor]:
    """APGD-T at several eps in one stacked batch; {eps: x_adv}, each equal to `apgd_targeted` at that
    eps. `index`: the examples' positions in the data set (random starts follow the example); `only`:
    a len(eps)×N bool mask of the (eps, example) rows to attack, the others keep x."""
    eps_list = [check_eps(e) for e in eps]
    check_iters(iters)
    target_classes, restarts = check_targets(target_classes), check_restarts(restarts)
    x, y = prepare_inputs(model, x, y)
    if not eps_list:
        return {}
    rows = stack_rows(x, y, eps_list, [2 * e for e in eps_list], index)
    k = len(eps_list)
    with eval_mode(model):
        ranked, correct = clean_targets(model, x, y, target_classes, amp, "APGD-T")
        ranked, correct = ranked.repeat(k, 1), correct.repeat(k)  # per stacked row
        x_adv = on_rows(rows, only, k, lambda sub, at: _targeted_rows(model, sub, ranked[at], correct[at], iters, restarts, seed, amp))
    return unstack(x_adv, eps_list, x.shape[0])


def _targeted_rows(model, rows: Rows, ranked: torch.Tensor, correct: torch.Tensor, iters: int, restarts: int, seed: int, amp
                   ) -> torch.Tensor:
    """APGD-T over stacked rows (`ranked`: each row's target classes, `correct`: classified right at
    x): target by target, restart by restart, each run on the rows not fooled yet."""
    result = rows.x.clone()
    found = ~correct  # misclassified at x: x itself is adversarial (AutoAttack does not attack them)
    for t in range(ranked.shape[1]):
        for r in range(restarts):
            todo = (~found).nonzero().view(-1)
            if todo.numel() == 0:
                return result
            sub = rows.select(todo)
            target = ranked[todo, t]
            loss_fn = lambda logits, y=sub.y, target=target: targeted_dlr_loss(logits, y, target)  # noqa: E731
            adv, fooled = apgd_run(model, sub, random_start(seed, STREAM + t * restarts + r, sub), loss_fn, iters, amp)
            result[todo], found[todo] = adv, fooled
    return result


def craft_apgd_targeted(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
    """The evaluator's APGD-T: every eps stacked, k×N×C×H×W, with the budget's iterations, restarts,
    targets and seed; with `job.only` on those rows alone."""
    b = job.budget
    adv = apgd_targeted_sweep(job.model, job.x, job.y, eps=eps, iters=b.apgd_iters, target_classes=b.target_classes, restarts=b.apgd_restarts,
                              seed=b.seed, index=job.index, amp=job.amp, only=job.only)
    return torch.stack([adv[e] for e in eps])
