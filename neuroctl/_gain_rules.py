"""Per-layer rule table for the local-gain analysis of a network (DESIGN.md convention 8).

The walk propagates, for a batch of ``B`` points, an *augmented* tensor ``T`` of shape
``(B, 1 + n, k)``: row 0 is the value of the current layer's output (``k`` channels) and rows
``1..n`` are its Jacobian with respect to the network input (transposed, ``dz_k/dx_i``). This is
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

Unsupported layers raise a ``TypeError`` naming the layer and listing :data:`GAIN_RULES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["GAIN_RULES", "Walk", "KinkFound", "walk_network", "supported_layers"]

F64 = torch.float64


@dataclass
class PWLSpec:
    """A scalar continuous piecewise-linear function: breaks ``b_0 < b_1 < ...``, one slope and
    one intercept per piece (``len(breaks) + 1`` pieces); slopes may be per channel (shape (k,))."""

    breaks: list[float]
    slopes: list  # floats or tensors of shape (k,)
    intercepts: list[float]


@dataclass
class Record:
    """What the walk learned about one activation layer (batch of ``B`` points, ``k`` neurons)."""

    name: str
    z: torch.Tensor  # (B, k) pre-activations
    piece: torch.Tensor  # (B, k) int8 index of the linear piece (-1 for smooth layers)
    distance: torch.Tensor  # (B, k) distance of x to the neuron's nearest breakpoint
    grad: torch.Tensor | None = None  # (B, k, n) pre-activation gradients (optional)
    offset: torch.Tensor | None = None  # (B, k) pre-activation offsets: z(x') = grad x' + offset
    smooth: bool = False


@dataclass
class Walk:
    """State of one pass through a network (see module docstring)."""

    T: torch.Tensor
    x: torch.Tensor  # (B, n)
    norm: float
    kink_tol: float
    keep_grads: bool = False
    stop_at_kink: bool = False
    forced: dict = field(default_factory=dict)  # record index -> {neuron: piece}
    records: list = field(default_factory=list)
    lip: float = 1.0
    curv: float = 0.0
    smooth_seen: bool = False
    binding_dist: torch.Tensor | None = None  # (B,)
    binding: torch.Tensor | None = None  # (B, 2) record index, neuron
    binding_dir: torch.Tensor | None = None  # (B, n)
    kink_mask: torch.Tensor | None = None  # (B,) a point lies on an unresolved kink
    need_lip: bool = True  # track Lipschitz bounds (networks with smooth layers)


class KinkFound(Exception):
    """Raised by the walk (single point, ``stop_at_kink``) at the first unresolved kink."""

    def __init__(self, record: int, neurons, pieces, grads, values):
        super().__init__("kink")
        self.record = record
        self.neurons = neurons  # list of int
        self.pieces = pieces  # list of (left piece, right piece)
        self.grads = grads  # (a, n) tensor of pre-activation gradients
        self.values = values  # (a,) pre-activation minus breakpoint


def _dual_norm(g: torch.Tensor, norm: float, dim: int) -> torch.Tensor:
    """Dual norm of gradients along ``dim`` (ℓ2 -> ℓ2, ℓ∞ -> ℓ1, ℓ1 -> ℓ∞)."""
    if dim == 1 and g.ndim == 3 and g.shape[1] <= 16:
        # a short loop over the rows is much faster than a strided reduction over dim 1
        rows = [g[:, i, :] for i in range(g.shape[1])]
        if norm == 2:
            acc = rows[0] * rows[0]
            for r in rows[1:]:
                acc = acc + r * r
            return acc.sqrt()
        acc = rows[0].abs()
        for r in rows[1:]:
            acc = acc + r.abs() if math.isinf(norm) else torch.maximum(acc, r.abs())
        return acc
    if norm == 2:
        return torch.linalg.vector_norm(g, 2, dim=dim)
    if math.isinf(norm):
        return g.abs().sum(dim=dim)
    return g.abs().amax(dim=dim)


def _ball_direction(g: torch.Tensor, norm: float) -> torch.Tensor:
    """Unit vector (in ``norm``) that maximises ``g . d``, rows of ``g`` of shape (B, n)."""
    if norm == 2:
        return g / torch.linalg.vector_norm(g, 2, dim=-1, keepdim=True).clamp_min(1e-300)
    if math.isinf(norm):
        return torch.sign(g)
    idx = g.abs().argmax(dim=-1, keepdim=True)
    d = torch.zeros_like(g)
    return d.scatter(-1, idx, torch.sign(torch.gather(g, -1, idx)))


# ----------------------------------------------------------------------------- affine layers
def _linear(layer: nn.Linear, w: Walk) -> None:
    W = layer.weight.detach().to(F64)
    w.T = w.T @ W.T
    if layer.bias is not None:
        w.T[:, 0, :] += layer.bias.detach().to(F64)
    if w.need_lip:  # only smooth layers use the Lipschitz bounds (an SVD per layer)
        s = float(torch.linalg.matrix_norm(W, 2)) if W.numel() else 0.0
        w.lip *= s
        w.curv *= s


def _identity(layer: nn.Module, w: Walk) -> None:
    return None


def _flatten(layer: nn.Flatten, w: Walk) -> None:
    # The analysis works on vectors (..., k): flattening a vector is the identity.
    if layer.start_dim not in (1, -1):
        raise TypeError(
            f"Flatten(start_dim={layer.start_dim}) is supported only on vector inputs "
            "(start_dim=1 or -1)"
        )


def _sequential(layer: nn.Sequential, w: Walk) -> None:
    for sub in layer:
        apply_rule(sub, w)


# ------------------------------------------------------------------- piecewise-linear layers
def _pwl_spec(layer: nn.Module) -> PWLSpec:
    if isinstance(layer, nn.ReLU6):
        return PWLSpec([0.0, 6.0], [0.0, 1.0, 0.0], [0.0, 0.0, 6.0])
    if isinstance(layer, nn.ReLU):
        return PWLSpec([0.0], [0.0, 1.0], [0.0, 0.0])
    if isinstance(layer, nn.LeakyReLU):
        return PWLSpec([0.0], [float(layer.negative_slope), 1.0], [0.0, 0.0])
    if isinstance(layer, nn.PReLU):
        a = layer.weight.detach().to(F64).reshape(-1)
        return PWLSpec([0.0], [a, 1.0], [0.0, 0.0])
    if isinstance(layer, nn.Hardtanh):
        lo, hi = float(layer.min_val), float(layer.max_val)
        return PWLSpec([lo, hi], [0.0, 1.0, 0.0], [lo, 0.0, hi])
    raise TypeError(f"no piecewise-linear description of {type(layer).__name__}")


def _as_row(v, k: int) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=F64)
    return t.expand(k) if t.numel() == 1 else t.reshape(k)


def _pwl(layer: nn.Module, w: Walk) -> None:
    spec = _pwl_spec(layer)
    z = w.T[:, 0, :]  # (B, k)
    G = w.T[:, 1:, :]  # (B, n, k)
    B, k = z.shape
    rec_idx = len(w.records)
    breaks = torch.tensor(spec.breaks, dtype=F64)
    slopes = torch.stack([_as_row(s, k) for s in spec.slopes])  # (P, k)
    inter = torch.stack([_as_row(c, k) for c in spec.intercepts])  # (P, k)
    if len(spec.breaks) == 1:  # fast path (ReLU, LeakyReLU, PReLU)
        diff = z - spec.breaks[0]
        piece = (diff > 0).long()
        mingap = diff.abs()
        nearest = torch.zeros_like(piece)
    else:
        piece = (z.unsqueeze(-1) > breaks).sum(-1)  # (B, k)
        gap = (z.unsqueeze(-1) - breaks).abs()  # (B, k, nb)
        mingap, nearest = gap.min(-1)
    if w.smooth_seen:
        # pre-activation not affine: bound its variation by a global Lipschitz constant
        Wprev = w.lip
        gnorm = torch.full_like(z, Wprev)
        if not (w.norm == 2):
            n = G.shape[1]
            gnorm = gnorm * (math.sqrt(n) if math.isinf(w.norm) else 1.0)
    else:
        gnorm = _dual_norm(G, w.norm, dim=1)  # (B, k)
    live = gnorm > 0
    dist = torch.where(live, mingap / torch.where(live, gnorm, 1.0), torch.inf)
    ambiguous = (mingap <= w.kink_tol) & live
    forced = w.forced.get(rec_idx, {})
    if forced:
        for j, p in forced.items():
            piece[:, j] = p
            ambiguous[:, j] = False
    if w.stop_at_kink and bool(ambiguous.any()):
        js = torch.nonzero(ambiguous[0]).reshape(-1).tolist()
        sides = [(int(nearest[0, j]), int(nearest[0, j]) + 1) for j in js]
        raise KinkFound(
            rec_idx,
            js,
            sides,
            G[0, :, js].T.clone(),
            (z[0, js] - breaks[nearest[0, js]]).clone(),
        )
    if ambiguous.any():
        w.kink_mask = w.kink_mask | ambiguous.any(-1)
    # points at a kink have distance 0 (they lie on the boundary)
    dist = torch.where(ambiguous, torch.zeros_like(dist), dist)
    s = torch.gather(slopes, 0, piece) if slopes.shape[1] else slopes[:0]
    has_intercepts = any(float(c_) != 0.0 for c_ in spec.intercepts)
    if has_intercepts:
        c = torch.gather(inter, 0, piece) if inter.shape[1] else inter[:0]
    # record before scaling
    d_min, j_min = dist.min(-1)
    better = d_min < w.binding_dist
    if bool(better.any()):
        w.binding_dist = torch.where(better, d_min, w.binding_dist)
        w.binding[better, 0] = rec_idx
        w.binding[better, 1] = j_min[better]
        gj = torch.gather(G, 2, j_min.view(B, 1, 1).expand(B, G.shape[1], 1)).squeeze(-1)
        zj = torch.gather(z, 1, j_min.view(B, 1)).squeeze(-1)
        bj = breaks[torch.gather(nearest, 1, j_min.view(B, 1)).squeeze(-1)]
        sign = torch.where(zj > bj, -1.0, 1.0).to(F64).unsqueeze(-1)
        w.binding_dir = torch.where(
            better.unsqueeze(-1), sign * _ball_direction(gj, w.norm), w.binding_dir
        )
    grad = G.transpose(1, 2).clone() if w.keep_grads else None
    offset = None
    if grad is not None:
        offset = z - torch.einsum("bkn,bn->bk", grad, w.x)
    w.records.append(
        Record(type(layer).__name__, z, piece.to(torch.int8), dist, grad, offset)
    )
    w.T = w.T * s.unsqueeze(1)  # a new tensor: the recorded z (a view of the old one) stays
    if has_intercepts:
        w.T[:, 0, :] += c
    smax = float(slopes.abs().max()) if slopes.numel() else 0.0
    w.lip *= smax
    w.curv *= smax


# ------------------------------------------------------------------------ smooth activations
def _sigmoid_d(z):
    s = torch.sigmoid(z)
    return s, s * (1 - s)


def _tanh_d(z):
    t = torch.tanh(z)
    return t, 1 - t * t


def _autograd_d(fn: Callable) -> Callable:
    def d(z):
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            y = fn(zz)
            (g,) = torch.autograd.grad(y.sum(), zz)
        return y.detach(), g

    return d


# sup |f'| and sup |f''| over the real line (checked by brute force in tests/test_local_gain.py)
TANH_BOUNDS = (1.0, 4.0 / (3.0 * math.sqrt(3.0)))
SIGMOID_BOUNDS = (0.25, math.sqrt(3.0) / 18.0)
GELU_BOUNDS = (1.1290, 0.79789)  # exact erf form; the tanh form is within these too
SILU_BOUNDS = (1.0999, 0.5)


def _smooth_spec(layer: nn.Module):
    """(value-and-derivative function, sup|f'|, sup|f''|) of a smooth activation."""
    if isinstance(layer, nn.Tanh):
        return _tanh_d, *TANH_BOUNDS
    if isinstance(layer, nn.Sigmoid):
        return _sigmoid_d, *SIGMOID_BOUNDS
    if isinstance(layer, nn.Softplus):
        beta = float(layer.beta)
        return _autograd_d(layer), 1.0, beta / 4.0
    if isinstance(layer, nn.ELU):
        a = float(layer.alpha)
        return _autograd_d(layer), max(1.0, a), a
    if isinstance(layer, nn.GELU):
        return _autograd_d(layer), *GELU_BOUNDS
    if isinstance(layer, nn.SiLU):
        return _autograd_d(layer), *SILU_BOUNDS
    raise TypeError(f"no smooth description of {type(layer).__name__}")


def _smooth(layer: nn.Module, w: Walk) -> None:
    fn, s1, s2 = _smooth_spec(layer)
    z = w.T[:, 0, :]
    val, d = fn(z)
    B, k = z.shape
    grad = w.T[:, 1:, :].transpose(1, 2).clone() if w.keep_grads else None
    offset = None
    if grad is not None:
        offset = z - torch.einsum("bkn,bn->bk", grad, w.x)
    w.records.append(
        Record(
            type(layer).__name__,
            z.clone(),
            torch.full((B, k), -1, dtype=torch.int8),
            torch.full((B, k), torch.inf, dtype=F64),
            grad,
            offset,
            smooth=True,
        )
    )
    w.T = w.T * d.unsqueeze(1)
    w.T[:, 0, :] = val
    w.curv = s2 * w.lip**2 + s1 * w.curv
    w.lip *= s1
    w.smooth_seen = True


#: Layer type -> rule. Order matters only for subclasses (ReLU6 is a Hardtanh subclass).
GAIN_RULES: dict[type, Callable[[nn.Module, Walk], None]] = {
    nn.Linear: _linear,
    nn.Identity: _identity,
    nn.Flatten: _flatten,
    nn.Sequential: _sequential,
    nn.ReLU: _pwl,
    nn.LeakyReLU: _pwl,
    nn.PReLU: _pwl,
    nn.ReLU6: _pwl,
    nn.Hardtanh: _pwl,
    nn.Tanh: _smooth,
    nn.Sigmoid: _smooth,
    nn.Softplus: _smooth,
    nn.ELU: _smooth,
    nn.GELU: _smooth,
    nn.SiLU: _smooth,
}

PIECEWISE_LINEAR_LAYERS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.Hardtanh)
SMOOTH_LAYERS = (nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU, nn.GELU, nn.SiLU)


