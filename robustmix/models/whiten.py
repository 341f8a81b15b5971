"""WhitenCNN: the fast CIFAR-10 network, after Keller Jordan's airbench94 (2024), in our own code.

    pixels in [0, 1] → Normalize → 2×2 patch-whitening conv (frozen weights, bias trained early) → GELU
    → 3 groups of [conv3×3 → max-pool 2 → BN → GELU → conv3×3 → BN → GELU], widths w, 4w, 4w (w = 64)
    → global max-pool → bias-free linear head × 1/9

The ideas we follow from airbench94 (read from KellerJordan/cifar10-airbench, airbench94.py):
- the stem's 2·C·4 filters (24 for colour) are the ± eigenvectors of the covariance of the 2×2 patches
  of (normalised) training images, each scaled by 1/sqrt(eigenvalue + 5e-4): `init_from_data`
  computes them; they are never trained. The stem's bias starts at 0 and is trained only for the
  first epochs (`early_parameters`: the trainer drops their gradients afterwards);
- BatchNorm with its weight frozen at 1 (only the bias learns), eps 1e-12, running statistics
  updated as 0.6·old + 0.4·batch (PyTorch momentum 0.4);
- every 3×3 convolution starts as the identity on its first `in_channels` filters (dirac), the rest
  keep PyTorch's default initialisation;
- airbench ends with max-pool 3 on a 3×3 map (32×32 input); we pool globally, which is the same
  there and lets other image sizes through (under 16 px, 1×1 maps are not pooled further).
Normalisation stays the first layer (our models take pixels in [0, 1]); no test-time augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .normalize import Normalize

WHITEN_EPS = 5e-4  # airbench94's eps added to the eigenvalues before 1/sqrt
HEAD_SCALE = 1 / 9  # airbench94's output scaling
BN_MOMENTUM = 0.4  # PyTorch convention (weight of the new batch); airbench's 0.6 is the old value's weight


def batch_norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=BN_MOMENTUM)
    bn.weight.requires_grad_(False)  # frozen at 1: only the bias learns
    return bn


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])  # an implicit residual: identity on the first filters
    return conv


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out)
        self.norm1 = batch_norm(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.norm2 = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if min(x.shape[-2:]) >= 2:  # images under 16 px run out of pixels to pool: keep 1×1 maps as they are
            x = F.max_pool2d(x, 2)
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


def patch_covariance(x: torch.Tensor, kernel: int, chunk: int = 500) -> torch.Tensor:
    """E[p pᵀ] over every kernel×kernel patch p of x (N×C×H×W), in float64, uncentred as in airbench.

    Accumulated over chunks of images so 5,000 CIFAR images need ~50 MB, not 0.5 GB.
    """
    d = x.shape[1] * kernel * kernel
    cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    count = 0
    for part in x.split(chunk):
        p = F.unfold(part.double(), kernel)  # N×d×L, d ordered (channel, row, column) like a conv weight
        cov += torch.einsum("npl,nql->pq", p, p)
        count += p.shape[0] * p.shape[2]
    return cov / count


def whitening_filters(x: torch.Tensor, kernel: int = 2, eps: float = WHITEN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(filters 2d×C×k×k, eigenvalues d) for normalised images x: [V/sqrt(λ+eps); −V/sqrt(λ+eps)],
    eigenvectors by decreasing eigenvalue. Each eigenvector's sign is fixed (largest entry positive),
    so the stem does not depend on the LAPACK build's sign choice."""
    c = x.shape[1]
    eigenvalues, vectors = torch.linalg.eigh(patch_covariance(x, kernel))
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1).T  # rows = eigenvectors, largest first
    peak = vectors.gather(1, vectors.abs().argmax(1, keepdim=True))
    vectors = vectors * peak.sign()
    scaled = (vectors / (eigenvalues.clamp_min(0) + eps).sqrt()[:, None]).reshape(-1, c, kernel, kernel)
    return torch.cat([scaled, -scaled]).float(), eigenvalues.float()


class WhitenCNN(nn.Module):
    """The airbench94 layout; `width` is the first group's channels (64; the others are 4× that)."""

    def __init__(self, in_channels: int, num_classes: int, mean, std, width: int = 64, dropout: float = 0.0):
        super().__init__()
        stem_width = 2 * in_channels * 4
        self.normalize = Normalize(mean, std)
        self.whiten = nn.Conv2d(in_channels, stem_width, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from the data by init_from_data, never trained
        with torch.no_grad():
            self.whiten.bias.zero_()
        self.group1 = ConvGroup(stem_width, width)
        self.group2 = ConvGroup(width, 4 * width)
        self.group3 = ConvGroup(4 * width, 4 * width)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(4 * width, num_classes, bias=False)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> dict:
        """Set the stem from training pixels x (N×C×H×W in [0, 1]); returns what was done, for the metadata."""
        filters, eigenvalues = whitening_filters(self.normalize(x.to(self.whiten.weight.device).float()))
        self.whiten.weight.copy_(filters)
        return {"whitening_images": int(x.shape[0]), "whitening_eps": WHITEN_EPS,
                "whitening_eigenvalues": [round(v, 6) for v in eigenvalues.tolist()]}

    def early_parameters(self) -> list[nn.Parameter]:
        """Parameters trained only in the first epochs (airbench: the stem's bias, for 3 epochs); the
        trainer drops their gradients afterwards (TrainConfig.whiten_bias_epochs)."""
        return [self.whiten.bias]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.group1(F.gelu(self.whiten(self.normalize(x))))

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        h = F.adaptive_max_pool2d(self.group3(h), 1).flatten(1)
        return self.head(self.drop(h)) * HEAD_SCALE

    def stages(self):
        """Mixing points for manifold mixup: the input, after group 1, after group 2."""
        return [self.stem, self.group2, self.tail]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.group2(self.stem(x)))


class LearnedStemCNN(WhitenCNN):
    """WhitenCNN's layout with a learned 2×2 stem in place of the frozen whitening (`learned_stem_cnn`).

    For adversarial training: the whitening stem scales each patch direction by 1/sqrt(eigenvalue), so
    the low-variance, high-frequency directions an L∞ attack can use come out up to ~40× larger than the
    image's main directions. FGSM-RS training on CIFAR-10 with it collapsed within 2 epochs at every
    learning rate tried (FGSM accuracy 37%, PGD 1% on held-out images; reports/cifar10-adversarial.md).
    Here the stem is an ordinary convolution (PyTorch's default initialisation, weights and bias trained
    throughout); everything after it is WhitenCNN's.
    """

    def __init__(self, in_channels: int, num_classes: int, mean, std, width: int = 64, dropout: float = 0.0):
        super().__init__(in_channels, num_classes, mean, std, width=width, dropout=dropout)
        self.whiten.weight.requires_grad_(True)
        self.whiten.reset_parameters()

    def init_from_data(self, x: torch.Tensor) -> dict:
        return {}  # nothing is computed from the data: the stem is learned

    def early_parameters(self) -> list[nn.Parameter]:
        return []  # the stem's bias trains throughout, with its weights
