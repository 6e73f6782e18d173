"""Closed-loop reachability and invariance of a plant with a neural controller.

The closed loop is evaluated on *affine forms* (zonotopes, :mod:`neuroctl.verify.affine`): the
observation, the controller (per-layer rule table), the saturation and the plant all run on the
same form, so the correlation between the state and the command is kept (a box-by-box interval
evaluation loses it and grows at every step). Each control period is one call of
:func:`neuroctl.verify.flow.closed_loop_period_sets`, in one of two semantics, stated in every
result:

- ``"continuous"`` (default for a plant with ``rhs`` and no ``post_step``): the sets enclose the
  exact solution of the ODE with the command held over each period (validated Taylor steps with
  a Lagrange remainder bounded on an a-priori enclosure), and the *tubes* enclose every state
  between the samples; :func:`~neuroctl.verify.check_invariant` (in
  :mod:`neuroctl.verify.invariance`) checks the property on the tubes;
- ``"discrete"`` (plants defined by ``update=`` or with a ``post_step`` projection, or when
  asked): the sets enclose the map ``x[k+1] = plant.step(x[k], u[k], w[k])``; the tube of a
  period is the hull of its two samples.

Soundness: every affine-form operation adds a proven bound of its floating-point rounding (see
:mod:`neuroctl.verify.affine`), so the sets enclose the exact real-number closed loop (and its
float64 evaluation) for every initial state of the box and every disturbance in its bounds. A
float32 controller is analysed in float64.

The exact MILP sets of affine plants (``method="milp"``) are in :mod:`neuroctl.verify.unrolled`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from .._json import json_dict
from ..plant import Plant

__all__ = [
    "AffineForm",
    "reach",
    "ReachResult",
    "closed_loop_step_sets",
]

from .affine import (  # noqa: E402  (re-exported: the affine arithmetic lives in .affine)
    AffineForm,
    SetArithmeticError,
    _const,
    _Context,
    _up,
)
from .flow import (  # noqa: E402
    closed_loop_period_sets,
    plant_semantics,
    resolve_semantics,
)


# ============================================================================ closed loop
def _reduce(x: AffineForm, max_generators: int) -> AffineForm:
    """Order reduction (Girard): keep the largest generators per set, box the others.

    Returns a form in a fresh context with at most ``max_generators`` symbols; the boxed
    generators and the rounding term become one generator per coordinate.
    """
    c, g = x.c, x.g  # (B, n), (p, B, n)
    p, b, n = g.shape
    keep = max(0, min(p, max_generators - n))
    absg = np.abs(g)
    if keep < p:
        score = absg.sum(axis=2) - absg.max(axis=2)  # (p, B)
        order = np.argsort(-score, axis=0)
        kept_idx, rest_idx = order[:keep], order[keep:]
        kept = np.take_along_axis(g, kept_idx[:, :, None], axis=0)
        boxed = np.take_along_axis(absg, rest_idx[:, :, None], axis=0).sum(axis=0)
    else:
        kept, boxed = g, np.zeros((b, n))
    # the boxed generators and the rounding term, summed with upward rounding
    boxed = np.nextafter(_up(boxed, p) + x.e, np.inf)
    diag = np.zeros((n, b, n))
    diag[np.arange(n), :, np.arange(n)] = boxed.T
    gen = np.concatenate([kept, diag], axis=0)
    return AffineForm(c, gen, _Context(gen.shape[0]))


def closed_loop_step_sets(
    plant: Plant,
    controller: nn.Module,
    x: AffineForm,
    *,
    reference=None,
    w_lower=None,
    w_upper=None,
) -> tuple[AffineForm, AffineForm]:
    """One step of the closed loop on sets.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
    x : AffineForm, shape (B, n)
    reference : ndarray, shape (n_ref,) or (B, n_ref), optional
    w_lower, w_upper : ndarray, shape (n_w,), optional
        Disturbance bounds (fresh noise symbols at every step).

    Returns
    -------
    x_next : AffineForm, shape (B, n)
    u : AffineForm, shape (B, m)
        The command before saturation.
    """
    sets = closed_loop_period_sets(
        plant,
        controller,
        x,
        reference=reference,
        w_lower=w_lower,
        w_upper=w_upper,
        semantics="discrete",
    )
    return sets.x_next, sets.u


# ============================================================================ results
def _state_axes(n_rows: int, ax=None):
    """``(figure, axes)``: one row per plotted state, or the axes given by the caller."""
    import matplotlib.pyplot as plt

    if ax is not None:
        axes = np.atleast_1d(ax)
        return axes[0].figure, axes
    fig, axes = plt.subplots(n_rows, 1, sharex=True, squeeze=False, figsize=(7, 1.9 * n_rows + 0.6))
    return fig, axes[:, 0]


@dataclass
class ReachResult:
    """Over-approximations of the reachable states of a closed loop, step by step.

    Attributes
    ----------
    times : ndarray, shape (T+1,)
        ``k * dt`` [s].
    lower, upper : ndarray, shape (T+1, n)
        Hull over all initial sub-boxes of the reachable set at step ``k`` (row 0 is the initial
        box).
    box_lower, box_upper : ndarray, shape (B, T+1, n)
        Reach boxes of each initial sub-box.
    initial_lower, initial_upper : ndarray, shape (B, n)
        The initial sub-boxes (a partition of the initial box).
    state_names : tuple of str
    method : str
    time : float
        Wall-clock seconds.
    witnesses : dict or None
        ``method="milp"``: for ``(box, step k, state i, "lower" | "upper")`` the initial state
        ``(n,)`` and disturbances ``(k, n_w)`` of the MILP solution attaining the bound (a
        trajectory to check it by simulation).
    semantics : {"continuous", "discrete"}
        What the sets enclose: the exact ODE flow of ``plant.rhs`` with the command held over
        each period (``"continuous"``), or the discrete map ``plant.step`` (``"discrete"``).
    box_tube_lower, box_tube_upper : ndarray, shape (B, T, n)
        Tubes: a box per sub-box and period ``[k dt, (k+1) dt]`` enclosing every state on it
        (continuous semantics: the flow between the samples; discrete: the hull of the two
        samples, the map having no states in between). ``tube_lower``/``tube_upper`` are their
        hulls ``(T, n)``.
    failures : list of str
        Sub-boxes on which the proof failed (an operation undefined on a set, e.g. a division
        by a set containing 0, or no enclosure of the flow found); their sets are ``±inf``.
    """

    times: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    box_lower: np.ndarray
    box_upper: np.ndarray
    initial_lower: np.ndarray
    initial_upper: np.ndarray
    state_names: tuple[str, ...]
    method: str
    time: float = 0.0
    witnesses: dict | None = field(default=None, repr=False)
    semantics: str = "discrete"
    box_tube_lower: np.ndarray | None = field(default=None, repr=False)
    box_tube_upper: np.ndarray | None = field(default=None, repr=False)
    failures: list = field(default_factory=list)

    def __post_init__(self):
        if self.box_tube_lower is None:
            self.box_tube_lower, self.box_tube_upper = _sample_tubes(self.box_lower, self.box_upper)

    @property
    def tube_lower(self) -> np.ndarray:
        """Hull over the sub-boxes of the tube of each period, shape ``(T, n)``."""
        assert self.box_tube_lower is not None  # filled in by __post_init__
        return self.box_tube_lower.min(axis=0)

    @property
    def tube_upper(self) -> np.ndarray:
        """Hull over the sub-boxes of the tube of each period, shape ``(T, n)``."""
        assert self.box_tube_upper is not None  # filled in by __post_init__
        return self.box_tube_upper.max(axis=0)

    @property
    def steps(self) -> int:
        """Number of steps ``T``."""
        return self.lower.shape[0] - 1

    @property
    def n_boxes(self) -> int:
        """Number of initial sub-boxes ``B``."""
        return self.box_lower.shape[0]

    def contains(self, states, *, atol: float = 0.0) -> np.ndarray:
        """Whether trajectories lie in the reach hull at every step.

        Parameters
        ----------
        states : array_like, shape (..., T'+1, n), ``T' <= T``
            Trajectories starting at step 0.
        atol : float
            Slack.

        Returns
        -------
        ndarray of bool, shape (...)
        """
        s = np.asarray(states, dtype=np.float64)
        t = s.shape[-2]
        lo, up = self.lower[:t], self.upper[:t]
        return np.all((s >= lo - atol) & (s <= up + atol), axis=(-2, -1))

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {
            "times": self.times.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "initial_lower": self.initial_lower.tolist(),
            "initial_upper": self.initial_upper.tolist(),
            "state_names": list(self.state_names),
            "method": self.method,
            "semantics": self.semantics,
            "tube_lower": self.tube_lower.tolist(),
            "tube_upper": self.tube_upper.tolist(),
            "failures": list(self.failures),
            "time": self.time,
        }

    def contains_tube(self, times, states, *, atol: float = 0.0) -> np.ndarray:
        """Whether states at times inside the periods lie in the tubes.

        Parameters
        ----------
        times : array_like, shape (K,)
            Times in ``[0, T dt]`` [s].
        states : array_like, shape (..., K, n)

        Returns
        -------
        ndarray of bool, shape (...)
        """
        t = np.asarray(times, dtype=np.float64)
        s = np.asarray(states, dtype=np.float64)
        dt = self.times[1] - self.times[0] if self.times.size > 1 else 1.0
        k = np.clip(np.floor(t / dt).astype(int), 0, self.steps - 1)
        lo, up = self.tube_lower[k], self.tube_upper[k]
        return np.all((s >= lo - atol) & (s <= up + atol), axis=(-2, -1))

    def plot(self, *, ax=None, states=None, trajectories=None):
        """Reach bounds of each state against time (shaded), optionally with trajectories.

        Parameters
        ----------
        states : sequence of int, optional
            Which states (default all).
        trajectories : array_like, shape (N, T+1, n), optional
            Simulated trajectories drawn on top.

        Returns
        -------
        matplotlib.figure.Figure
        """

        idx = list(range(self.lower.shape[1])) if states is None else list(states)
        fig, axes = _state_axes(len(idx), ax)
        for a, i in zip(axes, idx):
            a.fill_between(
                self.times,
                self.lower[:, i],
                self.upper[:, i],
                alpha=0.3,
                label=f"reach ({self.method})",
            )
            if trajectories is not None:
                tr = np.asarray(trajectories)
                a.plot(self.times[: tr.shape[-2]], tr[..., i].T, lw=0.5, color="k", alpha=0.4)
            a.set_ylabel(self.state_names[i])
        axes[0].legend(loc="upper right")
        axes[-1].set_xlabel("time [s]")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        w = self.upper[-1] - self.lower[-1]
        with np.printoptions(precision=4, suppress=True):
            return (
                f"ReachResult(method={self.method!r}, semantics={self.semantics!r}, "
                f"steps={self.steps}, boxes={self.n_boxes}, "
                f"final width={w}, time={self.time:.3g}s)"
            )


# ============================================================================ reach
_METHODS = ("zonotope", "interval", "milp")


def _box_arg(v, n: int, what: str, *, finite: bool = True) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape not in ((n,), ()):
        raise ValueError(f"{what}: expected shape ({n},), received {a.shape}")
    a = np.broadcast_to(a, (n,)).copy()
    if np.isnan(a).any() or (finite and not np.isfinite(a).all()):
        raise ValueError(f"{what}: expected finite numbers, received {a}")
    return a


def _grid(lo: np.ndarray, hi: np.ndarray, splits) -> tuple[np.ndarray, np.ndarray]:
    n = lo.size
    s = np.broadcast_to(np.asarray(splits, dtype=int), (n,))
    if np.any(s < 1):
        raise ValueError(f"splits: expected positive ints, received {splits!r}")
    edges = [np.linspace(lo[i], hi[i], s[i] + 1) for i in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in s], indexing="ij"), -1).reshape(-1, n)
    blo = np.stack([edges[i][idx[:, i]] for i in range(n)], -1)
    bhi = np.stack([edges[i][idx[:, i] + 1] for i in range(n)], -1)
    return blo, bhi


def _check_plant_controller(plant, controller):
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")
    if not isinstance(controller, nn.Module):
        raise TypeError(
            f"controller: expected a torch.nn.Module, received {type(controller).__name__}"
        )


_DIVERGED = 1e12  # a set wider than this is reported as unbounded


def _mark_diverged(x: AffineForm, diverged: np.ndarray) -> np.ndarray:
    """Flag sets whose bounds are not finite or wider than ``_DIVERGED``; neutralise them."""
    with np.errstate(all="ignore"):
        lo, up = x.lower, x.upper
        bad = ~np.all(np.isfinite(lo) & np.isfinite(up) & (up - lo < _DIVERGED), axis=1)
    diverged = diverged | bad
    if diverged.any():
        x.c = np.where(diverged[:, None], 0.0, x.c)
        x.g = np.where(diverged[None, :, None], 0.0, x.g)
        x.e = np.where(diverged[:, None], 0.0, x.e)
    return diverged


def _bounds_out(x: AffineForm, diverged: np.ndarray):
    lo = np.where(diverged[:, None], -np.inf, x.lower)
    up = np.where(diverged[:, None], np.inf, x.upper)
    return lo, up


def _reach_zonotope(
    plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen, semantics, max_step
):
    """Sets at the samples ``(B, T+1, n)`` and tubes over the periods ``(B, T, n)``."""

    x = AffineForm.from_box(blo, bhi)
    lowers, uppers, tlo, thi = [blo], [bhi], [], []
    diverged = np.zeros(blo.shape[0], dtype=bool)
    n = blo.shape[1]
    for _ in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):
            ps = closed_loop_period_sets(
                plant,
                controller,
                x,
                reference=reference,
                w_lower=wlo,
                w_upper=whi,
                semantics=semantics,
                max_step=max_step,
            )
            x = _reduce(ps.x_next, max_gen)
        diverged = _mark_diverged(x, diverged)
        lo, up = _bounds_out(x, diverged)
        lowers.append(lo)
        uppers.append(up)
        bad = diverged[:, None] | ~np.isfinite(ps.tube_lower) | ~np.isfinite(ps.tube_upper)
        tlo.append(np.where(bad, -np.inf, ps.tube_lower))
        thi.append(np.where(bad, np.inf, ps.tube_upper))
    b = blo.shape[0]
    if steps == 0:
        return np.stack(lowers, 1), np.stack(uppers, 1), np.zeros((b, 0, n)), np.zeros((b, 0, n))
    L, U = np.stack(lowers, 1), np.stack(uppers, 1)
    if semantics == "discrete":
        # the hull of the two samples as reported (the initial box exact, not outward-rounded)
        return (L, U, *_sample_tubes(L, U))
    return L, U, np.stack(tlo, 1), np.stack(thi, 1)


def _sample_tubes(L, U):
    """Discrete semantics: the tube of a period is the hull of its two samples."""
    return np.minimum(L[:, :-1], L[:, 1:]), np.maximum(U[:, :-1], U[:, 1:])


def _reach_interval(plant, controller, blo, bhi, steps, reference, wlo, whi):
    """Box-by-box: CROWN bounds of the controller over the observation box, the plant on
    affine forms with an independent command (the state-command correlation is lost)."""
    from .bounds import crown_bounds

    lo, hi = blo, bhi
    lowers, uppers = [lo], [hi]
    b = lo.shape[0]
    diverged = np.zeros(b, dtype=bool)
    for _ in range(steps):
        ctx = _Context()
        lo_s = np.where(diverged[:, None], 0.0, lo)
        hi_s = np.where(diverged[:, None], 0.0, hi)
        with np.errstate(over="ignore", invalid="ignore"):
            x = AffineForm.from_box(lo_s, hi_s, ctx)
            r = None
            if plant.n_references:
                ref = plant.nominal_reference if reference is None else reference
                r = np.broadcast_to(_const(ref), (b, plant.n_references))
            y = AffineForm._lift(plant.observe(x, r) if r is not None else plant.observe(x), ctx)
            ul, uu = crown_bounds(controller, y.lower, y.upper)
            u = AffineForm.from_box(
                np.asarray(ul).reshape(b, -1), np.asarray(uu).reshape(b, -1), ctx
            )
            if plant.n_disturbances:
                w = AffineForm.from_box(
                    np.broadcast_to(wlo, (b, plant.n_disturbances)),
                    np.broadcast_to(whi, (b, plant.n_disturbances)),
                    ctx,
                )
                xn = plant.step(x, u, w)
            else:
                xn = plant.step(x, u)
            xn = _reduce(AffineForm._lift(xn, ctx), 0)
        diverged = _mark_diverged(xn, diverged)
        lo, hi = _bounds_out(xn, diverged)
        lowers.append(lo)
        uppers.append(hi)
    return np.stack(lowers, 1), np.stack(uppers, 1)


def reach(
    plant: Plant,
    controller: nn.Module,
    x_lower,
    x_upper,
    steps: int,
    *,
    reference=None,
    disturbance_lower=None,
    disturbance_upper=None,
    splits=1,
    method: str = "zonotope",
    max_generators: int | None = None,
    linear: bool | None = None,
    time_limit: float | None = None,
    semantics: str | None = None,
    max_step: float | None = None,
) -> ReachResult:
    """Sound over-approximation of the states reachable in ``1..steps`` steps of the closed loop.

    The closed loop is ``x[k+1] = plant.step(x[k], controller(plant.observe(x[k], r)), w[k])``;
    ``plant.step`` applies the actuator saturation.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
        Feed-forward network (Linear, ReLU, LeakyReLU, Hardtanh, ReLU6, Tanh, Sigmoid, Identity
        layers).
    x_lower, x_upper : array_like, shape (n,)
        Initial box.
    steps : int
        Horizon ``T``.
    reference : array_like, shape (n_ref,), optional
        Reference (default the plant's nominal one).
    disturbance_lower, disturbance_upper : array_like, shape (n_w,), optional
        Bounds of the disturbance, which may take any value in them at every step (default 0).
    splits : int or sequence of int
        Grid of initial sub-boxes per state (``splits=4`` on 2 states: 16 sub-boxes analysed in
        parallel). Finer splitting tightens the sets of nonlinear loops.
    method : {"zonotope", "interval"}
        ``"zonotope"``: affine arithmetic through observation, controller, saturation and plant
        (see the module docstring). ``"interval"``: box propagation with CROWN bounds of the
        controller over the observation box (loses the state-command correlation, so the sets
        grow at every step: a baseline). Sets that stop being finite (or grow wider than 1e12)
        are reported as ``±inf``. ``"milp"``: for affine plants, exact bounds of every state at
        every step from big-M MILPs (:mod:`neuroctl.verify.milp`, HiGHS) of the closed loop
        unrolled into one ReLU network ``[x0, w_0, ..] -> x_k`` (the actuator saturation as
        ReLU layers); the MILP's proven dual bound is reported, so the sets are sound even at
        the solver's optimality gap (1e-4 relative by default). Cost grows with the horizon.
    max_generators : int, optional
        Zonotope order limit per set (default ``20 n``).
    linear : bool, optional
        ``method="milp"`` only: the plant step and observation are affine in ``(x, u, w)``.
        None checks it numerically (an error if not); True skips the check.
    time_limit : float, optional
        ``method="milp"``: seconds per MILP solve; on a time-out the solver's proven bound is
        used (still sound, possibly not tight).
    semantics : {"continuous", "discrete"}, optional
        What is enclosed (see :func:`neuroctl.verify.flow.closed_loop_period_sets`): the exact
        ODE flow with the command held over each period (default for a plant with ``rhs`` and no
        ``post_step``, ``method="zonotope"`` only), or the discrete map ``plant.step`` (default
        for plants defined by ``update=`` or with a ``post_step``; always for ``"interval"`` and
        ``"milp"``).
    max_step : float, optional
        Continuous semantics: the largest validated sub-step [s] (default the period; refined
        automatically).

    Returns
    -------
    ReachResult
        With ``semantics`` and the tubes over each period.
    """
    _check_plant_controller(plant, controller)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, received {method!r}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps: expected a non-negative int, received {steps!r}")
    n = plant.n_states
    lo = _box_arg(x_lower, n, "x_lower")
    hi = _box_arg(x_upper, n, "x_upper")
    if np.any(lo > hi):
        raise ValueError(f"x_lower, x_upper: expected lower <= upper, received {lo} and {hi}")
    nw = plant.n_disturbances
    wlo = np.zeros(nw) if disturbance_lower is None else _box_arg(disturbance_lower, nw, "w")
    whi = np.zeros(nw) if disturbance_upper is None else _box_arg(disturbance_upper, nw, "w")
    if np.any(wlo > whi):
        raise ValueError(f"disturbance bounds: expected lower <= upper, received {wlo} and {whi}")
    max_gen = 20 * n if max_generators is None else int(max_generators)
    sem = _semantics_for(plant, semantics, method)
    t0 = time.perf_counter()
    witnesses = None
    blo, bhi = _grid(lo, hi, splits)
    TL = TU = None
    failures: list = []
    if method == "zonotope":
        L, U, TL, TU, fails = _reach_boxes_guarded(
            plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen, sem, max_step
        )
        failures = [f"sub-box {i}: {f}" for i, f in enumerate(fails) if f is not None]
    elif method == "interval":
        L, U = _reach_interval(plant, controller, blo, bhi, steps, reference, wlo, whi)
    else:
        from .unrolled import _reach_milp

        L, U, witnesses = _reach_milp(
            plant, controller, blo, bhi, steps, reference, wlo, whi, linear, time_limit, max_gen
        )
    return ReachResult(
        times=np.arange(steps + 1) * plant.dt,
        lower=L.min(axis=0),
        upper=U.max(axis=0),
        box_lower=L,
        box_upper=U,
        initial_lower=blo,
        initial_upper=bhi,
        state_names=plant.state_names,
        method=method,
        time=time.perf_counter() - t0,
        witnesses=witnesses,
        semantics=sem,
        box_tube_lower=TL,
        box_tube_upper=TU,
        failures=failures,
    )


def _semantics_for(plant, semantics, method):

    if method == "zonotope":
        return resolve_semantics(plant, semantics)
    if semantics is None or semantics == "discrete":
        return "discrete"
    resolve_semantics(plant, semantics)  # a clear error if the plant has no ODE
    raise ValueError(
        f"semantics={semantics!r}: method={method!r} encloses the discrete map plant.step only; "
        f"use method='zonotope' for the continuous plant (plant_semantics: "
        f"{plant_semantics(plant)!r})"
    )


def _reach_boxes_guarded(
    plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen, semantics, max_step
):
    """Zonotope reach of a batch; a set on which an operation is undefined (e.g. a division by
    a set containing 0, or no enclosure of the flow) gets unbounded sets instead of failing the
    whole batch. Returns ``L, U, TL, TU, failures`` (``failures``: the messages, per box or
    None)."""
    args = (reference, wlo, whi, max_gen, semantics, max_step)
    try:
        L, U, TL, TU = _reach_zonotope(plant, controller, blo, bhi, steps, *args)
        return L, U, TL, TU, [None] * blo.shape[0]
    except SetArithmeticError as err:
        if blo.shape[0] == 1:
            n = blo.shape[1]
            L = np.concatenate([blo[:, None], np.full((1, steps, n), -np.inf)], axis=1)
            U = np.concatenate([bhi[:, None], np.full((1, steps, n), np.inf)], axis=1)
            TL, TU = np.full((1, steps, n), -np.inf), np.full((1, steps, n), np.inf)
            return L, U, TL, TU, [f"{type(err).__name__}: {err}"]
        parts = [
            _reach_boxes_guarded(plant, controller, blo[i : i + 1], bhi[i : i + 1], steps, *args)
            for i in range(blo.shape[0])
        ]
        return (
            *(np.concatenate([p[j] for p in parts]) for j in range(4)),
            [f for p in parts for f in p[4]],
        )


if TYPE_CHECKING:  # the lazy names of __getattr__ below, declared for type checkers and IDEs
    # ("import x as x" marks an explicit re-export)
    from .invariance import InvarianceResult as InvarianceResult
    from .invariance import check_invariant as check_invariant


def __getattr__(name: str):
    # invariance lives in .invariance (it builds on the reach sets here); the names stay
    # importable from this module, loaded on first use to keep the import order one way
    if name in ("check_invariant", "InvarianceResult"):
        from . import invariance

        return getattr(invariance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
