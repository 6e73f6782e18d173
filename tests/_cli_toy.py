"""Two small environments registered on import, for the ``module:Env-v0`` form of the command line.

``CliToyPlant-v0``: a mass on a spring with a damper, ``dx/dt = [v, -p - v + u]`` (poles of the
open loop ``s^2 + s + 1``), observation ``[p, v]`` in the documented box ``[-2, 2]^2``.
``CliToyNoPlant-v0``: a Gymnasium env with Box spaces and no plant (a random walk).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from neuroctl.envs import EnvModel, PlantEnv, box_sampler

from neuroctl import Plant, stack, unstack

OBS_BOX = 2.0


def spring_rhs(x, u):
    p, v = unstack(x)
    (f,) = unstack(u)
    return stack([v, -p - v + f], like=x)


def spring_plant() -> Plant:
    return Plant(
        states=["p", "v"],
        inputs=["f"],
        dt=0.05,
        rhs=spring_rhs,
        integrator="rk4",
        input_lower=-5.0,
        input_upper=5.0,
        equilibrium=lambda r: (np.zeros(2), np.zeros(1)),
        name="spring",
    )


def _reward(x, u, r):
    p, v = unstack(x)
    return -(p * p + v * v)


def make_spring_env():
    box = np.full(2, OBS_BOX)
    model = EnvModel(
        spring_plant(), _reward, box_sampler(-0.5 * box, 0.5 * box), obs_low=-box, obs_high=box
    )
    return PlantEnv(model)


class RandomWalk(gym.Env):
    """x <- x + a: no plant, Box spaces."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.x = np.clip(self.x + float(np.asarray(action).reshape(-1)[0]), -10, 10).astype(
            np.float32
        )
        return self.x.copy(), -float(np.sum(self.x**2)), False, False, {}


for _id, _entry in (("CliToyPlant-v0", make_spring_env), ("CliToyNoPlant-v0", RandomWalk)):
    if _id not in gym.envs.registry:
        gym.register(_id, entry_point=_entry, max_episode_steps=40)
