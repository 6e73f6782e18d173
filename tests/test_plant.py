"""The Plant contract, its integrators and simulate(), against closed forms and Gymnasium."""

from __future__ import annotations

import math

import control
import gymnasium as gym
import numpy as np
import pytest
import torch
from _ulp import assert_ulp_close

import neuroctl
from neuroctl import Plant, linear_controller, namespace, simulate


def decay(x, u):
    return -x + u


def test_rk4_step_is_the_fourth_order_taylor_polynomial_of_exp():
    h = 0.1
    plant = Plant(states=1, inputs=1, dt=h, rhs=decay, integrator="rk4")
    x1 = plant.step(np.array([2.0]), np.array([0.0]))
    assert x1[0] == pytest.approx(2.0 * (1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24), rel=1e-15)


def test_rk4_converges_with_order_four_and_euler_with_order_one():
    def error(integrator, dt):
        plant = Plant(states=1, inputs=1, dt=dt, rhs=decay, integrator=integrator)
        traj = simulate(plant, None, np.array([1.0]), round(1.0 / dt))
        return abs(traj.states[-1, 0] - math.exp(-1.0))

    rk4_ratio = error("rk4", 0.1) / error("rk4", 0.05)
    euler_ratio = error("euler", 0.1) / error("euler", 0.05)
    assert rk4_ratio == pytest.approx(16.0, rel=0.05)
    assert euler_ratio == pytest.approx(2.0, rel=0.05)
    assert error("rk4", 0.05) < 1e-6


def test_euler_step_closed_form():
    plant = Plant(states=1, inputs=1, dt=0.3, rhs=decay, integrator="euler")
    np.testing.assert_allclose(plant.step(np.array([2.0]), np.array([1.0])), [2.0 + 0.3 * -1.0])


def pendulum_v1_plant(env):
    """Gymnasium's Pendulum-v1 written as a Plant: semi-implicit Euler, torque limit."""
    g, m, l = env.g, env.m, env.l

    def rhs(x, u):
        xp = namespace(x, u)
        acc = 3 * g / (2 * l) * xp.sin(x[..., 0]) + 3.0 / (m * l**2) * u[..., 0]
        return xp.stack([x[..., 1], acc], axis=-1)

    return Plant(
        states=["theta", "theta_dot"],
        inputs=["torque"],
        dt=env.dt,
        rhs=rhs,
        integrator="semi_implicit_euler",
        input_lower=-env.max_torque,
        input_upper=env.max_torque,
    )


def test_semi_implicit_euler_plant_reproduces_gymnasium_pendulum():
    env = gym.make("Pendulum-v1").unwrapped
    plant = pendulum_v1_plant(env)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(400):
        x = np.array(env.state, dtype=np.float64)
        # torques on a 1/64 grid (beyond the limit too): Pendulum multiplies the float32 torque in
        # float32, which is exact for these values
        u = (rng.integers(-192, 193, size=1) / 64).astype(np.float32)
        env.step(u)
        # Pendulum clips the speed at 8 rad/s before moving the angle; compare where it does not
        if abs(env.state[1]) < env.max_speed:
            np.testing.assert_allclose(
                plant.step(x, u.astype(np.float64)), env.state, rtol=0, atol=1e-12
            )
            compared += 1
    assert compared > 300


def test_simulate_matches_python_control_on_a_linear_closed_loop():
    # double integrator, explicit Euler: x+ = A x + B u with A = I + dt [[0,1],[0,0]], B = dt e2
    dt = 0.05
    plant = Plant(
        states=["p", "v"],
        inputs=["a"],
        dt=dt,
        integrator="euler",
        rhs=lambda x, u: namespace(x).stack([x[..., 1], u[..., 0]], axis=-1),
    )
    k = np.array([[2.0, 1.5]])
    traj = simulate(plant, linear_controller(-k), np.array([[1.0, 0.0], [-0.5, 2.0]]), 80)
    a = np.eye(2) + dt * np.array([[0.0, 1.0], [0.0, 0.0]])
    b = dt * np.array([[0.0], [1.0]])
    closed = control.ss(a - b @ k, np.zeros((2, 1)), np.eye(2), 0, dt)
    for i, x0 in enumerate(([1.0, 0.0], [-0.5, 2.0])):
        resp = control.initial_response(closed, T=traj.times, X0=x0)
        np.testing.assert_allclose(traj.states[i], resp.states.T, atol=1e-12)
        np.testing.assert_allclose(
            traj.inputs[i, :, 0], -(traj.states[i, :-1] @ k.T)[:, 0], atol=1e-12
        )


