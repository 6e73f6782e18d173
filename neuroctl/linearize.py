"""Exact local gains of networks and closed-loop linearization handed to python-control.

* :func:`local_gain` -- the affine map ``u = K y + c`` of a network around ``y``: exact inside the
  activation region of a piecewise-linear network (with the region's radius), every adjacent
  region at a kink, or the Jacobian with a validity radius for smooth activations.
* :func:`plant_jacobians` -- ``A, B, C`` of a :class:`~neuroctl.plant.Plant` by autograd (float64).
* :func:`operating_point` -- the closed-loop equilibrium, its residual and steady-state error.
* :func:`linearize` -- plant, controller gain(s), one closed loop per adjacent region and the loop
  transfer broken at the plant input, as python-control ``StateSpace`` objects.
* :func:`lqr` -- an LQR gain on the plant's linearization, returned as an ``nn.Linear``.

Nothing here uses finite differences: the network is walked with a per-layer rule table
(:mod:`neuroctl._gain_rules`) and the plant is differentiated with ``torch.autograd``.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._array import check_vector
from ._gain_rules import (
    GAIN_RULES,
    NUMPY_MAX_BATCH,
    KinkFound,
    supported_layers,
    walk_network,
)
from ._json import json_dict
from .plant import Plant
from .simulate import check_controller, linear_io

__all__ = [
    "local_gain",
    "LocalGain",
    "Region",
    "plant_jacobians",
    "PlantJacobians",
    "operating_point",
    "OperatingPoint",
    "OperatingPointError",
    "linearize",
    "Linearization",
    "LoopRegion",
    "lqr",
    "GAIN_RULES",
]

F64 = torch.float64
_CHUNK = 2048


def _check_norm(norm) -> float:
    if norm in (1, 2) or (isinstance(norm, float) and math.isinf(norm) and norm > 0):
        return float(norm)
    if isinstance(norm, str) and norm.lower() in ("inf", "linf"):
        return math.inf
    raise ValueError(f"norm: expected 1, 2 or inf (math.inf or 'inf'), received {norm!r}")


def _check_positive(value, what: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{what}: expected a {kind} finite number, received {value!r}")
    return float(value)


def _norm_label(norm: float) -> str:
    return "inf" if math.isinf(norm) else str(int(norm))


# =============================================================================== local gain
@dataclass(frozen=True)
class Region:
    """One activation region of a network touching the analysis point.

    Attributes
    ----------
    K : ndarray, shape (m, n)
        Gain of the affine map ``u = K y + c`` valid in the region.
    c : ndarray, shape (m,)
        Offset of the affine map.
    pattern : tuple of ndarray
        Per activation layer, the linear piece of each neuron (int8; for ReLU 0 = inactive,
        1 = active; for Hardtanh/ReLU6 0 = low, 1 = linear, 2 = high; -1 for smooth layers).
    direction : ndarray, shape (n,) or None
        At a kink, a direction from ``y`` into the interior of the region (a witness of its
        non-emptiness, from the feasibility LP); ``None`` off kinks.
    """

    K: np.ndarray
    c: np.ndarray
    pattern: tuple
    direction: np.ndarray | None = None

    def __call__(self, y):
        """The region's affine map at ``y`` (shape (..., n))."""
        return np.asarray(y, float) @ self.K.T + self.c

    @json_dict
    def to_dict(self) -> dict:
        return {
            "K": self.K.tolist(),
            "c": self.c.tolist(),
            "pattern": [p.tolist() for p in self.pattern],
            "direction": None if self.direction is None else self.direction.tolist(),
        }


