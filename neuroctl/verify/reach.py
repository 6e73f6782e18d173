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
  between the samples; :func:`check_invariant` checks the property on the tubes;
- ``"discrete"`` (plants defined by ``update=`` or with a ``post_step`` projection, or when
  asked): the sets enclose the map ``x[k+1] = plant.step(x[k], u[k], w[k])``; the tube of a
  period is the hull of its two samples.

Soundness: every affine-form operation adds a proven bound of its floating-point rounding (see
:mod:`neuroctl.verify.affine`), so the sets enclose the exact real-number closed loop (and its
float64 evaluation) for every initial state of the box and every disturbance in its bounds. A
float32 controller is analysed in float64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._json import json_dict
from ..plant import Plant

__all__ = [
    "AffineForm",
    "reach",
    "check_invariant",
    "ReachResult",
    "InvarianceResult",
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
    ode_rollout,
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
        return self.box_tube_lower.min(axis=0)

    @property
    def tube_upper(self) -> np.ndarray:
        """Hull over the sub-boxes of the tube of each period, shape ``(T, n)``."""
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


@dataclass
class InvarianceResult:
    """Outcome of :func:`check_invariant`.

    Attributes
    ----------
    holds : bool or None
        True: proved (every state reachable from the initial set stays in the safe box for the
        horizon; with ``steps=None``, the box is forward invariant). False: a simulated trajectory
        leaves the box (``counterexample``). None: not decided within ``max_boxes``.
    counterexample : Trajectory or None
        A trajectory of :func:`neuroctl.simulate` that leaves the safe box.
    exit_step : int or None
        First step at which the counterexample is outside the box.
    reach : ReachResult or None
        Reach sets of the proved sub-boxes (all of them when ``holds`` is True).
    lower, upper : ndarray, shape (n,)
        The safe box.
    n_boxes : int
        Initial sub-boxes analysed (including the ones that were split).
    time : float
    notes : list of str
    semantics : {"continuous", "discrete"}
        What was proved (see :func:`check_invariant`).
    failures : list of str
        Failures inside the proof (an operation undefined on a set, e.g. a division by a set
        containing 0, or no enclosure of the flow), distinct messages; those sub-boxes were
        split like undecided ones.
    """

    holds: bool | None
    counterexample: object | None
    exit_step: int | None
    reach: ReachResult | None
    lower: np.ndarray
    upper: np.ndarray
    n_boxes: int
    time: float = 0.0
    notes: list = field(default_factory=list)
    semantics: str = "discrete"
    failures: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.holds)

    @json_dict
    def to_dict(self) -> dict:
        return {
            "holds": self.holds,
            "exit_step": self.exit_step,
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "n_boxes": self.n_boxes,
            "time": self.time,
            "semantics": self.semantics,
            "failures": list(self.failures),
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
            "notes": list(self.notes),
        }

    def plot(self, *, ax=None):
        """Reach sets (if any) with the safe box and the counterexample (if any)."""
        import matplotlib.pyplot as plt

        n = self.lower.size
        if self.reach is not None:
            fig = self.reach.plot(ax=ax)
            axes = fig.axes
        else:
            fig, axes = (
                plt.subplots(n, 1, sharex=True, squeeze=False)
                if ax is None
                else (np.atleast_1d(ax)[0].figure, np.atleast_1d(ax)[:, None])
            )
            axes = list(np.asarray(axes)[:, 0])
        if self.counterexample is not None:
            ce = self.counterexample
            for i, a in enumerate(axes[:n]):
                a.plot(ce.times, ce.states[..., i], color="r", lw=1.5, label="counterexample")
        for i, a in enumerate(axes[:n]):
            for v in (self.lower[i], self.upper[i]):
                if np.isfinite(v):
                    a.axhline(v, color="k", ls="--", lw=1)
        return fig

    def __repr__(self) -> str:
        verdict = {True: "proved", False: "violated", None: "unknown"}[self.holds]
        extra = f", exit_step={self.exit_step}" if self.exit_step is not None else ""
        return (
            f"InvarianceResult({verdict}, semantics={self.semantics!r}, boxes={self.n_boxes}"
            f"{extra}, time={self.time:.3g}s)"
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


def _first_exit(states: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """First step outside ``[lo, hi]`` per trajectory (-1 if never), states ``(N, T+1, n)``."""
    out = np.any((states < lo) | (states > hi), axis=-1)  # (N, T+1)
    first = np.argmax(out, axis=-1)
    return np.where(out.any(axis=-1), first, -1)


def _falsify(plant, controller, x0, steps, reference, wlo, whi, rng, lo, hi):
    """Simulate from ``x0`` (N, n) with random disturbances; a leaving trajectory or None."""
    from ..simulate import simulate

    nw = plant.n_disturbances
    w = None
    if nw:
        w = torch.as_tensor(rng.uniform(wlo, whi, (x0.shape[0], max(steps, 1), nw)))
    dist = None if w is None else (lambda k, x, w=w: w[:, k])
    with torch.no_grad():
        tr = simulate(plant, controller, x0, steps, reference=reference, disturbance=dist)
    first = _first_exit(tr.states, lo, hi)
    bad = np.nonzero(first >= 0)[0]
    if bad.size == 0:
        return None
    i = int(bad[0])
    dist_i = None if w is None else (lambda k, x, wi=w[i : i + 1]: wi[:, k])
    with torch.no_grad():
        ce = simulate(
            plant, controller, x0[i : i + 1], steps, reference=reference, disturbance=dist_i
        )
    exit_step = int(_first_exit(ce.states, lo, hi)[0])
    if exit_step < 0:  # pragma: no cover - the batch and single runs are the same arithmetic
        return None
    return ce, exit_step


def _falsify_continuous(
    plant, controller, x0, steps, reference, wlo, whi, rng, lo, hi, between=None
):
    """Like :func:`_falsify` for the continuous plant: scipy ``solve_ivp`` with the command held,
    the box checked at the samples and at interior instants of each period (there against the
    box ``between = (lower, upper)`` where given)."""
    from ..simulate import Trajectory

    nw = plant.n_disturbances
    w = rng.uniform(wlo, whi, (x0.shape[0], max(steps, 1), nw)) if nw else None
    states, inputs, dense = ode_rollout(
        plant, controller, x0, steps, reference=reference, w=w, dense=4
    )
    out_s = np.any((states < lo) | (states > hi), axis=-1)  # (N, T+1)
    dlo, dhi = (lo, hi) if between is None else between
    out_d = np.any((dense < dlo) | (dense > dhi), axis=(-2, -1))  # (N, T)
    out = out_s.copy()
    out[:, 1:] |= out_d  # a period that leaves in between counts at its end sample
    bad = np.nonzero(out.any(axis=1))[0]
    if bad.size == 0:
        return None
    i = int(bad[0])
    exit_step = int(np.argmax(out[i]))
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = np.broadcast_to(_const(ref), (steps + 1, plant.n_references))
    obs = np.asarray(plant.observe(states[i], r) if r is not None else plant.observe(states[i]))
    ce = Trajectory(
        times=np.arange(steps + 1) * plant.dt,
        states=states[i : i + 1],
        inputs=inputs[i : i + 1],
        observations=obs[None],
        state_names=plant.state_names,
        input_names=plant.input_names,
        output_names=plant.output_names,
        plant=plant,
    )
    return ce, exit_step


def _faces_repel(plant, controller, blo, bhi, TL, TU, slo, shi, reference, wlo, whi):
    """Whether the flow cannot leave the safe box ``[slo, shi]`` through the faces its tubes cross.

    For each sub-box ``b`` (initial box ``[blo[b], bhi[b]]``, tube ``[TL[b], TU[b]]`` of the
    period, inside the safe box's closure except by rounding or overshoot) and each side where
    the tube leaves the safe box, the held command set and the disturbance bounds must make
    the normal component of ``rhs`` strictly point inward on that face of the tube (``f_i < 0``
    on ``{x in tube : x_i = shi_i}``, ``f_i > 0`` on ``x_i = slo_i``). Then no solution can
    cross the face (at a first crossing instant ``t*`` the state is on the face with ``x_i``
    decreasing), so every solution that starts in the safe box stays in it over the period
    (Nagumo's condition on the faces, with the tube as the set of reachable states).

    Returns
    -------
    ndarray of bool, shape (B,)
    """
    from types import SimpleNamespace

    from .flow import _rhs_box

    nb, n = blo.shape
    ok = np.ones(nb, dtype=bool)
    try:
        _, u = closed_loop_step_sets(
            plant,
            controller,
            AffineForm.from_box(blo, bhi),
            reference=reference,
            w_lower=wlo,
            w_upper=whi,
        )
        ua = AffineForm._lift(plant.saturate(u), u.ctx)
        u_lo, u_hi = ua.lower, ua.upper
    except SetArithmeticError:
        return np.zeros(nb, dtype=bool)
    w = None
    if plant.n_disturbances:
        w = SimpleNamespace(
            lower=np.broadcast_to(wlo, (1, wlo.size)), upper=np.broadcast_to(whi, (1, whi.size))
        )
    for b in range(nb):
        ub = SimpleNamespace(lower=u_lo[b : b + 1], upper=u_hi[b : b + 1])
        for i in range(n):
            for side, bound in ((-1.0, slo[i]), (1.0, shi[i])):
                crosses = TL[b, i] < bound if side < 0 else TU[b, i] > bound
                if not crosses or not ok[b]:
                    continue
                fl, fh = TL[b : b + 1].copy(), TU[b : b + 1].copy()
                fl[0, i] = fh[0, i] = bound
                try:
                    f_lo, f_hi = _rhs_box(plant, fl, fh, ub, w)
                except SetArithmeticError:
                    ok[b] = False
                    continue
                ok[b] = bool(f_lo[0, i] > 0.0) if side < 0 else bool(f_hi[0, i] < 0.0)
    return ok


def check_invariant(
    plant: Plant,
    controller: nn.Module,
    lower,
    upper,
    *,
    initial_lower=None,
    initial_upper=None,
    steps: int | None = None,
    reference=None,
    disturbance_lower=None,
    disturbance_upper=None,
    max_boxes: int = 1024,
    samples: int = 512,
    seed: int = 0,
    max_generators: int | None = None,
    semantics: str | None = None,
    max_step: float | None = None,
    safe_lower=None,
    safe_upper=None,
) -> InvarianceResult:
    """Prove that the closed loop stays in the box ``[lower, upper]``, or find a trajectory that
    leaves it.

    Two questions, chosen by ``steps``:

    - ``steps=None``: is the box *forward invariant*? Every state of the box must be mapped into
      the box by one control period (then, by induction, every trajectory that starts in it is
      in it at every later sampling instant, for ever). The box must be bounded. In continuous
      semantics the states between the samples must moreover stay in the safe box
      ``[safe_lower, safe_upper]`` (default the box itself): the tube of the period from the
      box, with the box's command set held, lies in the safe box, or where it reaches a face of
      the safe box the held command makes the vector field point strictly inward on that face
      of the tube (so no solution crosses it). Proved: every solution of the ODE under
      zero-order hold that starts in the box at a sampling instant is in the box at every later
      sampling instant and in the safe box at every instant. A double integrator's box is never
      invariant between samples by the face condition (``dx/dt = v > 0`` on the upper face);
      give it a safe box larger than the box.
    - ``steps=T``: from every state of the initial box ``[initial_lower, initial_upper]``, do all
      trajectories stay in the safe box ``[lower, upper]`` for ``T`` steps? The safe box may have
      infinite sides (unconstrained states).

    First ``samples`` random initial states (and the corners) are simulated with
    :func:`neuroctl.simulate` (with random disturbances in their bounds): a trajectory that
    leaves the box is returned as a counterexample. Otherwise the initial set is covered with
    sub-boxes whose reach sets (:func:`reach`, zonotope method) are checked; a sub-box whose
    sets leave the safe box is bisected along its relatively widest side, up to ``max_boxes``
    sub-boxes (its centre is simulated as well).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
    lower, upper : array_like, shape (n,)
        The safe (or candidate invariant) box; ``±inf`` allowed when ``steps`` is given.
    initial_lower, initial_upper : array_like, shape (n,), optional
        Initial box (``steps`` given); default the safe box.
    steps : int, optional
        Horizon; None for forward invariance.
    reference : array_like, shape (n_ref,), optional
    disturbance_lower, disturbance_upper : array_like, shape (n_w,), optional
        The disturbance may take any value in these bounds at every step.
    max_boxes : int
        Budget of initial sub-boxes.
    samples : int
        Random simulations for the counterexample search.
    seed : int
        Seed of the sampling.
    max_generators : int, optional
        Zonotope order limit (see :func:`reach`).
    semantics : {"continuous", "discrete"}, optional
        ``"continuous"`` (default for a plant with ``rhs`` and no ``post_step``): the property is
        about the ODE with the command held over each period, checked on the tubes (every
        instant, not only the samples), and the simulations are scipy ``solve_ivp`` runs
        (checked at the samples and at interior instants). ``"discrete"``: the map
        ``plant.step``, checked at the samples, simulated with :func:`neuroctl.simulate`.
    max_step : float, optional
        Continuous semantics: the largest validated sub-step [s].
    safe_lower, safe_upper : array_like, shape (n,), optional
        ``steps=None`` only: the box the states must stay in between the samples (containing
        ``[lower, upper]``, ``±inf`` allowed); default ``[lower, upper]``.

    Returns
    -------
    InvarianceResult
    """
    _check_plant_controller(plant, controller)
    n = plant.n_states
    lo = _box_arg(lower, n, "lower", finite=False)
    hi = _box_arg(upper, n, "upper", finite=False)
    if np.any(lo > hi):
        raise ValueError(f"lower, upper: expected lower <= upper, received {lo} and {hi}")
    if steps is None:
        if initial_lower is not None or initial_upper is not None:
            raise ValueError(
                "initial_lower/initial_upper: only with steps=T; with steps=None the box "
                "itself is the initial set (forward invariance)"
            )
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(
                f"lower, upper: forward invariance needs a bounded box, received {lo}, {hi}"
            )
        horizon, ilo, ihi = 1, lo.copy(), hi.copy()
        slo = (
            lo.copy() if safe_lower is None else _box_arg(safe_lower, n, "safe_lower", finite=False)
        )
        shi = (
            hi.copy() if safe_upper is None else _box_arg(safe_upper, n, "safe_upper", finite=False)
        )
        if np.any(slo > lo) or np.any(shi < hi):
            raise ValueError(
                "safe_lower/safe_upper: expected a safe box containing the box "
                f"[{lo}, {hi}], received [{slo}, {shi}]"
            )
    else:
        if safe_lower is not None or safe_upper is not None:
            raise ValueError(
                "safe_lower/safe_upper: only with steps=None (forward invariance); with steps=T "
                "the safe box is [lower, upper]"
            )
        slo, shi = lo, hi
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps: expected a positive int or None, received {steps!r}")
        horizon = int(steps)
        ilo = lo.copy() if initial_lower is None else _box_arg(initial_lower, n, "initial_lower")
        ihi = hi.copy() if initial_upper is None else _box_arg(initial_upper, n, "initial_upper")
        if not (np.isfinite(ilo).all() and np.isfinite(ihi).all()):
            raise ValueError(
                f"initial_lower/initial_upper: expected a bounded box, received {ilo}, {ihi}"
            )
        if np.any(ilo > ihi):
            raise ValueError(f"initial box: expected lower <= upper, received {ilo} and {ihi}")
    nw = plant.n_disturbances
    wlo = np.zeros(nw) if disturbance_lower is None else _box_arg(disturbance_lower, nw, "w")
    whi = np.zeros(nw) if disturbance_upper is None else _box_arg(disturbance_upper, nw, "w")
    max_gen = 20 * n if max_generators is None else int(max_generators)
    sem = _semantics_for(plant, semantics, "zonotope")
    invariance_continuous = steps is None and sem == "continuous"
    if steps is None:
        what = "at every later sampling instant"
        if sem == "continuous":
            what += (
                f" and in the safe box {slo.tolist()} .. {shi.tolist()} at every instant "
                "between (ODE plant.rhs, command held over each period)"
            )
        else:
            what += " (the map plant.step)"
        statement = f"forward invariance: every trajectory starting in the box is in it {what}"
    else:
        statement = None
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    failures: list = []

    def done(holds, ce=None, exit_step=None, proved=None, n_boxes=1, notes=()):
        rr = None
        if proved:
            L = np.concatenate([p[2] for p in proved])
            U = np.concatenate([p[3] for p in proved])
            rr = ReachResult(
                times=np.arange(horizon + 1) * plant.dt,
                lower=L.min(axis=0),
                upper=U.max(axis=0),
                box_lower=L,
                box_upper=U,
                initial_lower=np.concatenate([p[0] for p in proved]),
                initial_upper=np.concatenate([p[1] for p in proved]),
                state_names=plant.state_names,
                method="zonotope",
                time=time.perf_counter() - t0,
                semantics=sem,
                box_tube_lower=np.concatenate([p[4] for p in proved]),
                box_tube_upper=np.concatenate([p[5] for p in proved]),
            )
        return InvarianceResult(
            holds=holds,
            counterexample=ce,
            exit_step=exit_step,
            reach=rr,
            lower=lo,
            upper=hi,
            n_boxes=n_boxes,
            time=time.perf_counter() - t0,
            notes=([statement] if holds and statement else []) + list(notes),
            semantics=sem,
            failures=list(dict.fromkeys(failures)),
        )

    # 1. falsification by simulation
    corners = np.array(np.meshgrid(*zip(ilo, ihi), indexing="ij")).reshape(n, -1).T
    x0 = np.concatenate([corners, rng.uniform(ilo, ihi, (max(samples, 0), n))])
    between = (slo, shi) if invariance_continuous else None

    def falsify(x0):
        if sem == "discrete":
            return _falsify(plant, controller, x0, horizon, reference, wlo, whi, rng, lo, hi)
        return _falsify_continuous(
            plant, controller, x0, horizon, reference, wlo, whi, rng, lo, hi, between
        )

    found = falsify(x0)
    if found is not None:
        return done(False, *found, n_boxes=0)

    # 2. proof by reach sets with bisection of the initial set
    width0 = np.where(ihi > ilo, ihi - ilo, 1.0)
    queue_lo, queue_hi = ilo[None], ihi[None]
    proved: list = []
    total = 1
    while queue_lo.shape[0]:
        L, U, TL, TU, fails = _reach_boxes_guarded(
            plant,
            controller,
            queue_lo,
            queue_hi,
            horizon,
            reference,
            wlo,
            whi,
            max_gen,
            sem,
            max_step,
        )
        failures.extend(f for f in fails if f is not None)
        inside = np.all((L >= lo) & (U <= hi), axis=(1, 2))
        in_tube = np.all((TL >= slo) & (TU <= shi), axis=(1, 2))
        if invariance_continuous and np.any(inside & ~in_tube):
            # the tube of a sub-box on the safe box's boundary leaves it (by its own rounding at
            # least): the flow must point inward on the faces crossed
            j = np.nonzero(inside & ~in_tube)[0]
            in_tube[j] = _faces_repel(
                plant,
                controller,
                queue_lo[j],
                queue_hi[j],
                TL[j, 0],
                TU[j, 0],
                slo,
                shi,
                reference,
                wlo,
                whi,
            )
        inside &= in_tube
        if inside.any():
            proved.append(
                (
                    queue_lo[inside],
                    queue_hi[inside],
                    L[inside],
                    U[inside],
                    TL[inside],
                    TU[inside],
                )
            )
        flo, fhi = queue_lo[~inside], queue_hi[~inside]
        if flo.shape[0] == 0:
            break
        centres = 0.5 * (flo + fhi)
        found = falsify(centres)
        if found is not None:
            return done(False, *found, n_boxes=total)
        if total + flo.shape[0] > max_boxes:
            notes = [f"{flo.shape[0]} sub-boxes undecided within max_boxes={max_boxes}"]
            if failures:
                notes.append(
                    f"the proof failed on {len(failures)} sub-box evaluations: {failures[0]}"
                )
            return done(None, proved=proved, n_boxes=total, notes=notes)
        d = np.argmax((fhi - flo) / width0, axis=1)
        mid = 0.5 * (flo[np.arange(len(d)), d] + fhi[np.arange(len(d)), d])
        left_hi, right_lo = fhi.copy(), flo.copy()
        left_hi[np.arange(len(d)), d] = mid
        right_lo[np.arange(len(d)), d] = mid
        queue_lo = np.concatenate([flo, right_lo])
        queue_hi = np.concatenate([left_hi, fhi])
        total += flo.shape[0]
    return done(True, proved=proved, n_boxes=total)


# ======================================================== exact MILP (affine plants)
def _affine_maps(plant: Plant, x0: np.ndarray, wlo, whi, reference, check: bool, rng):
    """Jacobians (exact, autograd) of an affine plant step and observation, with a check.

    Returns ``A, B, E, c, H, h0`` with ``step(x, u, w) = A x + B u + E w + c`` for ``u`` inside
    the actuator bounds and ``observe(x, r) = H x + h0``.
    """
    n, m, nw = plant.n_states, plant.n_inputs, plant.n_disturbances
    ulo, uhi = plant.input_lower, plant.input_upper
    u0 = np.clip(np.zeros(m), ulo, uhi)
    u0 = np.where(np.isfinite(ulo) & np.isfinite(uhi), 0.5 * (ulo + uhi), u0)
    w0 = 0.5 * (wlo + whi)
    r = None
    if plant.n_references:
        r = _const(plant.nominal_reference if reference is None else reference)

    def step(x, u, w):
        return plant.step(x, u, w) if nw else plant.step(x, u)

    def obs(x):
        return plant.observe(x, torch.as_tensor(r)) if r is not None else plant.observe(x)

    t = torch.as_tensor
    args = (t(x0), t(u0), t(w0 if nw else np.zeros(0)))
    jac = torch.autograd.functional.jacobian(lambda x, u, w: step(x, u, w if nw else None), args)
    A, B, E = (j.numpy().reshape(n, -1) for j in jac)
    with torch.no_grad():
        f0 = step(*args[:2], args[2] if nw else None).numpy()
    c = f0 - A @ x0 - B @ u0 - (E @ w0 if nw else 0.0)
    H = torch.autograd.functional.jacobian(obs, t(x0)).numpy().reshape(-1, n)
    with torch.no_grad():
        h0 = obs(t(x0)).numpy() - H @ x0
    if check:
        scale = 1.0 + np.abs(x0).max()
        us = np.where(np.isfinite(ulo) & np.isfinite(uhi), 1.0, 0.0)
        for _ in range(8):
            x = x0 + scale * rng.uniform(-1, 1, n)
            u = np.where(
                us > 0,
                rng.uniform(np.where(us > 0, ulo, 0), np.where(us > 0, uhi, 0)),
                u0 + rng.uniform(-1, 1, m),
            )
            w = rng.uniform(wlo, whi) if nw else np.zeros(0)
            with torch.no_grad():
                got = step(t(x), t(u), t(w) if nw else None).numpy()
                got_y = obs(t(x)).numpy()
            want = A @ x + B @ u + (E @ w if nw else 0.0) + c
            want_y = H @ x + h0
            tol = 1e-9 * (1.0 + np.abs(want).max() + np.abs(got_y).max())
            if np.abs(got - want).max() > tol or np.abs(got_y - want_y).max() > tol:
                raise ValueError(
                    f"method='milp' needs a plant whose step and observation are affine in "
                    f"(x, u, w); plant {plant.name!r} is not (deviation "
                    f"{max(np.abs(got - want).max(), np.abs(got_y - want_y).max()):.3g}); use "
                    "method='zonotope', or linear=True to skip this check"
                )
    return A, B, (E if nw else np.zeros((n, 0))), c, H, h0


def _unrolled(rc, A, B, E, c, H, h0, k, zl, zu, ctrl_bounds, wlo, whi):
    """The closed loop unrolled over ``k`` steps as a ReLU network ``[x0, w_0..w_{k-1}] -> x_k``.

    States and pending disturbances are carried through the controller's ReLU layers shifted
    by an offset that makes them positive (``x + M`` with ``M = 1 - lower(x)`` from sound
    bounds), so those units are stably active and exact in the big-M encoding.
    """
    from .bounds import ReluNetwork

    n, nw = A.shape[0], E.shape[1]
    Ws, bs = list(rc.weights), list(rc.biases)
    W1, b1 = Ws[0] @ H, Ws[0] @ h0 + bs[0]
    Px, qx = np.hstack([np.eye(n), np.zeros((n, k * nw))]), np.zeros(n)
    Pw, qw = np.hstack([np.zeros((k * nw, n)), np.eye(k * nw)]), np.zeros(k * nw)
    weights, biases, pre = [], [], []
    mw = 1.0 - np.tile(wlo, k)
    for s in range(k):
        Pc, qc = W1 @ Px, W1 @ qx + b1  # first controller layer on y = H x + h0
        nrem = Pw.shape[0]
        Ms = 1.0 - zl[s]
        for j in range(len(Ws) - 1):
            weights.append(np.vstack([Pc, Px, Pw]))
            biases.append(np.concatenate([qc, qx + Ms, qw + mw[:nrem]]))
            cl, cu = ctrl_bounds[s][j]
            pre.append(
                (
                    np.concatenate([cl, zl[s] + Ms, np.tile(wlo, nrem // max(nw, 1)) + mw[:nrem]]),
                    np.concatenate([cu, zu[s] + Ms, np.tile(whi, nrem // max(nw, 1)) + mw[:nrem]]),
                )
            )
            wc = Pc.shape[0]
            width = wc + n + nrem
            sel = np.eye(width)
            Px, qx = sel[wc : wc + n], -Ms
            Pw, qw = sel[wc + n :], -mw[:nrem]
            Pc, qc = Ws[j + 1] @ sel[:wc], bs[j + 1]
        # Pc, qc: the command (saturation included); the plant step
        Pw0, qw0 = Pw[:nw], qw[:nw]
        Px, qx = A @ Px + B @ Pc + E @ Pw0, A @ qx + B @ qc + E @ qw0 + c
        Pw, qw = Pw[nw:], qw[nw:]
    weights.append(Px)
    biases.append(qx)
    return ReluNetwork(tuple(weights), tuple(biases)), pre


def _reach_milp(
    plant, controller, blo, bhi, steps, reference, wlo, whi, linear, time_limit, max_gen
):
    from ..pwl import saturated
    from .bounds import as_relu_network, pre_activation_bounds
    from .milp import encode, solve

    if linear is False:
        raise ValueError("method='milp' is for affine plants; linear=False was given")
    n, nw = plant.n_states, plant.n_disturbances
    ulo, uhi = plant.input_lower, plant.input_upper
    fin = np.isfinite(ulo) & np.isfinite(uhi)
    if fin.any() and not fin.all():
        raise ValueError(
            "method='milp': expected all actuator bounds finite or all infinite, received "
            f"{ulo} and {uhi}"
        )
    ctrl = saturated(controller, ulo, uhi) if fin.all() else controller
    rc = as_relu_network(ctrl, plant.n_outputs)
    # sound state bounds to start from (zonotope), tightened by the exact MILP bounds step by step
    ZL, ZU, _, _ = _reach_zonotope(
        plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen, "discrete", None
    )
    rng = np.random.default_rng(0)
    L, U = ZL.copy(), ZU.copy()
    witnesses: dict = {}
    for b in range(blo.shape[0]):
        A, B, E, c, H, h0 = _affine_maps(
            plant, 0.5 * (blo[b] + bhi[b]), wlo, whi, reference, linear is None, rng
        )
        if not (np.isfinite(ZL[b]).all() and np.isfinite(ZU[b]).all()):
            raise ValueError("method='milp': the zonotope pre-bounds diverged; shorten the horizon")
        zl, zu = L[b].copy(), U[b].copy()
        ctrl_bounds = []
        for k in range(1, steps + 1):
            s = k - 1
            ylo = H.clip(0) @ zl[s] + H.clip(max=0) @ zu[s] + h0
            yhi = H.clip(0) @ zu[s] + H.clip(max=0) @ zl[s] + h0
            ctrl_bounds.append(pre_activation_bounds(rc, ylo, yhi, method="crown"))
            rnet, pre = _unrolled(rc, A, B, E, c, H, h0, k, zl, zu, ctrl_bounds, wlo, whi)
            lo_in = np.concatenate([blo[b], np.tile(wlo, k)])
            hi_in = np.concatenate([bhi[b], np.tile(whi, k)])
            prob = encode(rnet, lo_in, hi_in, pre_bounds=pre)
            for i in range(n):
                e = np.zeros((1, n))
                e[0, i] = 1.0
                lo_sol = solve(prob.with_objective(e, [0.0]), time_limit=time_limit)
                hi_sol = solve(prob.with_objective(-e, [0.0]), time_limit=time_limit)
                zl[k, i] = max(zl[k, i], lo_sol.bound)
                zu[k, i] = min(zu[k, i], -hi_sol.bound)
                for key, sol in (("lower", lo_sol), ("upper", hi_sol)):
                    if sol.x is not None:
                        witnesses[(b, k, i, key)] = (
                            sol.x[:n].copy(),
                            sol.x[n:].reshape(k, nw).copy(),
                        )
        L[b], U[b] = zl, zu
    return L, U, witnesses
