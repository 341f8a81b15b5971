"""Puzzle Mix (robustmix.training.methods.puzzlemix): masks, prior, transport, saliency, determinism, options, training."""

import copy

import pytest
import torch

from robustmix.training.config import TrainConfig
from robustmix.data import pixels
from robustmix.runtime.errors import RobustmixError
from robustmix.training.methods import METHODS, get_method, method_options, soft_cross_entropy
from robustmix.models import build_model
from robustmix.training.methods.puzzlemix import (
    PuzzleOptions,
    _AddLoss,
    adversarial_noise,
    move_blocks,
    puzzle_mask,
    puzzle_mix,
    saliency,
    transport_plan,
)
from robustmix.training.loop import train


@pytest.fixture(scope="module")
def setup(digits):
    torch.manual_seed(0)
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std)
    x, y = pixels(digits.x_train[:128]), digits.y_train[:128]
    perm = torch.randperm(128, generator=torch.Generator().manual_seed(1))
    return model, x, y, perm, saliency(model, x, y)[0]


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("g", [2, 4, 8])
def test_mask_takes_only_the_values_k_over_m(setup, m, g):
    _, x, _, perm, sal = setup
    mask = puzzle_mask(sal, x, perm, 0.4, g, PuzzleOptions(m=m))
    assert mask.shape == (128, g, g)
    allowed = torch.arange(m + 1) / m
    assert torch.isclose(mask[..., None], allowed).any(-1).all()
    assert len(mask.unique()) > 1, "a real mask mixes"


@pytest.mark.parametrize("g", [2, 4, 8])
def test_mask_mass_follows_lambda(setup, g):
    """The Binomial(m, λ) prior: the mean mask mass moves with λ (measured: within 0.15 of it)."""
    _, x, _, perm, sal = setup
    lams = [0.1, 0.3, 0.5, 0.7, 0.9]
    mass = [puzzle_mask(sal, x, perm, lam, g, PuzzleOptions()).mean().item() for lam in lams]
    assert all(a < b for a, b in zip(mass, mass[1:])), mass
    assert all(abs(mm - lam) < 0.2 for mm, lam in zip(mass, lams)), mass
    assert abs(sum(mass) / len(mass) - 0.5) < 0.05, "in expectation over a symmetric λ, half"


