"""Pure dynamics of the single-lane ring road (Sugiyama 2008, Flow's wave-attenuation ring).

Everything here is a pure function of arrays and frozen parameters, written once for numpy and
torch, with shapes ``(..., n)`` (any leading batch shape). The Gymnasium environments in
:mod:`neuroctl.envs.ring_road.env` only own the state and the random generator and call these.

State convention (kept stable for linearization): ``x = [q_0 .. q_{N-1}, v_0 .. v_{N-1}]``,
positions ``q`` of the front bumpers in metres along the ring (wrapped to ``[0, L)``) and speeds
``v`` in m/s, in ring order: the leader of car ``i`` is car ``(i + 1) mod N``. The automated
vehicles (AVs) are cars ``av_indices(N, n_av)`` (car 0 first, the others evenly spread).

Update (SUMO's default Euler, as Flow): ``v' = max(v + a dt, 0)``, ``q' = q + v' dt``. It is the
semi-implicit Euler step of :func:`ring_rhs` followed by the speed clamp and the wrap of
:func:`ring_post_step`. Two safety limits are part of the acceleration (and inactive in ordinary
traffic):

* every car: ``-v/dt <= a <= (gap/dt - v)/dt`` -- its speed stays non-negative and it never moves
  farther than its current gap in one step, so no car can overlap its leader (the leader never
  moves backwards);
* every AV: the fail-safe ``a <= (v_safe - v)/dt`` with Krauss' safe speed
  ``v_safe = -b dt + sqrt((b dt)^2 + v_lead^2 + 2 b max(gap - s_min, 0))`` (``b`` =
  ``failsafe_decel``, ``s_min`` = ``failsafe_min_gap``): after the step the AV can still stop
  behind its leader even if the leader brakes at ``b``. The fail-safe may brake harder than the
  action bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroctl import Plant
from neuroctl._array import is_torch
from neuroctl._json import json_dict

__all__ = [
    "IDMParams",
    "OVMParams",
    "Params",
    "SPEED_SCALE",
    "HEADWAY_SCALE",
    "av_indices",
    "idm_acceleration",
    "ovm_acceleration",
    "optimal_velocity",
    "hinge_flux",
    "uniform_flow_equilibrium",
    "ring_gaps",
    "ring_metrics",
    "ring_trajectory_metrics",
    "RingMetrics",
    "ring_accelerations",
    "ring_rhs",
    "ring_post_step",
    "ring_step_info",
    "ring_observation",
    "ring_reward",
    "acceleration_noise",
    "standard_normal_float32",
    "ring_plant",
    "GapCache",
]

#: Flow's normalisation of speeds (m/s) in the partial observation.
SPEED_SCALE = 15.0
#: Flow's normalisation of the headway (m) in the partial observation.
HEADWAY_SCALE = 270.0


def _num(value, name: str, *, positive: bool = True, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (not positive or value > 0 or (allow_zero and value == 0))
    if not ok:
        want = "a finite number"
        if positive:
            want = "a non-negative finite number" if allow_zero else "a positive finite number"
        raise ValueError(f"{name}: expected {want}, received {value!r}")
    return value


# ---------------------------------------------------------------------------- parameters
#: gaps below this count as this (m), as in SUMO: touching cars brake as hard as they can
_GAP_EPS = 1e-9


def _as_f64(*values: float) -> tuple[np.ndarray, ...]:
    """``values`` as read-only 0-d float64 arrays (constants of the numpy float64 path)."""
    out = tuple(np.array(float(v)) for v in values)
    for a in out:
        a.flags.writeable = False
    return out


(_ZERO64,) = _as_f64(0.0)
_F64: dict[float, np.ndarray] = {}


def _f64(value: float) -> np.ndarray:
    """The number ``value`` as a read-only 0-d float64 array, made once per value."""
    a = _F64.get(value)
    if a is None:
        if len(_F64) > 256:  # keep the cache small when many lengths are drawn
            _F64.clear()
        a = _F64[value] = _as_f64(value)[0]
    return a


@dataclass(frozen=True)
class IDMParams:
    """Intelligent Driver Model parameters (Flow's defaults, Treiber et al. 2000).

    Attributes
    ----------
    v0 : float
        Desired speed, m/s (30).
    T : float
        Time headway, s (1).
    a : float
        Maximum acceleration, m/s^2 (1).
    b : float
        Comfortable deceleration, m/s^2 (1.5).
    delta : float
        Acceleration exponent (4).
    s0 : float
        Jam distance (minimum bumper-to-bumper gap), m (2).
    """

    v0: float = 30.0
    T: float = 1.0
    a: float = 1.0
    b: float = 1.5
    delta: float = 4.0
    s0: float = 2.0

    def __post_init__(self):
        for name in ("v0", "T", "a", "b", "delta"):
            _num(getattr(self, name), f"IDMParams.{name}")
        _num(self.s0, "IDMParams.s0", allow_zero=True)
        # derived constants (not fields) for a lean evaluation
        object.__setattr__(self, "_k", 0.5 / math.sqrt(self.a * self.b))
        object.__setattr__(self, "_inv_v0", 1.0 / self.v0)
        # the same constants as 0-d float64 arrays: a float64 array times a 0-d array is the
        # same IEEE operation as times a Python float, without numpy's conversion of the
        # Python number on every call (a third of the cost of an operation on one ring's cars)
        object.__setattr__(
            self, "_f64", _as_f64(self.s0, self.T, self._k, self._inv_v0, 1.0, _GAP_EPS, 0.0)
        )


@dataclass(frozen=True)
class OVMParams:
    """Optimal-velocity model with the hinge optimal-velocity function.

    ``a = alpha (V(s + l) - v) + beta (v_lead - v)`` with
    ``V(h) = v_max max(0, 1 - 1/(rho_max h))`` of the spacing ``h`` (gap + vehicle length), so that
    the uniform-flow flux ``rho V(1/rho)`` is the hinge flux ``q(rho) = v_max max(0, rho)
    max(0, 1 - rho/rho_max)`` (:func:`hinge_flux`).

    Attributes
    ----------
    v_max : float
        Free-flow speed, m/s (30).
    rho_max : float
        Jam density, vehicles per metre (1/7: a 5 m car plus a 2 m gap).
    alpha : float
        Sensitivity to the optimal velocity, 1/s (0.6).
    beta : float
        Sensitivity to the speed difference, 1/s (0.2).
    """

    v_max: float = 30.0
    rho_max: float = 1.0 / 7.0
    alpha: float = 0.6
    beta: float = 0.2

    def __post_init__(self):
        _num(self.v_max, "OVMParams.v_max")
        _num(self.rho_max, "OVMParams.rho_max")
        _num(self.alpha, "OVMParams.alpha")
        _num(self.beta, "OVMParams.beta", allow_zero=True)


_HUMAN_MODELS = ("idm", "ovm")
_OBSERVATIONS = ("partial", "full")


@dataclass(frozen=True)
class Params:
    """Parameters of the ring road (defaults: Flow's single-agent ring, see REFERENCE.md).

    Attributes
    ----------
    n_vehicles : int
        Number of cars ``N`` on the ring, humans and AVs (22), >= 2.
    n_av : int
        Number of automated vehicles (1); 0 makes an all-human ring.
    ring_length : float or (int, int)
        Ring length in metres. A pair ``(lo, hi)`` draws an integer uniformly from ``lo..hi`` at
        every reset (Flow: 220..270); a number fixes it.
    vehicle_length : float
        Car length, m (5).
    dt : float
        Step, s (0.1).
    noise : float
        Standard deviation of the human acceleration noise; each step adds
        ``sqrt(dt) * N(0, noise)`` m/s^2 to every human (0.2).
    warmup_steps : int
        Steps run inside ``reset`` before control starts (750); AVs drive as noise-free humans.
    human_model : {"idm", "ovm"}
        Car-following model of the humans.
    observation : {"partial", "full"}
        Flow's partial observation of each AV, or all speeds and gaps.
    idm, ovm : IDMParams, OVMParams
        Model parameters.
    accel_bounds : (float, float)
        AV acceleration bounds, m/s^2 ((-1, 1)).
    failsafe_decel : float
        Braking the AV fail-safe assumes for itself and its leader, m/s^2 (1.5).
    failsafe_min_gap : float
        Gap the fail-safe keeps at standstill, m (1).
    """

    n_vehicles: int = 22
    n_av: int = 1
    ring_length: float | tuple[float, float] = (220, 270)
    vehicle_length: float = 5.0
    dt: float = 0.1
    noise: float = 0.2
    warmup_steps: int = 750
    human_model: str = "idm"
    observation: str = "partial"
    idm: IDMParams = field(default_factory=IDMParams)
    ovm: OVMParams = field(default_factory=OVMParams)
    accel_bounds: tuple[float, float] = (-1.0, 1.0)
    failsafe_decel: float = 1.5
    failsafe_min_gap: float = 1.0

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not (is_int(self.n_vehicles) and self.n_vehicles >= 2):
            # one car would follow itself: its gap is the whole ring less its length, which no
            # initial placement or reset handles
            raise ValueError(
                "n_vehicles: expected an int >= 2 (each car follows another one), received "
                f"{self.n_vehicles!r}"
            )
        if not (is_int(self.n_av) and 0 <= self.n_av <= self.n_vehicles):
            raise ValueError(
                f"n_av: expected an int between 0 and n_vehicles={self.n_vehicles}, "
                f"received {self.n_av!r}"
            )
        _num(self.vehicle_length, "vehicle_length")
        _num(self.dt, "dt")
        _num(self.noise, "noise", allow_zero=True)
        if not (is_int(self.warmup_steps) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps: expected an int >= 0, received {self.warmup_steps!r}")
        rl = self.ring_length
        if isinstance(rl, (tuple, list)):
            if len(rl) != 2:
                raise ValueError(
                    f"ring_length: expected a number or a pair (lo, hi) of metres, received {rl!r}"
                )
            lo = _num(rl[0], "ring_length[0]")
            hi = _num(rl[1], "ring_length[1]")
            if lo > hi:
                raise ValueError(f"ring_length: expected lo <= hi, received {rl!r}")
            object.__setattr__(self, "ring_length", (lo, hi))
        else:
            lo = _num(rl, "ring_length")
            object.__setattr__(self, "ring_length", lo)
        need = self.n_vehicles * self.vehicle_length
        if lo <= need:
            raise ValueError(
                f"ring_length: {self.n_vehicles} cars of {self.vehicle_length} m need a ring "
                f"longer than {need:g} m; received ring_length={rl!r}"
            )
        if self.human_model not in _HUMAN_MODELS:
            raise ValueError(
                f"human_model: expected one of {_HUMAN_MODELS}, received {self.human_model!r}"
            )
        if self.observation not in _OBSERVATIONS:
            raise ValueError(
                f"observation: expected one of {_OBSERVATIONS}, received {self.observation!r}"
            )
        if not isinstance(self.idm, IDMParams):
            raise TypeError(f"idm: expected an IDMParams, received {self.idm!r}")
        if not isinstance(self.ovm, OVMParams):
            raise TypeError(f"ovm: expected an OVMParams, received {self.ovm!r}")
        ab = tuple(self.accel_bounds)
        if len(ab) != 2 or not all(math.isfinite(float(b)) for b in ab) or ab[0] > ab[1]:
            raise ValueError(
                f"accel_bounds: expected finite (low, high) with low <= high, received {ab!r}"
            )
        object.__setattr__(self, "accel_bounds", (float(ab[0]), float(ab[1])))
        _num(self.failsafe_decel, "failsafe_decel")
        _num(self.failsafe_min_gap, "failsafe_min_gap", allow_zero=True)

    @property
    def av_indices(self) -> np.ndarray:
        """Indices of the AVs in ring order, shape ``(n_av,)``."""
        return av_indices(self.n_vehicles, self.n_av)

    @property
    def length_range(self) -> tuple[float, float]:
        """``(lo, hi)`` of the ring length in metres (``lo == hi`` when fixed)."""
        rl = self.ring_length
        return tuple(rl) if isinstance(rl, tuple) else (rl, rl)


def av_indices(n_vehicles: int, n_av: int) -> np.ndarray:
    """Ring indices of the AVs: ``floor(k N / n_av)`` for ``k = 0..n_av-1`` (car 0 is an AV)."""
    return (np.arange(n_av) * n_vehicles) // max(n_av, 1)


# ---------------------------------------------------------------------------- helpers
_NP = (np.ndarray, float, np.floating)


def _clamp_min(a, lo):
    if type(a) is float:
        return a if a > lo else lo
    if isinstance(a, _NP):
        return np.maximum(a, lo)
    import torch

    return torch.clamp(a, min=lo) if not is_torch(lo) else torch.maximum(a, lo)


def _clamp_max(a, hi):
    if type(a) is float and type(hi) is float:
        return a if a < hi else hi
    if isinstance(a, _NP):
        return np.minimum(a, hi)
    import torch

    return torch.clamp(a, max=hi) if not is_torch(hi) else torch.minimum(a, hi)


def _floor(a):
    return np.floor(a) if isinstance(a, _NP) else a.floor()


def _sqrt(a):
    if type(a) is float:
        return math.sqrt(a)
    return np.sqrt(a) if isinstance(a, _NP) else a.sqrt()


def _scalar_over(c: float, a):
    """``c / a`` for a number ``c``, correctly rounded also for a tensor ``a`` (torch computes
    ``number / tensor`` as the reciprocal times the number: two roundings, not numpy's one)."""
    if is_torch(a):
        return a.new_full((), c) / a
    return c / a


def _where(c, a, b):
    if is_torch(c):
        import torch

        return torch.where(c, a, b)
    return np.where(c, a, b)


def _length_like(ring_length, x):
    """Ring length as an array broadcastable against ``x`` of shape ``(..., N)``.

    ``ring_length`` has the batch shape ``(...,)``, or is already laid out per car (as many
    dimensions as ``x``, e.g. ``(B, 1)`` or ``(B, N)``), which is used as it is.
    """
    if is_torch(x):
        import torch

        L = torch.as_tensor(ring_length, dtype=x.dtype, device=x.device)
    else:
        if is_torch(ring_length):  # tensor lengths and a numpy state (a plant's numpy probe)
            ring_length = ring_length.detach().cpu().numpy()
        floating = type(x) is np.ndarray and x.dtype.kind == "f"
        L = np.asarray(ring_length, dtype=x.dtype if floating else float)
    return L[..., None] if 0 < L.ndim < x.ndim else L


def _take_last(a, idx):
    """``a[..., idx]`` for an index array ``idx``; a 1-D numpy array is indexed as ``a[idx]``,
    several times cheaper (numpy's ellipsis-and-array indexing costs microseconds); a tensor by
    the index as a tensor on its device (see :func:`_on_device`)."""
    if type(a) is np.ndarray:
        return a[idx] if a.ndim == 1 else a[..., idx]
    if type(idx) is np.ndarray and is_torch(a):
        return a.index_select(-1, _on_device(idx, a))  # faster than a[..., tensor]
    return a[..., idx]


_LEADERS: dict[int, np.ndarray] = {}


def _leader_index(n: int) -> np.ndarray:
    idx = _LEADERS.get(n)
    if idx is None:
        idx = _LEADERS[n] = np.roll(np.arange(n), -1)
    return idx


def _of_leaders(a):
    """``a[..., (i + 1) mod N]``: each car's leader's entry, shape ``(..., N)`` (a tensor by a
    roll, several times cheaper than a gather)."""
    if type(a) is np.ndarray and a.ndim == 1:  # one ring: the cheapest gather
        return a[_leader_index(a.shape[0])]
    if is_torch(a):
        return a.roll(-1, -1)
    return _take_last(a, _leader_index(a.shape[-1]))


# ---------------------------------------------------------------------------- car following


def idm_acceleration(gap, v, v_lead, params: IDMParams | None = None):
    """Intelligent Driver Model acceleration (Flow's form).

    ``s* = s0 + max(0, v T + v (v - v_lead) / (2 sqrt(a b)))``,
    ``accel = a [1 - (v/v0)^delta - (s*/s)^2]``.

    Parameters
    ----------
    gap : array or tensor, shape (...,)
        Bumper-to-bumper gap ``s`` to the leader, m (gaps below 1e-9 m count as 1e-9 m, as
        in SUMO, so touching cars brake as hard as they can instead of dividing by 0).
    v, v_lead : array or tensor, shape (...,)
        Own and leader speed, m/s.
    params : IDMParams, optional
        Defaults to Flow's parameters.

    Returns
    -------
    array or tensor, shape (...,)
        Acceleration, m/s^2.
    """
    p = _DEFAULT_IDM if params is None else params
    if (
        type(v) is np.ndarray
        and type(gap) is np.ndarray
        and type(v_lead) is np.ndarray
        and v.dtype == np.float64
        and v.ndim
        and gap.shape == v.shape == v_lead.shape
        and p.delta == 4.0
        and p.a == 1.0
    ):
        # Flow's parameters on float64 arrays of one shape (not 0-d: numpy turns those into
        # scalars, which cannot be written in place): the same operations in the same order,
        # in place on two fresh arrays (the allocations cost as much as the arithmetic on a
        # ring)
        s0, T, k, inv_v0, one, eps, zero = p._f64
        s_star = v - v_lead
        s_star *= k
        s_star += T
        s_star *= v
        np.maximum(s_star, zero, out=s_star)
        s_star += s0
        s_star /= np.maximum(gap, eps)  # the ratio s*/s
        s_star *= s_star
        vr = v * inv_v0
        vr *= vr
        vr *= vr
        np.subtract(one, vr, out=vr)
        vr -= s_star
        return vr
    if type(v) is np.ndarray and v.dtype == np.float64:
        s0, T, k, inv_v0, one, eps, zero = p._f64
        clamp_min = np.maximum
    else:
        s0, T, k, inv_v0, one, eps, zero = p.s0, p.T, p._k, p._inv_v0, 1.0, _GAP_EPS, 0.0
        clamp_min = _clamp_min
    s_star = s0 + clamp_min(v * (T + (v - v_lead) * k), zero)
    ratio = s_star / clamp_min(gap, eps)
    if p.delta == 4.0:
        vr = v * inv_v0
        vr = vr * vr
        free = vr * vr
    else:
        free = (v * inv_v0) ** p.delta
    accel = (one - free) - ratio * ratio
    return accel if p.a == 1.0 else p.a * accel


_DEFAULT_IDM = IDMParams()


def optimal_velocity(spacing, v_max: float, rho_max: float):
    """Hinge optimal velocity ``V(h) = v_max max(0, 1 - 1/(rho_max h))`` of the spacing ``h`` (m).

    Shapes ``(...,)``; returns m/s. Its uniform-flow flux ``V(1/rho) rho`` is :func:`hinge_flux`.
    """
    return v_max * _clamp_min(1.0 - _scalar_over(1.0 / rho_max, spacing), 0.0)


def ovm_acceleration(gap, v, v_lead, params: OVMParams | None = None, *, vehicle_length=5.0):
    """Optimal-velocity-model acceleration ``alpha (V(gap + l) - v) + beta (v_lead - v)``.

    Parameters
    ----------
    gap : array or tensor, shape (...,)
        Bumper-to-bumper gap, m.
    v, v_lead : array or tensor, shape (...,)
        Own and leader speed, m/s.
    params : OVMParams, optional
    vehicle_length : float
        Car length ``l`` in metres (spacing = gap + l).

    Returns
    -------
    array or tensor, shape (...,)
        Acceleration, m/s^2.
    """
    p = OVMParams() if params is None else params
    V = optimal_velocity(gap + vehicle_length, p.v_max, p.rho_max)
    return p.alpha * (V - v) + p.beta * (v_lead - v)


def hinge_flux(rho, v_max: float, rho_max: float):
    """Macroscopic flux with hinges ``q(rho) = v_max max(0, rho) max(0, 1 - rho/rho_max)``.

    Parameters
    ----------
    rho : array or tensor, shape (...,)
        Density, vehicles per metre.
    v_max : float
        Free-flow speed, m/s.
    rho_max : float
        Jam density, vehicles per metre.

    Returns
    -------
    array or tensor, shape (...,)
        Flux, vehicles per second.
    """
    return v_max * _clamp_min(rho, 0.0) * _clamp_min(1.0 - rho * (1.0 / rho_max), 0.0)


def uniform_flow_equilibrium(
    params: Params | int | None = None,
    ring_length=None,
    *,
    n_vehicles: int | None = None,
    vehicle_length: float | None = None,
    human_model: str | None = None,
    idm: IDMParams | None = None,
    ovm: OVMParams | None = None,
):
    """Gap and speed of uniform flow on the ring (all cars equally spaced at one speed).

    For IDM, the speed solves ``1 - (v/v0)^delta = ((s0 + v T)/s)^2`` at the gap
    ``s = L/N - l`` (bisection to machine precision); for the OVM it is ``V(L/N)``.
    Keywords override the corresponding fields of ``params`` (default ``Params()`` with the
    ring length 230 m when the length is a range).

    Parameters
    ----------
    params : Params or int, optional
        Ring parameters, or the number of cars ``N`` (then the other fields are the defaults).
    ring_length : float or array_like, shape (...,), optional
        Ring length(s) ``L``, m.
    n_vehicles, vehicle_length, human_model, idm, ovm : optional
        Overrides of the fields of ``params``.

    Returns
    -------
    gap : ndarray, shape of ``ring_length``
        Bumper-to-bumper gap, m.
    speed : ndarray, same shape
        Equilibrium speed, m/s.

    Examples
    --------
    >>> gap, v = uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0)
    >>> round(float(gap), 3), round(float(v), 3)
    (5.455, 3.454)
    >>> bool(uniform_flow_equilibrium(22, 230.0)[1] == v)
    True
    """
    if isinstance(params, (int, np.integer)) and not isinstance(params, bool):
        params, n_vehicles = None, int(params) if n_vehicles is None else n_vehicles
    if params is not None and not isinstance(params, Params):
        raise TypeError(
            f"params: expected a ring_road Params or a number of cars, received {params!r}"
        )
    p = Params() if params is None else params
    n = p.n_vehicles if n_vehicles is None else n_vehicles
    if ring_length is None:
        ring_length = p.ring_length if not isinstance(p.ring_length, tuple) else 230.0
    length = p.vehicle_length if vehicle_length is None else vehicle_length
    model = p.human_model if human_model is None else human_model
    L = np.asarray(ring_length, dtype=float)
    gap = L / n - length
    if np.any(gap <= 0):
        raise ValueError(
            f"ring_length: {n} cars of {length} m do not fit on a ring of {ring_length} m"
        )
    if model == "ovm":
        o = p.ovm if ovm is None else ovm
        return gap, np.asarray(optimal_velocity(gap + length, o.v_max, o.rho_max))
    if model != "idm":
        raise ValueError(f"human_model: expected one of {_HUMAN_MODELS}, received {model!r}")
    q = p.idm if idm is None else idm
    lo, hi = np.zeros_like(gap), np.full_like(gap, q.v0)

    def resid(v):
        return 1.0 - (v / q.v0) ** q.delta - ((q.s0 + v * q.T) / gap) ** 2

    for _ in range(200):
        mid = 0.5 * (lo + hi)
        pos = resid(mid) > 0
        lo, hi = np.where(pos, mid, lo), np.where(pos, hi, mid)
    return gap, 0.5 * (lo + hi)


# ---------------------------------------------------------------------------- ring geometry
def ring_gaps(positions, ring_length, vehicle_length=5.0):
    """Bumper-to-bumper gap of every car to its leader (car ``i+1 mod N``).

    Parameters
    ----------
    positions : array or tensor, shape (..., N)
        Front-bumper positions along the ring, m.
    ring_length : float or array, shape (...,)
        Ring length(s), m (one per batch member allowed).
    vehicle_length : float
        Car length, m.

    Returns
    -------
    array or tensor, shape (..., N)
        ``((q_lead - q) mod L) - vehicle_length``, m.
    """
    L = ring_length if isinstance(ring_length, float) else _length_like(ring_length, positions)
    if isinstance(positions, np.ndarray) and positions.ndim > 1:
        positions = np.ascontiguousarray(positions)
    d = _of_leaders(positions) - positions
    if type(d) is np.ndarray and d.dtype.kind == "f":
        if d.ndim == 1:  # one car row: the remainder is the cheapest
            if d.dtype == np.float64 and type(L) is float and type(vehicle_length) is float:
                return d % _f64(L) - _f64(vehicle_length)
            return d % L - vehicle_length
        # d mod L for -L < d < L, in place on the fresh difference: the same numbers as the
        # floor form below at a fraction of its cost on big batches
        np.add(d, L, out=d, where=d < 0.0)
        d -= vehicle_length
        return d
    # d mod L without the floating remainder (several times slower on big batches)
    return d - L * _floor(d * (1.0 / L)) - vehicle_length


@dataclass(frozen=True)
class RingMetrics:
    """Ring metrics over the samples given (time and cars pooled).

    Attributes
    ----------
    mean_speed : float
        m/s.
    speed_std : float
        Standard deviation of the speeds over cars and samples, m/s.
    min_gap : float
        Smallest bumper-to-bumper gap, m.
    flow : float
        Flow past a point, vehicles per hour (density times mean speed).
    """

    mean_speed: float
    speed_std: float
    min_gap: float
    flow: float

    @json_dict
    def to_dict(self) -> dict:
        """Plain dictionary of the metrics."""
        return {
            "mean_speed": self.mean_speed,
            "speed_std": self.speed_std,
            "min_gap": self.min_gap,
            "flow": self.flow,
        }

    def __repr__(self) -> str:
        return (
            f"RingMetrics(mean_speed={self.mean_speed:.3f} m/s, speed_std={self.speed_std:.3f} "
            f"m/s, min_gap={self.min_gap:.3f} m, flow={self.flow:.1f} veh/h)"
        )


def ring_metrics(speeds, gaps, *, vehicle_length: float = 5.0) -> RingMetrics:
    """Mean speed, speed standard deviation, minimum gap and flow of ring samples.

    Parameters
    ----------
    speeds, gaps : array_like, shape (..., N)
        Speeds (m/s) and gaps (m) of all cars, for any number of samples (the ring length of a
        sample is ``sum(gaps) + N vehicle_length``).
    vehicle_length : float
        Car length, m.

    Returns
    -------
    RingMetrics
    """
    speeds = np.asarray(speeds, dtype=float)
    gaps = np.asarray(gaps, dtype=float)
    if speeds.shape != gaps.shape or speeds.ndim == 0:
        raise ValueError(
            "speeds and gaps: expected equal shapes (..., N), received "
            f"{speeds.shape} and {gaps.shape}"
        )
    n = speeds.shape[-1]
    L = gaps.sum(-1) + n * vehicle_length
    flow = float(np.mean(n / L * speeds.mean(-1))) * 3600.0
    return RingMetrics(
        mean_speed=float(speeds.mean()),
        speed_std=float(speeds.std()),
        min_gap=float(gaps.min()),
        flow=flow,
    )


def ring_trajectory_metrics(states, ring_length: float, params: Params) -> dict:
    """The ring's figures of a run of states: :func:`ring_metrics` plus the speed range.

    Parameters
    ----------
    states : array_like, shape (T, 2N)
        States ``[positions, speeds]`` of a run (every sample counts).
    ring_length : float
        m.
    params : Params

    Returns
    -------
    dict
        ``mean_speed``, ``speed_std``, ``min_speed``, ``max_speed`` (m/s), ``min_gap`` (m),
        ``flow`` (vehicles per hour).
    """
    x = np.asarray(states, dtype=float)
    n = params.n_vehicles
    if x.ndim != 2 or x.shape[-1] != 2 * n:
        raise ValueError(f"states: expected shape (T, {2 * n}), received {x.shape}")
    speeds = x[:, n:]
    gaps = ring_gaps(x[:, :n], float(ring_length), params.vehicle_length)
    out = ring_metrics(speeds, gaps, vehicle_length=params.vehicle_length).to_dict()
    out.update(min_speed=float(speeds.min()), max_speed=float(speeds.max()))
    return out


# ---------------------------------------------------------------------------- the step
class _Consts:
    """Per-``Params`` constants cached for a lean step (index arrays, masks, matrices)."""

    def __init__(self, p: Params):
        n = p.n_vehicles
        self.n = n
        self.dt = p.dt
        self.inv_dt = 1.0 / p.dt
        # for one ring's float64 arrays (see _as_f64): 1/dt, -1/dt, the car length
        self.inv_dt64, self.neg_inv_dt64, self.length64 = _as_f64(
            self.inv_dt, -self.inv_dt, p.vehicle_length
        )
        self.length = p.vehicle_length
        self.av = p.av_indices
        self.single_av = p.n_av == 1
        self.av0 = int(self.av[0]) if p.n_av else -1
        # indexes the AV columns: a slice (a view, cheaper than gathering) when there is at most one
        if p.n_av <= 1:
            self.av_cols = slice(self.av0, self.av0 + 1) if p.n_av else slice(0, 0)
        else:
            self.av_cols = self.av
        mask = np.zeros(n, dtype=bool)
        mask[self.av] = True
        self.human = ~mask
        self.human_f = self.human.astype(float)
        sel = np.zeros((p.n_av, n))
        sel[np.arange(p.n_av), self.av] = 1.0
        self.select = sel
        self.b = p.failsafe_decel
        self.bdt = p.failsafe_decel * p.dt
        self.smin = p.failsafe_min_gap
        # observation = [v, gaps] @ obs_matrix (one matmul, numpy and torch, any batch shape)
        if p.observation == "full":
            m = np.zeros((2 * n, 2 * n))
            m[np.arange(n), np.arange(n)] = 1.0 / SPEED_SCALE
            m[n + np.arange(n), n + np.arange(n)] = 1.0 / HEADWAY_SCALE
        else:
            m = np.zeros((2 * n, 3 * p.n_av))
            for k, i in enumerate(self.av):
                m[i, 3 * k] = 1.0 / SPEED_SCALE
                m[i, 3 * k + 1] = -1.0 / SPEED_SCALE
                m[(i + 1) % n, 3 * k + 1] = 1.0 / SPEED_SCALE
                m[n + i, 3 * k + 2] = 1.0 / HEADWAY_SCALE
        self.obs_matrix = m
        # its rows on the speeds and on the gaps (kept: a tensor copy is made once per array)
        self.obs_on_speeds, self.obs_on_gaps = m[:n], m[n:]
        if p.human_model == "idm":
            idm = p.idm
            self.human_fn = lambda gap, v, vl: idm_acceleration(gap, v, vl, idm)
        else:
            ovm, length = p.ovm, p.vehicle_length
            self.human_fn = lambda gap, v, vl: ovm_acceleration(
                gap, v, vl, ovm, vehicle_length=length
            )


_CONSTS: dict[int, tuple[Params, _Consts]] = {}
_LAST_CONSTS: list[tuple[Any, Any]] = [(None, None)]


def _consts(p: Params) -> _Consts:
    last = _LAST_CONSTS[0]
    if last[0] is p:  # the Params of the previous call (one env stepping): no lookup
        return last[1]
    hit = _CONSTS.get(id(p))
    if hit is None or hit[0] is not p:
        if len(_CONSTS) > 256:  # keep the cache small when many Params are made
            _CONSTS.clear()
        hit = _CONSTS[id(p)] = (p, _Consts(p))
    _LAST_CONSTS[0] = hit  # one tuple, replaced whole (safe across threads)
    return hit[1]


_ON_DEVICE: dict[tuple, tuple[np.ndarray, Any]] = {}


def _on_device(a: np.ndarray, like, float_dtype: bool = False):
    """The constant numpy array ``a`` as a tensor on ``like``'s device, made once and kept.

    Converting the step's constant arrays (index arrays, masks, matrices, weights) on every
    call would copy them from the host at every step of a vector env on an accelerator.
    ``float_dtype``: in ``like``'s dtype (else in ``a``'s). The arrays are long-lived (cached
    per ``Params``); the entry keeps ``a`` alive, so its ``id`` is not reused while cached.
    """
    dtype = like.dtype if float_dtype else None
    key = (id(a), like.device, dtype)
    hit = _ON_DEVICE.get(key)
    if hit is None or hit[0] is not a:
        import torch

        if len(_ON_DEVICE) > 1024:  # keep the cache small when many Params are made
            _ON_DEVICE.clear()
        hit = _ON_DEVICE[key] = (a, torch.tensor(a, dtype=dtype, device=like.device))
    return hit[1]


def _as(a, like):
    if is_torch(like):
        if type(a) is np.ndarray:
            return _on_device(a, like, float_dtype=True)
        import torch

        return torch.as_tensor(a, dtype=like.dtype, device=like.device)
    return a


def _mask(m, like):
    return _on_device(m, like) if is_torch(like) else m


def _commanded(x, u, w, ring_length, params: Params, gaps):
    """Accelerations before the no-overlap limits, and the AVs' commands.

    Humans: car-following model plus noise ``w``. AVs: ``u`` cut by the fail-safe (``u=None``:
    the noise-free human model). Returns ``(accel, v, gaps, cmd)`` with ``cmd`` the AV commands
    before the fail-safe, shape ``(..., n_av)``.
    """
    c = _consts(params)
    n = c.n
    v = x[n:] if type(x) is np.ndarray and x.ndim == 1 else x[..., n:]
    if isinstance(v, np.ndarray) and v.ndim > 1:
        v = np.ascontiguousarray(v)  # batched ops on a strided half are several times slower
    if gaps is None:
        gaps = ring_gaps(x[..., :n], ring_length, c.length)
    v_lead = _of_leaders(v)
    human = c.human_fn(gaps, v, v_lead)
    if not params.n_av:
        return (human if w is None else human + w), v, gaps, human[..., :0]
    av = c.av_cols
    if c.single_av and type(v) is np.ndarray and v.ndim == 1:
        # one unbatched AV: the same formulas on Python floats (size-1 arrays cost ~20x more)
        i = c.av0
        cmd = human.item(i) if u is None else u.item(0)
        gap_av, vl_av, v_av = gaps.item(i), v_lead.item(i), v.item(i)
        av = int(i)  # a scalar index: cheaper to assign through than an index array
    else:
        cmd = _take_last(human, av) if u is None else u
        gap_av, vl_av, v_av = _take_last(gaps, av), _take_last(v_lead, av), _take_last(v, av)
    # Krauss safe speed of the AVs: after the step they can stop behind their leader
    room = _clamp_min(gap_av - c.smin, 0.0)
    v_safe = _sqrt(c.bdt * c.bdt + vl_av * vl_av + (2.0 * c.b) * room) - c.bdt
    av_acc = _clamp_max(cmd, (v_safe - v_av) * c.inv_dt)
    acc = human if w is None else human + w  # the AV entries are replaced below
    if type(acc) is np.ndarray and not is_torch(av_acc):
        acc = acc.copy() if w is None else acc
        if type(av) is int:
            acc[av] = av_acc
        else:
            acc[..., av] = av_acc
    else:
        acc = _where(_mask(c.human, acc), acc, av_acc @ _as(c.select, av_acc))
    return acc, v, gaps, cmd


def _limited(x, u, w, ring_length, params: Params, gaps, out=None):
    """Accelerations with the no-overlap limits, and the AV commands (see ring_accelerations).

    ``out`` (numpy only): where to write the accelerations, shape ``(..., N)``.
    """
    acc, v, gaps, cmd = _commanded(x, u, w, ring_length, params, gaps)
    c = _consts(params)
    if type(acc) is np.ndarray and acc.ndim > 1:
        # batches: the same operations as below, in place on fresh arrays (the same numbers)
        hi = gaps * c.inv_dt
        hi -= v
        hi *= c.inv_dt
        np.minimum(acc, hi, out=hi)
        np.multiply(v, -c.inv_dt, out=acc)
        return np.maximum(hi, acc, out=acc if out is None else out), cmd
    if type(acc) is np.ndarray and acc.dtype == np.float64:  # one ring
        inv_dt = c.inv_dt64
        acc = np.maximum(np.minimum(acc, (gaps * inv_dt - v) * inv_dt), v * c.neg_inv_dt64)
    else:
        acc = _clamp_min(_clamp_max(acc, (gaps * c.inv_dt - v) * c.inv_dt), -v * c.inv_dt)
    if out is not None:
        out[...] = acc
        return out, cmd
    return acc, cmd


def ring_accelerations(x, u, w, ring_length, params: Params, *, gaps=None):
    """Accelerations of all cars, with the AV fail-safe and the no-overlap limits.

    Parameters
    ----------
    x : array or tensor, shape (..., 2N)
        State ``[positions, speeds]``.
    u : array or tensor, shape (..., n_av), or None
        AV accelerations (m/s^2), used as given (saturate before). ``None`` lets the AVs drive
        as noise-free humans (Flow's warm-up).
    w : array or tensor, shape (..., N), or None
        Acceleration noise (m/s^2) added to the humans (AV entries are ignored).
    ring_length : float or array, shape (...,)
        Ring length(s), m.
    params : Params
    gaps : array or tensor, shape (..., N), optional
        The gaps of ``x`` if already known (saves a computation).

    Returns
    -------
    accel : array or tensor, shape (..., N)
        m/s^2, applied over the step: ``-v/dt <= accel <= (gap/dt - v)/dt``.
    failsafe : array or tensor of bool, shape (..., n_av)
        True where a limit reduced the AV's command.
    """
    acc, cmd = _limited(x, u, w, ring_length, params, gaps)
    return acc, _take_last(acc, _consts(params).av_cols) < _as(cmd, acc)


def ring_rhs(x, u, w, ring_length, params: Params, *, gaps=None):
    """Continuous right-hand side ``dx/dt = [v, accel]`` (shape ``(..., 2N)``) for the plant.

    The acceleration is :func:`ring_accelerations` (its safety limits use ``params.dt``);
    ``u=None`` lets the AVs drive as noise-free humans (Flow's warm-up). ``gaps``: the gaps of
    ``x`` if already known.
    """
    n = params.n_vehicles
    v = x[..., n:]
    if type(x) is np.ndarray and x.ndim > 1:  # batches: fill one fresh array
        out = np.empty(x.shape, dtype=np.result_type(x, 1.0))
        out[..., :n] = v
        _limited(x, u, w, ring_length, params, gaps, out=out[..., n:])
        return out
    acc, _ = _limited(x, u, w, ring_length, params, gaps)
    if is_torch(x):
        import torch

        return torch.cat([v, acc], dim=-1)
    return np.concatenate((v, acc), axis=-1)


def _wrap_in_place(q, L, L2) -> None:
    """``q mod L`` in place (numpy floats), exactly, cheaply on big batches.

    Positions one step after ``[0, L)`` lie in ``[0, 2L)``, where ``q - L`` is exact
    (Sterbenz) and equals the remainder; anything else takes the remainder. ``L2`` is a number
    at most ``2 L`` (the shortest ring's, for a batch).
    """
    if q.ndim > 1 and q.min() >= 0.0 and q.max() < L2:
        np.subtract(q, L, out=q, where=q >= L)
    else:
        np.remainder(q, L, out=q)


def _post_numpy(x, n: int, L, L2):
    if x.ndim == 1:  # one ring: plain slices (an ellipsis index costs more on small arrays)
        np.remainder(x[:n], L, out=x[:n])
        v = x[n:]
        np.maximum(v, _ZERO64, out=v)
        return x
    _wrap_in_place(x[..., :n], L, L2)
    np.maximum(x[..., n:], 0.0, out=x[..., n:])
    return x


def ring_post_step(x, ring_length, params: Params, *, in_place: bool = False):
    """Speed clamp ``max(v, 0)`` and wrap of the positions to ``[0, L)`` after the integrator.

    ``in_place=True`` (numpy floats only; ignored otherwise) overwrites ``x``: for the fresh
    output of an integrator, as in the ring plant's ``step``.
    """
    n = params.n_vehicles
    L = ring_length if isinstance(ring_length, float) else _length_like(ring_length, x)
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return _post_numpy(x if in_place else x.copy(), n, L, 2.0 * float(np.min(L)))
    q = x[..., :n] % L
    v = _clamp_min(x[..., n:], 0.0)
    if is_torch(x):
        import torch

        return torch.cat([q, v], dim=-1)
    return np.concatenate([q, v], axis=-1)


def ring_step_info(x, x_next, u, params: Params):
    """What a step did: the accelerations applied and where the AVs' commands were cut.

    Parameters
    ----------
    x, x_next : ndarray, shape (..., 2N)
        States before and after ``plant.step``.
    u : ndarray, shape (..., n_av)
        The (saturated) AV commands, m/s^2.
    params : Params

    Returns
    -------
    accel : ndarray, shape (..., N)
        ``(v' - v)/dt``, m/s^2.
    failsafe : ndarray of bool, shape (..., n_av)
        True where the fail-safe or the no-overlap limit reduced the AV's command:
        ``v' < v + dt u``.
    """
    c = _consts(params)
    n = c.n
    if x.ndim == 1 and x_next.ndim == 1:
        v, v_next = x[n:], x_next[n:]
    else:
        v, v_next = x[..., n:], x_next[..., n:]
    applied = (v_next - v) * (c.inv_dt64 if v_next.dtype == np.float64 else c.inv_dt)
    if v.ndim == 1 and c.single_av:
        i = c.av0
        return applied, np.array([v_next.item(i) < v.item(i) + c.dt * u.item(0)])
    cols = c.av_cols
    return applied, _take_last(v_next, cols) < _take_last(v, cols) + c.dt * u


def ring_observation(x, ring_length, params: Params, *, gaps=None):
    """Observation of the ring state.

    ``params.observation == "partial"`` (Flow): for each AV
    ``[v/15, (v_lead - v)/15, gap/270]``, concatenated, shape ``(..., 3 n_av)``.
    ``"full"``: ``[v_0..v_{N-1}]/15`` then ``[gap_0..gap_{N-1}]/270``, shape ``(..., 2N)``.
    """
    c = _consts(params)
    n = c.n
    if gaps is None:
        gaps = ring_gaps(x[..., :n], ring_length, c.length)
    if type(x) is np.ndarray and x.ndim == 1:
        if c.single_av and params.observation == "partial" and x.dtype == np.float64:
            # one ring, one AV: its three numbers on Python floats (equal to the product below
            # up to its rounding)
            i = c.av0
            v_av, v_lead = x.item(n + i), x.item(n + (i + 1) % n)
            return np.array(
                [v_av / SPEED_SCALE, (v_lead - v_av) / SPEED_SCALE, gaps.item(i) / HEADWAY_SCALE]
            )
        return np.concatenate([x[n:], gaps]) @ c.obs_matrix  # one ring: one product
    # [v, gaps] @ obs_matrix, without joining v and the gaps of a batch first
    on_speeds, on_gaps = c.obs_on_speeds, c.obs_on_gaps
    if is_torch(x):
        on_speeds, on_gaps = _as(on_speeds, x), _as(on_gaps, x)
    elif type(x) is np.ndarray and x.dtype != on_speeds.dtype:
        on_speeds, on_gaps = on_speeds.astype(x.dtype), on_gaps.astype(x.dtype)
    return x[..., n:] @ on_speeds + gaps @ on_gaps


def ring_reward(speeds, av_actions):
    """Flow's wave-attenuation reward ``4 mean(v)/20 - 4 mean|a_av|`` (numpy or torch, batched).

    Parameters
    ----------
    speeds : ndarray or tensor, shape (..., N)
        m/s.
    av_actions : ndarray or tensor, shape (..., n_av)
        The (clipped) AV actions, m/s^2.

    Returns
    -------
    float, ndarray or tensor, shape (...)
        A Python float for one ring (1-D numpy ``speeds``).
    """
    if is_torch(speeds):  # the same weights as below, as tensors on the device (made once)
        n, n_av = speeds.shape[-1], av_actions.shape[-1]
        r = speeds @ _as(_mean_weights(n, 0.2, np.float64), speeds)
        if n_av:
            r = r - av_actions.abs() @ _as(_mean_weights(n_av, 4.0, np.float64), av_actions)
        return r
    n, n_av = speeds.shape[-1], av_actions.shape[-1]
    if speeds.ndim == 1:  # one ring: a Python float, cheapest from the sums
        r = 0.2 / n * sum(speeds.tolist())  # a Python sum: cheaper than numpy's on a ring
        return r - 4.0 / n_av * sum(map(abs, av_actions.tolist())) if n_av else r
    # batches: the means as products with constant weights, a matrix-vector product several
    # times faster than a reduction over a short last axis
    r = speeds @ _mean_weights(n, 0.2, speeds.dtype)
    if n_av:
        r = r - np.abs(av_actions) @ _mean_weights(n_av, 4.0, av_actions.dtype)
    return r


_WEIGHTS: dict[tuple, np.ndarray] = {}


def _mean_weights(n: int, scale: float, dtype) -> np.ndarray:
    """``scale * mean`` over a last axis of size ``n`` as weights ``full(n, scale / n)``."""
    key = (n, scale, dtype)
    weights = _WEIGHTS.get(key)
    if weights is None:
        weights = _WEIGHTS[key] = np.full(n, scale / n, dtype=dtype)
        weights.flags.writeable = False
    return weights


_BOX_MULLER_MIN = 512  # draws at least this big use the Box-Muller transform (see below)
_TWO_PI = np.float32(2.0 * math.pi)
_TWO_TO_MINUS_32 = np.float32(2.0**-32)


def standard_normal_float32(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` independent standard normal draws in float32, shape ``(size,)``.

    Below ``512`` draws this is ``rng.standard_normal(size, dtype=np.float32)`` (numpy's
    ziggurat). From 512 on it is the Box-Muller transform of 32-bit words of the generator's raw
    output, about 3.5 times faster on large batches: with ``u = (k + 1) 2^-32`` and
    ``phi = 2 pi j 2^-32`` for independent uniform 32-bit integers ``k, j``, the pair
    ``sqrt(-2 ln u) (cos phi, sin phi)`` is two independent N(0, 1) draws, exact up to float32
    rounding and to the cut-off of the tails at ``sqrt(64 ln 2) = 6.66`` (probability 3e-11).
    Both consume ``rng`` deterministically: the same seed gives the same draws.
    """
    if size < _BOX_MULLER_MIN:
        return rng.standard_normal(size, dtype=np.float32)
    half = (size + 1) // 2
    words = rng.bit_generator.random_raw(half).view(np.uint32).astype(np.float32)
    words[:half] += np.float32(1.0)
    words *= _TWO_TO_MINUS_32  # u in (0, 1] for the radii, then the fractions of a turn
    radius = np.sqrt(np.float32(-2.0) * np.log(words[:half]))
    phase = words[half:]
    phase *= _TWO_PI
    z = np.empty(2 * half, dtype=np.float32)
    np.multiply(radius, np.cos(phase), out=z[:half])
    np.multiply(radius, np.sin(phase), out=z[half:])
    return z[:size]


def acceleration_noise(
    rng: np.random.Generator, params: Params, shape=(), dtype=np.float64
) -> np.ndarray | None:
    """Draw Flow's human acceleration noise ``sqrt(dt) N(0, noise)``, shape ``(*shape, N)``.

    Returns ``None`` when ``params.noise == 0`` (no draw, nothing consumed from ``rng``). The
    normal draws are :func:`standard_normal_float32` (float32, as precise as the noise needs and
    faster to draw), scaled in ``dtype`` (m/s^2).

    ``rng`` may also be a :class:`~neuroctl.envs._common.TorchRandom` (a ``torch.Generator`` on
    a device): the draws are then one ``torch.randn(*shape, N)`` in float32 on its device,
    scaled in ``dtype`` (a torch dtype; a numpy one names the torch dtype of the same name),
    and a tensor is returned.
    """
    if params.noise == 0:
        return None
    n = params.n_vehicles
    if not isinstance(rng, np.random.Generator):
        import torch

        if not isinstance(dtype, torch.dtype):
            dtype = getattr(torch, np.dtype(dtype).name)
        draw = rng.standard_normal((*shape, n), dtype=torch.float32)
        return draw.to(dtype) * (math.sqrt(params.dt) * params.noise)
    if shape:
        draw = standard_normal_float32(rng, math.prod(shape) * n).reshape(*shape, n)
    else:  # one ring (every step of a single env): no reshaping
        draw = standard_normal_float32(rng, n)
    return np.multiply(draw, math.sqrt(params.dt) * params.noise, dtype=dtype)


class _NoiseBlocks:
    """Per-step noise of one ring, drawn from ``rng`` for ``block`` steps at a time.

    The rows handed out (shape ``(N,)``, m/s^2, read-only) are the very numbers that calling
    ``acceleration_noise(rng, params)`` once per step gives: numpy's float32 normal draws come
    off the generator one after the other, so ``block`` draws of ``N`` equal one draw of
    ``block * N`` (rows below 512 draws, the ziggurat branch of
    :func:`standard_normal_float32`). Only the generator's state in between differs: it is
    ahead by the rows not yet used. One call per block instead of one per step is what the
    single environment saves.
    """

    __slots__ = ("rng", "_scale", "_n", "_block", "_rows", "_next")

    def __init__(self, rng: np.random.Generator, params: Params, block: int = 128):
        n = params.n_vehicles
        if n >= _BOX_MULLER_MIN:
            block = 1  # acceleration_noise takes the Box-Muller branch: draw row by row
        self.rng, self._n, self._block = rng, n, block
        self._scale = math.sqrt(params.dt) * params.noise
        self._rows: Any = None
        self._next = block

    def __call__(self) -> np.ndarray:
        """The next step's noise, shape ``(N,)`` float64, m/s^2."""
        i = self._next
        if i == self._block:
            if self._block == 1:
                draw = standard_normal_float32(self.rng, self._n)[None]
            else:
                draw = self.rng.standard_normal((self._block, self._n), dtype=np.float32)
            self._rows = np.multiply(draw, self._scale, dtype=np.float64)
            self._rows.flags.writeable = False
            i = 0
        self._next = i + 1
        return self._rows[i]


# ---------------------------------------------------------------------------- the plant
class GapCache:
    """The gaps of one state array, kept by an environment for its ring plant's next step.

    An environment computes the gaps of every new state for its observation; a plant built with
    ``ring_plant(..., gap_cache=cache)`` reuses them in its next ``rhs`` when it is handed that
    very array (``cache.state``), instead of computing them again. The owner updates
    ``state`` and ``gaps`` together and never writes into ``state`` in place.
    """

    __slots__ = ("state", "gaps")

    def __init__(self) -> None:
        self.state: Any = None
        self.gaps: Any = None

    def set(self, state, gaps) -> None:
        """Remember ``gaps`` (shape ``(..., N)``) as the gaps of the array ``state``."""
        self.state, self.gaps = state, gaps


def ring_plant(
    params: Params | None = None, ring_length: Any = None, *, gap_cache: GapCache | None = None
) -> Plant:
    """The ring road as a :class:`neuroctl.Plant`.

    Parameters
    ----------
    params : Params, optional
    ring_length : float, array or tensor, shape (...,), optional
        Ring length(s) in metres; an array gives one length per batch member (states of shape
        ``(..., 2N)``), or per car (shape ``(..., N)``, as many dimensions as the states: the
        cheapest layout for a batched step). A floating array keeps its dtype. A tensor keeps
        its device: the plant then steps tensors on that device without copying the lengths
        (its construction checks them on the host once). Defaults to ``params.ring_length`` if
        fixed, else 230 m.
    gap_cache : GapCache, optional
        For an environment: the gaps it computed for its current state, reused by ``rhs``.

    Returns
    -------
    Plant
        States ``q[i]`` then ``v[i]`` (2N), inputs ``a_av[k]`` (n_av, bounds
        ``params.accel_bounds``), disturbances ``w[i]`` (N, human acceleration noise),
        observation :func:`ring_observation`; ``rhs`` = :func:`ring_rhs` integrated with
        ``semi_implicit_euler``, ``post_step`` = :func:`ring_post_step` (so ``step`` is SUMO's
        Euler update). Its analysis facts: ``equilibrium()`` is uniform flow with car 0 at
        position 0, a *relative* equilibrium along ``invariants`` (the common shift of all
        positions: every car moves at the equilibrium speed); ``controllers`` the classical AV
        controllers (:func:`~neuroctl.envs.ring_road.controllers.ring_controllers`; one ring
        length only); ``metrics`` :func:`ring_trajectory_metrics`.
    """
    p = Params() if params is None else params
    if not isinstance(p, Params):
        raise TypeError(f"params: expected a ring_road Params, received {p!r}")
    if ring_length is None:
        ring_length = p.ring_length if not isinstance(p.ring_length, tuple) else 230.0
    if is_torch(ring_length):  # lengths on a device: the plant steps states on that device
        L = ring_length if ring_length.is_floating_point() else ring_length.double()
        bad = bool((~L.isfinite() | (L <= p.n_vehicles * p.vehicle_length)).any())
    else:
        L = np.asarray(ring_length)
        if L.dtype.kind != "f":
            L = L.astype(float)
        bad = not np.all(np.isfinite(L)) or np.any(L <= p.n_vehicles * p.vehicle_length)
    if bad:
        raise ValueError(
            f"ring_length: expected lengths > {p.n_vehicles * p.vehicle_length:g} m for "
            f"{p.n_vehicles} cars of {p.vehicle_length} m, received {ring_length!r}"
        )
    L_arg = float(L) if L.ndim == 0 else L
    n = p.n_vehicles

    def rhs(x, u, w):
        # the gaps an environment already computed for its current state (see GapCache)
        known = gap_cache.gaps if gap_cache is not None and x is gap_cache.state else None
        return ring_rhs(x, u, w, L_arg, p, gaps=known)

    # per (dtype, ndim) of numpy states: the lengths in their dtype and layout and twice the
    # shortest (a 0-d array for one length: the same remainder, cheaper than a Python float),
    # or None where the general ring_post_step applies
    in_place: dict[tuple, Any] = {}

    def post(x):  # on the integrator's fresh output
        if type(x) is np.ndarray:
            key = (x.dtype, x.ndim)
            lengths = in_place.get(key, False)
            if lengths is False:
                lengths = None
                if x.dtype.kind == "f" and L.ndim in (0, x.ndim) and not is_torch(L):
                    L_x = L.astype(x.dtype)
                    lengths = in_place[key] = (L_x, 2.0 * float(np.min(L_x)))
                in_place[key] = lengths
            if lengths is not None:
                return _post_numpy(x, n, *lengths)
        return ring_post_step(x, L_arg, p)

    def observe(x):
        return ring_observation(x, L_arg, p)

    def equilibrium(r):
        if L.ndim:
            raise ValueError("equilibrium: defined for a plant with one ring length")
        gap, speed = uniform_flow_equilibrium(p, ring_length=float(L))
        spacing = float(L) / n
        x = np.concatenate([np.arange(n) * spacing, np.full(n, float(speed))])
        return x, np.zeros(p.n_av)

    def metrics(states, inputs, r):
        if L.ndim:
            raise ValueError("metrics: defined for a plant with one ring length")
        return ring_trajectory_metrics(states, float(L), p)

    controllers = None
    if not L.ndim:  # the FollowerStopper's target speed depends on the (one) ring length
        from .controllers import ring_controllers

        controllers = ring_controllers(p, float(L))

    n_out = 2 * n if p.observation == "full" else 3 * p.n_av
    if p.observation == "full":
        outputs = [f"v[{i}]/15" for i in range(n)] + [f"gap[{i}]/270" for i in range(n)]
    else:
        outputs = [
            name
            for k in range(p.n_av)
            for name in (f"v_av[{k}]/15", f"dv_av[{k}]/15", f"gap_av[{k}]/270")
        ]
    assert len(outputs) == n_out
    lo, hi = p.accel_bounds
    return Plant(
        states=[f"q[{i}]" for i in range(n)] + [f"v[{i}]" for i in range(n)],
        inputs=[f"a_av[{k}]" for k in range(p.n_av)],
        dt=p.dt,
        rhs=rhs,
        integrator="semi_implicit_euler",
        input_lower=lo,
        input_upper=hi,
        observe=observe,
        outputs=outputs,
        disturbances=[f"w[{i}]" for i in range(n)],
        equilibrium=equilibrium,
        post_step=post,
        batch_shape=tuple(L.shape),
        name="ring_road",
        params=p,
        invariants=np.concatenate([np.ones(n), np.zeros(n)]),
        controllers=controllers,
        metrics=metrics,
    )
