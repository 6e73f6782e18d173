"""The bounding of the boxes of :func:`neuroctl.verify.check`'s branch and bound, in pieces.

Each batch of boxes, and each round of split estimates, is cut into pieces fixed by the batch
alone (:data:`PIECE_BOXES` boxes; slices of ``batch_size`` halves) and the pieces are mapped with
:func:`neuroctl.parallel.map_tasks`: in this process without an executor (nothing pickled), or
on one, merged in submission order. The same pieces either way, so the search of
:func:`~neuroctl.verify.check` does not depend on where they run.

All the unsafe polytopes of a specification are bounded in one pass (:class:`_Union`): their
rows are stacked into one objective of the back-substitution, so the hidden-layer bounds of a box
(most of the cost) are computed once for all of them.
"""

from __future__ import annotations

import time

import numpy as np

from ..parallel import Failed, map_tasks
from .bounds import _forward_all, _intermediate


class _Union:
    """The rows of a union of unsafe polytopes ``{y : C_k y <= d_k}``, stacked.

    Parameters
    ----------
    polytopes : sequence of (ndarray (m_k, n_out), ndarray (m_k,))
        The unsafe polytopes (:attr:`neuroctl.verify.Spec.unsafe`).

    Attributes
    ----------
    C : ndarray, shape (M, n_out)
    d : ndarray, shape (M,)
        All rows, polytope after polytope (``M = sum m_k``).
    starts : ndarray (K,) of int
        Index of the first row of each polytope.
    n_polytopes : int
        ``K``.
    """

    def __init__(self, polytopes):
        polytopes = list(polytopes)
        self.C = np.vstack([C for C, _ in polytopes])
        self.d = np.concatenate([d for _, d in polytopes])
        sizes = [C.shape[0] for C, _ in polytopes]
        self.starts = np.cumsum([0, *sizes[:-1]])
        self.n_polytopes = len(polytopes)
        self._group = np.repeat(np.arange(len(polytopes)), sizes)

    def polytope(self, k):
        """``(C_k, d_k)`` of polytope ``k``."""
        rows = self._group == k
        return self.C[rows], self.d[rows]

    def rows_of(self, k):
        """Mask (B, M) of the rows of polytope ``k[b]`` for each ``b`` of ``k`` (B,)."""
        return self._group[None, :] == np.asarray(k)[:, None]

    def margin(self, y):
        """``min_k max_j (C_k y - d_k)_j`` of outputs ``y`` (B, n_out): (B,), ``<= 0`` unsafe."""
        return np.maximum.reduceat(y @ self.C.T - self.d, self.starts, axis=1).min(1)

    def polytope_bounds(self, val):
        """Bound (B, K) of ``max_j (C_k y - d_k)_j`` on each box, from the rows' bounds (B, M)."""
        return np.maximum.reduceat(val, self.starts, axis=1)


def _bound_piece(rnet, lo, hi, union, intermediate, alpha_steps, keep_pre):
    """Bound the rows of every unsafe polytope on each box of a piece of a batch (one task).

    Returns ``(val (B, M), bound (B, K), Lam (B, M, n_in), vertex (B, v, n_in), pre or None,
    alpha boxes)``: the bounds of the rows ``C y - d`` of the :class:`_Union`, the bounds of its
    polytopes (:meth:`_Union.polytope_bounds`), the rows' input coefficients, the vertices
    minimizing the rows' bounds (those of the optimized bound appended when ``alpha_steps >
    0``), the hidden-layer bounds when ``keep_pre`` (for the MILP), and the number of boxes
    re-bounded with optimized slopes. Every box is bounded on its own (no quantity couples two
    boxes), so the pieces of a batch, concatenated, are the batch bounded at once.
    """
    inter = _forward_all if intermediate == "forward" else _intermediate(intermediate)
    pre = inter(rnet, lo, hi)
    val, Lam, vertex = _bound_rows(rnet, pre, lo, hi, union.C, union.d)
    bound = union.polytope_bounds(val)
    n_alpha = 0
    if alpha_steps > 0:
        n_alpha = int((bound.min(1) <= 0).sum())
        val, vertex = _optimize_open(
            rnet, pre, lo, hi, union.C, union.d, val, bound, vertex, alpha_steps
        )
        bound = np.maximum(bound, union.polytope_bounds(val))
    return val, bound, Lam, vertex, (pre if keep_pre else None), n_alpha


def _bound_max(rnet, lo, hi, union, intermediate):
    """The bound of each unsafe polytope on each box (B, K): one slice of split estimates."""
    inter = _forward_all if intermediate == "forward" else _intermediate(intermediate)
    val, _, _ = _bound_rows(rnet, inter(rnet, lo, hi), lo, hi, union.C, union.d)
    return union.polytope_bounds(val)


#: Boxes per piece of a batch bounded as one task. The pieces are bounded separately (the CROWN
#: bounds of a piece refine the neurons unstable in some box of the piece), the same pieces in
#: this process or on an executor, so the search does not depend on where they run.
PIECE_BOXES = 128


