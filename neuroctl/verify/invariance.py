"""Invariance of a box under the closed loop, and safety over a horizon: falsify, then prove.

:func:`check_invariant` simulates first (corners and random states: :func:`neuroctl.simulate` for
the discrete map, scipy ``solve_ivp`` with the command held for the continuous plant), then covers
the initial set with sub-boxes whose reach sets and tubes (:mod:`neuroctl.verify.reach`) must lie
in the safe box, bisecting the undecided ones within a budget. Forward invariance of a box in
continuous time also needs the flow between samples to stay in a safe box: where a tube reaches
a face of it, the held command must make the vector field point strictly inward on that face.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .._json import json_dict

if TYPE_CHECKING:  # simulate is imported where it runs (it is not needed to import this module)
    from ..simulate import Trajectory
from ..plant import Plant
from .affine import AffineForm, SetArithmeticError, _const
from .flow import ode_rollout
from .reach import (
    ReachResult,
    _box_arg,
    _check_plant_controller,
    _reach_boxes_guarded,
    _semantics_for,
    closed_loop_step_sets,
)

__all__ = ["check_invariant", "InvarianceResult"]


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
    counterexample: Trajectory | None
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
        counterexample, exit_step = found
        return done(False, counterexample, exit_step, n_boxes=0)

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
            counterexample, exit_step = found
            return done(False, counterexample, exit_step, n_boxes=total)
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
