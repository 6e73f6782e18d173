"""Truncated Taylor series whose coefficients are affine forms (Taylor arithmetic on sets).

A :class:`Taylor` object is a power series ``sum_k a_k t^k`` in the time ``t``; its coefficients
are :class:`~neuroctl.verify.affine.AffineForm` sets (or constant arrays) and are computed
lazily, each once, by the recurrences of Taylor arithmetic (Moore 1966; Griewank and Walther,
*Evaluating Derivatives*, ch. 13): Cauchy products for ``*``, ``q_k = (a_k - sum b_i q_{k-i}) /
b_0`` for ``/``, the coupled recurrences ``s' = c a'``, ``c' = -s a'`` for ``sin``/``cos``,
``e' = e a'`` for ``exp``, ``t' = (1 - t^2) a'`` for ``tanh``, ``s^2 = a`` for ``sqrt`` and
``a y' = p a' y`` for real powers. Because the series implements the numpy protocols, a plant's
one array-agnostic ``rhs`` runs on it unchanged; :mod:`neuroctl.verify.flow` uses it to get the
Taylor coefficients of the flow, ``x_[k+1] = f(x)_[k] / (k + 1)``, by lazy evaluation (asking for
``x_[k+1]`` asks ``f(x)`` for its coefficient ``k``, which needs only ``x_[0..k]``).
"""

from __future__ import annotations

import numpy as np

from .affine import AffineForm, Taylorish, _const

__all__ = ["Taylor"]


def _zero_shape(v):
    return v.shape if isinstance(v, AffineForm) else np.shape(v)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _sub(a, b):
    if b is None:
        return a
    if a is None:
        return -b
    return a - b


def _mul(a, b):
    if a is None or b is None:
        return None
    return a * b


def _total(terms):
    out = None
    for t in terms:
        out = _add(out, t)
    return out


def _div_int(a, k: int):
    if a is None:
        return None
    return a / float(k)


