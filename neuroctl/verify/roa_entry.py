"""Regions of attraction past the invariant set: boxes proved to enter it.

A set ``S`` certified by :func:`neuroctl.verify.region_of_attraction` is forward invariant and
every trajectory from it converges to ``x*``; so does every trajectory that *reaches* ``S``.
This module proves that of boxes of states, by reachability of the discrete closed loop
``F(x) = plant.step(x, π(observe(x, r)))``:

1. The box is run through ``F`` as affine forms (:func:`~neuroctl.verify.flow.
   closed_loop_period_sets`, sound; Girard's order reduction after each step), step by step.
2. It *enters* ``S`` at step ``k`` when the set at step ``k`` lies in ``S``: ``V``'s upper
   bound over it (:meth:`~neuroctl.verify.lyapunov.QuadraticLyapunov.set_bounds`) is at most
   the level and, for a cut set ``S = {V <= c} ∩ D``, its bounds lie in the proof domain ``D``.
3. Every set before it lies in ``D`` too (where the plant model is assumed to hold), or the box
   fails; a box that fails, or does not enter within its horizon, is split in two along its
   widest side (relative to the box of interest) down to a smallest width, and the halves tried
   again (branch and bound).

The certified region is then ``S ∪ (entry boxes)``: not forward invariant as a whole (a
trajectory from an entry box passes outside it), but each of its states converges to ``x*``,
each box's states being in ``S`` after its stated number of steps.

Before a box is tried, its centre and corners are simulated (points of the box, so a proof of
the box needs them all to enter ``S``): a box of which one does not enter ``S`` within the
horizon, in ``D`` all along, is split without a set computation, or dropped at the smallest
width; the simulated entry steps also set the box's horizon, and the order in which boxes are tried
(the nearest to ``S`` first, so that a deadline cuts off the boxes least likely to be proved).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from .affine import AffineForm, SetArithmeticError
from .flow import closed_loop_period_sets
from .reach import _DIVERGED, _reduce

__all__ = ["EntryBoxes", "in_boxes", "prove_entry_boxes"]


@dataclass
class EntryBoxes:
    """Boxes of states proved to enter a certified invariant set.

    Attributes
    ----------
    lower, upper : ndarray, shape (k, n)
        The boxes (state units); disjoint up to shared faces.
    steps : ndarray of int, shape (k,)
        Each box's states lie in the invariant set after this many steps of ``plant.step``.
    evaluated : int
        Boxes run through the closed loop on sets (the proved ones included).
    simulated : int
        Boxes whose centre and corners were simulated.
    limited_by : str
        ``"done"`` (every candidate box proved or dropped at the smallest width) or
        ``"timeout"``.
    time : float
        Seconds.
    """

    lower: np.ndarray
    upper: np.ndarray
    steps: np.ndarray
    evaluated: int
    simulated: int
    limited_by: str
    time: float

    def __len__(self) -> int:
        return int(self.lower.shape[0])


def in_boxes(x, lower, upper) -> np.ndarray:
    """Index of a box holding each state, or -1.

    Parameters
    ----------
    x : ndarray, shape (N, n)
    lower, upper : ndarray, shape (k, n)

    Returns
    -------
    ndarray of int, shape (N,)
        The first box (in the order given) with ``lower <= x <= upper``, -1 where none.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(lower)[-1])
    which = np.full(x.shape[0], -1, dtype=np.int64)
    if len(lower) == 0 or x.shape[0] == 0:
        return which
    order = np.argsort(x[:, 0], kind="stable")
    first = x[order, 0]
    starts = np.searchsorted(first, lower[:, 0], side="left")
    stops = np.searchsorted(first, upper[:, 0], side="right")
    for k in np.nonzero(stops > starts)[0]:
        idx = order[starts[k]:stops[k]]
        inside = np.all((x[idx] >= lower[k]) & (x[idx] <= upper[k]), axis=1)
        hit = idx[inside]
        hit = hit[which[hit] < 0]
        which[hit] = k
    return which