def test_simulate_records_saturated_inputs_and_is_differentiable():
    plant = Plant(
        states=1, inputs=1, dt=0.1, rhs=decay, integrator="euler", input_lower=-1.0, input_upper=1.0
    )
    gain = torch.tensor([[5.0]], dtype=torch.float64, requires_grad=True)
    traj = simulate(
        plant,
        lambda y: y @ gain.T,
        torch.tensor([0.5], dtype=torch.float64),
        3,
        differentiable=True,
    )
    # u0 = 2.5 saturates to 1 (zero gradient); x1 = 0.5 + 0.1 (1 - 0.5) = 0.55, u1 = 2.75 -> 1 ...
    assert traj.inputs[0, 0].item() == 1.0
    assert traj.states[1, 0].item() == pytest.approx(0.55)
    traj.states[-1, 0].backward()
    assert gain.grad.item() == 0.0  # saturated all along: d x_T / d gain = 0
    plant2 = Plant(states=1, inputs=1, dt=0.1, rhs=decay, integrator="euler")
    g2 = torch.tensor([[-0.5]], dtype=torch.float64, requires_grad=True)
    tr2 = simulate(
        plant2, lambda y: y @ g2.T, torch.tensor([1.0], dtype=torch.float64), 4, differentiable=True
    )
    tr2.states[-1, 0].backward()
    # x_k = (1 + dt (g - 1))^k x0  =>  d x_4 / d g = 4 dt (1 + dt (g - 1))^3
    assert g2.grad.item() == pytest.approx(4 * 0.1 * (1 + 0.1 * (-1.5)) ** 3, rel=1e-12)


def test_discrete_nlsys_reproduces_plant_step():
    from neuroctl.envs.arm import ArmParams, arm_plant

    plant = arm_plant(ArmParams())
    sys = plant.to_nlsys()
    assert sys.dt == plant.dt and sys.ninputs == 2  # torque, then the target reference
    t = np.arange(20) * plant.dt
    u = np.vstack([np.linspace(-12, 12, 20), np.full(20, 0.5)])
    resp = control.input_output_response(sys, t, u, X0=[0.3, 0.0])
    x = np.array([0.3, 0.0])
    for k in range(19):
        x = plant.step(x, u[:1, k])
    np.testing.assert_allclose(resp.states[:, -1], x, atol=1e-13)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dt": -0.1, "rhs": decay}, ValueError, r"dt: expected a positive finite number"),
        ({"dt": 0.1}, ValueError, r"exactly one of rhs= .* and update="),
        ({"dt": 0.1, "rhs": decay, "integrator": "rk45"}, ValueError, r"integrator: expected"),
        (
            {"dt": 0.1, "rhs": decay, "input_lower": 1.0, "input_upper": 0.0},
            ValueError,
            r"input_lower <= input_upper",
        ),
        ({"dt": 0.1, "rhs": decay, "sample_time": 0.1}, TypeError, r"sample_time"),
    ],
)
def test_bad_plant_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        Plant(states=1, inputs=1, **kwargs)


def test_semi_implicit_euler_rejects_odd_states():
    plant = Plant(states=3, inputs=1, dt=0.1, rhs=lambda x, u: x, integrator="semi_implicit_euler")
    with pytest.raises(ValueError, match="even size"):
        plant.step(np.zeros(3), np.zeros(1))
    assert neuroctl.INTEGRATORS["rk4"] is neuroctl.rk4


