"""Closed-loop reachability and invariance of a plant with a neural controller.

The discrete closed loop ``x[k+1] = plant.step(x, sat(controller(plant.observe(x, r))), w)``
is evaluated on *affine forms* (zonotopes): ``x = c + G eps`` with ``eps`` in ``[-1, 1]^p``.
:class:`AffineForm` implements the array operations that plants are written with (``+ - * /``,
powers, ``sin``, ``cos``, ``tanh``, ``exp``, ``sqrt``, ``maximum``/``minimum``/``clip``, ``stack``,
``concat``, indexing) through numpy's ``__array_ufunc__``/``__array_function__`` protocols, so the
*same* pure plant function that simulates the plant is evaluated on sets (one definition of the
physics). Linear operations are exact; every nonlinear operation adds a new noise symbol that
bounds its linearization error (Taylor remainder with a sound bound of the second derivative over
the interval, the DeepZ relaxation for ReLU). The controller's layers are walked with a per-layer
rule table. Because the controller and the plant are evaluated on the same affine form, the
correlation between the state and the command is kept (a box-by-box interval evaluation loses it
and grows at every step).

Soundness: the sets enclose every trajectory of the float64 closed loop from the initial box
(for every disturbance in its bounds), up to floating-point rounding, which is covered by an
outward inflation of ``1e-12`` relative (+ ``1e-15`` absolute) per step. A float32 controller is
analysed in float64.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._json import json_dict
from ..plant import Plant

__all__ = [
    "AffineForm",
    "reach",
    "check_invariant",
    "ReachResult",
    "InvarianceResult",
    "closed_loop_step_sets",
]

_REL_INFLATE = 1e-12
_ABS_INFLATE = 1e-15


# ============================================================================ affine forms
class _Context:
    """Shared index space of the noise symbols of one computation."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0):
        self.n = n


