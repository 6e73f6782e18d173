"""The one registry of layer kinds that every network walk reads (DESIGN.md convention 8).

Each supported ``torch.nn`` layer type is described here once, by its *kind*:

* ``"affine"``: ``nn.Linear`` (``z = W x + b``);
* ``"identity"``: ``nn.Identity``, ``nn.Flatten`` on vectors, ``nn.Dropout`` in eval mode;
* ``"piecewise_linear"``: a continuous scalar piecewise-linear activation, given by its
  breakpoints ``b_0 < b_1 < ...``, one slope and one intercept per piece
  (:class:`PiecewiseLinear`; ReLU, LeakyReLU, PReLU, Hardtanh, ReLU6);
* ``"smooth"``: a smooth activation, given by ``f``, ``f'`` and bounds of ``sup|f'|`` and
  ``sup|f''|`` over the real line (:class:`Smooth`; Tanh, Sigmoid, Softplus, ELU, GELU, SiLU);
* ``"container"``: ``nn.Sequential``, walked child by child.

An analysis keeps only its small rule per kind; :func:`describe` gives the description of a
layer, and a layer that no analysis (or not this one) supports raises :class:`UnsupportedLayer`,
which names the layer and lists what is supported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn

__all__ = [
    "KINDS",
    "LAYER_KINDS",
    "PiecewiseLinear",
    "Smooth",
    "Description",
    "UnsupportedLayer",
    "describe",
    "layer_names",
]

#: The kinds of layer an analysis may support.
KINDS = ("affine", "identity", "piecewise_linear", "smooth", "container")


class UnsupportedLayer(TypeError, NotImplementedError):
    """A layer that an analysis does not support.

    Raised the same way by every network walk: the message names the analysis and the layer and
    lists the supported layer types. A ``TypeError`` (and, for callers written against the older
    bound-propagation error, a ``NotImplementedError``).

    Parameters
    ----------
    layer : nn.Module
        The offending layer.
    analysis : str
        Name of the analysis (``"local_gain"``, ``"bounds"``, ...).
    supported : iterable of str
        Names of the layer types the analysis supports.
    reason : str, optional
        Why this layer is not supported when its type is registered (e.g. Dropout in training).
    """

    def __init__(self, layer, analysis: str, supported: Iterable[str], reason: str = ""):
        self.layer = layer
        self.analysis = analysis
        self.supported = tuple(supported)
        self.reason = reason
        why = f": {reason}" if reason else ""
        super().__init__(
            f"{analysis}: unsupported layer {type(layer).__name__} ({layer!r}){why}; supported "
            f"layers: {', '.join(self.supported)}"
        )


@dataclass(frozen=True)
class PiecewiseLinear:
    """A continuous scalar piecewise-linear function.

    ``breaks`` has ``P - 1`` increasing breakpoints; ``slopes`` and ``intercepts`` have ``P``
    entries (piece ``p`` is ``slopes[p] * z + intercepts[p]``, on ``breaks[p-1] < z <=
    breaks[p]``). A slope may be an array of shape ``(k,)`` (one per channel, PReLU).
    """

    breaks: tuple
    slopes: tuple
    intercepts: tuple

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """Evaluate at ``z`` (shape ``(..., k)``)."""
        z = np.asarray(z, dtype=float)
        piece = (z[..., None] > np.asarray(self.breaks, dtype=float)).sum(-1)
        out = np.zeros(np.broadcast_shapes(z.shape, *(np.shape(s) for s in self.slopes)))
        for p, (s, c) in enumerate(zip(self.slopes, self.intercepts, strict=True)):
            out = np.where(piece == p, np.asarray(s, dtype=float) * z + float(c), out)
        return out


@dataclass(frozen=True)
class Smooth:
    """A smooth activation: ``value_and_derivative(z) -> (f(z), f'(z))`` for numpy or torch
    ``z``; ``lip >= sup|f'|`` and ``curv >= sup|f''|`` over the real line."""

    name: str
    value_and_derivative: Callable
    lip: float
    curv: float


Description = PiecewiseLinear | Smooth | None


def _sigmoid_d(z):
    s = expit(z) if isinstance(z, np.ndarray) else torch.sigmoid(z)
    return s, s * (1 - s)


def _tanh_d(z):
    t = np.tanh(z) if isinstance(z, np.ndarray) else torch.tanh(z)
    return t, 1 - t * t


def _autograd_d(fn: Callable) -> Callable:
    def d(z):
        is_np = isinstance(z, np.ndarray)
        zt = torch.from_numpy(z) if is_np else z
        with torch.enable_grad():
            zz = zt.detach().requires_grad_(True)
            y = fn(zz)
            (g,) = torch.autograd.grad(y.sum(), zz)
        y = y.detach()
        return (y.numpy(), g.numpy()) if is_np else (y, g)

    return d


# sup |f'| and sup |f''| over the real line (checked by brute force in the tests)
TANH_BOUNDS = (1.0, 4.0 / (3.0 * math.sqrt(3.0)))
SIGMOID_BOUNDS = (0.25, math.sqrt(3.0) / 18.0)
GELU_BOUNDS = (1.1290, 0.79789)  # exact erf form; the tanh form is within these too
SILU_BOUNDS = (1.0999, 0.5)


def _relu(m):
    return PiecewiseLinear((0.0,), (0.0, 1.0), (0.0, 0.0))


def _leaky(m):
    return PiecewiseLinear((0.0,), (float(m.negative_slope), 1.0), (0.0, 0.0))


def _prelu(m):
    a = m.weight.detach().to(torch.float64).reshape(-1).cpu().numpy().copy()
    return PiecewiseLinear((0.0,), (a if a.size > 1 else float(a[0]), 1.0), (0.0, 0.0))


def _hardtanh(m):
    lo, hi = float(m.min_val), float(m.max_val)
    return PiecewiseLinear((lo, hi), (0.0, 1.0, 0.0), (lo, 0.0, hi))


def _none(m):
    return None


class _Refused(Exception):
    """A registered layer type whose instance is not supported (the reason is the message)."""


def _flatten(m):
    if m.start_dim not in (1, -1):
        raise _Refused("Flatten is supported only on vector inputs (start_dim=1 or -1)")


def _dropout(m):
    if m.training:
        raise _Refused("Dropout is the identity only in eval mode (call .eval())")


#: Layer type -> (kind, description of an instance). Looked up along the type's MRO, exact type
#: first (ReLU6 is a Hardtanh subclass and has the Hardtanh description with its own bounds).
#: Each describing function reads the attributes of its own type (``m.beta`` of a Softplus), which
#: the lookup guarantees and one callable type cannot state, hence ``Any`` for the instance.
LAYER_KINDS: dict[type, tuple[str, Callable[[Any], Description]]] = {
    nn.Linear: ("affine", _none),
    nn.Identity: ("identity", _none),
    nn.Flatten: ("identity", _flatten),
    nn.Dropout: ("identity", _dropout),
    nn.Sequential: ("container", _none),
    nn.ReLU: ("piecewise_linear", _relu),
    nn.LeakyReLU: ("piecewise_linear", _leaky),
    nn.PReLU: ("piecewise_linear", _prelu),
    nn.ReLU6: ("piecewise_linear", _hardtanh),
    nn.Hardtanh: ("piecewise_linear", _hardtanh),
    nn.Tanh: ("smooth", lambda m: Smooth("tanh", _tanh_d, *TANH_BOUNDS)),
    nn.Sigmoid: ("smooth", lambda m: Smooth("sigmoid", _sigmoid_d, *SIGMOID_BOUNDS)),
    nn.Softplus: ("smooth", lambda m: Smooth("softplus", _autograd_d(m), 1.0, float(m.beta) / 4.0)),
    nn.ELU: (
        "smooth",
        lambda m: Smooth("elu", _autograd_d(m), max(1.0, float(m.alpha)), float(m.alpha)),
    ),
    nn.GELU: ("smooth", lambda m: Smooth("gelu", _autograd_d(m), *GELU_BOUNDS)),
    nn.SiLU: ("smooth", lambda m: Smooth("silu", _autograd_d(m), *SILU_BOUNDS)),
}


def layer_names(kinds: Iterable[str] = KINDS) -> list[str]:
    """Names of the registered layer types whose kind is in ``kinds``."""
    kinds = set(kinds)
    return [t.__name__ for t, (k, _) in LAYER_KINDS.items() if k in kinds]


def kind_of(layer: nn.Module) -> str | None:
    """The registered kind of ``layer``'s type (exact type, then its bases), or None."""
    for cls in type(layer).__mro__:
        hit = LAYER_KINDS.get(cls)
        if hit is not None:
            return hit[0]
    return None


def describe(
    layer: nn.Module, *, analysis: str = "layers", kinds: Iterable[str] = KINDS
) -> tuple[str, Description]:
    """The kind and description of ``layer``.

    Parameters
    ----------
    layer : nn.Module
    analysis : str, keyword-only
        Name of the calling analysis, used in the error message.
    kinds : iterable of str, keyword-only
        The kinds this analysis supports.

    Returns
    -------
    kind : str
        One of :data:`KINDS`.
    description : PiecewiseLinear, Smooth or None
        For piecewise-linear and smooth activations; None for the other kinds.

    Raises
    ------
    UnsupportedLayer
        When the layer's type is not registered, its kind is not in ``kinds``, or the instance
        is not supported (Dropout in training mode, Flatten of a non-vector).
    """
    kinds = tuple(kinds)
    supported = layer_names(kinds)
    for cls in type(layer).__mro__:
        hit = LAYER_KINDS.get(cls)
        if hit is None:
            continue
        kind, fn = hit
        if kind not in kinds:
            break
        try:
            return kind, fn(layer)
        except _Refused as err:
            raise UnsupportedLayer(layer, analysis, supported, str(err)) from None
    raise UnsupportedLayer(layer, analysis, supported)
