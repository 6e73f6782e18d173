"""Exact conversions between continuous piecewise-linear functions and ReLU networks.

A continuous piecewise-linear (PWL) function of one variable with knots ``t_0 < ... < t_{K-1}``
and values ``v_i`` is *exactly* a two-layer ReLU network: one hinge ``relu(x - t_i)`` per knot,
weighted by the change of slope at that knot. Conversely, a ReLU network of a scalar input (any
depth) is a PWL function whose breakpoints can be found exactly by pushing the breakpoints through
the layers. Both directions are exact up to float64 rounding.

Typical use: saturations and actuator limits, ``clip(v, lo, hi) = lo + relu(v - lo) - relu(v - hi)``
(:func:`saturation_layers`, :func:`saturated`), and look-up tables become ordinary ReLU layers that
verification sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._json import json_dict
from .layers import PiecewiseLinear as PiecewiseLinearLayer
from .layers import describe

__all__ = [
    "PiecewiseLinear",
    "relu_net_from_pwl",
    "pwl_from_relu_net",
    "saturation_layers",
    "saturated",
    "EXTRAPOLATIONS",
]

#: Behaviours outside ``[t_0, t_{K-1}]`` supported by :func:`relu_net_from_pwl`.
EXTRAPOLATIONS = ("linear", "constant")


# --------------------------------------------------------------------------- result object
@dataclass(frozen=True)
class PiecewiseLinear:
    """A continuous piecewise-linear function of one variable on ``[knots[0], knots[-1]]``.

    Attributes
    ----------
    knots : ndarray, shape (K,)
        Strictly increasing breakpoints (the interval ends included).
    values : ndarray, shape (K,) or (K, m)
        Function values at the knots (``(K, m)`` for an ``m``-output function, ``m > 1``).
    """

    knots: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        knots = np.asarray(self.knots, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        if knots.ndim != 1 or knots.size < 2:
            raise ValueError(
                f"knots: expected a 1-D array of at least 2 points, received shape {knots.shape}"
            )
        if not np.all(np.isfinite(knots)) or not np.all(np.diff(knots) > 0):
            raise ValueError(
                f"knots: expected finite, strictly increasing numbers, received {knots}"
            )
        if values.ndim not in (1, 2) or values.shape[0] != knots.size:
            raise ValueError(
                f"values: expected shape ({knots.size},) or ({knots.size}, m) to match the knots, "
                f"received shape {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"values: expected finite numbers, received {values}")
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "values", values)

    @property
    def slopes(self) -> np.ndarray:
        """Slope on each of the ``K - 1`` pieces, shape ``(K-1,)`` or ``(K-1, m)``."""
        dt = np.diff(self.knots)
        dv = np.diff(self.values, axis=0)
        return dv / (dt if dv.ndim == 1 else dt[:, None])

    @property
    def n_pieces(self) -> int:
        """Number of linear pieces ``K - 1``."""
        return self.knots.size - 1

    def __call__(self, x) -> np.ndarray:
        """Evaluate by linear interpolation on ``[knots[0], knots[-1]]`` (clamped outside).

        Parameters
        ----------
        x : array_like, shape (...)

        Returns
        -------
        ndarray, shape (...) or (..., m)
        """
        x = np.asarray(x, dtype=np.float64)
        if self.values.ndim == 1:
            return np.interp(x, self.knots, self.values)
        return np.stack(
            [np.interp(x, self.knots, self.values[:, j]) for j in range(self.values.shape[1])],
            axis=-1,
        )

    def simplify(self, *, rtol: float = 1e-12) -> PiecewiseLinear:
        """Drop interior knots where the slope does not change (relative tolerance ``rtol``)."""
        s = self.slopes.reshape(self.n_pieces, -1)
        scale = max(float(np.abs(s).max(initial=0.0)), 1e-300)
        keep_inner = np.abs(s[1:] - s[:-1]).max(axis=1, initial=0.0) > rtol * scale
        keep = np.concatenate([[True], keep_inner, [True]])
        return PiecewiseLinear(self.knots[keep], self.values[keep])

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {"knots": self.knots.tolist(), "values": self.values.tolist()}

    def plot(self, *, ax=None, **kwargs):
        """Plot the function with its knots marked.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.figure
        ax.plot(self.knots, self.values, marker="o", ms=3, **kwargs)
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        return fig

    def __repr__(self) -> str:
        m = 1 if self.values.ndim == 1 else self.values.shape[1]
        return (
            f"PiecewiseLinear({self.n_pieces} pieces on [{self.knots[0]:.6g}, "
            f"{self.knots[-1]:.6g}], outputs={m})"
        )


