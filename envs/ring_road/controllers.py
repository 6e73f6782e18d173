"""Classical AV controllers for the ring road as ``torch.nn`` modules.

Each acts on one AV's partial observation ``y = [v/15, (v_lead - v)/15, headway/270]`` (Flow's
normalisation, shape ``(..., 3)``), from which it recovers ``v``, ``v_lead`` and the gap, and
returns an acceleration in m/s^2 clipped to the action bounds, shape ``(..., 1)``.
FollowerStopper and PI with saturation compute a commanded speed ``v_cmd`` and convert it as Flow
does: ``accel = (v_cmd - v) / dt``, clipped.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroctl.controllers import StatefulController

from .dynamics import HEADWAY_SCALE, SPEED_SCALE, IDMParams, idm_acceleration

__all__ = [
    "decode_observation",
    "IDMController",
    "FollowerStopper",
    "PISaturation",
    "EachAV",
    "ring_controllers",
]


def decode_observation(y: torch.Tensor):
    """``(v, v_lead, gap)`` in m/s, m/s, m from Flow's partial observation, shapes ``(...,)``."""
    if y.shape[-1] != 3:
        raise ValueError(
            "expected one AV's partial observation [v/15, (v_lead - v)/15, headway/270] of "
            f"shape (..., 3), received shape {tuple(y.shape)}"
        )
    v = y[..., 0] * SPEED_SCALE
    return v, v + y[..., 1] * SPEED_SCALE, y[..., 2] * HEADWAY_SCALE


class _Bounded(nn.Module):
    def __init__(self, accel_bounds, dt):
        super().__init__()
        lo, hi = (float(b) for b in accel_bounds)
        if not lo <= hi:
            raise ValueError(f"accel_bounds: expected (low, high) with low <= high, got {lo, hi}")
        if not dt > 0:
            raise ValueError(f"dt: expected a positive step in seconds, received {dt!r}")
        self.lo, self.hi, self.dt = lo, hi, float(dt)

    def _out(self, accel):
        return torch.clamp(accel, self.lo, self.hi).unsqueeze(-1)


class IDMController(_Bounded):
    """The Intelligent Driver Model as an AV controller (baseline: the AV drives like a human).

    Parameters
    ----------
    params : IDMParams, optional
        Flow's human parameters by default.
    accel_bounds : (float, float)
        Output clipping, m/s^2 ((-1, 1)).
    dt : float
        Step, s (unused by IDM; kept for a uniform signature).
    """

    def __init__(self, *, params: IDMParams | None = None, accel_bounds=(-1.0, 1.0), dt=0.1):
        super().__init__(accel_bounds, dt)
        self.params = IDMParams() if params is None else params

    def forward(self, y):
        v, v_lead, gap = decode_observation(y)
        return self._out(idm_acceleration(gap, v, v_lead, self.params))


