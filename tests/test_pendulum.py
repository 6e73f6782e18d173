"""Gymnasium's Pendulum-v1 as a neuroctl plant: its step against Gymnasium's, plant_of, analysis
of an SB3 policy against python-control's finite-difference linearization."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs import plant_of, register_plant
from neuroctl.envs.pendulum import pendulum_plant, reward

import neuroctl

# states that reach the speed clip (|θ̇| near 8) and torques beyond the bounds
STATES = np.array(
    [[0.3, -1.2], [3.0, 7.9], [-2.5, -7.95], [12.0, 0.4], [0.0, 0.0], [-0.7, 8.0]]
)
ACTIONS = np.array([[0.5], [1.9], [-3.0], [2.5], [-0.1], [1.0]])


def _gym_steps(env, states, actions):
    """Gymnasium's own step from each state: next states and rewards."""
    base = env.unwrapped
    nxt, rew = [], []
    for x, u in zip(states, actions):
        base.state = np.array(x, dtype=float)
        # float64 actions: Gymnasium computes the cost in the action's dtype
        _, r, *_ = env.step(np.array(u, dtype=float))
        nxt.append(np.array(base.state, float))
        rew.append(float(r))
    return np.array(nxt), np.array(rew)


@pytest.fixture
def env():
    e = gym.make("Pendulum-v1")
    e.reset(seed=0)
    yield e
    e.close()


def test_step_and_reward_equal_gymnasium_single_batched_numpy_torch(env):
    plant = plant_of(env)
    actions = ACTIONS
    want_x, want_r = _gym_steps(env, STATES, actions)
    assert np.abs(np.abs(want_x[:, 1]) - 8.0).min() == 0.0  # the clip is exercised
    for x, u, wx, wr in zip(STATES, actions, want_x, want_r):
        np.testing.assert_allclose(plant.step(x, u), wx, rtol=0, atol=1e-12)
        np.testing.assert_allclose(reward(x, plant.saturate(u)), wr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(plant.step(STATES, actions), want_x, rtol=0, atol=1e-12)
    xt, ut = torch.tensor(STATES), torch.tensor(actions)
    np.testing.assert_allclose(plant.step(xt, ut).numpy(), want_x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        reward(xt, plant.saturate(ut)).numpy(), want_r, rtol=0, atol=1e-12
    )
    # the observation Gymnasium returns (float32) from the same state
    obs_np = plant.observe(want_x)
    for x, o in zip(want_x, obs_np):
        env.unwrapped.state = x
        np.testing.assert_allclose(env.unwrapped._get_obs(), o.astype(np.float32), rtol=0, atol=0)


def test_episode_rollout_equals_gymnasium(env):
    plant = plant_of(env)
    obs, _ = env.reset(seed=3)
    x = np.array(env.unwrapped.state, float)
    rng = np.random.default_rng(1)
    for _ in range(200):
        u = rng.uniform(-3, 3, size=1)
        obs, r, *_ = env.step(u)
        x_next = plant.step(x, u)
        assert abs(reward(x, plant.saturate(u)) - r) <= 1e-12
        x = x_next
        np.testing.assert_allclose(x, env.unwrapped.state, rtol=0, atol=1e-12)


def test_plant_of_reads_env_parameters_and_own_plants():
    e = gym.make("Pendulum-v1", g=9.81)
    assert plant_of(e).params["g"] == 9.81
    arm = gym.make("neuroctl/Arm-v0")
    assert plant_of(arm) is arm.unwrapped.plant
    assert plant_of("Pendulum-v1").output_names == ("cos_theta", "sin_theta", "theta_dot")


def test_plant_of_unknown_env_names_it_and_says_how_to_register():
    e = gym.make("CartPole-v1")
    with pytest.raises(LookupError, match=r"CartPole-v1.*register_plant\('CartPole-v1'"):
        plant_of(e)
    with pytest.raises(TypeError, match="factory"):
        register_plant("CartPole-v1", 3)
    with pytest.raises(TypeError, match="env"):
        plant_of(3)


def test_register_plant_by_class():
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv
    from neuroctl.envs.registry import PLANT_FACTORIES

    marker = pendulum_plant(g=1.0)
    register_plant(CartPoleEnv, lambda env: marker)
    try:
        assert plant_of(gym.make("CartPole-v1")) is marker
    finally:
        del PLANT_FACTORIES[CartPoleEnv]


def test_bad_parameter_names_it():
    with pytest.raises(ValueError, match="max_speed: expected a positive"):
        pendulum_plant(max_speed=-1.0)


def _closed_loop_nlsys(env, policy64):
    """Gymnasium's own step closed with the policy, as a discrete nlsys (no neuroctl code)."""
    import control

    base = env.unwrapped

    def updfcn(t, x, u, params):
        th, thdot = x
        obs = torch.tensor([[np.cos(th), np.sin(th), thdot]], dtype=torch.float64)
        with torch.no_grad():
            a = policy64(obs).numpy()[0]
        base.state = np.array(x, float)
        base.step(a)
        return np.array(base.state, float)

    return control.nlsys(updfcn, None, states=2, inputs=0, outputs=2, dt=base.dt)


@pytest.mark.slow
def test_sb3_ppo_policy_analysed_at_upright_matches_control_linearize(env, tmp_path):
    import control
    from stable_baselines3 import PPO

    from neuroctl.train import export_policy

    model = PPO(
        "MlpPolicy",
        env,
        n_steps=256,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [16, 16], "activation_fn": torch.nn.ReLU},
    )
    model.learn(total_timesteps=1024)
    model.save(tmp_path / "ppo.zip")
    model = PPO.load(tmp_path / "ppo.zip", device="cpu")
    policy = export_policy(model)
    plant = plant_of(env)
    rep = neuroctl.analyze(plant, policy)
    assert rep.verdict in ("stable", "unstable", "marginal", "depends on region")
    assert rep.op.success
    assert not rep.at_kink
    x_eq = rep.op.x
    assert abs(x_eq[0]) < 1.0  # the equilibrium near upright
    sys = _closed_loop_nlsys(env, policy.double())
    lin = control.linearize(sys, x_eq, [])
    want = np.sort_complex(np.linalg.eigvals(lin.A))
    got = np.sort_complex(rep.regions[0].poles)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    verdict = "stable" if np.abs(want).max() < 1 else "unstable"
    assert rep.verdict == verdict
