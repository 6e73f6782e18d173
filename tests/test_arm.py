"""neuroctl/Arm-v0: the single-link arm plant, its Gymnasium env and its batched vector env."""

from __future__ import annotations

import math

import control
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from neuroctl.envs.arm import (
    ArmEnv,
    ArmParams,
    ArmVectorEnv,
    arm_plant,
    arm_rhs,
    pd_gravity_controller,
)

import neuroctl

# Gymnasium recommends normalized [-1, 1] actions and finite observation bounds; the arm's
# action is a physical torque (as Pendulum-v1's) and its error and speed are unbounded.
CHECKER_ADVICE = [
    "ignore:.*symmetric and normalized.*:UserWarning",
    "ignore:.*infinity.*:UserWarning",
]


@pytest.mark.filterwarnings(*CHECKER_ADVICE)
def test_check_env_passes():
    env = gym.make("neuroctl/Arm-v0", render_mode="rgb_array")
    assert isinstance(env.unwrapped, ArmEnv)
    check_env(env.unwrapped)
    assert env.spec.max_episode_steps * env.unwrapped.plant.dt == pytest.approx(3.0)


def test_make_passes_physical_parameters():
    env = gym.make("neuroctl/Arm-v0", mass=2.0, length=0.5, friction=0.1, gravity=0.0, dt=0.01)
    p = env.unwrapped.params
    assert (p.mass, p.length, p.friction, p.gravity, p.dt) == (2.0, 0.5, 0.1, 0.0, 0.01)
    assert p.inertia == pytest.approx(2.0 * 0.25 / 3)
    assert env.unwrapped.plant.dt == 0.01


