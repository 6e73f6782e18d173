"""Closed-loop specifications: sets of states (and commands) and the temporal operators over them.

A *set* is described by margins ``g(z)`` and is ``{z : g(z) <= 0}`` componentwise (non-strict
inequalities stay non-strict): :class:`Box` ``lower <= z <= upper``, :class:`Polytope`
``H z <= h`` and :class:`Constraint` ``fn(z) <= 0`` with an array-agnostic ``fn``. ``z`` is the
state ``x`` (``over="state"``) or the state with the applied command ``[x, u]``
(``over="state_command"``; ``u`` after the actuator saturation).

A *property* says when the closed loop must be inside (or outside) a set; times are in seconds
from the initial state, windows ``(t0, t1)`` are closed intervals:

============================ ===========================================================
``always(S, window=None)``   inside ``S`` at every time of the window, between samples too
``never(S, window=None)``    outside ``S`` (an unsafe set) at every time of the window
``eventually(S, window)``    inside ``S`` at some *sampling instant* ``k dt`` of the window
``at(S, time)``              inside ``S`` at that time
``p & q``, ``all_of(...)``   every part holds
============================ ===========================================================

A sampling instant and a window end are taken as equal when they differ by less than
``1e-9 dt``. A state-command set is checked on each control period ``[k dt, (k+1) dt]`` with
that period's command (at a switching instant, with both commands). For a plant defined only by
its discrete map there is nothing between samples: the properties are read at the samples.

The quantitative reading (robustness ``rho``) is used by the search for counterexamples: for one
point inside a set ``rho = -max_j g_j``, outside ``rho = max_j g_j``; ``always``, ``never``,
``at`` and ``&`` take the minimum over their points or parts, ``eventually`` the maximum. A
trajectory violates the property when ``rho < 0`` (for ``never``, ``rho <= 0``).
"""

from __future__ import annotations

import math

import numpy as np

from .._array import as_like, is_torch, namespace
from .._json import json_dict

__all__ = [
    "Box",
    "Polytope",
    "Constraint",
    "Always",
    "Never",
    "Eventually",
    "At",
    "AllOf",
    "always",
    "never",
    "eventually",
    "at",
    "all_of",
    "box_property",
]

_OVER = ("state", "state_command")
#: relative tolerance (of dt) at which a sampling instant equals a window end or a time
TIME_TOL = 1e-9


def _check_over(over) -> str:
    if over not in _OVER:
        raise ValueError(f"over: expected one of {_OVER}, received {over!r}")
    return over


def _vec(v, what: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{what}: expected a vector, received shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{what}: expected numbers (±inf allowed), received {a}")
    return a


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=6, separator=", ", max_line_width=10_000)


# ============================================================================ sets
class _Set:
    """Common part of the sets: the space they live in and their margins."""

    over: str

    def dimension(self) -> int | None:
        """Size of ``z`` the set expects (None when only evaluation tells, as a Constraint)."""
        raise NotImplementedError

    def margins(self, z):
        """Margins ``g(z)``, shape ``(..., k)``: ``z`` is in the set iff every margin is ``<= 0``.

        Parameters
        ----------
        z : ndarray, torch.Tensor or AffineForm, shape (..., d)
            ``x`` or ``[x, u]`` (see ``over``).
        """
        raise NotImplementedError

    def _validate(self, n: int, m: int) -> None:
        d = n if self.over == "state" else n + m
        want = self.dimension()
        if want is not None and want != d:
            raise ValueError(
                f"{self!r}: expected a set over {d} coordinates ({self.over!r}: n={n}"
                + (f", m={m}" if self.over == "state_command" else "")
                + f"), received one over {want}"
            )
        g = np.asarray(self.margins(np.zeros((1, d))))
        if g.ndim != 2 or g.shape[0] != 1:
            raise ValueError(
                f"{self!r}: margins of a (1, {d}) batch must have shape (1, k), received {g.shape}"
            )

    def __and__(self, other):
        raise TypeError(
            f"{self!r} is a set, not a property: wrap it in always(), never(), eventually() or "
            "at() before combining with &"
        )


