"""The bounding of the boxes of :func:`neuroctl.verify.check`'s branch and bound, in pieces.

Each batch of boxes, and each round of split estimates, is cut into pieces fixed by the batch
alone (:data:`PIECE_BOXES` boxes; slices of ``batch_size`` halves) and the pieces are mapped with
:func:`neuroctl.parallel.map_tasks`: in this process without an executor (nothing pickled), or
on one, merged in submission order. The same pieces either way, so the search of
:func:`~neuroctl.verify.check` does not depend on where they run.
"""

from __future__ import annotations

import time

import numpy as np

from ..parallel import Failed, map_tasks
from .bounds import _forward_all, _intermediate


def _bound_piece(rnet, lo, hi, C, d, intermediate, alpha_steps, keep_pre):
    """Bound the rows ``C y - d`` on each box of a piece of a batch (one task of an executor).

    Returns ``(val (B, m), Lam (B, m, n_in), vertex (B, v, n_in), pre or None, alpha boxes)``:
    the bounds, their input coefficients, the vertices minimizing them (those of the optimized
    bound appended when ``alpha_steps > 0``), the hidden-layer bounds when ``keep_pre`` (for the
    MILP), and the number of boxes re-bounded with optimized slopes. Every box is bounded on
    its own (no quantity couples two boxes), so the pieces of a batch, concatenated, are the
    batch bounded at once.
    """
    inter = _forward_all if intermediate == "forward" else _intermediate(intermediate)
    pre = inter(rnet, lo, hi)
    val, Lam, vertex = _bound_rows(rnet, pre, lo, hi, C, d)
    n_alpha = 0
    if alpha_steps > 0:
        n_alpha = int((val.max(1) <= 0).sum())
        val, vertex = _optimize_open(rnet, pre, lo, hi, C, d, val, vertex, alpha_steps)
    return val, Lam, vertex, (pre if keep_pre else None), n_alpha


def _bound_max(rnet, lo, hi, C, d, intermediate):
    """The bound of ``max_j (C y - d)_j`` on each box (B,): one slice of split estimates."""
    inter = _forward_all if intermediate == "forward" else _intermediate(intermediate)
    val, _, _ = _bound_rows(rnet, inter(rnet, lo, hi), lo, hi, C, d)
    return val.max(1)


#: Boxes per piece of a batch bounded as one task. The pieces are bounded separately (the CROWN
#: bounds of a piece refine the neurons unstable in some box of the piece), the same pieces in
#: this process or on an executor, so the search does not depend on where they run.
PIECE_BOXES = 128


