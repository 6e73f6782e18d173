"""Output specifications: linear constraints on network outputs, their disjunctions, and VNN-LIB.

A :class:`Spec` is stored by its *unsafe set*, as in VNN-LIB: a union of polytopes

    U = ∪_i { y : C_i y <= d_i }.

The property *holds* on an input box when no input of the box maps into ``U``. The *margin* of an
output ``y`` is ``min_i max_j (C_i y - d_i)_j``: it is ``<= 0`` exactly when ``y`` lies in ``U``
(the unsafe set is closed), and positive when ``y`` is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._json import json_dict

__all__ = ["Spec", "VnnlibQuery", "read_vnnlib"]


def _as_rows(C, d, n_outputs=None):
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.atleast_1d(np.asarray(d, dtype=np.float64))
    if C.ndim != 2 or d.shape != (C.shape[0],):
        raise ValueError(
            f"Spec: expected C of shape (m, n_out) and d of shape (m,), received {C.shape} and "
            f"{d.shape}"
        )
    if n_outputs is not None and C.shape[1] != n_outputs:
        raise ValueError(f"Spec: expected {n_outputs} output columns, received {C.shape[1]}")
    if not (np.isfinite(C).all() and np.isfinite(d).all()):
        raise ValueError("Spec: expected finite constraint coefficients")
    return C, d


@dataclass(frozen=True, eq=False)
class Spec:
    """A property of a network's outputs, stored as its unsafe set (a union of polytopes).

    Use the constructors :meth:`require` (``A y < b`` must hold), :meth:`output_range`,
    :meth:`unsafe_polytope`, and ``|`` to join unsafe sets.

    Parameters
    ----------
    unsafe : sequence of (C, d)
        Each pair describes one unsafe polytope ``{y : C y <= d}``, ``C`` of shape
        ``(m_i, n_out)``, ``d`` of shape ``(m_i,)``. The unsafe set is their union.
    name : str, keyword-only
        A label used in reports.
    """

    unsafe: tuple
    name: str = ""

    def __post_init__(self):
        pairs = list(self.unsafe)
        if not pairs:
            raise ValueError("Spec: expected at least one unsafe polytope, received none")
        rows = [_as_rows(C, d) for C, d in pairs]
        n = {C.shape[1] for C, _ in rows}
        if len(n) != 1:
            raise ValueError(f"Spec: all polytopes must have the same output size, received {n}")
        object.__setattr__(self, "unsafe", tuple(rows))

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def unsafe_polytope(cls, C, d, *, name: str = "") -> Spec:
        """Unsafe set ``{y : C y <= d}`` (all rows at once)."""
        return cls(((C, d),), name=name)

    @classmethod
    def require(cls, A, b, *, name: str = "") -> Spec:
        """The property ``A y < b`` (every row, everywhere); unsafe: some row ``a_k y >= b_k``.

        A row at equality is unsafe (the unsafe set is closed); :meth:`output_range` states
        non-strict bounds on single outputs.
        """
        A, b = _as_rows(A, b)
        return cls(tuple((-A[k : k + 1], -b[k : k + 1]) for k in range(A.shape[0])), name=name)

    @classmethod
    def output_range(cls, n_outputs: int, *, lower=None, upper=None, name: str = "") -> Spec:
        """The property ``lower <= y <= upper``, non-strict: an output at a bound satisfies it.

        The unsafe set of an upper bound is ``y_k > upper_k``, stored as the closed set
        ``y_k >= nextafter(upper_k, inf)`` (the same set of float64 outputs), and likewise
        ``y_k < lower_k`` for a lower bound. The margin of a bound is therefore one float64
        spacing above ``upper_k - y_k`` (or ``y_k - lower_k``).

        Parameters
        ----------
        n_outputs : int
            Number of network outputs.
        lower, upper : array_like, shape (n_outputs,) or (), optional, keyword-only
            Bounds on the outputs, in the outputs' units; ``None`` or ``±inf`` entries leave a
            side unconstrained.
        name : str, keyword-only
            A label used in reports.

        Returns
        -------
        Spec
        """
        eye = np.eye(int(n_outputs))
        rows, rhs = [], []
        for bound, sign in ((upper, 1.0), (lower, -1.0)):
            if bound is None:
                continue
            bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), (int(n_outputs),))
            for k in np.flatnonzero(np.isfinite(bound)):
                rows.append(sign * eye[k])
                # unsafe: sign * y_k >= the next float past sign * bound_k, i.e. beyond the bound
                rhs.append(np.nextafter(sign * bound[k], np.inf))
        if not rows:
            raise ValueError("Spec.output_range: expected at least one finite lower or upper bound")
        return cls.require(np.array(rows), np.array(rhs), name=name)

    def __or__(self, other: Spec) -> Spec:
        """Union of unsafe sets (the property must exclude both)."""
        if not isinstance(other, Spec):
            return NotImplemented
        return Spec(
            self.unsafe + other.unsafe, name=" | ".join(n for n in (self.name, other.name) if n)
        )

    # --- evaluation ---------------------------------------------------------------------------

    @property
    def n_outputs(self) -> int:
        return self.unsafe[0][0].shape[1]

    def margins(self, y) -> np.ndarray:
        """Per-polytope margins ``max_j (C_i y - d_i)_j``; shape ``(..., n_polytopes)``."""
        y = np.asarray(y, dtype=np.float64)
        return np.stack([(y @ C.T - d).max(-1) for C, d in self.unsafe], axis=-1)

    def margin(self, y) -> np.ndarray:
        """``min_i max_j (C_i y - d_i)_j``, shape ``(...)``: ``<= 0`` iff ``y`` is unsafe."""
        return self.margins(y).min(-1)

    def __repr__(self) -> str:
        sizes = [C.shape[0] for C, _ in self.unsafe]
        label = f"{self.name!r}, " if self.name else ""
        return f"Spec({label}n_outputs={self.n_outputs}, unsafe polytopes with rows {sizes})"

    @json_dict
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "unsafe": [{"C": C.tolist(), "d": d.tolist()} for C, d in self.unsafe],
        }


@dataclass(frozen=True, eq=False)
class VnnlibQuery:
    """One input box of a VNN-LIB file with the output property checked on it."""

    lower: np.ndarray
    upper: np.ndarray
    spec: Spec

    def __iter__(self):
        return iter((self.lower, self.upper, self.spec))

    def __repr__(self) -> str:
        return f"VnnlibQuery(n_in={self.lower.size}, spec={self.spec!r})"


# --- VNN-LIB ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _parse_sexprs(text: str):
    text = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) < 2:
                raise ValueError("read_vnnlib: unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ValueError("read_vnnlib: unbalanced '('")
    return stack[0]


def _linear(expr, variables):
    """Linear expression -> (dict var -> coef, constant)."""
    if isinstance(expr, str):
        if expr in variables:
            return {expr: 1.0}, 0.0
        try:
            return {}, float(expr)
        except ValueError:
            raise ValueError(f"read_vnnlib: unknown symbol {expr!r}") from None
    op, *args = expr
    parts = [_linear(a, variables) for a in args]
    if op == "+" or (op == "-" and len(parts) > 1):
        coef: dict[str, float] = {}
        const = 0.0
        for i, (c, k) in enumerate(parts):
            sign = -1.0 if (op == "-" and i > 0) else 1.0
            for v, a in c.items():
                coef[v] = coef.get(v, 0.0) + sign * a
            const += sign * k
        return coef, const
    if op == "-":
        ((c, k),) = parts
        return {v: -a for v, a in c.items()}, -k
    if op == "*":
        coef, const = {}, 1.0
        for c, k in parts:
            if c and coef:
                raise ValueError("read_vnnlib: non-linear product")
            if c:
                coef = {v: a * const for v, a in c.items()}
                const = 0.0
            else:
                coef = {v: a * k for v, a in coef.items()}
                const *= k
        return coef, const
    raise NotImplementedError(f"read_vnnlib: unsupported operator {op!r} in an expression")


def _dnf(formula, variables):
    """Formula -> list of conjunctions, each a list of atoms (coef dict, const) meaning <= 0."""
    if isinstance(formula, str):
        raise ValueError(f"read_vnnlib: expected a formula, received {formula!r}")
    op, *args = formula
    if op in ("<=", ">=", "<", ">"):
        if len(args) != 2:
            raise NotImplementedError(f"read_vnnlib: {op} with {len(args)} arguments")
        (ca, ka), (cb, kb) = (_linear(a, variables) for a in args)
        if op in (">=", ">"):
            (ca, ka), (cb, kb) = (cb, kb), (ca, ka)
        coef = dict(ca)
        for v, a in cb.items():
            coef[v] = coef.get(v, 0.0) - a
        return [[(coef, ka - kb)]]
    if op == "and":
        out = [[]]
        for a in args:
            out = [c1 + c2 for c1 in out for c2 in _dnf(a, variables)]
        return out
    if op == "or":
        return [c for a in args for c in _dnf(a, variables)]
    raise NotImplementedError(f"read_vnnlib: unsupported connective {op!r}")


def read_vnnlib(path, *, n_inputs: int | None = None, n_outputs: int | None = None) -> list:
    """Read a VNN-LIB property into input boxes and output specs.

    The VNN-LIB file describes a counterexample: inputs ``X_i`` in a box (or a disjunction of
    boxes) whose outputs ``Y_j`` satisfy linear constraints (or a disjunction of conjunctions).
    The returned specs hold when no such counterexample exists.

    Parameters
    ----------
    path : str or Path
    n_inputs, n_outputs : int, optional, keyword-only
        Expected sizes (checked; inferred from the declarations otherwise).

    Returns
    -------
    list of VnnlibQuery
        One ``(lower, upper, spec)`` per input box; the property holds iff it holds on every box.
    """
    exprs = _parse_sexprs(Path(path).read_text())
    names = []
    conj: list[list] = [[]]  # disjunction of conjunctions of atoms, as _dnf returns
    for e in exprs:
        if not isinstance(e, list) or not e:
            continue
        if e[0] == "declare-const":
            names.append(e[1])
        elif e[0] == "assert":
            conj = [c1 + c2 for c1 in conj for c2 in _dnf(e[1], set(names))]
        else:
            raise NotImplementedError(f"read_vnnlib: unsupported command {e[0]!r}")
    xs = sorted((v for v in names if v.startswith("X_")), key=lambda v: int(v[2:]))
    ys = sorted((v for v in names if v.startswith("Y_")), key=lambda v: int(v[2:]))
    for given, found, what in ((n_inputs, xs, "inputs"), (n_outputs, ys, "outputs")):
        if given is not None and given != len(found):
            raise ValueError(
                f"read_vnnlib: expected {given} {what}, the file declares {len(found)}"
            )
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    boxes: dict[tuple, list] = {}
    order = []
    for term in conj:
        lo, hi = np.full(len(xs), -np.inf), np.full(len(xs), np.inf)
        rows, rhs = [], []
        for coef, const in term:
            vars_ = [v for v, a in coef.items() if a != 0.0]
            if vars_ and all(v in xi for v in vars_):
                if len(vars_) != 1:
                    raise NotImplementedError(
                        "read_vnnlib: only bound constraints on single inputs are supported, "
                        f"received a constraint on {vars_}"
                    )
                (v,) = vars_
                a = coef[v]
                if a > 0:
                    hi[xi[v]] = min(hi[xi[v]], -const / a)
                else:
                    lo[xi[v]] = max(lo[xi[v]], -const / a)
            elif all(v in yi for v in vars_):
                row = np.zeros(len(ys))
                for v in vars_:
                    row[yi[v]] = coef[v]
                rows.append(row)
                rhs.append(-const)
            else:
                raise NotImplementedError(
                    f"read_vnnlib: constraints mixing inputs and outputs are not supported: {vars_}"
                )
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"read_vnnlib: unbounded input box in {path}: {lo}, {hi}")
        if not rows:
            raise ValueError(f"read_vnnlib: a disjunct of {path} constrains no output")
        key = tuple(lo) + tuple(hi)
        if key not in boxes:
            boxes[key] = []
            order.append((key, lo, hi))
        boxes[key].append((np.array(rows), np.array(rhs)))
    name = Path(path).stem
    return [VnnlibQuery(lo, hi, Spec(tuple(boxes[key]), name=name)) for key, lo, hi in order]