class Box(_Set):
    """The box ``{z : lower <= z <= upper}`` (``±inf`` for an unconstrained side).

    Parameters
    ----------
    lower, upper : array_like, shape (d,)
        Bounds; ``d = n`` for ``over="state"``, ``n + m`` for ``over="state_command"``.
    over : {"state", "state_command"}, keyword-only
    """

    def __init__(self, lower, upper, *, over: str = "state"):
        self.lower = _vec(lower, "Box lower")
        self.upper = _vec(upper, "Box upper")
        if self.lower.shape != self.upper.shape:
            raise ValueError(
                f"Box: expected lower and upper of one shape, received {self.lower.shape} and "
                f"{self.upper.shape}"
            )
        if np.any(self.lower > self.upper):
            raise ValueError(
                f"Box: expected lower <= upper, received {_fmt(self.lower)} and {_fmt(self.upper)}"
            )
        self.over = _check_over(over)
        self._lo_idx = np.nonzero(np.isfinite(self.lower))[0]
        self._hi_idx = np.nonzero(np.isfinite(self.upper))[0]

    def dimension(self) -> int:
        return self.lower.size

    def margins(self, z):
        parts = []
        if self._lo_idx.size:
            parts.append(_const_like(self.lower[self._lo_idx], z) - z[..., self._lo_idx])
        if self._hi_idx.size:
            parts.append(z[..., self._hi_idx] - _const_like(self.upper[self._hi_idx], z))
        if not parts:  # the whole space: one margin that is always -1
            return z[..., :1] * 0.0 - 1.0
        return parts[0] if len(parts) == 1 else namespace(z).concat(parts, axis=-1)

    def __repr__(self) -> str:
        o = "" if self.over == "state" else f", over={self.over!r}"
        return f"Box({_fmt(self.lower)}, {_fmt(self.upper)}{o})"

    @json_dict
    def to_dict(self) -> dict:
        return {
            "kind": "box",
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "over": self.over,
        }


class Polytope(_Set):
    """The polytope ``{z : H z <= h}``.

    Parameters
    ----------
    H : array_like, shape (k, d)
    h : array_like, shape (k,)
    over : {"state", "state_command"}, keyword-only
    """

    def __init__(self, H, h, *, over: str = "state"):
        self.H = np.atleast_2d(np.asarray(H, dtype=np.float64))
        self.h = _vec(h, "Polytope h")
        if self.H.ndim != 2 or self.h.shape != (self.H.shape[0],):
            raise ValueError(
                f"Polytope: expected H of shape (k, d) and h of shape (k,), received "
                f"{self.H.shape} and {self.h.shape}"
            )
        if not (np.isfinite(self.H).all() and np.isfinite(self.h).all()):
            raise ValueError("Polytope: expected finite H and h")
        self.over = _check_over(over)

    def dimension(self) -> int:
        return self.H.shape[1]

    def margins(self, z):
        return z @ _const_like(self.H.T, z) - _const_like(self.h, z)

    def __repr__(self) -> str:
        o = "" if self.over == "state" else f", over={self.over!r}"
        return f"Polytope(H={_fmt(self.H)}, h={_fmt(self.h)}{o})"

    @json_dict
    def to_dict(self) -> dict:
        return {"kind": "polytope", "H": self.H.tolist(), "h": self.h.tolist(), "over": self.over}


class Constraint(_Set):
    """The set ``{z : fn(z) <= 0}`` componentwise, for an array-agnostic ``fn``.

    ``fn`` maps ``(..., d)`` to ``(..., k)`` (or ``(...)`` for one constraint) and is written with
    the array namespace (:func:`neuroctl.namespace`), so that one definition runs on numpy, on
    torch (the gradient-guided search) and on affine forms (the proof).

    Parameters
    ----------
    fn : callable
    over : {"state", "state_command"}, keyword-only
    name : str, keyword-only
        Label for printing (default the function's name).

    Examples
    --------
    Docking's speed limit ``sqrt(x3² + x4²) <= 0.2 + 2 · 0.001027 · sqrt(x1² + x2²)``:

    >>> from neuroctl import namespace
    >>> def speed_limit(x):
    ...     xp = namespace(x)
    ...     return (xp.sqrt(x[..., 2] ** 2 + x[..., 3] ** 2) - 0.2
    ...             - 2 * 0.001027 * xp.sqrt(x[..., 0] ** 2 + x[..., 1] ** 2))
    >>> safe = Constraint(speed_limit)
    """

    def __init__(self, fn, *, over: str = "state", name: str | None = None):
        if not callable(fn):
            raise TypeError(f"Constraint fn: expected a callable, received {type(fn).__name__}")
        self.fn = fn
        self.over = _check_over(over)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def dimension(self) -> None:
        return None

    def margins(self, z):
        g = self.fn(z)
        if not hasattr(g, "shape"):
            g = np.asarray(g, dtype=np.float64)
        if len(g.shape) == len(z.shape) - 1:
            g = g[..., None]
        return g

    def __repr__(self) -> str:
        o = "" if self.over == "state" else f", over={self.over!r}"
        return f"Constraint({self.name}{o})"

    @json_dict
    def to_dict(self) -> dict:
        return {"kind": "constraint", "fn": self.name, "over": self.over}