def supported_layers() -> list[str]:
    """Names of the layer types the local-gain analysis supports."""
    return [t.__name__ for t in GAIN_RULES]


def apply_rule(layer: nn.Module, w: Walk) -> None:
    rule = GAIN_RULES.get(type(layer))
    if rule is None:
        raise TypeError(
            f"local_gain: unsupported layer {type(layer).__name__} ({layer!r}); supported "
            f"layers: {', '.join(supported_layers())}"
        )
    rule(layer, w)


def walk_network(
    net: nn.Module,
    x: torch.Tensor,
    *,
    norm: float,
    kink_tol: float,
    keep_grads: bool = False,
    stop_at_kink: bool = False,
    forced: dict | None = None,
) -> Walk:
    """Run the rule table over ``net`` at the points ``x`` (shape (B, n), float64)."""
    B, n = x.shape
    T = torch.empty((B, 1 + n, n), dtype=F64)
    T[:, 0, :] = x
    T[:, 1:, :] = torch.eye(n, dtype=F64)
    w = Walk(
        T=T,
        x=x,
        norm=norm,
        kink_tol=kink_tol,
        keep_grads=keep_grads,
        stop_at_kink=stop_at_kink,
        forced=forced or {},
        binding_dist=torch.full((B,), torch.inf, dtype=F64),
        binding=torch.full((B, 2), -1, dtype=torch.long),
        binding_dir=torch.zeros((B, n), dtype=F64),
        kink_mask=torch.zeros(B, dtype=torch.bool),
        need_lip=any(isinstance(m, SMOOTH_LAYERS) for m in net.modules()),
    )
    with torch.no_grad():
        apply_rule(net, w)
    return w
