"""A plant neuroctl does not ship (examples/cartpole_plant.py): the cart-pole against Gymnasium's
CartPole-v1 and python-control, and everything of neuroctl on it."""

from __future__ import annotations

import control
import gymnasium as gym
import numpy as np
import pytest
import torch
from _examples import load_example
from neuroctl.envs import EnvModel, PlantEnv, PlantVectorEnv, box_sampler

import neuroctl

cartpole = load_example("cartpole_plant")
# check_env's advice on a plain-units action space and an unbounded observation
CHECKER_ADVICE = [
    "ignore:.*symmetric and normalized.*:UserWarning",
    "ignore:.*infinity.*:UserWarning",
]


def test_cartpole_plant_steps_as_gymnasium_cartpole():
    """Gymnasium's CartPole-v1 applies +-10 N with explicit Euler: the same map, to rounding."""
    plant = cartpole.cartpole_plant()
    reference = gym.make("CartPole-v1").unwrapped
    reference.reset(seed=0)
    rng = np.random.default_rng(0)
    states = rng.uniform([-2, -0.5, -2, -2], [2, 0.5, 2, 2], size=(50, 4))  # [x, θ, ẋ, θ̇]
    for action, force in ((0, -10.0), (1, 10.0)):
        expected = []
        for x, theta, speed, spin in states:
            reference.state = np.array([x, speed, theta, spin])  # CartPole's order
            reference.steps_beyond_terminated = None  # states beyond its termination angle too
            reference.step(action)
            x1, speed1, theta1, spin1 = reference.state
            expected.append([x1, theta1, speed1, spin1])
        expected = np.array(expected)
        forces = np.full((50, 1), force)
        np.testing.assert_allclose(plant.step(states, forces), expected, rtol=0, atol=1e-12)
        one = np.array([plant.step(x, f) for x, f in zip(states, forces)])  # one state vector
        np.testing.assert_allclose(one, expected, rtol=0, atol=1e-12)
        batched = plant.step(torch.as_tensor(states), torch.as_tensor(forces)).numpy()
        np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-12)


@pytest.mark.filterwarnings(*CHECKER_ADVICE)
def test_user_plant_environments_follow_the_plant_and_validate_their_model():
    plant = cartpole.cartpole_plant()
    model = cartpole.cartpole_model(plant)
    env = PlantEnv(model)
    gym.utils.env_checker.check_env(env, skip_render_check=True)
    assert env.metadata["render_modes"] == [] and env.metadata["render_fps"] == 50
    x0 = np.array([0.1, -0.05, 0.0, 0.2])
    obs, _ = env.reset(seed=3, options={"state": x0})
    np.testing.assert_array_equal(obs, x0.astype(np.float32))
    for force in (3.0, -25.0):  # the second is clipped to -10 N, as plant.step saturates
        x = env.unwrapped.state.copy()
        obs, reward, *_ = env.step(np.array([force], dtype=np.float32))
        np.testing.assert_array_equal(env.unwrapped.state, plant.step(x, np.array([force])))
        u = np.clip(force, -10, 10)
        expected = -(x[0] ** 2 + x[1] ** 2 + 0.1 * (x[2] ** 2 + x[3] ** 2) + 0.001 * u**2)
        assert reward == pytest.approx(expected, rel=1e-12)
    venv = PlantVectorEnv(model, num_envs=6, max_episode_steps=5)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (6, 4) and (np.abs(obs) <= [0.05, 0.1, 0.05, 0.1]).all()
    x = venv.state.copy()
    venv.step(np.full((6, 1), 2.0))
    np.testing.assert_allclose(venv.state, plant.step(x, np.full((6, 1), 2.0)), atol=1e-15)
    with pytest.raises(TypeError, match="model: expected an EnvModel"):
        PlantEnv(plant)
    with pytest.raises(ValueError, match=r"expected shapes \(2, 4\) and \(2, 0\)"):
        PlantEnv(EnvModel(plant, cartpole.cartpole_reward, box_sampler([0.0] * 3, [1.0] * 3)))
    with pytest.raises(ValueError, match="low <= high"):
        box_sampler([1.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="render_mode"):
        PlantEnv(model, render_mode="rgb_array")  # no draw function given


@pytest.mark.filterwarnings(*CHECKER_ADVICE)
def test_cartpole_example_lqr_verification_and_training(tmp_path):
    res = cartpole.main(cartpole.Args(out=str(tmp_path)))
    plant, K = res["plant"], res["lqr"]
    # python-control's own linearization (finite differences of the discrete map) and dlqr
    lin = control.linearize(plant.to_nlsys(), np.zeros(4), np.zeros(1))
    A, B = np.asarray(lin.A), np.asarray(lin.B)
    k_ref, _, _ = control.dlqr(A, B, np.diag([1.0, 10.0, 1.0, 1.0]), [[0.1]])
    np.testing.assert_allclose(K.state_gain, k_ref, rtol=1e-4)
    poles_ref = np.sort_complex(np.linalg.eigvals(A - B @ K.state_gain))
    np.testing.assert_allclose(res["poles"], poles_ref, atol=1e-6)
    assert res["verdict"] == "stable" and np.abs(res["poles"]).max() < 1
    assert res["final_tilt"] < 1e-2 and res["peak_force"] <= 10.0
    # the proof agrees with brute force: 2000 simulated starts in the box stay within the limit
    args = cartpole.Args()
    assert res["proof"].holds is True
    box = np.array([0.05, args.box_tilt, 0.05, 0.2])
    x0 = np.random.default_rng(1).uniform(-box, box, (2000, 4))
    sims = neuroctl.simulate(plant, K, x0, steps=args.verify_steps)
    assert np.abs(sims.states[..., 1]).max() < args.limit
    assert res["proof"].reach.contains(sims.states).all()
    # the policy trained by differentiable simulation balances the pole too
    assert isinstance(res["policy"], torch.nn.Sequential)
    assert res["learned_tilt"] < 1e-2 and res["learned_verdict"] == "stable"
    assert (tmp_path / "cartpole_plant.png").stat().st_size > 10_000