class LocalGain:
    """Local affine model of a network at one point or a batch of points.

    Produced by :func:`local_gain`. For a single point the arrays have no batch axis; for a batch
    of ``B`` points they lead with ``B`` and ``result[i]`` is the single-point result.

    Attributes
    ----------
    x : ndarray, shape ([B,] n)
        Analysis point(s).
    value : ndarray, shape ([B,] m)
        Network output at ``x`` (computed in float64 by the walk).
    K : ndarray, shape ([B,] m, n)
        Gain (at a kink: the gain of the first adjacent region, see ``regions``).
    c : ndarray, shape ([B,] m)
        Offset, ``value = K x + c``.
    radius : ndarray or float
        Radius (in ``norm``) of a ball around ``x`` inside which the affine map is valid: for
        piecewise-linear networks the largest ball inside the activation region (exactly equal to
        the network there; 0 at a kink), for smooth ones the ball where the affine model's error
        is at most ``validity_tol`` (a guaranteed, conservative bound), the smaller of both for
        mixed networks.
    region_radius : ndarray or float
        Distance to the nearest activation boundary (``inf`` if the network has no breakpoint).
    smooth_radius : float
        Validity radius from the curvature bound of the smooth layers (``inf`` if none).
    exact : bool
        True if every layer is piecewise linear (the affine map is the network in the region).
    at_kink : ndarray of bool or bool
        Whether ``x`` lies (within ``kink_tol``) on a breakpoint of a neuron that matters.
    regions : tuple of Region, or list of such tuples for a batch
        Every non-empty activation region adjacent to ``x`` (one off kinks).
    patterns : list of ndarray
        Per activation layer, the piece index of each neuron, shape ([B,] k).
    layers : tuple of str
        Names of the activation layers, in the order of ``patterns``.
    binding : ndarray of int, shape ([B,] 2)
        (activation layer, neuron) whose breakpoint sets ``region_radius`` (-1 if none).
    boundary_direction : ndarray, shape ([B,] n)
        Unit vector (in ``norm``) from ``x`` towards that neuron's breakpoint (zeros if none).
    preactivations : list of dict or None
        With ``preactivations=True``: per activation layer ``{"z": ([B,] k), "grad": ([B,] k, n),
        "offset": ([B,] k), "distance": ([B,] k)}`` -- the pre-activation is the affine form
        ``grad @ x' + offset`` throughout the region (exact for piecewise-linear networks).
    norm : float
        1, 2 or inf.
    """

    def __init__(self, **fields: Any) -> None:
        self._binding = None
        self.__dict__.update(fields)

    def _bound(self) -> tuple:
        if self._binding is None:  # computed on first access (kept out of analyze's path)
            self._binding = self._binder()
        return self._binding

    def __getstate__(self) -> dict:  # pickle / deepcopy: the binding computed, not the closure
        self._bound()
        return {k: v for k, v in self.__dict__.items() if k != "_binder"}

    @property
    def binding(self) -> np.ndarray:
        return self._bound()[0]

    @property
    def boundary_direction(self) -> np.ndarray:
        return self._bound()[1]

    @property
    def batched(self) -> bool:
        return self._batched

    def _regions_of(self, b: int) -> tuple:
        regs = self._kink_regions.get(b)
        if regs is not None:
            return regs
        if self._batched:
            return (Region(K=self.K[b], c=self.c[b], pattern=tuple(p[b] for p in self.patterns)),)
        return (Region(K=self.K, c=self.c, pattern=tuple(self.patterns)),)

    @property
    def regions(self):
        """Adjacent non-empty regions: a tuple of :class:`Region` (one off kinks); for a batch,
        a list of such tuples (built on access)."""
        if self._batched:
            return [self._regions_of(b) for b in range(self.x.shape[0])]
        return self._regions_of(0)

    def __len__(self) -> int:
        if not self._batched:
            raise TypeError("a single-point LocalGain has no len()")
        return self.x.shape[0]

    def __getitem__(self, i: int) -> LocalGain:
        if not self._batched:
            raise TypeError("a single-point LocalGain cannot be indexed")
        pre = None
        if self.preactivations is not None:
            pre = [{k: v[i] for k, v in d.items()} for d in self.preactivations]
        return LocalGain(
            _batched=False,
            x=self.x[i],
            value=self.value[i],
            K=self.K[i],
            c=self.c[i],
            radius=float(self.radius[i]),
            region_radius=float(self.region_radius[i]),
            smooth_radius=self.smooth_radius,
            exact=self.exact,
            at_kink=bool(self.at_kink[i]),
            _kink_regions={0: self._kink_regions[i]} if i in self._kink_regions else {},
            patterns=[p[i] for p in self.patterns],
            layers=self.layers,
            _binder=lambda: (self.binding[i], self.boundary_direction[i]),
            preactivations=pre,
            norm=self.norm,
            validity_tol=self.validity_tol,
            kink_tol=self.kink_tol,
        )

    def __call__(self, y):
        """The affine model ``K y + c`` (single point only), ``y`` of shape (..., n)."""
        if self._batched:
            raise TypeError("evaluate the affine model of one point: result[i](y)")
        return np.asarray(y, float) @ self.K.T + self.c

    def __repr__(self) -> str:
        nl = _norm_label(self.norm)
        if self._batched:
            return (
                f"LocalGain(batch of {len(self)} points, n={self.x.shape[-1]}, "
                f"m={self.value.shape[-1]}, exact={self.exact}, at kinks: "
                f"{int(np.sum(self.at_kink))}, median radius (l{nl}) "
                f"{float(np.median(self.radius)):.4g})"
            )
        lines = [
            f"LocalGain at x={np.array2string(self.x, precision=4)}",
            f"  value   {np.array2string(self.value, precision=6)}",
            f"  kind    {'exact affine map of the region' if self.exact else 'Jacobian'}",
            f"  radius  {self.radius:.6g} (l{nl} ball"
            + ("" if self.exact else f", model error <= {self.validity_tol:g}")
            + ")",
        ]
        if self.at_kink:
            lines.append(
                f"  AT A KINK: {len(self.regions)} adjacent non-empty regions, gains differ"
                if len(self.regions) > 1
                else "  at a kink, but only one adjacent region is non-empty"
            )
            for i, r in enumerate(self.regions):
                lines.append(f"  region {i}: K = {np.array2string(r.K, precision=6)}")
        else:
            lines.append(f"  K       {np.array2string(self.K, precision=6)}")
            lines.append(f"  c       {np.array2string(self.c, precision=6)}")
        return "\n".join(lines)

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists)."""

        def conv(v):
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (list, tuple)):
                return [conv(e) for e in v]
            if isinstance(v, Region):
                return v.to_dict()
            if isinstance(v, dict):
                return {k: conv(e) for k, e in v.items()}
            if isinstance(v, (np.floating, np.integer, np.bool_)):
                return v.item()
            return v

        keys = (
            "x value K c radius region_radius smooth_radius exact at_kink regions patterns "
            "layers binding boundary_direction preactivations norm validity_tol kink_tol"
        ).split()
        return {k: conv(getattr(self, k)) for k in keys}

    def plot(self, net: nn.Module | None = None, *, ax=None, span: float = 3.0, num: int = 401):
        """Network and affine model along the direction to the nearest boundary.

        Parameters
        ----------
        net : nn.Module, optional
            The analysed network; if given, its output along the line is drawn too.
        span : float
            The line covers ``[-span, span]`` times the radius (or 1 if the radius is 0 or inf).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if self._batched:
            raise TypeError("plot one point: result[i].plot()")
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.figure
        d = self.boundary_direction
        if not np.any(d):
            d = np.zeros_like(self.x)
            d[0] = 1.0
        r = self.radius if np.isfinite(self.radius) and self.radius > 0 else 1.0
        s = np.linspace(-span * r, span * r, num)
        pts = self.x + s[:, None] * d
        for i, reg in enumerate(self.regions):
            ax.plot(s, reg(pts)[:, 0], "--", lw=1, label=f"affine model (region {i})")
        if net is not None:
            with torch.no_grad():
                out = _float64(net)(torch.as_tensor(pts, dtype=F64)).numpy()
            ax.plot(s, out[:, 0], "k", lw=1.5, label="network")
        if np.isfinite(self.radius):
            for sgn in (-1, 1):
                ax.axvline(sgn * self.radius, color="grey", lw=0.8)
        ax.set_xlabel("step along the boundary direction")
        ax.set_ylabel("output 0")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _np(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.numpy()


def _float64(net: nn.Module) -> nn.Module:
    """A float64 copy of a network (the original is untouched)."""
    if all(p.dtype == F64 for p in net.parameters()) and all(
        b.dtype == F64 for b in net.buffers() if b.is_floating_point()
    ):
        return net
    return copy.deepcopy(net).to(F64)


def _lp_direction(constraints: list[tuple[np.ndarray, float]], n: int):
    """Is the cone ``{d : s_j g_j . d > 0}`` non-empty?  Returns (ok, direction, margin).

    Exact shortcut: a single constraint with a non-zero gradient is always satisfiable. Otherwise
    a small LP (HiGHS through ``scipy.optimize.linprog``): maximise ``t`` subject to
    ``s_j g_j . d / ||g_j||_1 >= t``, ``-1 <= d <= 1``, ``t <= 1``; non-empty iff ``t* > 1e-9``.
    """
    if len(constraints) == 1:
        g, s = constraints[0]
        d = s * g / np.abs(g).max()
        return True, d, float(s * g @ d / np.abs(g).sum())
    from scipy.optimize import linprog

    G = np.array([s * g / np.abs(g).sum() for g, s in constraints])
    A_ub = np.hstack([-G, np.ones((len(G), 1))])
    c = np.zeros(n + 1)
    c[-1] = -1.0
    res = linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(len(G)),
        bounds=[(-1.0, 1.0)] * n + [(None, 1.0)],
        method="highs",
    )
    if res.status != 0:
        return False, None, 0.0
    t = -res.fun
    return t > 1e-9, res.x[:n], t


def _enumerate_regions(net, y1: np.ndarray, *, norm, kink_tol, max_kink_neurons):
    """All non-empty regions adjacent to the single point ``y1`` (shape (1, n))."""
    n = y1.shape[1]
    regions: list[Region] = []

    def recurse(forced: dict, constraints: list, direction):
        try:
            w = walk_network(
                net, y1, norm=norm, kink_tol=kink_tol, stop_at_kink=True, forced=forced
            )
        except KinkFound as k:
            a = len(k.neurons)
            n_amb = a + sum(len(v) for v in forced.values())
            if n_amb > max_kink_neurons:
                raise ValueError(
                    f"local_gain: the point lies on the breakpoints of {n_amb} neurons (within "
                    f"kink_tol={kink_tol:g}); enumerating up to 2^{n_amb} adjacent regions "
                    f"exceeds max_kink_neurons={max_kink_neurons}. Pass a larger "
                    "max_kink_neurons= or analyse a point off the kinks."
                ) from None
            grads = np.asarray(k.grads)
            for combo in itertools.product((0, 1), repeat=a):
                cons = list(constraints)
                new = dict(forced)
                new[k.record] = dict(forced.get(k.record, {}))
                for j, side, g, (left, right) in zip(k.neurons, combo, grads, k.pieces):
                    cons.append((g, 1.0 if side else -1.0))
                    new[k.record][j] = right if side else left
                ok, d, _ = _lp_direction(cons, n)
                if ok:
                    recurse(new, cons, d)
            return
        K = np.array(w.T[1:, 0, :]).T.copy()
        val = np.array(w.T[0, 0, :])
        regions.append(
            Region(
                K=K,
                c=val - K @ np.asarray(y1[0]),
                pattern=tuple(np.array(r.piece[0]) for r in w.records),
                direction=direction,
            )
        )

    recurse({}, [], None)
    return tuple(regions)