def _simulated_entry(loop, points, in_set, lo_dom, hi_dom, horizon, segment=25):
    """First step at which each state (shape (M, n)) is in the set ``S`` by simulation, its
    trajectory in the domain until then; ``horizon + 1`` where it is not (shape (M,)).

    The states are run ``segment`` steps at a time, and those that entered ``S`` or left the
    domain are dropped between segments (most enter long before the horizon)."""
    from .roa import closed_loop_rollout

    entry = np.full(points.shape[0], horizon + 1, dtype=np.int64)
    x = np.asarray(points, dtype=np.float64)
    active = np.arange(x.shape[0])
    # step 0: the points themselves
    inside_dom = np.all((x >= lo_dom) & (x <= hi_dom), axis=-1)
    first = inside_dom & in_set(x)
    entry[first] = 0
    keep = inside_dom & ~first
    active, x = active[keep], x[keep]
    done = 0
    while active.size and done < horizon:
        k = min(segment, horizon - done)
        xs = closed_loop_rollout(loop.plant, loop.ctrl, x, k, reference=loop.r)[:, 1:]
        inside_dom = np.all((xs >= lo_dom) & (xs <= hi_dom), axis=-1)  # (m, k)
        in_s = in_set(xs.reshape(-1, xs.shape[-1])).reshape(inside_dom.shape) & inside_dom
        left = np.cumsum(~inside_dom, axis=1) > 0  # left the domain at or before the step
        ok = in_s & ~left
        has = ok.any(axis=1)
        entry[active[has]] = done + 1 + np.argmax(ok[has], axis=1)
        keep = ~has & ~left[:, -1]
        active, x = active[keep], xs[keep, -1]
        done += k
    return entry


def _enter_on_sets(loop, lo, hi, level, lo_dom, hi_dom, horizons, max_generators):
    """Run boxes ``[lo, hi]`` (shape (B, n)) through the closed loop on sets: the step at which
    each set lies in ``{V <= level}`` and in the domain, every set before it in the domain;
    -1 where that does not happen within the box's horizon (shape (B,))."""
    b = lo.shape[0]
    entry = np.full(b, -1, dtype=np.int64)
    active = np.arange(b)
    X = AffineForm.from_box(lo, hi)
    for step in range(1, int(horizons.max()) + 1):
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                X = _reduce(closed_loop_period_sets(loop.plant, loop.ctrl, X, reference=loop.r,
                                                    semantics="discrete").x_next,
                            max_generators)
                xl, xu = X.lower, X.upper
                ok = np.all(np.isfinite(xl) & np.isfinite(xu) & (xu - xl < _DIVERGED), axis=1)
                in_dom = ok & np.all((xl >= lo_dom) & (xu <= hi_dom), axis=1)
                vu = np.where(in_dom, loop.V.set_bounds(X)[1], np.inf)
        except SetArithmeticError:
            break
        entered = in_dom & (vu <= level)
        entry[active[entered]] = step
        keep = in_dom & ~entered & (horizons[active] > step)
        if not keep.any():
            break
        active = active[keep]
        X = X[keep]
    return entry


def _halves(lo, hi, width):
    """Each box split in two along its widest side relative to ``width`` (shapes (B, n))."""
    d = np.argmax((hi - lo) / width, axis=1)
    rows = np.arange(lo.shape[0])
    mid = 0.5 * (lo[rows, d] + hi[rows, d])
    a_hi, b_lo = hi.copy(), lo.copy()
    a_hi[rows, d] = mid
    b_lo[rows, d] = mid
    return np.concatenate([lo, b_lo]), np.concatenate([a_hi, hi])


