"""Alpha-beta swap graph cuts (Boykov, Veksler, Zabih 2001) for a batch of small 4-connected grids.

The energy of a labelling l of one grid is
    E(l) = Σ_p U[p, l_p] + Σ_{p~q} w_pq · V[l_p, l_q],
with unary costs U (..., L), non-negative edge weights w on the vertical and horizontal edges and a
semimetric V between labels (Puzzle Mix uses V[a, b] = (a − b)² / (L − 1)²).

Each swap move (labels a, b) is a binary problem solved exactly by a minimum s-t cut. The grids of a
batch are independent, so one move is solved for the whole batch at once: the batch's graphs are laid
side by side in one graph (its minimum cut is the union of theirs) and cut by one call to
`scipy.sparse.csgraph.maximum_flow` (Dinic's algorithm, integer capacities). A move is kept for a
grid only where it lowers that grid's energy, so each grid's energy never rises, as in the reference
swap algorithm.

Why scipy and not a dedicated package: PyMaxflow is GPL-3 and gco-wrapper (which the Puzzle Mix
authors use) bundles GCO, licensed for research use only; robustmix is MIT. scipy (BSD) is already a
core dependency, and batching the grids makes its per-call overhead negligible.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

# Costs are rounded to integers (max-flow needs them) at this resolution of the largest capacity of a
# move; 2**22 keeps every residual capacity and the flow of a whole grid of up to 1024 nodes far from
# the int32 limit, while the rounding is below 1e-6 of the largest cost.
RESOLUTION = 2**22


def grid_energy(labels: np.ndarray, unary: np.ndarray, w_v: np.ndarray, w_h: np.ndarray, V: np.ndarray) -> np.ndarray:
    """E(l) per grid. labels (B, H, W) ints; unary (B, H, W, L); w_v (B, H−1, W); w_h (B, H, W−1); V (L, L)."""
    e = np.take_along_axis(unary, labels[..., None], axis=-1)[..., 0].sum(axis=(1, 2))
    e += (w_v * V[labels[:, :-1, :], labels[:, 1:, :]]).sum(axis=(1, 2))
    e += (w_h * V[labels[:, :, :-1], labels[:, :, 1:]]).sum(axis=(1, 2))
    return e


def source_side(n: int, src: np.ndarray, snk: np.ndarray, u: np.ndarray, v: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Minimum s-t cut of a graph on nodes 0..n−1 with terminal capacities src (s→p) and snk (p→t) and
    undirected edges u–v of capacity cap. Returns a bool array: True where the node stays with s."""
    s, t = n, n + 1
    nodes = np.arange(n)
    rows = np.concatenate([np.full(n, s), nodes, u, v])
    cols = np.concatenate([nodes, np.full(n, t), v, u])
    caps = np.concatenate([src, snk, cap, cap])
    keep = caps > 0
    graph = csr_array((caps[keep].astype(np.int32), (rows[keep], cols[keep])), shape=(n + 2, n + 2))
    graph.sum_duplicates()
    flow = maximum_flow(graph, s, t).flow
    residual = (graph - flow).tocsr()  # flow is antisymmetric: reverse edges carry residual = flow
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reached = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    side = np.zeros(n + 2, dtype=bool)
    side[reached] = True
    return side[:n]


def swap_move(labels, unary, w_v, w_h, V, a: int, b: int) -> np.ndarray:
    """The best relabelling of the nodes labelled a or b with a or b, for every grid at once."""
    B, H, W, _ = unary.shape
    active = (labels == a) | (labels == b)
    # Unary cost of each choice: own cost plus the edges to fixed (inactive) neighbours.
    cost = {c: unary[..., c].copy() for c in (a, b)}
    for c in (a, b):
        cost[c][:, 1:, :] += np.where(~active[:, :-1, :], w_v * V[c, labels[:, :-1, :]], 0.0)
        cost[c][:, :-1, :] += np.where(~active[:, 1:, :], w_v * V[c, labels[:, 1:, :]], 0.0)
        cost[c][:, :, 1:] += np.where(~active[:, :, :-1], w_h * V[c, labels[:, :, :-1]], 0.0)
        cost[c][:, :, :-1] += np.where(~active[:, :, 1:], w_h * V[c, labels[:, :, 1:]], 0.0)
    base = np.minimum(cost[a], cost[b])
    pair_v = np.where(active[:, :-1, :] & active[:, 1:, :], w_v * V[a, b], 0.0)
    pair_h = np.where(active[:, :, :-1] & active[:, :, 1:], w_h * V[a, b], 0.0)
    # Node on the sink side ⇒ label b: it pays s→p = cost of b; on the source side it pays p→t = cost of a.
    top = max(float((cost[a] - base).max()), float((cost[b] - base).max()), float(pair_v.max(initial=0)),
              float(pair_h.max(initial=0)), 1e-30)
    scale = RESOLUTION / top
    q = lambda arr: np.rint(arr * scale).astype(np.int64).ravel()  # noqa: E731
    idx = np.arange(B * H * W).reshape(B, H, W)
    u = np.concatenate([idx[:, :-1, :].ravel(), idx[:, :, :-1].ravel()])
    v = np.concatenate([idx[:, 1:, :].ravel(), idx[:, :, 1:].ravel()])
    cap = np.concatenate([q(pair_v), q(pair_h)])
    src, snk = q(cost[b] - base), q(cost[a] - base)
    src[~active.ravel()] = 0
    snk[~active.ravel()] = 0
    keeps_a = source_side(B * H * W, src, snk, u, v, cap).reshape(B, H, W)
    return np.where(active, np.where(keeps_a, a, b), labels)


def alpha_beta_swap(unary: np.ndarray, w_v: np.ndarray, w_h: np.ndarray, V: np.ndarray, *,
                    labels: np.ndarray | None = None, max_cycles: int = 10) -> np.ndarray:
    """A labelling (B, H, W) that no swap move improves (or after `max_cycles` cycles over all label
    pairs). Starts from the unary argmin unless `labels` is given. Edge weights must be >= 0."""
    unary = np.asarray(unary, dtype=np.float64)
    w_v, w_h, V = (np.asarray(t, dtype=np.float64) for t in (w_v, w_h, V))
    if (w_v < 0).any() or (w_h < 0).any() or (V < 0).any():
        raise ValueError("alpha_beta_swap needs non-negative edge weights and label distances")
    L = unary.shape[-1]
    labels = unary.argmin(-1) if labels is None else np.array(labels)
    energy = grid_energy(labels, unary, w_v, w_h, V)
    pairs = [(a, b) for a in range(L) for b in range(a + 1, L)]
    # last_change[i]: the move count when grid i last changed; tried[k, i]: when pair k was last tried on
    # it. A pair can only improve a grid that changed since that pair was last tried on it.
    last_change = np.zeros(len(labels), dtype=np.int64)
    tried = np.full((len(pairs), len(labels)), -1, dtype=np.int64)
    move = 0
    for _ in range(max_cycles):
        for k, (a, b) in enumerate(pairs):
            todo = np.flatnonzero(last_change > tried[k])
            move += 1
            tried[k, todo] = move
            if todo.size == 0:
                continue
            sub = (unary[todo], w_v[todo], w_h[todo])
            proposal = swap_move(labels[todo], *sub, V, a, b)
            e = grid_energy(proposal, *sub, V)
            better = e < energy[todo] - 1e-9 * np.maximum(1.0, np.abs(energy[todo]))
            improved = todo[better]
            labels[improved] = proposal[better]
            energy[improved] = e[better]
            last_change[improved] = move
        if not (last_change[None, :] > tried).any():
            break
    return labels
