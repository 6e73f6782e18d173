"""Gymnasium's ``Pendulum-v1`` as a :class:`neuroctl.Plant` (its step, observation and reward).

Gymnasium's ``PendulumEnv`` keeps its physics inside ``step``; this module writes the same map
once for numpy and torch so that policies trained on ``Pendulum-v1`` (e.g. with
Stable-Baselines3) can be simulated in batches, linearized, analysed and verified by neuroctl:

* state ``[θ, θ̇]`` (rad, rad/s; ``θ = 0`` upright, not wrapped), input the torque (N m) clipped
  to ``±max_torque`` (2);
* one step of ``dt = 0.05`` s, semi-implicit Euler exactly as Gymnasium's ``step``:
  ``θ̇' = clip(θ̇ + (3 g / (2 l) sin θ + 3 / (m l²) u) dt, ±max_speed)``, ``θ' = θ + θ̇' dt``.
  The speed clip (``max_speed = 8``) sits between the velocity and the position update, so it is
  part of the discrete ``update`` rather than a ``post_step`` (which would act after the position
  had moved with the unclipped speed);
* observation ``[cos θ, sin θ, θ̇]``;
* reward ``-(normalize(θ)² + 0.1 θ̇² + 0.001 u²)`` of the clipped torque (:func:`reward`).

:func:`plant_of_env` builds the plant from an env's own parameters (``g``, ``m``, ``l``, ``dt``,
``max_speed``, ``max_torque``); it is registered for ``Pendulum-v1`` with
:func:`neuroctl.envs.plant_of`.
"""

from __future__ import annotations

import math

import numpy as np

from neuroctl import Plant, namespace, stack, unstack

__all__ = ["pendulum_plant", "plant_of_env", "reward", "angle_normalize"]


def angle_normalize(theta):
    """``θ`` wrapped to ``[-π, π)`` as Gymnasium's ``angle_normalize``, shape (...)."""
    xp = namespace(theta)
    return xp.remainder(theta + math.pi, 2 * math.pi) - math.pi


def reward(x, u):
    """Gymnasium's Pendulum reward of state ``x`` (..., 2) and applied torque ``u`` (..., 1).

    ``u`` must already be clipped to the torque bounds (``plant.saturate(u)``), as Gymnasium
    clips before computing the cost. Returns shape (...).
    """
    th, thdot = unstack(x)
    (tau,) = unstack(u)
    return -(angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (tau**2))


def pendulum_plant(
    *,
    g: float = 10.0,
    m: float = 1.0,
    l: float = 1.0,  # noqa: E741 - Gymnasium's name
    dt: float = 0.05,
    max_speed: float = 8.0,
    max_torque: float = 2.0,
) -> Plant:
    """The plant of Gymnasium's ``Pendulum-v1``.

    Parameters
    ----------
    g : float
        Gravity, m/s² (Gymnasium's default 10).
    m, l : float
        Mass (kg) and length (m) of the rod.
    dt : float
        Step, s.
    max_speed : float
        Clip of the angular speed after each velocity update, rad/s.
    max_torque : float
        Torque bounds ``±max_torque``, N m.

    Returns
    -------
    Plant
        States ``theta, theta_dot``; input ``torque``; outputs ``cos_theta, sin_theta,
        theta_dot``; rest state upright (``θ = 0``, zero torque).
    """
    named = {"g": g, "m": m, "l": l, "dt": dt, "max_speed": max_speed, "max_torque": max_torque}
    for what, v in named.items():
        ok = isinstance(v, (int, float, np.floating)) and math.isfinite(v)
        if not ok or (what != "g" and v <= 0):
            kind = "finite" if what == "g" else "positive finite"
            raise ValueError(f"{what}: expected a {kind} number, received {v!r}")
    a = 3 * g / (2 * l)
    b = 3.0 / (m * l**2)

    def update(x, u):
        th, thdot = unstack(x)
        (tau,) = unstack(u)
        xp = namespace(x)
        newthdot = thdot + (a * xp.sin(th) + b * tau) * dt
        newthdot = xp.clip(newthdot, -max_speed, max_speed)
        newth = th + newthdot * dt
        return stack([newth, newthdot], like=x)

    def observe(x):
        th, thdot = unstack(x)
        xp = namespace(x)
        return stack([xp.cos(th), xp.sin(th), thdot], like=x)

    return Plant(
        states=["theta", "theta_dot"],
        inputs=["torque"],
        dt=dt,
        update=update,
        input_lower=-max_torque,
        input_upper=max_torque,
        observe=observe,
        outputs=["cos_theta", "sin_theta", "theta_dot"],
        equilibrium=lambda r: (np.zeros(2), np.zeros(1)),
        name="Pendulum-v1",
        params=named,
    )


def plant_of_env(env) -> Plant:
    """:func:`pendulum_plant` with the parameters of a Gymnasium ``PendulumEnv`` (unwrapped)."""
    e = env.unwrapped
    return pendulum_plant(
        g=float(e.g),
        m=float(e.m),
        l=float(e.l),
        dt=float(e.dt),
        max_speed=float(e.max_speed),
        max_torque=float(e.max_torque),
    )