def prove_entry_boxes(loop, *, level, in_set, lo_box, hi_box, lo_dom, hi_dom, steps, grid,
                      min_width, batch, deadline, max_generators=64) -> EntryBoxes:
    """Cover the box of interest, outside the certified set, with boxes proved to enter it.

    Parameters
    ----------
    loop : object
        The closed loop: ``plant``, ``ctrl`` (float64 network), ``r`` (reference or None) and
        ``V`` (a :class:`~neuroctl.verify.lyapunov.QuadraticLyapunov` or one of its kind).
    level : float
        The certified level ``c``.
    in_set : callable
        ``in_set(x)`` for states of shape (M, n): whether each lies in the certified set.
    lo_box, hi_box : ndarray, shape (n,)
        The box of interest: the candidate boxes tile it.
    lo_dom, hi_dom : ndarray, shape (n,)
        The proof domain ``D`` (containing the box and the certified set).
    steps : int
        Largest number of steps to the set.
    grid : int
        Candidate boxes per state at the start (``grid**n`` of them).
    min_width : float
        Boxes are not split below this fraction of the box of interest's width.
    batch : int
        Boxes run on sets together.
    deadline : float
        ``time.perf_counter()`` at which the search stops (the boxes proved so far are kept).
    max_generators : int
        Generators kept per set by the order reduction after each step.

    Returns
    -------
    EntryBoxes
    """
    t0 = time.perf_counter()
    n = lo_box.size
    width = hi_box - lo_box
    edges = [np.linspace(lo_box[i], hi_box[i], grid + 1) for i in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(grid)] * n, indexing="ij"), -1).reshape(-1, n)
    lo = np.stack([edges[i][idx[:, i]] for i in range(n)], 1)
    hi = np.stack([edges[i][idx[:, i] + 1] for i in range(n)], 1)
    # boxes already in the certified set need no proof
    _, vu = loop.V.bounds(lo, hi)
    inside = (vu <= level) & np.all((lo >= lo_dom) & (hi <= hi_dom), axis=1)
    queue_lo, queue_hi = lo[~inside], hi[~inside]
    # boxes are tried nearest the set first (by their centre's simulated entry step): under a
    # deadline the time goes to the boxes likeliest to be proved, not to the far corners
    queue_key = _simulated_entry(loop, 0.5 * (queue_lo + queue_hi), in_set, lo_dom, hi_dom,
                                 steps)
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=n)))  # (2^n, n)
    proved_lo, proved_hi, proved_steps = [], [], []
    evaluated = simulated = 0
    limited = "done"
    while queue_lo.shape[0]:
        if time.perf_counter() > deadline:
            limited = "timeout"
            break
        order = np.argsort(queue_key, kind="stable")
        take, rest = order[:batch], order[batch:]
        lo, hi = queue_lo[take], queue_hi[take]
        queue_lo, queue_hi, queue_key = queue_lo[rest], queue_hi[rest], queue_key[rest]
        # the centre and the corners of each box, simulated
        pts = np.concatenate([0.5 * (lo + hi)[:, None],
                              lo[:, None] + corners[None] * (hi - lo)[:, None]],
                             axis=1)  # (B, 1 + 2^n, n)
        sim = _simulated_entry(loop, pts.reshape(-1, n), in_set, lo_dom, hi_dom,
                               steps).reshape(lo.shape[0], -1)
        simulated += lo.shape[0]
        all_enter = np.all(sim <= steps, axis=1)
        splittable = np.any(hi - lo > min_width * width * (1 + 1e-9), axis=1)
        horizons = np.minimum(steps, (1.5 * sim.max(axis=1)).astype(np.int64) + 10)
        entry = np.full(lo.shape[0], -1, dtype=np.int64)
        if all_enter.any():
            k = np.nonzero(all_enter)[0]
            entry[k] = _enter_on_sets(loop, lo[k], hi[k], level, lo_dom, hi_dom, horizons[k],
                                      max_generators)
            evaluated += k.size
        done = entry > 0
        proved_lo.append(lo[done])
        proved_hi.append(hi[done])
        proved_steps.append(entry[done])
        # a box not proved is split (some of it may enter), or dropped at the smallest width;
        # a box none of whose simulated points enters is dropped (its halves are tried only
        # while it is wider than the smallest width, through the corners they share)
        coarse = np.any(hi - lo > 4 * min_width * width, axis=1)
        again = ~done & splittable & (np.any(sim <= steps, axis=1) | coarse)
        if again.any():
            s_lo, s_hi = _halves(lo[again], hi[again], width)
            queue_lo = np.concatenate([queue_lo, s_lo])
            queue_hi = np.concatenate([queue_hi, s_hi])
            # a half inherits its box's latest simulated entry step (horizon + 1 where one of
            # its points did not enter)
            parent_key = sim[again].max(axis=1)
            queue_key = np.concatenate([queue_key, parent_key, parent_key])
    lower = np.concatenate(proved_lo) if proved_lo else np.zeros((0, n))
    upper = np.concatenate(proved_hi) if proved_hi else np.zeros((0, n))
    k_steps = np.concatenate(proved_steps) if proved_steps else np.zeros(0, dtype=np.int64)
    return EntryBoxes(lower, upper, k_steps.astype(np.int64), evaluated, simulated, limited,
                      time.perf_counter() - t0)