# --------------------------------------------------------------------------- PWL -> ReLU
def _linear(w, b, dtype) -> nn.Linear:
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    layer = nn.Linear(w.shape[1], w.shape[0]).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(w, dtype=dtype))
        layer.bias.copy_(torch.as_tensor(np.asarray(b, dtype=np.float64), dtype=dtype))
    layer.requires_grad_(False)
    return layer


def relu_net_from_pwl(
    knots, values, *, extrapolation: str = "linear", dtype: torch.dtype = torch.float64
) -> nn.Sequential:
    """The exact two-layer ReLU network of the continuous PWL interpolant of ``(knots, values)``.

    The network is ``Linear(1, H) -> ReLU -> Linear(H, 1)`` with one hinge ``relu(x - t_i)`` per
    knot; its output weight is the change of slope at that knot.

    Parameters
    ----------
    knots : array_like, shape (K,)
        Strictly increasing knots ``t_0 < ... < t_{K-1}``, ``K >= 2``.
    values : array_like, shape (K,)
        Values ``v_i`` at the knots.
    extrapolation : {"linear", "constant"}
        Behaviour outside ``[t_0, t_{K-1}]``:

        - ``"linear"`` (default): the end pieces are extended with their slopes. ``H = K``
          hidden units: ``relu(x - t_0)`` and ``relu(t_0 - x)`` carry the first slope, one hinge
          per interior knot.
        - ``"constant"``: the function is held at ``v_0`` left of ``t_0`` and at ``v_{K-1}`` right
          of ``t_{K-1}`` (a saturation). ``H = K`` hinges ``relu(x - t_i)``, ``i = 0..K-1``.
    dtype : torch.dtype
        Parameter dtype (float64 keeps the conversion exact to rounding).

    Returns
    -------
    nn.Sequential
        Maps ``(..., 1) -> (..., 1)``; frozen parameters.

    Notes
    -----
    In float64 the network reproduces the interpolant up to the rounding of the hinge sum, about
    ``eps * sum_i |s_i - s_{i-1}| |x - t_i|`` (``eps = 2.2e-16``): below 1e-12 for O(1) values on
    knots a tenth apart or more; knots very close together (steep slopes) cost accuracy.

    Examples
    --------
    >>> import torch
    >>> net = relu_net_from_pwl([0.0, 1.0, 3.0], [0.0, 2.0, 1.0])
    >>> float(net(torch.tensor([[2.0]], dtype=torch.float64)))
    1.5
    """
    if extrapolation not in EXTRAPOLATIONS:
        raise ValueError(
            f"extrapolation: expected one of {EXTRAPOLATIONS}, received {extrapolation!r}"
        )
    values_arr = np.asarray(values, dtype=np.float64)
    if values_arr.ndim != 1:
        raise ValueError(
            f"values: expected a 1-D array (one value per knot), received shape {values_arr.shape}"
        )
    f = PiecewiseLinear(knots, values_arr)  # validates
    t, v, s = f.knots, f.values, f.slopes
    if extrapolation == "linear":
        # v0 + s0 (x - t0) + sum_{i=1}^{K-2} (s_i - s_{i-1}) relu(x - t_i),
        # with x - t0 = relu(x - t0) - relu(t0 - x).
        w1 = np.concatenate([[1.0, -1.0], np.ones(t.size - 2)])
        b1 = np.concatenate([[-t[0], t[0]], -t[1:-1]])
        w2 = np.concatenate([[s[0], -s[0]], np.diff(s)])
    else:
        # v0 + sum_{i=0}^{K-1} (s_i - s_{i-1}) relu(x - t_i), with s_{-1} = s_{K-1} = 0.
        w1 = np.ones(t.size)
        b1 = -t
        w2 = np.diff(np.concatenate([[0.0], s, [0.0]]))
    net = nn.Sequential(
        _linear(w1[:, None], b1, dtype), nn.ReLU(), _linear(w2[None, :], [v[0]], dtype)
    )
    return net


