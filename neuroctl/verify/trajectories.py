"""Closed-loop trajectories for the search for counterexamples and their replay.

The closed loop under zero-order hold: at each sampling instant ``k dt`` the controller reads
``plant.observe(x, r)``, its command saturated to the actuator bounds is held over the control
period, and the plant evolves by its ODE ``plant.rhs`` (scipy ``solve_ivp``, ``rtol=1e-10``,
``atol=1e-12``) or by its discrete map ``plant.step``. A trajectory is read at its samples and, for
the ODE, at dense times in between (and at the property's own times), which is where the
robustness of :mod:`neuroctl.verify.temporal` is evaluated. A differentiable rollout of
``plant.step`` (torch) gives gradients of the robustness for a guided search: a heuristic only,
every candidate is then simulated with the semantics asked for.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn

from ..plant import Plant
from .temporal import Property, _Points

RTOL, ATOL = 1e-10, 1e-12
#: a trajectory counts as violating only with robustness below -REPLAY_TOL (integration error)
REPLAY_TOL = 1e-7
_DENSE = 16  # interior points per period where a trajectory is read between samples


def _float64(controller: nn.Module) -> nn.Module:
    c = copy.deepcopy(controller).to(torch.float64)
    c.requires_grad_(False)
    return c.eval()


def _reference(plant: Plant, reference, b: int):
    if not plant.n_references:
        return None
    ref = plant.nominal_reference if reference is None else np.asarray(reference, float)
    return np.broadcast_to(np.asarray(ref, float), (b, plant.n_references)).copy()


def _command(plant, ctrl, x: np.ndarray, reference) -> np.ndarray:
    """Applied command ``sat(controller(observe(x, r)))``, ``(B, m)`` float64."""
    r = _reference(plant, reference, x.shape[0])
    xt = torch.as_tensor(x)
    with torch.no_grad():
        y = plant.observe(xt, None if r is None else torch.as_tensor(r))
        u = ctrl(y).to(torch.float64)
        if u.shape[-1] != plant.n_inputs:
            raise ValueError(
                f"controller: expected {plant.n_inputs} outputs for inputs "
                f"{list(plant.input_names)}, received shape {tuple(u.shape)}"
            )
        return plant.saturate(u).numpy()


class _Rollout:
    """Trajectories read at their samples and at dense times in between (numpy)."""

    def __init__(self, times, states, commands, t_points, z_states, z_commands, samples):
        self.times, self.states, self.commands = times, states, commands
        self.t_points, self.z_states, self.z_commands = t_points, z_states, z_commands
        self.samples = samples


def _period_grid(k: int, dt: float, special: list[float]) -> np.ndarray:
    """Interior read-out times of period ``k`` (uniform, plus the property's own times)."""
    t0, t1 = k * dt, (k + 1) * dt
    inner = t0 + dt * np.arange(1, _DENSE + 1) / (_DENSE + 1)
    extra = [t for t in special if t0 < t < t1]
    return np.unique(np.concatenate([inner, extra])) if extra else inner


def _simulate(
    plant, ctrl, x0, steps, reference, w, semantics, special, *, method="DOP853"
) -> _Rollout:
    """Closed-loop rollouts of a batch ``x0`` (B, n): the ODE per period, or the discrete map.

    The batch is one ODE system (for speed); :meth:`Counterexample.replay` integrates one
    trajectory alone. ``w`` (B, steps, n_w) holds a disturbance over each period.
    """
    b, n = x0.shape
    dt = plant.dt
    x = np.array(x0, dtype=np.float64)
    states, commands = [x], []
    t_pts, z_x, z_u, samp = [], [], [], []
    for k in range(steps):
        u = _command(plant, ctrl, x, reference)
        wk = None if w is None else w[:, k]
        if semantics == "continuous":
            grid = _period_grid(k, dt, special)

            def f(t, y, u=u, wk=wk):
                return np.asarray(plant.rhs(y.reshape(b, n), u, wk), dtype=np.float64).ravel()

            sol = solve_ivp(
                f, (0.0, dt), x.ravel(), method=method, rtol=RTOL, atol=ATOL, dense_output=True
            )
            if not sol.success:
                raise RuntimeError(f"solve_ivp failed in period {k}: {sol.message}")
            dense = sol.sol(grid - k * dt).T.reshape(len(grid), b, n).transpose(1, 0, 2)
            x_new = sol.y[:, -1].reshape(b, n)
        else:
            grid = np.zeros(0)
            dense = np.zeros((b, 0, n))
            with torch.no_grad():
                x_new = plant.step(
                    torch.as_tensor(x),
                    torch.as_tensor(u),
                    None if wk is None else torch.as_tensor(wk),
                ).numpy()
        g = len(grid)
        t_pts.append(np.concatenate([[k * dt], grid, [(k + 1) * dt]]))
        z_x.append(np.concatenate([x[:, None], dense, x_new[:, None]], axis=1))
        z_u.append(np.broadcast_to(u[:, None], (b, g + 2, u.shape[1])))
        samp.append(np.concatenate([[True], np.zeros(g, bool), [True]]))
        x = x_new
        states.append(x)
        commands.append(u)
    if steps == 0:
        u = _command(plant, ctrl, x, reference)
        t_pts, z_x, z_u, samp = [np.zeros(1)], [x[:, None]], [u[:, None]], [np.ones(1, bool)]
    return _Rollout(
        np.arange(steps + 1) * dt,
        np.stack(states, 1),
        np.stack(commands, 1) if commands else np.zeros((b, 0, plant.n_inputs)),
        np.concatenate(t_pts),
        np.concatenate(z_x, axis=1),
        np.concatenate(z_u, axis=1),
        np.concatenate(samp),
    )


def _trajectory_points(spec: Property, t, zx, zu, samples, dt) -> _Points:
    """Robustness of every set of ``spec`` at every point of trajectories (numpy or torch)."""
    values = {}
    for s in spec.sets():
        if s.over == "state":
            z = zx
        else:
            z = torch.cat([zx, zu], -1) if torch.is_tensor(zx) else np.concatenate([zx, zu], -1)
        g = s.margins(z)
        gmax = torch.amax(g, -1) if torch.is_tensor(g) else np.max(g, axis=-1)
        values[id(s), "inside"] = -gmax
        values[id(s), "outside"] = gmax
    return _Points(t, t, samples, dt, values, on_sets=False)


def _robustness(spec, plant, ro: _Rollout) -> np.ndarray:
    pts = _trajectory_points(spec, ro.t_points, ro.z_states, ro.z_commands, ro.samples, plant.dt)
    return np.asarray(spec.robustness(pts), dtype=np.float64)


def _torch_robustness(spec, plant, ctrl, x0, steps, reference, w):
    """Robustness of the differentiable discrete rollout (``plant.step``) at the samples."""
    b = x0.shape[0]
    r = _reference(plant, reference, b)
    r = None if r is None else torch.as_tensor(r)
    x, zx, zu = x0, [], []
    for k in range(steps):
        u = plant.saturate(ctrl(plant.observe(x, r)).to(torch.float64))
        x_new = plant.step(x, u, None if w is None else torch.as_tensor(w[:, k]))
        zx += [x, x_new]
        zu += [u, u]
        x = x_new
    if steps == 0:
        zx = [x]
        zu = [plant.saturate(ctrl(plant.observe(x, r)).to(torch.float64))]
    t = np.repeat(np.arange(steps + 1) * plant.dt, 2)[1:-1] if steps else np.zeros(1)
    pts = _trajectory_points(
        spec, t, torch.stack(zx, 1), torch.stack(zu, 1), np.ones(t.size, bool), plant.dt
    )
    return spec.robustness(pts)


def _gradient_search(spec, plant, ctrl, starts, lo, hi, steps, reference, w, iters=12):
    """Signed-gradient descent of the rollout's robustness from ``starts`` (K, n), in the box."""
    width = hi - lo
    x = torch.as_tensor(starts.copy())
    step = 0.25
    best_x, best_r = x.clone(), torch.full((x.shape[0],), np.inf, dtype=torch.float64)
    for _ in range(iters):
        x.requires_grad_(True)
        try:
            rho = _torch_robustness(spec, plant, ctrl, x, steps, reference, w)
            (grad,) = torch.autograd.grad(rho.sum(), x)
        except (RuntimeError, TypeError, ValueError):
            break
        with torch.no_grad():
            better = rho < best_r
            best_r = torch.where(better, rho, best_r)
            best_x[better] = x[better]
            g = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            x = x - step * torch.as_tensor(width) * torch.sign(g)
            x = torch.clamp(x, torch.as_tensor(lo), torch.as_tensor(hi))
        step *= 0.85
    return best_x.detach().numpy()


def _sensitivity(spec, plant, ctrl, centres, steps, reference):
    """``|d rho / d x0|`` of the discrete rollout at each centre (B, n); zeros if unavailable."""
    x = torch.as_tensor(centres.copy()).requires_grad_(True)
    try:
        rho = _torch_robustness(spec, plant, ctrl, x, steps, reference, None)
        (grad,) = torch.autograd.grad(rho.sum(), x)
    except (RuntimeError, TypeError, ValueError):
        return np.zeros_like(centres)
    return np.nan_to_num(np.abs(grad.numpy()), nan=0.0, posinf=0.0, neginf=0.0)
