"""Sound output bounds of feed-forward networks over an input box.

Every network is first lowered, by a rule per layer kind of the registry :mod:`neuroctl.layers`
(:data:`LAYER_RULES`), to a canonical
network: affine maps with one activation per hidden layer between them, in float64,

    z_0 = W_0 x + b_0,   z_k = W_k σ_{k-1}(z_{k-1}) + b_k,   y = z_L,

where each ``σ_k`` is ReLU, tanh or sigmoid (:data:`neuroctl.verify.relaxations.ACTIVATIONS`).

Linear layers (including the frozen diagonal normalisation layers of :func:`neuroctl.affine_layer`)
compose into the neighbouring affine maps; every piecewise-linear activation of the registry
(breakpoints ``b_0 < b_1 < ...``, slopes ``s_0, s_1, ...``) is rewritten exactly as a ReLU
combination, ``f(z) = f(b_0) + s_1 relu(z - b_0) - s_0 relu(b_0 - z) + sum_{i>=1} (s_{i+1} - s_i)
relu(z - b_i)`` (the ``relu(b_0 - z)`` term only when ``s_0 != 0``): ``leaky(z) = relu(z) - s
relu(-z)``, ``hardtanh(z) = lo + relu(z - lo) - relu(z - hi)``, PReLU with one slope per channel;
``Tanh`` and ``Sigmoid`` stay smooth activations. The analyses then need one rule each, and read
each activation only through its value and its linear relaxation on an interval
(:mod:`neuroctl.verify.relaxations`):

* interval bound propagation (IBP): centre/radius through the affine maps; the activations are
  non-decreasing, so ``[σ(l), σ(u)]``;
* forward linear bounds (symbolic intervals): a lower and an upper affine function of the input per
  neuron, relaxed at nonlinear neurons (cheap, used for intermediate bounds in branch and bound);
* CROWN-style back-substitution: a linear objective is pulled back through the network to the
  input, choosing at each nonlinear neuron the lower or the upper line of its relaxation according
  to the sign of its coefficient.

All bounds are intersected with the interval bounds, so ``interval ⊇ crown`` holds by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._json import json_dict
from ..layers import LAYER_KINDS, UnsupportedLayer, describe
from .relaxations import ACTIVATIONS, Activation

__all__ = [
    "LAYER_RULES",
    "ReluNetwork",
    "as_relu_network",
    "interval_bounds",
    "forward_bounds",
    "crown_bounds",
    "pre_activation_bounds",
    "linear_lower_bound",
    "OutputBounds",
]


# ---------------------------------------------------------------------------------------------
# canonical form and the per-layer rule table


@dataclass(frozen=True)
class ReluNetwork:
    """A network lowered to ``affine -> σ -> ... -> affine`` in float64.

    Attributes
    ----------
    weights : tuple of ndarray
        ``weights[k]`` has shape ``(n_k, n_{k-1})``; ``n_{-1}`` is the input size.
    biases : tuple of ndarray
        ``biases[k]`` has shape ``(n_k,)``.
    activations : tuple of str, optional
        Activation after each hidden layer (``len(weights) - 1`` names of
        :data:`neuroctl.verify.relaxations.ACTIVATIONS`); all ``"relu"`` when omitted.
    """

    weights: tuple
    biases: tuple
    activations: tuple | None = None
    _acts: tuple = field(init=False, repr=False, compare=False)
    _wpos: tuple = field(init=False, repr=False, compare=False)
    _wneg: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError(
                f"ReluNetwork: expected as many weights as biases (at least one), received "
                f"{len(self.weights)} and {len(self.biases)}"
            )
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise ValueError(
                    f"ReluNetwork: layer {k}: expected W (n, m) and b (n,), received "
                    f"{W.shape} and {b.shape}"
                )
            if k and W.shape[1] != self.weights[k - 1].shape[0]:
                raise ValueError(
                    f"ReluNetwork: layer {k} expects {W.shape[1]} inputs, previous layer has "
                    f"{self.weights[k - 1].shape[0]} outputs"
                )
        acts = self.activations
        if acts is None:
            acts = ("relu",) * (len(self.weights) - 1)
        acts = tuple(acts)
        if len(acts) != len(self.weights) - 1:
            raise ValueError(
                f"ReluNetwork: expected {len(self.weights) - 1} activations (one per hidden "
                f"layer), received {len(acts)}"
            )
        unknown = [a for a in acts if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(
                f"ReluNetwork: activations: expected names among {sorted(ACTIVATIONS)}, received "
                f"{unknown}"
            )
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "_acts", tuple(ACTIVATIONS[a] for a in acts))
        object.__setattr__(self, "_wpos", tuple(np.maximum(W, 0.0) for W in self.weights))
        object.__setattr__(self, "_wneg", tuple(np.minimum(W, 0.0) for W in self.weights))

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_sizes(self) -> list[int]:
        return [W.shape[0] for W in self.weights[:-1]]

    @property
    def piecewise_linear(self) -> bool:
        """Whether every activation is ReLU (so that the MILP encoding applies)."""
        return all(a.piecewise_linear for a in self._acts)

    @property
    def layer_activations(self) -> tuple[Activation, ...]:
        """The :class:`~neuroctl.verify.relaxations.Activation` of every hidden layer."""
        return self._acts

    def __call__(self, x):
        """Float64 forward pass; ``x`` of shape ``(..., n_in)`` -> ``(..., n_out)``."""
        h = np.asarray(x, dtype=np.float64)
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W.T + b
            if k < len(self.weights) - 1:
                h = self._acts[k].numpy(h)
        return h

    def pre_activations(self, x) -> list[np.ndarray]:
        """Pre-activations ``z_k`` of every hidden layer at ``x`` (shape ``(..., n_k)`` each)."""
        h = np.asarray(x, dtype=np.float64)
        out = []
        for k, (W, b) in enumerate(zip(self.weights[:-1], self.biases[:-1])):
            z = h @ W.T + b
            out.append(z)
            h = self._acts[k].numpy(z)
        return out

    def __repr__(self) -> str:
        sizes = [self.n_inputs, *self.hidden_sizes, self.n_outputs]
        if self.piecewise_linear:
            return f"ReluNetwork(sizes={sizes})"
        return f"ReluNetwork(sizes={sizes}, activations={[a.name for a in self._acts]})"


class _Lowering:
    """Accumulates the canonical form while the rule table walks the layers."""

    def __init__(self, n_in: int):
        self.A = np.eye(n_in)  # pending affine map since the last ReLU
        self.c = np.zeros(n_in)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        self.activations: list[str] = []

    @property
    def width(self) -> int:
        return self.A.shape[0]

    def affine(self, W, b):
        self.A, self.c = W @ self.A, W @ self.c + b

    def activation(self, name: str):
        self.weights.append(self.A)
        self.biases.append(self.c)
        self.activations.append(name)
        self.A, self.c = np.eye(self.width), np.zeros(self.width)

    def relu(self):
        self.activation("relu")

    def finish(self) -> ReluNetwork:
        return ReluNetwork(
            tuple(self.weights + [self.A]), tuple(self.biases + [self.c]), tuple(self.activations)
        )


def _t(v) -> np.ndarray:
    return v.detach().cpu().numpy().astype(np.float64)


def _rule_linear(m: nn.Linear, desc, acc: _Lowering):
    W = _t(m.weight)
    if W.shape[1] != acc.width:
        raise ValueError(f"{m}: expects {W.shape[1]} inputs, receives {acc.width}")
    acc.affine(W, _t(m.bias) if m.bias is not None else np.zeros(W.shape[0]))


def _rule_skip(m, desc, acc: _Lowering):
    pass


def _rule_pwl(m, desc, acc: _Lowering):
    """A piecewise-linear activation as an exact ReLU combination (see the module docstring)."""
    n = acc.width
    breaks = [float(b) for b in desc.breaks]
    slopes = [np.broadcast_to(np.asarray(s, dtype=float), (n,)) for s in desc.slopes]
    inter = [float(c) for c in desc.intercepts]
    if breaks == [0.0] and not slopes[0].any() and (slopes[1] == 1.0).all() and inter == [0, 0]:
        acc.relu()
        return
    eye = np.eye(n)
    rows, bias, coef = [eye], [np.full(n, -breaks[0])], [slopes[1]]
    if slopes[0].any():
        rows.append(-eye)
        bias.append(np.full(n, breaks[0]))
        coef.append(-slopes[0])
    for i in range(1, len(breaks)):
        rows.append(eye)
        bias.append(np.full(n, -breaks[i]))
        coef.append(slopes[i + 1] - slopes[i])
    acc.affine(np.vstack(rows), np.concatenate(bias))
    acc.relu()
    at_b0 = slopes[1] * breaks[0] + inter[1]  # f(b_0), per channel
    acc.affine(np.hstack([np.diag(c) for c in coef]), np.array(at_b0, dtype=float))


def _rule_smooth(m, desc, acc: _Lowering):
    if desc.name not in ACTIVATIONS:
        raise UnsupportedLayer(m, "bounds", supported_layers())
    acc.activation(desc.name)


def _rule_sequential(m: nn.Sequential, desc, acc: _Lowering):
    for child in m:
        _apply_rule(child, acc)


#: Layer kind (:data:`neuroctl.layers.KINDS`) -> rule that appends the layer to the canonical ReLU
#: network (DESIGN convention 8). Smooth layers: those with a relaxation in
#: :data:`neuroctl.verify.relaxations.ACTIVATIONS` (tanh, sigmoid).
#: Each rule takes the layers of its own kind (``_rule_linear`` an ``nn.Linear``), which the lookup
#: guarantees and one callable type cannot state, hence ``Any`` for the layer.
LAYER_RULES: dict[str, Callable[[Any, object, _Lowering], None]] = {
    "affine": _rule_linear,
    "identity": _rule_skip,
    "container": _rule_sequential,
    "piecewise_linear": _rule_pwl,
    "smooth": _rule_smooth,
}


def supported_layers() -> list[str]:
    """Names of the layer types that bound propagation supports."""
    return [
        t.__name__
        for t, (kind, _) in LAYER_KINDS.items()
        if kind != "smooth" or t.__name__.lower() in ACTIVATIONS
    ]


def _apply_rule(m: nn.Module, acc: _Lowering):
    try:
        kind, desc = describe(m, analysis="bounds", kinds=LAYER_RULES)
    except UnsupportedLayer as err:
        raise UnsupportedLayer(m, "bounds", supported_layers(), err.reason) from None
    LAYER_RULES[kind](m, desc, acc)


def as_relu_network(net, n_inputs: int | None = None, *, smooth: bool = False) -> ReluNetwork:
    """Lower ``net`` to a :class:`ReluNetwork` (float64, exact).

    Parameters
    ----------
    net : nn.Module or ReluNetwork
        An ``nn.Sequential`` (possibly nested) of supported layers, or a single supported layer.
    n_inputs : int, optional
        Input size; inferred from the first ``nn.Linear`` when omitted.
    smooth : bool, keyword-only
        Accept smooth activations (``Tanh``, ``Sigmoid``), kept as such in the result. By default
        only piecewise-linear networks are accepted, so that the result is a ReLU network (what
        an exact MILP encoding needs); a smooth layer raises ``NotImplementedError``.
    """
    if isinstance(net, ReluNetwork):
        rnet = net
    elif not isinstance(net, nn.Module):
        raise TypeError(f"expected an nn.Module or ReluNetwork, received {type(net).__name__}")
    else:
        if n_inputs is None:
            first = next((m for m in net.modules() if isinstance(m, nn.Linear)), None)
            if first is None:
                raise ValueError("as_relu_network: cannot infer the input size; pass n_inputs=")
            n_inputs = first.in_features
        acc = _Lowering(int(n_inputs))
        _apply_rule(net, acc)
        rnet = acc.finish()
    if not smooth and not rnet.piecewise_linear:
        smooth_names = sorted({a.name for a in rnet.layer_activations if a.name != "relu"})
        raise NotImplementedError(
            f"as_relu_network: expected a piecewise-linear network, received one with smooth "
            f"activations {smooth_names}; pass smooth=True to keep them (bounds and check "
            "support them; the MILP encoding does not)"
        )
    return rnet


# ---------------------------------------------------------------------------------------------
# helpers


def _boxes(net, lower, upper):
    lo = np.asarray(_as_numpy(lower), dtype=np.float64)
    hi = np.asarray(_as_numpy(upper), dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim not in (1, 2):
        raise ValueError(
            f"expected lower and upper of the same shape (n_in,) or (B, n_in), received "
            f"{lo.shape} and {hi.shape}"
        )
    if not np.all(lo <= hi):
        raise ValueError("expected lower <= upper elementwise, received a box with lower > upper")
    rnet = as_relu_network(net, lo.shape[-1], smooth=True)
    if lo.shape[-1] != rnet.n_inputs:
        raise ValueError(f"expected boxes with {rnet.n_inputs} inputs, received shape {lo.shape}")
    single = lo.ndim == 1
    return rnet, np.atleast_2d(lo), np.atleast_2d(hi), single


def _unbatch(single, *arrays):
    out = tuple(a[0] if single else a for a in arrays)
    return out if len(out) > 1 else out[0]


def _ibp_all(rnet: ReluNetwork, lo, hi):
    """Interval pre-activation bounds of every layer (incl. output) for boxes (B, n_in)."""
    m, r = (lo + hi) / 2, (hi - lo) / 2
    out = []
    for k, (W, b) in enumerate(zip(rnet.weights, rnet.biases)):
        zm, zr = m @ W.T + b, r @ np.abs(W).T
        out.append((zm - zr, zm + zr))
        if k < len(rnet.weights) - 1:
            f = rnet._acts[k].numpy
            zl, zu = f(zm - zr), f(zm + zr)  # non-decreasing activations
            m, r = (zl + zu) / 2, (zu - zl) / 2
    return out


def _post_interval(rnet: ReluNetwork, k, l, u):
    """Interval of the activation of hidden layer ``k`` for pre-activations in ``[l, u]``."""
    f = rnet._acts[k].numpy
    return f(l), f(u)


def _concretize_lower(Lam, const, lo, hi):
    """min over the box of Lam x + const; Lam (B, m, n), lo/hi (B, n)."""
    mid, rad = (lo + hi)[:, :, None] / 2, (hi - lo)[:, :, None] / 2
    return const + (Lam @ mid)[..., 0] - (np.abs(Lam) @ rad)[..., 0]


def _backward(rnet: ReluNetwork, pre_bounds, k, Lam, lo, hi):
    """Lower bound of ``Lam z_k`` over each box by back-substitution.

    ``Lam`` has shape (B, m, n_k); ``pre_bounds[j]`` are (l, u) of z_j for j < k.
    Returns (bound (B, m), input coefficients (B, m, n_in), constant (B, m)).
    """
    B, m, _ = Lam.shape
    const = Lam @ rnet.biases[k]
    for j in range(k, -1, -1):
        W = rnet.weights[j]
        Lam = (Lam.reshape(B * m, -1) @ W).reshape(B, m, -1)
        if j == 0:
            break
        l, u = pre_bounds[j - 1]
        low_s, low_c, up_s, up_c = rnet._acts[j - 1].relax(l, u)
        neg, pos = np.minimum(Lam, 0.0), np.maximum(Lam, 0.0)
        const = const + (neg @ up_c[:, :, None])[..., 0] + (pos @ low_c[:, :, None])[..., 0]
        Lam = np.where(Lam >= 0, Lam * low_s[:, None, :], neg * up_s[:, None, :])
        const = const + Lam @ rnet.biases[j - 1]
    return _concretize_lower(Lam, const, lo, hi), Lam, const


def _forward_all(rnet: ReluNetwork, lo, hi):
    """Forward linear (symbolic-interval) pre-activation bounds of the hidden layers, ∩ IBP."""
    B, n = lo.shape
    # lower/upper affine functions of x: coefficients (B, n_in, width), constants (B, width)
    Al = np.broadcast_to(np.eye(n), (B, n, n)).copy()
    Au = Al.copy()
    cl = np.zeros((B, n))
    cu = np.zeros((B, n))
    ibp = _ibp_all(rnet, lo, hi)
    out = []
    for k in range(len(rnet.weights) - 1):
        Wp, Wn, b = rnet._wpos[k].T, rnet._wneg[k].T, rnet.biases[k]
        d = Al.shape[-1]
        Al2 = (Al.reshape(-1, d) @ Wp + Au.reshape(-1, d) @ Wn).reshape(B, n, -1)
        Au2 = (Au.reshape(-1, d) @ Wp + Al.reshape(-1, d) @ Wn).reshape(B, n, -1)
        cl2 = cl @ Wp + cu @ Wn + b
        cu2 = cu @ Wp + cl @ Wn + b
        mid, rad = (lo + hi)[:, None, :] / 2, (hi - lo)[:, None, :] / 2
        zl = cl2 + (mid @ Al2)[:, 0] - (rad @ np.abs(Al2))[:, 0]
        zu = cu2 + (mid @ Au2)[:, 0] + (rad @ np.abs(Au2))[:, 0]
        zl, zu = np.maximum(zl, ibp[k][0]), np.minimum(zu, ibp[k][1])
        out.append((zl, zu))
        # the slopes are non-negative, so the lower function maps through the lower line
        low_s, low_c, up_s, up_c = rnet._acts[k].relax(zl, zu)
        Al, cl = Al2 * low_s[:, None, :], cl2 * low_s + low_c
        Au, cu = Au2 * up_s[:, None, :], cu2 * up_s + up_c
    return out


def _crown_all(rnet: ReluNetwork, lo, hi):
    """CROWN pre-activation bounds of the hidden layers (each by back-substitution), ∩ intervals.

    Layer 0 is affine in the input, so its interval bounds are exact. For deeper layers an interval
    step from the previous layer's bounds comes first; only neurons that it leaves nonlinear in
    some box of the batch (unstable ReLUs, smooth neurons of non-degenerate interval) are bounded
    by back-substitution (stable ReLUs need no relaxation).
    """
    B = lo.shape[0]
    out: list[tuple[np.ndarray, np.ndarray]] = []  # (lower, upper) pre-activation bounds per layer
    for k in range(len(rnet.weights) - 1):
        W, b = rnet.weights[k], rnet.biases[k]
        if k == 0:
            m, r = (lo + hi) / 2, (hi - lo) / 2
        else:
            pl, pu = _post_interval(rnet, k - 1, *out[-1])
            m, r = (pl + pu) / 2, (pu - pl) / 2
        zm, zr = m @ W.T + b, r @ np.abs(W).T
        zl, zu = zm - zr, zm + zr
        if k > 0:
            rows = np.flatnonzero(rnet._acts[k].nonlinear(zl, zu).any(0))
            if rows.size:
                sel = np.eye(W.shape[0])[rows]
                Lam = np.broadcast_to(np.vstack([sel, -sel]), (B, 2 * rows.size, W.shape[0]))
                val, _, _ = _backward(rnet, out, k, Lam, lo, hi)
                zl[:, rows] = np.maximum(val[:, : rows.size], zl[:, rows])
                zu[:, rows] = np.minimum(-val[:, rows.size :], zu[:, rows])
        out.append((zl, zu))
    return out


_INTERMEDIATE = {
    "interval": lambda rnet, lo, hi: [lu for lu in _ibp_all(rnet, lo, hi)[:-1]],
    "forward": _forward_all,
    "crown": _crown_all,
}


def _intermediate(method):
    try:
        return _INTERMEDIATE[method]
    except KeyError:
        raise ValueError(
            f"method: expected one of {sorted(_INTERMEDIATE)}, received {method!r}"
        ) from None


# ---------------------------------------------------------------------------------------------
# public functions


def pre_activation_bounds(net, lower, upper, *, method: str = "crown") -> list:
    """Bounds on the pre-activation of every hidden layer over the input box(es).

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like, shape (n_in,) or (B, n_in)
        Input box(es).
    method : {"interval", "forward", "crown"}, keyword-only
        Interval propagation, forward linear bounds, or CROWN back-substitution per layer
        (each intersected with the interval bounds).

    Returns
    -------
    list of (ndarray, ndarray)
        One ``(l, u)`` pair per hidden layer of :func:`as_relu_network` ``(net)``, each of shape
        ``(n_k,)`` or ``(B, n_k)``.
    """
    rnet, lo, hi, single = _boxes(net, lower, upper)
    return [_unbatch(single, l, u) for l, u in _intermediate(method)(rnet, lo, hi)]


def interval_bounds(net, lower, upper):
    """Interval bound propagation: sound output bounds over the box(es).

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like, shape (n_in,) or (B, n_in)

    Returns
    -------
    (ndarray, ndarray)
        Output lower and upper bounds, float64, shape (n_out,) or (B, n_out).
    """
    rnet, lo, hi, single = _boxes(net, lower, upper)
    l, u = _ibp_all(rnet, lo, hi)[-1]
    return _unbatch(single, l, u)


def linear_lower_bound(net, lower, upper, C, d=None, *, intermediate: str = "forward"):
    """Lower bound of ``C y + d`` over each box by back-substitution.

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like, shape (B, n_in)
    C : array_like, shape (m, n_out) or (B, m, n_out)
    d : array_like, shape (m,), optional
    intermediate : {"interval", "forward", "crown"}, keyword-only
        How the ReLU pre-activation bounds are obtained.

    Returns
    -------
    bound : ndarray, shape (B, m)
        Sound lower bound of each row of ``C y + d`` over each box.
    coef : ndarray, shape (B, m, n_in)
        The linear lower bound ``coef x + const <= C y + d`` valid on each box.
    vertex : ndarray, shape (B, m, n_in)
        Box vertex minimizing the linear lower bound (a candidate counterexample).
    """
    rnet, lo, hi, _ = _boxes(net, lower, upper)
    B = lo.shape[0]
    C = np.asarray(C, dtype=np.float64)
    C = np.broadcast_to(C, (B, *C.shape[-2:]))
    pre = _intermediate(intermediate)(rnet, lo, hi)
    val, Lam, _ = _backward(rnet, pre, len(rnet.weights) - 1, C, lo, hi)
    if d is not None:
        val = val + np.asarray(d, dtype=np.float64)
    vertex = np.where(Lam >= 0, lo[:, None, :], hi[:, None, :])
    return val, Lam, vertex


def forward_bounds(net, lower, upper):
    """Output bounds from forward linear bounds of the hidden layers and a final back-substitution.

    Cheaper than :func:`crown_bounds` (one backward pass instead of one per layer), looser on deep
    networks. Same arguments and returns as :func:`interval_bounds`.
    """
    return _linear_output_bounds(net, lower, upper, "forward")


def crown_bounds(net, lower, upper):
    """CROWN-style linear relaxation bounds on every output over the box(es).

    Intermediate bounds come from back-substitution at every layer; the output bounds from a final
    back-substitution of ``+I`` and ``-I``; all intersected with :func:`interval_bounds`.

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like, shape (n_in,) or (B, n_in)

    Returns
    -------
    (ndarray, ndarray)
        Output lower and upper bounds, float64, shape (n_out,) or (B, n_out).
    """
    return _linear_output_bounds(net, lower, upper, "crown")


def _linear_output_bounds(net, lower, upper, intermediate):
    rnet, lo, hi, single = _boxes(net, lower, upper)
    n = rnet.n_outputs
    C = np.vstack([np.eye(n), -np.eye(n)])
    val, _, _ = linear_lower_bound(rnet, lo, hi, C, intermediate=intermediate)
    il, iu = _ibp_all(rnet, lo, hi)[-1]
    l, u = np.maximum(val[:, :n], il), np.minimum(-val[:, n:], iu)
    return _unbatch(single, l, u)


@dataclass(frozen=True)
class OutputBounds:
    """Sound bounds on every output of a network over an input box.

    Attributes
    ----------
    lower, upper : ndarray, shape (n_out,) or (B, n_out)
    method : str
    input_lower, input_upper : ndarray
        The input box.
    time : float
        Wall-clock seconds.
    """

    lower: np.ndarray
    upper: np.ndarray
    method: str
    input_lower: np.ndarray
    input_upper: np.ndarray
    time: float = 0.0

    def __iter__(self):
        return iter((self.lower, self.upper))

    def __repr__(self) -> str:
        with np.printoptions(precision=4, suppress=True):
            return (
                f"OutputBounds(method={self.method!r}, lower={self.lower}, upper={self.upper}, "
                f"time={self.time:.3g}s)"
            )

    @json_dict
    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "lower": np.asarray(self.lower).tolist(),
            "upper": np.asarray(self.upper).tolist(),
            "input_lower": np.asarray(self.input_lower).tolist(),
            "input_upper": np.asarray(self.input_upper).tolist(),
            "time": self.time,
        }

    def plot(self, ax=None, *, names: Sequence[str] | None = None):
        """Bar plot of the output intervals (single box). Returns the axes."""
        import matplotlib.pyplot as plt

        lo, hi = np.atleast_2d(self.lower)[0], np.atleast_2d(self.upper)[0]
        if ax is None:
            _, ax = plt.subplots()
        idx = np.arange(lo.size)
        ax.bar(idx, hi - lo, bottom=lo, color="C0", alpha=0.6)
        ax.set_xticks(idx, names if names is not None else [f"y{i}" for i in idx])
        ax.set_ylabel("output bounds")
        ax.set_title(f"output bounds ({self.method})")
        return ax


def _as_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