def local_gain(
    net: nn.Module,
    x,
    *,
    norm: float | str = 2,
    kink_tol: float = 1e-9,
    validity_tol: float = 1e-3,
    max_kink_neurons: int = 10,
    preactivations: bool = False,
) -> LocalGain:
    """Exact local gain of a network at ``x``: ``net(x') = K x' + c`` near ``x``.

    The network is walked once, in float64, with a per-layer rule table
    (:data:`neuroctl._gain_rules.GAIN_RULES`); a batch of points is analysed in one vectorized
    pass.

    * Piecewise-linear layers (Linear, ReLU, LeakyReLU, PReLU, Hardtanh -- also a clamp --,
      ReLU6, Identity, Flatten, nested Sequential, frozen affine scalings): ``K, c`` is the exact
      affine map of the activation region containing ``x``, and ``radius`` the radius of the
      largest ball (in ``norm``) around ``x`` inside that region: ``min_j |z_j(x) - b_j| /
      ||grad z_j||_*`` with ``||.||_*`` the dual norm (ℓ2 for ℓ2 balls, ℓ1 for ℓ∞ balls).
      Inside that ball the affine map *is* the network.
    * At a kink (a pre-activation within ``kink_tol`` of a breakpoint, with a non-zero gradient)
      every adjacent region that is non-empty is returned in ``regions``, each with its gain;
      ``at_kink`` says so and ``radius`` is 0. Non-emptiness is decided exactly: a region is the
      cone of directions ``d`` with ``s_j grad z_j . d > 0`` for the ambiguous neurons (sides
      ``s_j``; later layers' gradients depend on earlier sides, so sides are chosen layer by
      layer); one ambiguous neuron needs no LP, more are checked with a small LP (HiGHS via
      ``scipy.optimize.linprog``).
    * Smooth activations (tanh, sigmoid, softplus, ELU, GELU, SiLU): ``K`` is the Jacobian and
      ``radius`` a ball within which ``||net(x') - K x' - c||_2 <= validity_tol``, from global
      bounds on the Lipschitz constant of the gradient (``sup|σ''|`` per activation and spectral
      norms of the weights): conservative but guaranteed.

    Parameters
    ----------
    net : nn.Module
        The network (any float dtype; analysed in a float64 copy).
    x : array_like or tensor, shape (n,) or (B, n)
        Point(s) in the network's input space.
    norm : {2, inf, 1}
        Norm of the ball whose radius is reported.
    kink_tol : float
        A pre-activation within this distance of a breakpoint counts as on the kink.
    validity_tol : float
        Error tolerance (output units, ℓ2) for the validity radius of smooth networks.
    max_kink_neurons : int
        Largest number of simultaneously ambiguous neurons enumerated at one point (up to
        ``2**max_kink_neurons`` candidate regions); beyond it a ``ValueError`` says so.
    preactivations : bool
        Also return every neuron's pre-activation affine form (memory ``B * k * n`` per layer).

    Returns
    -------
    LocalGain

    Raises
    ------
    TypeError
        For a layer without a rule; the message names it and lists the supported layers.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"local_gain: expected a torch.nn.Module built from {', '.join(supported_layers())}; "
            f"received {type(net).__name__}"
        )
    norm = _check_norm(norm)
    kink_tol = _check_positive(kink_tol, "kink_tol", allow_zero=True)
    validity_tol = _check_positive(validity_tol, "validity_tol")
    if not (isinstance(max_kink_neurons, (int, np.integer)) and max_kink_neurons >= 1):
        raise ValueError(f"max_kink_neurons: expected an int >= 1, received {max_kink_neurons!r}")
    if not isinstance(preactivations, bool):
        raise TypeError(f"preactivations: expected a bool, received {preactivations!r}")
    try:
        xn = x.detach().to(F64).cpu().numpy() if torch.is_tensor(x) else np.asarray(x, float)
    except (TypeError, ValueError):
        raise TypeError(f"x: expected numbers of shape (n,) or (B, n), received {x!r}") from None
    if xn.ndim not in (1, 2) or 0 in xn.shape:
        raise ValueError(
            f"x: expected shape (n,) or (B, n) with B, n >= 1, received {tuple(xn.shape)}"
        )
    if not np.isfinite(xn).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(xn))[0])
        raise ValueError(
            f"x: expected finite numbers, received {xn[bad]} at index {bad} (of shape {xn.shape})"
        )
    n_in = linear_io(net)[0]
    if n_in is not None and xn.shape[-1] != n_in:
        raise ValueError(
            f"x: expected shape ({n_in},) or (B, {n_in}) (the network's input size), received "
            f"{tuple(xn.shape)}"
        )
    batched = xn.ndim == 2
    Xn = np.ascontiguousarray(xn if batched else xn[None])
    B, n = Xn.shape
    # small batches walk in numpy (low overhead per operation), large ones in torch
    X = Xn if B <= NUMPY_MAX_BATCH else torch.from_numpy(Xn)

    # one vectorized pass, in chunks to bound memory
    parts, pool = [], {}
    for s in range(0, B, _CHUNK):
        parts.append(
            walk_network(
                net,
                X[s : s + _CHUNK],
                norm=norm,
                kink_tol=kink_tol,
                keep_grads=preactivations,
                pool=pool,
            )
        )
    w0 = parts[0]
    exact = not w0.smooth_seen

    def cat(get):
        if len(parts) == 1:
            return _np(get(w0))
        return np.concatenate([_np(get(p)) for p in parts])

    value = cat(lambda p: p.T[0])
    K = cat(
        lambda p: p.T[1:].permute(1, 2, 0) if torch.is_tensor(p.T) else p.T[1:].transpose(1, 2, 0)
    )
    c = value - np.einsum("bmn,bn->bm", K, Xn)
    region_radius = cat(lambda p: p.binding_dist)
    at_kink = cat(lambda p: p.kink_mask)
    curv = w0.curv
    if curv > 0:
        r2 = math.sqrt(2.0 * validity_tol / curv)
        smooth_radius = r2 / math.sqrt(n) if math.isinf(norm) else r2
    else:
        smooth_radius = math.inf
    radius = np.minimum(region_radius, smooth_radius)
    patterns = [cat(lambda p, i=i: p.records[i].piece) for i in range(len(w0.records))]
    pre = None
    if preactivations:
        pre = []
        for i in range(len(w0.records)):
            pre.append(
                {
                    "z": cat(lambda p, i=i: p.records[i].z),
                    "grad": cat(lambda p, i=i: p.records[i].grad),
                    "offset": cat(lambda p, i=i: p.records[i].offset),
                    "distance": cat(lambda p, i=i: p.records[i].distance),
                }
            )
    kink_regions = {}
    for b in np.flatnonzero(at_kink):
        regs = _enumerate_regions(
            net,
            Xn[b : b + 1],
            norm=norm,
            kink_tol=kink_tol,
            max_kink_neurons=int(max_kink_neurons),
        )
        if len(regs) >= 1:
            K[b], c[b] = regs[0].K, regs[0].c
        at_kink[b] = len(regs) > 1
        kink_regions[int(b)] = regs
    binders = [p.binder for p in parts]  # not the walks: they hold large arrays

    def _binder():
        got = [b.compute() for b in binders]
        return tuple(np.concatenate([_np(g[k]) for g in got]) for k in (0, 1))

    result = LocalGain(
        _batched=True,
        x=Xn,
        value=value,
        K=K,
        c=c,
        radius=radius,
        region_radius=region_radius,
        smooth_radius=smooth_radius,
        exact=exact,
        at_kink=at_kink,
        _kink_regions=kink_regions,
        patterns=patterns,
        layers=tuple(r.name for r in w0.records),
        _binder=_binder,
        preactivations=pre,
        norm=norm,
        validity_tol=validity_tol,
        kink_tol=kink_tol,
    )
    return result if batched else result[0]


# ========================================================================= plant Jacobians
def _jacobians(f: Callable, args: list[np.ndarray], wrt: tuple[int, ...], p: int):
    """Jacobians of ``f(*args)`` (output size ``p``) w.r.t. ``args[i]`` for ``i in wrt``.

    Reverse mode on a batch of ``p`` copies: one forward and one backward pass.
    """
    if p == 0:
        return [np.zeros((0, np.asarray(args[i]).size)) for i in wrt], np.zeros(0)
    ts = []
    for i, a in enumerate(args):
        t = torch.from_numpy(np.repeat(np.asarray(a, dtype=float).reshape(1, -1), p, 0))
        if i in wrt:
            t.requires_grad_(True)
        ts.append(t)
    with torch.enable_grad():
        y = f(*ts)
        if y.shape != (p, p):
            raise ValueError(f"expected an output of size {p}, received shape {tuple(y.shape[1:])}")
        # row i of the output against row i of the inputs: the identity as output gradient
        eye = torch.eye(p, dtype=y.dtype)
        grads = torch.autograd.grad(y, [ts[i] for i in wrt], eye, allow_unused=True)
    out = []
    for i, g in zip(wrt, grads):
        out.append(np.zeros((p, ts[i].shape[1])) if g is None else g.numpy())
    return out, y.detach()[0].numpy()


@dataclass(frozen=True)
class PlantJacobians:
    """Plant Jacobians at ``(x, u, w, r)``.

    ``A = ∂f/∂x`` (n, n), ``B = ∂f/∂u`` (n, m), ``Bw = ∂f/∂w`` (n, n_w), ``C = ∂y/∂x`` (p, n),
    ``Cr = ∂y/∂r`` (p, n_ref), with ``f`` the continuous ``rhs`` or the discrete map (without the
    actuator saturation), ``f0`` its value and ``y0`` the observation; ``dt`` is 0 (continuous) or
    the sample time.
    """

    A: np.ndarray
    B: np.ndarray
    Bw: np.ndarray
    C: np.ndarray
    Cr: np.ndarray
    f0: np.ndarray
    y0: np.ndarray
    dt: float

    @json_dict
    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}


def _check_plant(plant) -> None:
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")


def _is_continuous(plant: Plant, continuous: bool | None) -> bool:
    if continuous is not None and not isinstance(continuous, (bool, np.bool_)):
        raise TypeError(f"continuous: expected True, False or None, received {continuous!r}")
    if continuous is None:
        return plant.is_continuous
    if continuous and not plant.is_continuous:
        raise ValueError(f"continuous=True, but plant {plant.name!r} has no rhs (discrete only)")
    return bool(continuous)


def plant_jacobians(plant: Plant, x, u, w=None, r=None, *, continuous: bool | None = None):
    """Jacobians of a plant's dynamics and observation by autograd, in float64.

    Parameters
    ----------
    plant : Plant
    x : array_like, shape (n,)
    u : array_like, shape (m,)
        Input acting on the plant (the saturation is *not* applied: the Jacobian ``B`` is the
        unsaturated one; :func:`linearize` multiplies by the saturation's gain).
    w : array_like, shape (n_w,), optional
        Disturbance (zeros).
    r : array_like, shape (n_ref,), optional
        Reference (the plant's nominal reference).
    continuous : bool, optional
        Differentiate ``rhs`` (True) or the discrete map ``step`` (False). Default: continuous if
        the plant has an ``rhs``.

    Returns
    -------
    PlantJacobians
    """
    _check_plant(plant)
    cont = _is_continuous(plant, continuous)
    n, m, nw, nr = plant.n_states, plant.n_inputs, plant.n_disturbances, plant.n_references
    x = check_vector(x, n, "x", plant.state_names)
    u = check_vector(u, m, "u", plant.input_names)
    w = np.zeros(nw) if w is None else check_vector(w, nw, "w", plant.disturbance_names)
    r = plant.nominal_reference if r is None else check_vector(r, nr, "r", plant.reference_names)

    p = plant.n_outputs
    if plant._jacobian_hook is not None:  # exact without autograd (complex step)
        exact = plant._jacobian_hook(x, u, w, r, cont)
        if exact is not None:
            A, B, C, f0, y0 = exact
            return PlantJacobians(
                A, B, np.zeros((n, nw)), C, np.zeros((p, nr)), f0, y0, 0.0 if cont else plant.dt
            )

    def fg(xt, ut, wt, rt):
        # dynamics and observation stacked: one forward and one backward pass for both
        if cont:
            f = plant.rhs(xt, ut, wt if nw else None)
        else:
            f = plant.advance(xt, ut, wt if nw else None)  # saturation is handled separately
        return torch.cat([f, plant.observe(xt, rt if nr else None)], -1)

    (Jx, Ju, Jw, Jr), v = _jacobians(fg, [x, u, w, r], (0, 1, 2, 3), n + p)
    return PlantJacobians(
        Jx[:n], Ju[:n], Jw[:n], Jx[n:], Jr[n:], v[:n], v[n:], 0.0 if cont else plant.dt
    )


# ========================================================================= operating point
def _controller64(controller):
    if controller is None:
        return None
    if isinstance(controller, nn.Module):
        return _float64(controller).eval()
    if callable(controller):
        return controller
    raise TypeError(
        f"controller: expected an nn.Module or a callable on observations, received "
        f"{type(controller).__name__}"
    )


def _closed_loop_fn(plant: Plant, ctrl, r: np.ndarray, w: np.ndarray, cont: bool):
    rt = torch.as_tensor(r, dtype=F64)
    wt = torch.as_tensor(w, dtype=F64)

    def command(xt):
        y = plant.observe(xt, rt.expand(*xt.shape[:-1], -1) if plant.n_references else None)
        if ctrl is None:
            return torch.zeros((*xt.shape[:-1], plant.n_inputs), dtype=F64), y
        return ctrl(y), y

    def F(xt):
        u, _ = command(xt)
        u = plant.saturate(u)
        ww = wt.expand(*xt.shape[:-1], -1) if plant.n_disturbances else None
        if cont:
            return plant.rhs(xt, u, ww)
        return plant.step(xt, u, ww) - xt

    return F, command


@dataclass
class OperatingPoint:
    """A closed-loop operating point.

    Attributes
    ----------
    x : ndarray, shape (n,)
        State.
    u : ndarray, shape (m,)
        Command acting on the plant (after saturation).
    u_command : ndarray, shape (m,)
        Controller output before saturation.
    y : ndarray, shape (p,)
        Observation.
    r : ndarray, shape (n_ref,)
        Reference.
    w : ndarray, shape (n_w,)
        Disturbance.
    residual : ndarray, shape (n,)
        ``rhs`` (continuous) or ``step(x) - x`` (discrete) at the point; zero at an equilibrium.
    continuous : bool
    steady_state_error : ndarray, shape (n,) or None
        ``x - x_eq(r)``: how far the closed loop settles from the state at which the plant rests
        for the reference (from ``plant.equilibrium``); ``None`` if the plant defines none.
    drift : ndarray, shape (k,) or None
        For a relative equilibrium (``invariant=``), the rate of motion along the invariant
        directions (per second, or per step for a discrete map).
    success : bool
        The root finder converged and the residual is below ``tol`` (``None`` for a point given
        by the user with :meth:`at`).
    message : str
    state_names : tuple of str
    """

    x: np.ndarray
    u: np.ndarray
    u_command: np.ndarray
    y: np.ndarray
    r: np.ndarray
    w: np.ndarray
    residual: np.ndarray
    continuous: bool
    steady_state_error: np.ndarray | None = None
    success: bool | None = None
    message: str = ""
    state_names: tuple = field(default=(), repr=False)
    drift: np.ndarray | None = None

    @property
    def residual_norm(self) -> float:
        """Max-norm of the residual."""
        return float(np.max(np.abs(self.residual))) if self.residual.size else 0.0

    @classmethod
    def at(
        cls,
        plant: Plant,
        controller,
        x,
        *,
        reference=None,
        disturbance=None,
        continuous: bool | None = None,
        invariant=None,
    ) -> OperatingPoint:
        """The operating point at a given state (no root finding; the residual is reported).

        Useful for relative equilibria, e.g. a ring road in uniform flow, where positions move
        at a common speed but the dynamics are translation invariant: with ``invariant=`` (see
        :func:`operating_point`; default ``plant.invariants``) the motion along those
        directions is reported as ``drift`` and removed from the residual.
        """
        _check_plant(plant)
        check_controller(plant, controller)
        cont = _is_continuous(plant, continuous)
        r, w = _ref_dist(plant, reference, disturbance)
        return _make_op(
            plant,
            _controller64(controller),
            check_vector(x, plant.n_states, "x", plant.state_names),
            r,
            w,
            cont,
            success=None,
            message="given",
            invariant=_plant_invariant(plant, invariant),
        )

    def __repr__(self) -> str:
        names = self.state_names or tuple(f"x[{i}]" for i in range(self.x.size))
        lines = [f"OperatingPoint ({'continuous' if self.continuous else 'discrete'})"]
        shown = (
            range(len(names))
            if len(names) <= 12
            else [*range(6), *range(len(names) - 6, len(names))]
        )
        for i in shown:
            nm = names[i]
            e = (
                ""
                if self.steady_state_error is None
                else (f"   steady-state error {self.steady_state_error[i]: .6g}")
            )
            lines.append(f"  {nm:>12} = {self.x[i]: .6g}{e}")
        lines.append(
            f"  u = {np.array2string(self.u, precision=6)}"
            + (
                ""
                if np.allclose(self.u, self.u_command)
                else f" (saturated from {np.array2string(self.u_command, precision=6)})"
            )
        )
        lines.append(f"  residual {self.residual_norm:.3g}; {self.message}")
        return "\n".join(lines)

    @json_dict
    def to_dict(self) -> dict:
        out = {}
        for k, v in vars(self).items():
            out[k] = (
                v.tolist()
                if isinstance(v, np.ndarray)
                else (list(v) if isinstance(v, tuple) else v)
            )
        out["residual_norm"] = self.residual_norm
        return out

    def plot(self, *, ax=None):
        """Bar chart of the state and, if known, the steady-state error."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3))
        else:
            fig = ax.figure
        names = self.state_names or tuple(f"x[{i}]" for i in range(self.x.size))
        idx = np.arange(len(names))
        ax.bar(idx - 0.2, self.x, 0.4, label="state")
        if self.steady_state_error is not None:
            ax.bar(idx + 0.2, self.steady_state_error, 0.4, label="steady-state error")
        ax.set_xticks(idx, names)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _ref_dist(plant: Plant, reference, disturbance):
    r = (
        plant.nominal_reference
        if reference is None
        else check_vector(reference, plant.n_references, "reference", plant.reference_names)
    )
    w = (
        np.zeros(plant.n_disturbances)
        if disturbance is None
        else check_vector(
            disturbance, plant.n_disturbances, "disturbance", plant.disturbance_names
        )
    )
    return r, w


def _invariant(invariant, n: int) -> np.ndarray:
    try:
        V = np.asarray(invariant, float)
    except (TypeError, ValueError):
        raise TypeError(
            f"invariant: expected directions of shape ({n}, k), received {invariant!r}"
        ) from None
    if V.ndim == 1:
        V = V[:, None]
    if V.ndim != 2 or V.shape[0] != n or V.shape[1] == 0:
        raise ValueError(
            f"invariant: expected directions of shape ({n}, k), received {np.shape(invariant)}"
        )
    if not np.isfinite(V).all() or not np.abs(V).max(axis=0).all():
        raise ValueError("invariant: expected finite, non-zero directions (columns)")
    return V


def _make_op(plant, ctrl, x, r, w, cont, *, success, message, invariant=None):
    F, command = _closed_loop_fn(plant, ctrl, r, w, cont)
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=F64)
        u_cmd, y = command(xt)
        res = F(xt).numpy()
    drift = None
    if invariant is not None:
        V = _invariant(invariant, x.size)
        drift = np.linalg.lstsq(V, res, rcond=None)[0]
        res = res - V @ drift
    u_cmd = u_cmd.numpy()
    sse = None
    if plant._equilibrium is not None:
        try:
            sse = x - plant.equilibrium(r)[0]
        except (ValueError, ArithmeticError):  # no rest state for this reference
            sse = None
    return OperatingPoint(
        x=x,
        u=np.clip(u_cmd, plant.input_lower, plant.input_upper),
        u_command=u_cmd,
        y=y.numpy(),
        r=r,
        w=w,
        residual=res,
        continuous=cont,
        steady_state_error=sse,
        success=success,
        message=message,
        state_names=plant.state_names,
        drift=drift,
    )


class OperatingPointError(RuntimeError):
    """The solve for an operating point did not converge: no equilibrium was found.

    Attributes
    ----------
    op : OperatingPoint
        The best point the solver reached (``success=False``; its ``residual`` says how far it
        is from an equilibrium). Never an equilibrium: do not analyse it.
    """

    def __init__(self, message: str, op: OperatingPoint) -> None:
        super().__init__(message)
        self.op = op


def _plant_invariant(plant: Plant, invariant):
    """``invariant`` if given, else the plant's own directions (``None`` when it has none)."""
    if invariant is not None:
        V = _invariant(invariant, plant.n_states)
        return V if V.shape[1] else None
    V = plant.invariants
    return V if V.shape[1] else None


def _guess(plant: Plant, guess, r: np.ndarray) -> tuple[np.ndarray, str]:
    if guess is None:
        points = plant.operating_points(r)
        if points:
            name = next(iter(points))
            return points[name][0], f"the plant's {name!r} operating point"
        return np.zeros(plant.n_states), "the zero state"
    if isinstance(guess, str):
        points = plant.operating_points(r)
        if guess not in points:
            raise ValueError(
                f"guess: expected a state or one of the plant's operating points {list(points)}"
                f", received {guess!r}"
            )
        return points[guess][0], f"the plant's {guess!r} operating point"
    x = np.asarray(guess, float)
    if x.shape != (plant.n_states,):
        raise ValueError(
            f"guess: expected a state of shape ({plant.n_states},), received shape {x.shape}"
        )
    return x, "the given guess"


def operating_point(
    plant: Plant,
    controller,
    *,
    reference=None,
    disturbance=None,
    guess=None,
    continuous: bool | None = None,
    invariant=None,
    tol: float = 1e-9,
    settle: int = 0,
) -> OperatingPoint:
    """The closed-loop equilibrium (or relative equilibrium) of ``plant`` with ``controller``.

    Solves ``rhs(x, sat(π(observe(x, r)))) = 0`` (continuous) or ``step(x, π(observe(x, r))) = x``
    (discrete) with ``scipy.optimize.root`` (MINPACK ``hybr``), the Jacobian by autograd. When
    the plant has :attr:`~neuroctl.Plant.invariants` (or ``invariant`` is given), a *relative*
    equilibrium is solved for instead (see ``invariant``). A solve that does not reach the
    tolerance raises :class:`OperatingPointError`; a point that is not an equilibrium is never
    returned.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
        Maps observations (float64 tensors, shape (..., p)) to commands (..., m); evaluated in
        float64 (a float32 network is promoted on a copy).
    reference : array_like, shape (n_ref,), optional
        Reference (default: the plant's nominal one).
    disturbance : array_like, shape (n_w,), optional
        Constant disturbance (default zeros).
    guess : array_like, shape (n,), or str, optional
        Initial guess: a state, or the name of one of ``plant.operating_points(r)``. Default: the
        first of those (``"nominal"``, from ``equilibrium=``), else zeros.
    continuous : bool, optional
        Default: continuous if the plant has an ``rhs``.
    invariant : array_like, shape (n, k), optional
        Directions along which the dynamics are invariant; default ``plant.invariants`` (an
        array of shape ``(n, 0)`` solves for a plain equilibrium). With ``k > 0`` a *relative*
        equilibrium is solved for: ``F(x) = V c`` (the state drifts at the constant rate ``c``
        along them, reported as ``drift``), with ``Vᵀ (x - guess) = 0`` fixing the position
        along them. The residual is ``F(x) - V c``.
    tol : float
        Success if the max-norm of the residual is at most ``tol`` (state units per second, or
        per step for a discrete map).
    settle : int
        If positive, first run the noise-free closed loop (``neuroctl.simulate``) for ``settle``
        steps from the guess and solve from where it ends: for control laws (saturated, flat)
        whose equilibrium is far from the plant's nominal point.

    Returns
    -------
    OperatingPoint
        With ``steady_state_error = x - x_eq(r)`` when the plant defines its rest state: a
        controller that does not compensate gravity settles away from the target.

    Raises
    ------
    OperatingPointError
        If the residual of the solution is above ``tol``; its ``op`` is the point reached.
    """
    from scipy.optimize import root

    _check_plant(plant)
    cont = _is_continuous(plant, continuous)
    tol = _check_positive(tol, "tol")
    if not (isinstance(settle, (int, np.integer)) and not isinstance(settle, bool) and settle >= 0):
        raise ValueError(f"settle: expected an int >= 0 (steps), received {settle!r}")
    check_controller(plant, controller)
    r, w = _ref_dist(plant, reference, disturbance)
    if invariant is not None:
        _invariant(invariant, plant.n_states)
    if guess is not None and not isinstance(guess, str):  # a name: one of the plant's points
        guess = check_vector(guess, plant.n_states, "guess", plant.state_names)
    ctrl = _controller64(controller)
    guess, source = _guess(plant, guess, r)
    if settle:
        from .simulate import simulate

        guess = np.asarray(
            simulate(plant, controller, guess, int(settle), reference=r).states[-1], float
        )
        source += f", settled for {int(settle)} steps"
    F, _ = _closed_loop_fn(plant, ctrl, r, w, cont)
    n = plant.n_states
    V = _plant_invariant(plant, invariant)

    def fun(x):
        (J,), val = _jacobians(F, [x], (0,), n)
        return val, J

    if V is None:
        sol = root(fun, guess, jac=True, method="hybr", options={"xtol": 1e-13})
        x_sol = np.asarray(sol.x, float)
    else:
        k = V.shape[1]

        def fun_rel(z):
            x, c = z[:n], z[n:]
            val, J = fun(x)
            res = np.concatenate([val - V @ c, V.T @ (x - guess)])
            jac = np.block([[J, -V], [V.T, np.zeros((k, k))]])
            return res, jac

        c0 = np.linalg.lstsq(V, fun(guess)[0], rcond=None)[0]
        sol = root(
            fun_rel, np.concatenate([guess, c0]), jac=True, method="hybr", options={"xtol": 1e-13}
        )
        x_sol = np.asarray(sol.x[:n], float)
    op = _make_op(plant, ctrl, x_sol, r, w, cont, success=None, message="", invariant=V)
    op.success = bool(op.residual_norm <= tol)
    kind = "relative equilibrium" if V is not None else "equilibrium"
    if not op.success:
        op.message = f"NOT converged ({' '.join(sol.message.split())})"
        raise OperatingPointError(
            f"operating_point: no {kind} of plant {plant.name!r} found from {source}: the "
            f"solve stopped with residual {op.residual_norm:.3g} (max-norm), above tol={tol:g} "
            f"({' '.join(sol.message.split())}). Give a better guess= (a state or one of "
            f"{list(plant.operating_points(r))}), settle= steps of the closed loop first, or "
            "check that this controller has an equilibrium",
            op,
        )
    op.message = "converged" + (f" ({kind})" if V is not None else "")
    return op


# ============================================================================== linearize
@dataclass
class LoopRegion:
    """The linear closed loop in one activation region of the controller.

    Attributes
    ----------
    gain : ndarray, shape (m, p)
        Controller gain on the observation (before saturation).
    saturated : ndarray of bool, shape (m,)
        Inputs held at a bound (zero gain) in this region.
    state_gain : ndarray, shape (m, n)
        Effective feedback ``δu = state_gain δx`` (saturation and observation included).
    A_cl : ndarray, shape (n, n)
        Closed-loop state matrix.
    pattern : tuple of ndarray
        Activation pattern of the network in this region (empty for non-network controllers).
    direction : ndarray or None
        At a kink, a direction (observation space) into the region.
    """

    gain: np.ndarray
    saturated: np.ndarray
    state_gain: np.ndarray
    A_cl: np.ndarray
    pattern: tuple = ()
    direction: np.ndarray | None = None
    _lin: Any = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def closed_loop(self):
        """Closed loop ``control.StateSpace``: inputs references, disturbances and an additive
        disturbance at each plant input (``<input>_d``); outputs the states then the commands."""
        if "cl" not in self._cache:
            self._cache["cl"] = self._lin._closed_loop_ss(self)
        return self._cache["cl"]

    @property
    def loop(self):
        """Loop transfer broken at the plant input, negative-feedback convention: the closed
        loop is ``L / (1 + L)`` (``control.stability_margins`` applies directly)."""
        if "loop" not in self._cache:
            self._cache["loop"] = self._lin._loop_ss(self)
        return self._cache["loop"]

    @property
    def controller(self):
        """The controller gain as a static ``control.StateSpace`` (observations -> inputs)."""
        import control

        lin = self._lin
        return control.ss(
            [],
            [],
            [],
            self.gain,
            lin.dt,
            inputs=list(lin.output_names),
            outputs=list(lin.input_names),
            name="controller",
        )

    def poles(self) -> np.ndarray:
        """Closed-loop poles (eigenvalues of ``A_cl``)."""
        if "poles" not in self._cache:
            self._cache["poles"] = np.linalg.eigvals(self.A_cl) if self.A_cl.size else np.zeros(0)
        return self._cache["poles"]


class Linearization:
    """Closed-loop linearization of a plant and a controller at an operating point.

    Attributes
    ----------
    op : OperatingPoint
    jacobians : PlantJacobians
    local : LocalGain or None
        The controller's local gain (None for a non-network controller, differentiated by
        autograd).
    regions : list of LoopRegion
        One per adjacent activation region of the controller (one off kinks).
    at_kink : bool
    radius : float
        Validity radius in the observation space (controller region or smooth-model radius, and
        the distance of the command to the actuator bounds), in ``norm``.
    state_radius : float
        The same radius mapped to the state through ``C`` (divided by ``||C||``, the induced
        norm): perturbations of the state smaller than this keep the observation inside.
    continuous : bool
    dt : float
        0 for continuous, the sample time otherwise.
    """

    def __init__(self, plant, op, jac, local, regions, at_kink, radius, norm, exo):
        self.plant = plant
        self.op = op
        self.jacobians = jac
        self.local = local
        self.regions = regions
        self.at_kink = at_kink
        self.radius = radius
        self.norm = norm
        self.continuous = jac.dt == 0
        self.dt = jac.dt if jac.dt else 0
        self.state_names = plant.state_names
        self.input_names = plant.input_names
        self.output_names = plant.output_names
        self._exo = exo

    @property
    def state_radius(self) -> float:
        """The validity radius mapped to the state (``radius / ||C||``, induced norm)."""
        Cn = _induced_norm(self.jacobians.C, self.norm)
        return self.radius / Cn if Cn > 0 else math.inf

    # python-control objects ------------------------------------------------------------
    @property
    def plant_ss(self):
        """Open-loop plant ``control.StateSpace``: inputs the plant inputs then the
        disturbances, outputs the observations (deviation variables around the point)."""
        import control

        j, p = self.jacobians, self.plant
        B = np.hstack([j.B, j.Bw])
        return control.ss(
            j.A,
            B,
            j.C,
            np.zeros((j.C.shape[0], B.shape[1])),
            self.dt,
            inputs=list(p.input_names) + list(p.disturbance_names),
            outputs=list(p.output_names),
            states=list(p.state_names),
            name=p.name,
        )

    @property
    def closed_loops(self) -> list:
        """One closed-loop ``StateSpace`` per region."""
        return [r.closed_loop for r in self.regions]

    @property
    def loops(self) -> list:
        """Loop transfer at the plant input per region (see :attr:`LoopRegion.loop`)."""
        return [r.loop for r in self.regions]

    @property
    def gains(self) -> list:
        """Controller gains on the observation, one (m, p) array per region."""
        return [r.gain for r in self.regions]

    @property
    def exogenous_names(self) -> list[str]:
        """Closed-loop input names: references, disturbances, plant-input disturbances."""
        return list(self._exo)

    def _closed_loop_ss(self, reg: LoopRegion):
        import control

        j, p = self.jacobians, self.plant
        S = np.diag((~reg.saturated).astype(float))
        Br = j.B @ S @ reg.gain @ j.Cr
        Bexo = np.hstack([Br, j.Bw, j.B])
        Du = np.hstack(
            [
                S @ reg.gain @ j.Cr,
                np.zeros((p.n_inputs, p.n_disturbances)),
                np.zeros((p.n_inputs, p.n_inputs)),
            ]
        )
        C = np.vstack([np.eye(p.n_states), reg.state_gain])
        D = np.vstack([np.zeros((p.n_states, Bexo.shape[1])), Du])
        return control.ss(
            reg.A_cl,
            Bexo,
            C,
            D,
            self.dt,
            inputs=self.exogenous_names,
            outputs=list(p.state_names) + list(p.input_names),
            states=list(p.state_names),
            name=f"{p.name}_closed_loop",
        )

    def _loop_ss(self, reg: LoopRegion):
        import control

        j, p = self.jacobians, self.plant
        return control.ss(
            j.A,
            j.B,
            -reg.state_gain,
            np.zeros((p.n_inputs, p.n_inputs)),
            self.dt,
            inputs=[f"{u}_in" for u in p.input_names],
            outputs=[f"{u}_fb" for u in p.input_names],
            states=list(p.state_names),
            name=f"{p.name}_loop",
        )

    def __repr__(self) -> str:
        kind = "continuous" if self.continuous else f"discrete (dt={self.dt})"
        lines = [
            f"Linearization of {self.plant.name!r}, {kind}, {len(self.regions)} region(s)"
            + (" -- AT A KINK" if self.at_kink else "")
        ]
        for i, r in enumerate(self.regions):
            lines.append(
                f"  region {i}: gain {np.array2string(r.gain, precision=5)}"
                f", poles {np.array2string(r.poles(), precision=4)}"
            )
        lines.append(
            f"  validity radius {self.radius:.4g} (observation), {self.state_radius:.4g} (state)"
        )
        return "\n".join(lines)

    @json_dict
    def to_dict(self) -> dict:
        j = self.jacobians
        return {
            "op": self.op.to_dict(),
            "A": j.A.tolist(),
            "B": j.B.tolist(),
            "Bw": j.Bw.tolist(),
            "C": j.C.tolist(),
            "dt": self.dt,
            "at_kink": self.at_kink,
            "radius": self.radius,
            "state_radius": self.state_radius,
            "regions": [
                {
                    "gain": r.gain.tolist(),
                    "saturated": r.saturated.tolist(),
                    "A_cl": r.A_cl.tolist(),
                    "poles": [complex(z) for z in r.poles()],
                }
                for r in self.regions
            ],
        }

    def plot(self, *, ax=None):
        """Closed-loop poles of every region (see :meth:`StabilityReport.plot` for more)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(4.5, 4))
        else:
            fig = ax.figure
        _pole_axes(ax, self.continuous)
        for i, r in enumerate(self.regions):
            z = r.poles()
            ax.plot(z.real, z.imag, "x", ms=8, label=f"region {i}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _pole_axes(ax, continuous: bool) -> None:
    if continuous:
        ax.axvline(0.0, color="grey", lw=0.8)
    else:
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="grey", lw=0.8)
        ax.set_aspect("equal")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")


def _induced_norm(M: np.ndarray, norm: float) -> float:
    if M.size == 0:
        return 0.0
    if norm == 2:
        return float(np.linalg.norm(M, 2))
    if math.isinf(norm):
        return float(np.abs(M).sum(axis=1).max())
    return float(np.abs(M).sum(axis=0).max())


def _dual(v: np.ndarray, norm: float) -> float:
    if norm == 2:
        return float(np.linalg.norm(v))
    if math.isinf(norm):
        return float(np.abs(v).sum())
    return float(np.abs(v).max())


def linearize(
    plant: Plant,
    controller,
    op: OperatingPoint | None = None,
    *,
    reference=None,
    continuous: bool | None = None,
    norm: float | str = 2,
    kink_tol: float = 1e-9,
    validity_tol: float = 1e-3,
    max_kink_neurons: int = 10,
) -> Linearization:
    """Linearize the closed loop of ``plant`` and ``controller`` at an operating point.

    The plant Jacobians come from autograd on the pure dynamics (float64); the controller's gain
    from :func:`local_gain` (exact for piecewise-linear networks, every adjacent region at a
    kink), through the observation map and the actuator saturation (a saturated input has zero
    gain; a command exactly at a bound is a kink with both sides reported). Callables that are not
    networks are differentiated by autograd (one region, radius unknown: ``nan``).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
    op : OperatingPoint, optional
        Default: :func:`operating_point` from the plant's nominal equilibrium.
    reference : array_like, optional
        Used only when ``op`` is not given.
    continuous : bool, optional
        Linearize ``rhs`` (continuous) or the discrete map; default continuous if the plant has an
        ``rhs``; if ``op`` is given its kind is used.
    norm, kink_tol, validity_tol, max_kink_neurons
        As in :func:`local_gain`.

    Returns
    -------
    Linearization
        With python-control objects ``plant_ss``, ``closed_loops`` (one per region; inputs:
        references, disturbances and plant-input disturbances, never empty), ``loops`` (broken at
        the plant input) and each region's ``controller`` gain.
    """
    _check_plant(plant)
    norm = _check_norm(norm)
    kink_tol = _check_positive(kink_tol, "kink_tol", allow_zero=True)
    check_controller(plant, controller)
    if op is None:
        op = operating_point(plant, controller, reference=reference, continuous=continuous)
    elif not isinstance(op, OperatingPoint):
        raise TypeError(f"op: expected an OperatingPoint, received {type(op).__name__}")
    elif reference is not None:
        raise ValueError(
            "reference: expected None when op= is given (the reference is used only to find the "
            f"operating point; op's is op.r), received {reference!r}"
        )
    else:
        want = (plant.n_states, plant.n_references, plant.n_disturbances, plant.n_outputs)
        got = (op.x.size, np.size(op.r), np.size(op.w), np.size(op.y))
        if want != got:
            raise ValueError(
                f"op: expected an operating point of plant {plant.name!r} (sizes of state, "
                f"reference, disturbance, observation {want}), received one with sizes {got}"
            )
    cont = op.continuous if continuous is None else _is_continuous(plant, continuous)
    walked = isinstance(controller, nn.Module) and _supported(controller)
    # a network with rules is walked in float64 as it is, no copy needed
    ctrl = controller if walked else _controller64(controller)
    m, p = plant.n_inputs, plant.n_outputs
    local = None
    if ctrl is None:
        raw = [(np.zeros((m, p)), (), None)]
        u_cmd = np.zeros(m)
        radius = math.inf
        at_kink = False
    elif walked:
        local = local_gain(
            ctrl,
            op.y,
            norm=norm,
            kink_tol=kink_tol,
            validity_tol=validity_tol,
            max_kink_neurons=max_kink_neurons,
        )
        raw = []
        for r in local.regions:  # distinct regions with the same affine map: one closed loop
            if not any(np.array_equal(r.K, k) for k, _, _ in raw):
                raw.append((r.K, r.pattern, r.direction))
        u_cmd = local.value
        radius = float(local.radius)
        at_kink = bool(local.at_kink)
    else:
        (Ky,), u_cmd = _jacobians(lambda y: ctrl(y), [op.y], (0,), m)
        raw = [(Ky, (), None)]
        radius = math.nan
        at_kink = False
    # the plant Jacobians after the network walk: measured slightly faster in this order
    jac = plant_jacobians(plant, op.x, op.u, op.w, op.r, continuous=cont)
    # actuator saturation: strictly outside -> zero gain; at a bound -> both sides
    lo, hi = plant.input_lower, plant.input_upper
    inside = (u_cmd > lo + kink_tol) & (u_cmd < hi - kink_tol)
    at_bound = ~inside & ((np.abs(u_cmd - lo) <= kink_tol) | (np.abs(u_cmd - hi) <= kink_tol))
    regions = []
    for K, pattern, direction in raw:
        amb = [i for i in range(m) if at_bound[i] and np.any(K[i] != 0)]
        for combo in itertools.product((False, True), repeat=len(amb)):
            sat = ~inside.copy()
            for i, s in zip(amb, combo):
                sat[i] = s
            S = np.diag((~sat).astype(float))
            Kx = S @ K @ jac.C
            regions.append(
                LoopRegion(
                    gain=K,
                    saturated=sat,
                    state_gain=Kx,
                    A_cl=jac.A + jac.B @ Kx,
                    pattern=pattern,
                    direction=direction,
                )
            )
        at_kink = at_kink or bool(amb)
    # distance of the command to the actuator bounds, in the observation space
    for i in range(m):
        if inside[i] and local is not None:
            g = _dual(local.K[i], norm)
            if g > 0:
                radius = min(radius, min(u_cmd[i] - lo[i], hi[i] - u_cmd[i]) / g)
        if at_bound[i]:
            radius = 0.0
    exo = (
        list(plant.reference_names)
        + list(plant.disturbance_names)
        + [f"{u}_d" for u in plant.input_names]
    )
    lin = Linearization(plant, op, jac, local, regions, at_kink, radius, norm, exo)
    for r in regions:
        r._lin = lin
    return lin


_SUPPORTED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _supported(net: nn.Module) -> bool:
    """Whether every module of ``net`` has a gain rule (cached per module and its children)."""
    kids = tuple(map(id, net.children()))
    hit = _SUPPORTED_CACHE.get(net)
    if hit is not None and hit[0] == kids:
        return hit[1]
    val = all(type(mod) in GAIN_RULES for mod in net.modules())
    _SUPPORTED_CACHE[net] = (kids, val)
    return val


# =================================================================================== lqr
def lqr(plant: Plant, op, Q, R, *, continuous: bool | None = None, on: str = "auto") -> nn.Linear:
    """LQR state feedback on the plant's linearization, as an ``nn.Linear`` controller.

    Parameters
    ----------
    plant : Plant
    op : OperatingPoint or tuple (x, u)
        Point of linearization: an :class:`OperatingPoint` or a state ``(n,)`` and input ``(m,)``
        at which the plant rests.
    Q : array_like, shape (n, n)
        State weight.
    R : array_like, shape (m, m)
        Input weight.
    continuous : bool, optional
        ``control.lqr`` on ``rhs`` (True) or ``control.dlqr`` on the discrete map (False).
        Default: the kind of ``op`` if given, else continuous if the plant has an ``rhs``.
    on : {"auto", "observation", "state"}
        What the returned layer acts on. With "auto", the observation if its Jacobian ``C`` has
        full column rank at the point (``y = C x`` locally invertible: the layer computes
        ``u = u0 - K C⁺ (y - y0)``, identical to ``u0 - K (x - x0)`` to first order and exactly
        for a linear observation map), otherwise the state.

    Returns
    -------
    nn.Linear (float64, frozen)
        With attributes ``acts_on`` ("observation" or "state"), ``state_gain`` (the LQR ``K``,
        shape (m, n), ``u = u0 - K (x - x0)``), ``riccati`` (the solution ``S``) and ``poles``.
    """
    import control

    from .controllers import linear_controller

    _check_plant(plant)
    if on not in ("auto", "observation", "state"):
        raise ValueError(f"on: expected 'auto', 'observation' or 'state', received {on!r}")
    if isinstance(op, OperatingPoint):
        x0, u0, w0, r0 = op.x, op.u, op.w, op.r
        cont = op.continuous if continuous is None else _is_continuous(plant, continuous)
    else:
        try:
            x0, u0 = op
        except (TypeError, ValueError):
            raise TypeError(
                f"op: expected an OperatingPoint or a tuple (x, u), received {op!r}"
            ) from None
        x0 = check_vector(x0, plant.n_states, "op[0] (the state)", plant.state_names)
        u0 = check_vector(u0, plant.n_inputs, "op[1] (the input)", plant.input_names)
        w0 = r0 = None
        cont = _is_continuous(plant, continuous)
    jac = plant_jacobians(plant, x0, u0, w0, r0, continuous=cont)
    Q = np.atleast_2d(np.asarray(Q, float))
    R = np.atleast_2d(np.asarray(R, float))
    n, m = plant.n_states, plant.n_inputs
    if Q.shape != (n, n) or R.shape != (m, m):
        raise ValueError(
            f"Q, R: expected shapes ({n}, {n}) and ({m}, {m}), received {Q.shape} and {R.shape}"
        )
    if not (np.isfinite(Q).all() and np.isfinite(R).all()):
        raise ValueError("Q, R: expected finite weights, received a NaN or an infinity")
    if cont:
        K, S, E = control.lqr(jac.A, jac.B, Q, R)
    else:
        K, S, E = control.dlqr(jac.A, jac.B, Q, R)
    K = np.asarray(K)
    C = jac.C
    use_obs = on == "observation" or (on == "auto" and np.linalg.matrix_rank(C) == n)
    if use_obs:
        if np.linalg.matrix_rank(C) < n:
            raise ValueError(
                "on='observation': the observation Jacobian C has rank "
                f"{np.linalg.matrix_rank(C)} < n={n}; the state is not recoverable from y"
            )
        G = -K @ np.linalg.pinv(C)
        offset = u0 - G @ jac.y0
    else:
        G, offset = -K, u0 + K @ x0
    layer = linear_controller(G)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor(np.array(offset, dtype=float), dtype=F64))
    layer.acts_on = "observation" if use_obs else "state"
    layer.state_gain = K
    layer.riccati = np.asarray(S)
    layer.poles = np.asarray(E)
    return layer


# ``neuroctl.linearize`` is both this module and the function :func:`linearize`: once the module
# is imported (e.g. ``from neuroctl.linearize import local_gain``), Python binds the package
# attribute ``neuroctl.linearize`` to the module, shadowing the function. Calling the module
# therefore calls the function, so ``neuroctl.linearize(plant, controller, op)`` always works.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return linearize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