def _const_like(v: np.ndarray, z):
    return as_like(v, z) if is_torch(z) else v


# ============================================================================ evaluation points
class _Points:
    """Where a property is read: points (or intervals) of time with their margins.

    ``t_lo``, ``t_hi`` (M,): a point covers ``[t_lo, t_hi]`` (equal for an instant; a tube of
    one control period otherwise). ``sample`` (M,): the point is a sampling instant ``k dt``.
    For trajectories ``rho[id(S), mode]`` is the robustness ``(B, M)``; for sets
    ``score[id(S), mode]`` is a sound lower bound of the robustness over the set ``(B, M)``
    (``>= 0`` proves ``inside``, ``> 0`` proves ``outside``).
    """

    def __init__(self, t_lo, t_hi, sample, dt: float, values: dict, on_sets: bool):
        self.t_lo = np.asarray(t_lo, dtype=np.float64)
        self.t_hi = np.asarray(t_hi, dtype=np.float64)
        self.sample = np.asarray(sample, dtype=bool)
        self.eps = TIME_TOL * dt
        self.values = values
        self.on_sets = on_sets

    def window(self, a: float, b: float, *, samples_only: bool = False) -> np.ndarray:
        instant = self.t_lo == self.t_hi
        inst = instant & (self.t_lo >= a - self.eps) & (self.t_lo <= b + self.eps)
        tube = ~instant & (self.t_lo < b - self.eps) & (self.t_hi > a + self.eps)
        if samples_only:
            return inst & self.sample
        return inst | tube

    def at(self, t: float) -> np.ndarray:
        instant = self.t_lo == self.t_hi
        exact = instant & (np.abs(self.t_lo - t) <= self.eps)
        if exact.any():
            return exact
        return ~instant & (self.t_lo < t) & (self.t_hi > t)


def _reduce_min(v, mask: np.ndarray):
    """Minimum over the selected points of ``v`` (B, M); +inf when none."""
    if not mask.any():
        return _full_like(v, math.inf)
    sel = v[:, np.nonzero(mask)[0]] if not is_torch(v) else v[:, _torch_index(mask, v)]
    return namespace(v).min(sel, axis=1)


def _reduce_max(v, mask: np.ndarray):
    if not mask.any():
        return _full_like(v, -math.inf)
    sel = v[:, np.nonzero(mask)[0]] if not is_torch(v) else v[:, _torch_index(mask, v)]
    return namespace(v).max(sel, axis=1)


def _torch_index(mask: np.ndarray, like):
    import torch

    return torch.as_tensor(np.nonzero(mask)[0], device=like.device)


def _full_like(v, value: float):
    xp = namespace(v)
    return xp.full((v.shape[0],), value, dtype=v.dtype)


# ============================================================================ properties
def _window(window, what: str) -> tuple[float, float] | None:
    if window is None:
        return None
    try:
        a, b = (float(t) for t in window)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what} window: expected (t0, t1) in seconds, received {window!r}"
        ) from None
    if not (math.isfinite(a) and math.isfinite(b) and 0.0 <= a <= b):
        raise ValueError(f"{what} window: expected finite 0 <= t0 <= t1, received {window!r}")
    return a, b


def _as_set(s, what: str) -> _Set:
    if not isinstance(s, _Set):
        raise TypeError(
            f"{what}: expected a Box, Polytope or Constraint, received {type(s).__name__}"
        )
    return s