def _cuts(B):
    return np.array_split(np.arange(B), -(-B // PIECE_BOXES))


def _bound_batch(rnet, blo, bhi, C, d, intermediate, alpha_steps, keep_pre, par):
    """:func:`_bound_piece` of a batch, in pieces on the executor when ``par`` says so.

    None when a piece lost its worker on every attempt.
    """
    cuts = _cuts(blo.shape[0])
    tasks = [(rnet, blo[c], bhi[c], C, d, intermediate, alpha_steps, keep_pre) for c in cuts]
    outs = map_tasks(_bound_piece, tasks, executor=None if par is None else par[0])
    if any(isinstance(o, Failed) for o in outs):
        return None
    val, Lam, vertex = (np.concatenate([o[k] for o in outs]) for k in range(3))
    pre = None
    if keep_pre:
        pre = [
            tuple(np.concatenate([o[3][layer][s] for o in outs]) for s in (0, 1))
            for layer in range(len(outs[0][3]))
        ]
    return val, Lam, vertex, pre, sum(o[4] for o in outs)


def _split_batch(
    rnet, blo, bhi, C, d, score, candidates, intermediate, batch_size, deadline, par, stats
):
    """Split dimension by the bound it buys (smart branching on the input).

    For each box, the ``candidates`` dimensions with the largest gradient × width score
    are split in two, both halves are bounded (slices of ``batch_size`` halves, each a task of
    the executor when ``par`` says so), and the dimension that leaves the least to prove wins:
    the largest ``min(b_1, 0) + min(b_2, 0)`` over the bounds ``b_1, b_2`` of its halves.
    Returns the dimension (B,) and the bounds of the two halves of it (B,), (B,).

    In this process, past the deadline it stops and returns the dimension of largest score
    (bounds ``-inf``: nothing proven); on an executor the slices of a round all run. A slice
    whose worker died on every attempt leaves its halves unbounded (``-inf``): a different
    split, never an unsound one.
    """
    B, n = blo.shape
    k = min(candidates, n)
    cand = np.argsort(-score, axis=1, kind="stable")[:, :k]  # (B, k)
    rows = np.repeat(np.arange(B), k)
    dims = cand.reshape(-1)
    idx = np.arange(rows.size)
    mid = (blo[rows, dims] + bhi[rows, dims]) / 2
    l1, h1 = blo[rows].copy(), bhi[rows].copy()
    h1[idx, dims] = mid
    l2, h2 = blo[rows].copy(), bhi[rows].copy()
    l2[idx, dims] = mid
    cl, ch = np.vstack([l1, l2]), np.vstack([h1, h2])
    slices = [slice(s0, s0 + batch_size) for s0 in range(0, cl.shape[0], batch_size)]
    v = np.empty(cl.shape[0])
    if par is None:
        for sl in slices:
            if time.perf_counter() > deadline:
                none = np.full(B, -np.inf)
                return np.argmax(score, axis=1), none, none
            v[sl] = _bound_max(rnet, cl[sl], ch[sl], C, d, intermediate)
    else:
        tasks = [(rnet, cl[sl], ch[sl], C, d, intermediate) for sl in slices]
        for sl, o in zip(slices, map_tasks(_bound_max, tasks, executor=par[0])):
            if isinstance(o, Failed):
                stats["lost_pieces"] += 1
                o = -np.inf
            v[sl] = o
    first, second = v[: rows.size].reshape(B, k), v[rows.size :].reshape(B, k)
    # what is left to prove on both halves (0 for a proven half)
    worse = np.minimum(first, 0.0) + np.minimum(second, 0.0)
    worse = np.where(np.take_along_axis(score, cand, 1) > 0, worse, -np.inf)
    best = np.argmax(worse, axis=1)
    pick = np.arange(B)
    return cand[pick, best], first[pick, best], second[pick, best]


def _optimize_open(rnet, pre, lo, hi, C, d, val, vertex, steps):
    """Re-bound the boxes that CROWN leaves open with optimized ReLU slopes (never weaker).

    Returns the bounds and the candidate vertices: those of CROWN plus those of the optimized
    linear bound. CROWN's coefficients stay the ones that choose the split: the optimized bound
    shifts weight onto narrow input dimensions (cheap in the bound), which would make the
    gradient × width heuristic split those again and again.
    """
    from .alpha import optimized_lower_bound

    open_ = np.flatnonzero(val.max(1) <= 0)
    if open_.size == 0:  # the same layout as below, whatever the boxes of the batch
        return val, np.concatenate([vertex, vertex], axis=1)
    sub = [(l[open_], u[open_]) for l, u in pre]
    v2, L2 = optimized_lower_bound(rnet, sub, lo[open_], hi[open_], C, -d, steps=steps)
    val = val.copy()
    val[open_] = np.maximum(v2, val[open_])
    v_opt = np.where(L2 >= 0, lo[open_, None, :], hi[open_, None, :])
    extra = vertex.copy()
    extra[open_] = v_opt
    return val, np.concatenate([vertex, extra], axis=1)


def _bound_rows(rnet, pre, lo, hi, C, d):
    from .bounds import _backward

    B = lo.shape[0]
    Cb = np.broadcast_to(C, (B, *C.shape))
    val, Lam, _ = _backward(rnet, pre, len(rnet.weights) - 1, Cb, lo, hi)
    val = val - d
    vertex = np.where(Lam >= 0, lo[:, None, :], hi[:, None, :])
    return val, Lam, vertex