class FollowerStopper(_Bounded):
    """FollowerStopper (Stern et al. 2018): a commanded speed from the gap and closing speed.

    ``dv- = min(v_lead - v, 0)``; ``dx_k = omega_k + dv-^2 / (2 d_k)``;
    ``v~ = min(max(v_lead, 0), r)``; ``v_cmd = 0`` for ``dx <= dx_1``,
    ``v~ (dx - dx_1)/(dx_2 - dx_1)`` up to ``dx_2``, ``v~ + (r - v~)(dx - dx_2)/(dx_3 - dx_2)`` up
    to ``dx_3``, ``r`` above; ``accel = clip((v_cmd - v)/dt, bounds)``.

    Parameters
    ----------
    v_des : float
        Target speed ``r``, m/s.
    omega : (float, float, float)
        Gaps ``omega_k`` at zero closing speed, m ((4.5, 5.25, 6.0)).
    decel : (float, float, float)
        Decelerations ``d_k``, m/s^2 ((1.5, 1.0, 0.5)).
    accel_bounds : (float, float)
        m/s^2 ((-1, 1)).
    dt : float
        s (0.1).
    """

    def __init__(
        self,
        *,
        v_des: float,
        omega=(4.5, 5.25, 6.0),
        decel=(1.5, 1.0, 0.5),
        accel_bounds=(-1.0, 1.0),
        dt: float = 0.1,
    ):
        super().__init__(accel_bounds, dt)
        if not v_des >= 0:
            raise ValueError(f"v_des: expected a non-negative speed in m/s, received {v_des!r}")
        omega, decel = tuple(float(o) for o in omega), tuple(float(d) for d in decel)
        if len(omega) != 3 or not omega[0] < omega[1] < omega[2]:
            raise ValueError(f"omega: expected 3 increasing gaps in m, received {omega}")
        if len(decel) != 3 or not all(d > 0 for d in decel):
            raise ValueError(f"decel: expected 3 positive decelerations, received {decel}")
        self.v_des, self.omega, self.decel = float(v_des), omega, decel

    def command(self, v, v_lead, gap):
        """Commanded speed ``v_cmd`` (m/s), shapes ``(...,)``."""
        dv = torch.clamp(v_lead - v, max=0.0)
        dv2 = dv * dv
        x1, x2, x3 = (w + dv2 / (2.0 * d) for w, d in zip(self.omega, self.decel))
        vt = torch.clamp(v_lead, min=0.0, max=self.v_des)
        r = self.v_des
        return torch.where(
            gap <= x1,
            torch.zeros_like(gap),
            torch.where(
                gap <= x2,
                vt * (gap - x1) / (x2 - x1),
                torch.where(gap <= x3, vt + (r - vt) * (gap - x2) / (x3 - x2), r + 0.0 * gap),
            ),
        )

    def forward(self, y):
        v, v_lead, gap = decode_observation(y)
        return self._out((self.command(v, v_lead, gap) - v) / self.dt)


class PISaturation(_Bounded):
    """Proportional-integral controller with saturation (Stern et al. 2018; Flow's version).

    ``U`` = mean of the AV's own speed over the last ``history`` seconds (38 s);
    ``v_target = U + v_catch clip((dx - g_l)/(g_u - g_l), 0, 1)``;
    ``dx_s = max(2 (v_lead - v), 4)``; ``alpha = clip((dx - dx_s)/gamma, 0, 1)``;
    ``beta = 1 - alpha/2``; ``v_cmd <- beta (alpha v_target + (1 - alpha) v_lead)
    + (1 - beta) v_cmd``; ``accel = clip((v_cmd - v)/dt, bounds)``.

    **Internal state.** The module keeps the speed history (a window of
    ``round(history/dt)`` samples, one per call) and the previous ``v_cmd``, per batch element:
    call it once per step, in order, and call :meth:`reset` at the start of every episode (the
    batch shape is fixed at the first call after a reset). ``U`` is the mean over the samples
    received so far while the window fills.

    Parameters
    ----------
    dt : float
        Step, s (0.1).
    history : float
        Averaging window, s (38).
    g_l, g_u : float
        Gaps (m) between which ``v_target`` rises by ``v_catch`` (7, 30).
    v_catch : float
        m/s (1).
    gamma : float
        m (2).
    accel_bounds : (float, float)
        m/s^2 ((-1, 1)).
    """

    def __init__(
        self,
        *,
        dt: float = 0.1,
        history: float = 38.0,
        g_l: float = 7.0,
        g_u: float = 30.0,
        v_catch: float = 1.0,
        gamma: float = 2.0,
        accel_bounds=(-1.0, 1.0),
    ):
        super().__init__(accel_bounds, dt)
        if not history >= dt:
            raise ValueError(f"history: expected at least one step ({dt} s), received {history}")
        if not g_u > g_l:
            raise ValueError(f"g_u: expected g_u > g_l, received g_l={g_l}, g_u={g_u}")
        self.window = int(round(history / dt))
        self.g_l, self.g_u, self.v_catch, self.gamma = g_l, g_u, v_catch, gamma
        self.reset()

    def reset(self) -> None:
        """Forget the speed history and the previous command (start of an episode)."""
        self._hist = None
        self._count = 0
        self._v_cmd = None

    def forward(self, y):
        v, v_lead, gap = decode_observation(y)
        if self._hist is None:
            self._hist = torch.zeros((self.window, *v.shape), dtype=v.dtype, device=v.device)
            self._v_cmd = torch.zeros_like(v)
        elif self._hist.shape[1:] != v.shape:
            raise ValueError(
                f"PISaturation: batch shape changed from {tuple(self._hist.shape[1:])} to "
                f"{tuple(v.shape)}; call reset() between episodes"
            )
        self._hist = self._hist.clone()
        self._hist[self._count % self.window] = v.detach()
        self._count += 1
        k = min(self._count, self.window)
        U = self._hist.sum(0) / k
        v_target = U + self.v_catch * torch.clamp(
            (gap - self.g_l) / (self.g_u - self.g_l), 0.0, 1.0
        )
        dx_s = torch.clamp(2.0 * (v_lead - v), min=4.0)
        alpha = torch.clamp((gap - dx_s) / self.gamma, 0.0, 1.0)
        beta = 1.0 - 0.5 * alpha
        self._v_cmd = (
            beta * (alpha * v_target + (1.0 - alpha) * v_lead) + (1.0 - beta) * self._v_cmd.detach()
        )
        return self._out((self._v_cmd - v) / self.dt)


