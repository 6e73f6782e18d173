"""The benchmarks' properties, stated once as clauses, read two ways.

A :class:`Clause` says when the trajectory must be inside (or outside) a set: a box over the
states (``lower``/``upper``, infinite bounds allowed) or ``{x : fn(x) <= 0}`` for an
array-agnostic ``fn``. :func:`to_temporal` builds the :mod:`neuroctl.verify.temporal` property
that ``check_closed_loop`` decides (imported on use); :func:`robustness` reads the same clauses on
simulated trajectories (dense times between the samples), the quantitative reading used to find
and to confirm counterexamples: ``> 0`` satisfied with margin, ``< 0`` violated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Clause", "to_temporal", "robustness", "TIME_TOL"]

#: two times closer than this (s) are the same instant (a sample and a window end)
TIME_TOL = 1e-9

_OPS = ("always", "never", "eventually", "at")


@dataclass(frozen=True)
class Clause:
    """One part of a property (the property is the conjunction of its clauses).

    Parameters
    ----------
    op : {"always", "never", "eventually", "at"}
        ``always``/``never``: inside / outside the set at every time of ``window`` (between
        samples too); ``eventually``: inside at some sampling instant of ``window``; ``at``:
        inside at time ``window[0]`` (``window = (t, t)``).
    lower, upper : tuple of float, optional
        Box over the states (use ``±inf`` for free states).
    fn : callable, optional
        Instead of a box: the set ``{x : fn(x) <= 0}``, ``fn`` maps ``(..., n)`` to ``(...)``.
    window : tuple of float, optional
        ``(t0, t1)`` in seconds; None means the whole horizon.
    """

    op: str
    lower: tuple | None = None
    upper: tuple | None = None
    fn: Callable | None = None
    window: tuple | None = None

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"Clause op: expected one of {_OPS}, received {self.op!r}")
        if (self.fn is None) == (self.lower is None or self.upper is None):
            raise ValueError("Clause: expected either lower and upper (a box) or fn, not both")
        if self.op in ("eventually", "at") and self.window is None:
            raise ValueError(f"Clause {self.op}: expected a window (t0, t1), received None")

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Signed distance-like margin of ``x`` (..., n) to the set: ``>= 0`` inside."""
        if self.fn is not None:
            return -np.asarray(self.fn(x), dtype=np.float64)
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        with np.errstate(invalid="ignore"):
            m = np.minimum(x - lo, hi - x)
        return np.min(np.where(np.isnan(m), np.inf, m), axis=-1)


def to_temporal(clauses):
    """The :mod:`neuroctl.verify.temporal` property of ``clauses`` (their conjunction).

    Raises
    ------
    ImportError
        When this version of neuroctl has no temporal specifications.
    """
    from neuroctl.verify import temporal as T

    parts = []
    for c in clauses:
        if c.fn is not None:
            s = T.Constraint(c.fn, name=getattr(c.fn, "__name__", None))
        else:
            s = T.Box(np.asarray(c.lower, float), np.asarray(c.upper, float))
        if c.op == "always":
            parts.append(T.always(s, window=c.window))
        elif c.op == "never":
            parts.append(T.never(s, window=c.window))
        elif c.op == "eventually":
            parts.append(T.eventually(s, window=c.window))
        else:
            parts.append(T.at(s, c.window[0]))
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def robustness(clauses, t: np.ndarray, x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Robustness of simulated trajectories: min over clauses (``< 0``: violated).

    Parameters
    ----------
    clauses : sequence of Clause
    t : ndarray, shape (T,)
        Times (s), the sampling instants among them.
    x : ndarray, shape (B, T, n)
        States of ``B`` trajectories at those times.
    sample : ndarray of bool, shape (T,)
        Which times are sampling instants.

    Returns
    -------
    ndarray, shape (B,)
    """
    rho = np.full(x.shape[0], np.inf)
    for c in clauses:
        a, b = c.window if c.window is not None else (t[0], t[-1])
        in_window = (t >= a - TIME_TOL) & (t <= b + TIME_TOL)
        if c.op == "at":
            in_window = np.abs(t - a) <= TIME_TOL
            if not in_window.any():
                raise ValueError(f"robustness: no simulated time at t = {a} s")
        v = c.inside(x[:, in_window])
        if c.op == "always" or c.op == "at":
            r = v.min(axis=1)
        elif c.op == "never":
            r = (-v).min(axis=1)
        else:
            r = c.inside(x[:, in_window & sample]).max(axis=1)
        rho = np.minimum(rho, r)
    return rho
