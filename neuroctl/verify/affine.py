"""Affine forms (zonotopes) with sound floating-point rounding, and the controller rule table.

An :class:`AffineForm` is a batch of sets ``x = c + sum_j g_j eps_j + [-e, e]`` with noise
symbols ``eps_j`` in ``[-1, 1]`` shared by every form of one computation (so correlations are
kept) and a per-element *rounding term* ``e >= 0`` (an interval radius, not correlated with
anything). It implements the array operations plants and networks are written with (``+ - * /``,
powers, ``sin``, ``cos``, ``tanh``, ``exp``, ``sqrt``, ``maximum``/``minimum``/``clip``,
``stack``, ``concat``, indexing, ``@`` with constant matrices) through numpy's
``__array_ufunc__``/``__array_function__`` and torch's ``__torch_function__`` protocols, so the
*same* pure function that simulates a plant is evaluated on sets.

Relaxations
-----------
Linear operations are exact in real arithmetic. A nonlinear function ``f`` of one set is
replaced by ``lam x + mu +- delta`` (a fresh noise symbol of radius ``delta``) valid for every
``x`` of the input interval ``[l, u]``:

- monotone functions (``tanh``, sigmoid, ``exp``, ``sqrt``, ``1/x``): the min-range (DeepZ)
  relaxation: ``lam`` is the smaller |derivative| at the two ends, so ``f(x) - lam x`` is
  monotone and its range is read from the ends; the form's hull is then ``[f(l), f(u)]``;
- ``sin``, ``cos``: Taylor at the centre with a bound of the second derivative over the interval;
- piecewise-linear saturations (``clip``, ``maximum``/``minimum`` with a constant, Hardtanh,
  ReLU6, ``plant.saturate``): exact when the interval lies on one side of each kink; where it
  crosses one, the chord relaxation's hull (like that of any relaxation with a non-zero slope)
  leaves the function's range, so the range ``[f(l), f(u)]`` itself is used; ReLU: DeepZ.

In every case the result is *intersected with the function's range*: where the relaxation's hull
would leave the range of ``f`` (``(-1, 1)`` for tanh, ``[a, b]`` for a clip, ...), the element
is given the interval ``[f(l), f(u)]`` clamped to the range instead (``lam = 0``), which is never
wider than the function's range over the input interval.

An operation undefined on part of a set (division by a set containing 0, ``sqrt`` of a set
reaching below 0, a non-integer power of a set reaching 0) raises :class:`SetArithmeticError`:
a failure *inside* a proof, which callers report as such (or split the set), distinct from an
undecided result.

Sound rounding
--------------
All arithmetic runs in IEEE-754 float64 with rounding to nearest, unit roundoff
``u = 2**-53`` and smallest subnormal ``eta = 2**-1074``. For ``n`` roundings in a sum or a dot
product of length ``n`` the computed value differs from the exact one by at most
``gamma_n * sum|terms|`` with ``gamma_n = n u / (1 - n u)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, Lemma 3.1 and eq. 3.5), plus ``n eta`` for underflow in products. Every
operation that computes new coefficients (``c`` and each ``g_j``) with at most ``k`` roundings
each adds to the rounding term ``e`` the bound

    ``gamma_k * (|c'| + sum_j |g'_j|) + (p + 1) k eta``,

where ``|c'|`` and ``|g'_j|`` are the sums of the absolute values of the terms that make the new
coefficients (e.g. ``(|c| + sum_j |g_j|) @ |W|`` for a product with a constant matrix ``W``,
``|lam| |c| + |mu| + |lam| sum_j |g_j|`` for ``lam x + mu``). The rounding term of the operands
is propagated by the same rule as an interval radius (``|lam| e`` for ``lam x``, ``e @ |W|``,
``(|c_a| + r_a) e_b + (|c_b| + r_b) e_a + e_a e_b`` for a product). The bounds themselves are
computed from non-negative numbers in at most a few operations each and then multiplied by
``1 + 2 (k + 2) u`` and moved one float up (``np.nextafter(., inf)``), which covers their own
rounding (each is a sum/product of non-negative numbers, whose computed value is at least its
exact value times ``(1 - u)^k``). Interval ends (``lower``, ``upper``) are computed the same way
and rounded outward.

Transcendental functions (``tanh``, ``exp``, ``sin``, ``cos``, ``sqrt``) are evaluated with
numpy's libm, which is not correctly rounded; their values are widened by ``_LIBM_REL = 8 u``
relative (4 ulps; glibc documents at most 1–2 ulps for these functions in double precision) plus
``eta``. With this assumption on the math library, every set encloses every value of the exact
real-number function over its inputs; in particular it encloses the float64 evaluation as well as
the exact one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..layers import LAYER_KINDS, UnsupportedLayer, describe

__all__ = [
    "AffineForm",
    "SetArithmeticError",
    "controller_on_sets",
    "LAYER_RULES",
]

_U = 2.0**-53
_ETA = 2.0**-1074
_LIBM_REL = 8.0 * _U
_INF = np.inf


class SetArithmeticError(ArithmeticError, ValueError):
    """An operation is undefined on part of a set (e.g. a division by a set containing 0).

    Raised inside a proof; callers report it as a failure of the proof (or split the set), never
    as an undecided result. It is a :class:`ValueError` too, for callers that catch bad input.
    """


# ============================================================================ rounding helpers
@functools.lru_cache(maxsize=4096)
def _gamma(k: int) -> float:
    """``gamma_k = k u / (1 - k u)`` rounded up."""
    k = max(int(k), 1)
    return float(np.nextafter(k * _U / (1.0 - k * _U), _INF))


def _up(a, ops: int = 1):
    """A float at least the exact value of a non-negative expression computed in ``ops`` roundings
    whose computed value is ``a``."""
    return np.nextafter(np.asarray(a, dtype=np.float64) * (1.0 + 2.0 * (ops + 2) * _U), _INF)


def _round_err(mag, k: int, p: int):
    """Bound of the rounding error of coefficients made of at most ``k`` roundings each, whose
    terms have absolute sum ``mag`` (all ``p + 1`` coefficients together)."""
    return _up(_gamma(k) * mag + (p + 1) * k * _ETA, 3)


def _plus(a, b):
    """Upward-rounded sum of two non-negative arrays (rounding terms)."""
    return np.nextafter(a + b, _INF)


def _radius(gsum, p: int, e):
    """``sum_j |g_j| + e`` rounded up, from the computed sum ``gsum`` of ``p`` terms."""
    if p == 0:
        return np.array(e)
    s = gsum
    if p > 1:  # a sum of p non-negative terms: relative error <= gamma_{p-1}
        s = np.nextafter(s + s * _gamma(p - 1), _INF)
    return np.where(e > 0, np.nextafter(s + e, _INF), s)


def _down_end(a):
    return np.nextafter(a, -_INF)


def _up_end(a):
    return np.nextafter(a, _INF)


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
    """A batch of zonotopes ``c + sum_j g_j eps_j + [-e, e]``, ``eps_j`` in ``[-1, 1]``.

    Parameters
    ----------
    center : ndarray, shape (B, *s)
        Centre; axis 0 indexes independent sets (boxes analysed in parallel), they share noise
        symbol indices but never interact.
    gens : ndarray, shape (p, B, *s)
        Generators.
    ctx : _Context
        Noise-symbol counter shared by every form of one computation.
    err : ndarray, shape (B, *s), optional
        Rounding term (an uncorrelated interval radius, ``>= 0``); default 0.
    """

    __array_priority__ = 1000

    def __init__(self, center, gens, ctx: _Context, err=None):
        self.c = np.asarray(center, dtype=np.float64)
        self.g = np.asarray(gens, dtype=np.float64)
        self.ctx = ctx
        if err is None:
            self.e = np.zeros(self.c.shape)
        else:
            e = np.asarray(err, dtype=np.float64)
            self.e = e if e.shape == self.c.shape else np.broadcast_to(e, self.c.shape)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_box(cls, lower, upper, ctx: _Context | None = None) -> AffineForm:
        """One noise symbol per coordinate of the box ``[lower, upper]``, shape ``(B, n)``."""
        lower, upper = _const(lower), _const(upper)
        ctx = ctx or _Context()
        c = 0.5 * (lower + upper)
        # the centre is rounded: the radius is taken up to both ends
        r = np.maximum(_up_end(upper - c), _up_end(c - lower))
        r = np.where(upper == lower, np.abs(upper - c), r)
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
        """Radius ``sum_j |g_j| + e`` (rounded up), shape ``(B, *s)``."""
        return _radius(np.abs(self.g).sum(axis=0), self.g.shape[0], self.e)

    @property
    def lower(self) -> np.ndarray:
        return _down_end(self.c - self.rad)

    @property
    def upper(self) -> np.ndarray:
        return _up_end(self.c + self.rad)

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

    def _new(self, c, g, e=None) -> AffineForm:
        return AffineForm(c, g, self.ctx, e)

    def _with_noise(self, err) -> AffineForm:
        """Add an independent error term ``err * eps_new`` per element (``err >= 0``)."""
        err = np.broadcast_to(_const(err), self.c.shape)
        b = self.c.shape[0]
        flat = err.reshape(b, -1)
        used = np.nonzero((flat > 0).any(axis=0))[0]
        g = self._pad(self.ctx.n)
        if used.size == 0:
            return self._new(self.c, g, self.e)
        k, size = used.size, flat.shape[1]
        new = np.zeros((k, b, size))
        new[np.arange(k), :, used] = flat[:, used].T
        self.ctx.n += k
        return self._new(self.c, np.concatenate([g, new.reshape(k, *self.c.shape)], axis=0), self.e)

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

    def _gsum(self) -> np.ndarray:
        """``sum_j |g_j|`` as computed (not yet rounded up)."""
        return np.abs(self.g).sum(axis=0) if self.g.shape[0] else np.zeros(self.c.shape)

    def _affine_unary(self, slope, offset, err) -> AffineForm:
        """``slope * x + offset +- err`` elementwise (all of the form's shape), rounding
        included."""
        slope, offset = _const(slope), _const(offset)
        c = slope * self.c + offset
        g = slope * self.g
        a = np.abs(slope)
        mag = a * np.abs(self.c) + np.abs(offset) + a * self._gsum()
        e = _plus(_up(a * self.e, 1), _round_err(mag, 2, self.g.shape[0]))
        return self._new(c, g, e)._with_noise(err)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        if not isinstance(other, AffineForm):
            if isinstance(other, (Taylorish,)):
                return NotImplemented
            o = _const(other)
            c = self.c + o
            g = _expand(self.g, self.c.ndim, c.ndim)
            g = np.broadcast_to(g, (len(g), *c.shape))
            e = _plus(self.e, _round_err(np.abs(c), 1, 0))
            e = e if e.shape == c.shape else np.broadcast_to(e, c.shape)
            return self._new(c, g, e)
        ga, gb = self._pair(self, other)
        c, g = self.c + other.c, ga + gb
        mag = np.abs(c) + np.abs(g).sum(axis=0)
        e = _plus(_up(self.e + other.e, 1), _round_err(mag, 1, g.shape[0]))
        return self._new(c, g, e)

    __radd__ = __add__

    def __neg__(self):
        return self._new(-self.c, -self.g, self.e)

    def __pos__(self):
        return self

    def __sub__(self, other):
        if isinstance(other, Taylorish):
            return NotImplemented
        return self + (-other if isinstance(other, AffineForm) else -_const(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, AffineForm):
            if isinstance(other, Taylorish):
                return NotImplemented
            o = _const(other)
            c = self.c * o
            g = _expand(self.g, self.c.ndim, c.ndim) * o
            a = np.abs(o)
            mag = np.abs(c) + np.abs(g).sum(axis=0)
            e = _plus(_up(self.e * a, 1), _round_err(mag, 1, g.shape[0]))
            return self._new(c, g, e)
        ga, gb = self._pair(self, other)
        # each |g| sum once: for the radii and for the rounding terms' magnitudes
        p = ga.shape[0]
        sa, sb = np.abs(ga).sum(axis=0), np.abs(gb).sum(axis=0)
        ra, rb = _radius(sa, p, self.e), _radius(sb, p, other.e)
        c = self.c * other.c
        g = self.c * gb + other.c * ga
        mag = np.abs(c) + np.abs(self.c) * sb
        mag = mag + np.abs(other.c) * sa
        ea, eb = self.e, other.e
        e_prop = (np.abs(self.c) + ra) * eb + (np.abs(other.c) + rb) * ea + ea * eb
        e = _plus(_up(e_prop, 4), _round_err(mag, 3, g.shape[0]))
        # the product of the two symbol sums lies in [-ra' rb', ra' rb'] with ra' = ra - ea
        out = self._new(c, g, e)
        return out._with_noise(_up(ra * rb, 1))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Taylorish):
            return NotImplemented
        if not isinstance(other, AffineForm):
            o = _const(other)
            if np.any(o == 0):
                raise SetArithmeticError("AffineForm: division by a constant 0")
            inv = 1.0 / o
            y = self * inv
            # 1/o is rounded (relative error <= u): x * fl(1/o) - x / o <= u |x * fl(1/o)| (1+u)
            y.e = _plus(y.e, _up((np.abs(y.c) + y.rad) * 2 * _U, 3))
            return y
        return self * other.reciprocal()

    def __rtruediv__(self, other):
        return self.reciprocal() * _const(other)

    def __pow__(self, p):
        p = float(_const(p))
        if p == int(p) and p >= 0:
            return self._int_power(int(p))
        lo, up = self.lower, self.upper
        if np.any(lo <= 0):
            raise SetArithmeticError(
                f"AffineForm ** {p}: a non-integer or negative power needs a positive base; "
                f"received a set reaching down to {lo.min():.6g}"
            )
        # Taylor at the centre with |f''| bounded by its value at the ends (f'' is monotone)
        m = self.c
        f2 = np.maximum(np.abs(p * (p - 1) * lo ** (p - 2)), np.abs(p * (p - 1) * up ** (p - 2)))
        return _taylor1(self, m**p, p * m ** (p - 1), f2 * (1 + 4 * _LIBM_REL))

    def _int_power(self, n: int):
        if n == 0:
            return self._new(np.ones_like(self.c), np.zeros_like(self.g))
        if n == 1:
            return self
        half = self._int_power(n // 2).square()
        return half if n % 2 == 0 else half * self

    def __matmul__(self, w):
        w = _const(w)
        k = w.shape[0] if w.ndim else 1
        mag = (np.abs(self.c) + self._gsum()) @ np.abs(w)
        e = _plus(_up(self.e @ np.abs(w), k), _round_err(mag, k, self.g.shape[0]))
        return self._new(self.c @ w, self.g @ w, e)

    def __rmatmul__(self, w):
        # w @ x for x of shape (B, n): applies w (k, n) to the last axis
        return self.__matmul__(_const(w).T)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self._new(self.c[key], self.g[(slice(None), *key)], self.e[key])

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        c = self.c.reshape(shape)
        return self._new(c, self.g.reshape(len(self.g), *c.shape), self.e.reshape(c.shape))

    def sum(self, axis=None, keepdims=False):
        if axis is None or axis == 0:
            raise ValueError("AffineForm.sum: summing over the batch axis 0 is not supported")
        k = self.c.shape[axis]
        c = self.c.sum(axis=axis, keepdims=keepdims)
        g = self.g.sum(axis=axis if axis < 0 else axis + 1, keepdims=keepdims)
        mag = (np.abs(self.c) + self._gsum()).sum(axis=axis, keepdims=keepdims)
        e = _plus(_up(self.e.sum(axis=axis, keepdims=keepdims), k), _round_err(mag, k, g.shape[0]))
        return self._new(c, g, e)

    # ------------------------------------------------------------------ nonlinear functions
    def square(self):
        """``x**2`` exactly up to one error term: ``(sum g eps)^2`` lies in ``[0, r^2]``."""
        r = self.rad
        r2 = _up(r * r, 1)
        h = 0.5 * r2
        out = self._new(self.c**2 + h, 2.0 * self.c * self.g)
        mag = self.c**2 + h + 2.0 * np.abs(self.c) * self._gsum()
        out.e = _plus(
            _up(2.0 * (np.abs(self.c) + r) * self.e + self.e**2, 3),
            _round_err(mag, 3, self.g.shape[0]),
        )
        return out._with_noise(_up(h, 1))

    def reciprocal(self):
        lo, up = self.lower, self.upper
        if np.any((lo <= 0) & (up >= 0)):
            raise SetArithmeticError(
                "AffineForm: division by a set that contains 0 "
                f"(range [{lo.min():.6g}, {up.max():.6g}])"
            )
        # min-range: on 0 < a <= t <= b, 1/t is decreasing and convex; with a slope -lam,
        # 0 <= lam <= 1/b^2 (the smaller |derivative|, at the far end), g(t) = 1/t + lam t is
        # non-increasing, so its range is [1/b + lam b, 1/a + lam a] (mirrored for negative sets)
        sgn = np.where(lo > 0, 1.0, -1.0)
        a, b = np.minimum(np.abs(lo), np.abs(up)), np.maximum(np.abs(lo), np.abs(up))
        lam = np.nextafter((1.0 / b) / b * (1.0 - 8.0 * _U), 0.0)
        glo = _down_end((1.0 / b) * (1.0 - 4.0 * _U) + lam * b * (1.0 - 4.0 * _U))
        ghi = _up_end((1.0 / a) * (1.0 + 4.0 * _U) + lam * a * (1.0 + 4.0 * _U))
        flo = _down_end((1.0 / b) * (1.0 - 4.0 * _U))
        fhi = _up_end((1.0 / a) * (1.0 + 4.0 * _U))
        xs = self * sgn
        out = _relax_from(xs, -lam, glo, ghi, range_lo=0.0, range_hi=_INF, flo=flo, fhi=fhi)
        return out * sgn

    def sin(self):
        m, r = self.c, self.rad
        sm, cm = np.sin(m), np.cos(m)
        f2 = np.minimum(1.0, np.abs(sm) * (1 + _LIBM_REL) + r + _ETA)  # |sin| <= |sin m| + r
        return _clamp_range(_taylor1(self, sm, cm, f2), -1.0, 1.0)

    def cos(self):
        m, r = self.c, self.rad
        sm, cm = np.sin(m), np.cos(m)
        f2 = np.minimum(1.0, np.abs(cm) * (1 + _LIBM_REL) + r + _ETA)
        return _clamp_range(_taylor1(self, cm, -sm, f2), -1.0, 1.0)

    def tanh(self):
        return _monotone(self, np.tanh, _tanh_slope, -1.0, 1.0)

    def sigmoid(self):
        return _monotone(self, _sigmoid, _sigmoid_slope, 0.0, 1.0)

    def exp(self):
        # convex increasing: the smaller derivative is at the lower end
        return _monotone(self, np.exp, lambda l, u: np.exp(l) * (1 - 2 * _LIBM_REL), 0.0, _INF)

    def sqrt(self):
        lo, up = self.lower, self.upper
        tol = 16 * _U * (np.abs(self.c) + self.rad) + 1e-300
        if np.any(lo < -tol):
            raise SetArithmeticError(
                f"AffineForm.sqrt: needs a non-negative set, received one reaching {lo.min():.6g}"
            )
        # (a set below 0 only by its outward rounding is taken from 0: sqrt is defined there)

        def slope(l, u):  # concave increasing: the smaller derivative is at the upper end
            return np.where(u > 0, 0.5 / np.sqrt(np.where(u > 0, u, 1.0)), 0.0) * (
                1 - 4 * _LIBM_REL
            )

        return _monotone(self, np.sqrt, slope, 0.0, _INF, lo=np.maximum(lo, 0.0), up=up)

    # comparisons give a three-valued answer per element (see SetBool)
    def _compare(self, other, op):
        o = other if isinstance(other, AffineForm) else AffineForm._lift(other, self.ctx)
        d = self - o  # the sign of x - other over the set
        lo, up = d.lower, d.upper
        table = {
            "lt": (up < 0, lo < 0),
            "le": (up <= 0, lo <= 0),
            "gt": (lo > 0, up > 0),
            "ge": (lo >= 0, up >= 0),
        }
        return SetBool(*table[op])

    def __lt__(self, other):
        return self._compare(other, "lt")

    def __le__(self, other):
        return self._compare(other, "le")

    def __gt__(self, other):
        return self._compare(other, "gt")

    def __ge__(self, other):
        return self._compare(other, "ge")

    def floor(self):
        """``floor(x)``: a constant where the set lies between two integers; a set that straddles
        an integer raises :class:`SetArithmeticError` (the function jumps there)."""
        lo, up = self.lower, self.upper
        kl, ku = np.floor(lo), np.floor(up)
        if np.any(kl != ku):
            raise SetArithmeticError(
                "AffineForm.floor: the set straddles an integer (e.g. a ring position set across "
                f"the wrap), range [{lo[kl != ku].min():.6g}, {up[kl != ku].max():.6g}]"
            )
        return self._new(kl, np.zeros_like(self.g))

    def __mod__(self, m):
        """``x mod m`` for a constant ``m > 0``: ``x - k m`` with ``k = floor(x / m)`` constant
        over the set (else :class:`SetArithmeticError`)."""
        m = _const(m)
        if np.any(m <= 0):
            raise ValueError(f"AffineForm % m: expected a positive modulus, received {m}")
        lo, up = self.lower, self.upper
        kl, ku = np.floor(lo / m), np.floor(up / m)
        # lo / m is rounded: check the integer is the same on both sides of each end
        kl2, ku2 = np.floor(np.nextafter(lo, -_INF) / m), np.floor(np.nextafter(up, _INF) / m)
        if np.any((kl != ku) | (kl != kl2) | (ku != ku2)):
            raise SetArithmeticError(
                "AffineForm % m: the set straddles a multiple of the modulus (the remainder jumps "
                "there, e.g. a ring position set across the wrap)"
            )
        return self - kl * m

    def relu(self):
        """DeepZ relaxation: exact where the sign is fixed, else ``lam x + mu +- mu``."""
        lo, up = self.lower, self.upper
        unstable = (lo < 0) & (up > 0)
        lam = np.where(up <= 0, 0.0, 1.0)
        lam = np.where(unstable, up / np.where(unstable, up - lo, 1.0), lam)
        mu = np.where(unstable, _up(-0.5 * lam * lo, 2), 0.0)
        # lam x + mu +- mu is exact arithmetic only up to the slope's rounding: the deviation of
        # lam from u/(u - l) is covered by the extra relative slack on mu
        mu = np.where(unstable, _up(mu * (1 + 8 * _U) + _U * (up - lo) * 4, 2), 0.0)
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
        if any(isinstance(a, Taylorish) for a in inputs):
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
            "floor": AffineForm.floor,
        }
        if name == "remainder" and len(inputs) == 2 and isinstance(inputs[0], AffineForm):
            return inputs[0] % inputs[1]
        if name in unary and len(inputs) == 1:
            return unary[name](inputs[0])
        if name in binary and len(inputs) == 2:
            return binary[name](*inputs)
        raise TypeError(
            f"AffineForm: numpy function {name!r} is not supported on sets; supported: "
            f"{sorted(unary) + sorted(binary)}"
        )

    def __array_function__(self, func, types, args, kwargs):
        if any(issubclass(t, Taylorish) for t in types):
            return NotImplemented
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
            "sigmoid": AffineForm.sigmoid,
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


class SetBool:
    """A comparison of sets, per element: ``definitely`` (true for every point of the sets) and
    ``possibly`` (true for some point). Usable as a condition only where the two agree."""

    __slots__ = ("definitely", "possibly")

    def __init__(self, definitely, possibly):
        self.definitely = np.asarray(definitely, dtype=bool)
        self.possibly = np.asarray(possibly, dtype=bool)

    def decided(self) -> np.ndarray:
        """The condition where it is the same for every point of the sets; else a TypeError."""
        if np.any(self.definitely != self.possibly):
            raise TypeError(
                "a comparison of sets is true for some of their points and false for others; "
                "it cannot be used as a condition (split the set)"
            )
        return self.definitely

    def __bool__(self):
        return bool(np.all(self.decided()))

    def __repr__(self) -> str:
        return f"SetBool(definitely={self.definitely}, possibly={self.possibly})"


class Taylorish:
    """Marker base of set types that build on affine forms (Taylor series of them): affine
    forms defer to them in mixed operations."""

    __slots__ = ()


# ============================================================================ relaxations
def _sigmoid(v):
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.where(v >= 0, 1.0 / (1.0 + np.exp(-v)), np.exp(v) / (1.0 + np.exp(v)))


def _taylor1(x: AffineForm, fm, slope, f2) -> AffineForm:
    """``f(x)`` by its Taylor expansion at the centre ``m``: ``fm`` = f(m) and ``slope`` = f'(m)
    as computed (libm), ``f2`` a bound of ``|f''|`` over the interval. The form is
    ``slope x + (fm - slope m) +- err`` with ``err`` covering ``r^2 f2 / 2``, the libm errors of
    ``fm`` and ``slope`` (times the radius) and the rounding of the offset."""
    m, r = x.c, x.rad
    off = fm - slope * m
    err = 0.5 * r * r * f2 + _LIBM_REL * (np.abs(fm) + np.abs(slope) * r)
    err = _up(err + 4 * _U * (np.abs(fm) + np.abs(slope * m)) + _ETA, 8)
    return x._affine_unary(slope, off, err)


def _tanh_slope(l, u):
    # tanh' = 1 - tanh^2 is unimodal (maximum at 0): its minimum over [l, u] is at an end.
    # 1 - t^2 for |t| <= 1 computed with t within 4 ulps has an absolute error below 12 u.
    d = np.minimum(1.0 - np.tanh(l) ** 2, 1.0 - np.tanh(u) ** 2)
    return np.maximum(d - 16 * _U, 0.0)


def _sigmoid_slope(l, u):
    # s' = s (1 - s) is unimodal (maximum at 0): its minimum over [l, u] is at an end
    sl, su = _sigmoid(l), _sigmoid(u)
    d = np.minimum(sl * (1 - sl), su * (1 - su))
    return np.maximum(d * (1 - 16 * _LIBM_REL) - 8 * _U * d - _ETA, 0.0)


def _monotone(x: AffineForm, f, slope_fn, range_lo, range_hi, *, lo=None, up=None):
    """Min-range relaxation of an increasing ``f`` whose derivative's minimum over ``[l, u]`` is
    at least ``slope_fn(l, u) >= 0``: ``f(t) - lam t`` is non-decreasing on ``[l, u]``."""
    lo = x.lower if lo is None else lo
    up = x.upper if up is None else up
    with np.errstate(over="ignore", invalid="ignore"):
        lam = np.asarray(slope_fn(lo, up), dtype=np.float64)
        lam = np.where(np.isfinite(lam), lam, 0.0)
        fl, fu = np.asarray(f(lo), dtype=np.float64), np.asarray(f(up), dtype=np.float64)
    flo = fl - _LIBM_REL * np.abs(fl) - _ETA
    fhi = fu + _LIBM_REL * np.abs(fu) + _ETA
    flo = _down_end(np.maximum(flo, range_lo))
    fhi = _up_end(np.minimum(fhi, range_hi))
    flo = np.maximum(flo, range_lo)
    fhi = np.minimum(fhi, range_hi)
    # g(t) = f(t) - lam t is non-decreasing: g(l) <= g <= g(u)
    with np.errstate(over="ignore", invalid="ignore"):
        glo = _down_end(flo - lam * lo - _up(np.abs(lam * lo), 1) * 2 * _U)
        ghi = _up_end(fhi - lam * up + _up(np.abs(lam * up), 1) * 2 * _U)
    return _relax_from(x, lam, glo, ghi, range_lo=range_lo, range_hi=range_hi, flo=flo, fhi=fhi)


def _relax_from(x, lam, glo, ghi, *, range_lo, range_hi, flo, fhi) -> AffineForm:
    """``lam x + mu +- delta`` with ``[mu - delta, mu + delta]`` covering ``[glo, ghi]``; where
    its hull leaves the function's range ``[range_lo, range_hi]`` (or is not finite), the
    interval ``[flo, fhi]`` (sound bounds of ``f`` over the input interval) instead."""
    lo, up = x.lower, x.upper
    with np.errstate(over="ignore", invalid="ignore"):
        mu = 0.5 * glo + 0.5 * ghi
        delta = _up_end(np.maximum(ghi - mu, mu - glo))
        h_lo = np.minimum(lam * lo, lam * up) + mu - delta
        h_hi = np.maximum(lam * lo, lam * up) + mu + delta
        ok = np.isfinite(h_lo) & np.isfinite(h_hi) & (h_lo >= range_lo) & (h_hi <= range_hi)
        ok &= np.isfinite(mu) & np.isfinite(delta)
        imu = 0.5 * flo + 0.5 * fhi
        idelta = _up_end(np.maximum(fhi - imu, imu - flo))
    lam = np.where(ok, lam, 0.0)
    mu = np.where(ok, mu, imu)
    delta = np.where(ok, delta, idelta)
    return x._affine_unary(lam, mu, delta)


def _clamp_range(y: AffineForm, range_lo, range_hi) -> AffineForm:
    """Where the hull of ``y`` leaves ``[range_lo, range_hi]``, the constant interval of the hull
    intersected with the range."""
    lo, up = y.lower, y.upper
    bad = (lo < range_lo) | (up > range_hi)
    if not bad.any():
        return y
    flo, fhi = np.maximum(lo, range_lo), np.minimum(up, range_hi)
    mu = 0.5 * flo + 0.5 * fhi
    delta = _up_end(np.maximum(fhi - mu, mu - flo))
    bad_g = np.broadcast_to(bad, y.g.shape)
    z = y._new(np.where(bad, 0.0, y.c), np.where(bad_g, 0.0, y.g), np.where(bad, 0.0, y.e))
    return z._affine_unary(1.0, np.where(bad, mu, 0.0), np.where(bad, delta, 0.0))


def _clip_relax(x: AffineForm, a, b) -> AffineForm:
    """``clip(x, a, b)`` (``a`` may be ``-inf``, ``b`` ``+inf``, ``a <= b``) on its range.

    Exact where the interval lies on one side of each kink (the identity between them, a
    constant outside). Where it crosses a kink, every relaxation ``lam x + mu +- delta`` with
    ``lam > 0`` (the chord's included) has a hull that leaves the function's range ``[f(l),
    f(u)]`` (at the saturated end, by ``lam (u - b)`` at least), so the intersection with the
    range is the interval ``[f(l), f(u)]`` itself (``lam = 0``): never wider than the range.
    """
    lo, up = x.lower, x.upper
    a = np.broadcast_to(_const(a), lo.shape)
    b = np.broadcast_to(_const(b), lo.shape)
    inside = (lo >= a) & (up <= b)
    if np.all(inside):
        return x
    fl = np.clip(lo, a, b)  # clip is non-decreasing and exact in floats: the range [f(l), f(u)]
    fu = np.clip(up, a, b)
    lam = np.where(inside, 1.0, 0.0)
    mu = 0.5 * fl + 0.5 * fu
    delta = _up_end(np.maximum(fu - mu, mu - fl))
    mu = np.where(inside, 0.0, mu)
    delta = np.where(inside, 0.0, delta)
    return x._affine_unary(lam, mu, delta)


# ============================================================================ helpers
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
    return _clip_relax(a, np.where(np.isnan(b), -_INF, b), _INF)


def _minimum(a, b):
    if not isinstance(a, AffineForm):
        a, b = b, a
    if isinstance(b, AffineForm):
        return a - (a - b).relu()
    b = _const(b)
    return _clip_relax(a, -_INF, np.where(np.isnan(b), _INF, b))


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
    if not isinstance(x, AffineForm):
        return np.clip(_const(x), lo, hi)
    if isinstance(lo, AffineForm) or isinstance(hi, AffineForm):
        if lo is not None:
            x = _maximum(x, lo)
        if hi is not None:
            x = _minimum(x, hi)
        return x
    a = -_INF if lo is None else _const(lo)
    b = _INF if hi is None else _const(hi)
    return _clip_relax(x, a, b)


def _where(cond, a, b):
    if isinstance(cond, AffineForm):
        raise TypeError("AffineForm: where() with a set-valued condition is not supported")
    cond = cond.decided() if isinstance(cond, SetBool) else _const(cond).astype(bool)
    ctx = next(v.ctx for v in (a, b) if isinstance(v, AffineForm))
    a, b = AffineForm._lift(a, ctx), AffineForm._lift(b, ctx)
    shape = np.broadcast_shapes(cond.shape, a.c.shape, b.c.shape)
    a, b = a + np.zeros(shape), b + np.zeros(shape)
    ga, gb = AffineForm._pair(a, b)
    return AffineForm(
        np.where(cond, a.c, b.c), np.where(cond, ga, gb), ctx, np.where(cond, a.e, b.e)
    )


def _join(name, arrays, axis=0, **kwargs):
    if kwargs:
        raise TypeError(f"AffineForm {name}: unsupported options {sorted(kwargs)}")
    arrays = list(arrays)
    ctx = next(a.ctx for a in arrays if isinstance(a, AffineForm))
    forms = [AffineForm._lift(a, ctx) for a in arrays]
    p = max(f.g.shape[0] for f in forms)
    shape0 = forms[0].c.shape[0]
    cs, gs, es = [], [], []
    for f in forms:
        c = f.c if f.c.shape[:1] == (shape0,) else np.broadcast_to(f.c, (shape0, *f.c.shape[1:]))
        cs.append(c)
        gs.append(np.broadcast_to(f._pad(p), (p, *c.shape)))
        es.append(np.broadcast_to(f.e, c.shape))
    gax = axis if axis < 0 else axis + 1  # the generators lead with the symbol axis
    if name == "stack":
        c, g, e = np.stack(cs, axis=axis), np.stack(gs, axis=gax), np.stack(es, axis=axis)
    else:
        c, g = np.concatenate(cs, axis=axis), np.concatenate(gs, axis=gax)
        e = np.concatenate(es, axis=axis)
    return AffineForm(c, g, ctx, e)


# ============================================================================ controllers
def _rule_linear(layer: nn.Linear, desc, x):
    w = _const(layer.weight)
    out = x @ w.T
    return out + _const(layer.bias) if layer.bias is not None else out


def _rule_pwl(layer, desc, x):
    """A piecewise-linear activation of the registry from its breakpoints and slopes:
    ``f(z) = s_0 z + c_0 + sum_i (s_{i+1} - s_i) relu(z - b_i)``, with the exact shorter forms
    ``relu``, ``s_0 z + (1 - s_0) relu(z)`` and ``clip(z, b_0, b_1)`` when they apply."""
    b = [float(v) for v in desc.breaks]
    s = [np.asarray(v, dtype=float) for v in desc.slopes]
    c = [float(v) for v in desc.intercepts]
    if b == [0.0] and c == [0.0, 0.0] and bool((s[1] == 1.0).all()):
        if not s[0].any():
            return _relu(x)
        return x * s[0] + _relu(x) * (1.0 - s[0])
    flat = len(b) == 2 and not s[0].any() and bool((s[1] == 1.0).all()) and not s[2].any()
    if flat and c == [b[0], 0.0, b[1]]:
        return _clip(x, b[0], b[1])
    out = x * s[0] if s[0].any() else None
    for i, bi in enumerate(b):
        term = _relu(x - bi if bi else x) * (s[i + 1] - s[i])
        out = term if out is None else out + term
    return out + c[0] if c[0] else out


def _rule_smooth(layer, desc, x):
    if desc.name == "sigmoid":
        return x.sigmoid() if isinstance(x, AffineForm) else _sigmoid(x)
    if desc.name == "tanh":
        return x.tanh() if isinstance(x, AffineForm) else np.tanh(x)
    raise UnsupportedLayer(layer, "reach", supported_layers())


def _rule_sequential(layer, desc, x):
    for sub in layer:
        x = controller_on_sets(sub, x)
    return x


#: Layer kind (:data:`neuroctl.layers.KINDS`) -> rule of the walk of a controller on affine
#: forms, ``rule(layer, description, x) -> y``. Smooth layers: tanh and sigmoid.
LAYER_RULES: dict[str, Callable] = {
    "affine": _rule_linear,
    "identity": lambda layer, desc, x: x,
    "container": _rule_sequential,
    "piecewise_linear": _rule_pwl,
    "smooth": _rule_smooth,
}

_SMOOTH_ON_SETS = ("Tanh", "Sigmoid")


def supported_layers() -> list[str]:
    """Names of the layer types that the walk on affine forms supports."""
    return [
        t.__name__
        for t, (kind, _) in LAYER_KINDS.items()
        if kind != "smooth" or t.__name__ in _SMOOTH_ON_SETS
    ]


def controller_on_sets(controller: nn.Module, y: AffineForm) -> AffineForm:
    """Evaluate a feed-forward controller on an affine form with the per-kind rule table.

    Parameters
    ----------
    controller : nn.Module
        ``nn.Sequential`` (nested Sequentials allowed) of the layers of :func:`supported_layers`.
    y : AffineForm, shape (B, p)
        The controller's input set.

    Returns
    -------
    AffineForm, shape (B, m)

    Raises
    ------
    neuroctl.layers.UnsupportedLayer
        For a layer outside :func:`supported_layers`.
    """
    try:
        kind, desc = describe(controller, analysis="reach", kinds=LAYER_RULES)
    except UnsupportedLayer as err:
        raise UnsupportedLayer(controller, "reach", supported_layers(), err.reason) from None
    return LAYER_RULES[kind](controller, desc, y)
