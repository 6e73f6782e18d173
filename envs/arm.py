"""A single rigid link driven by a joint torque: ``neuroctl/Arm-v0``.

The physics is written once as pure, array-namespace agnostic functions (numpy for the fast single
environment, torch for batched and differentiable use):

``I θ̈ = u − b θ̇ − m g (l/2) sin θ``,  ``I = m l²/3`` (uniform rod about its pivot),

with ``θ`` measured from the hanging-down position. The state is ``x = [θ, ω]``, the reference is
``r = [target]`` and the observation is ``y = [target − θ, ω, sin θ, cos θ]``, so that PD with
gravity compensation ``u = kp e − kd ω + m g (l/2) sin θ`` is a single ``nn.Linear`` on ``y``
(:func:`pd_gravity_controller`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from neuroctl._array import namespace, stack, unstack
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

__all__ = [
    "ArmParams",
    "arm_rhs",
    "arm_observe",
    "arm_reward",
    "arm_equilibrium",
    "arm_plant",
    "pd_gravity_controller",
    "ArmEnv",
    "ArmVectorEnv",
]


def _finite(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, received {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, received {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name}: expected a number > 0, received {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name}: expected a number >= 0, received {value!r}")
    return value


@dataclass(frozen=True)
class ArmParams:
    """Parameters of the single-link arm (SI units).

    Parameters
    ----------
    mass : float
        Mass of the uniform rod [kg], > 0.
    length : float
        Length of the rod [m], > 0. Inertia about the pivot ``m l²/3``.
    friction : float
        Viscous joint friction ``b`` [N m s/rad], >= 0.
    gravity : float
        Gravitational acceleration [m/s²]. 0 gives a horizontal arm; a negative value flips
        gravity (``θ = 0`` is then the upright, unstable position).
    max_torque : float
        Torque limit [N m], > 0: the action space is ``[-max_torque, max_torque]``.
    dt : float
        Sample time [s], > 0.
    target_low, target_high : float
        Range [rad] of the target angle drawn at reset.
    init_angle, init_velocity : float
        Half-widths of the uniform initial angle [rad] and velocity [rad/s] around rest at 0.
    integrator : {"semi_implicit_euler", "rk4", "euler"}
        Integrator of ``plant.step``. The default, semi-implicit Euler (as Gymnasium's Pendulum),
        costs one evaluation of the dynamics per step; ``"rk4"`` is 4th-order accurate.
    """

    mass: float = 1.0
    length: float = 1.0
    friction: float = 0.5
    gravity: float = 9.81
    max_torque: float = 10.0
    dt: float = 0.02
    target_low: float = -math.pi / 2
    target_high: float = math.pi / 2
    init_angle: float = 0.1
    init_velocity: float = 0.1
    integrator: str = "semi_implicit_euler"
    #: inertia about the pivot ``m l²/3`` [kg m²] (derived)
    inertia: float = field(init=False, repr=False, compare=False)
    #: gravity torque coefficient ``m g l/2`` [N m] (derived)
    gravity_torque: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        checks = {
            "mass": {"positive": True},
            "length": {"positive": True},
            "friction": {"nonnegative": True},
            "gravity": {},
            "max_torque": {"positive": True},
            "dt": {"positive": True},
            "target_low": {},
            "target_high": {},
            "init_angle": {"nonnegative": True},
            "init_velocity": {"nonnegative": True},
        }
        for name, kw in checks.items():
            object.__setattr__(self, name, _finite(name, getattr(self, name), **kw))
        if self.target_low > self.target_high:
            raise ValueError(
                "target_low, target_high: expected target_low <= target_high, received "
                f"{self.target_low} and {self.target_high}"
            )
        if self.integrator not in INTEGRATORS:
            raise ValueError(
                f"integrator: expected one of {sorted(INTEGRATORS)}, received {self.integrator!r}"
            )
        object.__setattr__(self, "inertia", self.mass * self.length**2 / 3.0)
        object.__setattr__(self, "gravity_torque", self.mass * self.gravity * self.length / 2.0)

    @json_dict
    def to_dict(self) -> dict:
        """The init parameters as a plain dict."""
        d = asdict(self)
        d.pop("inertia")
        d.pop("gravity_torque")
        return d


# ------------------------------------------------------------------------------- physics
def arm_rhs(x, u, params: ArmParams):
    """Continuous dynamics ``dx/dt`` of the arm.

    Parameters
    ----------
    x : array or tensor, shape (..., 2)
        ``[θ (rad, 0 = hanging down), ω (rad/s)]``.
    u : array or tensor, shape (..., 1)
        Joint torque [N m] (used as given; ``plant.step`` saturates).
    params : ArmParams

    Returns
    -------
    array or tensor, shape (..., 2)
        ``[ω, (u − b ω − m g (l/2) sin θ) / I]``.
    """
    xp = namespace(x, u)
    theta, omega = unstack(x)
    (torque,) = unstack(u)
    gravity = params.gravity_torque * xp.sin(theta)
    alpha = (torque - params.friction * omega - gravity) / params.inertia
    return stack([omega, alpha], like=x)


def arm_observe(x, r):
    """Observation ``[target − θ, ω, sin θ, cos θ]``, shape ``(..., 4)``.

    Parameters
    ----------
    x : array or tensor, shape (..., 2)
    r : array or tensor, shape (..., 1)
        Target angle [rad].
    """
    xp = namespace(x, r)
    theta, omega = unstack(x)
    (target,) = unstack(r)
    return stack([target - theta, omega, xp.sin(theta), xp.cos(theta)], like=x)


def arm_reward(x, u, r):
    """Reward ``−(e² + 0.1 ω² + 0.001 u²)`` with ``e = target − θ``, shape ``(...)``.

    Parameters
    ----------
    x : array or tensor, shape (..., 2)
        State before the step.
    u : array or tensor, shape (..., 1)
        Applied (saturated) torque [N m].
    r : array or tensor, shape (..., 1)
        Target angle [rad].
    """
    theta, omega = unstack(x)
    (target,) = unstack(r)
    (torque,) = unstack(u)
    e = target - theta
    return -(e * e + 0.1 * (omega * omega) + 0.001 * (torque * torque))


def arm_equilibrium(r, params: ArmParams):
    """State and torque that hold the arm at rest at angle ``r``.

    Returns
    -------
    x_eq : ndarray, shape (2,)
        ``[r, 0]``.
    u_eq : ndarray, shape (1,)
        ``m g (l/2) sin r`` [N m].
    """
    r = float(np.asarray(r, dtype=float).reshape(-1)[0])
    return np.array([r, 0.0]), np.array([params.gravity_torque * math.sin(r)])


def arm_plant(params: ArmParams | None = None) -> Plant:
    """The arm as a :class:`neuroctl.Plant`.

    Parameters
    ----------
    params : ArmParams, optional
        Default ``ArmParams()``.

    Returns
    -------
    Plant
        States ``["theta", "omega"]``, input ``["torque"]`` bounded by ``±max_torque``,
        reference ``["target"]``, outputs ``["error", "omega", "sin_theta", "cos_theta"]``,
        integrated with ``params.integrator`` at ``params.dt``.
    """
    params = ArmParams() if params is None else params
    if not isinstance(params, ArmParams):
        raise TypeError(f"params: expected ArmParams, received {type(params).__name__}")

    def rhs(x, u):
        return arm_rhs(x, u, params)

    def equilibrium(r):
        return arm_equilibrium(r, params)

    return Plant(
        states=["theta", "omega"],
        inputs=["torque"],
        dt=params.dt,
        rhs=rhs,
        integrator=params.integrator,
        input_lower=-params.max_torque,
        input_upper=params.max_torque,
        observe=arm_observe,
        outputs=["error", "omega", "sin_theta", "cos_theta"],
        references=["target"],
        equilibrium=equilibrium,
        name="arm",
        controllers={
            "pd": ("PD with gravity compensation", lambda plant: pd_gravity_controller(params)),
            "zero": ("no torque", lambda plant: None),
        },
        metrics=reach_metrics,
        params=params,
    )


def pd_gravity_controller(params: ArmParams | None = None, *, kp: float = 10.0, kd: float = 2.0):
    """PD with gravity compensation ``u = kp e − kd ω + m g (l/2) sin θ`` as one ``nn.Linear``.

    Acting on the observation ``y = [e, ω, sin θ, cos θ]``. Without saturation the error obeys
    ``I ë + (b + kd) ė + kp e = 0`` (continuous time): poles of ``I s² + (b + kd) s + kp``.

    Parameters
    ----------
    params : ArmParams, optional
    kp : float
        Proportional gain [N m/rad].
    kd : float
        Derivative gain [N m s/rad].

    Returns
    -------
    torch.nn.Linear
        ``4 -> 1``, float64, frozen.
    """
    params = ArmParams() if params is None else params
    kp = _finite("kp", kp)
    kd = _finite("kd", kd)
    return linear_controller([[kp, -kd, params.gravity_torque, 0.0]])


# ------------------------------------------------------------------------------- env
def _arm_model(params: ArmParams) -> EnvModel:
    plant = arm_plant(params)

    def sample(rng, n, options):
        check_options(options, ("angle", "velocity", "target"))
        theta = rng.uniform(-params.init_angle, params.init_angle, size=n)
        omega = rng.uniform(-params.init_velocity, params.init_velocity, size=n)
        target = rng.uniform(params.target_low, params.target_high, size=n)
        theta = option_array(options, "angle", theta)
        omega = option_array(options, "velocity", omega)
        target = option_array(options, "target", target)
        return stack([theta, omega], like=theta), target[:, None]

    extent = 1.2 * params.length

    def draw(x, r):
        theta, target = float(x[0]), float(r[0])
        l = params.length
        tip = (l * math.sin(theta), -l * math.cos(theta))
        goal = (l * math.sin(target), -l * math.cos(target))
        return draw_segments(
            [
                ((0.0, 0.0), goal, 0.02 * extent, (230, 90, 90)),
                ((0.0, 0.0), tip, 0.08 * extent, (40, 70, 160)),
                ((0.0, 0.0), (0.0, 0.0), 0.12 * extent, (90, 90, 90)),
            ],
            extent=extent,
        )

    inf = np.inf
    return EnvModel(
        plant=plant,
        reward=arm_reward,
        sample=sample,
        draw=draw,
        obs_low=np.array([-inf, -inf, -1.0, -1.0]),
        obs_high=np.array([inf, inf, 1.0, 1.0]),
        render_fps=max(1, round(1.0 / params.dt)),
    )


_ENV_DOC = """

    Description
    -----------
    A uniform rod of mass ``m`` and length ``l`` turns about a pivot in a vertical plane under
    gravity, driven by a joint torque ``u`` against viscous friction ``b``::

        I θ̈ = u − b θ̇ − m g (l/2) sin θ,   I = m l²/3,

    with ``θ`` measured from the hanging-down position (counter-clockwise positive). Each episode
    has a target angle; the task is to bring the arm there and hold it (the goal used for training:
    ``|error| < 0.05 rad`` and ``|ω| < 0.1 rad/s`` after 3 s). ``gravity=0`` gives a horizontal
    arm. The physics is ``env.unwrapped.plant`` (a :class:`neuroctl.Plant`, see
    :func:`arm_plant`); each step calls ``plant.step`` once, integrated with
    ``params.integrator`` (default semi-implicit Euler, as Gymnasium's Pendulum).

    Action space
    ------------
    ``Box(-max_torque, max_torque, (1,), float32)``

    | Num | Action       | Min         | Max        | Unit |
    |-----|--------------|-------------|------------|------|
    | 0   | joint torque | -max_torque | max_torque | N m  |

    An action outside the box is clipped to it (the clipped torque acts and is penalised); a
    non-finite action raises ``ValueError``.

    Observation space
    -----------------
    ``Box(float32)`` of shape ``(4,)``; ``y = plant.observe(x, r)``:

    | Num | Observation            | Min  | Max | Unit  |
    |-----|------------------------|------|-----|-------|
    | 0   | error ``target − θ``   | -inf | inf | rad   |
    | 1   | angular velocity ``ω`` | -inf | inf | rad/s |
    | 2   | ``sin θ``              | -1   | 1   |       |
    | 3   | ``cos θ``              | -1   | 1   |       |

    PD with gravity compensation is linear in ``y`` (:func:`pd_gravity_controller`). The angle
    is not wrapped: a full turn is a 2π error.

    Reward
    ------
    ``−(e² + 0.1 ω² + 0.001 u²)`` on the state before the step and the applied torque.

    Starting state
    --------------
    ``θ ~ U(−init_angle, init_angle)``, ``ω ~ U(−init_velocity, init_velocity)`` (defaults 0.1),
    target ``~ U(target_low, target_high)`` (default ``[−π/2, π/2]``). Override with
    ``reset(options={"angle": ..., "velocity": ..., "target": ...})`` (any subset; for the
    vector env scalars or arrays of shape ``(num_envs,)``); another key raises ``ValueError``
    naming the accepted ones.

    Episode end
    -----------
    No termination. Truncation after 150 steps (3 s at the default ``dt = 0.02``) by the
    registered time limit; with another ``dt`` pass ``max_episode_steps=round(3 / dt)`` to
    ``gymnasium.make``. The torque limit and the friction bound the speed (at most
    ``max_torque / friction`` at rest, 20 rad/s by default), so the state stays finite; should a
    step still produce a non-finite state, observation or reward, it raises
    ``FloatingPointError`` (never returns it).

    Arguments
    ---------
    ``gymnasium.make("neuroctl/Arm-v0", render_mode=None, mass=1.0, length=1.0, friction=0.5,
    gravity=9.81, max_torque=10.0, dt=0.02, target_low=-π/2, target_high=π/2, init_angle=0.1,
    init_velocity=0.1, integrator="semi_implicit_euler")`` or ``params=ArmParams(...)``.
    Unknown keywords raise ``TypeError``. ``render_mode="rgb_array"`` returns an ``(256, 256, 3)``
    uint8 image drawn with numpy (no display needed): the rod in blue, the target as a red line.
    The batched version is ``gymnasium.make_vec("neuroctl/Arm-v0", num_envs=N,
    vectorization_mode="vector_entry_point")`` (:class:`ArmVectorEnv`).

    Version history
    ---------------
    * v0: initial version.
"""


class ArmEnv(PlantEnv):
    """Single-link arm reaching a target angle (``neuroctl/Arm-v0``)."""

    def __init__(self, render_mode: str | None = None, *, params: ArmParams | None = None, **kw):
        params = make_params(ArmParams, params, kw)
        self._setup(_arm_model(params), params, render_mode)


class ArmVectorEnv(PlantVectorEnv):
    """``num_envs`` copies of :class:`ArmEnv` stepped in one array operation.

    Next-step autoreset (Gymnasium's default): after a copy is truncated, its next ``step``
    ignores its action, resets it and returns its first observation with reward 0.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = 150,
        render_mode: str | None = None,
        params: ArmParams | None = None,
        device=None,
        dtype: str = "float64",
        array: str | None = None,
        **kw,
    ):
        params = make_params(ArmParams, params, kw)
        self._setup(
            _arm_model(params), params, num_envs, max_episode_steps, render_mode,
            device, dtype, array,
        )


ArmEnv.__doc__ += _ENV_DOC
