"""The tests' independent replay of a closed loop in continuous time: scipy's ``solve_ivp`` at
rtol 1e-10, atol 1e-12 over each control period with the command held (zero-order hold), written
here rather than taken from the library."""

import itertools

import numpy as np
import torch
from scipy.integrate import solve_ivp


def scipy_closed_loop(plant, controller, x0, steps, *, reference=None, dense=16, w=None):
    """Independent replay: one solve_ivp per period on the stacked ODE, command held (and the
    disturbance ``w[:, k]``, shape (N, steps, n_w), held over period k)."""
    x = np.array(x0, dtype=np.float64)
    N, n = x.shape
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = torch.as_tensor(np.broadcast_to(ref, (N, plant.n_references)).copy())
    t_in = np.linspace(0.0, plant.dt, dense + 2)[1:-1]
    samples, between = [x.copy()], []
    for k in range(steps):
        with torch.no_grad():
            xt = torch.as_tensor(x)
            y = plant.observe(xt, r) if r is not None else plant.observe(xt)
            u = plant.saturate(controller(y)).numpy()
        wk = None if w is None else w[:, k]

        def f(t, z, u=u, wk=wk):
            return np.asarray(plant.rhs(z.reshape(N, n), u, wk)).reshape(-1)

        sol = solve_ivp(  # DOP853: an 8th-order method, few steps at this tolerance
            f,
            (0.0, plant.dt),
            x.reshape(-1),
            method="DOP853",
            rtol=1e-10,
            atol=1e-12,
            dense_output=True,
        )
        assert sol.success
        between.append(sol.sol(t_in).T.reshape(dense, N, n).transpose(1, 0, 2))
        x = sol.y[:, -1].reshape(N, n)
        samples.append(x.copy())
    return np.stack(samples, 1), np.stack(between, 1)  # (N, T+1, n), (N, T, dense, n)


def corners(lo, hi):
    return np.array(list(itertools.product(*zip(lo, hi))), dtype=np.float64)
