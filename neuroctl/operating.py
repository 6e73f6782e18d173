"""Closed-loop operating points: equilibria and relative equilibria, and their solves.

* :func:`operating_point` -- the closed-loop equilibrium (or relative equilibrium along the
  plant's invariant directions), its residual and steady-state error; a solve whose residual
  stays above the tolerance raises :class:`OperatingPointError`, never returns the point.
* :class:`OperatingPoint` -- the result; :meth:`OperatingPoint.at` a point at a given state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._array import check_vector
from ._checks import _check_plant, _check_positive, _is_continuous
from ._json import json_dict
from .gains import _float64
from .jacobians import _jacobians
from .plant import Plant
from .simulate import check_controller

__all__ = ["operating_point", "OperatingPoint", "OperatingPointError"]

F64 = torch.float64


def _controller64(controller):
    if controller is None:
        return None
    if isinstance(controller, nn.Module):
        return _float64(controller).eval()
    if callable(controller):
        return controller
    raise TypeError(
        f"controller: expected an nn.Module or a callable on observations, received "
        f"{type(controller).__name__}"
    )


def _closed_loop_fn(plant: Plant, ctrl, r: np.ndarray, w: np.ndarray, cont: bool):
    rt = torch.as_tensor(r, dtype=F64)
    wt = torch.as_tensor(w, dtype=F64)

    def command(xt):
        y = plant.observe(xt, rt.expand(*xt.shape[:-1], -1) if plant.n_references else None)
        if ctrl is None:
            return torch.zeros((*xt.shape[:-1], plant.n_inputs), dtype=F64), y
        return ctrl(y), y

    def F(xt):
        u, _ = command(xt)
        u = plant.saturate(u)
        ww = wt.expand(*xt.shape[:-1], -1) if plant.n_disturbances else None
        if cont:
            return plant.rhs(xt, u, ww)
        return plant.step(xt, u, ww) - xt

    return F, command


@dataclass
class OperatingPoint:
    """A closed-loop operating point.

    Attributes
    ----------
    x : ndarray, shape (n,)
        State.
    u : ndarray, shape (m,)
        Command acting on the plant (after saturation).
    u_command : ndarray, shape (m,)
        Controller output before saturation.
    y : ndarray, shape (p,)
        Observation.
    r : ndarray, shape (n_ref,)
        Reference.
    w : ndarray, shape (n_w,)
        Disturbance.
    residual : ndarray, shape (n,)
        ``rhs`` (continuous) or ``step(x) - x`` (discrete) at the point; zero at an equilibrium.
    continuous : bool
    steady_state_error : ndarray, shape (n,) or None
        ``x - x_eq(r)``: how far the closed loop settles from the state at which the plant rests
        for the reference (from ``plant.equilibrium``); ``None`` if the plant defines none.
    drift : ndarray, shape (k,) or None
        For a relative equilibrium (``invariant=``), the rate of motion along the invariant
        directions (per second, or per step for a discrete map).
    success : bool
        The root finder converged and the residual is below ``tol`` (``None`` for a point given
        by the user with :meth:`at`).
    message : str
    state_names : tuple of str
    """

    x: np.ndarray
    u: np.ndarray
    u_command: np.ndarray
    y: np.ndarray
    r: np.ndarray
    w: np.ndarray
    residual: np.ndarray
    continuous: bool
    steady_state_error: np.ndarray | None = None
    success: bool | None = None
    message: str = ""
    state_names: tuple = field(default=(), repr=False)
    drift: np.ndarray | None = None

    @property
    def residual_norm(self) -> float:
        """Max-norm of the residual."""
        return float(np.max(np.abs(self.residual))) if self.residual.size else 0.0

    @classmethod
    def at(
        cls,
        plant: Plant,
        controller,
        x,
        *,
        reference=None,
        disturbance=None,
        continuous: bool | None = None,
        invariant=None,
    ) -> OperatingPoint:
        """The operating point at a given state (no root finding; the residual is reported).

        Useful for relative equilibria, e.g. a ring road in uniform flow, where positions move
        at a common speed but the dynamics are translation invariant: with ``invariant=`` (see
        :func:`operating_point`; default ``plant.invariants``) the motion along those
        directions is reported as ``drift`` and removed from the residual.
        """
        _check_plant(plant)
        check_controller(plant, controller)
        cont = _is_continuous(plant, continuous)
        r, w = _ref_dist(plant, reference, disturbance)
        return _make_op(
            plant,
            _controller64(controller),
            check_vector(x, plant.n_states, "x", plant.state_names),
            r,
            w,
            cont,
            success=None,
            message="given",
            invariant=_plant_invariant(plant, invariant),
        )

    def __repr__(self) -> str:
        names = self.state_names or tuple(f"x[{i}]" for i in range(self.x.size))
        lines = [f"OperatingPoint ({'continuous' if self.continuous else 'discrete'})"]
        shown = (
            range(len(names))
            if len(names) <= 12
            else [*range(6), *range(len(names) - 6, len(names))]
        )
        for i in shown:
            nm = names[i]
            e = (
                ""
                if self.steady_state_error is None
                else (f"   steady-state error {self.steady_state_error[i]: .6g}")
            )
            lines.append(f"  {nm:>12} = {self.x[i]: .6g}{e}")
        lines.append(
            f"  u = {np.array2string(self.u, precision=6)}"
            + (
                ""
                if np.allclose(self.u, self.u_command)
                else f" (saturated from {np.array2string(self.u_command, precision=6)})"
            )
        )
        lines.append(f"  residual {self.residual_norm:.3g}; {self.message}")
        return "\n".join(lines)

    @json_dict
    def to_dict(self) -> dict:
        out = {}
        for k, v in vars(self).items():
            out[k] = (
                v.tolist()
                if isinstance(v, np.ndarray)
                else (list(v) if isinstance(v, tuple) else v)
            )
        out["residual_norm"] = self.residual_norm
        return out

    def plot(self, *, ax=None):
        """Bar chart of the state and, if known, the steady-state error."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3))
        else:
            fig = ax.figure
        names = self.state_names or tuple(f"x[{i}]" for i in range(self.x.size))
        idx = np.arange(len(names))
        ax.bar(idx - 0.2, self.x, 0.4, label="state")
        if self.steady_state_error is not None:
            ax.bar(idx + 0.2, self.steady_state_error, 0.4, label="steady-state error")
        ax.set_xticks(idx, names)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _ref_dist(plant: Plant, reference, disturbance):
    r = (
        plant.nominal_reference
        if reference is None
        else check_vector(reference, plant.n_references, "reference", plant.reference_names)
    )
    w = (
        np.zeros(plant.n_disturbances)
        if disturbance is None
        else check_vector(
            disturbance, plant.n_disturbances, "disturbance", plant.disturbance_names
        )
    )
    return r, w


