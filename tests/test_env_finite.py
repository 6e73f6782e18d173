"""Environments never hand out non-finite numbers.

Every registered env runs many seeded episodes of random actions (uniform and bang-bang, single
env and natively batched) to its time limit; every observation and reward must be finite and the
observation inside the observation space. Before the two-link arm had a speed limit, 2 of 20
such episodes reached infinite speeds and rewards of -1e70 with ``terminated=False``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from neuroctl.envs import EnvModel, PlantEnv, PlantVectorEnv, box_sampler
from neuroctl.envs.arm2link import Arm2LinkParams, arm2link_plant, arm2link_rhs

import neuroctl

ENV_IDS = sorted(i for i in gym.registry if i.startswith("neuroctl/"))
# (episodes of the single env, copies of the vector env): the ring's episodes are 3000 steps
SIZES = {"neuroctl/RingRoad-v0": (1, 16)}


def _actions(space, rng, bang_bang: bool):
    a = rng.uniform(space.low, space.high).astype(np.float32)
    if bang_bang:
        a = np.where(rng.random(a.shape) < 0.5, space.low, space.high).astype(np.float32)
    return a


def test_every_registered_env_is_covered():
    assert {"neuroctl/Arm-v0", "neuroctl/Arm2Link-v0", "neuroctl/RingRoad-v0"} <= set(ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_action_episodes_give_finite_observations_and_rewards(env_id):
    episodes, copies = SIZES.get(env_id, (24, 128))
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    worst = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        assert np.isfinite(obs).all()
        done = False
        while not done:
            action = _actions(env.action_space, rng, bang_bang=ep % 2 == 1)
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.isfinite(obs).all() and np.isfinite(reward), (env_id, ep, obs, reward)
            assert env.observation_space.contains(obs), (env_id, ep, obs)
            worst = max(worst, abs(float(reward)))
            done = terminated or truncated
    env.close()
    # natively batched: two episodes per copy (next-step autoreset), uniform actions
    venv = gym.make_vec(env_id, num_envs=copies, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=123)
    horizon = gym.spec(env_id).max_episode_steps
    for k in range(2 * horizon + 1):
        obs, reward, terminated, truncated, _ = venv.step(
            _actions(venv.action_space, rng, bang_bang=k % 3 == 0)
        )
        assert np.isfinite(obs).all() and np.isfinite(reward).all(), (env_id, k)
    venv.close()
    assert worst < 1e6


def test_arm2link_speed_limit_is_the_pendulum_clip_of_the_semi_implicit_step():
    # v' = clip(v + dt a(x, u), ±max_speed), q' = q + dt v' (Gymnasium's Pendulum update),
    # written out from the continuous model, against plant.step at and away from the limit
    p = Arm2LinkParams(max_speed=(2.0, 3.0))
    plant = arm2link_plant(p)
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-1, 1, (200, 2)), rng.uniform(-4, 4, (200, 2))], axis=-1)
    u = rng.uniform(-10, 10, (200, 2))
    a = arm2link_rhs(x, u, p)[..., 2:]
    v_next = np.clip(x[..., 2:] + p.dt * a, [-2.0, -3.0], [2.0, 3.0])
    expected = np.concatenate([x[..., :2] + p.dt * v_next, v_next], axis=-1)
    clipped = (np.abs(x[..., 2:] + p.dt * a) > [2.0, 3.0]).any(-1)
    assert 0 < clipped.sum() < 200  # both cases occur
    np.testing.assert_allclose(plant.step(x, u), expected, rtol=1e-14, atol=1e-14)
    # one state of a single env takes the Python-float path: the same numbers
    for i in (int(np.flatnonzero(clipped)[0]), int(np.flatnonzero(~clipped)[0])):
        np.testing.assert_allclose(plant.step(x[i], u[i]), expected[i], rtol=1e-14, atol=1e-14)


def test_without_the_speed_limit_the_step_guard_refuses_the_divergence():
    # the arm of the issue (no speed limit to speak of): random torques overflow the state
    # within 20 seeded episodes; the step raises instead of returning inf or a reward of -1e70
    env = gym.make("neuroctl/Arm2Link-v0", max_speed=1e300)
    rng = np.random.default_rng(0)
    with pytest.raises(FloatingPointError, match=r"Arm2Link-v0 step: expected finite numbers"):
        for ep in range(20):
            env.reset(seed=ep)
            for _ in range(150):
                obs, reward, *_ = env.step(_actions(env.action_space, rng, bang_bang=False))
                assert np.isfinite(obs).all() and np.isfinite(reward)
    assert np.isfinite(env.unwrapped.state).all()  # the last finite state is kept


def _exploding_model():
    plant = neuroctl.Plant(states=1, inputs=1, dt=1.0, update=lambda x, u: 1e30 * x + u)
    return EnvModel(plant, lambda x, u, r: -x[..., 0] ** 2, box_sampler([1.0], [1.0]))


def test_plant_env_of_ones_own_raises_on_a_non_finite_state():
    # 1 -> 1e30 (a float32 observation) -> 1e60 (beyond float32: the observation would be inf)
    env = PlantEnv(_exploding_model())
    env.reset(seed=0)
    obs, reward, *_ = env.step([0.0])
    assert obs.tolist() == [np.float32(1e30)] and reward == -1.0
    too_big = r"expected finite numbers.*observation \[1\.0*1e\+60"
    with pytest.raises(FloatingPointError, match=too_big):
        env.step([0.0])
    assert env.state.tolist() == [1e30]  # the last finite state is kept
    venv = PlantVectorEnv(_exploding_model(), 3)
    venv.reset(seed=0)
    venv.step(np.zeros((3, 1)))
    with pytest.raises(FloatingPointError, match=r"\(copy 0\): expected finite numbers"):
        venv.step(np.zeros((3, 1)))