# ---------------------------------------------------------------- saturations as ReLU layers
def saturation_layers(lower, upper, *, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Elementwise ``clip(v, lower, upper)`` as exact ReLU layers.

    ``clip(v, lo, hi) = lo + relu(v - lo) - relu(v - hi)`` for ``lo <= hi`` (both finite).

    Parameters
    ----------
    lower, upper : array_like, shape (m,)
        Finite bounds with ``lower <= upper``.
    dtype : torch.dtype

    Returns
    -------
    nn.Sequential
        ``Linear(m, 2m) -> ReLU -> Linear(2m, m)``, frozen.
    """
    lo = np.atleast_1d(np.asarray(lower, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(upper, dtype=np.float64))
    lo, hi = np.broadcast_arrays(lo, hi)
    if lo.ndim != 1:
        raise ValueError(f"lower/upper: expected shape (m,), received {lo.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
        raise ValueError(
            f"lower/upper: expected finite bounds with lower <= upper, received {lo} and {hi}"
        )
    m = lo.size
    eye = np.eye(m)
    w1 = np.concatenate([eye, eye])
    b1 = np.concatenate([-lo, -hi])
    w2 = np.concatenate([eye, -eye], axis=1)
    return nn.Sequential(_linear(w1, b1, dtype), nn.ReLU(), _linear(w2, lo, dtype))


def saturated(controller: nn.Module, lower, upper) -> nn.Sequential:
    """``controller`` followed by its actuator saturation written as exact ReLU layers.

    The result computes ``clip(controller(y), lower, upper)`` and is an ``nn.Sequential`` made of
    the controller's layers (flattened if it is itself an ``nn.Sequential``) and
    :func:`saturation_layers`, in the controller's dtype, so that bound propagation, MILP
    encodings and :func:`pwl_from_relu_net` see the saturation.

    Parameters
    ----------
    controller : nn.Module
        Maps ``(..., p) -> (..., m)``.
    lower, upper : array_like, shape (m,)
        Finite actuator bounds (e.g. ``plant.input_lower``, ``plant.input_upper``).
    """
    from .simulate import controller_dtype

    dtype = controller_dtype(controller)
    layers = list(controller) if isinstance(controller, nn.Sequential) else [controller]
    return nn.Sequential(*layers, *saturation_layers(lower, upper, dtype=dtype))


# --------------------------------------------------------------------------- ReLU -> PWL
# A scalar-input network is walked with the registry (neuroctl.layers): a piecewise-linear
# activation kinks at its breakpoints; affine, identity and container layers add no kink.
_KINDS = ("affine", "identity", "container", "piecewise_linear")


def _flatten(net: nn.Module) -> list[tuple[nn.Module, tuple[float, ...] | None]]:
    """The ``(layer, breakpoints)`` of the network in order (None for ``nn.Linear``)."""
    kind, desc = describe(net, analysis="pwl_from_relu_net", kinds=_KINDS)
    if kind == "container":
        assert isinstance(net, nn.Sequential)  # the registry's only container
        out: list = []
        for layer in net:
            out += _flatten(layer)
        return out
    if kind == "affine":
        return [(net, None)]
    # piecewise-linear activations have breakpoints; identity layers (description None) none
    breaks = desc.breaks if isinstance(desc, PiecewiseLinearLayer) else ()
    return [(net, tuple(float(b) for b in breaks))]


def _insert_crossings(x: np.ndarray, z: np.ndarray, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Insert the points where a column of ``z`` (affine between points) crosses a threshold."""
    new_x = []
    for c in thresholds:
        a, b = z[:-1] - c, z[1:] - c  # (S, H) at the left/right ends of each segment
        cross = ((a < 0) & (b > 0)) | ((a > 0) & (b < 0))
        seg, _unit = np.nonzero(cross)
        if seg.size:
            aa, bb = a[cross], b[cross]
            frac = aa / (aa - bb)
            new_x.append(x[seg] + frac * (x[seg + 1] - x[seg]))
    if not new_x:
        return x, z
    cand = np.concatenate(new_x)
    cand = cand[(cand > x[0]) & (cand < x[-1])]
    xs = np.unique(np.concatenate([x, cand]))
    # z is affine on each original segment: interpolate every column at the new points
    idx = np.clip(np.searchsorted(x, xs, side="right") - 1, 0, x.size - 2)
    w = (xs - x[idx]) / (x[idx + 1] - x[idx])
    zs = z[idx] + w[:, None] * (z[idx + 1] - z[idx])
    exact = np.isin(xs, x)
    zs[exact] = z[np.searchsorted(x, xs[exact])]
    return xs, zs


def pwl_from_relu_net(net: nn.Module, lo: float, hi: float, *, simplify: bool = False):
    """Exact breakpoints and values of a scalar-input piecewise-linear network on ``[lo, hi]``.

    The breakpoints are pushed through the layers: after each affine layer every unit is affine
    between consecutive breakpoints, so an activation adds exactly the points where a unit's
    pre-activation crosses one of its kink thresholds (0 for ReLU). The values are the network's
    own float64 outputs at the breakpoints.

    Parameters
    ----------
    net : nn.Module
        ``nn.Sequential`` (nested allowed) of ``nn.Linear`` and piecewise-linear activations
        (those of :mod:`neuroctl.layers`: ReLU, LeakyReLU, PReLU, Hardtanh, ReLU6; Identity,
        Flatten, Dropout in eval mode); input size 1, any output size ``m``.
    lo, hi : float
        The interval, ``lo < hi``.
    simplify : bool
        Drop breakpoints where the slope does not change (a unit that kinks while the output
        does not). Default False: every kink of every unit is reported.

    Returns
    -------
    PiecewiseLinear
        Knots (``lo`` and ``hi`` included) and values, shape ``(K,)`` for ``m = 1`` else
        ``(K, m)``.
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"lo, hi: expected finite numbers with lo < hi, received {lo}, {hi}")
    layers = _flatten(net)
    first = next((la for la, br in layers if br is None), None)
    if first is None or first.in_features != 1:
        raise ValueError(
            "pwl_from_relu_net: expected a network with a scalar input (first Linear with "
            f"in_features=1), received in_features={None if first is None else first.in_features}"
        )
    x = np.array([lo, hi])
    z = x[:, None].copy()  # values of the current layer's units at the breakpoints
    for layer, breaks in layers:
        if breaks is None:
            assert isinstance(layer, nn.Linear)
            w = layer.weight.detach().to(torch.float64).cpu().numpy()
            b = (
                layer.bias.detach().to(torch.float64).cpu().numpy()
                if layer.bias is not None
                else np.zeros(w.shape[0])
            )
            z = z @ w.T + b
        else:
            x, z = _insert_crossings(x, z, breaks)
            with torch.no_grad():
                z = layer(torch.as_tensor(z)).numpy()
    # values: the network itself in float64 at the breakpoints
    net64 = copy.deepcopy(net).to(torch.float64)
    with torch.no_grad():
        y = net64(torch.as_tensor(x[:, None])).numpy()
    values = y[:, 0] if y.shape[1] == 1 else y
    out = PiecewiseLinear(x, values)
    return out.simplify() if simplify else out
