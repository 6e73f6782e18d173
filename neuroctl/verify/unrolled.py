"""Exact reach sets of an affine plant with a ReLU controller by MILP.

The closed loop over ``k`` steps is unrolled into one ReLU network ``[x0, w_0..w_{k-1}] -> x_k``
(states and pending disturbances carried through the controller's layers, shifted so that
those units are stably active), and each state's bounds at each step are the optima of its MILP
encoding, started from (and tightening) the zonotope sets. Used by :func:`neuroctl.verify.reach`
with ``method="milp"``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..plant import Plant
from .affine import _const
from .reach import _reach_zonotope


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
