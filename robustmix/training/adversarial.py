"""Adversarial training: an option of every method (`TrainConfig.adversarial`), not a method of its own.

Kinds (`KINDS`, a plain dict):
    pgd      PGD-AT (Madry et al. 2018): a uniform random start in the eps-ball, `adv_steps` signed
             gradient steps of the cross-entropy (default 10, step 2.5·eps/steps as in Madry et al.'s
             robustness library: 2/255 at 8/255), crafted in train mode as Madry's and Rice et al.'s code do.
    fgsm-rs  fast adversarial training (Wong, Rice, Kolter 2020, "Fast is better than free"): one step of
             1.25·eps from a uniform random start, crafted in train mode (their code). It can collapse
             ("catastrophic overfitting"): the guard (robustmix.training.guard) measures PGD accuracy on a fixed,
             held-out batch after every epoch and rolls back and stops when it falls (their early stop).
    trades   TRADES (Zhang et al. 2019): the loss CE(f(x), y) + β·KL(f(x) ‖ f(x_adv)), x_adv maximising
             the KL from x + 0.001·N(0, 1), `adv_steps` steps (default 10, step 2.5·eps/steps ≈ the
             authors' 0.007 at 0.031), crafted in eval mode as the authors' code does.

Composition with the mixing methods (`COMPOSE`, the default per method; `adv_compose` overrides):
    iat    Interpolated Adversarial Training (Lamb et al. 2019): adversarial examples are crafted on the
           clean, unmixed batch against its labels; the method mixes the clean batch and, with fresh
           draws, the adversarial batch; the loss is the mean of the two mixed losses. mixup (and its
           ablations) and Manifold Mixup (IAT's own pairing).
    mixed  Rebuffi et al. 2021: the method mixes the clean batch, the attack crafts on the mixed input
           against its soft target, and the model trains on that adversarial input with the soft target.
           CutMix (their setting) and Puzzle Mix (its own `adv_p` stays what it is: an FGSM-style
           perturbation inside its mixing, independent of this option); TRADES always composes this way.
ERM has nothing to compose: it trains on x_adv (PGD-AT, FGSM-RS) or with the TRADES loss.

Why hand-written and not `robustmix.attacks.pgd`: training crafts in train or eval mode as the papers
do, against soft targets, under the trainer's autocast and memory layout, from the trainer's seeded,
checkpointed generator, with no restarts and no per-example bookkeeping; the input gradient alone is
taken (`torch.autograd.grad`), so no parameter gradient is computed or touched. The evaluation's
attacks stay the reference: the guard uses `robustmix.attacks.pgd` itself.

eps and step in [0, 1] pixel units here (the CLI's `--adv-eps` is on the 0–255 scale).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.predict import eval_mode
from ..runtime.errors import RobustmixError
from .methods import apply_method, soft_cross_entropy
from .methods.mixing import one_hot
from .optim import smooth_labels
from .precision import autocast


@dataclass(frozen=True)
class Kind:
    label: str  # what tables and labels print
    steps: int  # default crafting steps
    step_scale: float  # default step = step_scale · eps / steps
    start: str  # "uniform" (in the eps-ball) | "normal" (0.001·N(0, 1), TRADES)
    mode: str  # "train" | "eval": the mode the model crafts in, as the paper's code does
    guard: bool  # the catastrophic-overfitting guard on by default


KINDS = {
    "pgd": Kind("PGD-AT", steps=10, step_scale=2.5, start="uniform", mode="train", guard=False),
    "fgsm-rs": Kind("FGSM-RS", steps=1, step_scale=1.25, start="uniform", mode="train", guard=True),
    "trades": Kind("TRADES", steps=10, step_scale=2.5, start="normal", mode="eval", guard=False),
}
COMPOSITIONS = ("iat", "mixed")
COMPOSE = {"mixup": "iat", "mixup-inputs-only": "iat", "mixup-cross-class": "iat", "manifold-mixup": "iat",
           "cutmix": "mixed", "puzzle-mix": "mixed"}  # the default composition of each mixing method
MODES = ("auto", "train", "eval")
GUARD_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Setting:
    """One run's adversarial training, every default resolved (what meta.json records)."""

    kind: str
    eps: float  # [0, 1] units
    steps: int
    step: float  # [0, 1] units
    mode: str  # train | eval
    start: str
    compose: str  # "" (erm), iat or mixed
    beta: float  # TRADES
    guard: bool

    @property
    def label(self) -> str:
        """ "PGD-AT (ε = 8/255, 10 steps)", "FGSM-RS (ε = 8/255)", "TRADES (β = 6, ε = 8/255, 10 steps)"."""
        parts = ([f"β = {self.beta:g}"] if self.kind == "trades" else []) + [f"ε = {self.eps * 255:g}/255"]
        if self.steps != 1:
            parts.append(f"{self.steps} steps")
        return f"{KINDS[self.kind].label} ({', '.join(parts)})" + (f", {self.compose.upper()}" if self.compose == "iat" else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "eps_255": round(self.eps * 255, 6), "step_255": round(self.step * 255, 6), "label": self.label}


