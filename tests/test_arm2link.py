"""neuroctl/Arm2Link-v0: the two-link reaching arm (Li & Todorov 2004 parameters)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from neuroctl.envs.arm2link import (
    Arm2LinkEnv,
    Arm2LinkParams,
    Arm2LinkVectorEnv,
    arm2link_kinetic_energy,
    arm2link_mass_matrix,
    arm2link_plant,
    arm2link_rhs,
    pd_gravity_controller,
)

import neuroctl

CHECKER_ADVICE = [
    "ignore:.*symmetric and normalized.*:UserWarning",
    "ignore:.*infinity.*:UserWarning",
]

# REFERENCE.md, two-link planar reaching arm (Li & Todorov 2004)
M1, M2, L1, L2, S1, S2, I1, I2 = 1.4, 1.1, 0.30, 0.33, 0.11, 0.16, 0.025, 0.045
B = np.array([[0.05, 0.025], [0.025, 0.05]])


def reference_mass_matrix(q2):
    a1, a2, a3 = I1 + I2 + M2 * L1**2, M2 * L1 * S2, I2
    c = math.cos(q2)
    return np.array([[a1 + 2 * a2 * c, a3 + a2 * c], [a3 + a2 * c, a3]])


@pytest.mark.filterwarnings(*CHECKER_ADVICE)
@pytest.mark.parametrize("gravity", [0.0, 9.81])
def test_check_env_passes(gravity):
    env = gym.make("neuroctl/Arm2Link-v0", render_mode="rgb_array", gravity=gravity)
    assert isinstance(env.unwrapped, Arm2LinkEnv)
    check_env(env.unwrapped)


def test_default_parameters_are_li_todorov():
    p = Arm2LinkParams()
    assert (p.m1, p.m2, p.l1, p.l2, p.s1, p.s2, p.I1, p.I2) == (M1, M2, L1, L2, S1, S2, I1, I2)
    np.testing.assert_array_equal(np.asarray(p.friction), B)
    assert p.gravity == 0.0  # horizontal plane, as in Li & Todorov


def test_mass_matrix_matches_reference_and_is_symmetric_positive_definite():
    p = Arm2LinkParams()
    q = np.random.default_rng(0).uniform(-math.pi, math.pi, size=(200, 2))
    m = arm2link_mass_matrix(q, p)
    assert m.shape == (200, 2, 2)
    for qi, mi in zip(q, m):
        np.testing.assert_allclose(mi, reference_mass_matrix(qi[1]), rtol=1e-14)
    np.testing.assert_array_equal(m, np.swapaxes(m, -1, -2))
    assert np.linalg.eigvalsh(m).min() > 0


def test_rhs_solves_the_equation_of_motion():
    p = Arm2LinkParams(gravity=9.81)
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=(50, 4))
    u = rng.uniform(-5, 5, size=(50, 2))
    dx = arm2link_rhs(x, u, p)
    np.testing.assert_array_equal(dx[:, :2], x[:, 2:])
    for xi, ui, dxi in zip(x, u, dx):
        q1, q2, w1, w2 = xi
        a2 = M2 * L1 * S2
        coriolis = a2 * math.sin(q2) * np.array([-w2 * (2 * w1 + w2), w1**2])
        s12 = math.sin(q1 + q2)
        grav = 9.81 * np.array([(M1 * S1 + M2 * L1) * math.sin(q1) + M2 * S2 * s12, M2 * S2 * s12])
        rhs = ui - coriolis - B @ xi[2:] - grav
        np.testing.assert_allclose(
            dxi[2:], np.linalg.solve(reference_mass_matrix(q2), rhs), rtol=1e-12, atol=1e-12
        )


def test_kinetic_energy_decreases_with_friction_and_no_torque():
    p = Arm2LinkParams(integrator="rk4", dt=0.005)
    x0 = np.array([[0.3, 1.0, 4.0, -3.0], [1.0, 0.2, -2.0, 5.0]])
    traj = neuroctl.simulate(arm2link_plant(p), None, x0, 400)
    energy = arm2link_kinetic_energy(traj.states, p)
    assert (np.diff(energy, axis=-1) < 0).all()
    assert (energy[:, -1] < 0.5 * energy[:, 0]).all()
    # its rate is the friction power -q̇ᵀ B q̇ (dT/dt = q̇ᵀ(τ - B q̇) with a correct Coriolis term)
    w = traj.states[..., 2:]
    power = -np.einsum("...i,ij,...j->...", w, B, w)
    rate = np.gradient(energy, p.dt, axis=-1)
    np.testing.assert_allclose(rate[:, 1:-1], power[:, 1:-1], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("gravity", [0.0, 9.81])
def test_frictionless_arm_conserves_energy(gravity):
    # T + V is conserved only if M, C and G are mutually consistent (of the unconstrained
    # model: the speed limit, a projection that takes energy out, is set out of reach)
    p = Arm2LinkParams(
        friction=((0.0, 0.0), (0.0, 0.0)),
        gravity=gravity,
        integrator="rk4",
        dt=0.002,
        max_speed=1e3,
    )
    traj = neuroctl.simulate(arm2link_plant(p), None, np.array([0.5, 1.0, 3.0, -4.0]), 1000)
    q1, q2 = traj.states[:, 0], traj.states[:, 1]
    potential = -gravity * ((M1 * S1 + M2 * L1) * np.cos(q1) + M2 * S2 * np.cos(q1 + q2))
    energy = arm2link_kinetic_energy(traj.states, p) + potential
    assert np.ptp(energy) < 1e-7 * abs(energy[0])
    assert np.ptp(q2) > 1.0  # the elbow really moved


def test_numpy_and_torch_give_the_same_step():
    plant = arm2link_plant(Arm2LinkParams(gravity=9.81, integrator="rk4"))
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, size=(40, 4))
    u = rng.uniform(-12, 12, size=(40, 2))
    xt = plant.step(torch.as_tensor(x), torch.as_tensor(u)).numpy()
    np.testing.assert_allclose(plant.step(x, u), xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(plant.step(x[0], u[0]), xt[0], rtol=0, atol=1e-12)


def test_autograd_jacobian_at_equilibrium_matches_closed_form():
    p = Arm2LinkParams(gravity=9.81)
    q = np.array([0.4, 1.1])
    x_eq, u_eq = arm2link_plant(p).equilibrium(q)
    x = torch.as_tensor(x_eq)
    u = torch.as_tensor(u_eq)
    ja, jb = torch.autograd.functional.jacobian(lambda x_, u_: arm2link_rhs(x_, u_, p), (x, u))
    minv = np.linalg.inv(reference_mass_matrix(q[1]))
    c1, c12 = math.cos(q[0]), math.cos(q[0] + q[1])
    dg = 9.81 * np.array(
        [[(M1 * S1 + M2 * L1) * c1 + M2 * S2 * c12, M2 * S2 * c12], [M2 * S2 * c12, M2 * S2 * c12]]
    )
    a = np.block([[np.zeros((2, 2)), np.eye(2)], [-minv @ dg, -minv @ B]])
    np.testing.assert_allclose(ja.numpy(), a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jb.numpy(), np.vstack([np.zeros((2, 2)), minv]), rtol=1e-12)
    # the equilibrium torque is the gravity torque, and it holds the arm still
    np.testing.assert_allclose(arm2link_rhs(x_eq, u_eq, p), 0.0, atol=1e-14)


@pytest.mark.parametrize("gravity", [0.0, 9.81])
def test_pd_gravity_controller_reaches_targets_within_3_seconds(gravity):
    p = Arm2LinkParams(gravity=gravity)
    rng = np.random.default_rng(4)
    targets = rng.uniform(p.target_low, p.target_high, size=(16, 2))
    x0 = np.concatenate([np.broadcast_to(p.home, (16, 2)), np.zeros((16, 2))], axis=-1)
    traj = neuroctl.simulate(
        arm2link_plant(p), pd_gravity_controller(p), x0, 150, reference=targets
    )
    assert np.abs(targets - traj.states[:, -1, :2]).max() < 0.05
    assert np.abs(traj.states[:, -1, 2:]).max() < 0.1


def test_env_step_equals_plant_step_and_clips():
    env = gym.make("neuroctl/Arm2Link-v0", gravity=9.81)
    plant = env.unwrapped.plant
    opts = {"angle": [0.2, 0.9], "velocity": [0.1, -0.3], "target": [1.0, 1.5]}
    env.reset(seed=0, options=opts)
    obs, reward, *_ = env.step(np.array([3.0, 50.0], np.float32))
    x1 = plant.step(np.array([0.2, 0.9, 0.1, -0.3]), np.array([3.0, 10.0]))
    np.testing.assert_allclose(env.unwrapped.state, x1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(obs, plant.observe(x1, np.array([1.0, 1.5])).astype(np.float32))
    expected = -(0.8**2 + 0.6**2 + 0.1 * (0.01 + 0.09) + 0.001 * (9 + 100))
    assert reward == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0.0, np.nan], np.float32))


def test_vector_env_matches_single_envs_and_seeding():
    n, steps = 4, 25
    rng = np.random.default_rng(5)
    angle, velocity = rng.uniform(0, 1, (n, 2)), rng.uniform(-1, 1, (n, 2))
    target = rng.uniform(0, 1, (n, 2))
    actions = rng.uniform(-12, 12, size=(steps, n, 2)).astype(np.float32)
    venv = gym.make_vec(
        "neuroctl/Arm2Link-v0", num_envs=n, vectorization_mode="vector_entry_point", gravity=9.81
    )
    assert isinstance(venv, Arm2LinkVectorEnv)
    venv.reset(seed=0, options={"angle": angle, "velocity": velocity, "target": target})
    singles = [gym.make("neuroctl/Arm2Link-v0", gravity=9.81) for _ in range(n)]
    for i, e in enumerate(singles):
        e.reset(options={"angle": angle[i], "velocity": velocity[i], "target": target[i]})
    for k in range(steps):
        vobs, vrew, *_ = venv.step(actions[k])
        for i, e in enumerate(singles):
            obs, rew, *_ = e.step(actions[k, i])
            np.testing.assert_allclose(venv.unwrapped.state[i], e.unwrapped.state, atol=1e-12)
            assert vrew[i] == pytest.approx(rew, rel=1e-12, abs=1e-12)

    def rollout(seed):
        env = Arm2LinkEnv()
        out = [env.reset(seed=seed)[0]]
        env.action_space.seed(seed)
        out += [env.step(env.action_space.sample())[0] for _ in range(30)]
        return np.stack(out)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.allclose(rollout(3), rollout(4))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"m1": 0.0}, ValueError, r"m1: expected a number > 0, received 0"),
        ({"s2": 0.5}, ValueError, r"s1 <= l1, s2 <= l2"),
        ({"friction": ((0.05, 0.0), (0.025, 0.05))}, ValueError, r"symmetric positive semi"),
        ({"friction": ((-0.05, 0.0), (0.0, 0.05))}, ValueError, r"symmetric positive semi"),
        ({"friction": (0.1, 0.2)}, ValueError, r"friction: expected a finite 2×2 matrix"),
        ({"max_torque": (1.0, -1.0)}, ValueError, r"max_torque: expected values > 0"),
        ({"target_low": (1.0, 1.0, 1.0)}, ValueError, r"target_low: expected a number or a pair"),
        ({"gravity": float("inf")}, ValueError, r"gravity: expected a finite number"),
        ({"length": 1.0}, TypeError, r"unknown keyword.*'length'.*expected some of"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Arm2LinkEnv(**kwargs)


def test_rgb_array_render_follows_the_state():
    env = Arm2LinkEnv(render_mode="rgb_array")
    env.reset(seed=0, options={"angle": [0.0, 0.0], "target": [0.0, 0.0]})
    straight_down = env.render()
    assert straight_down.shape == (256, 256, 3) and straight_down.dtype == np.uint8
    env.reset(seed=0, options={"angle": [math.pi / 2, 0.0], "target": [0.0, 0.0]})
    straight_right = env.render()
    assert not np.array_equal(straight_down, straight_right)
    blue = np.array([40, 70, 160])
    # hand at 0.63 m of a 0.7245 m half-window: about pixel 128 + 0.85 * 128 = 237
    assert np.array_equal(straight_down[230, 128], blue)
    assert np.array_equal(straight_right[128, 230], blue)
    assert not np.array_equal(straight_right[230, 128], blue)
