"""Closed-loop simulation of a benchmark with scipy's ``solve_ivp`` at tight tolerance.

The command is computed at each sampling instant from the state and held over the control period
(zero-order hold); within the period the continuous plant is integrated by ``solve_ivp`` (DOP853,
``rtol = 1e-10``, ``atol = 1e-12`` by default), all trajectories of a batch as one stacked system
and read at ``dense`` equally spaced times per period. A discrete benchmark (VCAS) is iterated.
This is the independent simulator that counterexamples are replayed with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .spec import robustness
from .suite import Benchmark

__all__ = ["Rollout", "simulate", "search_counterexample"]


@dataclass
class Rollout:
    """Simulated trajectories.

    Attributes
    ----------
    t : ndarray, shape (T,)
        Times (s), sampling instants included.
    x : ndarray, shape (B, T, n)
        States.
    u : ndarray, shape (B, steps, m)
        Command held over each period.
    sample : ndarray of bool, shape (T,)
        Which times are sampling instants.
    rho : ndarray, shape (B,)
        Robustness of the benchmark's property on each trajectory (``< 0``: violated).
    """

    t: np.ndarray
    x: np.ndarray
    u: np.ndarray
    sample: np.ndarray
    rho: np.ndarray


def _command(controller, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return controller(torch.as_tensor(x, dtype=torch.float64)).numpy()


def simulate(
    bench: Benchmark,
    x0,
    *,
    controller=None,
    dense: int = 8,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Rollout:
    """Simulate the closed loop of ``bench`` from the initial states ``x0``.

    Parameters
    ----------
    bench : Benchmark
    x0 : array_like, shape (B, n) or (n,)
        Initial states.
    controller : nn.Module, optional, keyword-only
        Control law ``x -> u`` (default ``bench.control_law()``).
    dense : int, keyword-only
        Times per control period at which states are recorded (the period's ends included).
    rtol, atol : float, keyword-only
        ``solve_ivp`` tolerances.

    Returns
    -------
    Rollout
    """
    ctrl = bench.control_law() if controller is None else controller
    x = np.atleast_2d(np.asarray(x0, dtype=np.float64)).copy()
    B, n = x.shape
    if n != len(bench.states):
        raise ValueError(
            f"simulate: expected initial states of {len(bench.states)} components "
            f"({', '.join(bench.states)}), received shape {x.shape}"
        )
    dt = bench.dt
    if bench.update is not None:
        dense = 1
    ts, xs, us, sample = [0.0], [x.copy()], [], [True]
    for k in range(bench.steps):
        u = _command(ctrl, x)
        us.append(u)
        if bench.update is not None:
            x = np.asarray(bench.update(x, u), dtype=np.float64)
            ts.append((k + 1) * dt), xs.append(x.copy()), sample.append(True)
            continue
        grid = k * dt + dt * np.arange(1, dense + 1) / dense

        def f(_t, y, u=u):
            return bench.rhs(y.reshape(B, n), u).reshape(-1)

        sol = solve_ivp(
            f, (k * dt, grid[-1]), x.reshape(-1), method="DOP853", t_eval=grid, rtol=rtol, atol=atol
        )
        if not sol.success:
            raise RuntimeError(f"simulate {bench.name}: solve_ivp failed: {sol.message}")
        states = sol.y.T.reshape(len(grid), B, n)
        x = states[-1].copy()
        for j, tj in enumerate(grid):
            ts.append(tj), xs.append(states[j]), sample.append(j == len(grid) - 1)
    t = np.array(ts)
    X = np.stack(xs, axis=1)
    S = np.array(sample)
    # the last sample time is exact: k dt accumulated in floating point may miss it by an ulp
    t[S] = dt * np.arange(S.sum())
    return Rollout(t, X, np.stack(us, axis=1), S, robustness(bench.clauses, t, X, S))


def _corners(lo: np.ndarray, hi: np.ndarray, cap: int, rng) -> np.ndarray:
    free = np.flatnonzero(hi > lo)
    if 2 ** len(free) <= cap:
        bits = (np.arange(2 ** len(free))[:, None] >> np.arange(len(free))) & 1
    else:
        bits = rng.integers(0, 2, (cap, len(free)))
    pts = np.repeat(lo[None], bits.shape[0], axis=0)
    pts[:, free] = np.where(bits == 1, hi[free], lo[free])
    return pts


def search_counterexample(
    bench: Benchmark, *, samples: int = 256, seed: int = 0, controller=None, batch: int = 128
):
    """Falsification by simulation: the centre, the corners and random points of the initial box.

    Parameters
    ----------
    bench : Benchmark
    samples : int, keyword-only
        Random initial states (uniform in the box), besides the centre and up to 256 corners.
    seed : int, keyword-only
    controller : nn.Module, optional, keyword-only
    batch : int, keyword-only
        Trajectories integrated together.

    Returns
    -------
    x0 : ndarray, shape (n,)
        The initial state of least robustness found.
    rho : float
        Its robustness (``< 0``: a counterexample).
    n_simulated : int
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.array(bench.x_lower), np.array(bench.x_upper)
    pts = np.vstack(
        [0.5 * (lo + hi), _corners(lo, hi, 256, rng), rng.uniform(lo, hi, (samples, lo.size))]
    )
    ctrl = bench.control_law() if controller is None else controller
    rho = np.concatenate(
        [
            simulate(bench, pts[i : i + batch], controller=ctrl, dense=4).rho
            for i in range(0, len(pts), batch)
        ]
    )
    j = int(np.argmin(rho))
    return pts[j], float(rho[j]), len(pts)