def _invariant(invariant, n: int) -> np.ndarray:
    try:
        V = np.asarray(invariant, float)
    except (TypeError, ValueError):
        raise TypeError(
            f"invariant: expected directions of shape ({n}, k), received {invariant!r}"
        ) from None
    if V.ndim == 1:
        V = V[:, None]
    if V.ndim != 2 or V.shape[0] != n or V.shape[1] == 0:
        raise ValueError(
            f"invariant: expected directions of shape ({n}, k), received {np.shape(invariant)}"
        )
    if not np.isfinite(V).all() or not np.abs(V).max(axis=0).all():
        raise ValueError("invariant: expected finite, non-zero directions (columns)")
    return V


def _make_op(plant, ctrl, x, r, w, cont, *, success, message, invariant=None):
    F, command = _closed_loop_fn(plant, ctrl, r, w, cont)
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=F64)
        u_cmd, y = command(xt)
        res = F(xt).numpy()
    drift = None
    if invariant is not None:
        V = _invariant(invariant, x.size)
        drift = np.linalg.lstsq(V, res, rcond=None)[0]
        res = res - V @ drift
    u_cmd = u_cmd.numpy()
    sse = None
    if plant._equilibrium is not None:
        try:
            sse = x - plant.equilibrium(r)[0]
        except (ValueError, ArithmeticError):  # no rest state for this reference
            sse = None
    return OperatingPoint(
        x=x,
        u=np.clip(u_cmd, plant.input_lower, plant.input_upper),
        u_command=u_cmd,
        y=y.numpy(),
        r=r,
        w=w,
        residual=res,
        continuous=cont,
        steady_state_error=sse,
        success=success,
        message=message,
        state_names=plant.state_names,
        drift=drift,
    )