def test_env_step_equals_plant_step_and_clips_actions():
    env = gym.make("neuroctl/Arm-v0")
    plant = env.unwrapped.plant
    for action, applied in ((3.0, 3.0), (100.0, 10.0), (-1e6, -10.0)):
        obs, _ = env.reset(seed=1, options={"angle": 0.3, "velocity": -0.2, "target": 1.0})
        x0 = np.array([0.3, -0.2])
        obs, reward, terminated, truncated, _ = env.step(np.array([action], np.float32))
        x1 = plant.step(x0, np.array([applied]))
        np.testing.assert_allclose(env.unwrapped.state, x1, rtol=0, atol=1e-15)
        np.testing.assert_allclose(obs, plant.observe(x1, np.array([1.0])).astype(np.float32))
        # reward -(e² + 0.1 ω² + 0.001 u²) on the state before the step and the clipped torque
        assert reward == pytest.approx(-(0.7**2 + 0.1 * 0.04 + 0.001 * applied**2), rel=1e-12)
        assert not terminated and not truncated
    # the bounds themselves act as given, and the caller's float64 action is left as it was
    for action in (10.0, -10.0, 10.5):
        env.reset(seed=1, options={"angle": 0.3, "velocity": -0.2, "target": 1.0})
        a = np.array([action])
        env.step(a)
        assert a[0] == action
        x1 = plant.step(np.array([0.3, -0.2]), np.array([min(action, 10.0)]))
        np.testing.assert_array_equal(env.unwrapped.state, x1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises(bad):
    env = gym.make("neuroctl/Arm-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([bad], np.float32))
    with pytest.raises(ValueError, match=r"action: expected shape \(1,\), received \(2,\)"):
        env.step(np.zeros(2, np.float32))
    venv = gym.make_vec("neuroctl/Arm-v0", num_envs=3, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"finite.*\[1\]"):
        venv.step(np.array([[0.0], [bad], [1.0]]))


def test_observation_gives_pd_with_gravity_compensation():
    params = ArmParams()
    plant = arm_plant(params)
    ctrl = pd_gravity_controller(params, kp=7.0, kd=1.5)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(20, 2))
    r = rng.uniform(-1, 1, size=(20, 1))
    u = ctrl(torch.as_tensor(plant.observe(x, r))).numpy()[:, 0]
    expected = 7.0 * (r[:, 0] - x[:, 0]) - 1.5 * x[:, 1] + 9.81 * 0.5 * np.sin(x[:, 0])
    np.testing.assert_allclose(u, expected, rtol=1e-13)


def test_vector_env_matches_single_envs_and_is_native():
    n, steps = 5, 30
    rng = np.random.default_rng(3)
    angle, velocity = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    target = rng.uniform(-1, 1, n)
    # includes clipped actions
    actions = rng.uniform(-15, 15, size=(steps, n, 1)).astype(np.float32)
    venv = gym.make_vec("neuroctl/Arm-v0", num_envs=n, vectorization_mode="vector_entry_point")
    assert isinstance(venv, ArmVectorEnv) and isinstance(venv, gym.vector.VectorEnv)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    opts = {"angle": angle, "velocity": velocity, "target": target}
    vobs, _ = venv.reset(seed=0, options=opts)
    singles = [gym.make("neuroctl/Arm-v0") for _ in range(n)]
    sobs = [
        e.reset(seed=0, options={"angle": a, "velocity": v, "target": t})[0]
        for e, a, v, t in zip(singles, angle, velocity, target)
    ]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    for k in range(steps):
        vobs, vrew, _, _, _ = venv.step(actions[k])
        for i, e in enumerate(singles):
            obs, rew, *_ = e.step(actions[k, i])
            np.testing.assert_allclose(vobs[i], obs, atol=1e-6)
            assert vrew[i] == pytest.approx(rew, rel=1e-12, abs=1e-12)
            np.testing.assert_allclose(venv.unwrapped.state[i], e.unwrapped.state, atol=1e-12)


def test_vector_env_next_step_autoreset():
    venv = ArmVectorEnv(num_envs=4, max_episode_steps=3)
    venv.reset(seed=0)
    zero = np.zeros((4, 1))
    for k in range(3):
        _, _, term, trunc, _ = venv.step(zero)
        assert not term.any()
        assert trunc.all() == (k == 2)
    before = venv.state.copy()
    obs, reward, term, trunc, _ = venv.step(np.full((4, 1), 10.0))  # action ignored: reset step
    assert not trunc.any() and not term.any()
    np.testing.assert_array_equal(reward, 0.0)
    p = venv.params
    assert (np.abs(venv.state[:, 0]) <= p.init_angle).all()
    assert (np.abs(venv.state[:, 1]) <= p.init_velocity).all()
    assert not np.allclose(venv.state, before)
    np.testing.assert_allclose(obs, venv.plant.observe(venv.state, venv.reference), atol=1e-6)


def test_vector_env_reset_mask_resets_only_the_masked_copies():
    venv = ArmVectorEnv(num_envs=4)
    venv.reset(seed=0, options={"angle": [0.5, 0.6, 0.7, 0.8], "target": 1.0})
    venv.step(np.zeros((4, 1)))
    before = venv.state.copy()
    mask = np.array([False, True, False, True])
    obs, _ = venv.reset(options={"reset_mask": mask, "angle": 0.0, "velocity": 0.0})
    np.testing.assert_array_equal(venv.state[~mask], before[~mask])
    np.testing.assert_array_equal(venv.state[mask], 0.0)
    np.testing.assert_allclose(obs[mask, 0], venv.reference[mask, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.array([1, 0, 0, 1])})


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = gym.make("neuroctl/Arm-v0")
        obs, _ = env.reset(seed=seed)
        out = [obs]
        env.action_space.seed(seed)
        for _ in range(40):
            out.append(env.step(env.action_space.sample())[0])
        return np.stack(out)

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.allclose(rollout(7), rollout(8))
    v1 = ArmVectorEnv(num_envs=8)
    v2 = ArmVectorEnv(num_envs=8)
    np.testing.assert_array_equal(v1.reset(seed=11)[0], v2.reset(seed=11)[0])


def test_numpy_and_torch_give_the_same_step():
    plant = arm_plant(ArmParams(integrator="rk4"))
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(50, 2))
    u = rng.uniform(-12, 12, size=(50, 1))
    xt = plant.step(torch.as_tensor(x), torch.as_tensor(u)).numpy()
    np.testing.assert_allclose(plant.step(x, u), xt, rtol=0, atol=1e-12)
    for i in range(3):  # single numpy state (the env's path) as well
        np.testing.assert_allclose(plant.step(x[i], u[i]), xt[i], rtol=0, atol=1e-12)