def adversarial_label(info: dict | None) -> str:
    """The label of a meta.json's (or a record's) `adversarial` entry: "" when the model was not
    adversarially trained."""
    return (info or {}).get("label", "") if isinstance(info, dict) else ""


def resolve(config) -> Setting | None:
    """The run's Setting from its TrainConfig, or None without adversarial training. Raises
    RobustmixError (one line naming the key) for what cannot be trained."""
    if not config.adversarial:
        return None
    kind = KINDS.get(config.adversarial)
    if kind is None:
        raise RobustmixError(f"adversarial must be one of {', '.join(KINDS)} (or empty for none), got {config.adversarial!r}")
    if config.adv_eps == 0:
        raise RobustmixError("adversarial training needs adv_eps, the radius in [0, 1] pixel units: e.g. 8/255 for CIFAR-10 "
                             "(the CLI's --adv-eps 8; --recipe auto chooses one for the data)")
    if not 0 < config.adv_eps <= 1:
        raise RobustmixError(f"adv_eps must be in (0, 1] pixel units (the CLI's --adv-eps is on the 0–255 scale), got {config.adv_eps!r}")
    steps = config.adv_steps or kind.steps
    if config.adversarial == "fgsm-rs" and steps != 1:
        raise RobustmixError(f"fgsm-rs takes one step (adv_steps 1), got {steps}: use --adversarial pgd for several")
    step = config.adv_step_size or kind.step_scale * config.adv_eps / steps
    if not 0 < step <= 1:
        raise RobustmixError(f"adv_step_size must be in (0, 1] pixel units, got {step!r}")
    if config.adv_mode not in MODES:
        raise RobustmixError(f"adv_mode must be one of {', '.join(MODES)}, got {config.adv_mode!r}")
    if config.adv_guard not in GUARD_MODES:
        raise RobustmixError(f"adv_guard must be one of {', '.join(GUARD_MODES)}, got {config.adv_guard!r}")
    if not config.trades_beta >= 0:
        raise RobustmixError(f"trades_beta must be >= 0, got {config.trades_beta!r}")
    compose = composition(config.method, config.adv_compose, config.adversarial)
    return Setting(kind=config.adversarial, eps=float(config.adv_eps), steps=int(steps), step=float(step),
                   mode=kind.mode if config.adv_mode == "auto" else config.adv_mode,
                   start="uniform" if config.adv_random_start and kind.start == "uniform" else (kind.start if config.adv_random_start else "none"),
                   compose=compose, beta=float(config.trades_beta),
                   guard=kind.guard if config.adv_guard == "auto" else config.adv_guard == "on")


def composition(method: str, asked: str, kind: str) -> str:
    """How `method` composes with adversarial training: "" for ERM, else iat or mixed (see the module)."""
    if method == "erm":
        return ""
    if asked not in ("auto", *COMPOSITIONS):
        raise RobustmixError(f"adv_compose must be auto, iat or mixed, got {asked!r}")
    chosen = "mixed" if kind == "trades" else COMPOSE.get(method, "mixed") if asked == "auto" else asked
    if kind == "trades" and asked == "iat":
        raise RobustmixError("trades composes with a mixing method as 'mixed' only (TRADES's KL term is taken on the mixed input)")
    if method == "manifold-mixup" and chosen == "mixed":
        raise RobustmixError("manifold-mixup mixes inside the network, so an attack cannot craft on its mixed input: "
                             "use adv_compose iat" + (" (trades needs an input-space method)" if kind == "trades" else ""))
    if kind == "trades" and method == "puzzle-mix":
        raise RobustmixError("trades does not compose with puzzle-mix (its mixed input stays inside the method): use pgd or fgsm-rs")
    return chosen


