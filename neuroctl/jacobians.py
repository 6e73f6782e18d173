"""Jacobians by autograd, in float64: of any function, and of a plant's dynamics and observation.

* :func:`plant_jacobians` -- ``A, B, Bw, C, Cr`` of a :class:`~neuroctl.plant.Plant` at a point
  (continuous ``rhs`` or the discrete map), as :class:`PlantJacobians`.

Reverse mode on a batch of copies (one forward and one backward pass), never finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ._array import check_vector
from ._checks import _check_plant, _is_continuous
from ._json import json_dict
from .plant import Plant

__all__ = ["plant_jacobians", "PlantJacobians"]


def _jacobians(f: Callable, args: list[np.ndarray], wrt: tuple[int, ...], p: int):
    """Jacobians of ``f(*args)`` (output size ``p``) w.r.t. ``args[i]`` for ``i in wrt``.

    Reverse mode on a batch of ``p`` copies: one forward and one backward pass.
    """
    if p == 0:
        return [np.zeros((0, np.asarray(args[i]).size)) for i in wrt], np.zeros(0)
    ts = []
    for i, a in enumerate(args):
        t = torch.from_numpy(np.repeat(np.asarray(a, dtype=float).reshape(1, -1), p, 0))
        if i in wrt:
            t.requires_grad_(True)
        ts.append(t)
    with torch.enable_grad():
        y = f(*ts)
        if y.shape != (p, p):
            raise ValueError(f"expected an output of size {p}, received shape {tuple(y.shape[1:])}")
        # row i of the output against row i of the inputs: the identity as output gradient
        eye = torch.eye(p, dtype=y.dtype)
        grads = torch.autograd.grad(y, [ts[i] for i in wrt], eye, allow_unused=True)
    out = []
    for i, g in zip(wrt, grads):
        out.append(np.zeros((p, ts[i].shape[1])) if g is None else g.numpy())
    return out, y.detach()[0].numpy()


@dataclass(frozen=True)
class PlantJacobians:
    """Plant Jacobians at ``(x, u, w, r)``.

    ``A = ∂f/∂x`` (n, n), ``B = ∂f/∂u`` (n, m), ``Bw = ∂f/∂w`` (n, n_w), ``C = ∂y/∂x`` (p, n),
    ``Cr = ∂y/∂r`` (p, n_ref), with ``f`` the continuous ``rhs`` or the discrete map (without the
    actuator saturation), ``f0`` its value and ``y0`` the observation; ``dt`` is 0 (continuous) or
    the sample time.
    """

    A: np.ndarray
    B: np.ndarray
    Bw: np.ndarray
    C: np.ndarray
    Cr: np.ndarray
    f0: np.ndarray
    y0: np.ndarray
    dt: float

    @json_dict
    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}


def plant_jacobians(plant: Plant, x, u, w=None, r=None, *, continuous: bool | None = None):
    """Jacobians of a plant's dynamics and observation by autograd, in float64.

    Parameters
    ----------
    plant : Plant
    x : array_like, shape (n,)
    u : array_like, shape (m,)
        Input acting on the plant (the saturation is *not* applied: the Jacobian ``B`` is the
        unsaturated one; :func:`~neuroctl.linearize` multiplies by the saturation's gain).
    w : array_like, shape (n_w,), optional
        Disturbance (zeros).
    r : array_like, shape (n_ref,), optional
        Reference (the plant's nominal reference).
    continuous : bool, optional
        Differentiate ``rhs`` (True) or the discrete map ``step`` (False). Default: continuous if
        the plant has an ``rhs``.

    Returns
    -------
    PlantJacobians
    """
    _check_plant(plant)
    cont = _is_continuous(plant, continuous)
    n, m, nw, nr = plant.n_states, plant.n_inputs, plant.n_disturbances, plant.n_references
    x = check_vector(x, n, "x", plant.state_names)
    u = check_vector(u, m, "u", plant.input_names)
    w = np.zeros(nw) if w is None else check_vector(w, nw, "w", plant.disturbance_names)
    r = plant.nominal_reference if r is None else check_vector(r, nr, "r", plant.reference_names)

    p = plant.n_outputs
    if plant._jacobian_hook is not None:  # exact without autograd (complex step)
        exact = plant._jacobian_hook(x, u, w, r, cont)
        if exact is not None:
            A, B, C, f0, y0 = exact
            return PlantJacobians(
                A, B, np.zeros((n, nw)), C, np.zeros((p, nr)), f0, y0, 0.0 if cont else plant.dt
            )

    def fg(xt, ut, wt, rt):
        # dynamics and observation stacked: one forward and one backward pass for both
        if cont:
            f = plant.rhs(xt, ut, wt if nw else None)
        else:
            f = plant.advance(xt, ut, wt if nw else None)  # saturation is handled separately
        return torch.cat([f, plant.observe(xt, rt if nr else None)], -1)

    (Jx, Ju, Jw, Jr), v = _jacobians(fg, [x, u, w, r], (0, 1, 2, 3), n + p)
    return PlantJacobians(
        Jx[:n], Ju[:n], Jw[:n], Jx[n:], Jr[n:], v[:n], v[n:], 0.0 if cont else plant.dt
    )
