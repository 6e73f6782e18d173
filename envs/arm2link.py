"""Two-link planar reaching arm (Li & Todorov 2004): ``neuroctl/Arm2Link-v0``.

``M(q) q̈ + C(q, q̇) q̇ + B q̇ + G(q) = τ`` with

* ``M(q) = [[a1 + 2 a2 cos q2, a3 + a2 cos q2], [a3 + a2 cos q2, a3]]``,
  ``a1 = I1 + I2 + m2 l1²``, ``a2 = m2 l1 s2``, ``a3 = I2`` (Li & Todorov 2004);
* ``C(q, q̇) q̇ = a2 sin q2 [−q̇2 (2 q̇1 + q̇2), q̇1²]``;
* ``B`` the joint friction matrix;
* ``G(q) = g [(m1 s1 + m2 l1) sin q1 + m2 s2 sin(q1 + q2), m2 s2 sin(q1 + q2)]`` when the arm
  moves in a vertical plane (``gravity != 0``; ``q1`` measured from the hanging-down position,
  ``q2`` relative to the first link). The default is the horizontal plane of Li & Todorov
  (``gravity = 0``).

``M q̈ = h`` is solved in closed form (the 2×2 inverse written out), so one array-agnostic
function runs on numpy and on torch (batched, differentiable).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from neuroctl._array import as_like, namespace, stack, unstack
from neuroctl._json import json_dict
from neuroctl.controllers import linear_controller
from neuroctl.plant import INTEGRATORS, Plant

from ._common import (
    EnvModel,
    PlantEnv,
    PlantVectorEnv,
    check_options,
    draw_segments,
    make_params,
    option_array,
    reach_metrics,
)
from .arm import _finite

__all__ = [
    "Arm2LinkParams",
    "arm2link_mass_matrix",
    "arm2link_gravity",
    "arm2link_rhs",
    "arm2link_observe",
    "arm2link_reward",
    "arm2link_kinetic_energy",
    "arm2link_equilibrium",
    "arm2link_speed_limit",
    "arm2link_plant",
    "pd_gravity_controller",
    "Arm2LinkEnv",
    "Arm2LinkVectorEnv",
]


def _pair(name: str, value) -> tuple[float, float]:
    arr = np.asarray(value, dtype=float) if not isinstance(value, str) else None
    if arr is None or arr.shape not in ((), (2,)):
        raise ValueError(f"{name}: expected a number or a pair of numbers, received {value!r}")
    arr = np.broadcast_to(arr, (2,))
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite numbers, received {value!r}")
    return (float(arr[0]), float(arr[1]))


@dataclass(frozen=True)
class Arm2LinkParams:
    """Parameters of the two-link arm (SI units; defaults from Li & Todorov 2004).

    Parameters
    ----------
    m1, m2 : float
        Link masses [kg], > 0.
    l1, l2 : float
        Link lengths [m], > 0.
    s1, s2 : float
        Distances from each joint to the link's centre of mass [m], >= 0.
    I1, I2 : float
        Link moments of inertia [kg m²], > 0, as used in ``M(q)`` of Li & Todorov.
    friction : 2×2 nested tuple
        Joint friction matrix ``B`` [N m s/rad], symmetric positive semi-definite.
    gravity : float
        Gravitational acceleration [m/s²] in the plane of motion; 0 (default) is the horizontal
        plane of Li & Todorov.
    max_torque : float or pair
        Torque limit of each joint [N m], > 0.
    max_speed : float or pair
        Speed limit of each joint [rad/s], > 0 (default 10, about the peak joint speed of a
        fast human reach or a robot arm's rated limit; the shipped policy stays below 3).
        ``plant.step`` clips the joint speeds to it after the integrator, as Gymnasium's
        Pendulum clips its speed; ``inf`` lifts it (with semi-implicit Euler the positions then
        move with the clipped speeds, exactly as there). Without it random torques spin the arm
        up until the Coriolis terms overflow.
    dt : float
        Sample time [s].
    target_low, target_high : pair
        Range [rad] of the target joint angles ``(q1, q2)`` drawn at reset.
    home : pair
        Centre [rad] of the initial joint angles.
    init_angle, init_velocity : float
        Half-widths of the uniform initial angles [rad] (around ``home``) and velocities [rad/s].
    integrator : {"semi_implicit_euler", "rk4", "euler"}
        Integrator of ``plant.step`` (default semi-implicit Euler).
    """

    m1: float = 1.4
    m2: float = 1.1
    l1: float = 0.30
    l2: float = 0.33
    s1: float = 0.11
    s2: float = 0.16
    I1: float = 0.025
    I2: float = 0.045
    friction: tuple = ((0.05, 0.025), (0.025, 0.05))
    gravity: float = 0.0
    max_torque: tuple = (10.0, 10.0)
    max_speed: tuple = (10.0, 10.0)
    dt: float = 0.02
    target_low: tuple = (-0.5, 0.3)
    target_high: tuple = (1.5, 2.3)
    home: tuple = (0.5, 1.3)
    init_angle: float = 0.1
    init_velocity: float = 0.1
    integrator: str = "semi_implicit_euler"
    a1: float = field(init=False, repr=False, compare=False)
    a2: float = field(init=False, repr=False, compare=False)
    a3: float = field(init=False, repr=False, compare=False)
    g1: float = field(init=False, repr=False, compare=False)
    g2: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        setattr_ = object.__setattr__
        for name in ("m1", "m2", "l1", "l2", "I1", "I2", "dt"):
            setattr_(self, name, _finite(name, getattr(self, name), positive=True))
        for name in ("s1", "s2", "init_angle", "init_velocity"):
            setattr_(self, name, _finite(name, getattr(self, name), nonnegative=True))
        setattr_(self, "gravity", _finite("gravity", self.gravity))
        if self.s1 > self.l1 or self.s2 > self.l2:
            raise ValueError(
                "s1, s2: expected each centre of mass on its link (s1 <= l1, s2 <= l2), received "
                f"s1={self.s1}, l1={self.l1}, s2={self.s2}, l2={self.l2}"
            )
        b = np.asarray(self.friction, dtype=float) if not isinstance(self.friction, str) else None
        if b is None or b.shape != (2, 2) or not np.isfinite(b).all():
            raise ValueError(
                f"friction: expected a finite 2×2 matrix B, received {self.friction!r}"
            )
        if b[0, 1] != b[1, 0] or np.linalg.eigvalsh(b).min() < -1e-12:
            raise ValueError(
                "friction: expected a symmetric positive semi-definite matrix B, received "
                f"{b.tolist()} (eigenvalues {np.linalg.eigvals(b).tolist()})"
            )
        setattr_(self, "friction", tuple(map(tuple, b.tolist())))
        torque = _pair("max_torque", self.max_torque)
        if min(torque) <= 0:
            raise ValueError(f"max_torque: expected values > 0, received {self.max_torque!r}")
        setattr_(self, "max_torque", torque)
        # inf (no limit) is allowed: the plant is then its ODE, with no clamp after the step
        given = self.max_speed
        raw = np.asarray(given, dtype=float) if not isinstance(given, str) else None
        if raw is None or raw.shape not in ((), (2,)) or np.isnan(raw).any() or (raw <= 0).any():
            raise ValueError(
                "max_speed: expected a number or a pair of numbers > 0 (inf: no limit), received "
                f"{self.max_speed!r}"
            )
        speed = tuple(float(v) for v in np.broadcast_to(raw, (2,)))
        setattr_(self, "max_speed", speed)
        for name in ("target_low", "target_high", "home"):
            setattr_(self, name, _pair(name, getattr(self, name)))
        if any(lo > hi for lo, hi in zip(self.target_low, self.target_high)):
            raise ValueError(
                "target_low, target_high: expected target_low <= target_high per joint, received "
                f"{self.target_low} and {self.target_high}"
            )
        if self.integrator not in INTEGRATORS:
            raise ValueError(
                f"integrator: expected one of {sorted(INTEGRATORS)}, received {self.integrator!r}"
            )
        setattr_(self, "a1", self.I1 + self.I2 + self.m2 * self.l1**2)
        setattr_(self, "a2", self.m2 * self.l1 * self.s2)
        setattr_(self, "a3", self.I2)
        setattr_(self, "g1", self.gravity * (self.m1 * self.s1 + self.m2 * self.l1))
        setattr_(self, "g2", self.gravity * self.m2 * self.s2)

    @property
    def gravity_matrix(self) -> np.ndarray:
        """``Γ`` with ``G(q) = Γ [sin q1, sin(q1 + q2)]``, shape (2, 2) [N m]."""
        return np.array([[self.g1, self.g2], [0.0, self.g2]])

    @json_dict
    def to_dict(self) -> dict:
        """The init parameters as a plain dict."""
        d = asdict(self)
        for k in ("a1", "a2", "a3", "g1", "g2"):
            d.pop(k)
        return d


# ------------------------------------------------------------------------------- physics
def arm2link_mass_matrix(q, params: Arm2LinkParams):
    """Inertia matrix ``M(q)``, shape ``(..., 2, 2)`` [kg m²], for joint angles ``(..., 2)``."""
    xp = namespace(q)
    c2 = xp.cos(q[..., 1])
    m11 = params.a1 + 2.0 * params.a2 * c2
    m12 = params.a3 + params.a2 * c2
    m22 = params.a3 + 0.0 * c2
    row1 = xp.stack([m11, m12], axis=-1)
    row2 = xp.stack([m12, m22], axis=-1)
    return xp.stack([row1, row2], axis=-2)


def arm2link_gravity(q, params: Arm2LinkParams):
    """Gravity torque ``G(q)``, shape ``(..., 2)`` [N m]."""
    xp = namespace(q)
    s1 = xp.sin(q[..., 0])
    s12 = xp.sin(q[..., 0] + q[..., 1])
    return xp.stack([params.g1 * s1 + params.g2 * s12, params.g2 * s12], axis=-1)


def arm2link_rhs(x, u, params: Arm2LinkParams):
    """Continuous dynamics ``dx/dt`` of the two-link arm.

    Solves ``M(q) q̈ = τ − C(q, q̇) q̇ − B q̇ − G(q)`` with the 2×2 inverse written out.

    Parameters
    ----------
    x : array or tensor, shape (..., 4)
        ``[q1, q2 (rad), q̇1, q̇2 (rad/s)]``.
    u : array or tensor, shape (..., 2)
        Joint torques [N m] (used as given; ``plant.step`` saturates).
    params : Arm2LinkParams

    Returns
    -------
    array or tensor, shape (..., 4)
    """
    xp = namespace(x, u)
    q1, q2, w1, w2 = unstack(x)
    tau1, tau2 = unstack(u)
    a1, a2, a3 = params.a1, params.a2, params.a3
    (b11, b12), (b21, b22) = params.friction
    c2, s2 = xp.cos(q2), xp.sin(q2)
    m11 = a1 + 2.0 * a2 * c2
    m12 = a3 + a2 * c2
    m22 = a3
    h1 = tau1 + a2 * s2 * w2 * (2.0 * w1 + w2) - b11 * w1 - b12 * w2
    h2 = tau2 - a2 * s2 * w1 * w1 - b21 * w1 - b22 * w2
    if params.gravity != 0.0:
        s12 = xp.sin(q1 + q2)
        h1 = h1 - params.g1 * xp.sin(q1) - params.g2 * s12
        h2 = h2 - params.g2 * s12
    det = m11 * m22 - m12 * m12
    acc1 = (m22 * h1 - m12 * h2) / det
    acc2 = (m11 * h2 - m12 * h1) / det
    return stack([w1, w2, acc1, acc2], like=x)


def arm2link_kinetic_energy(x, params: Arm2LinkParams):
    """Kinetic energy ``½ q̇ᵀ M(q) q̇`` [J], shape ``(...)``."""
    xp = namespace(x)
    c2 = xp.cos(x[..., 1])
    w1, w2 = x[..., 2], x[..., 3]
    m11 = params.a1 + 2.0 * params.a2 * c2
    m12 = params.a3 + params.a2 * c2
    return 0.5 * (m11 * w1 * w1 + 2.0 * m12 * w1 * w2 + params.a3 * w2 * w2)


def arm2link_observe(x, r):
    """Observation ``[e1, e2, q̇1, q̇2, sin q1, sin(q1 + q2)]``, shape ``(..., 6)``.

    ``e = r − q``; the last two entries are the terms the gravity torque is linear in.
    """
    xp = namespace(x, r)
    q1, q2, w1, w2 = unstack(x)
    r1, r2 = unstack(r)
    return stack([r1 - q1, r2 - q2, w1, w2, xp.sin(q1), xp.sin(q1 + q2)], like=x)


def arm2link_reward(x, u, r):
    """Reward ``−(|e|² + 0.1 |q̇|² + 0.001 |τ|²)``, shape ``(...)``."""
    q1, q2, w1, w2 = unstack(x)
    r1, r2 = unstack(r)
    t1, t2 = unstack(u)
    e1, e2 = r1 - q1, r2 - q2
    return -(e1 * e1 + e2 * e2 + 0.1 * (w1 * w1 + w2 * w2) + 0.001 * (t1 * t1 + t2 * t2))


def arm2link_equilibrium(r, params: Arm2LinkParams):
    """State ``[r, 0, 0]`` and torque ``G(r)`` holding the arm at rest at joint angles ``r``."""
    r = np.asarray(r, dtype=float).reshape(2)
    return np.concatenate([r, [0.0, 0.0]]), np.asarray(arm2link_gravity(r, params))


def arm2link_speed_limit(x, params: Arm2LinkParams):
    """The joint-speed limit applied after each integrator step (``post_step`` of the plant).

    Clips ``q̇`` to ``±max_speed``. With semi-implicit Euler (the default) the step moved the
    angles with the new speeds, so they are moved back by ``dt (q̇ − clip(q̇))``: the angles then
    move with the clipped speeds, as in Gymnasium's Pendulum. Inside the limits ``x`` is returned
    unchanged.

    Parameters
    ----------
    x : array or tensor, shape (..., 4)
        ``[q1, q2, q̇1, q̇2]`` after the integrator.
    params : Arm2LinkParams

    Returns
    -------
    array or tensor, shape (..., 4)
    """
    s1, s2 = params.max_speed
    move_back = params.integrator == "semi_implicit_euler"
    dt = params.dt
    q1, q2, w1, w2 = unstack(x)
    if type(w1) is float:  # one state of a single env: Python floats, nothing to do inside
        if -s1 <= w1 <= s1 and -s2 <= w2 <= s2:
            return x
        c1, c2 = min(max(w1, -s1), s1), min(max(w2, -s2), s2)
    else:
        xp = namespace(x)
        c1, c2 = xp.clip(w1, -s1, s1), xp.clip(w2, -s2, s2)
    if move_back:
        q1, q2 = q1 - dt * (w1 - c1), q2 - dt * (w2 - c2)
    return stack([q1, q2, c1, c2], like=x)


def arm2link_plant(params: Arm2LinkParams | None = None) -> Plant:
    """The two-link arm as a :class:`neuroctl.Plant`.

    Returns
    -------
    Plant
        States ``["q1", "q2", "dq1", "dq2"]``, inputs ``["tau1", "tau2"]`` bounded by
        ``±max_torque``, references ``["target1", "target2"]``, outputs
        ``["e1", "e2", "dq1", "dq2", "sin_q1", "sin_q12"]``. ``rhs`` is the unconstrained
        continuous model; ``step`` adds the speed limit :func:`arm2link_speed_limit`.
    """
    params = Arm2LinkParams() if params is None else params
    if not isinstance(params, Arm2LinkParams):
        raise TypeError(f"params: expected Arm2LinkParams, received {type(params).__name__}")

    def rhs(x, u):
        return arm2link_rhs(x, u, params)

    def equilibrium(r):
        return arm2link_equilibrium(r, params)

    def speed_limit(x):
        return arm2link_speed_limit(x, params)

    torque = np.asarray(params.max_torque)
    return Plant(
        states=["q1", "q2", "dq1", "dq2"],
        inputs=["tau1", "tau2"],
        dt=params.dt,
        rhs=rhs,
        integrator=params.integrator,
        input_lower=-torque,
        input_upper=torque,
        observe=arm2link_observe,
        outputs=["e1", "e2", "dq1", "dq2", "sin_q1", "sin_q12"],
        references=["target1", "target2"],
        nominal_reference=np.asarray(params.home),
        equilibrium=equilibrium,
        # no projection when the speeds are unlimited: the plant is then its ODE (continuous-time
        # verification applies); with a limit, its step is a clamped map (discrete semantics)
        post_step=speed_limit if np.isfinite(params.max_speed).any() else None,
        name="arm2link",
        controllers={
            "pd": ("PD with gravity compensation", lambda plant: pd_gravity_controller(params)),
            "zero": ("no torque", lambda plant: None),
        },
        metrics=reach_metrics,
        params=params,
    )


def pd_gravity_controller(params: Arm2LinkParams | None = None, *, kp=5.0, kd=1.0):
    """PD with gravity compensation ``τ = Kp e − Kd q̇ + G(q)`` as one ``nn.Linear``.

    Acting on ``y = [e1, e2, q̇1, q̇2, sin q1, sin(q1 + q2)]``.

    Parameters
    ----------
    params : Arm2LinkParams, optional
    kp, kd : float or array_like (2, 2)
        Proportional [N m/rad] and derivative [N m s/rad] gains (scalars mean ``k I``).

    Returns
    -------
    torch.nn.Linear
        ``6 -> 2``, float64, frozen.
    """
    params = Arm2LinkParams() if params is None else params

    def gain(name, k):
        k = np.asarray(k, dtype=float)
        if k.shape == ():
            k = k * np.eye(2)
        if k.shape != (2, 2) or not np.isfinite(k).all():
            raise ValueError(f"{name}: expected a finite number or 2×2 matrix, received {k!r}")
        return k

    kp, kd = gain("kp", kp), gain("kd", kd)
    return linear_controller(np.hstack([kp, -kd, params.gravity_matrix]))


# ------------------------------------------------------------------------------- env
def _arm2link_model(params: Arm2LinkParams) -> EnvModel:
    plant = arm2link_plant(params)
    home = np.asarray(params.home)
    lo, hi = np.asarray(params.target_low), np.asarray(params.target_high)

    def sample(rng, n, options):
        check_options(options, ("angle", "velocity", "target"))
        q = rng.uniform(-params.init_angle, params.init_angle, size=(n, 2))
        q = q + as_like(home, q)
        w = rng.uniform(-params.init_velocity, params.init_velocity, size=(n, 2))
        target = rng.uniform(lo, hi, size=(n, 2))
        q = option_array(options, "angle", q)
        w = option_array(options, "velocity", w)
        target = option_array(options, "target", target)
        return stack([*unstack(q), *unstack(w)], like=q), target

    extent = 1.15 * (params.l1 + params.l2)

    def points(q1, q2):
        # q1 from the downward vertical (matters only with gravity), q2 relative to link 1
        elbow = (params.l1 * math.sin(q1), -params.l1 * math.cos(q1))
        hand = (
            elbow[0] + params.l2 * math.sin(q1 + q2),
            elbow[1] - params.l2 * math.cos(q1 + q2),
        )
        return elbow, hand

    def draw(x, r):
        elbow, hand = points(float(x[0]), float(x[1]))
        g_elbow, g_hand = points(float(r[0]), float(r[1]))
        o = (0.0, 0.0)
        red, blue = (230, 90, 90), (40, 70, 160)
        return draw_segments(
            [
                (o, g_elbow, 0.015 * extent, red),
                (g_elbow, g_hand, 0.015 * extent, red),
                (o, elbow, 0.06 * extent, blue),
                (elbow, hand, 0.05 * extent, blue),
                (elbow, elbow, 0.08 * extent, (90, 90, 90)),
                (o, o, 0.1 * extent, (90, 90, 90)),
            ],
            extent=extent,
        )

    inf = np.inf
    return EnvModel(
        plant=plant,
        reward=arm2link_reward,
        sample=sample,
        draw=draw,
        obs_low=np.array([-inf, -inf, -params.max_speed[0], -params.max_speed[1], -1.0, -1.0]),
        obs_high=np.array([inf, inf, params.max_speed[0], params.max_speed[1], 1.0, 1.0]),
        render_fps=max(1, round(1.0 / params.dt)),
    )


_ENV_DOC = """

    Description
    -----------
    A two-link planar arm (shoulder and elbow) with the parameters of Li & Todorov (2004),
    driven by two joint torques::

        M(q) q̈ + C(q, q̇) q̇ + B q̇ + G(q) = τ

    (full inertia matrix, Coriolis and centrifugal terms, joint friction ``B``; gravity only with
    ``gravity != 0``, default 0: horizontal plane). ``q1`` is the shoulder angle (from the
    hanging-down direction when gravity acts), ``q2`` the elbow angle relative to the upper arm.
    Each episode has target joint angles; the task is to reach and hold them. The physics is
    ``env.unwrapped.plant`` (see :func:`arm2link_plant`); each step calls ``plant.step`` once
    (default semi-implicit Euler).

    Action space
    ------------
    ``Box(-max_torque, max_torque, (2,), float32)``

    | Num | Action          | Min            | Max           | Unit |
    |-----|-----------------|----------------|---------------|------|
    | 0   | shoulder torque | -max_torque[0] | max_torque[0] | N m  |
    | 1   | elbow torque    | -max_torque[1] | max_torque[1] | N m  |

    Actions outside the box are clipped; a non-finite action raises ``ValueError``.

    Observation space
    -----------------
    ``Box(float32)`` of shape ``(6,)``:

    | Num | Observation               | Min  | Max | Unit  |
    |-----|---------------------------|------|-----|-------|
    | 0   | shoulder error ``r1 − q1``| -inf | inf | rad   |
    | 1   | elbow error ``r2 − q2``   | -inf | inf | rad   |
    | 2   | shoulder velocity         | -max_speed[0] | max_speed[0] | rad/s |
    | 3   | elbow velocity            | -max_speed[1] | max_speed[1] | rad/s |
    | 4   | ``sin q1``                | -1   | 1   |       |
    | 5   | ``sin(q1 + q2)``          | -1   | 1   |       |

    The gravity torque is linear in entries 4 and 5, so PD with gravity compensation is one
    ``nn.Linear`` (:func:`pd_gravity_controller`).

    Reward
    ------
    ``−(|e|² + 0.1 |q̇|² + 0.001 |τ|²)`` on the state before the step and the applied torques.

    Starting state
    --------------
    ``q ~ home + U(−init_angle, init_angle)`` per joint (home ``(0.5, 1.3)`` rad),
    ``q̇ ~ U(−init_velocity, init_velocity)``, targets ``~ U(target_low, target_high)``
    (defaults ``(−0.5, 0.3)`` to ``(1.5, 2.3)`` rad). Override with
    ``reset(options={"angle": (2,), "velocity": (2,), "target": (2,)})`` (arrays of shape
    ``(num_envs, 2)`` for the vector env); another key raises ``ValueError`` naming the accepted
    ones.

    Episode end
    -----------
    No termination; truncation after 150 steps (3 s at ``dt = 0.02``). The joint speeds are
    limited to ``±max_speed`` (default 10 rad/s; :func:`arm2link_speed_limit`), so random torques
    keep the state finite; should a step still produce a non-finite state, observation or reward,
    it raises ``FloatingPointError`` (never returns it).

    Arguments
    ---------
    ``gymnasium.make("neuroctl/Arm2Link-v0", render_mode=None, **Arm2LinkParams fields)``, e.g.
    ``gravity=9.81`` for a vertical plane, ``max_torque=(10, 10)``, ``max_speed=(10, 10)``,
    ``dt=0.02``; or
    ``params=Arm2LinkParams(...)``. Unknown keywords raise ``TypeError``.
    ``render_mode="rgb_array"`` returns a ``(256, 256, 3)`` uint8 image drawn with numpy.
    Batched: ``gymnasium.make_vec("neuroctl/Arm2Link-v0", num_envs=N,
    vectorization_mode="vector_entry_point")`` (:class:`Arm2LinkVectorEnv`).

    Version history
    ---------------
    * v0: initial version; the joint-speed limit ``max_speed`` was added after random torques
      drove the unlimited arm to infinite speeds.
"""


class Arm2LinkEnv(PlantEnv):
    """Two-link planar reaching arm (``neuroctl/Arm2Link-v0``)."""

    def __init__(
        self, render_mode: str | None = None, *, params: Arm2LinkParams | None = None, **kw
    ):
        params = make_params(Arm2LinkParams, params, kw)
        self._setup(_arm2link_model(params), params, render_mode)


class Arm2LinkVectorEnv(PlantVectorEnv):
    """``num_envs`` copies of :class:`Arm2LinkEnv` stepped in one array operation."""

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = 150,
        render_mode: str | None = None,
        params: Arm2LinkParams | None = None,
        device=None,
        dtype: str = "float64",
        array: str | None = None,
        **kw,
    ):
        params = make_params(Arm2LinkParams, params, kw)
        self._setup(
            _arm2link_model(params), params, num_envs, max_episode_steps, render_mode,
            device, dtype, array,
        )


Arm2LinkEnv.__doc__ += _ENV_DOC
