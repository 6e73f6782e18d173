"""Stability of a plant closed with a (neural) controller.

:func:`analyze` gives, per activation region of the controller at the operating point: closed-loop
poles, verdict, spectral radius or largest real part, dominant damping and frequency, the least
stable mode's growth rate and period, step response figures (``control.step_info``) and margins
(``control.stability_margins``), the validity radius; and one overall verdict.

The string stability of car-following laws lives in :mod:`neuroctl.car_following`; its names stay
importable from here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import _check_plant, _check_positive
from ._json import json_dict

# string stability has its own module (car_following); its names stay importable from here
from .car_following import StringStability as StringStability
from .car_following import string_stability as string_stability
from .linearize import linearize
from .loops import Linearization
from .operating import OperatingPoint, _invariant
from .plant import Plant

__all__ = ["analyze", "StabilityReport", "RegionReport"]

VERDICTS = ("stable", "unstable", "marginal", "depends on region")


def _dominant(poles: np.ndarray, continuous: bool) -> complex | None:
    if poles.size == 0:
        return None
    key = poles.real if continuous else np.abs(poles)
    top = key.max()
    cands = poles[key >= top - 1e-12 * max(1.0, abs(top))]
    return complex(cands[np.argmax(cands.imag)])


@dataclass
class RegionReport:
    """Stability of the closed loop in one activation region.

    Attributes
    ----------
    poles : ndarray of complex
        Closed-loop poles (neutral modes of ``invariant`` directions removed).
    verdict : {"stable", "unstable", "marginal"}
        ``|z| < 1`` (discrete) or ``Re s < 0`` (continuous) for all poles, within ``marginal_tol``.
    spectral_radius : float or None
        ``max |z|`` (discrete only).
    max_real : float or None
        ``max Re s`` (continuous only).
    dominant_pole : complex or None
        The least stable pole (upper half plane for a pair).
    damping, natural_frequency : float
        Of the dominant pole (``s = log(z)/dt`` for discrete); rad/s.
    growth_rate : float
        ``Re s`` of the dominant pole, 1/s (positive: the mode grows).
    period : float
        ``2π/|Im s|`` of the dominant pole, s (inf for a real pole).
    step_info : dict or None
        ``control.step_info`` of the step from ``step_input`` to ``step_output`` (stable regions
        only; computed on first access).
    margins : dict or None
        Gain margin, phase margin (degrees) and crossover frequencies of the loop broken at the
        plant input, single-input plants only (computed on first access).
    """

    index: int
    poles: np.ndarray
    verdict: str
    spectral_radius: float | None
    max_real: float | None
    dominant_pole: complex | None
    damping: float
    natural_frequency: float
    growth_rate: float
    period: float
    saturated: np.ndarray
    _report: Any = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def region(self):
        """The :class:`~neuroctl.loops.LoopRegion` (matrices and python-control systems)."""
        return self._report.linearization.regions[self.index]

    @property
    def closed_loop(self):
        """This region's closed loop as a ``control.StateSpace`` with named signals.

        Inputs: the references, the disturbances and an additive disturbance at each plant input
        (``<input>_d``); outputs: the states, then the commands; deviation variables around the
        operating point (the full state: ``invariant`` directions are not factored out). So
        ``control.step_response(cl, input=cl.input_index[report.step_input],
        output=cl.output_index[report.step_output])``, ``control.bode_plot(cl[out, in])`` and
        ``control.nyquist_plot`` apply.
        """
        return self.region.closed_loop

    @property
    def loop(self):
        """The loop transfer broken at the plant input (``control.StateSpace``, negative
        feedback convention: ``control.stability_margins`` applies)."""
        return self.region.loop

    @property
    def step_info(self) -> dict | None:
        if "step" not in self._cache:
            self._cache["step"] = self._report._step_info(self)
        return self._cache["step"]

    @property
    def margins(self) -> dict | None:
        if "margins" not in self._cache:
            self._cache["margins"] = self._report._margins(self)
        return self._cache["margins"]

    @json_dict
    def to_dict(self) -> dict:
        return {
            "poles": [[z.real, z.imag] for z in self.poles],
            "verdict": self.verdict,
            "spectral_radius": self.spectral_radius,
            "max_real": self.max_real,
            "dominant_pole": None
            if self.dominant_pole is None
            else [self.dominant_pole.real, self.dominant_pole.imag],
            "damping": self.damping,
            "natural_frequency": self.natural_frequency,
            "growth_rate": self.growth_rate,
            "period": self.period,
            "saturated": self.saturated.tolist(),
            "step_info": self.step_info,
            "margins": self.margins,
        }


class StabilityReport:
    """Result of :func:`analyze`.

    Attributes
    ----------
    verdict : {"stable", "unstable", "marginal", "depends on region"}
    regions : list of RegionReport
        One per adjacent activation region (one off kinks).
    linearization : Linearization
    op : OperatingPoint
    continuous : bool
    radius, state_radius : float
        Validity radius of the linear model in the observation and the state (see
        :class:`~neuroctl.loops.Linearization`).
    step_input, step_output : str
        Signals of the step response used for ``step_info``.
    """

    def __init__(
        self, lin: Linearization, regions, *, step_input, step_output, reducer, marginal_tol
    ):
        self.linearization = lin
        self.op = lin.op
        self.continuous = lin.continuous
        self.dt = lin.dt
        self.regions = regions
        self.radius = lin.radius
        self.step_input = step_input
        self.step_output = step_output
        self._reducer = reducer
        self.marginal_tol = marginal_tol
        verdicts = {r.verdict for r in regions}
        self.verdict = verdicts.pop() if len(verdicts) == 1 else "depends on region"

    @property
    def at_kink(self) -> bool:
        return self.linearization.at_kink

    @property
    def state_radius(self) -> float:
        return self.linearization.state_radius

    @property
    def closed_loops(self) -> list:
        """One closed-loop ``control.StateSpace`` per region (see
        :attr:`RegionReport.closed_loop`)."""
        return [r.closed_loop for r in self.regions]

    @property
    def stable(self) -> bool:
        """True if every region is stable."""
        return self.verdict == "stable"

    # lazy pieces ------------------------------------------------------------------------
    def _reduced_closed_loop(self, reg: RegionReport):
        import control

        cl = reg.region.closed_loop
        i = cl.input_labels.index(self.step_input)
        o = cl.output_labels.index(self.step_output)
        A, B, C, D = cl.A, cl.B[:, [i]], cl.C[[o], :], cl.D[[o]][:, [i]]
        Q = self._reducer
        if Q is not None:
            A, B, C = Q.T @ A @ Q, Q.T @ B, C @ Q
        return control.ss(A, B, C, D, self.dt)

    def _step_info(self, reg: RegionReport) -> dict | None:
        import control

        if reg.verdict != "stable":
            return None
        sys = self._reduced_closed_loop(reg)
        dc = sys.dcgain()
        if not np.isfinite(dc) or abs(dc) < 1e-12:
            return None
        if self.continuous:
            # python-control's default time grid is coarse (rise time off by ~3%): refine it
            t_end = float(control.step_response(sys).time[-1])
            T = np.linspace(0.0, t_end, 20001)
            info = control.step_info(_step_on_grid(sys, T), T=T, yfinal=float(dc))
        else:
            info = control.step_info(sys)
        return {k: float(v) for k, v in info.items()}

    def _margins(self, reg: RegionReport) -> dict | None:
        import control

        lin = self.linearization
        if lin.plant.n_inputs != 1:
            return None
        loop = reg.region.loop
        if not np.any(loop.C):
            return None
        with warnings.catch_warnings():
            # python-control warns when a margin does not exist; the value is then inf / nan
            warnings.simplefilter("ignore")
            try:
                gm, pm, sm, wpc, wgc, wms = control.stability_margins(loop)
            except np.linalg.LinAlgError:  # a loop too large for float64 (overflow): no margins
                gm = pm = sm = wpc = wgc = float("nan")
        return {
            "gain_margin": float(gm),
            "phase_margin": float(pm),
            "stability_margin": float(sm),
            "phase_crossover": float(wpc),
            "gain_crossover": float(wgc),
        }

    # presentation -----------------------------------------------------------------------
    def __repr__(self) -> str:
        lin = self.linearization
        kind = "continuous" if self.continuous else f"discrete, dt={self.dt:g} s"
        head = [
            f"StabilityReport ({kind}): {self.verdict.upper()}"
            + (f" -- at a kink, {len(self.regions)} regions" if self.at_kink else ""),
            f"  operating point x = {np.array2string(self.op.x, precision=4, threshold=12)}, "
            f"u = {np.array2string(self.op.u, precision=4)}, residual {self.op.residual_norm:.2g}",
            f"  validity radius {lin.radius:.4g} (observation), {lin.state_radius:.4g} (state)",
        ]
        rad = "max Re" if self.continuous else "|z|max"
        cols = f"  {'region':>6} {'verdict':>9} {rad:>9} {'zeta':>7} {'wn':>8} {'growth':>9}"
        cols += f" {'period':>8} {'overshoot':>9} {'rise':>7} {'settle':>7} {'PM':>7} {'GM':>7}"
        rows = [cols]
        for r in self.regions:
            si = r.step_info or {}
            mg = r.margins or {}
            rr = r.max_real if self.continuous else r.spectral_radius
            rows.append(
                f"  {r.index:>6} {r.verdict:>9} {_f(rr)} {_f(r.damping, 7)} "
                f"{_f(r.natural_frequency, 8)} {_f(r.growth_rate)} {_f(r.period, 8)} "
                f"{_f(si.get('Overshoot'))} {_f(si.get('RiseTime'), 7)} "
                f"{_f(si.get('SettlingTime'), 7)} {_f(mg.get('phase_margin'), 7)} "
                f"{_f(mg.get('gain_margin'), 7)}"
            )
        for r in self.regions:
            rows.append(f"  region {r.index} poles: {np.array2string(r.poles, precision=4)}")
        return "\n".join(head + rows)

    @json_dict
    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "continuous": self.continuous,
            "dt": self.dt,
            "at_kink": self.at_kink,
            "radius": self.radius,
            "state_radius": self.state_radius,
            "op": self.op.to_dict(),
            "step_input": self.step_input,
            "step_output": self.step_output,
            "regions": [r.to_dict() for r in self.regions],
        }

    def plot(self, *, duration: float | None = None, fig=None):
        """Pole map (unit circle or imaginary axis) and the step response of every region.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import control
        import matplotlib.pyplot as plt

        from .loops import _pole_axes

        if fig is None:
            fig = plt.figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        _pole_axes(ax1, self.continuous)
        for r in self.regions:
            ax1.plot(r.poles.real, r.poles.imag, "x", ms=8, label=f"region {r.index} ({r.verdict})")
        ax1.legend(fontsize=8)
        ax1.set_title("closed-loop poles")
        for r in self.regions:
            sys = self._reduced_closed_loop(r)
            T = duration
            if T is None:
                g = abs(r.growth_rate) if r.growth_rate else 1.0
                T = min(max(8.0 / max(g, 1e-3), 1.0), 200.0)
            t = np.arange(0, T, self.dt) if self.dt else np.linspace(0, T, 500)
            resp = control.step_response(sys, T=t)
            ax2.plot(resp.time, np.squeeze(resp.outputs), label=f"region {r.index}")
        ax2.set_xlabel("time [s]")
        ax2.set_ylabel(f"{self.step_output} (step of {self.step_input})")
        ax2.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _step_on_grid(sys, T: np.ndarray) -> np.ndarray:
    """Unit step response of a continuous SISO ``StateSpace`` on the uniform grid ``T``.

    The same discretization as ``control.forced_response`` (exact, input interpolated linearly
    between grid points), so the same values up to rounding; its recurrence
    ``x[k+1] = Ad x[k] + g`` is evaluated by blocks of ``b ~ sqrt(N)`` points (``x[k+j] =
    Ad^j x[k] + S_j``) rather than one Python step per point.

    Returns
    -------
    ndarray, shape (N,)
    """
    from scipy.linalg import expm

    A, B, C, D = (np.asarray(M, float) for M in (sys.A, sys.B, sys.C, sys.D))
    n, N = A.shape[0], T.size
    dt = (T[-1] - T[0]) / (N - 1)
    M = np.zeros((n + 2, n + 2))
    M[:n, :n], M[:n, n : n + 1], M[n, n + 1] = A * dt, B * dt, 1.0
    E = expm(M)
    Ad, g = E[:n, :n], E[:n, n]  # Bd0 + Bd1 for a constant unit input
    b = int(math.ceil(math.sqrt(N)))
    P, S = np.empty((b, n, n)), np.empty((b, n))
    P[0], S[0] = np.eye(n), 0.0
    for j in range(1, b):
        P[j], S[j] = Ad @ P[j - 1], Ad @ S[j - 1] + g
    X = np.empty((N, n))
    x = np.zeros(n)
    for k in range(0, N, b):
        m = min(b, N - k)
        X[k : k + m] = P[:m] @ x + S[:m]
        x = Ad @ X[k + m - 1] + g
    return X @ C[0] + D[0, 0]