def test_a_strong_prior_gives_the_binomial_mode(setup):
    _, x, _, perm, sal = setup
    mask = puzzle_mask(sal, x, perm, 0.7, 4, PuzzleOptions(eta=1000.0, m=4))
    assert torch.equal(mask, torch.full_like(mask, 0.75)), "the mode of Binomial(4, 0.7) is 3: mask 3/4"


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_each_transport_is_a_permutation(n):
    gen = torch.Generator().manual_seed(n)
    visible = torch.rand(64, n, n, generator=gen) > 0.5
    s = torch.rand(64, n, n, generator=gen) ** 4
    dest = transport_plan(visible, s / s.sum((1, 2), keepdim=True), 0.8)
    assert torch.equal(dest.sort(1).values, torch.arange(n * n).expand(64, -1))
    if n > 2:
        assert (dest != torch.arange(n * n)).any(), "some blocks move"
    x = torch.rand(64, 3, 16, 16, generator=gen)
    moved = move_blocks(x, dest, n)
    bs = 16 // n
    i = int(torch.randint(n * n, (), generator=gen))
    j = dest[0, i]
    assert torch.equal(moved[0, :, j // n * bs:(j // n + 1) * bs, j % n * bs:(j % n + 1) * bs],
                       x[0, :, i // n * bs:(i // n + 1) * bs, i % n * bs:(i % n + 1) * bs])


def test_salient_blocks_move_to_visible_places():
    visible = torch.zeros(1, 4, 4, dtype=torch.bool)
    visible[0, 0, 1] = True  # one visible place; the salient block sits next to it, at (0, 0)
    s = torch.full((1, 4, 4), 0.01)
    s[0, 0, 0] = 0.85
    dest = transport_plan(visible, s, 0.8)
    assert dest[0, 0] == 1


def test_saliency_leaves_parameter_gradients_mode_and_statistics_alone(setup, digits):
    _, x, y, _, _ = setup
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std).train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    sal, grad, clean = saliency(model, x, y)
    assert model.training and clean is None
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert all(torch.equal(v, stats[k]) for k, v in model.state_dict().items()), "eval mode: no batch-norm update"
    assert sal.shape == (128, 8, 8) and (sal >= 0).all() and sal.sum() > 0
    assert torch.allclose(sal, grad.pow(2).mean(1).sqrt())


def test_clean_regulariser_adds_the_clean_gradient():
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    logits, extra = (w * 2).view(1, 5), (w ** 2).sum()
    y = torch.tensor([[0.0, 1, 0, 0, 0]])
    g_plain = torch.autograd.grad(soft_cross_entropy(logits, y), w, retain_graph=True)[0]
    g_reg = torch.autograd.grad(soft_cross_entropy(_AddLoss.apply(logits, 0.3 * extra), y), w)[0]
    assert torch.allclose(g_reg, g_plain + 0.3 * 2 * w)


def test_adversarial_noise_stays_in_the_ball():
    gen = torch.Generator().manual_seed(0)
    grad, start = torch.randn(4, 3, 8, 8, generator=gen), (torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1) * 0.03
    noise = adversarial_noise(grad, start, 10 / 255, gen)
    assert noise.abs().max() <= 10 / 255 + 1e-7 and noise.abs().max() > 0


class Recording(torch.nn.Module):
    """The model, remembering every batch it is called on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, t):
        self.inputs.append(t.detach().clone())
        return self.model(t)


@pytest.mark.parametrize("options", [{}, {"adv_p": 1.0}, {"clean_lam": 1.0, "transport": False}, {"grids": (1,)}])
def test_same_seed_same_mix_and_targets_follow_the_mask(setup, options):
    model, x, y, perm, _ = setup
    x = torch.arange(128, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 8, 8) / 200  # image i: the constant i/200
    o = PuzzleOptions.from_dict(options)
    runs = []
    for seed in (5, 5, 6):
        net = Recording(copy.deepcopy(model))
        _, y_soft = puzzle_mix(net, x, y, num_classes=10, lam=0.6, perm=perm, gen=torch.Generator().manual_seed(seed), options=o)
        assert len(net.inputs) == 2, "two network passes: saliency, then the mixed batch"
        runs.append((net.inputs[1], y_soft))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]), "same seed, same mix"
    x_mix, y_soft = runs[0]
    assert x_mix.min() >= 0 and x_mix.max() <= 1
    if "grids" in options:
        assert torch.equal(x_mix, x), "a 1 × 1 grid does not mix"
    if "adv_p" in options:
        assert not torch.equal(runs[0][0], runs[2][0]), "another seed, another perturbation"
        return
    own, other = x[:, 0, 0, 0], x[perm, 0, 0, 0]
    mass = ((x_mix[:, 0] - other[:, None, None]) / (own - other)[:, None, None]).flatten(1).mean(1)
    differ = (y != y[perm]) & (own != other)
    assert torch.allclose(y_soft[differ, y[differ]], mass[differ], atol=1e-5), "label mixed by the mask's mass"


def test_options_are_checked_bound_and_recorded():
    with pytest.raises(RobustmixError, match="unknown puzzle-mix option 'bogus'"):
        get_method("puzzle-mix", {"bogus": 1})
    with pytest.raises(RobustmixError, match="adv_p"):
        get_method("puzzle-mix", {"adv_p": "2"})
    with pytest.raises(RobustmixError, match="takes no options"):
        get_method("mixup", {"adv_p": 0.1})
    m = get_method("puzzle-mix", {"adv_p": "0.1", "grids": "2,4"})
    assert m.needs_model and m.network_passes == 2
    assert method_options(m)["adv_p"] == 0.1 and method_options(m)["grids"] == [2, 4]
    assert method_options(METHODS["mixup"]) is None
    assert TrainConfig(method="puzzle-mix", method_options={"adv_p": 0.1}).run_name == "digits-cnn-puzzle-mix-a1-adv_p0.1-s0-target"


def test_one_epoch_on_digits_counts_its_network_passes(digits):
    config = TrainConfig(method="puzzle-mix", epochs=1, train_subset=400, test_subset=200, batch_size=64,
                         method_options={"adv_p": 0.2}, device="cpu")
    model, meta = train(config, data=digits)
    steps = 7  # ceil(400 / 64)
    assert meta["history"][0]["network_passes"] == 2 * steps and meta["network_passes_per_batch"] == 2
    assert meta["method_options"]["adv_p"] == 0.2 and meta["config"]["method_options"] == {"adv_p": 0.2}
    assert meta["clean_top1_err"] < 90
    _, again = train(config, data=digits)
    assert again["history"][0]["train_loss"] == meta["history"][0]["train_loss"], "same seed, same run"
    erm = train(config.with_(method="erm", method_options={}), data=digits)[1]
    assert erm["history"][0]["network_passes"] == steps


def test_mask_objective_is_the_papers_energy_up_to_a_constant(setup):
    """m = 1: our unary costs and edge weights give, for every mask, the direct objective: hidden saliency
    + β'·(label changes) + β'γ·(border differences of the sources shown) + prior, plus one constant."""
    from robustmix.training.methods.graphcut import grid_energy
    from robustmix.training.methods.puzzlemix import block_mean, border_differences, mask_problem

    _, x, _, perm, sal = setup
    g, lam, o = 4, 0.3, PuzzleOptions(m=1)
    problem = mask_problem(sal, x, perm, lam, g, o)
    s, beta = block_mean(sal, g).double(), o.beta / g / 16
    pooled = torch.nn.functional.avg_pool2d(x, 2).double()
    srcs = (pooled[perm], pooled)
    D = {(a, b): border_differences(srcs[a], srcs[b], 1) for a in (0, 1) for b in (0, 1)}
    gen = torch.Generator().manual_seed(0)
    gaps = []
    for _ in range(6):
        z = torch.randint(0, 2, (128, g, g), generator=gen)
        direct = (z * s[perm] + (1 - z) * s).sum((1, 2))
        direct -= o.eta * torch.log(torch.where(z == 1, lam, 1 - lam) + 1e-8).sum((1, 2)) / g**2
        for axis, (a, b) in enumerate(((z[:, :-1, :], z[:, 1:, :]), (z[:, :, :-1], z[:, :, 1:]))):
            border = sum(D[i, j][axis] * ((a == i) & (b == j)) for i in (0, 1) for j in (0, 1))
            direct += (beta * (a != b) + beta * o.gamma * border).sum((1, 2))
        gaps.append(torch.from_numpy(grid_energy(z.numpy(), *problem)) - direct)
    assert torch.allclose(torch.stack(gaps), gaps[0].expand(6, -1), atol=1e-9)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_no_method_touches_parameter_gradients_or_the_mode(name, digits):
    """Generated from the registry: a method's own passes (Puzzle Mix's saliency) leave `.grad` and
    train/eval mode as they were; it declares how many network passes it costs."""
    torch.manual_seed(0)
    model = build_model("cnn", in_channels=1, num_classes=10, image_size=8, mean=digits.mean, std=digits.std).train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    from robustmix.training.methods import apply_method, network_passes

    apply_method(METHODS[name], model, pixels(digits.x_train[:32]), digits.y_train[:32], num_classes=10, alpha=1.0,
                 gen=torch.Generator().manual_seed(0))
    assert model.training
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in model.parameters())
    assert network_passes(METHODS[name]) == (2 if name == "puzzle-mix" else 1)
