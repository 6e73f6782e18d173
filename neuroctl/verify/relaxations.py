"""Sound linear relaxations of the activations of the canonical network, over intervals.

Every activation ``σ`` of :class:`neuroctl.verify.bounds.ReluNetwork` is described once in
:data:`ACTIVATIONS`: its value in numpy and torch and its *relaxation*: for pre-activation bounds
``l <= z <= u`` (arrays of any shape), two lines

    a_lo z + b_lo  <=  σ(z)  <=  a_up z + b_up      for every z in [l, u],

with non-negative slopes (all activations here are non-decreasing, which the forward linear bounds
rely on). The analyses (interval, forward linear bounds, CROWN back-substitution, branch and bound)
read only this table.

* ReLU: the lower line ``a z`` with ``a`` in {0, 1} (the one of smaller area) and the upper chord
  ``u (z - l) / (u - l)`` on unstable neurons; exact on stable ones.
* S-shaped functions (tanh, sigmoid: convex for ``z < 0``, concave for ``z > 0``, point-symmetric
  about ``(0, σ(0))``), as CROWN does (Zhang et al., NeurIPS 2018, section 3.3): on an interval
  inside the convex part the upper line is the chord and the lower line the tangent at the
  midpoint; inside the concave part the other way round; across the inflection the upper line is
  the tangent at ``d >= 0`` that passes through ``(l, σ(l))`` (or the chord when ``d`` would lie
  beyond ``u``) and the lower line its mirror image. ``d`` is found by bisection; the slope is
  taken at the end of the bracket that makes the line lie above the exact tangent, so the line is
  sound whatever the bisection's precision. Both lines are moved outward by a few units of
  rounding of ``σ``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from ..layers import Smooth, describe

__all__ = ["Activation", "ACTIVATIONS", "activation"]

#: Absolute outward shift of the lines of smooth activations: covers the rounding of ``σ`` and of
#: the chord and tangent arithmetic (values of ``σ`` are in [-1, 1]).
_SLACK = 1e-13
_BISECTIONS = 60


@dataclass(frozen=True)
class Activation:
    """One scalar activation of the canonical network.

    Attributes
    ----------
    name : str
    numpy, torch : callable
        ``σ`` on float64 numpy arrays and on torch tensors.
    relax : callable
        ``relax(l, u) -> (a_lo, b_lo, a_up, b_up)``: sound lines below and above ``σ`` on
        ``[l, u]`` (elementwise; arrays of the shape of ``l``).
    piecewise_linear : bool
        Whether the MILP encoding applies.
    """

    name: str
    numpy: Callable
    torch: Callable
    relax: Callable
    piecewise_linear: bool

    def nonlinear(self, l, u):
        """Mask of the neurons whose relaxation is not exact on ``[l, u]``."""
        if self.piecewise_linear:
            return (l < 0) & (u > 0)
        return u > l


# ---------------------------------------------------------------------------------------------
# ReLU


def _relax_relu(l, u):
    active, inactive = l >= 0, u <= 0
    unstable = ~(active | inactive)
    denom = np.where(unstable, u - l, 1.0)
    up_slope = np.where(active, 1.0, np.where(unstable, u / denom, 0.0))
    up_icpt = np.where(unstable, -up_slope * l, 0.0)
    low_slope = np.where(active, 1.0, np.where(unstable & (u > -l), 1.0, 0.0))
    return low_slope, np.zeros_like(low_slope), up_slope, up_icpt


# ---------------------------------------------------------------------------------------------
# S-shaped functions


def _s_shaped(f, df, centre):
    """Relaxation of an S-shaped ``f`` (inflection at 0, ``f(-z) = 2 centre - f(z)``)."""

    def upper(l, u):
        """Upper line on [l, u]: chord (convex part or tangent point beyond u) or tangent."""
        fl, fu = f(l), f(u)
        w = u - l
        point = w <= 1e-9 * (1.0 + np.abs(l))
        m = 0.5 * (l + u)
        chord = np.where(point, df(m), (fu - fl) / np.where(point, 1.0, w))
        # concave part (l >= 0): tangent at the midpoint
        tan_s = df(m)
        slope = np.where(l >= 0, tan_s, chord)
        icpt = np.where(l >= 0, f(m) - tan_s * m, fl - chord * l)
        # across the inflection: tangent at d > 0 through (l, f(l)) unless d >= u
        cross = (l < 0) & (u > 0) & ~point
        if np.any(cross):
            lc, uc, flc = l[cross], u[cross], fl[cross]

            def h(d):  # > 0 below the tangent point, < 0 above it (decreasing for d > 0)
                return df(d) * (d - lc) - (f(d) - flc)

            use_chord = h(uc) >= 0
            a, b = np.zeros_like(lc), uc.copy()
            for _ in range(_BISECTIONS):
                mid = 0.5 * (a + b)
                pos = h(mid) >= 0
                a, b = np.where(pos, mid, a), np.where(pos, b, mid)
            # h(a) >= 0: a <= d*, so df(a) >= df(d*): the line through (l, f(l)) lies above
            s = df(a)
            sc = np.where(use_chord, chord[cross], s)
            slope[cross] = sc
            icpt[cross] = flc - sc * lc
        return slope, icpt + _SLACK

    def relax(l, u):
        l = np.asarray(l, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        a_up, b_up = upper(l, u)
        # lower line by point symmetry: f(z) = 2c - f(-z) >= 2c - (a (-z) + b) = a z + 2c - b
        a_m, b_m = upper(-u, -l)
        return a_m, 2.0 * centre - b_m - 2 * _SLACK, a_up, b_up

    return relax


def _derivative(layer: type) -> Callable:
    """``f'`` of a smooth activation, from the layer registry (:mod:`neuroctl.layers`)."""
    _, desc = describe(layer(), kinds=("smooth",))
    assert isinstance(desc, Smooth)
    return lambda z: desc.value_and_derivative(np.asarray(z, dtype=float))[1]


_dtanh = _derivative(nn.Tanh)
_dsigmoid = _derivative(nn.Sigmoid)


#: Activation name -> description (DESIGN convention 8: one entry per kind, read by every analysis).
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("relu", lambda z: np.maximum(z, 0.0), torch.relu, _relax_relu, True),
    "tanh": Activation("tanh", np.tanh, torch.tanh, _s_shaped(np.tanh, _dtanh, 0.0), False),
    "sigmoid": Activation("sigmoid", expit, torch.sigmoid, _s_shaped(expit, _dsigmoid, 0.5), False),
}


def activation(name: str) -> Activation:
    """The :class:`Activation` called ``name`` (a ``ValueError`` listing the known ones if none)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation: expected one of {sorted(ACTIVATIONS)}, received {name!r}"
        ) from None