def test_saturate_equals_clip_for_numpy_and_torch():
    plant = Plant(
        states=1,
        inputs=3,
        dt=0.1,
        rhs=lambda x, u: x,
        input_lower=[-1.0, 0.0, -np.inf],
        input_upper=[1.0, 2.0, 5.0],
    )
    u = np.random.default_rng(0).normal(scale=4.0, size=(100, 3))
    u[0] = [np.nan, np.inf, -np.inf]
    expected = np.clip(u, [-1.0, 0.0, -np.inf], [1.0, 2.0, 5.0])
    np.testing.assert_array_equal(plant.saturate(u), expected)
    # clipping is exact in both libraries: equality is the right check here
    np.testing.assert_array_equal(plant.saturate(torch.as_tensor(u)).numpy(), expected)


def test_semi_implicit_euler_closed_form_on_numpy_and_torch():
    # v' = v + dt a, q' = q + dt v' elementwise, for one state and a batch, numpy and torch alike
    def rhs(x, u):
        xp = namespace(x, u)
        q, v = x[..., :2], x[..., 2:]
        return xp.concat([v, -3.0 * q - 0.5 * v + u], axis=-1)

    plant = Plant(states=4, inputs=2, dt=0.05, rhs=rhs, integrator="semi_implicit_euler")
    rng = np.random.default_rng(1)
    for shape in [(4,), (7, 4), (2, 3, 4)]:
        x = rng.normal(size=shape)
        u = rng.normal(size=(*shape[:-1], 2))
        q, v = x[..., :2], x[..., 2:]
        v_next = v + 0.05 * (-3.0 * q - 0.5 * v + u)
        expected = np.concatenate([q + 0.05 * v_next, v_next], axis=-1)
        got = plant.step(x, u)
        assert_ulp_close(got, expected, what="numpy step")
        assert got.shape == shape and not np.shares_memory(got, x)
        assert_ulp_close(
            plant.step(torch.as_tensor(x), torch.as_tensor(u)), expected, what="torch step"
        )


def test_advance_is_step_on_a_saturated_input():
    plant = Plant(
        states=2,
        inputs=1,
        dt=0.1,
        rhs=lambda x, u: namespace(x).concat([x[..., 1:], u - x[..., :1]], axis=-1),
        integrator="semi_implicit_euler",
        input_lower=-1.0,
        input_upper=1.0,
    )
    x = np.array([[0.3, -0.2], [1.0, 2.0]])
    u = np.array([[5.0], [-0.5]])
    np.testing.assert_array_equal(plant.advance(x, plant.saturate(u)), plant.step(x, u))
    # advance uses the input as given: beyond the bound it differs from step
    assert not np.array_equal(plant.advance(x, u), plant.step(x, u))


def test_namespace_is_numpy_for_arrays_and_scalars_and_compat_torch_for_tensors():
    import array_api_compat

    from neuroctl._array import is_torch

    assert namespace(np.zeros(2), 1.0, None) is np
    t = torch.zeros(2, requires_grad=True)
    assert namespace(np.zeros(2), t) is array_api_compat.array_namespace(t)
    assert is_torch(torch.nn.Parameter(torch.zeros(1))) and not is_torch(None)


def test_unstack_and_stack_round_trip_on_every_kind_of_array():
    from neuroctl._array import stack, unstack

    one = np.array([0.25, -1.5, 3.0])
    parts = unstack(one)
    assert all(type(p) is float for p in parts) and parts == [0.25, -1.5, 3.0]
    np.testing.assert_array_equal(stack(parts, like=one), one)
    assert stack(unstack(one.astype(np.float32)), like=one.astype(np.float32)).dtype == np.float32
    batch = np.arange(12.0).reshape(4, 3)
    cols = unstack(batch)
    assert [c.shape for c in cols] == [(4,)] * 3 and np.shares_memory(cols[1], batch)
    np.testing.assert_array_equal(stack(cols, like=batch), batch)
    t = torch.arange(6.0, dtype=torch.float64).reshape(2, 3).requires_grad_()
    a, b, c = unstack(t)
    joined = stack([a * b, c], like=t)
    assert joined.shape == (2, 2)
    joined.sum().backward()  # differentiable: d/dt of sum(a b + c)
    expected = np.stack([b.detach().numpy(), a.detach().numpy(), np.ones(2)], axis=-1)
    assert_ulp_close(t.grad, expected, what="torch gradient")