def passes(s: Setting | None, method_passes: int) -> int:
    """Forward+backward passes of a batch per training step: the method's, doubled by IAT (clean and
    adversarial halves) and by TRADES (natural and adversarial halves), plus one input-gradient pass per
    crafting step (the K of "K + 1")."""
    if s is None:
        return method_passes
    return method_passes * (2 if s.compose == "iat" or s.kind == "trades" else 1) + s.steps


def perturb(model: nn.Module, x: torch.Tensor, target: torch.Tensor, s: Setting, gen: torch.Generator, *,
            amp: str = "none", layout: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> torch.Tensor:
    """x_adv in the eps-ball around x (and in [0, 1]): `s.steps` signed steps of the soft cross-entropy
    against `target` (N×classes), or for TRADES of KL(f(x) ‖ f(x_adv)). The model crafts in `s.mode`
    (f(x) too); parameter gradients are never computed."""
    start = torch.zeros_like(x)
    if s.start == "uniform":
        start = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * s.eps
    elif s.start == "normal":
        start = 0.001 * torch.randn(x.shape, generator=gen).to(x.device)
    x_adv = layout((x + start).clamp(0, 1))
    lo, hi = (x - s.eps).clamp(min=0), (x + s.eps).clamp(max=1)
    with eval_mode(model) if s.mode == "eval" else contextlib.nullcontext():
        nat = None
        if s.kind == "trades":
            with torch.no_grad(), autocast(x.device, amp):
                nat = F.softmax(model(x).float(), dim=1)
        for _ in range(s.steps):
            x_adv.requires_grad_(True)
            with autocast(x.device, amp):
                logits = model(x_adv)
            if nat is None:
                loss = soft_cross_entropy(logits.float(), target)
            else:
                loss = F.kl_div(F.log_softmax(logits.float(), dim=1), nat, reduction="batchmean")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.max(torch.min(x_adv.detach() + s.step * grad.sign(), hi), lo)
    return layout(x_adv.detach())


def adversarial_step(s: Setting, method, model: nn.Module, net: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                     num_classes: int, alpha: float, gen: torch.Generator, amp: str, smoothing: float,
                     layout: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, logits, soft targets) of one training batch under adversarial training `s` composed with
    `method` (see the module). `model` crafts (the bare module, also under torchrun); `net` trains."""
    craft = lambda xm, ym: perturb(model, xm, ym, s, gen, amp=amp, layout=layout)  # noqa: E731
    mix = dict(num_classes=num_classes, alpha=alpha, gen=gen)
    if s.kind == "trades":
        return trades_step(s, method, net, x, y, craft=craft, amp=amp, smoothing=smoothing, layout=layout, **mix)
    if s.compose == "iat":
        x_adv = craft(x, one_hot(y, num_classes))
        with autocast(x.device, amp):
            logits_c, y_c = apply_method(method, net, x, y, **mix)
            logits_a, y_a = apply_method(method, net, x_adv, y, **mix)
        loss = 0.5 * (soft_cross_entropy(logits_c.float(), smooth_labels(y_c, smoothing))
                      + soft_cross_entropy(logits_a.float(), smooth_labels(y_a, smoothing)))
        return loss, logits_a, y_a
    with autocast(x.device, amp):  # ERM, or "mixed": craft on the mixed input, against its soft target
        logits, y_soft = apply_method(method, net, x, y, after_mix=craft, **mix)
    return soft_cross_entropy(logits.float(), smooth_labels(y_soft, smoothing)), logits, y_soft


def trades_step(s: Setting, method, net, x, y, *, craft, amp, smoothing, layout, num_classes, alpha, gen):
    """TRADES on the method's (mixed; ERM: the same) batch: CE(f(x_m), y_m) + β·KL(f(x_m) ‖ f(x_adv)), x_adv
    maximising the KL from x_m (Zhang et al.'s trades_loss, the method's soft target in the natural term;
    two forward passes in train mode, as theirs, so each half has its own batch statistics)."""
    x_m, y_m = method(x, y, num_classes=num_classes, alpha=alpha, gen=gen)
    x_m = layout(x_m)
    x_adv = craft(x_m, y_m)
    with autocast(x.device, amp):
        logits_nat, logits_adv = net(x_m).float(), net(x_adv).float()
    robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1), reduction="batchmean")
    loss = soft_cross_entropy(logits_nat, smooth_labels(y_m, smoothing)) + s.beta * robust
    return loss, logits_adv, y_m