def test_autograd_jacobian_matches_closed_form():
    p = ArmParams(mass=1.3, length=0.8, friction=0.3)
    theta, omega, torque = 0.7, -0.4, 1.2
    x = torch.tensor([theta, omega], dtype=torch.float64)
    u = torch.tensor([torque], dtype=torch.float64)
    ja, jb = torch.autograd.functional.jacobian(lambda x_, u_: arm_rhs(x_, u_, p), (x, u))
    inertia = p.mass * p.length**2 / 3
    kg = p.mass * p.gravity * p.length / 2
    a = np.array([[0.0, 1.0], [-kg * math.cos(theta) / inertia, -p.friction / inertia]])
    b = np.array([[0.0], [1.0 / inertia]])
    np.testing.assert_allclose(ja.numpy(), a, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(jb.numpy(), b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    ("gravity", "kw", "poles"),
    [
        # REFERENCE.md, "Activation slope as proportional gain": I = 1/3, b = 0.5
        (0.0, 4.0, [-0.75 + 3.38j, -0.75 - 3.38j]),  # horizontal, slope 1
        (0.0, 1.0, [-0.75 + 1.56j, -0.75 - 1.56j]),  # horizontal, slope 0.25
        (-10.0, 2.0, [2.34, None]),  # upright (k_g = -5), k w = 8, slope 0.25: unstable
    ],
)
def test_reference_arm_closed_loop_poles(gravity, kw, poles):
    p = ArmParams(mass=1.0, length=1.0, friction=0.5, gravity=gravity)
    assert p.inertia == pytest.approx(1 / 3) and p.gravity_torque == pytest.approx(gravity / 2)
    x = torch.zeros(2, dtype=torch.float64)

    def closed_loop(x_):
        return arm_rhs(x_, kw * (0.0 - x_[..., :1]), p)

    eig = np.linalg.eigvals(torch.autograd.functional.jacobian(closed_loop, x).numpy())
    if poles[1] is None:
        assert eig.real.max() == pytest.approx(poles[0], abs=0.005)
    else:
        np.testing.assert_allclose(np.sort_complex(eig), np.sort_complex(poles), atol=0.005)
        zeta = -eig[0].real / abs(eig[0])
        overshoot = 100 * math.exp(-zeta * math.pi / math.sqrt(1 - zeta**2))
        assert overshoot == pytest.approx(49.8 if kw == 4.0 else 22.1, abs=0.1)


@pytest.mark.parametrize("integrator", ["euler", "semi_implicit_euler", "rk4"])
def test_horizontal_frictionless_arm_keeps_its_speed(integrator):
    plant = arm_plant(ArmParams(gravity=0.0, friction=0.0, integrator=integrator))
    traj = neuroctl.simulate(plant, None, np.array([[0.2, 1.5], [-1.0, -0.3]]), 100)
    speed = np.broadcast_to(traj.states[:, :1, 1], traj.states[..., 1].shape)
    np.testing.assert_allclose(traj.states[..., 1], speed, rtol=0, atol=1e-13)
    expected = traj.states[:, :1, 0] + traj.states[:, :1, 1] * traj.times
    np.testing.assert_allclose(traj.states[..., 0], expected, atol=1e-12)


def test_frictionless_arm_conserves_energy_with_rk4():
    p = ArmParams(friction=0.0, integrator="rk4", dt=0.005)
    traj = neuroctl.simulate(arm_plant(p), None, np.array([2.0, 0.0]), 600)
    theta, omega = traj.states[:, 0], traj.states[:, 1]
    energy = 0.5 * p.inertia * omega**2 - p.mass * p.gravity * p.length / 2 * np.cos(theta)
    assert np.ptp(energy) < 1e-7 * abs(energy[0])
    assert np.ptp(theta) > 3.9  # it really swings from 2 to -2 rad


@pytest.mark.parametrize("target", [-1.2, 0.0, 0.4, 1.5])
def test_equilibrium_torque_holds_the_arm_still(target):
    p = ArmParams(mass=1.7, length=0.6)
    plant = arm_plant(p)
    x_eq, u_eq = plant.equilibrium([target])
    assert u_eq[0] == pytest.approx(1.7 * 9.81 * 0.3 * math.sin(target), rel=1e-14)
    x = x_eq
    for _ in range(50):
        x = plant.step(x, u_eq)
    np.testing.assert_allclose(x, [target, 0.0], atol=1e-12)
    assert abs(plant.step(x_eq, u_eq * 0.9)[1]) > 1e-4 or target == 0.0


def test_pd_gravity_controller_reaches_targets_within_3_seconds():
    p = ArmParams()
    targets = np.linspace(p.target_low, p.target_high, 9)[:, None]
    x0 = np.stack([np.linspace(-0.1, 0.1, 9), np.zeros(9)], axis=-1)
    traj = neuroctl.simulate(
        arm_plant(p), pd_gravity_controller(p), x0, round(3.0 / p.dt), reference=targets
    )
    err = targets[:, 0] - traj.states[:, -1, 0]
    assert np.abs(err).max() < 0.05
    assert np.abs(traj.states[:, -1, 1]).max() < 0.1
    assert np.abs(traj.inputs).max() == pytest.approx(p.max_torque)  # saturation was active


def test_pd_response_matches_sampled_linear_second_order_system():
    # Horizontal arm: I θ̈ = u - b θ̇ is linear; with u held over each sample (ZOH) the exact
    # discrete model is python-control's c2d. RK4 must agree with it to its O(dt^4) accuracy.
    p = ArmParams(gravity=0.0, integrator="rk4", dt=0.01, max_torque=1e3)
    kp, kd, target = 6.0, 1.0, 0.8
    plant = arm_plant(p)
    traj = neuroctl.simulate(
        plant, pd_gravity_controller(p, kp=kp, kd=kd), [0.0, 0.0], 300, reference=[target]
    )
    sysc = control.ss([[0, 1], [0, -p.friction / p.inertia]], [[0], [1 / p.inertia]], np.eye(2), 0)
    sysd = control.c2d(sysc, p.dt, "zoh")
    k = np.array([[kp, kd]])
    closed = control.ss(sysd.A - sysd.B @ k, sysd.B * kp, np.eye(2), 0, p.dt)
    resp = control.forced_response(closed, T=traj.times, U=np.full(traj.times.size, target))
    np.testing.assert_allclose(traj.states, resp.states.T, atol=1e-7)
    # and the sampled response is close to the continuous second-order one (poles of
    # I s² + (b + kd) s + kp) -- overshoot from the closed form
    zeta = (p.friction + kd) / (2 * math.sqrt(kp * p.inertia))
    overshoot = math.exp(-zeta * math.pi / math.sqrt(1 - zeta**2))
    assert traj.states[:, 0].max() / target - 1 == pytest.approx(overshoot, abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mass": -1.0}, ValueError, r"mass: expected a number > 0, received -1"),
        ({"length": 0.0}, ValueError, r"length: expected a number > 0"),
        ({"friction": -0.1}, ValueError, r"friction: expected a number >= 0"),
        ({"dt": float("nan")}, ValueError, r"dt: expected a finite number"),
        ({"max_torque": "10"}, TypeError, r"max_torque: expected a real number"),
        ({"target_low": 1.0, "target_high": 0.0}, ValueError, r"target_low <= target_high"),
        ({"integrator": "rk45"}, ValueError, r"integrator: expected one of"),
        ({"mas": 1.0}, TypeError, r"unknown keyword.*'mas'.*expected some of.*'mass'"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ArmEnv(**kwargs)


def test_bad_reset_options_raise():
    env = ArmEnv()
    with pytest.raises(ValueError, match=r"options\['target'\].*finite"):
        env.reset(options={"target": np.nan})
    with pytest.raises(ValueError, match="render_mode"):
        ArmEnv(render_mode="human")


def test_rgb_array_render_follows_the_state():
    env = ArmEnv(render_mode="rgb_array")
    env.reset(seed=0, options={"angle": 0.0, "velocity": 0.0, "target": math.pi / 2})
    down = env.render()
    assert down.shape == (256, 256, 3) and down.dtype == np.uint8
    env.reset(seed=0, options={"angle": math.pi / 2, "velocity": 0.0, "target": math.pi / 2})
    right = env.render()
    assert not np.array_equal(down, right)
    # the rod hangs down at θ = 0 and points right at θ = π/2 (world: pivot at the centre)
    blue = np.array([40, 70, 160])
    below, to_right = down[200, 128], down[128, 200]
    assert np.array_equal(below, blue) and not np.array_equal(to_right, blue)
    assert np.array_equal(right[128, 200], blue) and not np.array_equal(right[200, 128], blue)
    frames = ArmVectorEnv(num_envs=2, render_mode="rgb_array")
    frames.reset(seed=0)
    assert len(frames.render()) == 2