class EachAV(nn.Module):
    """One AV controller applied to each of ``n_av`` AVs of the plant's partial observation.

    Maps ``(..., 3 n_av)`` (the observations of the AVs, one after the other) to
    ``(..., n_av)`` accelerations: the ring plant's input. ``reset()`` is passed on.

    Parameters
    ----------
    controller : nn.Module
        Acts on one AV's observation, ``(..., 3) -> (..., 1)``.
    n_av : int
    """

    def __init__(self, controller: nn.Module, n_av: int):
        super().__init__()
        self.controller, self.n_av = controller, int(n_av)
        if isinstance(controller, StatefulController):  # stateful inside: so is the wrapper
            self.reset = controller.reset

    def forward(self, y):
        if y.shape[-1] != 3 * self.n_av:
            raise ValueError(
                f"expected the partial observation of {self.n_av} AV(s), shape (..., "
                f"{3 * self.n_av}), received shape {tuple(y.shape)}"
            )
        a = self.controller(y.reshape(*y.shape[:-1], self.n_av, 3))
        return a.reshape(*y.shape[:-1], self.n_av)


def ring_controllers(params, ring_length: float) -> dict:
    """The classical AV controllers of a ring, as a plant's ``controllers=`` table.

    ``name -> (description, factory(plant))``: ``"idm"`` (the AV drives like an IDM human),
    ``"followerstopper"`` (Stern et al. 2018, target speed 90% of the ring's uniform-flow
    speed: it damps the wave by driving a little slower than the flow the humans settle to, as
    in ``examples/ring_wave.py``), ``"pi"`` (PI with saturation, stateful) and ``"zero"`` (no
    AV acceleration). An all-human ring (``n_av=0``) has the one entry ``"human"`` (no input).
    The AV controllers need Flow's partial observation; with ``observation="full"`` only
    ``"zero"`` is offered.

    Parameters
    ----------
    params : ring_road.Params
    ring_length : float
        m (the FollowerStopper's target speed depends on it).

    Returns
    -------
    dict of str to (str, callable)
    """
    from .dynamics import uniform_flow_equilibrium

    if not params.n_av:
        return {"human": ("no AV: every car is an IDM human", lambda plant: None)}
    table = {"zero": ("no AV acceleration", lambda plant: None)}
    if params.observation != "partial":
        return table
    bounds = tuple(float(b) for b in params.accel_bounds)
    dt, n_av = params.dt, params.n_av

    def each(make):
        return lambda plant: EachAV(make(), n_av)

    def follower_stopper():
        _, v = uniform_flow_equilibrium(params, ring_length=ring_length)
        return FollowerStopper(v_des=0.9 * float(v), accel_bounds=bounds, dt=dt)

    table.update(
        idm=(
            "the AV drives like an IDM human",
            each(lambda: IDMController(params=params.idm, accel_bounds=bounds, dt=dt)),
        ),
        followerstopper=(
            "FollowerStopper (Stern et al. 2018), target 90% of the uniform-flow speed",
            each(follower_stopper),
        ),
        pi=(
            "PI with saturation (Stern et al. 2018; stateful)",
            each(lambda: PISaturation(dt=dt, accel_bounds=bounds)),
        ),
    )
    return table