class OperatingPointError(RuntimeError):
    """The solve for an operating point did not converge: no equilibrium was found.

    Attributes
    ----------
    op : OperatingPoint
        The best point the solver reached (``success=False``; its ``residual`` says how far it
        is from an equilibrium). Never an equilibrium: do not analyse it.
    """

    def __init__(self, message: str, op: OperatingPoint) -> None:
        super().__init__(message)
        self.op = op


def _plant_invariant(plant: Plant, invariant):
    """``invariant`` if given, else the plant's own directions (``None`` when it has none)."""
    if invariant is not None:
        V = _invariant(invariant, plant.n_states)
        return V if V.shape[1] else None
    V = plant.invariants
    return V if V.shape[1] else None


def _guess(plant: Plant, guess, r: np.ndarray) -> tuple[np.ndarray, str]:
    if guess is None:
        points = plant.operating_points(r)
        if points:
            name = next(iter(points))
            return points[name][0], f"the plant's {name!r} operating point"
        return np.zeros(plant.n_states), "the zero state"
    if isinstance(guess, str):
        points = plant.operating_points(r)
        if guess not in points:
            raise ValueError(
                f"guess: expected a state or one of the plant's operating points {list(points)}"
                f", received {guess!r}"
            )
        return points[guess][0], f"the plant's {guess!r} operating point"
    x = np.asarray(guess, float)
    if x.shape != (plant.n_states,):
        raise ValueError(
            f"guess: expected a state of shape ({plant.n_states},), received shape {x.shape}"
        )
    return x, "the given guess"


