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
3. Or it *chains*: the set at step ``k`` lies in ``S`` and boxes proved before it (its interval
   hull, in the box of interest, at a positive distance from every box of the search not
   proved: :class:`_ProvedCells`), so its states are in ``S`` after ``k`` plus those boxes'
   largest number of steps. The boxes are tried nearest ``S`` first, so the far ones reach a
   proved band around ``S`` long before ``S`` itself, and their sets stop growing earlier.
4. Every set before it lies in ``D`` too (where the plant model is assumed to hold), or the box
   fails; a box that fails, or does not enter within its horizon, is split in two down to a
   smallest width, and the halves tried again (branch and bound). The side split is the one
   whose corners' simulated trajectories spread apart most (relative to the box of interest):
   where the flow stretches the box, not its widest side.

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

#: Steps over which a failed box's corners are simulated to choose the side to split: long
#: enough to see the swing that stretches its sets (on the cart-pole, 120 steps certified 38.7%
#: of the basin in 60 s where 15 gave 34.8% and 300 gave 35.1%, the widest side 31.0%).
_SPREAD_STEPS = 120


@dataclass
class EntryBoxes:
    """Boxes of states proved to enter a certified invariant set.

    Attributes
    ----------
    lower, upper : ndarray, shape (k, n)
        The boxes (state units); disjoint up to shared faces.
    steps : ndarray of int, shape (k,)
        Each box's states lie in the invariant set after this many steps of ``plant.step``.
    chained : int
        Boxes proved by entering boxes proved before them (the others entered the set itself).
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
    chained: int
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


class _ProvedCells:
    """Where the boxes proved so far lie, for the question "is this box of states inside the
    certified set or boxes proved before?" (asked of every set at every step).

    Every candidate box is a cell of the ``grid**n`` starting grid of the box of interest or a
    piece of one (halves never cross a cell's faces), and a cell is *inside* (it lies in the
    set from the start) or the union of its *leaves*: the boxes proved, queued, being tried or
    dropped. A box of states in the box of interest is then covered by the set and the proved
    boxes when it lies at a positive distance from every leaf not proved (each of its points is
    in an inside cell or a proved box). Per cell, with summed-area tables of the cells none of
    whose leaves is proved and of those partly proved, most boxes are answered without looking
    at a leaf; only those meeting partly proved cells (and no unproved one) are tested against
    the unproved leaves of those cells.

    Parameters
    ----------
    lo_box, width : ndarray, shape (n,)
        The box of interest's lower corner and widths.
    grid : int
        Cells per state.
    inside : ndarray of bool, shape (grid**n,)
        The cells (in C order) that lie in the certified set.
    """

    max_cells = 256  # a box meeting more cells than this is not looked up leaf by leaf

    def __init__(self, lo_box, width, grid, inside):
        self.lo_box, self.grid, self.n = lo_box, grid, lo_box.size
        self.cell_width = width / grid
        self.inside = np.asarray(inside, dtype=bool)
        # the 2**n corners of a block in a summed-area table (True: the block's upper end) and
        # their signs in the inclusion-exclusion sum
        self._upper_ends = np.array(list(itertools.product([False, True], repeat=self.n)))
        self._signs = np.where((self.n - self._upper_ends.sum(axis=1)) % 2, -1, 1)
        self.update(np.zeros((0, self.n)), np.zeros((0, self.n)), np.zeros(0, dtype=np.int64),
                    np.zeros((0, self.n)), np.zeros((0, self.n)))

    def _cell_of(self, lower, upper):
        idx = np.floor((0.5 * (lower + upper) - self.lo_box) / self.cell_width).astype(np.int64)
        return np.ravel_multi_index(tuple(np.clip(idx, 0, self.grid - 1).T), self.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.grid,) * self.n

    @staticmethod
    def _summed(a):
        s = np.pad(a.astype(np.int64), [(1, 0)] * a.ndim)
        for axis in range(a.ndim):
            s = np.cumsum(s, axis=axis)
        return s

    def update(self, proved_lo, proved_hi, proved_steps, open_lo, open_hi):
        """Set the proved boxes (shapes (k, n), (k, n), (k,)) and the leaves not proved (queued,
        being tried or dropped; shapes (m, n))."""
        size = self.grid ** self.n
        p_cell = self._cell_of(proved_lo, proved_hi)
        o_cell = self._cell_of(open_lo, open_hi)
        has_proved = np.bincount(p_cell, minlength=size) > 0
        has_open = np.bincount(o_cell, minlength=size) > 0
        steps = np.zeros(size, dtype=np.int64)
        np.maximum.at(steps, p_cell, proved_steps.astype(np.int64))
        self.cell_steps = steps.reshape(self.shape)
        none = ~self.inside & ~has_proved  # no point of the cell known to be covered
        partly = ~self.inside & has_proved & has_open
        self.none_sum = self._summed(none.reshape(self.shape))
        self.partly_sum = self._summed(partly.reshape(self.shape))
        order = np.argsort(o_cell, kind="stable")
        self.open_cell, self.open_lo, self.open_hi = o_cell[order], open_lo[order], open_hi[order]

    def _block(self, table, first, last):
        """Sums of a cell table over the blocks ``first..last`` (shapes (Q, n), inclusive)."""
        total = np.zeros(first.shape[0], dtype=np.int64)
        for upper, sign in zip(self._upper_ends, self._signs):
            total += sign * table[tuple(np.where(upper, last + 1, first).T)]
        return total

    def _cells_met(self, first, last):
        """The flat cells of each block (shape (Q, M)) and which are in the block (Q, M)."""
        span = (last - first).max(axis=0) + 1
        offsets = np.stack(np.meshgrid(*[np.arange(s) for s in span], indexing="ij"),
                           -1).reshape(-1, self.n)
        cells = first[:, None] + offsets[None]  # (Q, M, n)
        valid = np.all(cells <= last[:, None], axis=2)
        cells = np.minimum(cells, self.grid - 1)
        return np.ravel_multi_index(tuple(np.moveaxis(cells, -1, 0)), self.shape), valid

    def steps_to_set(self, xl, xu) -> np.ndarray:
        """For boxes ``[xl, xu]`` (shape (Q, n)): a number of steps after which all their states
        are in the set (the largest of the proved boxes' in the cells they meet), where each of
        their states is in an inside cell or a proved box; -1 where that is not shown (Q,)."""
        out = np.full(xl.shape[0], -1, dtype=np.int64)
        # widened by far more than the rounding of the cells' faces, so that the cells found
        # hold every point of the box (more cells met: only more to cover)
        pad = 1e-9 * self.cell_width
        with np.errstate(invalid="ignore"):
            first = np.floor((xl - pad - self.lo_box) / self.cell_width)
            last = np.floor((xu + pad - self.lo_box) / self.cell_width)
        ok = np.all(np.isfinite(first) & np.isfinite(last) & (first >= 0) & (last < self.grid),
                    axis=1)
        q = np.nonzero(ok)[0]
        if q.size == 0:
            return out
        first, last = first[q].astype(np.int64), last[q].astype(np.int64)
        keep = self._block(self.none_sum, first, last) == 0
        keep &= np.prod(last - first + 1, axis=1) <= self.max_cells
        q, first, last = q[keep], first[keep], last[keep]
        if q.size == 0:
            return out
        cells, valid = self._cells_met(first, last)
        covered = np.ones(q.size, dtype=bool)
        partly = self._block(self.partly_sum, first, last) > 0
        if partly.any():
            # the pairs (box, unproved leaf of a cell it meets): a box is covered when it is
            # at a positive distance from each of its leaves
            r = np.nonzero(partly)[0]
            c, v = cells[r], valid[r]
            start = np.searchsorted(self.open_cell, c)
            count = np.where(v, np.searchsorted(self.open_cell, c, side="right") - start, 0)
            total = int(count.sum())
            if total:
                owner = np.repeat(np.repeat(r, c.shape[1]), count.ravel())
                first_leaf = np.repeat(start.ravel(), count.ravel())
                within = np.arange(total) - np.repeat(np.cumsum(count.ravel()) - count.ravel(),
                                                      count.ravel())
                leaf = first_leaf + within
                apart = np.any((xu[q[owner]] < self.open_lo[leaf])
                               | (xl[q[owner]] > self.open_hi[leaf]), axis=1)
                covered[owner[~apart]] = False
        steps = np.where(valid, self.cell_steps.ravel()[cells], 0).max(axis=1)
        out[q[covered]] = steps[covered]
        return out


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


def _enter_on_sets(loop, lo, hi, level, lo_dom, hi_dom, horizons, max_generators,
                   proved: _ProvedCells):
    """Run boxes ``[lo, hi]`` (shape (B, n)) through the closed loop on sets: the number of
    steps after which each box's states are in ``{V <= level}``, -1 where that is not proved
    within the box's horizon (shape (B,)), and whether it was proved through ``proved`` (shape
    (B,)). A set enters at step ``k`` when it lies in the set and the domain, or chains when
    it lies in ``proved`` boxes (then ``k`` plus their steps); every set before it in the
    domain."""
    b = lo.shape[0]
    entry = np.full(b, -1, dtype=np.int64)
    chained = np.zeros(b, dtype=bool)
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
        via = np.full(active.size, -1, dtype=np.int64)
        rest = np.nonzero(in_dom & ~entered)[0]
        via[rest] = proved.steps_to_set(xl[rest], xu[rest])
        entry[active[via >= 0]] = step + via[via >= 0]
        chained[active[via >= 0]] = True
        keep = in_dom & ~entered & (via < 0) & (horizons[active] > step)
        if not keep.any():
            break
        active = active[keep]
        X = X[keep]
    return entry, chained


def _sensitive_sides(loop, corners, lo, hi, width, min_width, horizon):
    """The side of each box (shapes (B, n)) whose corners' trajectories spread apart most over
    the first ``horizon`` steps (the largest distance, relative to ``width`` and over time, of
    two corners differing in that side only), among the sides wider than ``min_width`` of
    ``width``; shape (B,). Splitting it narrows the sets most where the flow stretches them.
    ``corners``: the boxes' corners, shape (B, 2^n, n), in the order of
    ``itertools.product([lower, upper], repeat=n)``."""
    from .roa import closed_loop_rollout

    b, n = lo.shape
    bits = np.arange(2**n)
    with np.errstate(over="ignore", invalid="ignore"):
        xs = closed_loop_rollout(loop.plant, loop.ctrl, corners.reshape(-1, n), horizon,
                                 reference=loop.r).reshape(b, 2**n, -1, n)
        spread = np.zeros((b, n))
        for i in range(n):
            low = bits[(bits >> (n - 1 - i)) & 1 == 0]  # the corners at side i's lower end
            high = low + 2 ** (n - 1 - i)  # the corner differing in side i only
            gap = np.abs(xs[:, high] - xs[:, low]) / width  # (B, 2^(n-1), T, n)
            spread[:, i] = np.nan_to_num(gap.max(axis=(1, 2, 3)), nan=np.inf)
    spread[(hi - lo) <= min_width * width * (1 + 1e-9)] = -1.0
    return np.argmax(spread, axis=1)


def _halves(lo, hi, sides):
    """Each box (shapes (B, n)) split in two along its side in ``sides`` (shape (B,))."""
    rows = np.arange(lo.shape[0])
    mid = 0.5 * (lo[rows, sides] + hi[rows, sides])
    a_hi, b_lo = hi.copy(), lo.copy()
    a_hi[rows, sides] = mid
    b_lo[rows, sides] = mid
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
        Largest number of steps each box's sets are run (to the set, or to the set and boxes
        proved before; a chained box's own number of steps to the set may be larger).
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
    proved = _ProvedCells(lo_box, width, grid, inside)
    queue_lo, queue_hi = lo[~inside], hi[~inside]
    # boxes are tried nearest the set first (by their centre's simulated entry step): under a
    # deadline the time goes to the boxes likeliest to be proved, not to the far corners
    queue_key = _simulated_entry(loop, 0.5 * (queue_lo + queue_hi), in_set, lo_dom, hi_dom,
                                 steps)
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=n)))  # (2^n, n)
    proved_lo: list[np.ndarray] = [np.zeros((0, n))]
    proved_hi: list[np.ndarray] = [np.zeros((0, n))]
    proved_steps: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    dropped_lo: list[np.ndarray] = [np.zeros((0, n))]
    dropped_hi: list[np.ndarray] = [np.zeros((0, n))]
    evaluated = simulated = chained = 0
    limited = "done"

    while queue_lo.shape[0]:
        if time.perf_counter() > deadline:
            limited = "timeout"
            break
        # the leaves not proved: queued (this batch's included) and dropped
        proved.update(np.concatenate(proved_lo), np.concatenate(proved_hi),
                      np.concatenate(proved_steps), np.concatenate([queue_lo, *dropped_lo]),
                      np.concatenate([queue_hi, *dropped_hi]))
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
            entry[k], via = _enter_on_sets(loop, lo[k], hi[k], level, lo_dom, hi_dom,
                                           horizons[k], max_generators, proved)
            evaluated += k.size
            chained += int(via.sum())
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
            sides = _sensitive_sides(loop, pts[again, 1:], lo[again], hi[again], width,
                                     min_width, min(steps, _SPREAD_STEPS))
            s_lo, s_hi = _halves(lo[again], hi[again], sides)
            queue_lo = np.concatenate([queue_lo, s_lo])
            queue_hi = np.concatenate([queue_hi, s_hi])
            # a half inherits its box's latest simulated entry step (horizon + 1 where one of
            # its points did not enter)
            parent_key = sim[again].max(axis=1)
            queue_key = np.concatenate([queue_key, parent_key, parent_key])
        dropped_lo.append(lo[~done & ~again])
        dropped_hi.append(hi[~done & ~again])
    return EntryBoxes(np.concatenate(proved_lo), np.concatenate(proved_hi),
                      np.concatenate(proved_steps).astype(np.int64), chained, evaluated,
                      simulated, limited, time.perf_counter() - t0)
