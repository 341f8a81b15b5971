"""Optimisation pieces of the fast recipe (after airbench94, KellerJordan/cifar10-airbench): SGD with
decoupled hyper-parameters, lookahead weight averaging, label smoothing on soft targets.

Decoupled SGD. `lr` and `weight_decay` are given per 1,024 examples and the loss is *summed* over
the batch (`loss_scale`). Dividing by the "kilostep scale" 1024·(1 + 1/(1 − momentum)) makes the
average step independent of the momentum (Nesterov steps are 1 + 1/(1 − m) times the gradient when
gradients are constant in time), and giving PyTorch's SGD weight_decay = wd/lr makes the decay per
step independent of the lr. BatchNorm biases learn 64× faster (same decay per step). Parameters that
never learn (requires_grad False when the optimiser is built) are left out.

Lookahead (airbench's "ema"): every 5 steps from a start epoch on, an average of the weights (and
BatchNorm statistics) moves towards the live weights, ema ← ρ·ema + (1 − ρ)·w, and the weights are
set to it; ρ = 0.95⁵·(step/total)³ grows over training (move fast early, average hard late). At the
end of every epoch the weights are set to the average.
"""

from __future__ import annotations

import torch
from torch import nn

BIAS_LR_SCALE = 64.0  # BatchNorm biases' lr multiplier (airbench94)
PER_EXAMPLES = 1024  # the decoupled lr and weight decay are per this many examples


def kilostep_scale(momentum: float) -> float:
    return PER_EXAMPLES * (1.0 + 1.0 / (1.0 - momentum))


def is_norm_bias(module: nn.Module, name: str) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and name == "bias"


def decoupled_sgd(model: nn.Module, *, lr: float, weight_decay: float, momentum: float, batch_size: int,
                  bias_scale: float = BIAS_LR_SCALE) -> torch.optim.SGD:
    """Nesterov SGD with airbench's decoupled lr and weight decay (both per 1,024 examples), for a
    loss summed over the batch. Two groups: BatchNorm biases (lr × bias_scale), everything else."""
    scale = kilostep_scale(momentum)
    base_lr = lr / scale
    decay = weight_decay * batch_size / scale  # the weight decay applied per step (× the schedule)
    norm, other = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                (norm if is_norm_bias(module, name) else other).append(p)
    groups = [dict(params=norm, lr=base_lr * bias_scale, weight_decay=decay / (base_lr * bias_scale)),
              dict(params=other, lr=base_lr, weight_decay=decay / base_lr)]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=base_lr, momentum=momentum, nesterov=True)


def loss_scale(optimizer: str, batch_examples: int) -> float:
    """The factor from the mean loss to the loss the optimiser expects: the sum for decoupled SGD."""
    return float(batch_examples) if optimizer == "decoupled-sgd" else 1.0


def smooth_labels(y_soft: torch.Tensor, smoothing: float) -> torch.Tensor:
    """(1 − s)·y + s/K: label smoothing on any soft target (mixup's too), as CrossEntropyLoss(label_smoothing=s)."""
    if smoothing <= 0:
        return y_soft
    return y_soft * (1.0 - smoothing) + smoothing / y_soft.shape[1]


class Lookahead:
    """Weight averaging with airbench94's schedule; `tensors()` / `load()` carry it through resume."""

    def __init__(self, every: int = 5, decay: float = 0.95, power: float = 3.0):
        self.every, self.decay, self.power = every, decay, power
        self.average: dict[str, torch.Tensor] | None = None

    @staticmethod
    def live(model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's floating-point state (weights and BatchNorm statistics), sharing its storage."""
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def blend(self, model: nn.Module, rho: float) -> None:
        for k, w in self.live(model).items():
            avg = self.average[k]
            avg.lerp_(w, 1.0 - rho)
            w.copy_(avg)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Call after optimiser step number `step` (1-based) of `total_steps`, once lookahead has started."""
        if step % self.every:
            return
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in self.live(model).items()}
        else:
            self.blend(model, self.decay ** self.every * (step / total_steps) ** self.power)

    def end_epoch(self, model: nn.Module) -> None:
        """Set the weights to the average (airbench does this after every epoch)."""
        if self.average is not None:
            self.blend(model, 1.0)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.average is None else {k: v.detach().cpu().contiguous() for k, v in self.average.items()}

    def load(self, tensors: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        self.average = {k: v.to(device) for k, v in tensors.items()} or None


def ema_model(model: nn.Module, decay: float):
    """Weight averaging as robust training uses it (Rebuffi et al. 2021: decay 0.995–0.999): an
    exponential moving average of the weights and of the BatchNorm statistics, updated after every
    optimiser step; the average is what is evaluated and saved. torch.optim.swa_utils' AveragedModel,
    not hand-written."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
