"""The catastrophic-overfitting guard of fast adversarial training (Wong, Rice, Kolter 2020).

FGSM-RS training can collapse within an epoch: PGD accuracy falls to about 0 while FGSM accuracy rises.
The guard holds out a fixed, seeded batch of training images (never trained on) and measures, after every
epoch, PGD accuracy (`robustmix.attacks.pgd`, GUARD_ITERS steps) and FGSM accuracy on it. A collapse is
either sign: PGD accuracy more than GUARD_DROP points below the best earlier epoch's (Wong et al.'s early
stop), or FGSM accuracy more than GUARD_GAP points above PGD accuracy (the one-step attack fails where
the iterative one succeeds: the loss surface has bent around the training attack; a sound robust model
reads FGSM a few points above PGD). On a collapse the guard puts back the weights of the last epoch
that passed and stops, with a one-line warning that meta.json records and `robustmix train` prints; a
collapse in the first epoch leaves nothing to put back and ends training with a one-line error. On by
default for fgsm-rs (`adv_guard`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..attacks import fgsm, pgd
from ..runtime.errors import RobustmixError
from ..data import Dataset, pixels
from ..models.predict import eval_mode
from .adversarial import Setting
from .precision import autocast

GUARD_EXAMPLES = 512  # held-out training images the guard measures PGD accuracy on (at most 10% of the set)
GUARD_ITERS = 10  # PGD steps of the guard (step 2.5·eps/10)
GUARD_DROP = 20.0  # points of PGD accuracy lost since the best epoch that count as a collapse (Wong et al.: 0.2)
GUARD_GAP = 25.0  # points by which FGSM accuracy may exceed PGD accuracy before it counts as a collapse


def hold_out(data: Dataset, info: dict, adv, seed: int) -> tuple[Dataset, tuple | None, dict]:
    """(training data without the guard's images, the guard batch (x, y) or None, info): the
    catastrophic-overfitting guard measures PGD accuracy on training images it never trains on."""
    pick = held_out_indices(data.x_train.shape[0], seed, adv is not None and adv.guard)
    if pick is None:
        return data, None, info
    pick = pick.to(data.x_train.device)
    keep = torch.ones(data.x_train.shape[0], dtype=torch.bool, device=data.x_train.device)
    keep[pick] = False
    guard = (pixels(data.x_train[pick]), data.y_train[pick])
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep]), guard, {**info, "guard_held_out": int(pick.numel())}


def snapshot(t) -> dict[str, torch.Tensor]:
    """A copy of what the guard may roll back to: the model's (and the weight average's) state."""
    state = {f"model.{k}": v.detach().clone() for k, v in t.model.state_dict().items()}
    if t.ema is not None:
        state.update({f"ema.{k}": v.detach().clone() for k, v in t.ema.state_dict().items()})
    return state


def roll_back(t, last_good: dict[str, torch.Tensor] | None, history: list[dict], why: str) -> str:
    """Catastrophic overfitting (`why`): put back the last epoch that passed the guard and stop. Returns the
    one-line warning that meta.json records (and `robustmix train` prints). In the first epoch there is no
    epoch to put back: RobustmixError."""
    bad = history[-1]
    if len(history) < 2:
        raise RobustmixError(f"catastrophic overfitting in epoch {bad['epoch']}, the first: {why}; no epoch to roll back to: "
                             "lower --lr or --adv-step-size, or train with --adversarial pgd")
    if last_good is not None:
        t.model.load_state_dict({k[6:]: v for k, v in last_good.items() if k.startswith("model.")})
        if t.ema is not None:
            t.ema.load_state_dict({k[4:]: v for k, v in last_good.items() if k.startswith("ema.")})
    bad["rolled_back"] = True
    return f"catastrophic overfitting at epoch {bad['epoch']}: {why}; rolled back to epoch {bad['epoch'] - 1} and stopped"


def held_out_indices(n_train: int, seed: int, guard: bool) -> torch.Tensor | None:
    """Indices of the training images held out for the guard (seeded; at most 10% of the set), or None."""
    if not guard:
        return None
    k = max(1, min(GUARD_EXAMPLES, n_train // 10))
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 7919))[:k].sort().values


def check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: Setting, *, amp: str = "none") -> dict[str, float]:
    """{"guard_pgd_acc", "guard_fgsm_acc"} (%) of `model` on the held-out guard batch: robustmix.attacks.pgd
    (GUARD_ITERS steps, one restart, a fixed seed: the same examples every epoch) and robustmix.attacks.fgsm,
    in eval mode."""
    out = {}
    for name, x_adv in (("guard_pgd_acc", pgd(model, x, y, eps=s.eps, iters=GUARD_ITERS, restarts=1, seed=0, amp=amp)),
                        ("guard_fgsm_acc", fgsm(model, x, y, eps=s.eps, amp=amp))):
        with torch.no_grad(), eval_mode(model), autocast(x.device, amp):
            out[name] = round(100.0 * float((model(x_adv).argmax(1) == y).float().mean()), 3)
    return out


def collapse(history: list[dict]) -> str | None:
    """Why the last epoch counts as catastrophic overfitting, or None: its guard PGD accuracy fell more than
    GUARD_DROP points below the best earlier epoch's (Wong et al.'s early stop compares with the previous
    epoch; the best one also catches a slide over two epochs), or its FGSM accuracy exceeds its PGD
    accuracy by more than GUARD_GAP points."""
    last, earlier = history[-1], [r["guard_pgd_acc"] for r in history[:-1]]
    pgd_acc, fgsm_acc = last["guard_pgd_acc"], last.get("guard_fgsm_acc")
    if earlier and pgd_acc < max(earlier) - GUARD_DROP:
        return f"guard PGD accuracy fell to {pgd_acc:.1f}% (best {max(earlier):.1f}%)"
    if fgsm_acc is not None and fgsm_acc - pgd_acc > GUARD_GAP:
        return f"guard FGSM accuracy {fgsm_acc:.1f}% but PGD accuracy {pgd_acc:.1f}%"
    return None
