"""A python-control ``NonlinearIOSystem`` as a :class:`~neuroctl.plant.Plant`.

:func:`from_nlsys` (also :meth:`Plant.from_nlsys`) wraps the update and output functions of a
continuous or discrete ``nlsys``. The functions python-control takes, ``updfcn(t, x, u, params)``
and ``outfcn(t, x, u, params)``, are written for one state vector ``x`` of shape ``(n,)``; the
plant evaluates them row by row on batches ``(..., n)``.

Derivatives are exact, never finite differences:

* **array-agnostic functions** (they run on a torch tensor, e.g. written with
  ``xp = neuroctl.namespace(x)``, ``xp.sin``) are differentiated by torch autograd through
  ``torch.func.vmap``;
* **numpy-only functions** (``np.sin``) are differentiated by the complex step
  ``f'(x) e_j = Im f(x + i h e_j) / h`` (``h = 1e-100``: no subtraction, exact to rounding). The
  function must then carry complex numbers through (``np.sin``, ``np.exp``, ``*``, ``**`` do;
  ``float()``, ``abs``, ``np.abs``, ``np.clip``, ``np.maximum`` and comparisons do not). On torch
  tensors the plant evaluates them through numpy, and autograd through them uses the complex
  step too, so :func:`~neuroctl.operating_point`, :func:`~neuroctl.linearize`,
  :func:`~neuroctl.analyze` and :func:`~neuroctl.simulate` work unchanged. Operations on sets
  (verification) need the array-agnostic form and raise an error that says so.

The function is assumed time-invariant: it is evaluated at ``t = 0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array import NOT_AGNOSTIC_HINT, is_torch
from .plant import Plant

__all__ = ["from_nlsys", "complex_step_jacobian"]


_H = 1e-100  # complex step: Im f(x + ih) / h, no cancellation, so h can be tiny


def _call(fn: Callable, t: float, x, u, params, k: int, what: str):
    out = fn(t, x, u, params)
    if isinstance(out, (list, tuple)) and out and is_torch(out[0]):
        import torch

        out = torch.stack([torch.as_tensor(o) for o in out])
    if isinstance(out, (list, tuple)) and out and not all(
        isinstance(o, (int, float, complex, np.number, np.ndarray)) for o in out
    ):
        return out  # components that are sets of neuroctl.verify: joined by the caller
    if not is_torch(out) and not (hasattr(out, "shape") and type(out).__module__ != "numpy"):
        out = np.asarray(out)
    elif not is_torch(out):
        return out  # a set object of neuroctl.verify
    if out.shape != (k,) and out.size == k:
        out = out.reshape(k)
    if tuple(out.shape) != (k,):
        raise ValueError(f"{what}: expected a result of shape ({k},), received {tuple(out.shape)}")
    return out


def _rows(f: Callable, x: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """``f(x_i, u_i)`` (shape ``(k,)``) over the broadcast batch of ``x`` and ``u``."""
    if x.ndim == 1 and u.ndim == 1:
        return f(x, u)
    batch = np.broadcast_shapes(x.shape[:-1], u.shape[:-1])
    xb = np.broadcast_to(x, (*batch, x.shape[-1])).reshape(-1, x.shape[-1])
    ub = np.broadcast_to(u, (*batch, u.shape[-1])).reshape(-1, u.shape[-1])
    dtype = np.result_type(x, u)
    out = np.empty((xb.shape[0], k), dtype=dtype)
    for i in range(xb.shape[0]):
        out[i] = f(xb[i], ub[i])
    return out.reshape(*batch, k)


def complex_step_jacobian(f: Callable, x, u, k: int, *, what: str = "function"):
    """Jacobians of a numpy function ``f(x, u) -> (k,)`` by the complex step, exact to rounding.

    Parameters
    ----------
    f : callable
        ``f(x, u)`` on one state ``x`` (n,) and input ``u`` (m,), returning shape ``(k,)``; it
        must propagate complex numbers (analytic in its arguments).
    x : array_like, shape (n,)
    u : array_like, shape (m,)
    k : int
        Output size.
    what : str
        Name of the function for error messages.

    Returns
    -------
    Jx : ndarray, shape (k, n)
    Ju : ndarray, shape (k, m)
    f0 : ndarray, shape (k,)
        ``f(x, u)``.
    """
    x = np.asarray(x, float)
    u = np.asarray(u, float)
    n = x.size
    z = np.concatenate([x, u]).astype(complex)
    J = np.empty((k, z.size))
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        for j in range(z.size):
            zj = z.copy()
            zj[j] += 1j * _H
            try:
                val = np.asarray(f(zj[:n], zj[n:]))
            except (TypeError, ValueError, np.exceptions.ComplexWarning) as err:
                raise TypeError(
                    f"{what} is numpy-only and does not accept complex input, so its exact "
                    f"Jacobian (complex step) cannot be taken ({type(err).__name__}: {err}); "
                    f"{NOT_AGNOSTIC_HINT}"
                ) from err
            if not np.iscomplexobj(val):
                raise TypeError(
                    f"{what} dropped the imaginary part of a complex input (float(), abs, "
                    f"np.clip, np.maximum, comparisons), so its exact Jacobian (complex step) "
                    f"cannot be taken; {NOT_AGNOSTIC_HINT}"
                )
            J[:, j] = val.imag.reshape(k) / _H
    f0 = np.asarray(f(x, u), float).reshape(k)
    return J[:, :n], J[:, n:], f0


class _NumpyFunction:
    """A numpy-only ``f(x, u) -> (k,)`` evaluated on numpy arrays and torch tensors.

    On tensors it goes through numpy; autograd through it uses the complex step. Any other input
    (a set object of neuroctl.verify) raises with :data:`NOT_AGNOSTIC_HINT`.
    """

    def __init__(self, f: Callable, k: int, what: str, reason: str) -> None:
        self.f, self.k, self.what, self.reason = f, k, what, reason

    def __call__(self, x, u):
        if type(x) is np.ndarray and type(u) is np.ndarray:
            return _rows(self.f, x, u, self.k)
        if is_torch(x) or is_torch(u):
            import torch

            x_t = torch.as_tensor(x, dtype=torch.float64)
            u_t = torch.as_tensor(u, dtype=x_t.dtype, device=x_t.device)
            return _ComplexStep.apply(x_t, u_t, self)
        if isinstance(x, (float, int, np.floating, list, tuple)):
            return self(np.asarray(x, float), np.asarray(u, float))
        raise TypeError(
            f"{self.what} is numpy-only ({self.reason}), and this operation evaluates it on "
            f"{type(x).__name__} objects (sets, for verification); {NOT_AGNOSTIC_HINT}"
        )

    def jacobian_rows(self, x: np.ndarray, u: np.ndarray):
        """Per row of the batch: ``(Jx (B, k, n), Ju (B, k, m))`` by the complex step."""
        B = x.shape[0]
        Jx = np.empty((B, self.k, x.shape[1]))
        Ju = np.empty((B, self.k, u.shape[1]))
        for i in range(B):
            Jx[i], Ju[i], _ = complex_step_jacobian(self.f, x[i], u[i], self.k, what=self.what)
        return Jx, Ju


def _complex_step_function():
    import torch

    class ComplexStep(torch.autograd.Function):
        """Forward through numpy, backward by the complex step (exact to rounding)."""

        @staticmethod
        def forward(ctx, x, u, fn):
            y = _rows(fn.f, x.detach().cpu().numpy(), u.detach().cpu().numpy(), fn.k)
            ctx.save_for_backward(x, u)
            ctx.fn = fn
            return torch.as_tensor(np.asarray(y, float), dtype=x.dtype, device=x.device)

        @staticmethod
        def backward(ctx, g):
            x, u = ctx.saved_tensors
            fn = ctx.fn
            batch = torch.broadcast_shapes(x.shape[:-1], u.shape[:-1])
            xb = x.detach().expand(*batch, x.shape[-1]).reshape(-1, x.shape[-1])
            ub = u.detach().expand(*batch, u.shape[-1]).reshape(-1, u.shape[-1])
            Jx, Ju = fn.jacobian_rows(xb.cpu().numpy(), ub.cpu().numpy())
            gb = g.reshape(-1, fn.k)
            gx = torch.einsum("bk,bkn->bn", gb, torch.as_tensor(Jx, dtype=g.dtype))
            gu = torch.einsum("bk,bkm->bm", gb, torch.as_tensor(Ju, dtype=g.dtype))
            gx = gx.reshape(*batch, x.shape[-1]).sum_to_size(x.shape)
            gu = gu.reshape(*batch, u.shape[-1]).sum_to_size(u.shape)
            return gx.to(x.device), gu.to(u.device), None

    return ComplexStep


class _LazyComplexStep:
    _fn = None

    def apply(self, *args):
        if self._fn is None:
            type(self)._fn = _complex_step_function()
        return self._fn.apply(*args)


_ComplexStep = _LazyComplexStep()


def _agnostic(f: Callable, n: int, m: int, k: int) -> str | None:
    """None if ``f(x, u)`` runs on (vmapped) torch tensors with a gradient, else why not."""
    import torch

    x = (0.3 + 0.1 * torch.arange(2 * n, dtype=torch.float64).reshape(2, n)).requires_grad_()
    u = (0.2 + 0.1 * torch.arange(2 * m, dtype=torch.float64).reshape(2, m)).requires_grad_()
    try:
        y = torch.func.vmap(f)(x, u)
    except Exception as err:  # whatever a numpy-only function raises on a tensor
        return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    if not torch.is_tensor(y) or tuple(y.shape) != (2, k):
        return "on torch tensors it returns no tensor of the expected shape"
    return None


def _vmapped(f: Callable, k: int):
    """An array-agnostic row function ``f(x, u)`` on batches: vmap on tensors, rows on numpy."""

    def g(x, u):
        if is_torch(x) or is_torch(u):
            import torch

            x_t = torch.as_tensor(x, dtype=torch.float64)
            u_t = torch.as_tensor(u, dtype=x_t.dtype, device=x_t.device)
            if x_t.ndim == 1 and u_t.ndim == 1:
                return f(x_t, u_t)
            batch = torch.broadcast_shapes(x_t.shape[:-1], u_t.shape[:-1])
            xb = x_t.expand(*batch, x_t.shape[-1]).reshape(-1, x_t.shape[-1])
            ub = u_t.expand(*batch, u_t.shape[-1]).reshape(-1, u_t.shape[-1])
            return torch.func.vmap(f)(xb, ub).reshape(*batch, k)
        if type(x) is np.ndarray and type(u) is np.ndarray:
            return _rows(lambda a, b: np.asarray(f(a, b), float), x, u, k)
        return _on_sets(f, x, u, k)

    return g


def _on_sets(f: Callable, x, u, k: int):
    """A row function on batched set objects of neuroctl.verify (shape ``(B, n)``): it is given
    the lists of components ``x[..., i]`` (``x[0]`` is then the first state of every set), and
    its components are joined on the last axis."""
    if len(getattr(x, "shape", ())) < 2:
        return f(x, u)
    xs = [x[..., i] for i in range(x.shape[-1])]
    us = [u[..., i] for i in range(u.shape[-1])]
    y = f(xs, us)
    parts = list(y) if isinstance(y, (list, tuple)) else [y[i] for i in range(k)]
    return np.stack(parts, axis=-1)



def _signal_names(sys, kind: str) -> list[str]:
    return list(getattr(sys, f"{kind}_labels"))


def from_nlsys(
    sys,
    *,
    dt: float | None = None,
    integrator: str = "rk4",
    input_lower=None,
    input_upper=None,
    equilibrium: Callable | None = None,
    name: str | None = None,
) -> Plant:
    """A :class:`~neuroctl.plant.Plant` from a python-control ``NonlinearIOSystem``.

    Parameters
    ----------
    sys : control.NonlinearIOSystem
        Continuous (``sys.dt == 0``) or discrete. Its states, inputs and outputs keep their names;
        its ``params`` are passed to its functions; its outputs must not depend on the input
        directly (no feedthrough).
    dt : float, optional
        Sample time of the plant's discrete map in seconds. Required for a continuous system
        (the step of ``integrator``) and for a discrete one with ``dt=True``; for a discrete
        system with a numeric sample time it must equal it (default: that sample time).
    integrator : {"rk4", "euler", "semi_implicit_euler"}
        How a continuous system is stepped over ``dt``.
    input_lower, input_upper : array_like, optional
        Actuator bounds, shape ``(m,)`` or scalar (default unbounded).
    equilibrium : callable, optional
        ``equilibrium(r) -> (x_eq, u_eq)`` as in :class:`~neuroctl.plant.Plant` (the default
        guess of :func:`~neuroctl.operating_point`).
    name : str, optional
        Default: the system's name.

    Returns
    -------
    Plant

    Raises
    ------
    TypeError
        ``sys`` is not a ``NonlinearIOSystem``.
    ValueError
        Missing or inconsistent ``dt``; outputs that depend on the input.
    """
    import control

    if not isinstance(sys, control.NonlinearIOSystem):
        raise TypeError(
            f"sys: expected a control.NonlinearIOSystem (control.nlsys), received "
            f"{type(sys).__name__}"
        )
    if isinstance(sys, control.StateSpace):
        A, B, C, D = (np.asarray(M, float) for M in (sys.A, sys.B, sys.C, sys.D))
        if np.any(D):
            raise ValueError("sys: expected no feedthrough (D = 0), received a nonzero D")
        updfcn = lambda t, x, u, params: A @ x + B @ u  # noqa: E731 - analytic, complex-safe
        outfcn = lambda t, x, u, params: C @ x  # noqa: E731
    else:
        updfcn, outfcn = sys.updfcn, sys.outfcn
    n, m, p = sys.nstates, sys.ninputs, sys.noutputs
    label = f"the update function of {sys.name!r}"
    continuous = sys.isctime()
    if continuous:
        if dt is None:
            raise ValueError(
                f"dt: system {sys.name!r} is continuous; give the sample time of the plant's "
                "discrete map in seconds (dt=...), received None"
            )
    else:
        sys_dt = sys.dt
        if sys_dt is True:
            if dt is None:
                raise ValueError(
                    f"dt: system {sys.name!r} is discrete with an unspecified sample time "
                    "(dt=True); give it in seconds, received None"
                )
        elif dt is None:
            dt = float(sys_dt)
        elif not np.isclose(float(dt), float(sys_dt), rtol=1e-12, atol=0):
            raise ValueError(
                f"dt: expected the sample time of discrete system {sys.name!r}, {sys_dt}, "
                f"received {dt}"
            )
    params = dict(getattr(sys, "params", {}) or {})

    def upd(x, u):
        return _call(updfcn, 0.0, x, u, params, n, label)

    reason = _agnostic(upd, n, m, n)
    if reason is None:
        f = _vmapped(upd, n)
    else:
        f = _NumpyFunction(upd, n, label, reason)

    observe = None
    outputs = _signal_names(sys, "state")
    if outfcn is not None:
        zero_u = np.zeros(m)
        out_label = f"the output function of {sys.name!r}"

        def out(x, u):
            return _call(outfcn, 0.0, x, u, params, p, out_label)

        x_probe = 0.3 + 0.1 * np.arange(n)
        u_probe = 0.7 + 0.1 * np.arange(m)
        if p is None:  # outputs not declared: their number from one evaluation
            p = int(np.asarray(outfcn(0.0, x_probe, np.zeros(m), params)).size)
        y_a = np.asarray(out(x_probe, np.zeros(m)), float)
        y_b = np.asarray(out(x_probe, u_probe), float)
        if not np.allclose(y_a, y_b, rtol=1e-13, atol=1e-300):
            raise ValueError(
                f"sys: the outputs of {sys.name!r} depend on its inputs directly (feedthrough); "
                "a Plant's observation depends on the state only"
            )
        out_reason = _agnostic(out, n, m, p)
        g = (
            _vmapped(out, p)
            if out_reason is None
            else _NumpyFunction(out, p, out_label, out_reason)
        )

        def observe(x):
            if is_torch(x):
                import torch

                u0: Any = torch.zeros((*x.shape[:-1], m), dtype=x.dtype, device=x.device)
            elif type(x) is np.ndarray:
                u0 = np.zeros((*x.shape[:-1], m))
            else:
                u0 = zero_u
            return g(x, u0)

        outputs = p if sys.noutputs is None else _signal_names(sys, "output")
    kwargs: dict[str, Any] = {"rhs": f} if continuous else {"update": f}
    plant = Plant(
        states=_signal_names(sys, "state"),
        inputs=_signal_names(sys, "input"),
        dt=dt,
        integrator=integrator,
        input_lower=input_lower,
        input_upper=input_upper,
        observe=observe,
        outputs=outputs,
        equilibrium=equilibrium,
        name=sys.name if name is None else name,
        params=sys,
        **kwargs,
    )
    if reason is not None:
        obs_fn = g if outfcn is not None else None

        def exact_jacobians(x, u, w, r, cont):
            # complex step on the user's own function (one pass, no torch); the discrete map of
            # a continuous system is differentiated through torch (the complex step sits inside
            # each stage of the integrator)
            if not cont and continuous:
                return None
            Jx, Ju, f0 = complex_step_jacobian(upd, x, u, n, what=label)
            if obs_fn is None:
                C, y0 = np.eye(n), x.copy()
            else:
                C, _, y0 = complex_step_jacobian(out, x, np.zeros(m), p, what=out_label)
            return Jx, Ju, C, f0, y0

        plant._jacobian_hook = exact_jacobians
    return plant
