"""Certified regions of attraction of a closed loop: a quadratic Lyapunov function and its level.

For a plant and a controller with an operating point ``x*`` (``F(x*) = x*`` for the discrete
closed loop ``F(x) = plant.step(x, π(observe(x, r)))``), :func:`region_of_attraction` proves
that a sublevel set ``S_c = {x : V(x) <= c}`` of

    ``V(x) = (x - x*)ᵀ P (x - x*)``,  ``Aᵀ P A - P = -Q``  (``control.dlyap``),

``A`` the closed loop's exact Jacobian at ``x*`` (the activation region of the network at the
point, from :func:`neuroctl.linearize`), lies in the region of attraction of ``x*``. Other
shapes of ``P`` (the equation of ``A / rate``; ``P`` fitted to simulated transitions, see
:mod:`neuroctl.verify.lyapunov`) are proved the same way:

The proof works in a box of states, the *search box* below: the ``box`` argument, or a larger
proof domain ``D`` (``domain=``) that contains it. The box is where the result is measured
(:attr:`RegionOfAttraction.volume`); with a larger ``D`` the certified set may reach out of the
box, so it can contain states of the box whose trajectories leave the box before converging.

1. *The box.* With ``intersect_box=True`` the certified set is the cut set
   ``S_c ∩ box`` and every box of step 3 must also satisfy ``F(box) ⊆ search box`` (then
   ``V(F(x)) < V(x) <= c`` and ``F(x)`` in the box: ``F`` maps the cut set into itself); by
   default ``c <= c_box``, the largest level whose ellipsoid fits the search box
   (``max_{S_c} (x_i - x*_i) = sqrt(c (P⁻¹)_ii)``). The near field of step 2 always lies in
   the box (``c_near <= c_box``).
2. *Near field* (``V <= c_near``). On the bounding box ``B`` of ``S_{c_near}`` the Jacobian of
   ``F`` is enclosed by an interval matrix ``[J]``: the plant's integrator is run on first-order
   Taylor series whose coefficients are affine forms (sound), the network's Jacobian by interval
   products with each ReLU's slope in ``{0}``, ``{1}`` or ``[0, 1]`` from its pre-activation
   bounds on the box, the saturation's likewise. By the mean value theorem along the segment from
   ``x*`` (``B`` is convex), ``F(x) - x* = M (x - x*)`` with ``M ∈ [J]``, hence
   ``V(F(x)) <= ρ² V(x)`` with ``ρ = ||Lᵀ A L⁻ᵀ||₂ + || |Lᵀ| |[J] - A| |L⁻ᵀ| ||₂`` (``P = L Lᵀ``);
   ``ρ < 1`` proves the decrease there.
3. *Annulus* (``c_near <= V <= c``). The search box is cut into boxes; on each, ``V(F(x)) - V(x)
   = (F(x) - x)ᵀ P (F(x) + x - 2 x*)`` is bounded above with the affine forms of
   :mod:`neuroctl.verify.affine` (plant and controller both run on the sets). A box whose bound
   is negative is proved; one that is not is split (branch and bound); a box that cannot be
   proved at the finest resolution, or whose centre violates the decrease, *lowers the level*
   below the box's least ``V``. Proved boxes stay proved for every lower level: the level is a
   sweep (monotone decreasing), with no outer bisection.

Then ``V`` decreases strictly along the closed loop on ``S_c \\ {x*}``, so ``F(S_c) ⊆ S_c``
(forward invariance: no trajectory leaves the set, whatever the actuator limits do, since the
saturation is part of ``F``) and every trajectory from ``S_c`` converges to ``x*`` (in finitely
many steps it enters ``S_{c_near}``, where ``V`` contracts by ``ρ²`` per step).

4. *Entry boxes* (``entry_steps > 0``). Boxes of the box of interest outside ``S_c`` are run
   through the closed loop on sets until their set lies in ``S_c``
   (:mod:`neuroctl.verify.roa_entry`): their states converge too. The certified region is
   ``S_c`` and those boxes (:attr:`RegionOfAttraction.entry`).

Semantics: the discrete map ``plant.step`` (what :func:`neuroctl.simulate` runs).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..plant import Plant
from .affine import AffineForm, SetArithmeticError, _const, controller_on_sets
from .flow import Taylor, closed_loop_period_sets
from .lyapunov import (
    QuadraticLyapunov,
    QuarticLyapunov,
    box_level,
    fit_quadratic,
    learn_quartic,
    lyapunov_matrix,
)
from .roa_entry import EntryBoxes, in_boxes, prove_entry_boxes

__all__ = ["RegionOfAttraction", "region_of_attraction", "closed_loop_rollout"]

_U = 2.0**-53


# ============================================================================ result
@dataclass
class RegionOfAttraction:
    """A certified region of attraction ``{x : (x - x*)ᵀ P (x - x*) <= level}``.

    Attributes
    ----------
    x_star : ndarray, shape (n,)
        The operating point.
    P : ndarray, shape (n, n)
        The Lyapunov matrix (symmetric positive definite).
    level : float
        The certified level ``c`` (0: no certificate).
    near_level : float
        Level of the near field proved by the Jacobian enclosure.
    contraction : float
        ``ρ``: ``V(F(x)) <= ρ² V(x)`` on the near field.
    box_level : float
        Largest level whose ellipsoid lies in the proof domain.
    box_lower, box_upper : ndarray, shape (n,)
        The box of interest: :attr:`volume` is the certified set's volume inside it.
    A : ndarray, shape (n, n)
        Closed-loop Jacobian at ``x*`` (one activation region).
    boxes_proved, boxes_evaluated : int
        Boxes of the annulus proved, and evaluated in all.
    limited_by : str
        What stopped the level from growing (``"box"``, ``"counterexample"``, ``"resolution"``,
        ``"timeout"``, ``"unstable"``).
    counterexample : ndarray or None, shape (n,)
        A state where ``V`` does not decrease (it bounds the level from above).
    semantics : str
    time : float
        Seconds.
    intersect_box : bool
        The certified set is ``{V <= level} ∩ [domain_lower, domain_upper]`` (else the
        ellipsoid ``{V <= level}``, inside the domain).
    assumptions : list of str
    state_names : tuple of str
    lyapunov : str
        ``"quadratic"``, or ``"learned"``: ``V`` is the quartic sum of squares
        ``(x - x*)ᵀ P (x - x*) + |Gᵀ z((x - x*) / scale)|²``
        (:class:`~neuroctl.verify.lyapunov.QuarticLyapunov`), the certified set is the cut set
        ``{V <= level} ∩ box`` and the near field is ``{(x - x*)ᵀ near_P (x - x*) <= near_level}``.
    G : ndarray or None, shape (n + n(n+1)/2, k)
    scale : ndarray or None, shape (n,)
    near_P : ndarray or None, shape (n, n)
        The near field's matrix when it is not ``P``.
    compared : dict
        With ``lyapunov="learned"``: level, volume and what limited each candidate
        (``"quadratic"``, ``"learned"``); the result is the one of larger volume.
    domain_lower, domain_upper : ndarray or None, shape (n,)
        The proof domain (the search box of the branch and bound), containing the box; the
        certified set lies inside it. None: the box itself.
    entry : EntryBoxes or None
        Boxes proved to enter the invariant set ``S`` (``entry_steps > 0``): the certified
        region is ``S`` and these boxes (:meth:`contains`); :meth:`in_invariant_set` is ``S``
        alone.
    """

    x_star: np.ndarray
    P: np.ndarray
    level: float
    near_level: float
    contraction: float
    box_level: float
    box_lower: np.ndarray
    box_upper: np.ndarray
    A: np.ndarray
    boxes_proved: int
    boxes_evaluated: int
    limited_by: str
    counterexample: np.ndarray | None
    semantics: str
    time: float
    intersect_box: bool = False
    assumptions: list = field(default_factory=list)
    state_names: tuple = ()
    lyapunov: str = "quadratic"
    G: np.ndarray | None = None
    scale: np.ndarray | None = None
    near_P: np.ndarray | None = None
    compared: dict = field(default_factory=dict)
    # None when built: the box (__post_init__)
    domain_lower: np.ndarray = None  # type: ignore[assignment]
    domain_upper: np.ndarray = None  # type: ignore[assignment]
    entry: EntryBoxes | None = None
    _plant: Plant | None = field(default=None, repr=False)
    _controller: object = field(default=None, repr=False)
    _reference: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.domain_lower is None:
            self.domain_lower = np.array(self.box_lower, dtype=np.float64)
        if self.domain_upper is None:
            self.domain_upper = np.array(self.box_upper, dtype=np.float64)

    @property
    def certified(self) -> bool:
        return self.level > 0.0

    @property
    def wider_domain(self) -> bool:
        """Whether the proof domain is larger than the box (the certified set may leave it)."""
        return _wider(self.domain_lower, self.domain_upper, self.box_lower, self.box_upper)

    @property
    def lyapunov_function(self) -> QuadraticLyapunov:
        """The certificate's ``V`` (a :class:`QuarticLyapunov` for a learned one)."""
        if self.G is None:
            return QuadraticLyapunov(self.x_star, self.P)
        return QuarticLyapunov(self.x_star, self.P, self.G, self.scale)

    def V(self, x) -> np.ndarray:
        """``V(x)``, shape (...) for ``x`` of shape (..., n)."""
        return self.lyapunov_function.value(x)

    def in_invariant_set(self, x) -> np.ndarray:
        """Whether each state (shape (..., n)) lies in the invariant set ``S`` (``{V <= level}``,
        cut by the domain for a cut set), shape (...)."""
        x = np.asarray(x, dtype=np.float64)
        inside = self.V(x) <= self.level
        if self.intersect_box:
            inside &= np.all((x >= self.domain_lower) & (x <= self.domain_upper), axis=-1)
        return inside

    def contains(self, x) -> np.ndarray:
        """Whether each state (shape (..., n)) lies in the certified region: the invariant set
        or an entry box, shape (...)."""
        return self.entry_step(x) >= 0

    def entry_step(self, x) -> np.ndarray:
        """Steps after which each state (shape (..., n)) is proved to be in the invariant set:
        0 inside it, an entry box's steps inside that box, -1 outside the certified region;
        shape (...)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.where(self.in_invariant_set(x), 0, -1)
        if self.entry is not None and len(self.entry):
            flat = out.reshape(-1)
            which = in_boxes(x.reshape(-1, x.shape[-1]), self.entry.lower, self.entry.upper)
            fill = (flat < 0) & (which >= 0)
            flat[fill] = self.entry.steps[which[fill]]
            out = flat.reshape(out.shape)
        return out

    def sample(self, count: int, *, seed: int = 0) -> np.ndarray:
        """Uniform samples of the certified set, shape (count, n).

        Uniform in the bounding box of the ellipsoid ``{(x - x*)ᵀ P (x - x*) <= level}`` (which
        holds the invariant set: a learned ``V`` is at least its quadratic part) cut by the
        domain, and of the entry boxes, kept where :meth:`contains` holds.
        """
        if not (isinstance(count, (int, np.integer)) and count >= 1):
            raise ValueError(f"count: expected a positive int, received {count!r}")
        if not self.certified:
            raise ValueError("sample: this RegionOfAttraction certifies no set (level 0)")
        rng = np.random.default_rng(seed)
        half = np.sqrt(self.level * np.diag(np.linalg.inv(self.P)))
        lo = np.maximum(self.x_star - half, self.domain_lower)
        hi = np.minimum(self.x_star + half, self.domain_upper)
        if self.entry is not None and len(self.entry):
            lo = np.minimum(lo, self.entry.lower.min(axis=0))
            hi = np.maximum(hi, self.entry.upper.max(axis=0))
        kept, total, draw = [], 0, 2 * count
        while total < count:
            x = rng.uniform(lo, hi, (draw, self.x_star.size))
            x = x[self.contains(x)]
            kept.append(x)
            total += len(x)
            # draw enough for what is missing at the acceptance seen so far
            draw = min(int((count - total) * draw / max(len(x), 1) * 1.2) + 1000, 10**7)
        return np.concatenate(kept)[:count]

    @property
    def volume(self) -> float:
        """Volume of the certified set inside the box ``[box_lower, box_upper]`` (state units to
        the power n; the whole set when the proof domain is the box).

        Closed form for an ellipsoid inside the box; otherwise (a cut set that reaches the
        domain's faces, a set reaching out of the box, a learned ``V``) the box's volume times
        the fraction of 2·10⁵ uniform samples of it (seed 0) in the set (an estimate, relative
        standard error below 0.5% for sets of more than a fifth of the box). Entry boxes count.
        """
        n = self.x_star.size
        if self.level <= 0:
            return 0.0
        if self.G is None and self.entry is None and self.level <= box_level(
                self.P, self.x_star, self.box_lower, self.box_upper):
            unit = math.pi ** (n / 2) / math.gamma(n / 2 + 1)
            return float(unit * self.level ** (n / 2) / math.sqrt(np.linalg.det(self.P)))
        x = np.random.default_rng(0).uniform(self.box_lower, self.box_upper, (200_000, n))
        return float(np.prod(self.box_upper - self.box_lower) * self.contains(x).mean())

    def __repr__(self) -> str:
        names = self.state_names or tuple(f"x[{i}]" for i in range(self.x_star.size))
        half = np.sqrt(self.level * np.diag(np.linalg.inv(self.P)))
        if self.intersect_box:
            half = np.minimum(half, np.maximum(self.x_star - self.domain_lower,
                                               self.domain_upper - self.x_star))
        ext = ", ".join(f"{nm} ±{h:.3g}" for nm, h in zip(names, half))
        cut = (" ∩ domain" if self.wider_domain else " ∩ box") if self.intersect_box else ""
        quartic = " + |Gᵀ z(x)|²" if self.G is not None else ""
        return (
            f"RegionOfAttraction({self.semantics}: V(x) = (x - x*)ᵀ P (x - x*){quartic} <= "
            f"{self.level:.6g}"
            f"{cut}"
            f" {'certified' if self.certified else 'NOT certified'}; extent {ext}; "
            f"volume {self.volume:.4g}; near field V <= {self.near_level:.3g} (ρ = "
            f"{self.contraction:.4f}); {self.boxes_proved}/{self.boxes_evaluated} boxes proved; "
            f"limited by {self.limited_by}"
            + ("" if self.entry is None else
               f"; {len(self.entry)} entry boxes (at most {int(self.entry.steps.max(initial=0))} "
               f"steps to the set, {self.entry.limited_by})")
            + f"; {self.time:.2f} s)"
        )

    def summary(self) -> list[str]:
        """The result in words, as lines of text: the level, the volume (also as a fraction of
        the search box) and the time, then the certificate (its ``repr``)."""
        fraction = self.volume / float(np.prod(self.box_upper - self.box_lower))
        return [
            f"level {self.level:.6g}  volume {self.volume:.4g}  ({fraction:.1%} of the box)  "
            f"{self.time:.2f} s",
            repr(self),
        ]

    def to_dict(self) -> dict:
        out = {}
        for k, v in vars(self).items():
            if k.startswith("_"):
                continue
            out[k] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple)
                                                                   else v)
        if self.entry is not None:
            e = self.entry
            out["entry"] = {"lower": e.lower.tolist(), "upper": e.upper.tolist(),
                            "steps": e.steps.tolist(), "chained": e.chained,
                            "evaluated": e.evaluated,
                            "simulated": e.simulated, "limited_by": e.limited_by,
                            "time": e.time}
        out["volume"] = self.volume
        out["certified"] = self.certified
        return out

    def plot(self, *, dims=(0, 1), n_traj: int = 24, steps: int = 300, ax=None, seed: int = 0):
        """The certified set's slice through ``x*`` on two states, over simulated trajectories.

        Parameters
        ----------
        dims : tuple of int
            The two states of the slice (the others at ``x*``).
        n_traj, steps : int
            Trajectories from random states of the slice of the box, and their length (the
            axes span the proof domain; a domain larger than the box is drawn with the box
            dashed).
        """
        if self._plant is None:
            raise ValueError(
                "plot: this RegionOfAttraction has no plant to simulate (it was not made by "
                "region_of_attraction); pass _plant= and _controller= when building it"
            )
        import matplotlib.pyplot as plt

        i, j = dims
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 4.5))
        else:
            fig = ax.figure
        rng = np.random.default_rng(seed)
        x0 = np.tile(self.x_star, (n_traj, 1))
        x0[:, i] = rng.uniform(self.box_lower[i], self.box_upper[i], n_traj)
        x0[:, j] = rng.uniform(self.box_lower[j], self.box_upper[j], n_traj)
        xs = closed_loop_rollout(self._plant, self._controller, x0, steps,
                                 reference=self._reference)
        ok = np.linalg.norm(xs[:, -1] - self.x_star, axis=-1) < 1e-3
        for k in range(n_traj):
            ax.plot(xs[k, :, i], xs[k, :, j], lw=0.7, color="tab:blue" if ok[k] else "tab:red",
                    alpha=0.7)
        gi = np.linspace(self.domain_lower[i], self.domain_upper[i], 200)
        gj = np.linspace(self.domain_lower[j], self.domain_upper[j], 200)
        G = np.tile(self.x_star, (200, 200, 1))
        G[..., i], G[..., j] = np.meshgrid(gi, gj)
        if self.level > 0:
            ax.contour(gi, gj, self.V(G), levels=[self.level], colors="k", linewidths=1.5)
        if self.entry is not None and len(self.entry) and self.x_star.size == 2:
            from matplotlib.collections import PolyCollection

            lo, hi = self.entry.lower[:, [i, j]], self.entry.upper[:, [i, j]]
            quads = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi,
                              np.stack([lo[:, 0], hi[:, 1]], 1)], 1)
            ax.add_collection(PolyCollection(list(quads), facecolors="tab:green", alpha=0.25,
                                             edgecolors="none"))
        ax.plot(*self.x_star[[i, j]], "k+")
        names = self.state_names or tuple(f"x[{q}]" for q in range(self.x_star.size))
        if self.wider_domain:
            from matplotlib.patches import Rectangle

            lo, hi = self.box_lower, self.box_upper
            ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], fill=False,
                                   edgecolor="k", linestyle="--", linewidth=0.8))
        ax.set_xlim(self.domain_lower[i], self.domain_upper[i])
        ax.set_ylim(self.domain_lower[j], self.domain_upper[j])
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.set_title(f"certified V <= {self.level:.3g} (black)"
                     + (", entry boxes (green)" if self.entry is not None else "")
                     + "; converging (blue), not (red)", fontsize=8)
        fig.tight_layout()
        return fig


# ============================================================================ simulation
def closed_loop_rollout(plant: Plant, controller, x0, steps: int, *, reference=None):
    """States of the discrete closed loop ``x ← plant.step(x, π(observe(x, r)))`` in float64.

    Parameters
    ----------
    x0 : array_like, shape (N, n)
    steps : int

    Returns
    -------
    ndarray, shape (N, steps + 1, n)
    """
    from ..operating import _controller64

    ctrl = _controller64(controller)
    x = torch.as_tensor(np.array(x0, dtype=np.float64, ndmin=2))
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = torch.as_tensor(np.broadcast_to(_const(ref), (x.shape[0], plant.n_references)).copy())
    out = [x.numpy().copy()]
    with torch.no_grad():
        for _ in range(steps):
            y = plant.observe(x, r) if r is not None else plant.observe(x)
            x = plant.step(x, ctrl(y))
            out.append(x.numpy().copy())
    return np.stack(out, 1)


# ============================================================================ intervals
def _imul(al, ah, bl, bh):
    """Sound enclosure of the interval matrix product ``[al, ah] @ [bl, bh]``."""
    am, ar = (al + ah) / 2, (ah - al) / 2
    bm, br = (bl + bh) / 2, (bh - bl) / 2
    ar = ar + np.abs(am) * 4 * _U  # the midpoint's own rounding
    br = br + np.abs(bm) * 4 * _U
    mid = am @ bm
    rad = np.abs(am) @ br + ar @ np.abs(bm) + ar @ br
    k = am.shape[-1] + 2
    rad = rad + 2 * k * _U * ((np.abs(am) + ar) @ (np.abs(bm) + br)) + 1e-300
    rad = np.nextafter(rad * (1 + 8 * _U), np.inf)
    return mid - rad, mid + rad


def _net_jacobian(controller: nn.Module, y: AffineForm):
    """Interval Jacobian (m, p) of a Linear/ReLU network over the set ``y`` (shape (1, p))."""
    layers = list(controller) if isinstance(controller, nn.Sequential) else [controller]
    p = y.shape[-1]
    jl, jh = np.eye(p), np.eye(p)
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            sub_l, sub_h, y = _net_jacobian(layer, y)
            jl, jh = _imul(sub_l, sub_h, jl, jh)
            continue
        if isinstance(layer, nn.Linear):
            w = _const(layer.weight)
            jl, jh = _imul(w, w, jl, jh)
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
            a = float(layer.negative_slope) if isinstance(layer, nn.LeakyReLU) else 0.0
            lo, hi = y.lower[0], y.upper[0]
            sl = np.where(lo > 0, 1.0, a)
            sh = np.where(hi < 0, a, 1.0)
            jl, jh = _imul(np.diag(sl), np.diag(sh), jl, jh)
        elif isinstance(layer, nn.Hardtanh):  # slope 1 between the clips, 0 beyond
            lo, hi = y.lower[0], y.upper[0]
            inside = (lo > layer.min_val) & (hi < layer.max_val)
            outside = (hi < layer.min_val) | (lo > layer.max_val)
            jl, jh = _imul(np.diag(np.where(inside, 1.0, 0.0)),
                           np.diag(np.where(outside, 0.0, 1.0)), jl, jh)
        elif isinstance(layer, (nn.Identity, nn.Flatten)):
            pass
        else:
            raise TypeError(
                f"region_of_attraction: unsupported controller layer {type(layer).__name__} in "
                "the near-field Jacobian; supported: Sequential, Linear, ReLU, LeakyReLU, "
                "Hardtanh, Identity"
            )
        y = controller_on_sets(layer, y)
    return jl, jh, y


def _series_jacobian(fn, X: AffineForm, k: int):
    """Interval Jacobian of ``fn`` (shape (1, q) -> (1, s)) over ``X`` (shape (1, k)) by forward
    Taylor series of order 1 with affine-form coefficients."""
    cols_l, cols_h, value = [], [], None
    for j in range(k):
        e = np.zeros((1, k))
        e[0, j] = 1.0
        xs = Taylor(lambda q, e=e: e if q == 1 else None, X)
        out = fn(xs)
        c1 = out.coef(1)
        if c1 is None:
            c1 = np.zeros(out.shape)
        if isinstance(c1, AffineForm):
            cols_l.append(c1.lower[0])
            cols_h.append(c1.upper[0])
        else:
            c1 = np.asarray(c1, dtype=np.float64)[0]
            cols_l.append(c1)
            cols_h.append(c1)
        value = out
    return np.stack(cols_l, 1), np.stack(cols_h, 1), value


# ============================================================================ the proof
class _Loop:
    """The closed loop's pieces on sets, with the candidate ``V`` (a
    :class:`~neuroctl.verify.lyapunov.QuadraticLyapunov` or one of its kind)."""

    def __init__(self, plant, ctrl, r, x_star, V):
        self.plant, self.ctrl, self.r, self.x_star, self.V = plant, ctrl, r, x_star, V

    def decrease_upper(self, lo, hi):
        """Upper bounds of ``V(F(x)) - V(x)`` over boxes ``[lo, hi]`` (shape (B, n)), and the
        bounds of ``F`` on them (each shape (B, n))."""
        X = AffineForm.from_box(lo, hi)
        try:
            Fx = closed_loop_period_sets(
                self.plant, self.ctrl, X, reference=self.r, semantics="discrete"
            ).x_next
            dv = self.V.decrease_upper(X, Fx)
        except SetArithmeticError:
            inf = np.full(lo.shape, np.inf)
            return np.full(lo.shape[0], np.inf), -inf, inf
        return dv, Fx.lower, Fx.upper

    def step_points(self, x):
        """``(V(F(x)) - V(x), F(x))`` at states ``x`` (shape (B, n))."""
        xs = closed_loop_rollout(self.plant, self.ctrl, x, 1, reference=self.r)
        return self.V.value(xs[:, 1]) - self.V.value(xs[:, 0]), xs[:, 1]

    def jacobian(self, lo, hi):
        """Interval Jacobian of the closed-loop map over the box ``[lo, hi]`` (shape (n,))."""
        plant, n = self.plant, lo.size
        X = AffineForm.from_box(lo[None], hi[None])
        r = None if not plant.n_references else np.broadcast_to(
            _const(self.r), (1, plant.n_references))
        obs = (lambda x: plant.observe(x, r)) if r is not None else plant.observe
        Ol, Oh, ys = _series_jacobian(obs, X, n)
        y = AffineForm._lift(ys.coef(0), X.ctx)
        Kl, Kh, u = _net_jacobian(self.ctrl, y)
        ul, uh = u.lower[0], u.upper[0]
        inside = (ul >= plant.input_lower) & (uh <= plant.input_upper)
        outside = (uh < plant.input_lower) | (ul > plant.input_upper)
        sl = np.where(inside, 1.0, 0.0)
        sh = np.where(outside, 0.0, 1.0)
        U = AffineForm._lift(plant.saturate(u), X.ctx)
        m = U.shape[-1]
        Z = np.concatenate([X, U], axis=-1)
        JZl, JZh, _ = _series_jacobian(
            lambda z: plant.advance(z[..., :n], z[..., n:]), Z, n + m)
        Jxl, Jxh = JZl[:, :n], JZh[:, :n]
        Jul, Juh = JZl[:, n:], JZh[:, n:]
        G = _imul(*_imul(np.diag(sl), np.diag(sh), Kl, Kh), Ol, Oh)
        Bl, Bh = _imul(Jul, Juh, *G)
        return Jxl + Bl - np.abs(Jxl + Bl) * 4 * _U, Jxh + Bh + np.abs(Jxh + Bh) * 4 * _U


@dataclass
class _Sweep:
    """What one branch and bound over the annulus reached."""

    level: float
    limited: str
    counterexample: np.ndarray | None
    proved: int
    evaluated: int
    failures: list  # states (arrays of shape (k, n)) where the proof failed


def _sweep(loop: _Loop, lo_box, hi_box, *, level, in_near, grid, min_width, batch, deadline,
           intersect_box) -> _Sweep:
    """Branch and bound of ``V(F(x)) < V(x)`` (and, for a cut set, ``F(x)`` in the box) on every
    box that meets ``{V <= level}`` and is not inside the near field, lowering ``level`` below
    each box that cannot be proved (see the module docstring, step 3).

    Parameters
    ----------
    loop : _Loop
    lo_box, hi_box : ndarray, shape (n,)
        The search box.
    level : float
        Starting (largest) level.
    in_near : callable
        ``in_near(lo, hi, v_upper)``: whether each box (shapes (B, n), ``V``'s upper bound (B,))
        lies inside the near field (then it needs no proof).
    grid, min_width, batch : as :func:`region_of_attraction`
    deadline : float
        ``time.perf_counter()`` at which the level is lowered below every box left.
    intersect_box : bool
    """
    n = lo_box.size
    limited, cex, failures = "box", None, []
    width = hi_box - lo_box
    smallest = width * min_width
    edges = [np.linspace(lo_box[i], hi_box[i], grid + 1) for i in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(grid)] * n, indexing="ij"), -1).reshape(-1, n)
    blo = np.stack([edges[i][idx[:, i]] for i in range(n)], 1)
    bhi = np.stack([edges[i][idx[:, i] + 1] for i in range(n)], 1)

    heap: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # (V lower bound, order, box)
    counter = 0

    def push(lo, hi):
        nonlocal counter
        vl, vu = loop.V.bounds(lo, hi)
        keep = ~in_near(lo, hi, vu)
        for k in np.nonzero(keep)[0]:
            heapq.heappush(heap, (max(float(vl[k]), 0.0), counter, lo[k], hi[k]))
            counter += 1

    push(blo, bhi)
    proved = evaluated = 0
    while heap:
        if heap[0][0] > level:
            break
        if time.perf_counter() > deadline:
            level, limited = min(level, heap[0][0] * (1 - 1e-9)), "timeout"
            break
        items: list[tuple[float, int, np.ndarray, np.ndarray]] = []
        while heap and len(items) < batch and heap[0][0] <= level:
            items.append(heapq.heappop(heap))
        lo = np.stack([it[2] for it in items])
        hi = np.stack([it[3] for it in items])
        vlow = np.array([it[0] for it in items])
        up, fl, fh = loop.decrease_upper(lo, hi)
        evaluated += len(items)
        ok = up < 0
        if intersect_box:  # F maps the box into the search box: the cut set is invariant
            ok &= np.all(fl >= lo_box, axis=1) & np.all(fh <= hi_box, axis=1)
        proved += int(ok.sum())
        bad = np.nonzero(~ok)[0]
        if bad.size == 0:
            continue
        mid = (lo[bad] + hi[bad]) / 2
        dv_mid, f_mid = loop.step_points(mid)
        v_mid = loop.V.value(mid)
        viol = dv_mid >= 0
        if intersect_box:
            viol |= np.any((f_mid < lo_box) | (f_mid > hi_box), axis=1)
        viol &= v_mid > 0
        if viol.any():
            failures.append(mid[viol])
            worst = int(np.argmin(np.where(viol, v_mid, np.inf)))
            if v_mid[worst] * (1 - 1e-9) < level:
                cex = mid[worst].copy()
            new = min(level, float(v_mid[worst]) * (1 - 1e-9))
            if new < level:
                level, limited = new, "counterexample"
        split_lo, split_hi = [], []
        for k in bad:
            if vlow[k] > level:
                continue
            w = (hi[k] - lo[k]) / width
            d = int(np.argmax(w))
            if hi[k][d] - lo[k][d] <= smallest[d]:
                new = vlow[k] * (1 - 1e-9)
                failures.append(((lo[k] + hi[k]) / 2)[None])
                if new < level:
                    level, limited = new, "resolution"
                continue
            m_ = (lo[k][d] + hi[k][d]) / 2
            a_hi = hi[k].copy()
            a_hi[d] = m_
            b_lo = lo[k].copy()
            b_lo[d] = m_
            split_lo += [lo[k], b_lo]
            split_hi += [a_hi, hi[k]]
        if split_lo:
            push(np.stack(split_lo), np.stack(split_hi))
    return _Sweep(max(level, 0.0), limited, cex, proved, evaluated, failures)


def _contraction(A, P, Jl, Jh):
    """Upper bound of ``max_{M ∈ [Jl, Jh]} ||Lᵀ M L⁻ᵀ||₂`` (``P = L Lᵀ``).

    The norm is convex in ``M``, so its maximum over the interval matrix is attained at a vertex:
    with at most 14 uncertain entries every vertex is evaluated (exact up to the relative margin);
    otherwise ``||Lᵀ A L⁻ᵀ||₂ + || |Lᵀ| |[J] - A| |L⁻ᵀ| ||₂``, the lesser of that and the sum of
    each entry's radius times ``||Lᵀ e_i|| ||e_jᵀ L⁻ᵀ||`` (triangle inequality).
    """
    L = np.linalg.cholesky(P)
    Lt, Lit = L.T, np.linalg.inv(L).T
    free = np.argwhere(Jh > Jl)
    if len(free) <= 14:
        k = len(free)
        bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
        M = np.broadcast_to(Jl, (2**k,) + Jl.shape).copy()
        for q, (i, j) in enumerate(free):
            M[:, i, j] = np.where(bits[:, q] == 1, Jh[i, j], Jl[i, j])
        # the nominal A lies in [J] (one of the vertices bounds it), so no separate base term
        worst = np.linalg.norm(Lt @ M @ Lit, 2, axis=(1, 2)).max()
        return float(worst * (1 + 1e-9))
    base = np.linalg.norm(Lt @ A @ Lit, 2)
    D = np.maximum(np.abs(Jl - A), np.abs(Jh - A))
    pert = np.linalg.norm(np.abs(Lt) @ D @ np.abs(Lit), 2)
    rank1 = np.linalg.norm(Lt, axis=0)[:, None] * np.linalg.norm(Lit, axis=1)[None, :]
    pert = min(pert, float((D * rank1).sum()))
    return float((base + pert) * (1 + 1e-9))


def _top_level(P, x_star, lo, hi) -> float:
    """Upper bound of ``V`` on the box: the largest ``V`` of its corners (a convex quadratic
    peaks at a vertex), or the interval bound beyond 16 states."""
    return float(_corner_max(P, x_star, lo[None], hi[None])[0])


def _corner_max(P, x_star, lo, hi) -> np.ndarray:
    """Upper bounds of ``(x - x*)ᵀ P (x - x*)`` on boxes ``[lo, hi]`` (shape (B, n)), shape (B,):
    the largest value at a corner (a convex quadratic peaks at a vertex) with a relative margin
    1e-9, or the affine forms' bound beyond 16 states."""
    n = x_star.size
    if n <= 16:
        corners = np.stack(np.meshgrid(*[[0, 1]] * n, indexing="ij"), -1).reshape(-1, n)
        e = np.where(corners == 1, hi[:, None], lo[:, None]) - x_star
        return np.einsum("bci,ij,bcj->bc", e, P, e).max(axis=1) * (1 + 1e-9)
    e = AffineForm.from_box(lo, hi) - x_star
    return ((e @ P) * e).sum(axis=-1).upper


def _sample_states(rng, lo, hi, x_star, count) -> np.ndarray:
    """``count`` states of the box, half uniform and half on shrinking boxes around ``x*``
    (scales 1e-3..1, log-uniform), where thin failure regions of a candidate hide; shape
    (count, n)."""
    xs = rng.uniform(lo, hi, (count, x_star.size))
    n_near = count // 2
    scale = 10.0 ** rng.uniform(-3, 0, (n_near, 1))
    xs[:n_near] = x_star + scale * (xs[:n_near] - x_star)
    return xs


def _reach_near_field(loop: _Loop, x, lo_box, hi_box, near_level, steps) -> np.ndarray:
    """Whether each state (shape (N, n)) stays in the box for ``steps`` steps and ends in the
    near field ``{V <= near_level}`` of ``loop.V`` (then it converges), shape (N,).

    The near field is a certified set inside the box, forward invariant: a state in it after
    some chunk of steps stays in it, one that has left the box has failed, so neither is
    simulated further (the answer is the same as simulating every state for ``steps``).
    """
    ok = np.ones(len(x), dtype=bool)
    active = np.arange(len(x))
    state = np.asarray(x, dtype=np.float64)
    chunk = 50
    for _ in range(0, steps, chunk):
        xs = closed_loop_rollout(loop.plant, loop.ctrl, state, chunk, reference=loop.r)
        ok[active] &= np.all((xs >= lo_box) & (xs <= hi_box), axis=(1, 2))
        state = xs[:, -1]
        going = ok[active] & (loop.V.value(state) > near_level)
        active, state = active[going], state[going]
        if not active.size:
            break
    ok[active] &= loop.V.value(state) <= near_level
    return ok


def _learned_certificate(quadratic: RegionOfAttraction, loop: _Loop, *, samples, grid,
                         min_width, batch, rounds, deadline, label_steps: int = 600):
    r"""The learned candidate of ``lyapunov="learned"``, proved, or None.

    The set proved is ``S = {V <= c} ∩ D`` (``D`` the proof domain, the box unless a larger
    domain was given) around the quadratic certificate's set ``N = {V_q <= c_q}`` (``∩ D`` if
    it is a cut set), already proved forward invariant with every trajectory from it
    converging, and:

    - ``c >= max_N V`` (bounded on boxes covering ``N``), so ``N ⊆ S``;
    - on every box that meets ``S`` and is not inside ``N`` (corners of ``V_q``):
      ``V(F(x)) - V(x) < 0`` and ``F(box)`` in ``D`` (:func:`_sweep`).

    Then ``F(S) ⊆ S``; the boxes are finitely many and closed, so ``V`` falls by at least some
    ``δ > 0`` per step on ``S \ N``: every trajectory enters ``N`` within ``max V / δ`` steps,
    stays and converges. Taking the whole quadratic set as ``N`` (not only its near field)
    leaves the proof an annulus where the decrease is bounded away from 0.

    Training data: ``samples`` states (:func:`_sample_states`), their images, and whether each
    reaches ``N`` within ``label_steps`` steps without leaving ``D``; after each proof the
    states where it failed (decrease or box violated at a box's centre, boxes unproved at the
    finest resolution) are added with five times the weight. Each round's proof gets an equal
    share of the time left before ``deadline``; the candidate of largest volume (inside the
    box, :attr:`RegionOfAttraction.volume`) is kept.
    """
    x_star, P_q, c_near = quadratic.x_star, quadratic.P, quadratic.level
    lo_dom, hi_dom = quadratic.domain_lower, quadratic.domain_upper
    where = "domain" if quadratic.wider_domain else "box"
    n = x_star.size
    rng = np.random.default_rng(1)
    xs = _sample_states(rng, lo_dom, hi_dom, x_star, samples)
    x1 = closed_loop_rollout(loop.plant, loop.ctrl, xs, 1, reference=loop.r)[:, 1]
    good = _reach_near_field(loop, xs, lo_dom, hi_dom, c_near, label_steps)
    weights = np.ones(len(xs))
    scale = (hi_dom - lo_dom) / 2
    # the quadratic's certified set at level 1 to start from
    P0 = P_q / max(quadratic.level, c_near)
    # boxes covering N: max_N V <= the largest upper bound of V over the boxes that may meet N
    half = np.sqrt(c_near * np.diag(np.linalg.inv(P_q))) * (1 + 1e-9)
    k = 24 if n <= 2 else 7
    edges = [np.linspace(max(x_star[i] - half[i], lo_dom[i]), min(x_star[i] + half[i], hi_dom[i]),
                         k + 1) for i in range(n)]
    idx = np.stack(np.meshgrid(*[np.arange(k)] * n, indexing="ij"), -1).reshape(-1, n)
    nlo = np.stack([edges[i][idx[:, i]] for i in range(n)], 1)
    nhi = np.stack([edges[i][idx[:, i] + 1] for i in range(n)], 1)
    meets = QuadraticLyapunov(x_star, P_q).bounds(nlo, nhi)[0] <= c_near
    nlo_k, nhi_k = nlo[meets], nhi[meets]
    best, V = None, None
    for round_ in range(rounds):
        if time.perf_counter() >= deadline:
            break
        V = learn_quartic(xs, x1, good, x_star=x_star, scale=scale, P0=P0, init=V,
                          weights=weights, seed=round_)
        cover = float(np.max(V.bounds(nlo_k, nhi_k)[1]))
        top = float(np.max(V.bounds(lo_dom[None], hi_dom[None])[1]))
        t_round = (deadline - time.perf_counter()) / (rounds - round_)
        sweep = _sweep(_Loop(loop.plant, loop.ctrl, loop.r, x_star, V), lo_dom, hi_dom,
                       level=top, in_near=lambda lo, hi, vu: _corner_max(P_q, x_star, lo, hi)
                       <= c_near, grid=grid, min_width=min_width, batch=batch,
                       deadline=time.perf_counter() + t_round, intersect_box=True)
        if sweep.level >= cover:
            cand = RegionOfAttraction(
                x_star=x_star, P=V.P, level=float(sweep.level), near_level=c_near,
                contraction=quadratic.contraction, box_level=quadratic.box_level,
                box_lower=quadratic.box_lower, box_upper=quadratic.box_upper,
                domain_lower=lo_dom, domain_upper=hi_dom, A=quadratic.A, boxes_proved=sweep.proved,
                boxes_evaluated=sweep.evaluated, limited_by=sweep.limited,
                counterexample=sweep.counterexample, semantics=quadratic.semantics, time=0.0,
                intersect_box=True, assumptions=list(quadratic.assumptions[:2]) + [
                    f"S = {{V <= level}} ∩ {where}, V a quartic sum of squares (V(x*) = 0, V > 0 "
                    f"elsewhere by construction) trained on {len(xs)} simulated states "
                    f"(round {round_ + 1} of {rounds}); N = the quadratic certificate's set "
                    "{(x - x*)ᵀ near_P (x - x*) <= near_level}"
                    + (f" ∩ {where}" if quadratic.intersect_box else "")
                    + f", inside S (level >= {cover:.6g} >= max_N V); V(F(x)) < V(x) and F(x) "
                    f"in the {where} on S minus N: S is forward invariant and every trajectory "
                    "from it converges to x*",
                    "the quadratic certificate: " + quadratic.assumptions[2],
                    *quadratic.assumptions[3:]],
                state_names=quadratic.state_names, lyapunov="learned", G=V.G, scale=V.scale,
                near_P=P_q, _plant=loop.plant, _controller=loop.ctrl, _reference=loop.r)
            if best is None or cand.volume > best.volume:
                best = cand
        if round_ + 1 < rounds and sweep.failures:
            new = np.concatenate(sweep.failures)[:2000]
            new = np.concatenate([new, new + rng.normal(0, 0.01, new.shape) * scale])
            new = np.clip(new, lo_dom, hi_dom)
            xs = np.concatenate([xs, new])
            x1 = np.concatenate([x1, closed_loop_rollout(loop.plant, loop.ctrl, new, 1,
                                                         reference=loop.r)[:, 1]])
            good = np.concatenate([good, _reach_near_field(loop, new, lo_dom, hi_dom, c_near,
                                                           label_steps)])
            weights = np.concatenate([weights, np.full(len(new), 5.0)])
    return best


def _wider(lo_dom, hi_dom, lo_box, hi_box) -> bool:
    """Whether the domain ``[lo_dom, hi_dom]`` reaches past the box on some side."""
    return bool(np.any(lo_dom < lo_box) or np.any(hi_dom > hi_box))


def _check_box(box, n, name="box"):
    try:
        b = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        b = None
    if b is None or b.shape != (2, n) or not np.all(np.isfinite(b)) or np.any(b[0] >= b[1]):
        raise ValueError(
            f"{name}: expected finite [lower, upper] of shape (2, {n}) with lower < upper, "
            f"received {box!r}"
        )
    return b[0].copy(), b[1].copy()


def region_of_attraction(
    plant: Plant,
    controller,
    op=None,
    *,
    box,
    domain=None,
    timeout: float = 60.0,
    semantics: str | None = "discrete",
    reference=None,
    Q=None,
    lyapunov: str = "linearization",
    rate: float | str | None = None,
    samples: int = 20000,
    grid: int = 8,
    min_width: float = 1e-3,
    batch: int = 256,
    intersect_box: bool = False,
    rounds: int = 3,
    entry_steps: int = 0,
    entry_grid: int = 16,
    entry_min_width: float = 1 / 256,
    entry_generators: int = 64,
    entry_timeout: float | None = None,
) -> RegionOfAttraction:
    """Certify a region of attraction of the closed loop: a level set of a quadratic Lyapunov
    function, the largest the box-wise proof reaches (see the module docstring for the proof).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
        Feed-forward network of Linear/ReLU layers (or ``nn.Linear`` state feedback) acting on
        ``plant.observe(x, r)``.
    op : OperatingPoint, optional
        Default :func:`neuroctl.operating_point` of the discrete closed loop.
    box : array_like, shape (2, n), keyword-only
        ``[lower, upper]`` of the states of interest (state units), with ``x*`` strictly
        inside: the result's volume is measured inside it, and without ``domain`` the proof
        works in it (the certified set lies inside it).
    domain : array_like, shape (2, n), optional, keyword-only
        The proof domain ``D``, containing ``box`` (default: the box). The branch and bound
        covers ``D``, ``F`` must map each box of it into ``D`` (cut sets) and the certified set
        lies inside ``D``, so it may contain states of the box whose trajectories leave the box
        (but not ``D``). The plant model must hold on all of ``D`` (an assumption of the result).
    timeout : float, keyword-only
        Seconds for the branch and bound; on expiry the level is lowered below every box not
        yet proved (still sound). With ``lyapunov="learned"`` the simulation of the training
        states and the training are not cut short by it: the call may run past it.
    semantics : {"discrete"}, keyword-only
        Proofs about the map ``plant.step``. ``None`` means ``"discrete"``.
    reference : array_like, shape (n_ref,), optional, keyword-only
        Default the plant's nominal reference.
    Q : array_like, shape (n, n), optional, keyword-only
        Right-hand side of the Lyapunov equation (symmetric positive definite, default ``I``).
    lyapunov : {"linearization", "fitted", "learned"}, keyword-only
        The shape of ``V``: ``P`` of the Lyapunov equation, or ``P`` fitted to ``samples``
        simulated transitions in the domain, starting from it
        (:func:`neuroctl.verify.lyapunov.fit_quadratic`); either is then proved the same way.
        ``"learned"``: first the Lyapunov equation's certificate (a quarter of ``timeout``),
        then a quartic sum of squares (:func:`neuroctl.verify.lyapunov.learn_quartic`) trained
        on ``samples`` simulated states and on the verifier's counterexamples (``rounds``
        rounds) and proved on the cut set ``{V <= c} ∩ D`` outside the quadratic's near field
        (see :func:`_learned_certificate`); the result is the one of larger volume.
    rate : float or "auto", optional, keyword-only
        Solve the Lyapunov equation of ``A / rate`` (:func:`neuroctl.verify.lyapunov.
        lyapunov_matrix`): ``V`` then contracts by ``rate²`` per step near ``x*``. ``"auto"``:
        halfway between the spectral radius of ``A`` and 1. Default 1 (the plain equation).
    samples : int, keyword-only
        Transitions sampled for ``lyapunov="fitted"`` (seeded, reproducible).
    grid : int, keyword-only
        Initial boxes per state.
    min_width : float, keyword-only
        Boxes are not split below this fraction of the domain's width on every state.
    batch : int, keyword-only
        Boxes evaluated together.
    intersect_box : bool, keyword-only
        Certify the cut set ``{V <= c} ∩ D`` (the branch and bound also proves that ``F`` maps
        it into ``D``), or, by default, only an ellipsoid ``{V <= c}`` that lies inside ``D``
        (``c <= box_level``). The learned candidate always certifies a cut set.
    rounds : int, keyword-only
        Train-and-prove rounds of ``lyapunov="learned"``.
    entry_steps : int, keyword-only
        With a positive number, extend the certified set by boxes of the box proved to enter
        it, or it and boxes proved before, within that many steps
        (:func:`neuroctl.verify.roa_entry.prove_entry_boxes`; the sets on the way must stay in
        the proof domain). 0 (default): the invariant set alone.
    entry_grid : int, keyword-only
        Candidate entry boxes per state at the start (``entry_grid**n``).
    entry_min_width : float, keyword-only
        Entry boxes are not split below this fraction of the box's width.
    entry_generators : int, keyword-only
        Generators each entry box's set keeps after each step (Girard's order reduction; more
        keep the sets tighter and cost more per step: on the cart-pole, 120 s of entry boxes
        certify 7.1% of the simulated basin with 24, 30.0% with 64, 29.2% with 128).
    entry_timeout : float, optional, keyword-only
        Seconds for the entry boxes, after the invariant set (default ``timeout``).

    Returns
    -------
    RegionOfAttraction
    """
    from ..linearize import linearize
    from ..operating import _controller64, operating_point

    t0 = time.perf_counter()
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl Plant, received {type(plant).__name__}")
    if not isinstance(controller, nn.Module):
        raise TypeError(
            f"controller: expected an nn.Module network, received {type(controller).__name__}")
    if semantics not in (None, "discrete"):
        raise ValueError(
            f"semantics: expected 'discrete' or None (proofs about the map plant.step), received "
            f"{semantics!r}; the continuous-time flow is not supported by region_of_attraction"
        )
    n = plant.n_states
    lo_box, hi_box = _check_box(box, n)
    if domain is None:
        lo_dom, hi_dom = lo_box.copy(), hi_box.copy()
    else:
        lo_dom, hi_dom = _check_box(domain, n, name="domain")
        if np.any(lo_dom > lo_box) or np.any(hi_dom < hi_box):
            raise ValueError(f"domain: expected a box containing box [{lo_box}, {hi_box}], "
                             f"received [{lo_dom}, {hi_dom}]")
    wider = _wider(lo_dom, hi_dom, lo_box, hi_box)
    where = "domain D" if wider else "box"
    for name, val in (("timeout", timeout), ("min_width", min_width)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise ValueError(f"{name}: expected a positive number, received {val!r}")
    if lyapunov not in ("linearization", "fitted", "learned"):
        raise ValueError(
            f"lyapunov: expected 'linearization', 'fitted' or 'learned', received {lyapunov!r}"
        )
    if not (isinstance(rounds, (int, np.integer)) and rounds >= 1):
        raise ValueError(f"rounds: expected a positive int, received {rounds!r}")
    if not isinstance(intersect_box, bool):
        raise ValueError(f"intersect_box: expected a bool, received {intersect_box!r}")
    for name, val in (("grid", grid), ("batch", batch), ("samples", samples),
                      ("entry_grid", entry_grid), ("entry_generators", entry_generators)):
        if not (isinstance(val, (int, np.integer)) and val >= 1):
            raise ValueError(f"{name}: expected a positive int, received {val!r}")
    if not (isinstance(entry_steps, (int, np.integer)) and entry_steps >= 0):
        raise ValueError(f"entry_steps: expected an int >= 0, received {entry_steps!r}")
    if not (isinstance(entry_min_width, (int, float)) and 0 < entry_min_width <= 1):
        raise ValueError(f"entry_min_width: expected a number in (0, 1], received "
                         f"{entry_min_width!r}")
    if entry_timeout is not None and not (isinstance(entry_timeout, (int, float))
                                          and math.isfinite(entry_timeout)
                                          and entry_timeout > 0):
        raise ValueError(f"entry_timeout: expected a positive number or None, received "
                         f"{entry_timeout!r}")
    entry = {"steps": int(entry_steps), "grid": int(entry_grid),
             "min_width": float(entry_min_width), "max_generators": int(entry_generators),
             "batch": batch}
    entry_seconds = timeout if entry_timeout is None else entry_timeout
    ctrl = _controller64(controller)
    r = plant.nominal_reference if reference is None else np.asarray(reference, np.float64)
    if op is None:
        op = operating_point(plant, ctrl, reference=r, continuous=False)
        if not op.success:
            raise ValueError(
                f"op: the closed loop's operating point did not converge: {op.message}"
            )
    x_star = np.asarray(op.x, dtype=np.float64)
    if np.any(x_star <= lo_box) or np.any(x_star >= hi_box):
        raise ValueError(f"box: expected the operating point {x_star} strictly inside, received "
                         f"[{lo_box}, {hi_box}]")
    lin = linearize(plant, ctrl, op, continuous=False)
    A = np.asarray(lin.regions[0].A_cl, dtype=np.float64)
    Qm = np.eye(n) if Q is None else np.asarray(Q, dtype=np.float64)
    if Qm.shape != (n, n) or not np.allclose(Qm, Qm.T) or np.any(np.linalg.eigvalsh(Qm) <= 0):
        raise ValueError(f"Q: expected a symmetric positive definite ({n}, {n}) matrix, "
                         f"received {Q!r}")
    assumptions = [
        "semantics: the discrete closed loop x[k+1] = plant.step(x[k], π(observe(x[k], r))) "
        "(actuator saturation included)"
        + (f", the plant model valid on the whole proof domain D = [{lo_dom.tolist()}, "
           f"{hi_dom.tolist()}] (larger than the box; the certified set reaches out of the "
           "box)" if wider else ""),
        f"x* = operating point with residual {op.residual_norm:.2g} (taken as exact)",
        (f"S = {{V <= level}} ∩ {where}: V(F(x)) < V(x) and F(x) in the {where} on S minus x*"
         if intersect_box else f"S = {{V <= level}} lies in the {where} and V(F(x)) < V(x) on S "
         "minus x*") + ": S is forward invariant (F maps it into itself) and every trajectory "
        "from it converges to x*",
        "norms and the Cholesky factor of P in the near-field test are computed in floating "
        "point with a relative margin 1e-9",
    ]
    rho_lin = max(abs(np.linalg.eigvals(A))) if A.size else 0.0
    common = dict(x_star=x_star, box_lower=lo_box, box_upper=hi_box, domain_lower=lo_dom,
                  domain_upper=hi_dom, A=A, semantics="discrete",
                  assumptions=assumptions, state_names=tuple(plant.state_names), _plant=plant,
                  _controller=ctrl, _reference=r)
    if lin.at_kink or rho_lin >= 1.0:
        why = "at a kink of the controller" if lin.at_kink else (
            f"spectral radius {rho_lin:.6g} >= 1")
        return RegionOfAttraction(P=np.eye(n), level=0.0, near_level=0.0,
                                  contraction=float("nan"), box_level=0.0, boxes_proved=0,
                                  intersect_box=intersect_box,
                                  boxes_evaluated=0, limited_by=f"unstable ({why})",
                                  counterexample=None, time=time.perf_counter() - t0, **common)
    if rate is None:
        rate_ = 1.0
    elif rate == "auto":
        rate_ = (1.0 + rho_lin) / 2
    elif isinstance(rate, (int, float)) and rho_lin < rate <= 1.0:
        rate_ = float(rate)
    else:
        raise ValueError(
            f"rate: expected None, 'auto' or a number in ({rho_lin:.6g}, 1] (above the closed "
            f"loop's spectral radius), received {rate!r}"
        )
    P = lyapunov_matrix(A, Qm, rate=rate_)
    assumptions.append(f"P solves the Lyapunov equation of A/{rate_:.6g} with Q")
    if lyapunov == "fitted":
        rng = np.random.default_rng(0)
        xs = _sample_states(rng, lo_dom, hi_dom, x_star, samples)
        x1 = closed_loop_rollout(plant, ctrl, xs, 1, reference=r)[:, 1]
        # the cut set's fraction is maximised where the volume is measured: in the box
        uniform = rng.uniform(lo_box, hi_box, (min(samples, 20000), n))
        P = fit_quadratic(A, P, x_star, lo_dom, hi_dom, xs, x1, intersect_box=intersect_box,
                          uniform=uniform)
        assumptions.append(f"V fitted to {samples} simulated transitions, then proved")
    Pinv_d = np.diag(np.linalg.inv(P))
    c_box = box_level(P, x_star, lo_dom, hi_dom)
    loop = _Loop(plant, ctrl, r, x_star, QuadraticLyapunov(x_star, P))

    def half(c):
        return np.sqrt(c * Pinv_d) * (1 + 1e-9)

    def near_ok(c):
        h = half(c)
        try:
            Jl, Jh = loop.jacobian(x_star - h, x_star + h)
        except (SetArithmeticError, TypeError, ValueError):
            return float("inf")
        return _contraction(A, P, Jl, Jh)

    # ---- near field: the largest level (bisection on a log scale) with ρ < 1
    c_lo, rho_near = 0.0, float("nan")
    c_try = c_box
    rho = near_ok(c_try)
    if rho < 1:
        c_lo, rho_near = c_try, rho
    else:
        c_hi = c_try
        c_try = c_box * 1e-8
        while c_try < c_hi:
            rho = near_ok(c_try)
            if rho < 1:
                c_lo, rho_near = c_try, rho
                break
            c_hi, c_try = c_try, c_try * 1e-2 if c_try > c_box * 1e-14 else c_hi
        if c_lo > 0:
            for _ in range(30):
                if c_hi / c_lo < 1.05:
                    break
                mid = math.sqrt(c_lo * c_hi)
                rho = near_ok(mid)
                if rho < 1:
                    c_lo, rho_near = mid, rho
                else:
                    c_hi = mid
    c_near = c_lo
    if c_near <= 0:
        return RegionOfAttraction(P=P, level=0.0, near_level=0.0, contraction=float("nan"),
                                  box_level=c_box, boxes_proved=0, boxes_evaluated=0,
                                  intersect_box=intersect_box,
                                  limited_by="near field not proved", counterexample=None,
                                  time=time.perf_counter() - t0, **common)

    # ---- annulus: branch and bound with a level that only decreases
    sweep = _sweep(loop, lo_dom, hi_dom,
                   level=_top_level(P, x_star, lo_dom, hi_dom) if intersect_box else c_box,
                   in_near=lambda lo, hi, vu: vu < c_near, grid=grid, min_width=min_width,
                   batch=batch, deadline=t0 + timeout * (0.25 if lyapunov == "learned" else 1),
                   intersect_box=intersect_box)
    level, limited, cex = sweep.level, sweep.limited, sweep.counterexample
    proved, evaluated = sweep.proved, sweep.evaluated
    level = max(level, 0.0)
    if level < c_near:
        level = c_near  # the near field alone is proved
    quadratic = RegionOfAttraction(P=P, level=float(level), near_level=float(c_near),
                                   contraction=float(rho_near), box_level=c_box,
                                   intersect_box=intersect_box, boxes_proved=proved,
                                   boxes_evaluated=evaluated, limited_by=limited,
                                   counterexample=cex, time=time.perf_counter() - t0, **common)
    if lyapunov != "learned":
        return _with_entry(quadratic, loop, entry, entry_seconds, t0)
    learned = _learned_certificate(quadratic, loop, samples=samples, grid=grid,
                                   min_width=min_width, batch=batch, rounds=rounds,
                                   deadline=t0 + timeout)
    compared = {"quadratic": {"level": quadratic.level, "volume": quadratic.volume,
                              "limited_by": quadratic.limited_by}}
    best = quadratic
    if learned is not None:
        compared["learned"] = {"level": learned.level, "volume": learned.volume,
                               "limited_by": learned.limited_by}
        if learned.volume > quadratic.volume:
            best = learned
    best.compared = compared
    return _with_entry(best, _Loop(plant, ctrl, r, x_star, best.lyapunov_function), entry,
                       entry_seconds, t0)


def _with_entry(result: RegionOfAttraction, loop: _Loop, entry: dict, seconds: float,
                t0) -> RegionOfAttraction:
    """``result`` with its entry boxes (``entry["steps"] > 0`` and a certified set; ``entry``:
    :func:`~neuroctl.verify.roa_entry.prove_entry_boxes`' options, ``seconds`` for them), its
    time set."""
    steps = entry["steps"]
    if steps and result.certified:
        result.entry = prove_entry_boxes(
            loop, level=result.level, in_set=result.in_invariant_set, lo_box=result.box_lower,
            hi_box=result.box_upper, lo_dom=result.domain_lower, hi_dom=result.domain_upper,
            deadline=time.perf_counter() + seconds, **entry)
        result.assumptions.append(
            f"entry boxes: {len(result.entry)} boxes of the box whose sets under the discrete "
            f"closed loop (affine forms, at most {steps} steps each) lie in S, or in S and entry "
            "boxes proved before them, at a stated step, every set before it in the proof "
            "domain: their states are in S after their box's number of steps and converge to "
            "x* too (the certified region is S and these boxes; it is not forward invariant as "
            "a whole)")
    result.time = time.perf_counter() - t0
    return result
