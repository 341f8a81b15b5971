"""The mixing methods as small pure functions returning *soft targets*.

Input-space methods: (x, y, *, num_classes, alpha, gen) -> (x_mix, y_soft): ERM, mixup and its
ablations (inputs only, cross-class partners), CutMix. Manifold Mixup and Puzzle Mix need the model
(manifold mixes hidden features, Puzzle Mix takes a saliency gradient): they are marked
`needs_model = True` and called as (model, x, y, *, num_classes, alpha, gen) -> (logits, y_soft).
Nothing is changed in place; all randomness comes from `gen`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scipy.special import betaincinv

from ...runtime.errors import RobustmixError
from . import puzzlemix


def sample_lam(alpha: float, gen: torch.Generator) -> float:
    """lam ~ Beta(alpha, alpha), drawn from `gen` (alpha <= 0 gives 1.0, i.e. no mixing).

    torch.distributions.Beta cannot take a generator, so we invert the Beta CDF at a uniform draw
    from `gen`: one seeded generator then drives everything, and its state can be checkpointed.
    """
    if alpha <= 0:
        return 1.0
    u = torch.rand((), generator=gen, dtype=torch.float64).item()
    return float(betaincinv(alpha, alpha, u))


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Labels (N class indices) as float one-hot rows, N×num_classes."""
    return F.one_hot(y, num_classes).float()


def partner(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random permutation of the batch (the paper's pairing)."""
    return torch.randperm(y.shape[0], generator=gen).to(y.device)


def cross_class_partner(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For each example a uniformly drawn partner of a *different* class (itself if none in the batch)."""
    scores = torch.rand(y.shape[0], y.shape[0], generator=gen).to(y.device)
    scores = scores.masked_fill(y[:, None] == y[None, :], -1.0)
    best = scores.argmax(dim=1)
    alone = scores.max(dim=1).values < 0
    return torch.where(alone, torch.arange(y.shape[0], device=y.device), best)


def erm(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Empirical risk minimisation: the batch unchanged, with one-hot targets. x: N×C×H×W pixels in [0,
    1], y: N labels; returns (x, N×num_classes targets).
    """
    return x, one_hot(y, num_classes)


def mix_pair(x, y, lam: float, perm: torch.Tensor, num_classes: int):
    """Mix each example with its partner `perm[i]`: lam·x + (1 − lam)·x[perm] and the same mix of the
    one-hot labels. Returns (mixed pixels N×C×H×W, soft targets N×num_classes).
    """
    y1 = one_hot(y, num_classes)
    return lam * x + (1.0 - lam) * x[perm], lam * y1 + (1.0 - lam) * y1[perm]


def mixup(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Zhang et al. 2018: one lam per batch, partner = a random permutation of the batch."""
    lam = sample_lam(alpha, gen)
    return mix_pair(x, y, lam, partner(y, gen), num_classes)


def mixup_inputs_only(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Paper ablation: inputs mixed as in mixup, but the target is the dominant sample's label."""
    lam = sample_lam(alpha, gen)
    perm = partner(y, gen)
    return lam * x + (1.0 - lam) * x[perm], one_hot(y if lam >= 0.5 else y[perm], num_classes)


def mixup_cross_class(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Paper ablation: mixup whose partners are always of another class."""
    lam = sample_lam(alpha, gen)
    return mix_pair(x, y, lam, cross_class_partner(y, gen), num_classes)


def cutmix(x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Yun et al. 2019: paste a random box of the partner; lam = kept area after clipping the box.

    Not torchvision.transforms.v2.CutMix: it draws from the global RNG (and torch.distributions),
    and we need every draw from the seeded, checkpointable `gen`.
    """
    lam = sample_lam(alpha, gen)
    perm = partner(y, gen)
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (), generator=gen))
    cx = int(torch.randint(0, w, (), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x_mix = x.clone()
    x_mix[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    yh = one_hot(y, num_classes)
    return x_mix, lam * yh + (1.0 - lam) * yh[perm]


def manifold_mixup(model, x, y, *, num_classes: int, alpha: float, gen: torch.Generator):
    """Verma et al. 2019: mixup of the hidden features at the input of a uniformly chosen stage.

    The model must expose `stages()` (see robustmix.models); stage 0's input is the image, so input
    mixup is one of the choices, as in the authors' code. Returns (logits, y_soft).
    """
    from ...models import run_stages

    if not hasattr(model, "stages"):
        raise RobustmixError(f"{type(model).__name__} does not expose stages(): choose a model from robustmix.models for manifold-mixup")
    k = int(torch.randint(0, len(model.stages()), (), generator=gen))
    lam = sample_lam(alpha, gen)
    perm = partner(y, gen)
    logits = run_stages(model, x, mix_at=k, mix=lambda h: lam * h + (1.0 - lam) * h[perm])
    yh = one_hot(y, num_classes)
    return logits, lam * yh + (1.0 - lam) * yh[perm]


manifold_mixup.needs_model = True  # type: ignore[attr-defined]


def puzzle_mix(model, x, y, *, num_classes: int, alpha: float, gen: torch.Generator, options=None, after_mix=None):
    """Kim et al. 2020: saliency-guided graph-cut masks and block transport (robustmix.training.methods.puzzlemix).
    Options: `puzzlemix.PuzzleOptions` (defaults: the authors' CIFAR values). Returns (logits, y_soft).
    `after_mix(x_mix, y_soft)` replaces the mixed batch before its forward pass (adversarial training)."""
    lam = sample_lam(alpha, gen)
    perm = partner(y, gen)
    return puzzlemix.puzzle_mix(model, x, y, num_classes=num_classes, lam=lam, perm=perm, gen=gen, options=options,
                                after_mix=after_mix)


puzzle_mix.needs_model = True  # type: ignore[attr-defined]
puzzle_mix.takes_after_mix = True  # type: ignore[attr-defined]
puzzle_mix.options = puzzlemix.PuzzleOptions  # type: ignore[attr-defined]  # what `options` takes
puzzle_mix.network_passes = puzzlemix.PASSES  # type: ignore[attr-defined]  # forward+backward passes per batch


