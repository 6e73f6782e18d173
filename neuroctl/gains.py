"""Exact local gains of networks: the affine map of an activation region, every region at a kink.

* :func:`local_gain` -- the affine map ``u = K y + c`` of a network around ``y``: exact inside the
  activation region of a piecewise-linear network (with the region's radius), every adjacent
  region at a kink, or the Jacobian with a validity radius for smooth activations.
* :class:`LocalGain` -- its result; :class:`Region` -- one activation region touching the point.

Nothing here uses finite differences: the network is walked with a per-layer rule table
(:mod:`neuroctl._gain_rules`).
"""

from __future__ import annotations

import copy
import itertools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import _check_norm, _check_positive, _norm_label
from ._gain_rules import (
    GAIN_RULES,
    NUMPY_MAX_BATCH,
    KinkFound,
    supported_layers,
    walk_network,
)
from ._json import json_dict
from .simulate import linear_io

__all__ = ["local_gain", "LocalGain", "Region"]

F64 = torch.float64
_CHUNK = 2048


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

    # the attributes are set from the keyword arguments of __init__ (see the list above)
    x: np.ndarray
    value: np.ndarray
    K: np.ndarray
    c: np.ndarray
    radius: np.ndarray | float
    region_radius: np.ndarray | float
    smooth_radius: float
    exact: bool
    at_kink: np.ndarray | bool
    patterns: list[np.ndarray]
    layers: tuple[str, ...]
    preactivations: list[dict[str, np.ndarray]] | None
    norm: float
    validity_tol: float
    kink_tol: float
    _batched: bool
    _kink_regions: dict[int, tuple[Region, ...]]
    _binder: Callable[[], tuple[np.ndarray, np.ndarray]]
    _binding: tuple[np.ndarray, np.ndarray] | None

    def __init__(self, **fields: Any) -> None:
        self._binding = None
        self.__dict__.update(fields)

    def _bound(self) -> tuple[np.ndarray, np.ndarray]:
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
            radius=float(np.asarray(self.radius)[i]),
            region_radius=float(np.asarray(self.region_radius)[i]),
            smooth_radius=self.smooth_radius,
            exact=self.exact,
            at_kink=bool(np.asarray(self.at_kink)[i]),
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
    parts = []
    pool: dict = {}  # buffers of one chunk's torch walk, reused by the next
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