def _const(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


class AffineForm:
    """A batch of zonotopes ``c + sum_j g_j eps_j``, ``eps_j`` in ``[-1, 1]``.

    Parameters
    ----------
    center : ndarray, shape (B, *s)
        Centre; axis 0 indexes independent sets (boxes analysed in parallel), they share noise
        symbol indices but never interact.
    gens : ndarray, shape (p, B, *s)
        Generators.
    ctx : _Context
        Noise-symbol counter shared by every form of one computation.
    """

    __array_priority__ = 1000

    def __init__(self, center, gens, ctx: _Context):
        self.c = np.asarray(center, dtype=np.float64)
        self.g = np.asarray(gens, dtype=np.float64)
        self.ctx = ctx

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_box(cls, lower, upper, ctx: _Context | None = None) -> AffineForm:
        """One noise symbol per coordinate of the box ``[lower, upper]``, shape ``(B, n)``."""
        lower, upper = _const(lower), _const(upper)
        ctx = ctx or _Context()
        c = 0.5 * (lower + upper)
        r = 0.5 * (upper - lower)
        return cls(c, np.zeros((ctx.n, *c.shape)), ctx)._with_noise(r)

    # ------------------------------------------------------------------ array attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.c.shape

    @property
    def ndim(self) -> int:
        return self.c.ndim

    @property
    def dtype(self):
        return np.dtype(np.float64)

    @property
    def rad(self) -> np.ndarray:
        """Radius ``sum_j |g_j|``, shape ``(B, *s)``."""
        return np.abs(self.g).sum(axis=0)

    @property
    def lower(self) -> np.ndarray:
        return self.c - self.rad

    @property
    def upper(self) -> np.ndarray:
        return self.c + self.rad

    def __len__(self) -> int:
        return self.c.shape[0]

    def __repr__(self) -> str:
        return f"AffineForm(shape={self.shape}, symbols={self.g.shape[0]})"

    # ------------------------------------------------------------------ helpers
    def _pad(self, p: int) -> np.ndarray:
        if self.g.shape[0] == p:
            return self.g
        extra = np.zeros((p - self.g.shape[0], *self.g.shape[1:]))
        return np.concatenate([self.g, extra], axis=0)

    def _new(self, c, g) -> AffineForm:
        return AffineForm(c, g, self.ctx)

    def _with_noise(self, err) -> AffineForm:
        """Add an independent error term ``err * eps_new`` per element (``err >= 0``)."""
        err = np.broadcast_to(_const(err), self.c.shape)
        b = self.c.shape[0]
        flat = err.reshape(b, -1)
        used = np.nonzero((flat > 0).any(axis=0))[0]
        g = self._pad(self.ctx.n)
        if used.size == 0:
            return self._new(self.c, g)
        k, size = used.size, flat.shape[1]
        new = np.zeros((k, b, size))
        new[np.arange(k), :, used] = flat[:, used].T
        self.ctx.n += k
        return self._new(self.c, np.concatenate([g, new.reshape(k, *self.c.shape)], axis=0))

    @staticmethod
    def _lift(a, ctx: _Context) -> AffineForm:
        if isinstance(a, AffineForm):
            return a
        c = _const(a)
        return AffineForm(c, np.zeros((0, *c.shape)), ctx)

    @staticmethod
    def _pair(a, b):
        p = max(a.g.shape[0], b.g.shape[0])
        nd = max(a.c.ndim, b.c.ndim)
        return _expand(a._pad(p), a.c.ndim, nd), _expand(b._pad(p), b.c.ndim, nd)

    def _affine_unary(self, slope, offset, err) -> AffineForm:
        """``slope * x + offset +- err`` elementwise (all of the form's shape)."""
        slope = _const(slope)
        out = self._new(slope * self.c + offset, slope * self.g)
        return out._with_noise(err)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        if not isinstance(other, AffineForm):
            c = self.c + _const(other)
            g = _expand(self.g, self.c.ndim, c.ndim)
            return self._new(c, np.broadcast_to(g, (len(g), *c.shape)))
        ga, gb = self._pair(self, other)
        return self._new(self.c + other.c, ga + gb)

    __radd__ = __add__

    def __neg__(self):
        return self._new(-self.c, -self.g)

    def __pos__(self):
        return self

    def __sub__(self, other):
        return self + (-other if isinstance(other, AffineForm) else -_const(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, AffineForm):
            o = _const(other)
            c = self.c * o
            return self._new(c, _expand(self.g, self.c.ndim, c.ndim) * o)
        ga, gb = self._pair(self, other)
        out = self._new(self.c * other.c, self.c * gb + other.c * ga)
        return out._with_noise(self.rad * other.rad)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, AffineForm):
            return self * (1.0 / _const(other))
        return self * other.reciprocal()

    def __rtruediv__(self, other):
        return self.reciprocal() * _const(other)

    def __pow__(self, p):
        p = float(_const(p))
        if p == int(p) and p >= 0:
            return self._int_power(int(p))
        lo = self.lower
        if np.any(lo <= 0):
            raise ValueError(
                f"AffineForm ** {p}: a non-integer or negative power needs a positive base; "
                f"received a set reaching down to {lo.min():.6g}"
            )
        m, r, up = self.c, self.rad, self.upper
        f2 = np.maximum(np.abs(p * (p - 1) * lo ** (p - 2)), np.abs(p * (p - 1) * up ** (p - 2)))
        return self._affine_unary(p * m ** (p - 1), m**p - p * m ** (p - 1) * m, 0.5 * r**2 * f2)

    def _int_power(self, n: int):
        if n == 0:
            return self._new(np.ones_like(self.c), np.zeros_like(self.g))
        if n == 1:
            return self
        half = self._int_power(n // 2).square()
        return half if n % 2 == 0 else half * self

    def __matmul__(self, w):
        w = _const(w)
        return self._new(self.c @ w, self.g @ w)

    def __rmatmul__(self, w):
        # w @ x for x of shape (B, n): applies w (k, n) to the last axis
        w = _const(w)
        return self._new(self.c @ w.T, self.g @ w.T)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self._new(self.c[key], self.g[(slice(None), *key)])

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return self._new(
            self.c.reshape(shape), self.g.reshape(len(self.g), *self.c.reshape(shape).shape)
        )

    def sum(self, axis=None, keepdims=False):
        if axis is None or axis == 0:
            raise ValueError("AffineForm.sum: summing over the batch axis 0 is not supported")
        return self._new(
            self.c.sum(axis=axis, keepdims=keepdims),
            self.g.sum(axis=axis if axis < 0 else axis + 1, keepdims=keepdims),
        )

    # ------------------------------------------------------------------ nonlinear functions
    def square(self):
        """``x**2`` exactly up to one error term: ``(sum g eps)^2`` lies in ``[0, r^2]``."""
        r2 = self.rad**2
        out = self._new(self.c**2 + 0.5 * r2, 2.0 * self.c * self.g)
        return out._with_noise(0.5 * r2)

    def reciprocal(self):
        lo, up = self.lower, self.upper
        if np.any((lo <= 0) & (up >= 0)):
            raise ValueError(
                "AffineForm: division by a set that contains 0 "
                f"(range [{lo.min():.6g}, {up.max():.6g}])"
            )
        # min-range linearization (1/x is convex on each side of 0): secant slope
        # -1/(l u); 1/x + x/(l u) ranges over [2/sqrt(l u), 1/l + 1/u] (for 0 < l <= u;
        # mirrored for u < 0).
        sgn = np.where(lo > 0, 1.0, -1.0)
        a, b = np.minimum(np.abs(lo), np.abs(up)), np.maximum(np.abs(lo), np.abs(up))
        slope = -1.0 / (a * b)
        hi_v = 1.0 / a + 1.0 / b
        lo_v = 2.0 / np.sqrt(a * b)
        return self._affine_unary(slope, sgn * 0.5 * (hi_v + lo_v), 0.5 * (hi_v - lo_v))

    def sin(self):
        m, r = self.c, self.rad
        f2 = np.minimum(1.0, np.abs(np.sin(m)) + r)
        return self._affine_unary(np.cos(m), np.sin(m) - np.cos(m) * m, 0.5 * r**2 * f2)

    def cos(self):
        m, r = self.c, self.rad
        f2 = np.minimum(1.0, np.abs(np.cos(m)) + r)
        return self._affine_unary(-np.sin(m), np.cos(m) + np.sin(m) * m, 0.5 * r**2 * f2)

    def tanh(self):
        m, r = self.c, self.rad
        t = np.tanh(m)
        f2 = 4.0 / (3.0 * math.sqrt(3.0))  # max |tanh''|
        return self._affine_unary(1 - t**2, t - (1 - t**2) * m, 0.5 * r**2 * f2)

    def exp(self):
        m, r = self.c, self.rad
        return self._affine_unary(np.exp(m), np.exp(m) * (1 - m), 0.5 * r**2 * np.exp(self.upper))

    def sqrt(self):
        lo = self.lower
        if np.any(lo <= 0):
            raise ValueError(
                f"AffineForm.sqrt: needs a positive set, received one reaching {lo.min():.6g}"
            )
        m, r = self.c, self.rad
        s = np.sqrt(m)
        return self._affine_unary(0.5 / s, 0.5 * s, 0.5 * r**2 * 0.25 * lo**-1.5)

    def relu(self):
        """DeepZ relaxation: exact where the sign is fixed, else ``lam x + mu +- mu``."""
        lo, up = self.lower, self.upper
        unstable = (lo < 0) & (up > 0)
        lam = np.where(up <= 0, 0.0, 1.0)
        lam = np.where(unstable, up / np.where(unstable, up - lo, 1.0), lam)
        mu = np.where(unstable, -0.5 * lam * lo, 0.0)
        return self._affine_unary(lam, mu, mu)

    def abs(self):
        lo, up = self.lower, self.upper
        sign = np.where(lo >= 0, 1.0, np.where(up <= 0, -1.0, 0.0))
        if np.all(sign != 0):
            return self * sign
        return self.relu() + (-self).relu()

    # ------------------------------------------------------------------ numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            return NotImplemented
        name = ufunc.__name__
        ctx = next(a.ctx for a in inputs if isinstance(a, AffineForm))
        binary = {
            "add": lambda a, b: _lift_form(a, ctx) + b,
            "subtract": lambda a, b: _lift_form(a, ctx) - b,
            "multiply": lambda a, b: _lift_form(a, ctx) * b,
            "true_divide": lambda a, b: _lift_form(a, ctx) / b,
            "divide": lambda a, b: _lift_form(a, ctx) / b,
            "maximum": _maximum,
            "minimum": _minimum,
            "power": lambda a, b: _lift_form(a, ctx) ** b,
            "matmul": _matmul,
        }
        unary = {
            "negative": lambda a: -a,
            "positive": lambda a: a,
            "sin": AffineForm.sin,
            "cos": AffineForm.cos,
            "tanh": AffineForm.tanh,
            "exp": AffineForm.exp,
            "sqrt": AffineForm.sqrt,
            "square": AffineForm.square,
            "absolute": AffineForm.abs,
            "reciprocal": AffineForm.reciprocal,
        }
        if name in unary and len(inputs) == 1:
            return unary[name](inputs[0])
        if name in binary and len(inputs) == 2:
            return binary[name](*inputs)
        raise TypeError(
            f"AffineForm: numpy function {name!r} is not supported on sets; supported: "
            f"{sorted(unary) + sorted(binary)}"
        )

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if name in ("stack", "concatenate", "concat"):
            return _join(name, *args, **kwargs)
        if name == "clip":
            return _clip(*args, **kwargs)
        if name == "sum":
            x, *rest = args
            return x.sum(*rest, **kwargs)
        if name == "reshape":
            x, shape = args
            return x.reshape(shape)
        if name == "where":
            return _where(*args)
        raise TypeError(
            f"AffineForm: numpy function {name!r} is not supported on sets; supported: "
            "stack, concat, concatenate, clip, sum, reshape, where (with a constant condition)"
        )

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # plants may fall back to torch for anything that is not a numpy array
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", str(func))
        if name in ("clamp", "clip"):
            x, *rest = args
            lo = rest[0] if len(rest) > 0 else kwargs.pop("min", None)
            hi = rest[1] if len(rest) > 1 else kwargs.pop("max", None)
            return _clip(x, _from_torch(lo), _from_torch(hi))
        if name in ("maximum", "max") and len(args) == 2:
            return _maximum(*(_from_torch(a) for a in args))
        if name in ("minimum", "min") and len(args) == 2:
            return _minimum(*(_from_torch(a) for a in args))
        if name in ("stack", "cat", "concat", "concatenate"):
            seq = [_from_torch(a) for a in args[0]]
            dim = args[1] if len(args) > 1 else kwargs.pop("dim", kwargs.pop("axis", 0))
            return _join("stack" if name == "stack" else "concat", seq, axis=dim)
        unary = {
            "sin": AffineForm.sin,
            "cos": AffineForm.cos,
            "tanh": AffineForm.tanh,
            "exp": AffineForm.exp,
            "sqrt": AffineForm.sqrt,
            "square": AffineForm.square,
            "abs": AffineForm.abs,
            "relu": AffineForm.relu,
            "reciprocal": AffineForm.reciprocal,
        }
        if name in unary and len(args) == 1 and not kwargs:
            return unary[name](args[0])
        raise TypeError(
            f"AffineForm: torch function {name!r} is not supported on sets; supported: clamp, "
            f"clip, maximum, minimum, stack, cat, {', '.join(sorted(unary))}"
        )


def _expand(g: np.ndarray, nd_from: int, nd_to: int) -> np.ndarray:
    """Generators ``(p, *s)`` of a value of ndim ``nd_from`` aligned for ndim ``nd_to``."""
    if nd_to <= nd_from:
        return g
    return g.reshape(g.shape[0], *((1,) * (nd_to - nd_from)), *g.shape[1:])


def _from_torch(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def _lift_form(a, ctx):
    return AffineForm._lift(a, ctx)


def _matmul(a, b):
    if isinstance(a, AffineForm) and not isinstance(b, AffineForm):
        return a @ b
    if isinstance(b, AffineForm) and not isinstance(a, AffineForm):
        return b.__rmatmul__(a)
    raise TypeError("AffineForm: the product of two sets with @ is not supported")


def _relu(x):
    return x.relu() if isinstance(x, AffineForm) else np.maximum(_const(x), 0.0)


def _maximum(a, b):
    if not isinstance(a, AffineForm):
        a, b = b, a
    if isinstance(b, AffineForm):
        return b + (a - b).relu()
    b = _const(b)
    finite = np.isfinite(b)
    bf = np.where(finite, b, 0.0)
    res = (a - bf).relu() + bf
    return res if finite.all() else _where(finite, res, a)


def _minimum(a, b):
    if not isinstance(a, AffineForm):
        a, b = b, a
    if isinstance(b, AffineForm):
        return a - (a - b).relu()
    b = _const(b)
    finite = np.isfinite(b)
    bf = np.where(finite, b, 0.0)
    res = bf - (bf - a).relu()
    return res if finite.all() else _where(finite, res, a)


def _clip(x, a_min=None, a_max=None, **kwargs):
    lo = kwargs.pop("min", None)
    hi = kwargs.pop("max", None)
    novalue = getattr(np, "_NoValue", None)
    lo = a_min if lo is None or lo is novalue else lo
    hi = a_max if hi is None or hi is novalue else hi
    lo = None if lo is novalue else lo
    hi = None if hi is novalue else hi
    kwargs = {k: v for k, v in kwargs.items() if v is not novalue and v is not None}
    if kwargs:
        raise TypeError(f"AffineForm clip: unsupported options {sorted(kwargs)}")
    if lo is not None:
        x = _maximum(x, lo)
    if hi is not None:
        x = _minimum(x, hi)
    return x


def _where(cond, a, b):
    if isinstance(cond, AffineForm):
        raise TypeError("AffineForm: where() with a set-valued condition is not supported")
    cond = _const(cond).astype(bool)
    ctx = next(v.ctx for v in (a, b) if isinstance(v, AffineForm))
    a, b = AffineForm._lift(a, ctx), AffineForm._lift(b, ctx)
    shape = np.broadcast_shapes(cond.shape, a.c.shape, b.c.shape)
    a, b = a + np.zeros(shape), b + np.zeros(shape)
    ga, gb = AffineForm._pair(a, b)
    return AffineForm(np.where(cond, a.c, b.c), np.where(cond, ga, gb), ctx)


def _join(name, arrays, axis=0, **kwargs):
    if kwargs:
        raise TypeError(f"AffineForm {name}: unsupported options {sorted(kwargs)}")
    arrays = list(arrays)
    ctx = next(a.ctx for a in arrays if isinstance(a, AffineForm))
    forms = [AffineForm._lift(a, ctx) for a in arrays]
    p = max(f.g.shape[0] for f in forms)
    shape0 = forms[0].c.shape[0]
    cs, gs = [], []
    for f in forms:
        c = f.c if f.c.shape[:1] == (shape0,) else np.broadcast_to(f.c, (shape0, *f.c.shape[1:]))
        cs.append(c)
        gs.append(np.broadcast_to(f._pad(p), (p, *c.shape)))
    gax = axis if axis < 0 else axis + 1  # the generators lead with the symbol axis
    if name == "stack":
        c, g = np.stack(cs, axis=axis), np.stack(gs, axis=gax)
    else:
        c, g = np.concatenate(cs, axis=axis), np.concatenate(gs, axis=gax)
    return AffineForm(c, g, ctx)


# ============================================================================ controllers
def _rule_linear(layer: nn.Linear, x):
    w = _const(layer.weight)
    out = x @ w.T
    return out + _const(layer.bias) if layer.bias is not None else out


def _rule_leaky(layer: nn.LeakyReLU, x):
    a = float(layer.negative_slope)
    return x * a + _relu(x) * (1.0 - a)


def _rule_sigmoid(layer, x):
    t = (x * 0.5).tanh() if isinstance(x, AffineForm) else np.tanh(0.5 * x)
    return t * 0.5 + 0.5


_LAYER_RULES: dict[type, Callable] = {
    nn.Linear: _rule_linear,
    nn.ReLU: lambda layer, x: _relu(x),
    nn.LeakyReLU: _rule_leaky,
    nn.Hardtanh: lambda layer, x: _clip(x, float(layer.min_val), float(layer.max_val)),
    nn.ReLU6: lambda layer, x: _clip(x, 0.0, 6.0),
    nn.Identity: lambda layer, x: x,
    nn.Flatten: lambda layer, x: x,
    nn.Tanh: lambda layer, x: x.tanh() if isinstance(x, AffineForm) else np.tanh(x),
    nn.Sigmoid: _rule_sigmoid,
}


def controller_on_sets(controller: nn.Module, y: AffineForm) -> AffineForm:
    """Evaluate a feed-forward controller on an affine form with the per-layer rule table."""
    if isinstance(controller, nn.Sequential):
        for layer in controller:
            y = controller_on_sets(layer, y)
        return y
    rule = _LAYER_RULES.get(type(controller))
    if rule is None:
        raise TypeError(
            f"reach: unsupported controller layer {type(controller).__name__}; supported: "
            f"Sequential, {', '.join(sorted(t.__name__ for t in _LAYER_RULES))}"
        )
    return rule(controller, y)


# ============================================================================ closed loop
def _reduce(x: AffineForm, max_generators: int) -> AffineForm:
    """Order reduction (Girard): keep the largest generators per set, box the others.

    Returns a form in a fresh context with at most ``max_generators`` symbols, inflated
    outward to cover the floating-point rounding of the step.
    """
    c, g = x.c, x.g  # (B, n), (p, B, n)
    p, b, n = g.shape
    keep = max(0, min(p, max_generators - n))
    absg = np.abs(g)
    if keep < p:
        score = absg.sum(axis=2) - absg.max(axis=2)  # (p, B)
        order = np.argsort(-score, axis=0)
        kept_idx, rest_idx = order[:keep], order[keep:]
        kept = np.take_along_axis(g, kept_idx[:, :, None], axis=0)
        boxed = np.take_along_axis(absg, rest_idx[:, :, None], axis=0).sum(axis=0)
    else:
        kept, boxed = g, np.zeros((b, n))
    boxed = boxed + _REL_INFLATE * (np.abs(c) + absg.sum(axis=0)) + _ABS_INFLATE
    diag = np.zeros((n, b, n))
    diag[np.arange(n), :, np.arange(n)] = boxed.T
    gen = np.concatenate([kept, diag], axis=0)
    return AffineForm(c, gen, _Context(gen.shape[0]))


def closed_loop_step_sets(
    plant: Plant,
    controller: nn.Module,
    x: AffineForm,
    *,
    reference=None,
    w_lower=None,
    w_upper=None,
) -> tuple[AffineForm, AffineForm]:
    """One step of the closed loop on sets.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
    x : AffineForm, shape (B, n)
    reference : ndarray, shape (n_ref,) or (B, n_ref), optional
    w_lower, w_upper : ndarray, shape (n_w,), optional
        Disturbance bounds (fresh noise symbols at every step).

    Returns
    -------
    x_next : AffineForm, shape (B, n)
    u : AffineForm, shape (B, m)
        The command before saturation.
    """
    b = x.shape[0]
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = np.broadcast_to(_const(ref), (b, plant.n_references))
    y = plant.observe(x, r) if r is not None else plant.observe(x)
    y = AffineForm._lift(y, x.ctx)
    u = controller_on_sets(controller, y)
    w = None
    if plant.n_disturbances:
        lo = np.zeros(plant.n_disturbances) if w_lower is None else _const(w_lower)
        hi = np.zeros(plant.n_disturbances) if w_upper is None else _const(w_upper)
        lo, hi = (
            np.broadcast_to(lo, (b, plant.n_disturbances)),
            np.broadcast_to(hi, (b, plant.n_disturbances)),
        )
        w = AffineForm.from_box(lo, hi, x.ctx)
    x_next = plant.step(x, u, w) if w is not None else plant.step(x, u)
    return AffineForm._lift(x_next, x.ctx), u


# ============================================================================ results
@dataclass
class ReachResult:
    """Over-approximations of the reachable states of a closed loop, step by step.

    Attributes
    ----------
    times : ndarray, shape (T+1,)
        ``k * dt`` [s].
    lower, upper : ndarray, shape (T+1, n)
        Hull over all initial sub-boxes of the reachable set at step ``k`` (row 0 is the initial
        box).
    box_lower, box_upper : ndarray, shape (B, T+1, n)
        Reach boxes of each initial sub-box.
    initial_lower, initial_upper : ndarray, shape (B, n)
        The initial sub-boxes (a partition of the initial box).
    state_names : tuple of str
    method : str
    time : float
        Wall-clock seconds.
    witnesses : dict or None
        ``method="milp"``: for ``(box, step k, state i, "lower" | "upper")`` the initial state
        ``(n,)`` and disturbances ``(k, n_w)`` of the MILP solution attaining the bound (a
        trajectory to check it by simulation).
    """

    times: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    box_lower: np.ndarray
    box_upper: np.ndarray
    initial_lower: np.ndarray
    initial_upper: np.ndarray
    state_names: tuple[str, ...]
    method: str
    time: float = 0.0
    witnesses: dict | None = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        """Number of steps ``T``."""
        return self.lower.shape[0] - 1

    @property
    def n_boxes(self) -> int:
        """Number of initial sub-boxes ``B``."""
        return self.box_lower.shape[0]

    def contains(self, states, *, atol: float = 0.0) -> np.ndarray:
        """Whether trajectories lie in the reach hull at every step.

        Parameters
        ----------
        states : array_like, shape (..., T'+1, n), ``T' <= T``
            Trajectories starting at step 0.
        atol : float
            Slack.

        Returns
        -------
        ndarray of bool, shape (...)
        """
        s = np.asarray(states, dtype=np.float64)
        t = s.shape[-2]
        lo, up = self.lower[:t], self.upper[:t]
        return np.all((s >= lo - atol) & (s <= up + atol), axis=(-2, -1))

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {
            "times": self.times.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "initial_lower": self.initial_lower.tolist(),
            "initial_upper": self.initial_upper.tolist(),
            "state_names": list(self.state_names),
            "method": self.method,
            "time": self.time,
        }

    def plot(self, *, ax=None, states=None, trajectories=None):
        """Reach bounds of each state against time (shaded), optionally with trajectories.

        Parameters
        ----------
        states : sequence of int, optional
            Which states (default all).
        trajectories : array_like, shape (N, T+1, n), optional
            Simulated trajectories drawn on top.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        idx = list(range(self.lower.shape[1])) if states is None else list(states)
        if ax is None:
            fig, axes = plt.subplots(
                len(idx), 1, sharex=True, squeeze=False, figsize=(7, 1.9 * len(idx) + 0.6)
            )
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        for a, i in zip(axes, idx):
            a.fill_between(
                self.times,
                self.lower[:, i],
                self.upper[:, i],
                alpha=0.3,
                label=f"reach ({self.method})",
            )
            if trajectories is not None:
                tr = np.asarray(trajectories)
                a.plot(self.times[: tr.shape[-2]], tr[..., i].T, lw=0.5, color="k", alpha=0.4)
            a.set_ylabel(self.state_names[i])
        axes[0].legend(loc="upper right")
        axes[-1].set_xlabel("time [s]")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        w = self.upper[-1] - self.lower[-1]
        with np.printoptions(precision=4, suppress=True):
            return (
                f"ReachResult(method={self.method!r}, steps={self.steps}, boxes={self.n_boxes}, "
                f"final width={w}, time={self.time:.3g}s)"
            )


@dataclass
class InvarianceResult:
    """Outcome of :func:`check_invariant`.

    Attributes
    ----------
    holds : bool or None
        True: proved (every state reachable from the initial set stays in the safe box for the
        horizon; with ``steps=None``, the box is forward invariant). False: a simulated trajectory
        leaves the box (``counterexample``). None: not decided within ``max_boxes``.
    counterexample : Trajectory or None
        A trajectory of :func:`neuroctl.simulate` that leaves the safe box.
    exit_step : int or None
        First step at which the counterexample is outside the box.
    reach : ReachResult or None
        Reach sets of the proved sub-boxes (all of them when ``holds`` is True).
    lower, upper : ndarray, shape (n,)
        The safe box.
    n_boxes : int
        Initial sub-boxes analysed (including the ones that were split).
    time : float
    """

    holds: bool | None
    counterexample: object | None
    exit_step: int | None
    reach: ReachResult | None
    lower: np.ndarray
    upper: np.ndarray
    n_boxes: int
    time: float = 0.0
    notes: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.holds)

    @json_dict
    def to_dict(self) -> dict:
        return {
            "holds": self.holds,
            "exit_step": self.exit_step,
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "n_boxes": self.n_boxes,
            "time": self.time,
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
            "notes": list(self.notes),
        }

    def plot(self, *, ax=None):
        """Reach sets (if any) with the safe box and the counterexample (if any)."""
        import matplotlib.pyplot as plt

        n = self.lower.size
        if self.reach is not None:
            fig = self.reach.plot(ax=ax)
            axes = fig.axes
        else:
            fig, axes = (
                plt.subplots(n, 1, sharex=True, squeeze=False)
                if ax is None
                else (np.atleast_1d(ax)[0].figure, np.atleast_1d(ax)[:, None])
            )
            axes = list(np.asarray(axes)[:, 0])
        if self.counterexample is not None:
            ce = self.counterexample
            for i, a in enumerate(axes[:n]):
                a.plot(ce.times, ce.states[..., i], color="r", lw=1.5, label="counterexample")
        for i, a in enumerate(axes[:n]):
            for v in (self.lower[i], self.upper[i]):
                if np.isfinite(v):
                    a.axhline(v, color="k", ls="--", lw=1)
        return fig

    def __repr__(self) -> str:
        verdict = {True: "proved", False: "violated", None: "unknown"}[self.holds]
        extra = f", exit_step={self.exit_step}" if self.exit_step is not None else ""
        return f"InvarianceResult({verdict}, boxes={self.n_boxes}{extra}, time={self.time:.3g}s)"


# ============================================================================ reach
_METHODS = ("zonotope", "interval", "milp")


def _box_arg(v, n: int, what: str, *, finite: bool = True) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape not in ((n,), ()):
        raise ValueError(f"{what}: expected shape ({n},), received {a.shape}")
    a = np.broadcast_to(a, (n,)).copy()
    if np.isnan(a).any() or (finite and not np.isfinite(a).all()):
        raise ValueError(f"{what}: expected finite numbers, received {a}")
    return a


def _grid(lo: np.ndarray, hi: np.ndarray, splits) -> tuple[np.ndarray, np.ndarray]:
    n = lo.size
    s = np.broadcast_to(np.asarray(splits, dtype=int), (n,))
    if np.any(s < 1):
        raise ValueError(f"splits: expected positive ints, received {splits!r}")
    edges = [np.linspace(lo[i], hi[i], s[i] + 1) for i in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in s], indexing="ij"), -1).reshape(-1, n)
    blo = np.stack([edges[i][idx[:, i]] for i in range(n)], -1)
    bhi = np.stack([edges[i][idx[:, i] + 1] for i in range(n)], -1)
    return blo, bhi


def _check_plant_controller(plant, controller):
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")
    if not isinstance(controller, nn.Module):
        raise TypeError(
            f"controller: expected a torch.nn.Module, received {type(controller).__name__}"
        )


_DIVERGED = 1e12  # a set wider than this is reported as unbounded


def _mark_diverged(x: AffineForm, diverged: np.ndarray) -> np.ndarray:
    """Flag sets whose bounds are not finite or wider than ``_DIVERGED``; neutralise them."""
    with np.errstate(all="ignore"):
        lo, up = x.lower, x.upper
        bad = ~np.all(np.isfinite(lo) & np.isfinite(up) & (up - lo < _DIVERGED), axis=1)
    diverged = diverged | bad
    if diverged.any():
        x.c = np.where(diverged[:, None], 0.0, x.c)
        x.g = np.where(diverged[None, :, None], 0.0, x.g)
    return diverged


def _bounds_out(x: AffineForm, diverged: np.ndarray):
    lo = np.where(diverged[:, None], -np.inf, x.lower)
    up = np.where(diverged[:, None], np.inf, x.upper)
    return lo, up


def _reach_zonotope(plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen):
    x = AffineForm.from_box(blo, bhi)
    lowers, uppers = [blo], [bhi]
    diverged = np.zeros(blo.shape[0], dtype=bool)
    for _ in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):
            xn, _u = closed_loop_step_sets(
                plant, controller, x, reference=reference, w_lower=wlo, w_upper=whi
            )
            x = _reduce(xn, max_gen)
        diverged = _mark_diverged(x, diverged)
        lo, up = _bounds_out(x, diverged)
        lowers.append(lo)
        uppers.append(up)
    return np.stack(lowers, 1), np.stack(uppers, 1)


def _reach_interval(plant, controller, blo, bhi, steps, reference, wlo, whi):
    """Box-by-box: CROWN bounds of the controller over the observation box, the plant on
    affine forms with an independent command (the state-command correlation is lost)."""
    from .bounds import crown_bounds

    lo, hi = blo, bhi
    lowers, uppers = [lo], [hi]
    b = lo.shape[0]
    diverged = np.zeros(b, dtype=bool)
    for _ in range(steps):
        ctx = _Context()
        lo_s = np.where(diverged[:, None], 0.0, lo)
        hi_s = np.where(diverged[:, None], 0.0, hi)
        with np.errstate(over="ignore", invalid="ignore"):
            x = AffineForm.from_box(lo_s, hi_s, ctx)
            r = None
            if plant.n_references:
                ref = plant.nominal_reference if reference is None else reference
                r = np.broadcast_to(_const(ref), (b, plant.n_references))
            y = AffineForm._lift(plant.observe(x, r) if r is not None else plant.observe(x), ctx)
            ul, uu = crown_bounds(controller, y.lower, y.upper)
            u = AffineForm.from_box(
                np.asarray(ul).reshape(b, -1), np.asarray(uu).reshape(b, -1), ctx
            )
            if plant.n_disturbances:
                w = AffineForm.from_box(
                    np.broadcast_to(wlo, (b, plant.n_disturbances)),
                    np.broadcast_to(whi, (b, plant.n_disturbances)),
                    ctx,
                )
                xn = plant.step(x, u, w)
            else:
                xn = plant.step(x, u)
            xn = _reduce(AffineForm._lift(xn, ctx), 0)
        diverged = _mark_diverged(xn, diverged)
        lo, hi = _bounds_out(xn, diverged)
        lowers.append(lo)
        uppers.append(hi)
    return np.stack(lowers, 1), np.stack(uppers, 1)


def reach(
    plant: Plant,
    controller: nn.Module,
    x_lower,
    x_upper,
    steps: int,
    *,
    reference=None,
    disturbance_lower=None,
    disturbance_upper=None,
    splits=1,
    method: str = "zonotope",
    max_generators: int | None = None,
    linear: bool | None = None,
    time_limit: float | None = None,
) -> ReachResult:
    """Sound over-approximation of the states reachable in ``1..steps`` steps of the closed loop.

    The closed loop is ``x[k+1] = plant.step(x[k], controller(plant.observe(x[k], r)), w[k])``;
    ``plant.step`` applies the actuator saturation.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
        Feed-forward network (Linear, ReLU, LeakyReLU, Hardtanh, ReLU6, Tanh, Sigmoid, Identity
        layers).
    x_lower, x_upper : array_like, shape (n,)
        Initial box.
    steps : int
        Horizon ``T``.
    reference : array_like, shape (n_ref,), optional
        Reference (default the plant's nominal one).
    disturbance_lower, disturbance_upper : array_like, shape (n_w,), optional
        Bounds of the disturbance, which may take any value in them at every step (default 0).
    splits : int or sequence of int
        Grid of initial sub-boxes per state (``splits=4`` on 2 states: 16 sub-boxes analysed in
        parallel). Finer splitting tightens the sets of nonlinear loops.
    method : {"zonotope", "interval"}
        ``"zonotope"``: affine arithmetic through observation, controller, saturation and plant
        (see the module docstring). ``"interval"``: box propagation with CROWN bounds of the
        controller over the observation box (loses the state-command correlation, so the sets
        grow at every step: a baseline). Sets that stop being finite (or grow wider than 1e12)
        are reported as ``±inf``. ``"milp"``: for affine plants, exact bounds of every state at
        every step from big-M MILPs (:mod:`neuroctl.verify.milp`, HiGHS) of the closed loop
        unrolled into one ReLU network ``[x0, w_0, ..] -> x_k`` (the actuator saturation as
        ReLU layers); the MILP's proven dual bound is reported, so the sets are sound even at
        the solver's optimality gap (1e-4 relative by default). Cost grows with the horizon.
    max_generators : int, optional
        Zonotope order limit per set (default ``20 n``).
    linear : bool, optional
        ``method="milp"`` only: the plant step and observation are affine in ``(x, u, w)``.
        None checks it numerically (an error if not); True skips the check.
    time_limit : float, optional
        ``method="milp"``: seconds per MILP solve; on a time-out the solver's proven bound is
        used (still sound, possibly not tight).

    Returns
    -------
    ReachResult
    """
    _check_plant_controller(plant, controller)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, received {method!r}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps: expected a non-negative int, received {steps!r}")
    n = plant.n_states
    lo = _box_arg(x_lower, n, "x_lower")
    hi = _box_arg(x_upper, n, "x_upper")
    if np.any(lo > hi):
        raise ValueError(f"x_lower, x_upper: expected lower <= upper, received {lo} and {hi}")
    nw = plant.n_disturbances
    wlo = np.zeros(nw) if disturbance_lower is None else _box_arg(disturbance_lower, nw, "w")
    whi = np.zeros(nw) if disturbance_upper is None else _box_arg(disturbance_upper, nw, "w")
    if np.any(wlo > whi):
        raise ValueError(f"disturbance bounds: expected lower <= upper, received {wlo} and {whi}")
    max_gen = 20 * n if max_generators is None else int(max_generators)
    t0 = time.perf_counter()
    witnesses = None
    blo, bhi = _grid(lo, hi, splits)
    if method == "zonotope":
        L, U = _reach_zonotope(plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen)
    elif method == "interval":
        L, U = _reach_interval(plant, controller, blo, bhi, steps, reference, wlo, whi)
    else:
        L, U, witnesses = _reach_milp(
            plant, controller, blo, bhi, steps, reference, wlo, whi, linear, time_limit, max_gen
        )
    return ReachResult(
        times=np.arange(steps + 1) * plant.dt,
        lower=L.min(axis=0),
        upper=U.max(axis=0),
        box_lower=L,
        box_upper=U,
        initial_lower=blo,
        initial_upper=bhi,
        state_names=plant.state_names,
        method=method,
        time=time.perf_counter() - t0,
        witnesses=witnesses,
    )


def _reach_boxes_guarded(plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen):
    """Zonotope reach of a batch; a set on which an operation is undefined (e.g. a division by
    a set containing 0) gets unbounded reach sets instead of failing the whole batch."""
    try:
        return _reach_zonotope(plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen)
    except ValueError:
        if blo.shape[0] == 1:
            n = blo.shape[1]
            L = np.concatenate([blo[:, None], np.full((1, steps, n), -np.inf)], axis=1)
            U = np.concatenate([bhi[:, None], np.full((1, steps, n), np.inf)], axis=1)
            return L, U
        parts = [
            _reach_boxes_guarded(
                plant,
                controller,
                blo[i : i + 1],
                bhi[i : i + 1],
                steps,
                reference,
                wlo,
                whi,
                max_gen,
            )
            for i in range(blo.shape[0])
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _first_exit(states: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """First step outside ``[lo, hi]`` per trajectory (-1 if never), states ``(N, T+1, n)``."""
    out = np.any((states < lo) | (states > hi), axis=-1)  # (N, T+1)
    first = np.argmax(out, axis=-1)
    return np.where(out.any(axis=-1), first, -1)


def _falsify(plant, controller, x0, steps, reference, wlo, whi, rng, lo, hi):
    """Simulate from ``x0`` (N, n) with random disturbances; a leaving trajectory or None."""
    from ..simulate import simulate

    nw = plant.n_disturbances
    w = None
    if nw:
        w = torch.as_tensor(rng.uniform(wlo, whi, (x0.shape[0], max(steps, 1), nw)))
    dist = None if w is None else (lambda k, x, w=w: w[:, k])
    with torch.no_grad():
        tr = simulate(plant, controller, x0, steps, reference=reference, disturbance=dist)
    first = _first_exit(tr.states, lo, hi)
    bad = np.nonzero(first >= 0)[0]
    if bad.size == 0:
        return None
    i = int(bad[0])
    dist_i = None if w is None else (lambda k, x, wi=w[i : i + 1]: wi[:, k])
    with torch.no_grad():
        ce = simulate(
            plant, controller, x0[i : i + 1], steps, reference=reference, disturbance=dist_i
        )
    exit_step = int(_first_exit(ce.states, lo, hi)[0])
    if exit_step < 0:  # pragma: no cover - the batch and single runs are the same arithmetic
        return None
    return ce, exit_step


def check_invariant(
    plant: Plant,
    controller: nn.Module,
    lower,
    upper,
    *,
    initial_lower=None,
    initial_upper=None,
    steps: int | None = None,
    reference=None,
    disturbance_lower=None,
    disturbance_upper=None,
    max_boxes: int = 1024,
    samples: int = 512,
    seed: int = 0,
    max_generators: int | None = None,
) -> InvarianceResult:
    """Prove that the closed loop stays in the box ``[lower, upper]``, or find a trajectory that
    leaves it.

    Two questions, chosen by ``steps``:

    - ``steps=None``: is the box *forward invariant*? Every state of the box must be mapped into
      the box by one step (then, by induction, every trajectory that starts in it stays in it
      for ever). The box must be bounded.
    - ``steps=T``: from every state of the initial box ``[initial_lower, initial_upper]``, do all
      trajectories stay in the safe box ``[lower, upper]`` for ``T`` steps? The safe box may have
      infinite sides (unconstrained states).

    First ``samples`` random initial states (and the corners) are simulated with
    :func:`neuroctl.simulate` (with random disturbances in their bounds): a trajectory that
    leaves the box is returned as a counterexample. Otherwise the initial set is covered with
    sub-boxes whose reach sets (:func:`reach`, zonotope method) are checked; a sub-box whose
    sets leave the safe box is bisected along its relatively widest side, up to ``max_boxes``
    sub-boxes (its centre is simulated as well).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
    lower, upper : array_like, shape (n,)
        The safe (or candidate invariant) box; ``±inf`` allowed when ``steps`` is given.
    initial_lower, initial_upper : array_like, shape (n,), optional
        Initial box (``steps`` given); default the safe box.
    steps : int, optional
        Horizon; None for forward invariance.
    reference : array_like, shape (n_ref,), optional
    disturbance_lower, disturbance_upper : array_like, shape (n_w,), optional
        The disturbance may take any value in these bounds at every step.
    max_boxes : int
        Budget of initial sub-boxes.
    samples : int
        Random simulations for the counterexample search.
    seed : int
        Seed of the sampling.
    max_generators : int, optional
        Zonotope order limit (see :func:`reach`).

    Returns
    -------
    InvarianceResult
    """
    _check_plant_controller(plant, controller)
    n = plant.n_states
    lo = _box_arg(lower, n, "lower", finite=False)
    hi = _box_arg(upper, n, "upper", finite=False)
    if np.any(lo > hi):
        raise ValueError(f"lower, upper: expected lower <= upper, received {lo} and {hi}")
    if steps is None:
        if initial_lower is not None or initial_upper is not None:
            raise ValueError(
                "initial_lower/initial_upper: only with steps=T; with steps=None the box "
                "itself is the initial set (forward invariance)"
            )
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(
                f"lower, upper: forward invariance needs a bounded box, received {lo}, {hi}"
            )
        horizon, ilo, ihi = 1, lo.copy(), hi.copy()
    else:
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps: expected a positive int or None, received {steps!r}")
        horizon = int(steps)
        ilo = lo.copy() if initial_lower is None else _box_arg(initial_lower, n, "initial_lower")
        ihi = hi.copy() if initial_upper is None else _box_arg(initial_upper, n, "initial_upper")
        if not (np.isfinite(ilo).all() and np.isfinite(ihi).all()):
            raise ValueError(
                f"initial_lower/initial_upper: expected a bounded box, received {ilo}, {ihi}"
            )
        if np.any(ilo > ihi):
            raise ValueError(f"initial box: expected lower <= upper, received {ilo} and {ihi}")
    nw = plant.n_disturbances
    wlo = np.zeros(nw) if disturbance_lower is None else _box_arg(disturbance_lower, nw, "w")
    whi = np.zeros(nw) if disturbance_upper is None else _box_arg(disturbance_upper, nw, "w")
    max_gen = 20 * n if max_generators is None else int(max_generators)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()

    def done(holds, ce=None, exit_step=None, proved=None, n_boxes=1, notes=()):
        rr = None
        if proved:
            L = np.concatenate([p[2] for p in proved])
            U = np.concatenate([p[3] for p in proved])
            rr = ReachResult(
                times=np.arange(horizon + 1) * plant.dt,
                lower=L.min(axis=0),
                upper=U.max(axis=0),
                box_lower=L,
                box_upper=U,
                initial_lower=np.concatenate([p[0] for p in proved]),
                initial_upper=np.concatenate([p[1] for p in proved]),
                state_names=plant.state_names,
                method="zonotope",
                time=time.perf_counter() - t0,
            )
        return InvarianceResult(
            holds=holds,
            counterexample=ce,
            exit_step=exit_step,
            reach=rr,
            lower=lo,
            upper=hi,
            n_boxes=n_boxes,
            time=time.perf_counter() - t0,
            notes=list(notes),
        )

    # 1. falsification by simulation
    corners = np.array(np.meshgrid(*zip(ilo, ihi), indexing="ij")).reshape(n, -1).T
    x0 = np.concatenate([corners, rng.uniform(ilo, ihi, (max(samples, 0), n))])
    found = _falsify(plant, controller, x0, horizon, reference, wlo, whi, rng, lo, hi)
    if found is not None:
        return done(False, *found, n_boxes=0)

    # 2. proof by reach sets with bisection of the initial set
    width0 = np.where(ihi > ilo, ihi - ilo, 1.0)
    queue_lo, queue_hi = ilo[None], ihi[None]
    proved: list = []
    total = 1
    while queue_lo.shape[0]:
        L, U = _reach_boxes_guarded(
            plant, controller, queue_lo, queue_hi, horizon, reference, wlo, whi, max_gen
        )
        inside = np.all((L >= lo) & (U <= hi), axis=(1, 2))
        if inside.any():
            proved.append((queue_lo[inside], queue_hi[inside], L[inside], U[inside]))
        flo, fhi = queue_lo[~inside], queue_hi[~inside]
        if flo.shape[0] == 0:
            break
        centres = 0.5 * (flo + fhi)
        found = _falsify(plant, controller, centres, horizon, reference, wlo, whi, rng, lo, hi)
        if found is not None:
            return done(False, *found, n_boxes=total)
        if total + flo.shape[0] > max_boxes:
            return done(
                None,
                proved=proved,
                n_boxes=total,
                notes=[f"{flo.shape[0]} sub-boxes undecided within max_boxes={max_boxes}"],
            )
        d = np.argmax((fhi - flo) / width0, axis=1)
        mid = 0.5 * (flo[np.arange(len(d)), d] + fhi[np.arange(len(d)), d])
        left_hi, right_lo = fhi.copy(), flo.copy()
        left_hi[np.arange(len(d)), d] = mid
        right_lo[np.arange(len(d)), d] = mid
        queue_lo = np.concatenate([flo, right_lo])
        queue_hi = np.concatenate([left_hi, fhi])
        total += flo.shape[0]
    return done(True, proved=proved, n_boxes=total)


# ======================================================== exact MILP (affine plants)
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
    ZL, ZU = _reach_zonotope(plant, controller, blo, bhi, steps, reference, wlo, whi, max_gen)
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
