"""Local robustness certificates of piecewise-linear networks around an input.

Two radii around a point ``x`` (in the ℓ∞ or ℓ2 norm):

* the **region radius**: the largest ball around ``x`` inside its activation region, where the
  network *is* the affine map ``K x' + c`` (exact, from :func:`neuroctl.local_gain` -- one
  definition of the region radius in the package);
* the **certified radius**: a ball within which the output cannot move by more than a stated
  bound (``output_bound``), or the decision (``decision="argmax"``/``"argmin"``, e.g. the ACAS Xu
  advisory, the minimal score) cannot change.

Inside the region the certified radius follows in closed form from the affine map (dual norms of
the rows of ``K``); when that radius lies inside the region it is *exact* (a point just beyond it
violates the bound). Otherwise the region is certified and the radius is grown beyond it by
bisection with sound linear-relaxation (CROWN) bounds of the network over the ball: for ℓ∞ the
ball is a box; for ℓ2 the linear bounds, valid on the enclosing box, are concretized on the ℓ2
ball itself (``min`` of ``a·x' + b`` over the ball is ``a·x + b - r ||a||_2``), tighter than the
box by up to a factor ``sqrt(n)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._json import json_dict

__all__ = ["certify_local", "LocalCertificate", "DECISIONS"]

#: Decision rules: the class is the index of the largest or of the smallest output.
DECISIONS = ("argmax", "argmin")


def _norm(norm) -> float:
    if isinstance(norm, str) and norm.lower() in ("inf", "linf"):
        return math.inf
    if norm == 2 or (isinstance(norm, float) and math.isinf(norm) and norm > 0):
        return float(norm)
    raise ValueError(f"norm: expected 2 or inf (math.inf or 'inf'), received {norm!r}")


def _dual(a: np.ndarray, norm: float) -> np.ndarray:
    """Dual norm of the rows of ``a``: ℓ1 for ℓ∞ balls, ℓ2 for ℓ2 balls."""
    return np.abs(a).sum(axis=-1) if math.isinf(norm) else np.linalg.norm(a, axis=-1)


@dataclass
class LocalCertificate:
    """Outcome of :func:`certify_local`.

    Attributes
    ----------
    x : ndarray, shape (n,)
        The input.
    value : ndarray, shape (m,)
        Network output at ``x`` (float64).
    norm : float
        2 or inf.
    region_radius : float
        Largest ball around ``x`` inside its activation region (0 at a kink).
    boundary_direction : ndarray, shape (n,)
        Unit vector (in ``norm``) towards the nearest activation boundary.
    certified_radius : float
        For every ``x'`` with ``||x' - x|| < certified_radius`` the property holds.
    affine_radius : float
        Radius of the property for the region's affine map alone (``inf`` if it never fails).
    exact : bool
        True when ``affine_radius <= region_radius``: then ``certified_radius`` is the true
        largest radius and ``counterexample`` (just beyond it) violates the property.
    certified_by : str
        ``"region"`` (affine map) or ``"bounds"`` (CROWN bounds beyond the region).
    decision : int or None
        The decision at ``x`` (decision mode).
    rule : str
        ``"output"``, ``"argmax"`` or ``"argmin"``.
    output_bound : ndarray or None
        The allowed output change per output (output mode).
    counterexample : ndarray or None
        A point violating the property (at distance ``(1 + 1e-6) affine_radius`` along the
        worst direction) when ``exact``.
    bound_calls : int
        Bound computations used by the bisection.
    time : float
    """

    x: np.ndarray
    value: np.ndarray
    norm: float
    region_radius: float
    boundary_direction: np.ndarray
    certified_radius: float
    affine_radius: float
    exact: bool
    certified_by: str
    decision: int | None
    rule: str
    output_bound: np.ndarray | None
    counterexample: np.ndarray | None
    bound_calls: int
    time: float

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists)."""
        return {
            "x": self.x.tolist(),
            "value": self.value.tolist(),
            "norm": self.norm,
            "region_radius": self.region_radius,
            "certified_radius": self.certified_radius,
            "affine_radius": self.affine_radius,
            "exact": self.exact,
            "certified_by": self.certified_by,
            "decision": self.decision,
            "rule": self.rule,
            "output_bound": None if self.output_bound is None else self.output_bound.tolist(),
            "counterexample": None if self.counterexample is None else self.counterexample.tolist(),
            "bound_calls": self.bound_calls,
            "time": self.time,
        }

    def plot(self, net: nn.Module | None = None, *, ax=None, num: int = 401):
        """Outputs along the boundary direction with the region and certified radii marked.

        Parameters
        ----------
        net : nn.Module, optional
            The network; if given, its outputs along the line are drawn.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 3.5))
        else:
            fig = ax.figure
        radii = [r for r in (self.region_radius, self.certified_radius) if np.isfinite(r)]
        span = 2.0 * max(radii + [1e-6])
        d = self.boundary_direction if np.any(self.boundary_direction) else np.eye(self.x.size)[0]
        s = np.linspace(-span, span, num)
        if net is not None:
            net64 = _float64(net)
            with torch.no_grad():
                out = net64(torch.as_tensor(self.x + s[:, None] * d)).numpy()
            lines = ax.plot(s, out, lw=1)
            ax.legend(lines, [f"output {i}" for i in range(out.shape[1])], fontsize=7)
        nl = "inf" if math.isinf(self.norm) else "2"
        for sgn in (-1, 1):
            ax.axvline(sgn * self.region_radius, color="grey", ls="--", lw=1)
            ax.axvline(sgn * self.certified_radius, color="g", ls="-", lw=1)
        ax.set_title(
            f"region radius {self.region_radius:.3g} (grey), certified {self.certified_radius:.3g}"
            f" (green), l{nl}",
            fontsize=9,
        )
        ax.set_xlabel("step along the direction to the nearest activation boundary")
        ax.set_ylabel("outputs")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        nl = "inf" if math.isinf(self.norm) else "2"
        what = (
            f"|Δoutput| <= {np.array2string(self.output_bound, precision=4)}"
            if self.output_bound is not None
            else f"decision {self.rule} = {self.decision}"
        )
        return (
            f"LocalCertificate(l{nl}: region radius {self.region_radius:.6g}, certified radius "
            f"{self.certified_radius:.6g} for {what}, by {self.certified_by}"
            f"{', exact' if self.exact else ''}, {self.bound_calls} bound calls, "
            f"{self.time:.3g}s)"
        )


def _float64(net: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(net).to(torch.float64)


def certify_local(
    net: nn.Module,
    x,
    *,
    norm: float | str = math.inf,
    output_bound=None,
    decision: str | None = None,
    max_radius: float | None = None,
    rtol: float = 1e-3,
    max_bound_calls: int = 60,
) -> LocalCertificate:
    """Region radius and certified robustness radius of a piecewise-linear network at ``x``.

    Parameters
    ----------
    net : nn.Module
        Piecewise-linear network (Linear, ReLU, LeakyReLU, Hardtanh, ReLU6, Identity, nested
        Sequential).
    x : array_like, shape (n,)
        The input.
    norm : {inf, 2}
        Norm of the balls.
    output_bound : float or array_like of shape (m,), optional
        Certify ``|net(x')_i - net(x)_i| <= output_bound_i`` for every output ``i``.
    decision : {"argmax", "argmin"}, optional
        Certify that the index of the largest (smallest) output does not change. Exactly one of
        ``output_bound`` and ``decision`` is given.
    max_radius : float, optional
        Stop growing the radius there (default: ``1e3 (1 + ||x||_inf)``).
    rtol : float
        Relative precision of the bisection beyond the region.
    max_bound_calls : int
        Budget of CROWN bound computations for the bisection.

    Returns
    -------
    LocalCertificate
    """
    from ..gains import local_gain
    from .bounds import as_relu_network, linear_lower_bound

    if not isinstance(net, nn.Module):
        raise TypeError(f"net: expected a torch.nn.Module, received {type(net).__name__}")
    p = _norm(norm)
    if (output_bound is None) == (decision is None):
        raise ValueError(
            "expected exactly one of output_bound= (a bound on the output change) and "
            f"decision= (one of {DECISIONS}); received output_bound={output_bound!r}, "
            f"decision={decision!r}"
        )
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision: expected one of {DECISIONS}, received {decision!r}")
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol: expected a number in (0, 1), received {rtol!r}")
    x = np.asarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x: expected shape (n,), received {x.shape}")
    t0 = time.perf_counter()
    gain = local_gain(net, x, norm=p)
    if not gain.exact:
        raise TypeError(
            "certify_local: expected a piecewise-linear network (ReLU-like activations only); "
            f"received one with smooth layers {gain.layers}"
        )
    rnet = as_relu_network(net, x.size)
    value = np.asarray(gain.value, dtype=np.float64)
    m = value.size
    K = np.asarray(gain.K)
    region_radius = float(gain.region_radius)

    # the property as rows C y + d >= 0, and the region's affine margins
    if decision is not None:
        k = int(np.argmax(value) if decision == "argmax" else np.argmin(value))
        others = [j for j in range(m) if j != k]
        sign = 1.0 if decision == "argmax" else -1.0
        C = np.zeros((len(others), m))
        C[np.arange(len(others)), k] = sign
        C[np.arange(len(others)), others] = -sign
        d = np.zeros(len(others))
        bound = None
    else:
        k = None
        bound = np.broadcast_to(np.asarray(output_bound, dtype=np.float64), (m,)).copy()
        if not np.all(np.isfinite(bound) & (bound >= 0)):
            raise ValueError(
                f"output_bound: expected non-negative finite numbers, received {output_bound!r}"
            )
        C = np.vstack([np.eye(m), -np.eye(m)])
        d = np.concatenate([bound - value, bound + value])
    margin0 = C @ value + d  # >= 0 at x
    slopes = _dual(C @ K, p)  # worst-case rate of decrease of each margin in the region
    with np.errstate(divide="ignore"):
        per_row = np.where(slopes > 0, margin0 / slopes, np.inf)
    affine_radius = float(max(per_row.min(), 0.0)) if per_row.size else math.inf

    counterexample = None
    bound_calls = 0
    if affine_radius <= region_radius:
        certified, by, exact = affine_radius, "region", True
        if np.isfinite(affine_radius):
            # worst direction for the binding row: the minimizer of a·dx over the unit ball
            a = (C @ K)[int(np.argmin(per_row))]
            if math.isinf(p):
                dx = -np.sign(a)
            else:
                dx = -a / np.linalg.norm(a)
            counterexample = x + (1.0 + 1e-6) * affine_radius * dx
    else:
        exact = False
        certified, by = region_radius, "region"
        scale = 1.0 + float(np.abs(x).max(initial=0.0))
        r_max = 1e3 * scale if max_radius is None else float(max_radius)

        def holds(r: float) -> bool:
            lo, hi = x - r, x + r
            val, coef, _ = linear_lower_bound(rnet, lo[None], hi[None], C, d)
            val, coef = val[0], coef[0]
            if not math.isinf(p):
                # concretize the same linear bound on the l2 ball instead of the box
                val = val + r * (np.abs(coef).sum(axis=1) - np.linalg.norm(coef, axis=1))
            return bool(np.all(val > 0) if decision is not None else np.all(val >= 0))

        r_ok = region_radius
        r_bad = None
        r_try = max(2.0 * region_radius, 1e-6 * scale)
        while bound_calls < max_bound_calls and r_try <= r_max:
            bound_calls += 1
            if holds(r_try):
                r_ok, by = r_try, "bounds"
                r_try *= 2.0
            else:
                r_bad = r_try
                break
        if r_bad is None and r_try > r_max and bound_calls < max_bound_calls:
            bound_calls += 1
            if holds(r_max):
                r_ok, by = r_max, "bounds"
        while r_bad is not None and bound_calls < max_bound_calls and (r_bad - r_ok) > rtol * r_ok:
            mid = 0.5 * (r_ok + r_bad)
            bound_calls += 1
            if holds(mid):
                r_ok, by = mid, "bounds"
            else:
                r_bad = mid
        certified = r_ok
    return LocalCertificate(
        x=x,
        value=value,
        norm=p,
        region_radius=region_radius,
        boundary_direction=np.asarray(gain.boundary_direction, dtype=np.float64),
        certified_radius=float(certified),
        affine_radius=affine_radius,
        exact=exact,
        certified_by=by,
        decision=k,
        rule="output" if decision is None else decision,
        output_bound=bound,
        counterexample=counterexample,
        bound_calls=bound_calls,
        time=time.perf_counter() - t0,
    )
