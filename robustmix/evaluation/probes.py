"""Probes: measurements of a model besides the attack table, planned and run by the evaluator
(checks' probes) or by the study (model probes), recorded like the attacks.

The soundness checks' probes. `robustmix.soundness.checks` reads four kinds of probe record, one per
target (key "probe"):
- "unbounded": white-box PGD at eps 128/255, with the run's PGD budget (check 5);
- "converged": white-box PGD at every eps with twice the iterations and twice the restarts
  (check 6), compared with the run's PGD records;
- "gradients": how many examples have an all-zero, or a NaN/inf, input gradient at x, counted on
  the shared gradient pass (free; check 7);
- "model": how far two forward passes differ and whether the outputs look like probabilities,
  from the once-per-evaluation model probe (`probe_model`, free; check 8).
The PGD probes run only when PGD is among the attacks (the strong suite) and white-box is a
setting; `--dry-run` counts their passes. Checks run on every evaluation with more than one
attack unless `EvalConfig.checks` is off. With `EvalConfig.probe_examples` = m the two PGD probes
run on a seeded, stratified subset of m examples (`probe_subset`; their records carry it as the
bit-string "probe_subset") and check 6 compares the run's PGD with the doubled one on those same
examples: the comparison stays paired, so the subset only widens its noise (see
docs/guides/sound-evaluation.md#probes-on-a-subset).

The model probes: the paper's Figure 2 quantities between pairs of training examples, and
calibration (reliability diagrams, ECE); the figures are drawn by `robustmix.reporting.figures`.

Figure 2 (docs/protocol.md#figure-2), robustmix's stated choices: pairs of *training* examples drawn
at random with a seeded generator, by default only pairs with y_i != y_j (equal-label pairs can
never miss); x = λ·x_i + (1−λ)·x_j on a λ grid from 0 to 1; (a) miss rate = % of pairs predicted
as neither y_i nor y_j; (b) the per-example L2 norm of ∇x of the cross-entropy with the mixed
target λ·onehot(y_i) + (1−λ)·onehot(y_j), averaged over pairs.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import ATTACKS, WORST, Budget
from ..data import pixels, stratified_subset
from ..models.predict import eval_mode, predict_logits
from ..runtime.errors import RobustmixError, RobustmixWarning
from .plan import Pass, eps_groups, nested, nested_groups

UNBOUNDED_EPS = 128 / 255
PROBE_ATTACK = "pgd"


def checks_on(config) -> bool:
    """Soundness checks run on an evaluation with more than one attack (unless switched off)."""
    return bool(config.checks) and len([a for a in config.attacks if a != WORST]) > 1


def probe_budget(budget: Budget, probe: str) -> Budget:
    return budget.doubled() if probe == "converged" else budget


def probe_subset(y: torch.Tensor, examples: int | None, seed: int) -> torch.Tensor:
    """N bools: the examples the checks' PGD probes run on; every example when `examples` is None or
    at least N, else a stratified subset of that many drawn with `seed` (the same examples every run)."""
    n = int(y.numel())
    mask = torch.ones(n, dtype=torch.bool)
    if examples is None or examples >= n:
        return mask
    mask[:] = False
    mask[stratified_subset(torch.as_tensor(y).cpu(), examples, seed)] = True
    return mask


def probe_plan(targets: Sequence[str], config, per_pass: int, share: float = 1.0) -> list[Pass]:
    """The probes' passes for one chunk: per target, PGD at 128/255 and PGD doubled at every eps (nested
    over eps as the run's PGD is, so check 6 compares like with like); `share`: the part of the examples
    they run on (config.probe_examples)."""
    if not checks_on(config) or PROBE_ATTACK not in config.attacks or "white-box" not in config.settings:
        return []
    nests = nested(PROBE_ATTACK, "white-box", config.nest_eps, config.eps, "converged")
    converged = nested_groups(config.eps) if nests else [(g, None) for g in eps_groups(config.eps, per_pass)]
    plan = []
    for t in targets:
        for probe, groups in (("unbounded", [((UNBOUNDED_EPS,), None)]), ("converged", converged)):
            step = ATTACKS[PROBE_ATTACK].plan(probe_budget(config.budget, probe))
            nest = nests and probe == "converged"
            for group, after in groups:
                plan.append(Pass("craft", t, attack=PROBE_ATTACK, eps=group, forwards=step.forwards, backwards=step.backwards,
                                 what=f"check {probe}: {step.what}", probe=probe, share=share, nest=nest, after=after))
                plan.append(Pass("score", t, source=t, setting="white-box", attack=PROBE_ATTACK, eps=group, forwards=1, probe=probe,
                                 share=share, nest=nest, after=after))
    return plan


def bad_gradients(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: (input gradient all zero, input gradient has a NaN or inf)."""
    flat = grad.flatten(1)
    return (flat == 0).all(1), ~torch.isfinite(flat).all(1)