class Property:
    """A closed-loop property over time; combine with ``&``."""

    def __and__(self, other) -> AllOf:
        if not isinstance(other, Property):
            raise TypeError(
                f"&: expected a property (always, never, eventually, at), received "
                f"{type(other).__name__}"
            )
        left = self.parts if isinstance(self, AllOf) else (self,)
        right = other.parts if isinstance(other, AllOf) else (other,)
        return AllOf(*left, *right)

    def sets(self) -> list[_Set]:
        """The sets the property reads (each once)."""
        raise NotImplementedError

    def times(self) -> list[float]:
        """Times [s] at which the property must be read exactly (window ends, ``at`` times)."""
        raise NotImplementedError

    def validate(self, n: int, m: int, horizon: float, dt: float, semantics: str) -> None:
        """Check the sets' sizes against the plant and the times against the horizon [s]."""
        for s in self.sets():
            s._validate(n, m)
        self._validate_times(horizon, dt, semantics)

    def _validate_times(self, horizon, dt, semantics):  # pragma: no cover - abstract
        raise NotImplementedError

    def robustness(self, pts: _Points):
        """Robustness per trajectory ``(B,)`` (on sets: a sound lower bound per set)."""
        raise NotImplementedError

    def holds_on(self, pts: _Points) -> np.ndarray:
        """Whether the property is proved on each set (``pts`` from sets), ``(B,)``."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Plain-Python dictionary (the operator, its sets and times), suitable for JSON."""
        raise NotImplementedError


class _Temporal(Property):
    """``always`` / ``never`` over a window (``inside`` / ``outside`` the set)."""

    _name = ""
    _mode = ""

    def __init__(self, s, window=None):
        self.set = _as_set(s, self._name)
        self.window = _window(window, self._name)

    def sets(self):
        return [self.set]

    def times(self):
        return [] if self.window is None else list(self.window)

    def _bounds(self, horizon):
        return (0.0, horizon) if self.window is None else self.window

    def _validate_times(self, horizon, dt, semantics):
        if self.window is not None and self.window[1] > horizon + TIME_TOL * dt:
            raise ValueError(
                f"{self._name} window: expected times within the horizon [0, {horizon:g}] s, "
                f"received {self.window}"
            )

    def robustness(self, pts):
        a, b = self._bounds(math.inf)
        return _reduce_min(pts.values[id(self.set), self._mode], pts.window(a, b))

    def holds_on(self, pts):
        a, b = self._bounds(math.inf)
        v = pts.values[id(self.set), self._mode][:, pts.window(a, b)]
        ok = v >= 0.0 if self._mode == "inside" else v > 0.0
        return ok.all(axis=1)

    def __repr__(self) -> str:
        w = "" if self.window is None else f", window={self.window}"
        return f"{self._name}({self.set!r}{w})"

    @json_dict
    def to_dict(self) -> dict:
        return {
            "op": self._name,
            "set": self.set.to_dict(),
            "window": None if self.window is None else list(self.window),
        }


class Always(_Temporal):
    """Inside the set at every time of the window (between samples too); see :func:`always`."""

    _name, _mode = "always", "inside"


class Never(_Temporal):
    """Outside the set at every time of the window; see :func:`never`."""

    _name, _mode = "never", "outside"


class Eventually(Property):
    """Inside the set at some sampling instant of the window; see :func:`eventually`."""

    def __init__(self, s, window):
        self.set = _as_set(s, "eventually")
        w = _window(window, "eventually")
        if w is None:
            raise ValueError("eventually window: expected (t0, t1) in seconds, received None")
        self.window = w

    def sets(self):
        return [self.set]

    def times(self):
        return list(self.window)

    def _validate_times(self, horizon, dt, semantics):
        a, b = self.window
        if b > horizon + TIME_TOL * dt:
            raise ValueError(
                f"eventually window: expected times within the horizon [0, {horizon:g}] s, "
                f"received {self.window}"
            )
        if math.floor(b / dt + TIME_TOL) < math.ceil(a / dt - TIME_TOL):
            raise ValueError(
                f"eventually window: expected a window containing a sampling instant "
                f"(multiples of dt = {dt:g} s), received {self.window}"
            )

    def robustness(self, pts):
        return _reduce_max(
            pts.values[id(self.set), "inside"], pts.window(*self.window, samples_only=True)
        )

    def holds_on(self, pts):
        v = pts.values[id(self.set), "inside"][:, pts.window(*self.window, samples_only=True)]
        return (v >= 0.0).any(axis=1)

    def __repr__(self) -> str:
        return f"eventually({self.set!r}, window={self.window})"

    @json_dict
    def to_dict(self) -> dict:
        return {"op": "eventually", "set": self.set.to_dict(), "window": list(self.window)}