def _cuts(B):
    return np.array_split(np.arange(B), -(-B // PIECE_BOXES))


def _bound_batch(rnet, blo, bhi, union, intermediate, alpha_steps, keep_pre, par):
    """:func:`_bound_piece` of a batch, in pieces on the executor when ``par`` says so.

    None when a piece lost its worker on every attempt.
    """
    cuts = _cuts(blo.shape[0])
    tasks = [(rnet, blo[c], bhi[c], union, intermediate, alpha_steps, keep_pre) for c in cuts]
    outs = map_tasks(_bound_piece, tasks, executor=None if par is None else par[0])
    if any(isinstance(o, Failed) for o in outs):
        return None
    val, bound, Lam, vertex = (np.concatenate([o[k] for o in outs]) for k in range(4))
    pre = None
    if keep_pre:
        pre = [
            tuple(np.concatenate([o[4][layer][s] for o in outs]) for s in (0, 1))
            for layer in range(len(outs[0][4]))
        ]
    return val, bound, Lam, vertex, pre, sum(o[5] for o in outs)


def _split_batch(
    rnet,
    blo,
    bhi,
    union,
    is_open,
    score,
    candidates,
    intermediate,
    batch_size,
    deadline,
    par,
    stats,
):
    """Split dimension by the bound it buys (smart branching on the input).

    For each box, the ``candidates`` dimensions with the largest gradient × width score
    are split in two, both halves are bounded (slices of ``batch_size`` halves, each a task of
    the executor when ``par`` says so), and the dimension that leaves the least to prove wins:
    the largest ``min(b_1, 0) + min(b_2, 0)`` over the bounds ``b_1, b_2`` of its halves, the
    bound of a half being the least bound of the polytopes still open on the box (``is_open``,
    (B, K) bool). Returns the dimension (B,) and the polytope bounds of the two halves of it
    (B, K), (B, K).

    In this process, past the deadline it stops and returns the dimension of largest score
    (bounds ``-inf``: nothing proven); on an executor the slices of a round all run. A slice
    whose worker died on every attempt leaves its halves unbounded (``-inf``): a different
    split, never an unsound one.
    """
    B, n = blo.shape
    K = union.n_polytopes
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
    v = np.empty((cl.shape[0], K))
    if par is None:
        for sl in slices:
            if time.perf_counter() > deadline:
                none = np.full((B, K), -np.inf)
                return np.argmax(score, axis=1), none, none
            v[sl] = _bound_max(rnet, cl[sl], ch[sl], union, intermediate)
    else:
        tasks = [(rnet, cl[sl], ch[sl], union, intermediate) for sl in slices]
        for sl, o in zip(slices, map_tasks(_bound_max, tasks, executor=par[0])):
            if isinstance(o, Failed):
                stats["lost_pieces"] += 1
                o = -np.inf
            v[sl] = o
    first, second = v[: rows.size].reshape(B, k, K), v[rows.size :].reshape(B, k, K)
    # what is left to prove on both halves (0 for a proven half)
    left = ~is_open[:, None, :]
    worse = np.minimum(np.where(left, np.inf, first).min(2), 0.0) + np.minimum(
        np.where(left, np.inf, second).min(2), 0.0
    )
    worse = np.where(np.take_along_axis(score, cand, 1) > 0, worse, -np.inf)
    best = np.argmax(worse, axis=1)
    pick = np.arange(B)
    return cand[pick, best], first[pick, best], second[pick, best]


def _optimize_open(rnet, pre, lo, hi, C, d, val, bound, vertex, steps):
    """Re-bound the boxes that CROWN leaves open with optimized ReLU slopes (never weaker).

    A box is open when some polytope's bound ``bound`` (B, K) is not positive; all its rows
    ``val`` (B, M) are re-bounded.

    Returns the bounds and the candidate vertices: those of CROWN plus those of the optimized
    linear bound. CROWN's coefficients stay the ones that choose the split: the optimized bound
    shifts weight onto narrow input dimensions (cheap in the bound), which would make the
    gradient × width heuristic split those again and again.
    """
    from .alpha import optimized_lower_bound

    open_ = np.flatnonzero(bound.min(1) <= 0)
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
    """Bounds of the rows ``C y - d`` on the boxes by back-substitution.

    Returns ``(val (B, M), Lam (B, M, n_in), vertex (B, M, n_in))``: the bounds, the input
    coefficients of the rows' linear lower bounds, and the box vertices minimizing them.
    """
    from .bounds import _backward

    B = lo.shape[0]
    Cb = np.broadcast_to(C, (B, *C.shape))
    val, Lam, _ = _backward(rnet, pre, len(rnet.weights) - 1, Cb, lo, hi)
    vertex = np.where(Lam >= 0, lo[:, None, :], hi[:, None, :])
    return val - d, Lam, vertex