def model_record(name: str, findings: dict) -> dict:
    """The "model" probe record of one target, from `probe_model`'s findings."""
    return {"target": name, "setting": "white-box", "attack": "none", "probe": "model", "eps": 0.0, "eps_255": 0.0, **findings}


PROBE = 64  # examples in the probe batch of check_model


def probe_model(model: nn.Module, x: torch.Tensor, *, name: str = "model") -> tuple[torch.Tensor, dict]:
    """`check_model`, also returning its findings for the soundness checks:
    {"rerun_max_diff": largest difference of the two passes, "probabilities": outputs look like
    probabilities}."""
    param = next(model.parameters(), None)
    probe = x[:PROBE].to(param.device if param is not None else x.device)
    if probe.dtype == torch.uint8:
        probe = probe.float() / 255
    with eval_mode(model), torch.inference_mode():
        a = model(probe).float()
        b = model(probe).float()
    if a.dim() != 2 or a.shape[0] != probe.shape[0]:
        raise RobustmixError(f"{name} returned shape {tuple(a.shape)} for {probe.shape[0]} images: it must return N×classes logits")
    if not torch.isfinite(a).all():
        raise RobustmixError(f"{name} returns NaN or inf logits on clean inputs: fix or retrain the model before attacking it")
    probabilities = bool(a.shape[1] > 1 and a.min() >= 0 and a.max() <= 1 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-4))
    findings = {"rerun_max_diff": (a - b).abs().max().item(), "probabilities": probabilities}
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-5):
        warnings.warn(
            f"{name} looks randomized (two forward passes in eval mode differ by up to {(a - b).abs().max().item():.3g}): "
            "its gradients and error rates are unreliable; use a deterministic model or average over passes (EOT)",
            RobustmixWarning,
            stacklevel=2,
        )
    if probabilities:
        warnings.warn(
            f"{name} seems to output probabilities (rows in [0, 1] summing to 1), not logits: cross-entropy on "
            "probabilities masks gradients and understates attacks; remove the final softmax",
            RobustmixWarning,
            stacklevel=2,
        )
    return a, findings


# Model probes: Figure 2 and calibration.