class At(Property):
    """Inside the set at one time; see :func:`at`."""

    def __init__(self, s, time):
        self.set = _as_set(s, "at")
        try:
            self.time = float(time)
        except (TypeError, ValueError):
            raise ValueError(f"at time: expected seconds, received {time!r}") from None
        if not (math.isfinite(self.time) and self.time >= 0.0):
            raise ValueError(f"at time: expected a finite time >= 0 s, received {time!r}")

    def sets(self):
        return [self.set]

    def times(self):
        return [self.time]

    def _validate_times(self, horizon, dt, semantics):
        if self.time > horizon + TIME_TOL * dt:
            raise ValueError(
                f"at time: expected a time within the horizon [0, {horizon:g}] s, received "
                f"{self.time:g}"
            )
        k = round(self.time / dt)
        if semantics == "discrete" and abs(k * dt - self.time) > TIME_TOL * dt:
            raise ValueError(
                f"at time: a discrete map is read at its samples (multiples of dt = {dt:g} s); "
                f"received {self.time:g}"
            )

    def robustness(self, pts):
        return _reduce_min(pts.values[id(self.set), "inside"], pts.at(self.time))

    def holds_on(self, pts):
        mask = pts.at(self.time)
        v = pts.values[id(self.set), "inside"][:, mask]
        return (v >= 0.0).all(axis=1) & bool(mask.any())

    def __repr__(self) -> str:
        return f"at({self.set!r}, time={self.time:g})"

    @json_dict
    def to_dict(self) -> dict:
        return {"op": "at", "set": self.set.to_dict(), "time": self.time}


class AllOf(Property):
    """Conjunction: every part holds; see :func:`all_of`."""

    def __init__(self, *parts):
        if not parts:
            raise ValueError("all_of: expected at least one property, received none")
        for p in parts:
            if not isinstance(p, Property):
                raise TypeError(
                    f"all_of: expected properties (always, never, eventually, at), received "
                    f"{type(p).__name__}"
                )
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, AllOf) else (p,))
        self.parts = tuple(flat)

    def sets(self):
        seen, out = set(), []
        for p in self.parts:
            for s in p.sets():
                if id(s) not in seen:
                    seen.add(id(s))
                    out.append(s)
        return out

    def times(self):
        return sorted({t for p in self.parts for t in p.times()})

    def _validate_times(self, horizon, dt, semantics):
        for p in self.parts:
            p._validate_times(horizon, dt, semantics)

    def robustness(self, pts):
        rs = [p.robustness(pts) for p in self.parts]
        out = rs[0]
        xp = namespace(out)
        for r in rs[1:]:
            out = xp.minimum(out, r)
        return out

    def holds_on(self, pts):
        ok = self.parts[0].holds_on(pts)
        for p in self.parts[1:]:
            ok = ok & p.holds_on(pts)
        return ok

    def __repr__(self) -> str:
        return " & ".join(repr(p) for p in self.parts)

    @json_dict
    def to_dict(self) -> dict:
        return {"op": "all_of", "parts": [p.to_dict() for p in self.parts]}


def always(s: _Set, window=None) -> Always:
    """Inside ``s`` at every time of ``window`` (between samples too for a continuous plant).

    Parameters
    ----------
    s : Box, Polytope or Constraint
    window : (float, float), optional
        ``(t0, t1)`` [s], closed; default the whole horizon.
    """
    return Always(s, window)


def never(s: _Set, window=None) -> Never:
    """Outside the (unsafe) set ``s`` at every time of ``window`` (default the whole horizon)."""
    return Never(s, window)


