"""VCAS: the advisory-switching control law and a sound decision procedure for its encounters.

The VCAS controller is nine ReLU networks, one per previous advisory; the new advisory is the
argmax of the selected network's outputs on the normalized ``(h, h0', tau)``, and the pilot's
acceleration follows from it (JuliaReach's rules, central values). This is not one network, so
``check_closed_loop`` cannot take it; :func:`verify` decides the ARCH-COMP encounters (an
interval of ``h``, a fixed climb rate ``h0'``) for the discrete map by branch and bound on ``h``:
CROWN bounds on the network's outputs over an interval of ``h`` either fix the argmax for all of
it or the interval is split; with the advisory fixed the update is a translation in ``h``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuroctl.verify import load_mat, output_bounds

from .plants import VCAS_G

__all__ = [
    "VCAS_ADVISORIES",
    "VCAS_ACCELERATION",
    "VCAS_COMPLIANT",
    "VCAS_MEAN",
    "VCAS_RANGE",
    "VcasController",
    "VcasVerdict",
    "verify",
]

_INF = math.inf
_G = VCAS_G
#: advisories, in the order of the networks' outputs and files (pra01 ... pra09)
VCAS_ADVISORIES = (
    "COC",
    "DNC",
    "DND",
    "DES1500",
    "CL1500",
    "SDES1500",
    "SCL1500",
    "SDES2500",
    "SCL2500",
)
#: central acceleration (ft/s²) of each advisory when the climb rate does not comply
VCAS_ACCELERATION = (
    0.0,
    -7 * _G / 24,
    7 * _G / 24,
    -7 * _G / 24,
    7 * _G / 24,
    -_G / 3,
    _G / 3,
    -_G / 3,
    _G / 3,
)
#: compliant climb rates (ft/min) of each advisory: (lowest, highest); COC: none
VCAS_COMPLIANT = (
    (_INF, -_INF),
    (-_INF, 0.0),
    (0.0, _INF),
    (-_INF, -1500.0),
    (1500.0, _INF),
    (-_INF, -1500.0),
    (1500.0, _INF),
    (-_INF, -2500.0),
    (2500.0, _INF),
)
#: input normalization of VCAS/Specifications.txt for (h, h0', tau)
VCAS_MEAN = (0.0, 0.0, 20.0)
VCAS_RANGE = (16000.0, 5000.0, 40.0)


def _networks(folder: Path) -> list[nn.Sequential]:
    return [
        load_mat(folder / "nnv_networks" / f"VertCAS_noResp_pra0{k}_v9_20HU_200.mat")
        for k in range(1, 10)
    ]


def _acceleration(adv: int, prev: int, hdot: float) -> float:
    lo, hi = VCAS_COMPLIANT[adv]
    comply = adv == prev and lo <= 60.0 * hdot <= hi
    return 0.0 if comply else VCAS_ACCELERATION[adv]


class VcasController(nn.Module):
    """The VCAS control law: the network of the previous advisory, argmax, central acceleration.

    ``forward(x)`` with ``x = (h, h0', tau, previous advisory)`` (..., 4) returns
    ``(new advisory, acceleration)`` (..., 2): the new advisory is the argmax of network
    ``pra0{prev + 1}`` on the normalized ``(h, h0', tau)``; the acceleration is 0 when the
    advisory is unchanged and the climb rate (``60 h0'`` ft/min) complies with it, else the
    advisory's central value.

    Parameters
    ----------
    folder : Path
        The ``VCAS`` data folder (networks read from its ``nnv_networks``).
    """

    def __init__(self, folder: Path):
        super().__init__()
        self.nets = nn.ModuleList(_networks(folder))

    def forward(self, x):
        x = torch.as_tensor(x, dtype=torch.float64)
        mean, rng = (torch.tensor(v, dtype=x.dtype) for v in (VCAS_MEAN, VCAS_RANGE))
        feats = (x[..., :3] - mean) / rng
        prev = x[..., 3].round().long()
        scores = torch.stack([net(feats) for net in self.nets], dim=-2)  # (..., 9 nets, 9 outs)
        index = prev[..., None, None].expand(*prev.shape, 1, 9)
        adv = torch.gather(scores, -2, index).squeeze(-2).argmax(dim=-1)
        lo = torch.tensor([c[0] for c in VCAS_COMPLIANT], dtype=x.dtype)[adv]
        hi = torch.tensor([c[1] for c in VCAS_COMPLIANT], dtype=x.dtype)[adv]
        rate = 60.0 * x[..., 1]
        comply = (rate >= lo) & (rate <= hi) & (adv == prev)
        central = torch.tensor(VCAS_ACCELERATION, dtype=x.dtype)[adv]
        acc = torch.where(comply, torch.zeros_like(rate), central)
        return torch.stack([adv.to(x.dtype), acc], dim=-1)


@dataclass
class VcasVerdict:
    """Result of :func:`verify`.

    Attributes
    ----------
    status : {"holds", "violated", "unknown"}
    semantics : str
        Always ``"discrete"`` (the benchmark is a discrete map).
    counterexample : ndarray or None
        An initial state ``(h, h0', tau, adv)`` whose simulated run enters the unsafe band.
    intervals : int
        Intervals of ``h`` examined.
    seconds : float
    reason : str
    """

    status: str
    semantics: str
    counterexample: np.ndarray | None
    intervals: int
    seconds: float
    reason: str = ""


def _down(v: float) -> float:
    return math.nextafter(v, -math.inf)


def _up(v: float) -> float:
    return math.nextafter(v, math.inf)


def verify(
    bench,
    controller: VcasController | None = None,
    *,
    timeout: float = 60.0,
    min_width: float = 1e-6,
    simulate=None,
) -> VcasVerdict:
    """Decide that ``h`` avoids the band ``[lo, hi]`` of the benchmark's ``never`` clause (VCAS:
    ``|h| > 100`` ft) after each of the ``bench.steps`` advisories, for every initial state.

    Parameters
    ----------
    bench : Benchmark
        A VCAS benchmark: ``h`` in an interval, ``h0'``, ``tau`` and the advisory fixed.
    controller : VcasController, optional
        Default ``bench.control_law()``.
    timeout : float, keyword-only
        Seconds before giving up (``"unknown"``).
    min_width : float, keyword-only
        Intervals of ``h`` (ft) narrower than this are not split further.
    simulate : callable, optional, keyword-only
        ``simulate(bench, x0) -> Rollout`` to replay a counterexample (default
        :func:`benchmarks.archcomp.simulate.simulate`).

    Returns
    -------
    VcasVerdict
        ``holds`` is proved for the discrete map up to the soundness of the CROWN bounds
        (float64) and of the interval updates (rounded outward); ``violated`` comes with an
        initial state whose simulation violates the property.
    """
    if simulate is None:
        from .simulate import simulate
    t0 = time.perf_counter()
    ctrl = bench.control_law() if controller is None else controller
    lo, hi = np.array(bench.x_lower), np.array(bench.x_upper)
    if not np.array_equal(lo[1:], hi[1:]):
        raise ValueError(
            f"verify: expected an interval of h only (h0', tau and adv fixed), received the box "
            f"{lo.tolist()} .. {hi.tolist()}"
        )
    (clause,) = bench.clauses
    if clause.op != "never" or clause.fn is not None or np.isfinite(clause.lower[1:]).any():
        raise ValueError(f"verify: expected one never-clause on a band of h, received {clause}")
    band_lo, band_hi = float(clause.lower[0]), float(clause.upper[0])
    hdot0, tau0, adv0 = float(lo[1]), float(lo[2]), int(lo[3])
    mean, rng = np.array(VCAS_MEAN), np.array(VCAS_RANGE)
    # a work item: the initial sub-interval, the current interval of h, its point state, step
    stack = [(float(lo[0]), float(hi[0]), float(lo[0]), float(hi[0]), hdot0, tau0, adv0, 0)]
    examined = 0

    def confirm(a0, b0):
        for h0 in (a0, b0, 0.5 * (a0 + b0)):
            x0 = np.array([h0, hdot0, tau0, adv0], dtype=np.float64)
            if simulate(bench, x0, controller=ctrl).rho[0] < 0:
                return x0
        return None

    while stack:
        if time.perf_counter() - t0 > timeout:
            return VcasVerdict(
                "unknown",
                "discrete",
                None,
                examined,
                time.perf_counter() - t0,
                f"timeout after {examined} intervals",
            )
        a0, b0, a, b, hdot, tau, prev, k = stack.pop()
        examined += 1
        if k == bench.steps:
            continue
        f_lo = (np.array([a, hdot, tau]) - mean) / rng
        f_hi = (np.array([b, hdot, tau]) - mean) / rng
        f_lo, f_hi = np.nextafter(f_lo, -np.inf), np.nextafter(f_hi, np.inf)
        bounds = output_bounds(ctrl.nets[prev], f_lo, f_hi, method="crown")
        j = int(np.argmax(bounds.lower))
        others = np.delete(bounds.upper, j)
        if not bounds.lower[j] > others.max():
            if b - a < min_width:
                x0 = confirm(a0, b0)
                if x0 is not None:
                    return VcasVerdict(
                        "violated",
                        "discrete",
                        x0,
                        examined,
                        time.perf_counter() - t0,
                        "argmax undecided; replayed",
                    )
                return VcasVerdict(
                    "unknown",
                    "discrete",
                    None,
                    examined,
                    time.perf_counter() - t0,
                    f"argmax not fixed on h in [{a}, {b}] at step {k}",
                )
            m, m0 = 0.5 * (a + b), 0.5 * (a0 + b0)
            stack.append((a0, m0, a, m, hdot, tau, prev, k))
            stack.append((m0, b0, m, b, hdot, tau, prev, k))
            continue
        acc = _acceleration(j, prev, hdot)
        shift = hdot + 0.5 * acc
        a1, b1 = _down(a - shift), _up(b - shift)
        if not (b1 < band_lo or a1 > band_hi):
            # part of the interval (maybe all) enters the unsafe band: find the state
            x0 = confirm(a0, b0)
            if x0 is not None:
                return VcasVerdict(
                    "violated",
                    "discrete",
                    x0,
                    examined,
                    time.perf_counter() - t0,
                    f"h in [{band_lo}, {band_hi}] after advisory {k + 1}; replayed",
                )
            if b - a < min_width:
                return VcasVerdict(
                    "unknown",
                    "discrete",
                    None,
                    examined,
                    time.perf_counter() - t0,
                    f"h in [{a1}, {b1}] at step {k + 1} meets the band",
                )
            m, m0 = 0.5 * (a + b), 0.5 * (a0 + b0)
            stack.append((a0, m0, a, m, hdot, tau, prev, k))
            stack.append((m0, b0, m, b, hdot, tau, prev, k))
            continue
        stack.append((a0, b0, a1, b1, hdot + acc, tau - 1.0, j, k + 1))
    return VcasVerdict("holds", "discrete", None, examined, time.perf_counter() - t0)
