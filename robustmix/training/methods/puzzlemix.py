"""Puzzle Mix (Kim, Choo, Song, ICML 2020): saliency-aware masks found by graph cut, plus transport.

For a batch x, its partners x[perm] and lam ~ Beta(alpha, alpha), one block grid g × g is drawn and:
1. Saliency: |∇x CE(model(x), y)| (root-mean-square over channels), one extra forward+backward of the
   clean batch, with `torch.autograd.grad` so no parameter gradient is touched. Taken in eval mode
   (then restored), as in the authors' code, unless the clean-gradient regulariser is on.
2. Mask z (g × g, values k/m, the weight of x; 1 − z weighs the partner): minimises the paper's
   objective: −(visible saliency) + β·(label smoothness) + γ·(data smoothness at block borders)
   + η·(−log Binomial(m, lam) prior of each block's value), by alpha-beta swap (robustmix.training.methods.graphcut).
3. Transport: the blocks of each image are permuted towards the places where they stay visible,
   trading saliency against a location cost ξ·(squared block distance) (the paper's approximate
   batched algorithm, made to always return a permutation).
4. x_mix = z·T(x) + (1 − z)·T'(x[perm]); the target mixes y and y[perm] by the mask's mass.

Options (`PuzzleOptions`, CLI `--method-option KEY=VALUE`) default to the authors' CIFAR values
(README of snu-mllab/PuzzleMix: n_labels 3, β 1.2, γ 0.5, η 0.2, neigh_size 4, t_eps 0.8, t_size 4,
block grids 2, 4, 8, 16 drawn per batch). "adv": `adv_p` > 0 (authors: 0.1 on CIFAR-100, 0.15 on
Tiny-ImageNet, adv_eps 10). The clean-gradient regulariser: `clean_lam` > 0 (authors: 1 on
Tiny-ImageNet). The "half" variant is a training length, not an option: Puzzle Mix costs two
forward+backward passes per batch (`network_passes`, logged per epoch), so it is trained for half the
baselines' epochs (the authors: 600 against 1200) to use the same number of network evaluations.

We follow the authors' code (snu-mllab/PuzzleMix: main.py, mixup.py) for the normalisations (unary
saliency summing to 1 per image, β/(16·g), the Binomial prior over g² blocks, the reparametrisation of
the data-smoothness term into unary costs and an edge weight); the code here is our own. Deviations:
negative edge weights are clipped to 0 (a graph cut needs them non-negative; with pixels in [0, 1]
that happens only for γ > 2), the mask search starts from each block's cheapest value (gco's from
label 0; measured: our swap reaches lower energies on average), the saliency is taken
with respect to pixels in [0, 1] (the authors': normalised inputs), and the clean regulariser adds
clean_lam·CE(clean) to the cross-entropy loss (the authors' loss is a BCE on the softmax, with weight
2·clean_lam/num_classes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from ...runtime.errors import RobustmixError
from .graphcut import alpha_beta_swap

PAPER_GRIDS = (2, 4, 8, 16)
PASSES = 2  # forward+backward passes of the batch per training step: saliency, then the mixed batch


@dataclass(frozen=True)
class PuzzleOptions:
    beta: float = 1.2  # label smoothness
    gamma: float = 0.5  # data smoothness (differences across block borders)
    eta: float = 0.2  # weight of the Binomial(m, lam) prior
    xi: float = 0.8  # transport: weight of the location cost (the authors' t_eps)
    m: int = 2  # mask values k/m, k = 0..m (the authors' n_labels − 1)
    grids: tuple[int, ...] = ()  # block grids g (g × g) drawn per batch; () = 2, 4, 8, 16 where they divide the image
    neigh: int = 4  # pixels pooled for the data-smoothness term (neigh_size)
    transport: bool = True
    transport_size: int = 4  # transport block side in pixels (t_size); 0 = the mask's blocks
    adv_p: float = 0.0  # "adv": probability, per batch and per side, of an FGSM-style perturbation
    adv_eps: float = 10.0  # its size on the 0–255 scale
    clean_lam: float = 0.0  # clean-gradient regulariser: loss += clean_lam · CE(model(x), y)

    @classmethod
    def from_dict(cls, options: dict | None) -> "PuzzleOptions":
        """Options from a dict of values or strings (CLI); unknown keys and bad values raise RobustmixError."""
        known = {f.name: f for f in fields(cls)}
        kw = {}
        for key, value in (options or {}).items():
            if key not in known:
                raise RobustmixError(f"unknown puzzle-mix option {key!r}: choose from {', '.join(known)}")
            kw[key] = parse_value(key, value, known[key].type)
        opts = cls(**kw)
        opts.check()
        return opts

    def check(self) -> None:
        bad = [f"{k}={v}" for k, v in (("beta", self.beta), ("gamma", self.gamma), ("eta", self.eta), ("xi", self.xi),
                                          ("adv_eps", self.adv_eps), ("clean_lam", self.clean_lam)) if not v >= 0]
        bad += [f"m={self.m}"] * (self.m < 1) + [f"neigh={self.neigh}"] * (self.neigh < 1)
        bad += [f"grids={self.grids}"] * any(g < 1 for g in self.grids)
        bad += [f"transport_size={self.transport_size}"] * (self.transport_size < 0)
        bad += [f"adv_p={self.adv_p}"] * (not 0 <= self.adv_p <= 1)
        if bad:
            raise RobustmixError(f"bad puzzle-mix option {', '.join(bad)}: weights >= 0, m, neigh and grids >= 1, adv_p in [0, 1]")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def parse_value(key: str, value, kind: str):
    try:
        if kind.startswith("tuple"):
            parts = value.split(",") if isinstance(value, str) else value
            return tuple(int(p) for p in parts if str(p).strip())
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        return int(value) if kind == "int" else float(value)
    except (TypeError, ValueError):
        raise RobustmixError(f"puzzle-mix option {key}={value!r} is not a {kind.replace('tuple[int, ...]', 'list of ints')}") from None


def image_grids(options: PuzzleOptions, h: int, w: int) -> tuple[int, ...]:
    grids = options.grids or tuple(g for g in PAPER_GRIDS if g <= min(h, w))
    grids = tuple(g for g in grids if h % g == 0 and w % g == 0)
    if not grids:
        raise RobustmixError(f"no puzzle-mix block grid divides {h}×{w} images: pass --method-option grids=G1,G2 with divisors of {math.gcd(h, w)}")
    return grids


def saliency(model, x, y, *, clean_lam: float = 0.0):
    """(saliency (B, H, W), input gradient (B, C, H, W), clean loss or None).

    One forward+backward of the batch; `torch.autograd.grad` w.r.t. x only, so parameter `.grad`s are
    untouched. With clean_lam = 0 the model runs in eval mode (restored afterwards; batch-norm
    statistics are not updated); otherwise in train mode, and the returned clean loss keeps its graph
    so the regulariser can add its parameter gradient to the training step.
    """
    was_training = model.training
    if clean_lam == 0:
        model.eval()
    try:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x_in), y)
            (grad,) = torch.autograd.grad(loss, x_in, retain_graph=clean_lam > 0)
    finally:
        model.train(was_training)
    return grad.pow(2).mean(1).sqrt(), grad, (loss if clean_lam > 0 else None)


def block_mean(t: torch.Tensor, g: int) -> torch.Tensor:
    """(B, H, W) → (B, g, g) block means, each image normalised to sum 1 (the unary saliency)."""
    pooled = F.adaptive_avg_pool2d(t.unsqueeze(1), g).squeeze(1)
    return pooled / pooled.flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1)


def border_differences(upper, lower, k: int):
    """Mean |difference| across the block borders between images `upper` and `lower` (pooled, B×C×h×w,
    k pooled pixels per block): vertical edges (B, g−1, g) and horizontal edges (B, g, g−1)."""
    d_v = (upper[:, :, k - 1:-1:k, :] - lower[:, :, k::k, :]).abs().mean(1)
    d_h = (upper[:, :, :, k - 1:-1:k] - lower[:, :, :, k::k]).abs().mean(1)
    return F.avg_pool2d(d_v, (1, k)), F.avg_pool2d(d_h, (k, 1))


def mask_problem(sal, x, perm, lam: float, g: int, o: PuzzleOptions):
    """Unary costs (B, g, g, m+1), edge weights and label distance of the mask objective (numpy)."""
    bs = x.shape[-1] // g
    s = block_mean(sal, g)
    beta = o.beta / g / 16  # the authors' normalisation of β
    neigh = math.gcd(bs, min(o.neigh, bs))
    pooled = F.avg_pool2d(x, neigh)
    own_cost, partner_cost = s[perm].clone(), s.clone()  # choosing x hides the partner's saliency, and vice versa
    srcs = (pooled[perm], pooled)  # source 0: the partner, 1: x itself
    # D[a, b]: border differences (vertical edges, horizontal edges) with source a before the border, b after.
    D = {(a, b): border_differences(srcs[a], srcs[b], bs // neigh) for a in (0, 1) for b in (0, 1)}
    w_edges = []
    for axis in (0, 1):  # 0: edges between block rows, 1: between block columns
        d = {ab: D[ab][axis] * (beta * o.gamma) for ab in D}
        before = (slice(None), slice(None, -1)) if axis == 0 else (slice(None), slice(None), slice(None, -1))
        after = (slice(None), slice(1, None)) if axis == 0 else (slice(None), slice(None), slice(1, None))
        # Exact split of each edge's 2×2 cost d[a, b] into unary terms and a weight on a ≠ b (as the authors).
        own_cost[before] += (d[1, 0] + d[1, 1]) / 2
        partner_cost[before] += (d[0, 0] + d[0, 1]) / 2
        own_cost[after] += (d[0, 1] + d[1, 1]) / 2
        partner_cost[after] += (d[0, 0] + d[1, 0]) / 2
        w_edges.append(((d[1, 0] + d[0, 1] - d[1, 1] - d[0, 0]) / 2 + beta).clamp_min(0))
    values = torch.arange(o.m + 1, dtype=torch.float64) / o.m  # label k ↔ mask value k/m
    log_pmf = torch.tensor([math.lgamma(o.m + 1) - math.lgamma(k + 1) - math.lgamma(o.m - k + 1) for k in range(o.m + 1)], dtype=torch.float64)
    pmf = (log_pmf + values * o.m * math.log(max(lam, 1e-300)) + (1 - values) * o.m * math.log(max(1 - lam, 1e-300))).exp()
    prior = -o.eta * torch.log(pmf + 1e-8) / g**2
    own, partner = (t.detach().double().cpu() for t in (own_cost, partner_cost))
    unary = values * own[..., None] + (1 - values) * partner[..., None] + prior
    V = (values[:, None] - values[None, :]) ** 2
    return unary.numpy(), w_edges[0].detach().double().cpu().numpy(), w_edges[1].detach().double().cpu().numpy(), V.numpy()


def puzzle_mask(sal, x, perm, lam: float, g: int, o: PuzzleOptions) -> torch.Tensor:
    """The mask (B, g, g) with values in {0, 1/m, ..., 1}: the weight of x against x[perm]."""
    labels = alpha_beta_swap(*mask_problem(sal, x, perm, lam, g, o))
    return torch.from_numpy(labels).to(device=x.device, dtype=x.dtype) / o.m


def location_cost(n: int, device) -> torch.Tensor:
    """(n², n²) squared distance between the blocks of an n × n grid, divided by (n − 1)²."""
    ij = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2).double()
    return (torch.cdist(ij, ij) ** 2 / max(n - 1, 1) ** 2).float().to(device)


def transport_plan(visible: torch.Tensor, s: torch.Tensor, xi: float) -> torch.Tensor:
    """For each image, the destination of every block: a permutation (B, n²) of 0..n²−1.

    The paper's approximate batched algorithm: block i wants the place j minimising
    ξ·C[i, j] − s_i·visible_j; a place wanted by several goes to the cheapest, the others pay 1 more for
    it and choose again; n rounds (n × n grid). Blocks left without a place at the end take the free
    places in index order (the authors' code leaves them empty), so the result is a permutation.
    """
    B, n = visible.shape[0], visible.shape[-1]
    N = n * n
    cost = s.reshape(B, N, 1) * visible.reshape(B, 1, N).to(s.dtype)  # (B, N, N), built in place: it is large
    cost.neg_().add_(xi * location_cost(n, s.device))
    rows = torch.arange(N, device=s.device).expand(B, N)
    choice = cost.argmin(-1)  # (B, N): the place block i wants
    for round_ in range(n):
        price = cost.gather(-1, choice[..., None])[..., 0]
        best = torch.full_like(price, math.inf).scatter_reduce(1, choice, price, "amin")
        cheapest = price == best.gather(1, choice)
        first = torch.full_like(choice, N).scatter_reduce(1, choice, torch.where(cheapest, rows, N), "amin")
        won = first.gather(1, choice) == rows  # the cheapest chooser of its place (lowest index on ties)
        if round_ < n - 1:  # losers pay 1 more for the place and choose again; the others' rows are unchanged
            b, i = (~won).nonzero(as_tuple=True)
            cost[b, i, choice[b, i]] += 1
            choice[b, i] = cost[b, i].argmin(-1)
    taken = torch.zeros(B, N + 1, dtype=torch.bool, device=s.device).scatter(1, torch.where(won, choice, N), True)[:, :N]
    # Left-over blocks take the free places in index order: the k-th free block gets the k-th free place.
    free_rows = torch.argsort((won).to(torch.int8), dim=1, stable=True)
    free_cols = torch.argsort(taken.to(torch.int8), dim=1, stable=True)
    k = (~won).sum(1, keepdim=True)
    dest = torch.where(won, choice, -1)
    fill = torch.where(rows < k, free_cols, dest.gather(1, free_rows))
    return dest.scatter(1, free_rows, fill)


def move_blocks(x: torch.Tensor, dest: torch.Tensor, n: int) -> torch.Tensor:
    """x (B, C, H, W) with block i of its n × n grid moved to place dest[b, i]."""
    B, C, H, W = x.shape
    bh, bw = H // n, W // n
    blocks = x.reshape(B, C, n, bh, n, bw).permute(0, 2, 4, 1, 3, 5).reshape(B, n * n, C, bh, bw)
    src = torch.argsort(dest, dim=1)  # place j receives block src[j]
    moved = blocks.gather(1, src.view(B, n * n, 1, 1, 1).expand_as(blocks))
    return moved.reshape(B, n, n, C, bh, bw).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def transport(x, sal, mask, o: PuzzleOptions):
    """Move the blocks of x where `mask` > 0 shows them (at the transport resolution)."""
    g, H = mask.shape[-1], x.shape[-1]
    ts = min(o.transport_size or H // g, H // g)
    if (H // g) % ts:
        ts = H // g
    n = H // ts
    visible = F.interpolate(mask[:, None], size=n, mode="nearest")[:, 0] > 0
    return move_blocks(x, transport_plan(visible, block_mean(sal, n), o.xi), n)


class _AddLoss(torch.autograd.Function):
    """Identity on the logits whose backward also sends gradient 1 into `extra` (a scalar loss).

    The trainer's loss is a function of the returned logits only; this adds ∇θ extra to its parameter
    gradients without the trainer knowing (the clean-gradient regulariser). It assumes one backward
    through the logits with unscaled loss, which is how robustmix trains.
    """

    @staticmethod
    def forward(ctx, logits, extra):
        return logits.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, torch.ones((), dtype=grad.dtype, device=grad.device)


def adversarial_noise(grad, start, eps: float, gen: torch.Generator):
    """The authors' FGSM-style step from a random start: clip(start + (eps + 2/255)·sign(∇), ±eps) · u, u ~ U(0, 1)."""
    noise = (start + (eps + 2 / 255) * grad.sign()).clamp(-eps, eps)
    return noise * torch.rand((), generator=gen).item()


def puzzle_mix(model, x, y, *, num_classes: int, lam: float, perm: torch.Tensor, gen: torch.Generator,
               options: PuzzleOptions | None = None, after_mix=None):
    """(logits of the mixed batch, soft targets). `lam` and `perm` are drawn by the caller; every
    other draw (grid, adversarial coins and noise) comes from `gen`. Two network passes (PASSES).
    `after_mix(x_mix, y_soft)`, if given, replaces the mixed batch before its forward pass."""
    o = options or PuzzleOptions()
    H, W = x.shape[-2:]
    if H != W:
        raise RobustmixError(f"puzzle-mix needs square images, got {H}×{W}: pass --image-size N")
    grids = image_grids(o, H, W)
    g = grids[int(torch.randint(len(grids), (), generator=gen))]
    adv = [o.adv_p > 0 and torch.rand((), generator=gen).item() < o.adv_p for _ in range(2)]  # own, partner
    start = None
    if any(adv):  # random start in the eps ball; the saliency gradient is taken there
        eps = o.adv_eps / 255
        start = ((torch.rand(x.shape, generator=gen) * 2 - 1) * eps).to(x.device)
        start = (x + start).clamp(0, 1) - x
    sal, grad, clean_loss = saliency(model, x if start is None else x + start, y, clean_lam=o.clean_lam)
    own, partner = x, x[perm]
    if any(adv):
        noise = adversarial_noise(grad, start, o.adv_eps / 255, gen)
        own = (x + noise).clamp(0, 1) if adv[0] else own
        partner = (x + noise).clamp(0, 1)[perm] if adv[1] else partner
    if g == 1:  # one block: no mixing (as the authors' block_num = 1)
        x_mix, ratio = own, torch.ones(x.shape[0], device=x.device)
    else:
        mask = puzzle_mask(sal, x, perm, lam, g, o)
        if o.transport:
            own, partner = transport(own, sal, mask, o), transport(partner, sal[perm], 1 - mask, o)
        up = F.interpolate(mask[:, None], size=H, mode="nearest")
        x_mix, ratio = up * own + (1 - up) * partner, mask.flatten(1).mean(1)
    y1, ratio = F.one_hot(y, num_classes).float(), ratio.float()[:, None]
    y_soft = ratio * y1 + (1 - ratio) * y1[perm]
    if after_mix is not None:
        x_mix = after_mix(x_mix, y_soft)
    logits = model(x_mix)
    if clean_loss is not None:
        logits = _AddLoss.apply(logits, o.clean_lam * clean_loss)
    return logits, y_soft