def operating_point(
    plant: Plant,
    controller,
    *,
    reference=None,
    disturbance=None,
    guess=None,
    continuous: bool | None = None,
    invariant=None,
    tol: float = 1e-9,
    settle: int = 0,
) -> OperatingPoint:
    """The closed-loop equilibrium (or relative equilibrium) of ``plant`` with ``controller``.

    Solves ``rhs(x, sat(π(observe(x, r)))) = 0`` (continuous) or ``step(x, π(observe(x, r))) = x``
    (discrete) with ``scipy.optimize.root`` (MINPACK ``hybr``), the Jacobian by autograd. When
    the plant has :attr:`~neuroctl.Plant.invariants` (or ``invariant`` is given), a *relative*
    equilibrium is solved for instead (see ``invariant``). A solve that does not reach the
    tolerance raises :class:`OperatingPointError`; a point that is not an equilibrium is never
    returned.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
        Maps observations (float64 tensors, shape (..., p)) to commands (..., m); evaluated in
        float64 (a float32 network is promoted on a copy).
    reference : array_like, shape (n_ref,), optional
        Reference (default: the plant's nominal one).
    disturbance : array_like, shape (n_w,), optional
        Constant disturbance (default zeros).
    guess : array_like, shape (n,), or str, optional
        Initial guess: a state, or the name of one of ``plant.operating_points(r)``. Default: the
        first of those (``"nominal"``, from ``equilibrium=``), else zeros.
    continuous : bool, optional
        Default: continuous if the plant has an ``rhs``.
    invariant : array_like, shape (n, k), optional
        Directions along which the dynamics are invariant; default ``plant.invariants`` (an
        array of shape ``(n, 0)`` solves for a plain equilibrium). With ``k > 0`` a *relative*
        equilibrium is solved for: ``F(x) = V c`` (the state drifts at the constant rate ``c``
        along them, reported as ``drift``), with ``Vᵀ (x - guess) = 0`` fixing the position
        along them. The residual is ``F(x) - V c``.
    tol : float
        Success if the max-norm of the residual is at most ``tol`` (state units per second, or
        per step for a discrete map).
    settle : int
        If positive, first run the noise-free closed loop (``neuroctl.simulate``) for ``settle``
        steps from the guess and solve from where it ends: for control laws (saturated, flat)
        whose equilibrium is far from the plant's nominal point.

    Returns
    -------
    OperatingPoint
        With ``steady_state_error = x - x_eq(r)`` when the plant defines its rest state: a
        controller that does not compensate gravity settles away from the target.

    Raises
    ------
    OperatingPointError
        If the residual of the solution is above ``tol``; its ``op`` is the point reached.
    """
    from scipy.optimize import root

    _check_plant(plant)
    cont = _is_continuous(plant, continuous)
    tol = _check_positive(tol, "tol")
    if not (isinstance(settle, (int, np.integer)) and not isinstance(settle, bool) and settle >= 0):
        raise ValueError(f"settle: expected an int >= 0 (steps), received {settle!r}")
    check_controller(plant, controller)
    r, w = _ref_dist(plant, reference, disturbance)
    if invariant is not None:
        _invariant(invariant, plant.n_states)
    if guess is not None and not isinstance(guess, str):  # a name: one of the plant's points
        guess = check_vector(guess, plant.n_states, "guess", plant.state_names)
    ctrl = _controller64(controller)
    guess, source = _guess(plant, guess, r)
    if settle:
        from .simulate import simulate

        guess = np.asarray(
            simulate(plant, controller, guess, int(settle), reference=r).states[-1], float
        )
        source += f", settled for {int(settle)} steps"
    F, _ = _closed_loop_fn(plant, ctrl, r, w, cont)
    n = plant.n_states
    V = _plant_invariant(plant, invariant)

    def fun(x):
        (J,), val = _jacobians(F, [x], (0,), n)
        return val, J

    if V is None:
        sol = root(fun, guess, jac=True, method="hybr", options={"xtol": 1e-13})
        x_sol = np.asarray(sol.x, float)
    else:
        k = V.shape[1]

        def fun_rel(z):
            x, c = z[:n], z[n:]
            val, J = fun(x)
            res = np.concatenate([val - V @ c, V.T @ (x - guess)])
            jac = np.block([[J, -V], [V.T, np.zeros((k, k))]])
            return res, jac

        c0 = np.linalg.lstsq(V, fun(guess)[0], rcond=None)[0]
        sol = root(
            fun_rel, np.concatenate([guess, c0]), jac=True, method="hybr", options={"xtol": 1e-13}
        )
        x_sol = np.asarray(sol.x[:n], float)
    op = _make_op(plant, ctrl, x_sol, r, w, cont, success=None, message="", invariant=V)
    op.success = bool(op.residual_norm <= tol)
    kind = "relative equilibrium" if V is not None else "equilibrium"
    if not op.success:
        op.message = f"NOT converged ({' '.join(sol.message.split())})"
        raise OperatingPointError(
            f"operating_point: no {kind} of plant {plant.name!r} found from {source}: the "
            f"solve stopped with residual {op.residual_norm:.3g} (max-norm), above tol={tol:g} "
            f"({' '.join(sol.message.split())}). Give a better guess= (a state or one of "
            f"{list(plant.operating_points(r))}), settle= steps of the closed loop first, or "
            "check that this controller has an equilibrium",
            op,
        )
    op.message = "converged" + (f" ({kind})" if V is not None else "")
    return op
