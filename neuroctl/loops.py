"""Closed loops of a plant and a controller's gains, assembled as python-control systems.

* :class:`Linearization` -- the result of :func:`~neuroctl.linearize`: the plant's Jacobians,
  the controller's local gain and one :class:`LoopRegion` per adjacent activation region, with
  the open-loop plant, the closed loops and the loops broken at the plant input as
  ``control.StateSpace`` objects with named signals (built on access).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._json import json_dict

__all__ = ["Linearization", "LoopRegion"]


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
