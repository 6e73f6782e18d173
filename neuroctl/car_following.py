"""String stability of a car-following law at its uniform-flow equilibrium.

:func:`string_stability` linearizes a car-following law (an acceleration function, or a network on
the observation) exactly at the uniform-flow equilibrium and gives the transfer function from
leader speed to follower speed, its peak gain and the Ward--Wilson criterion
(:class:`StringStability`); at a kink of a network, every adjacent activation region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._checks import _check_positive
from ._json import json_dict
from .gains import _float64, local_gain
from .jacobians import _jacobians

__all__ = ["string_stability", "StringStability", "flow_av_observation"]

F64 = torch.float64

def flow_av_observation(gap, v, v_lead):
    """Flow's AV observation ``[v/15, (v_lead - v)/15, gap/270]``, shape (..., 3)."""
    xp = torch if torch.is_tensor(gap) else np
    return xp.stack([v / 15.0, (v_lead - v) / 15.0, gap / 270.0], -1)


@dataclass
class StringStability:
    """Leader-to-follower speed transfer of a car-following law at uniform flow.

    With ``a_s = ∂f/∂s``, ``a_v = ∂f/∂v``, ``a_l = ∂f/∂v_lead`` at the equilibrium:
    ``G(s) = (a_l s + a_s) / (s² - a_v s + a_s)``; string stable iff ``max_ω |G(jω)| <= 1``.
    In the notation of Ward & Wilson (``f(s, Δv, v)``, ``Δv = v_lead - v``): ``f_s = a_s``,
    ``f_Δv = a_l``, ``f_v = a_v + a_l``, criterion ``f_v²/2 - f_Δv f_v - f_s`` (string stable iff
    > 0).

    Attributes
    ----------
    gap, speed : float
        Equilibrium gap (m) and speed (m/s).
    partials : dict
        ``a_s``, ``a_v``, ``a_l`` and ``f_s``, ``f_v``, ``f_dv`` (region 0 at a kink).
    transfer : control.TransferFunction
    peak_gain : float
        ``max_ω |G(jω)|`` (largest over regions at a kink).
    peak_frequency : float
        rad/s.
    string_stable : bool
    ward_wilson : float
    regions : list of dict
        At a kink of a network, the partials, peak gain and criterion of every adjacent region.
    method : str
        "autograd" (acceleration function), "local_gain" (network, exact) or
        "autograd (unsupported layers)".
    residual : float
        ``f(gap, speed, speed)`` at the point (0 up to the solver's tolerance).
    """

    gap: float
    speed: float
    partials: dict
    transfer: Any
    peak_gain: float
    peak_frequency: float
    string_stable: bool
    ward_wilson: float
    regions: list
    method: str
    residual: float = 0.0

    @property
    def at_kink(self) -> bool:
        return len(self.regions) > 1

    def __repr__(self) -> str:
        p = self.partials
        lines = [
            f"StringStability at gap {self.gap:.4g} m, speed {self.speed:.4g} m/s ({self.method})",
            f"  f_s = {p['f_s']:.4g} 1/s², f_v = {p['f_v']:.4g} 1/s, f_dv = {p['f_dv']:.4g} 1/s",
            f"  peak |G(jw)| = {self.peak_gain:.5g} at w = {self.peak_frequency:.4g} rad/s: "
            + ("string STABLE" if self.string_stable else "string UNSTABLE"),
            f"  Ward-Wilson f_v²/2 - f_dv f_v - f_s = {self.ward_wilson:.4g}",
        ]
        if self.at_kink:
            lines.append(
                f"  AT A KINK: {len(self.regions)} regions, peaks "
                + ", ".join(f"{r['peak_gain']:.4g}" for r in self.regions)
            )
        return "\n".join(lines)

    @json_dict
    def to_dict(self) -> dict:
        return {
            "gap": self.gap,
            "speed": self.speed,
            "partials": dict(self.partials),
            "peak_gain": self.peak_gain,
            "peak_frequency": self.peak_frequency,
            "string_stable": self.string_stable,
            "ward_wilson": self.ward_wilson,
            "regions": self.regions,
            "method": self.method,
            "residual": self.residual,
        }

    def plot(self, *, ax=None, omega=None):
        """Magnitude of ``G(jω)`` of every region with the line ``|G| = 1``."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.figure
        w = np.logspace(-3, 1.5, 400) if omega is None else np.asarray(omega, float)
        for i, r in enumerate(self.regions):
            ax.loglog(w, _gain(r["a_s"], r["a_v"], r["a_l"], w), label=f"region {i}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("ω [rad/s]")
        ax.set_ylabel("|G(jω)| leader → follower speed")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _gain(a_s, a_v, a_l, w):
    jw = 1j * np.asarray(w, float)
    if a_s == 0:  # no gap feedback: the factor s cancels, G = a_l / (s - a_v)
        with np.errstate(divide="ignore"):
            return np.abs(a_l / (jw - a_v))
    return np.abs((a_l * jw + a_s) / (jw * jw - a_v * jw + a_s))


def _peak(a_s, a_v, a_l):
    from scipy.optimize import minimize_scalar

    w = np.concatenate([[0.0], np.logspace(-5, 3, 4000)])
    g = _gain(a_s, a_v, a_l, w)
    k = int(np.argmax(g))
    if 0 < k < len(w) - 1:
        res = minimize_scalar(
            lambda t: -_gain(a_s, a_v, a_l, t),
            bounds=(w[k - 1], w[k + 1]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        if -res.fun > g[k]:
            return float(-res.fun), float(res.x)
    return float(g[k]), float(w[k])


def _partials_region(a_s, a_v, a_l) -> dict:
    f_s, f_dv, f_v = a_s, a_l, a_v + a_l
    peak, wpk = _peak(a_s, a_v, a_l)
    return {
        "a_s": a_s,
        "a_v": a_v,
        "a_l": a_l,
        "f_s": f_s,
        "f_v": f_v,
        "f_dv": f_dv,
        "ward_wilson": f_v**2 / 2 - f_dv * f_v - f_s,
        "peak_gain": peak,
        "peak_frequency": wpk,
    }


def string_stability(
    model,
    *,
    gap: float | None = None,
    speed: float | None = None,
    observe=None,
    kink_tol: float = 1e-9,
    speed_bracket: tuple[float, float] = (0.0, 100.0),
) -> StringStability:
    """String stability of a car-following law at its uniform-flow equilibrium.

    Parameters
    ----------
    model : callable or nn.Module
        Either an acceleration function ``f(gap, v, v_lead)`` written for numpy and torch
        (e.g. ``functools.partial(idm_acceleration, params=IDMParams())``), differentiated by
        autograd, or a network mapping the observation ``observe(gap, v, v_lead)`` to the
        acceleration, linearized exactly with :func:`~neuroctl.local_gain` (every adjacent
        region at a kink). Networks with layers outside the rule table are differentiated by
        autograd.
    gap, speed : float
        The equilibrium gap (m; the speed solves ``f(gap, v, v) = 0``) or speed (m/s; the gap
        solves it), or both (no solve; ``residual`` reports ``f(gap, v, v)``).
    observe : callable, optional
        Observation of a network model; default Flow's AV observation
        ``[v/15, (v_lead - v)/15, gap/270]``.
    kink_tol : float
        As in :func:`~neuroctl.local_gain`.
    speed_bracket : (float, float)
        Search interval of the equilibrium speed (m/s) when ``gap`` is given.

    Returns
    -------
    StringStability
    """
    import control
    from scipy.optimize import brentq

    if gap is None and speed is None:
        raise ValueError("expected gap= or speed= (or both), received neither")
    is_net = isinstance(model, nn.Module)
    if not is_net and not callable(model):
        raise TypeError(f"model: expected a callable or an nn.Module, received {model!r}")
    obs = flow_av_observation if observe is None else observe
    net = _float64(model).eval() if is_net else None

    def accel_np(s, v, vl):
        if net is not None:
            with torch.no_grad():
                y = obs(
                    torch.tensor(s, dtype=F64),
                    torch.tensor(v, dtype=F64),
                    torch.tensor(vl, dtype=F64),
                )
                return float(net(y.reshape(1, -1))[0, 0])
        return float(model(np.float64(s), np.float64(v), np.float64(vl)))

    if gap is not None and speed is not None:
        gap = _check_positive(gap, "gap")
        speed = _check_positive(speed, "speed", allow_zero=True)
    elif gap is not None:
        gap = _check_positive(gap, "gap")
        lo, hi = speed_bracket
        flo, fhi = accel_np(gap, lo, lo), accel_np(gap, hi, hi)
        if flo * fhi > 0:
            raise ValueError(
                f"no equilibrium speed in speed_bracket={speed_bracket}: f(gap, v, v) is "
                f"{flo:.3g} and {fhi:.3g} at its ends"
            )
        speed = brentq(lambda v: accel_np(gap, v, v), lo, hi, xtol=1e-14, rtol=1e-15)
    else:
        speed = _check_positive(speed, "speed", allow_zero=True)
        g_lo, g_hi = 1e-3, 1.0
        while accel_np(g_hi, speed, speed) < 0 and g_hi < 1e6:
            g_hi *= 2
        if accel_np(g_lo, speed, speed) * accel_np(g_hi, speed, speed) > 0:
            raise ValueError(f"no equilibrium gap found for speed {speed!r}")
        gap = brentq(lambda s: accel_np(s, speed, speed), g_lo, g_hi, xtol=1e-14, rtol=1e-15)
    residual = accel_np(gap, speed, speed)
    point = np.array([gap, speed, speed], float)
    regions = []
    if net is not None:
        n_obs = int(np.prod(obs(*torch.as_tensor(point, dtype=F64)).shape))
        (Jo,), y0 = _jacobians(lambda p: obs(p[:, 0], p[:, 1], p[:, 2]), [point], (0,), n_obs)
        try:
            lg = local_gain(net, y0, kink_tol=kink_tol)
            Ks = [r.K for r in lg.regions]
            method = "local_gain"
        except TypeError:
            (K,), _ = _jacobians(lambda y: net(y), [y0], (0,), 1)
            Ks = [K]
            method = "autograd (unsupported layers)"
        for K in Ks:
            a = (K[:1] @ Jo)[0]
            regions.append(_partials_region(float(a[0]), float(a[1]), float(a[2])))
    else:
        (J,), _ = _jacobians(lambda p: _as_col(model(p[:, 0], p[:, 1], p[:, 2])), [point], (0,), 1)
        regions.append(_partials_region(float(J[0, 0]), float(J[0, 1]), float(J[0, 2])))
        method = "autograd"
    r0 = regions[0]
    peak = max(r["peak_gain"] for r in regions)
    wpk = max(regions, key=lambda r: r["peak_gain"])["peak_frequency"]
    tf = control.tf(
        [r0["a_l"], r0["a_s"]], [1.0, -r0["a_v"], r0["a_s"]], inputs="v_lead", outputs="v"
    )
    return StringStability(
        gap=float(gap),
        speed=float(speed),
        partials={k: r0[k] for k in ("a_s", "a_v", "a_l", "f_s", "f_v", "f_dv")},
        transfer=tf,
        peak_gain=peak,
        peak_frequency=wpk,
        string_stable=bool(peak <= 1.0 + 1e-12),
        ward_wilson=r0["ward_wilson"],
        regions=regions,
        method=method,
        residual=float(residual),
    )


def _as_col(a):
    return a.reshape(-1, 1)