def sample_pairs(y: torch.Tensor, n_pairs: int, *, seed: int = 0, distinct_labels: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (i, j) of `n_pairs` random pairs of examples, i != j, drawn with a seeded generator;
    with `distinct_labels`, only pairs with y[i] != y[j]."""
    y = torch.as_tensor(y).cpu()
    n = y.numel()
    if n_pairs < 1:
        raise RobustmixError(f"n_pairs must be >= 1, got {n_pairs}")
    if n < 2 or (distinct_labels and y.unique().numel() < 2):
        raise RobustmixError("need at least two examples (with two different labels) to draw pairs: use more data")
    gen = torch.Generator().manual_seed(seed)
    i_out, j_out, have = [], [], 0
    while have < n_pairs:  # rejection sampling: draw a surplus, keep the valid pairs
        i = torch.randint(n, (2 * n_pairs,), generator=gen)
        j = torch.randint(n, (2 * n_pairs,), generator=gen)
        keep = (i != j) & ((y[i] != y[j]) if distinct_labels else True)
        i_out.append(i[keep])
        j_out.append(j[keep])
        have += int(keep.sum())
    return torch.cat(i_out)[:n_pairs], torch.cat(j_out)[:n_pairs]


def interpolation_metrics(
    model: nn.Module,
    x_i: torch.Tensor,
    x_j: torch.Tensor,
    y_i: torch.Tensor,
    y_j: torch.Tensor,
    lams,
    *,
    batch_size: int = 512,
    per_pair: bool = False,
) -> dict[str, np.ndarray]:
    """The paper's Figure 2 quantities at x = λ·x_i + (1−λ)·x_j for each λ in `lams`.

    Returns {"lam": λ grid, "miss_rate": % of pairs predicted as neither y_i nor y_j,
    "grad_norm": mean over pairs of ‖∇x CE(f(x), λ·onehot(y_i) + (1−λ)·onehot(y_j))‖₂}.
    Pixels in [0, 1]; the model is evaluated in eval mode and handed back in the mode it came in;
    parameter gradients are not touched. With `per_pair`, also "miss" (pairs × λ, bool) and
    "grad" (pairs × λ, each pair's gradient norm), for intervals over pairs.
    """
    lams = np.asarray(lams, dtype=float)
    device = next(model.parameters()).device
    miss, norms = np.zeros(lams.size), np.zeros(lams.size)
    n = x_i.shape[0]
    miss_pp, grad_pp = np.zeros((n, lams.size), dtype=bool), np.zeros((n, lams.size))
    with eval_mode(model):
        for b in range(0, n, batch_size):
            xi, xj = pixels(x_i[b : b + batch_size].to(device)), pixels(x_j[b : b + batch_size].to(device))
            yi, yj = y_i[b : b + batch_size].to(device), y_j[b : b + batch_size].to(device)
            k = xi.shape[0]
            with torch.inference_mode():
                num_classes = model(xi[:1]).shape[1]
            oi, oj = F.one_hot(yi, num_classes).float(), F.one_hot(yj, num_classes).float()
            for li, lam in enumerate(lams):
                x = (lam * xi + (1 - lam) * xj).detach().requires_grad_(True)
                with torch.enable_grad():
                    logits = model(x)
                    # Sum over examples so each example's gradient is its own loss's gradient.
                    loss = F.cross_entropy(logits, lam * oi + (1 - lam) * oj, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x)
                pred = logits.detach().argmax(1)
                missed, norm = (pred != yi) & (pred != yj), grad.flatten(1).norm(dim=1)
                miss[li] += float(missed.sum())
                norms[li] += float(norm.sum())
                miss_pp[b : b + k, li], grad_pp[b : b + k, li] = missed.cpu().numpy(), norm.detach().cpu().numpy()
    out = {"lam": lams, "miss_rate": 100.0 * miss / n, "grad_norm": norms / n}
    return {**out, "miss": miss_pp, "grad": grad_pp} if per_pair else out


def figure2_curves(checkpoints: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, n_pairs: int = 1000,
                   lams=None, seed: int = 0, distinct_labels: bool = True) -> pd.DataFrame:
    """Figure 2 for several models on the *same* pairs of (training) examples.

    Returns a long DataFrame: checkpoint, lam, miss_rate (%), grad_norm, n_pairs, seed, distinct_labels.
    """
    lams = np.linspace(0, 1, 21) if lams is None else np.asarray(lams, dtype=float)
    i, j = sample_pairs(y, n_pairs, seed=seed, distinct_labels=distinct_labels)
    frames = []
    for name, model in checkpoints.items():
        m = interpolation_metrics(model, x[i], x[j], y[i], y[j], lams)
        frames.append(pd.DataFrame({"checkpoint": name, **m, "n_pairs": n_pairs, "seed": seed, "distinct_labels": distinct_labels}))
    return pd.concat(frames, ignore_index=True)


# --- calibration -------------------------------------------------------------------------------


def calibration(logits: torch.Tensor, y: torch.Tensor, *, n_bins: int = 10) -> dict:
    """Reliability diagram data and expected calibration error (ECE) of top-1 predictions.

    Equal-width confidence bins on [0, 1]; ECE = Σ_b (n_b / N)·|accuracy_b − confidence_b|, in
    percent. Written by hand (a few lines of numpy) because no dependency of ours provides it for
    multi-class top-1 confidence (sklearn's calibration_curve is binary only).
    Returns {"bin_lo", "bin_hi", "count", "confidence", "accuracy" (arrays; NaN for empty bins),
    "ece" (%), "n"}.
    """
    probs = torch.softmax(logits.float(), dim=1)
    conf, pred = probs.max(dim=1)
    conf = conf.cpu().numpy().astype(float)
    correct = (pred.cpu() == torch.as_tensor(y).cpu()).numpy()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct.astype(float), minlength=n_bins) / count
    filled = count > 0
    ece = 100.0 * float(np.sum(count[filled] / conf.size * np.abs(acc[filled] - mean_conf[filled])))
    return {"bin_lo": edges[:-1], "bin_hi": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc, "ece": ece, "n": int(conf.size)}


def calibration_frame(checkpoints: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, n_bins: int = 10) -> pd.DataFrame:
    """Calibration of several models on the same (test) examples: one row per checkpoint × bin,
    with columns checkpoint, bin_lo, bin_hi, count, confidence, accuracy, ece (%), n."""
    frames = []
    for name, model in checkpoints.items():
        c = calibration(predict_logits(model, x), y, n_bins=n_bins)
        frames.append(pd.DataFrame({"checkpoint": name, **c}))
    return pd.concat(frames, ignore_index=True)