def _f(v, w: int = 9) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{'-':>{w}}"
    return f"{v:>{w}.4g}"


def _region_report(i, reg, lin, reducer, marginal_tol) -> RegionReport:
    A = reg.A_cl
    if reducer is not None:
        A = reducer.T @ A @ reducer
    poles = np.linalg.eigvals(A) if A.size else np.zeros(0, complex)
    cont = lin.continuous
    dom = _dominant(poles, cont)
    if cont:
        rr = float(poles.real.max()) if poles.size else -math.inf
        verdict = (
            "stable" if rr < -marginal_tol else ("unstable" if rr > marginal_tol else "marginal")
        )
        s = dom
    else:
        rr = float(np.abs(poles).max()) if poles.size else 0.0
        verdict = (
            "stable"
            if rr < 1 - marginal_tol
            else ("unstable" if rr > 1 + marginal_tol else "marginal")
        )
        s = None if dom is None or dom == 0 else np.log(dom) / lin.dt
    if s is None:
        zeta, wn, growth, period = math.nan, math.nan, -math.inf, math.inf
    else:
        wn = abs(s)
        zeta = -s.real / wn if wn > 0 else math.nan
        growth = s.real
        period = 2 * math.pi / abs(s.imag) if abs(s.imag) > 1e-12 else math.inf
    return RegionReport(
        index=i,
        poles=poles,
        verdict=verdict,
        spectral_radius=None if cont else rr,
        max_real=rr if cont else None,
        dominant_pole=dom,
        damping=float(zeta),
        natural_frequency=float(wn),
        growth_rate=float(growth),
        period=float(period),
        saturated=reg.saturated,
    )


