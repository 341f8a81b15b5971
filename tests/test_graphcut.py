"""The batched alpha-beta swap: each move is an exact minimum cut, and the result is a swap fixed point."""

import itertools

import numpy as np
import pytest

from robustmix.training.methods.graphcut import alpha_beta_swap, grid_energy, swap_move


def problem(seed, B=4, H=2, W=3, L=3):
    rng = np.random.default_rng(seed)
    V = np.array([[(a - b) ** 2 / (L - 1) ** 2 for b in range(L)] for a in range(L)])
    smooth = rng.random() * 2
    return rng.random((B, H, W, L)), rng.random((B, H - 1, W)) * smooth, rng.random((B, H, W - 1)) * smooth, V


def brute_force(unary, w_v, w_h, V, labels, allowed):
    """The lowest energy over every relabelling of the nodes in `labels` that carry a label of `allowed`."""
    free = np.argwhere(np.isin(labels, allowed))
    best = np.inf
    for choice in itertools.product(allowed, repeat=len(free)):
        lab = labels.copy()
        for (r, c), v in zip(free, choice):
            lab[r, c] = v
        best = min(best, grid_energy(lab[None], unary[None], w_v[None], w_h[None], V)[0])
    return best


@pytest.mark.parametrize("seed", range(12))
def test_each_swap_move_is_the_best_relabelling(seed):
    unary, w_v, w_h, V = problem(seed)
    rng = np.random.default_rng(100 + seed)
    labels = rng.integers(0, 3, unary.shape[:3])
    a, b = sorted(rng.choice(3, 2, replace=False).tolist())
    moved = swap_move(labels, unary, w_v, w_h, V, a, b)
    assert (moved[~np.isin(labels, (a, b))] == labels[~np.isin(labels, (a, b))]).all(), "other labels stay"
    energy = grid_energy(moved, unary, w_v, w_h, V)
    for i in range(len(labels)):
        best = brute_force(unary[i], w_v[i], w_h[i], V, labels[i], (a, b))
        assert energy[i] == pytest.approx(best, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_two_labels_reach_the_global_minimum(seed):
    unary, w_v, w_h, V = problem(seed, B=3, H=3, W=3, L=2)
    labels = alpha_beta_swap(unary, w_v, w_h, V)
    energy = grid_energy(labels, unary, w_v, w_h, V)
    for i in range(3):
        start = np.zeros((3, 3), dtype=int)
        assert energy[i] == pytest.approx(brute_force(unary[i], w_v[i], w_h[i], V, start, (0, 1)), rel=1e-5)


def test_swap_result_is_a_fixed_point_and_never_worse_than_its_start():
    unary, w_v, w_h, V = problem(7, B=16, H=6, W=6, L=4)
    start = np.random.default_rng(0).integers(0, 4, unary.shape[:3])
    labels = alpha_beta_swap(unary, w_v, w_h, V, labels=start)
    energy = grid_energy(labels, unary, w_v, w_h, V)
    assert (energy <= grid_energy(start, unary, w_v, w_h, V) + 1e-9).all()
    for a, b in itertools.combinations(range(4), 2):
        assert (grid_energy(swap_move(labels, unary, w_v, w_h, V, a, b), unary, w_v, w_h, V) >= energy - 1e-6).all()


def test_negative_edge_weights_are_refused():
    unary, w_v, w_h, V = problem(0)
    with pytest.raises(ValueError, match="non-negative"):
        alpha_beta_swap(unary, -w_v, w_h, V)