def eventually(s: _Set, window) -> Eventually:
    """Inside ``s`` at some sampling instant ``k dt`` within ``window = (t0, t1)`` [s].

    The goal is read at the samples: a trajectory that passes through ``s`` only between two
    samples does not count (a sound, slightly stronger reading than "at some time").
    """
    return Eventually(s, window)


def at(s: _Set, time: float) -> At:
    """Inside ``s`` at ``time`` [s] (between samples allowed for a continuous plant)."""
    return At(s, time)


def all_of(*parts: Property) -> AllOf:
    """Every one of ``parts`` holds (the same as joining them with ``&``)."""
    return AllOf(*parts)


def _side(v, n: int, what: str, default: float) -> np.ndarray:
    if v is None:
        return np.full(n, default)
    a = _vec(v, what)
    if a.size == 1:
        a = np.full(n, a[0])
    if a.size != n:
        raise ValueError(f"{what}: expected 1 or {n} values (one per state), received {a.size}")
    return a


def box_property(
    n: int,
    *,
    safe_lower=None,
    safe_upper=None,
    window=None,
    goal_lower=None,
    goal_upper=None,
    at_time: float | None = None,
    eventually_window=None,
) -> Property:
    """The usual closed-loop property from boxes of states: stay safe, reach a goal.

    ``always(Box(safe_lower, safe_upper), window)`` where a safe side is given, and
    ``at(Box(goal_lower, goal_upper), at_time)`` or ``eventually(Box(goal_lower, goal_upper),
    eventually_window)`` where a goal side is given; both joined with ``&``.

    Parameters
    ----------
    n : int
        Number of states.
    safe_lower, safe_upper : array_like, shape (n,) or (1,), optional
        Safe box (one value: the same for every state; a missing side or ``±inf``:
        unconstrained).
    window : (float, float), optional
        ``(t0, t1)`` [s] in which the states must be safe; default the whole horizon.
    goal_lower, goal_upper : array_like, shape (n,) or (1,), optional
        Goal box.
    at_time : float, optional
        The goal must hold at this time [s] ...
    eventually_window : (float, float), optional
        ... or at some sampling instant of this window [s] (exactly one of the two with a goal).

    Returns
    -------
    Property

    Raises
    ------
    ValueError
        Naming the argument: wrong number of values, lower above upper, a window or time
        without the box it belongs to, no property at all.
    """
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n: expected a positive number of states, received {n!r}")
    parts: list[Property] = []
    has_safe = safe_lower is not None or safe_upper is not None
    has_goal = goal_lower is not None or goal_upper is not None
    for kind, lo_v, hi_v, present in (
        ("safe", safe_lower, safe_upper, has_safe),
        ("goal", goal_lower, goal_upper, has_goal),
    ):
        if not present:
            continue
        lo = _side(lo_v, n, f"{kind}_lower", -np.inf)
        hi = _side(hi_v, n, f"{kind}_upper", np.inf)
        if np.any(lo > hi):
            k = int(np.flatnonzero(lo > hi)[0])
            raise ValueError(
                f"{kind}_lower/{kind}_upper: expected {kind}_lower <= {kind}_upper, received "
                f"{lo[k]:g} > {hi[k]:g} in state {k}"
            )
        box = Box(lo, hi)
        if kind == "safe":
            parts.append(always(box, window))
        elif (at_time is None) == (eventually_window is None):
            raise ValueError(
                "at_time/eventually_window: expected exactly one of them with a goal box, "
                f"received at_time={at_time!r}, eventually_window={eventually_window!r}"
            )
        elif at_time is not None:
            parts.append(at(box, at_time))
        else:
            parts.append(eventually(box, eventually_window))
    if window is not None and not has_safe:
        raise ValueError(
            f"window: the window of the safe box, received {window!r} without safe_lower/"
            "safe_upper"
        )
    if not has_goal and (at_time is not None or eventually_window is not None):
        raise ValueError(
            "at_time/eventually_window: a time of the goal box, received one without "
            "goal_lower/goal_upper"
        )
    if not parts:
        raise ValueError(
            "safe_lower/safe_upper, goal_lower/goal_upper: expected a safe box or a goal box, "
            "received neither"
        )
    return parts[0] if len(parts) == 1 else all_of(*parts)