def analyze(
    plant: Plant,
    controller,
    op: OperatingPoint | None = None,
    *,
    reference=None,
    continuous: bool | None = None,
    step_input: str | None = None,
    step_output: str | None = None,
    invariant=None,
    marginal_tol: float = 1e-9,
    norm: float | str = 2,
    kink_tol: float = 1e-9,
    validity_tol: float = 1e-3,
    max_kink_neurons: int = 10,
) -> StabilityReport:
    """Stability report of ``plant`` closed with ``controller`` at an operating point.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
    op : OperatingPoint, optional
        Default: :func:`~neuroctl.operating_point` from the plant's nominal equilibrium.
    reference : array_like, optional
        Reference for the default operating point.
    continuous : bool, optional
        Continuous model from ``rhs`` or the discrete map (default: continuous if the plant has
        an ``rhs``, or the kind of ``op``).
    step_input : str, optional
        Closed-loop input of the step response: default the first reference, else the first
        disturbance, else the first plant-input disturbance.
    step_output : str, optional
        Closed-loop output of the step response (a state or input name), default the first state.
    invariant : array_like, shape (n, k), optional
        Directions of the state space along which the dynamics are invariant (e.g. shifting every
        position on a ring road): their neutral modes (0, or 1 for a discrete map) are factored
        out of the poles and the step response (quotient ``Qᵀ A Q`` with ``Q`` an orthonormal
        basis of the orthogonal complement). Default ``plant.invariants``.
    marginal_tol : float
        Poles within this distance of the stability boundary are "marginal".
    norm, kink_tol, validity_tol, max_kink_neurons
        As in :func:`~neuroctl.local_gain`.

    Returns
    -------
    StabilityReport
        ``step_info`` and ``margins`` of each region are computed on first access (printing the
        report computes them).
    """
    _check_plant(plant)
    marginal_tol = _check_positive(marginal_tol, "marginal_tol", allow_zero=True)
    for what, name in (("step_input", step_input), ("step_output", step_output)):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{what}: expected a signal name (str) or None, received {name!r}")
    if invariant is not None:
        invariant = _invariant(invariant, plant.n_states)
    lin = linearize(
        plant,
        controller,
        op,
        reference=reference,
        continuous=continuous,
        norm=norm,
        kink_tol=kink_tol,
        validity_tol=validity_tol,
        max_kink_neurons=max_kink_neurons,
    )
    exo = lin.exogenous_names
    if step_input is None:
        step_input = exo[0]
    elif step_input not in exo:
        raise ValueError(f"step_input: expected one of {exo}, received {step_input!r}")
    outs = list(plant.state_names) + list(plant.input_names)
    if step_output is None:
        step_output = outs[0]
    elif step_output not in outs:
        raise ValueError(f"step_output: expected one of {outs}, received {step_output!r}")
    reducer = None
    if invariant is None and plant.invariants.shape[1]:
        invariant = plant.invariants
    if invariant is not None:
        V = invariant
        U, s, _ = np.linalg.svd(V, full_matrices=True)
        rank = int(np.sum(s > 1e-12 * max(s.max(), 1e-300)))
        reducer = U[:, rank:]
        lam = 0.0 if lin.continuous else 1.0
        for reg in lin.regions:
            if np.abs(reg.A_cl @ V - lam * V).max() > 1e-8 * max(1.0, np.abs(reg.A_cl).max()):
                raise ValueError(
                    "invariant: expected directions V with A V = "
                    f"{'0' if lin.continuous else 'V'} (neutral modes of the closed loop); "
                    "the closed-loop matrix does not leave them invariant"
                )
    regions = [_region_report(i, r, lin, reducer, marginal_tol) for i, r in enumerate(lin.regions)]
    rep = StabilityReport(
        lin,
        regions,
        step_input=step_input,
        step_output=step_output,
        reducer=reducer,
        marginal_tol=marginal_tol,
    )
    for r in regions:
        r._report = rep
    return rep
