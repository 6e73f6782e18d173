"""Per-layer rule table for the local-gain analysis of a network (DESIGN.md convention 8).

The walk propagates, for a batch of ``B`` points, an *augmented* array ``T`` of shape
``(1 + n, B, k)``: ``T[0]`` is the value of the current layer's output (``k`` channels) and
``T[1 + i]`` its derivative with respect to input ``i`` (``dz_k/dx_i``). This is
forward-mode differentiation done with one matrix product per ``nn.Linear`` and one elementwise
scaling per activation, in float64 whatever the network's dtype.

Every layer type maps to a small rule ``rule(layer, walk) -> None`` that updates ``walk.T`` and
the bookkeeping of :class:`Walk`:

* affine layers (``nn.Linear``) multiply by the weight and add the bias to the value row;
* piecewise-linear activations (ReLU, LeakyReLU, PReLU, Hardtanh, ReLU6) are described by their
  breakpoints, slopes and intercepts; the rule records each neuron's pre-activation, its distance
  to the nearest breakpoint (in the dual norm of the ball) and its linear piece, and stops the walk
  at an unresolved kink when the caller asks for kink enumeration;
* smooth activations (tanh, sigmoid, softplus, ELU, GELU, SiLU) scale the Jacobian by the
  derivative and update global bounds on the Lipschitz constant and on the Lipschitz constant of
  the gradient, which give the validity radius of the affine model.

The rules are written once for numpy and torch (``xp`` below is the namespace of the walk):
:func:`walk_network` runs small batches on numpy float64 arrays (little per-operation overhead,
for the single-point path of ``analyze``) and large batches on torch float64 tensors.

The layer kinds and their descriptions (breakpoints and slopes, f, f' and bounds of f'') come from
the registry :mod:`neuroctl.layers`; :data:`GAIN_RULES` only maps each kind to its rule here.
Unsupported layers raise :class:`neuroctl.layers.UnsupportedLayer` naming the layer and listing the
supported ones.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._array import Array
from .layers import LAYER_KINDS, PiecewiseLinear, Smooth, describe, layer_names

__all__ = ["GAIN_RULES", "Walk", "KinkFound", "walk_network", "supported_layers"]

F64 = torch.float64

#: Batches up to this size are walked with numpy (lower overhead per operation).
NUMPY_MAX_BATCH = 64

_PARAM_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _is_np(a) -> bool:
    return isinstance(a, np.ndarray)


def _param(layer: nn.Module, name: str, like):
    """A float64 copy of ``layer.<name>`` as numpy or torch (cached, refreshed on change)."""
    p = getattr(layer, name)
    if p is None:
        return None
    key = (name, _is_np(like))
    cache = _PARAM_CACHE.setdefault(layer, {})
    hit = cache.get(key)
    if hit is not None and hit[0] is p and hit[1] == p._version:
        return hit[2]
    val = p.detach().to(F64)
    if _is_np(like):
        val = val.cpu().numpy().copy()
    cache[key] = (p, p._version, val)
    return val


def _take(a, idx, axis):
    """``take_along_axis`` / ``gather``."""
    if _is_np(a):
        return np.take_along_axis(a, idx, axis)
    return torch.gather(a, axis, idx)


def _where(c, a, b):
    return np.where(c, a, b) if _is_np(c) else torch.where(c, a, b)


@dataclass
class PWLSpec:
    """A scalar continuous piecewise-linear function: breaks ``b_0 < b_1 < ...``, one slope and
    one intercept per piece (``len(breaks) + 1`` pieces); slopes may be per channel (shape (k,))."""

    breaks: list[float]
    slopes: list  # floats or tensors of shape (k,)
    intercepts: list[float]

    def __post_init__(self) -> None:
        self.has_intercepts = any(float(c) != 0.0 for c in self.intercepts)


@dataclass
class Record:
    """What the walk learned about one activation layer (batch of ``B`` points, ``k`` neurons)."""

    name: str
    z: Array | None  # (B, k) pre-activations (PWL layers: only with keep_grads)
    piece: Array  # (B, k) int8 index of the linear piece (-1 for smooth layers)
    distance: Array  # (B, k) distance of x to the neuron's nearest breakpoint
    grad: Array | None = None  # (B, k, n) pre-activation gradients (optional)
    offset: Array | None = None  # (B, k) pre-activation offsets: z(x') = grad x' + offset
    smooth: bool = False
    # PWL layers: the neuron nearest to its breakpoint, per point: (distance (B,), neuron (B,),
    # its pre-activation gradient (B, n), pre-activation (B,) and breakpoint (B,) or scalar)
    nearest: tuple | None = None


@dataclass
class Walk:
    """State of one pass through a network (see module docstring); every array is numpy or
    torch, the kind of ``x``."""

    T: Array
    x: Array  # (B, n)
    norm: float
    kink_tol: float
    keep_grads: bool = False
    stop_at_kink: bool = False
    forced: dict = field(default_factory=dict)  # record index -> {neuron: piece}
    records: list = field(default_factory=list)
    lip: float = 1.0
    curv: float = 0.0
    smooth_seen: bool = False
    binding_dist: Array | None = None  # (B,) distance to the nearest breakpoint
    binder: Binding | None = None  # which neuron that is and the direction to it, on demand
    kink_mask: Array | None = None  # (B,) a point lies on an unresolved kink
    need_lip: bool = True  # track Lipschitz bounds (networks with smooth layers)
    # spare torch buffers by shape, shared by the walks of one batch: large fresh arrays cost
    # more to allocate (page faults) than the matrix product that fills them
    pool: dict | None = None


class KinkFound(Exception):
    """Raised by the walk (single point, ``stop_at_kink``) at the first unresolved kink."""

    def __init__(self, record: int, neurons, pieces, grads, values):
        super().__init__("kink")
        self.record = record
        self.neurons = neurons  # list of int
        self.pieces = pieces  # list of (left piece, right piece)
        self.grads = grads  # (a, n) tensor of pre-activation gradients
        self.values = values  # (a,) pre-activation minus breakpoint


def _dual_norm(g, norm: float):
    """Dual norm (ℓ2 -> ℓ2, ℓ∞ -> ℓ1, ℓ1 -> ℓ∞) of gradients stored as rows ``g[i]`` (axis 0).

    Accumulated row by row in place: reductions over the leading axis of a (n, B, k) tensor are
    several times slower in torch.
    """
    use_np = _is_np(g)
    if norm == 2:
        acc = g[0] * g[0]
        for r in g[1:]:
            if use_np:
                acc += r * r
            else:
                acc.addcmul_(r, r)
        return np.sqrt(acc, out=acc) if use_np else acc.sqrt_()
    acc = abs(g[0])
    for r in g[1:]:
        if math.isinf(norm):
            acc += abs(r)
        elif use_np:
            np.maximum(acc, abs(r), out=acc)
        else:
            torch.maximum(acc, r.abs(), out=acc)
    return acc


def _ball_direction(g: Array, norm: float) -> Array:
    """Unit vector (in ``norm``) that maximises ``g . d``, rows of ``g`` of shape (B, n)."""
    xp = np if _is_np(g) else torch
    if norm == 2:
        nrm = (g * g).sum(-1, keepdims=True) if _is_np(g) else (g * g).sum(-1, keepdim=True)
        return (
            g / xp.sqrt(nrm).clip(1e-300, None) if _is_np(g) else g / nrm.sqrt().clamp_min(1e-300)
        )
    if math.isinf(norm):
        return xp.sign(g)
    rows = xp.arange(g.shape[0])
    idx = abs(g).argmax(-1)
    d = g * 0
    d[rows, idx] = xp.sign(g[rows, idx])
    return d


# ----------------------------------------------------------------------------- affine layers
def _linear(layer: nn.Linear, w: Walk) -> None:
    W = _param(layer, "weight", w.T)
    T = w.T
    if w.pool is None or _is_np(T):
        w.T = T @ W.T
    else:
        # no record keeps a view of the current T (PWL rules copy what they keep, smooth ones
        # replace T): it can be recycled once multiplied
        spare = w.pool.get((*T.shape[:-1], W.shape[0]))
        w.T = torch.matmul(T, W.T, out=spare.pop()) if spare else T @ W.T
        w.pool.setdefault(tuple(T.shape), []).append(T)
    b = _param(layer, "bias", w.T)
    if b is not None:
        w.T[0] += b
    if w.need_lip:  # only smooth layers use the Lipschitz bounds (an SVD per layer)
        Wn = W if _is_np(W) else W.numpy()
        s = float(np.linalg.norm(Wn, 2)) if Wn.size else 0.0
        w.lip *= s
        w.curv *= s


def _identity(layer: nn.Module, w: Walk) -> None:
    # the registry refuses the instances that are not the identity (Dropout in training mode,
    # Flatten of a non-vector); the analysis works on vectors (..., k)
    describe(layer, analysis="local_gain")


def _sequential(layer: nn.Sequential, w: Walk) -> None:
    for sub in layer:
        apply_rule(sub, w)


# ------------------------------------------------------------------- piecewise-linear layers
def _pwl_spec(layer: nn.Module) -> PWLSpec:
    kind, desc = describe(layer, analysis="local_gain", kinds=("piecewise_linear",))
    assert isinstance(desc, PiecewiseLinear)
    return PWLSpec(list(desc.breaks), list(desc.slopes), list(desc.intercepts))


def _as_row(v, k: int) -> np.ndarray:
    t = np.asarray(v, dtype=float)
    return np.broadcast_to(t, (k,)) if t.size == 1 else t.reshape(k)


def _pwl_tables(layer: nn.Module, k: int, use_np: bool):
    """(spec, breaks, slopes (P, k), intercepts (P, k), max |slope|, whether the slopes are
    exactly 0 then 1) of a PWL layer, cached per layer (refreshed when a PReLU's weight
    changes)."""
    cache = _PARAM_CACHE.setdefault(layer, {})
    stamp = (layer.weight, layer.weight._version) if isinstance(layer, nn.PReLU) else None
    key = ("pwl", k, use_np)
    hit = cache.get(key)
    if hit is not None and (stamp is None or (hit[0][0] is stamp[0] and hit[0][1] == stamp[1])):
        return hit[1:]
    spec = _pwl_spec(layer)
    breaks = np.asarray(spec.breaks, dtype=float)
    slopes: Array = np.stack([_as_row(s_, k) for s_ in spec.slopes])  # (P, k)
    inter: Array = np.stack([_as_row(c_, k) for c_ in spec.intercepts])  # (P, k)
    smax = float(abs(slopes).max()) if k else 0.0
    relu_like = len(slopes) == 2 and not slopes[0].any() and bool((slopes[1] == 1.0).all())
    if not use_np:
        slopes, inter = torch.from_numpy(slopes), torch.from_numpy(inter)
    cache[key] = (stamp, spec, breaks, slopes, inter, smax, relu_like)
    return spec, breaks, slopes, inter, smax, relu_like


def _pwl(layer: nn.Module, w: Walk) -> None:
    T = w.T
    use_np = _is_np(T)
    z = T[0]  # (B, k)
    G = T[1:]  # (n, B, k)
    B, k = z.shape
    rec_idx = len(w.records)
    spec, breaks, slopes, inter, smax, relu_like = _pwl_tables(layer, k, use_np)
    one_break = len(breaks) == 1
    if one_break:  # fast path (ReLU, LeakyReLU, PReLU): the piece is a boolean
        diff = z - breaks[0] if breaks[0] else z
        piece = diff > 0
        mingap = abs(diff)
    else:
        br = breaks if use_np else torch.from_numpy(breaks)
        piece = (z[..., None] > br).sum(-1)  # (B, k)
        mingap = abs(z[..., None] - br).min(-1)  # (B, k)
        if not use_np:
            mingap = mingap.values
    if w.smooth_seen:
        # pre-activation not affine: bound its variation by a global Lipschitz constant
        n = G.shape[0]
        factor = math.sqrt(n) if math.isinf(w.norm) else 1.0
        gnorm = z * 0 + w.lip * factor
    else:
        gnorm = _dual_norm(G, w.norm)  # (B, k)
    # distance to the breakpoint; inf for a neuron whose pre-activation is constant (mingap / 0
    # is inf, 0 / 0 nan). Elementwise arithmetic: torch.where is several times slower on CPU.
    if use_np:
        dist = np.divide(mingap, gnorm, out=np.full((B, k), np.inf), where=gnorm > 0)
    else:
        dist = (mingap / gnorm).nan_to_num_(nan=math.inf, posinf=math.inf)
    ambiguous = mingap <= w.kink_tol
    forced = w.forced.get(rec_idx, {})
    if forced:
        for j, p in forced.items():
            piece[:, j] = p
            ambiguous[:, j] = False
    if bool(ambiguous.any()):
        ambiguous &= gnorm > 0  # a constant pre-activation is no kink
        if w.stop_at_kink and bool(ambiguous.any()):
            amb0 = np.asarray(ambiguous[0])
            js = [int(j) for j in np.flatnonzero(amb0)]
            z0 = np.asarray(z[0])
            near0 = abs(z0[:, None] - breaks).argmin(-1)
            sides = [(int(near0[j]), int(near0[j]) + 1) for j in js]
            G0 = np.asarray(G[:, 0])
            raise KinkFound(rec_idx, js, sides, G0[:, js].T.copy(), z0[js] - breaks[near0[js]])
        any_amb = ambiguous.any(-1)
        if bool(any_amb.any()):
            w.kink_mask = w.kink_mask | any_amb
            # points at a kink have distance 0 (they lie on the boundary)
            dist = _where(ambiguous, 0.0, dist)
    has_intercepts = spec.has_intercepts
    if one_break:
        # select by arithmetic (exact: one of the two products is an exact zero)
        on = piece.astype(float) if use_np else piece.to(F64)
        if relu_like:
            s = on
        else:
            off = 1.0 - on
            s = on * slopes[1] + off * slopes[0]
        if has_intercepts:
            c = on * inter[1] + (1.0 - on) * inter[0]
    else:
        s = _take(slopes, piece, 0) if k else slopes[:0]
        if has_intercepts:
            c = _take(inter, piece, 0) if k else inter[:0]
    grad = offset = z_kept = None
    if w.keep_grads:
        grad = G.transpose(1, 2, 0).copy() if use_np else G.permute(1, 2, 0).clone()
        ein = np.einsum if use_np else torch.einsum
        offset = z - ein("bkn,bn->bk", grad, w.x)
        z_kept = z.copy() if use_np else z.clone()
    p8 = piece.astype(np.int8) if use_np else piece.to(torch.int8)
    w.records.append(
        Record(
            type(layer).__name__,
            z_kept,
            p8,
            dist,
            grad,
            offset,
            nearest=_nearest(dist, z, G, breaks) if k else None,
        )
    )
    T *= s  # in place (a fresh array is slower): z and G are not used after this
    if has_intercepts:
        T[0] += c
    w.lip *= smax
    w.curv *= smax


def _nearest(dist, z, G, breaks: np.ndarray) -> tuple:
    """Per point, the neuron of a layer nearest to its breakpoint (first on ties): its distance
    (B,), index (B,), pre-activation gradient (B, n), pre-activation (B,), breakpoint."""
    B = z.shape[0]
    if _is_np(dist):
        j = dist.argmin(-1)
        d = dist[np.arange(B), j]
        zj = z[np.arange(B), j]
        gj = G[:, np.arange(B), j].T
    else:
        d, j = dist.min(-1)
        zj = z.gather(1, j[:, None])[:, 0]
        gj = G.gather(2, j.view(1, B, 1).expand(G.shape[0], B, 1))[..., 0].T
    bj: float | Array
    if len(breaks) == 1:
        bj = float(breaks[0])
    else:
        bj = breaks[abs(np.asarray(zj)[:, None] - breaks).argmin(-1)]
        bj = bj if _is_np(dist) else torch.from_numpy(bj)
    return d, j, gj, zj, bj


@dataclass
class Binding:
    """The neuron whose breakpoint is nearest to each point, over all piecewise-linear layers
    (first layer, then first neuron, on ties), and the unit direction towards it, computed on
    demand from the per-layer candidates (small arrays: the walk itself is not kept)."""

    B: int
    n: int
    norm: float
    use_np: bool
    layers: list  # (record index, nearest tuple of _nearest) per PWL layer with neurons

    def distance(self):
        """(B,) distance to the nearest breakpoint (inf if none)."""
        if not self.layers or self.B == 0:
            if self.use_np:
                return np.full(self.B, np.inf)
            return torch.full((self.B,), math.inf, dtype=F64)
        xp = np if self.use_np else torch
        D = xp.stack([c[0] for _, c in self.layers], -1)
        return D.min(-1) if self.use_np else D.min(-1).values

    def compute(self):
        """(binding (B, 2) of (record index, neuron), -1 if none; direction (B, n))."""
        B, n, use_np = self.B, self.n, self.use_np
        xp = np if use_np else torch
        if not self.layers or B == 0:
            if use_np:
                return np.full((B, 2), -1, dtype=np.int64), np.zeros((B, n))
            return torch.full((B, 2), -1, dtype=torch.long), torch.zeros((B, n), dtype=F64)
        D = xp.stack([c[0] for _, c in self.layers], -1)  # (B, L)
        li = D.argmin(-1)
        best = D[xp.arange(B), li]
        g = z = b = lay = neu = None
        for a, (i, (_, j, g_a, z_a, b_a)) in enumerate(self.layers):
            if a == 0:
                g, z, b, lay, neu = g_a, z_a, b_a + z_a * 0, li * 0 + i, j
            else:
                take = li == a
                g = _where(take[:, None], g_a, g)
                z, b = _where(take, z_a, z), _where(take, b_a, b)
                lay, neu = _where(take, i, lay), _where(take, j, neu)
        found = (best < math.inf)[:, None]
        sign = _where(z > b, -1.0, 1.0)[:, None]
        binding = _where(found, xp.stack([lay, neu], -1), -1)
        return binding, _where(found, sign * _ball_direction(g, self.norm), 0.0)


# ------------------------------------------------------------------------ smooth activations
def _smooth_spec(layer: nn.Module):
    """(value-and-derivative function, sup|f'|, sup|f''|) of a smooth activation."""
    kind, desc = describe(layer, analysis="local_gain", kinds=("smooth",))
    assert isinstance(desc, Smooth)
    return desc.value_and_derivative, desc.lip, desc.curv


def _smooth(layer: nn.Module, w: Walk) -> None:
    fn, s1, s2 = _smooth_spec(layer)
    z = w.T[0]
    val, d = fn(z)
    B, k = z.shape
    use_np = _is_np(z)
    grad = offset = None
    if w.keep_grads:
        G = w.T[1:]
        grad = G.transpose(1, 2, 0).copy() if use_np else G.permute(1, 2, 0).clone()
        ein = np.einsum if use_np else torch.einsum
        offset = z - ein("bkn,bn->bk", grad, w.x)
    piece: Array
    dist: Array
    if use_np:
        piece, dist = np.full((B, k), -1, dtype=np.int8), np.full((B, k), np.inf)
    else:
        piece = torch.full((B, k), -1, dtype=torch.int8)
        dist = torch.full((B, k), torch.inf, dtype=F64)
    w.records.append(Record(type(layer).__name__, z, piece, dist, grad, offset, smooth=True))
    w.T = w.T * d
    w.T[0] = val
    w.curv = s2 * w.lip**2 + s1 * w.curv
    w.lip *= s1
    w.smooth_seen = True


#: A rule: ``rule(layer, walk)``. Each rule takes the layers of its own kind (``_linear`` an
#: ``nn.Linear``, ``_sequential`` an ``nn.Sequential``), which the table's lookup guarantees and a
#: single callable type cannot state, hence ``Any`` for the layer.
GainRule = Callable[[Any, Walk], None]

#: Layer kind (:data:`neuroctl.layers.KINDS`) -> rule.
KIND_RULES: dict[str, GainRule] = {
    "affine": _linear,
    "identity": _identity,
    "container": _sequential,
    "piecewise_linear": _pwl,
    "smooth": _smooth,
}

#: Layer type -> rule, for every registered type (derived from the registry).
GAIN_RULES: dict[type, GainRule] = {
    t: KIND_RULES[k] for t, (k, _) in LAYER_KINDS.items() if k in KIND_RULES
}

PIECEWISE_LINEAR_LAYERS = tuple(t for t, (k, _) in LAYER_KINDS.items() if k == "piecewise_linear")
SMOOTH_LAYERS = tuple(t for t, (k, _) in LAYER_KINDS.items() if k == "smooth")


def supported_layers() -> list[str]:
    """Names of the layer types the local-gain analysis supports."""
    return layer_names(KIND_RULES)


def apply_rule(layer: nn.Module, w: Walk) -> None:
    rule = GAIN_RULES.get(type(layer))
    if rule is None:  # a subclass of a registered type, or an unsupported layer (raises)
        kind, _ = describe(layer, analysis="local_gain", kinds=KIND_RULES)
        rule = KIND_RULES[kind]
    rule(layer, w)


def _has_smooth(net: nn.Module) -> bool:
    """Whether ``net`` has a smooth activation (cached per module and its children)."""
    cache = _PARAM_CACHE.setdefault(net, {})
    kids = tuple(map(id, net.children()))
    hit = cache.get("smooth")
    if hit is not None and hit[0] == kids:
        return hit[1]
    val = any(isinstance(m, SMOOTH_LAYERS) for m in net.modules())
    cache["smooth"] = (kids, val)
    return val


def walk_network(
    net: nn.Module,
    x: Array,
    *,
    norm: float,
    kink_tol: float,
    keep_grads: bool = False,
    stop_at_kink: bool = False,
    forced: dict | None = None,
    pool: dict | None = None,
) -> Walk:
    """Run the rule table over ``net`` at the points ``x`` (shape (B, n), float64).

    ``x`` as a numpy array walks in numpy, as a torch tensor in torch; every array of the
    returned :class:`Walk` is of the same kind. ``pool`` (an empty dict, passed to the walks of
    successive chunks of one batch) lets the torch walk reuse the buffers of the previous one.
    """
    B, n = x.shape
    T: Array
    kink_mask: Array
    if _is_np(x):
        T = np.empty((1 + n, B, n))
        T[0] = x
        T[1:] = np.eye(n)[:, None, :]
        kink_mask = np.zeros(B, dtype=bool)
    else:
        T = torch.zeros((1 + n, B, n), dtype=F64)
        T[0] = x
        T[1 + torch.arange(n), :, torch.arange(n)] = 1.0
        kink_mask = torch.zeros(B, dtype=torch.bool)
    w = Walk(
        T=T,
        x=x,
        norm=norm,
        kink_tol=kink_tol,
        keep_grads=keep_grads,
        stop_at_kink=stop_at_kink,
        forced=forced or {},
        need_lip=_has_smooth(net),
        kink_mask=kink_mask,
        pool=pool,
    )
    if _is_np(x):  # the rules take detached float64 copies of the parameters
        apply_rule(net, w)
    else:
        with torch.no_grad():
            apply_rule(net, w)
    layers = [(i, r.nearest) for i, r in enumerate(w.records) if r.nearest is not None]
    w.binder = Binding(B, n, norm, _is_np(x), layers)
    w.binding_dist = w.binder.distance()
    return w