class Taylor(Taylorish):
    """A truncated power series ``sum_k a_k t^k`` whose coefficients are affine forms (or
    constant arrays), computed lazily, each once.

    Implements the array operations plants are written with (``+ - * /``, integer and real
    powers, ``sin``, ``cos``, ``exp``, ``tanh``, ``sqrt``, ``stack``/``concat``, indexing, ``@``
    with a constant matrix, ``sum``) by the recurrences of Taylor arithmetic, so that one
    array-agnostic ``rhs`` runs on it unchanged. Non-smooth functions (``maximum``, ``clip``,
    ``abs``) are refused: the Taylor expansion of the flow needs a smooth right-hand side.

    Parameters
    ----------
    rule : callable
        ``rule(k)`` returns coefficient ``k >= 1`` (``None`` for zero); called once per ``k``,
        in increasing order.
    c0 : AffineForm or array_like
        Coefficient 0.
    """

    __array_priority__ = 2000
    __slots__ = ("_rule", "_c", "shape")

    def __init__(self, rule, c0):
        self._rule = rule
        self._c = [c0]
        self.shape = tuple(_zero_shape(c0))

    def coef(self, k: int):
        """Coefficient ``k`` (an AffineForm, an array, or None for zero)."""
        while len(self._c) <= k:
            self._c.append(self._rule(len(self._c)))
        return self._c[k]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return np.dtype(np.float64)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Taylor(shape={self.shape}, computed={len(self._c)})"

    # ------------------------------------------------------------------ construction
    @staticmethod
    def constant(v) -> Taylor:
        """A series with only its constant term ``v``."""
        if isinstance(v, Taylor):
            return v
        return Taylor(lambda k: None, v if isinstance(v, AffineForm) else _const(v))

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        b = Taylor.constant(other)
        return Taylor(lambda k: _add(self.coef(k), b.coef(k)), _add(self.coef(0), b.coef(0)))

    __radd__ = __add__

    def __sub__(self, other):
        b = Taylor.constant(other)
        return Taylor(lambda k: _sub(self.coef(k), b.coef(k)), _sub(self.coef(0), b.coef(0)))

    def __rsub__(self, other):
        return Taylor.constant(other) - self

    def __neg__(self):
        return Taylor(lambda k: _mul(self.coef(k), -1.0), -self.coef(0))

    def __pos__(self):
        return self

    def __mul__(self, other):
        if not isinstance(other, Taylor):
            o = other if isinstance(other, AffineForm) else _const(other)
            return Taylor(lambda k: _mul(self.coef(k), o), self.coef(0) * o)
        a, b = self, other
        return Taylor(
            lambda k: _total(_mul(a.coef(i), b.coef(k - i)) for i in range(k + 1)),
            a.coef(0) * b.coef(0),
        )

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, Taylor):
            if isinstance(other, AffineForm):
                return self * other.reciprocal()
            o = _const(other)
            return Taylor(
                lambda k: None if self.coef(k) is None else self.coef(k) / o, self.coef(0) / o
            )
        a, b = self, other
        b0 = b.coef(0)
        r0 = b0.reciprocal() if isinstance(b0, AffineForm) else 1.0 / b0

        def rule(k):
            s = _sub(a.coef(k), _total(_mul(b.coef(i), q.coef(k - i)) for i in range(1, k + 1)))
            return _mul(s, r0)

        q = Taylor(rule, a.coef(0) * r0)
        return q

    def __rtruediv__(self, other):
        return Taylor.constant(other) / self

    def __pow__(self, p):
        p = float(_const(p))
        if p == int(p) and 0 <= p <= 16:
            n = int(p)
            if n == 0:
                return Taylor.constant(np.ones(self.shape))
            out = self
            for _ in range(n - 1):
                out = out * self
            return out
        # y = a^p: a y' = p a' y, so y_k = (1/(k a_0)) sum_{j<k} (p (k - j) - j) a_{k-j} y_j
        a = self
        a0 = a.coef(0)
        r0 = a0.reciprocal() if isinstance(a0, AffineForm) else 1.0 / a0

        def rule(k):
            terms = []
            for j in range(k):
                factor = p * (k - j) - j
                if factor != 0:
                    terms.append(_mul(a.coef(k - j), _mul(y.coef(j), float(factor))))
            return _div_int(_mul(_total(terms), r0), k)

        y = Taylor(rule, a0**p)
        return y

    def __matmul__(self, w):
        w = _const(w)
        return Taylor(
            lambda k: None if self.coef(k) is None else self.coef(k) @ w, self.coef(0) @ w
        )

    def __rmatmul__(self, w):
        return self.__matmul__(_const(w).T)

    def __getitem__(self, key):
        return Taylor(
            lambda k: None if self.coef(k) is None else self.coef(k)[key], self.coef(0)[key]
        )

    def sum(self, axis=None, keepdims=False):
        def s(v):
            if v is None:
                return None
            return (
                v.sum(axis=axis, keepdims=keepdims)
                if isinstance(v, AffineForm)
                else (np.sum(v, axis=axis, keepdims=keepdims))
            )

        return Taylor(lambda k: s(self.coef(k)), s(self.coef(0)))

    # ------------------------------------------------------------------ elementary functions
    def _sincos(self):
        a = self
        a0 = a.coef(0)
        s = Taylor(None, np.sin(a0))
        c = Taylor(None, np.cos(a0))
        # s' = c a', c' = -s a': s_k = (1/k) sum_{j=1..k} j a_j c_{k-j}
        s._rule = lambda k: _div_int(
            _total(_mul(a.coef(j), _mul(c.coef(k - j), float(j))) for j in range(1, k + 1)), k
        )
        c._rule = lambda k: _div_int(
            _total(_mul(a.coef(j), _mul(s.coef(k - j), -float(j))) for j in range(1, k + 1)), k
        )
        return s, c

    def sin(self):
        return self._sincos()[0]

    def cos(self):
        return self._sincos()[1]

    def exp(self):
        a = self
        e = Taylor(None, np.exp(a.coef(0)))
        e._rule = lambda k: _div_int(
            _total(_mul(a.coef(j), _mul(e.coef(k - j), float(j))) for j in range(1, k + 1)), k
        )
        return e

    def tanh(self):
        # t' = (1 - t^2) a' = d a'; d_k = -(t^2)_k for k >= 1
        a = self
        t0 = np.tanh(a.coef(0))
        t = Taylor(None, t0)
        d = Taylor(None, 1.0 - t0 * t0)
        t._rule = lambda k: _div_int(
            _total(_mul(a.coef(j), _mul(d.coef(k - j), float(j))) for j in range(1, k + 1)), k
        )
        d._rule = lambda k: _mul(_total(_mul(t.coef(i), t.coef(k - i)) for i in range(k + 1)), -1.0)
        return t

    def sqrt(self):
        # s^2 = a: s_k = (a_k - sum_{i=1..k-1} s_i s_{k-i}) / (2 s_0)
        a = self
        s0 = np.sqrt(a.coef(0))
        r = s0.reciprocal() if isinstance(s0, AffineForm) else 1.0 / s0
        s = Taylor(None, s0)
        s._rule = lambda k: _mul(
            _sub(a.coef(k), _total(_mul(s.coef(i), s.coef(k - i)) for i in range(1, k))),
            _mul(r, 0.5),
        )
        return s

    def square(self):
        return self * self

    def reciprocal(self):
        return 1.0 / self

    # ------------------------------------------------------------------ protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            return NotImplemented
        name = ufunc.__name__
        unary = {
            "negative": lambda a: -a,
            "positive": lambda a: a,
            "sin": Taylor.sin,
            "cos": Taylor.cos,
            "exp": Taylor.exp,
            "tanh": Taylor.tanh,
            "sqrt": Taylor.sqrt,
            "square": Taylor.square,
            "reciprocal": Taylor.reciprocal,
        }
        binary = {
            "add": lambda a, b: Taylor.constant(a) + b,
            "subtract": lambda a, b: Taylor.constant(a) - b,
            "multiply": lambda a, b: Taylor.constant(a) * b,
            "true_divide": lambda a, b: Taylor.constant(a) / b,
            "divide": lambda a, b: Taylor.constant(a) / b,
            "power": lambda a, b: Taylor.constant(a) ** b,
            "matmul": lambda a, b: a @ b if isinstance(a, Taylor) else b.__rmatmul__(a),
        }
        if name in unary and len(inputs) == 1:
            return unary[name](inputs[0])
        if name in binary and len(inputs) == 2:
            return binary[name](*inputs)
        raise TypeError(
            f"Taylor series: numpy function {name!r} is not supported (the continuous "
            "semantics needs a smooth right-hand side; use semantics='discrete' for a plant "
            f"with kinks); supported: {sorted(unary) + sorted(binary)}"
        )

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if name in ("stack", "concatenate", "concat"):
            return _join_series(name, *args, **kwargs)
        if name == "sum":
            x, *rest = args
            return x.sum(*rest, **kwargs)
        raise TypeError(
            f"Taylor series: numpy function {name!r} is not supported; supported: stack, "
            "concat, concatenate, sum"
        )


def _join_series(name, arrays, axis=0, **kwargs):
    if kwargs:
        raise TypeError(f"Taylor {name}: unsupported options {sorted(kwargs)}")
    parts = [Taylor.constant(a) for a in arrays]
    shapes = [p.shape for p in parts]
    if name == "stack":
        target = np.broadcast_shapes(*shapes)
    else:
        target = None
    fn = np.stack if name == "stack" else np.concatenate

    def coef(k):
        cs = [p.coef(k) for p in parts]
        if all(c is None for c in cs):
            return None
        full = []
        for c, shp in zip(cs, shapes):
            if c is None:
                c = np.zeros(shp if target is None else target)
            elif target is not None and not isinstance(c, AffineForm):
                c = np.broadcast_to(c, target)
            elif target is not None and c.shape != target:
                c = c + np.zeros(target)
            full.append(c)
        return fn(full, axis=axis)

    return Taylor(lambda k: coef(k), coef(0))
