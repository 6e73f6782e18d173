"""Plant.from_nlsys on python-control's own example systems: Jacobians against
control.linearize, analysis and simulation against control.input_output_response, errors of
numpy-only functions."""

from __future__ import annotations

import control
import numpy as np
import pytest
import torch

import neuroctl
from neuroctl import Plant


# --- python-control's example systems, written as in its examples -----------------------------
def kincar_update(t, x, u, params):
    """Kinematic car of python-control's examples/kincar-flatsys.py (rear axle reference)."""
    l = params.get("wheelbase", 3.0)  # noqa: E741
    return np.array([np.cos(x[2]) * u[0], np.sin(x[2]) * u[0], (u[0] / l) * np.tan(u[1])])


def steering_update(t, x, u, params):
    """Vehicle steering of python-control's examples/steering-gainsched.py (numpy, arctan2)."""
    a = params.get("refoffset", 1.5)
    b = params.get("wheelbase", 3.0)
    maxsteer = params.get("maxsteer", 0.5)
    delta = np.clip(u[1], -maxsteer, maxsteer)
    alpha = np.arctan2(a * np.tan(delta), b)
    return np.array(
        [u[0] * np.cos(x[2] + alpha), u[0] * np.sin(x[2] + alpha), (u[0] / b) * np.tan(delta)]
    )


def steering_update_agnostic(t, x, u, params):
    """The same vehicle steering written once for numpy and torch."""
    xp = neuroctl.namespace(x, u)
    a, b = params.get("refoffset", 1.5), params.get("wheelbase", 3.0)
    delta = u[1]
    alpha = xp.atan(a * xp.tan(delta) / b)
    return xp.stack(
        [u[0] * xp.cos(x[2] + alpha), u[0] * xp.sin(x[2] + alpha), (u[0] / b) * xp.tan(delta)]
    )


def pendulum_update(t, x, u, params):
    """A damped pendulum with torque input (numpy only)."""
    g, l, b = params.get("g", 9.8), params.get("l", 1.0), params.get("b", 0.5)  # noqa: E741
    return np.array([x[1], -g / l * np.sin(x[0]) - b * x[1] + u[0]])


def kincar():
    return control.nlsys(
        kincar_update, None, states=["x", "y", "theta"], inputs=["v", "delta"],
        outputs=["x", "y", "theta"], name="kincar", params={"wheelbase": 3.0},
    )  # fmt: skip


def pendulum(**kw):
    return control.nlsys(
        pendulum_update, lambda t, x, u, params: x[:1], states=["theta", "omega"],
        inputs=["tau"], outputs=["angle"], name="pendulum", **kw,
    )  # fmt: skip


POINTS = [
    (np.array([0.5, -0.2, 0.3]), np.array([10.0, 0.05])),
    (np.array([-1.0, 2.0, 2.5]), np.array([-3.0, -0.3])),
]


def _assert_linearize_close(J, lin):
    # control.linearize uses forward differences (eps = 1e-6): ~1e-5 relative at best
    for mine, theirs in ((J.A, lin.A), (J.B, lin.B), (J.C, lin.C)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x0,u0", POINTS)
def test_kincar_jacobians_equal_control_linearize(x0, u0):
    sys = kincar()
    plant = Plant.from_nlsys(sys, dt=0.1)
    assert plant.state_names == ("x", "y", "theta") and plant.input_names == ("v", "delta")
    J = neuroctl.plant_jacobians(plant, x0, u0)
    _assert_linearize_close(J, control.linearize(sys, x0, u0))
    # the complex step is exact: equal to the closed form of the Jacobian to rounding
    l, th, v, d = 3.0, x0[2], u0[0], u0[1]
    A = np.array([[0, 0, -np.sin(th) * v], [0, 0, np.cos(th) * v], [0, 0, 0]])
    B = np.array([[np.cos(th), 0], [np.sin(th), 0], [np.tan(d) / l, v / l / np.cos(d) ** 2]])
    np.testing.assert_allclose(J.A, A, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(J.B, B, rtol=1e-15, atol=1e-15)


def test_autograd_through_numpy_function_equals_complex_step_hook():
    # the same plant differentiated by torch autograd (complex step in the backward pass)
    sys = kincar()
    plant = Plant.from_nlsys(sys, dt=0.1)
    x0, u0 = POINTS[0]
    J = neuroctl.plant_jacobians(plant, x0, u0)
    plant._jacobian_hook = None
    J2 = neuroctl.plant_jacobians(plant, x0, u0)
    np.testing.assert_allclose(J2.A, J.A, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(J2.B, J.B, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("x0,u0", POINTS)
def test_agnostic_update_uses_torch_and_equals_control_linearize(x0, u0):
    sys = control.nlsys(
        steering_update_agnostic, None, states=3, inputs=["v", "delta"], name="steering",
        params={"refoffset": 1.5, "wheelbase": 3.0},
    )  # fmt: skip
    plant = Plant.from_nlsys(sys, dt=0.05)
    assert plant._jacobian_hook is None  # autograd on the function itself
    _assert_linearize_close(neuroctl.plant_jacobians(plant, x0, u0), control.linearize(sys, x0, u0))
    # batched numpy and torch evaluations equal python-control's own evaluation per row
    xs = np.stack([p[0] for p in POINTS])
    us = np.stack([p[1] for p in POINTS])
    want = np.stack([sys._rhs(0.0, x, u) for x, u in zip(xs, us)])
    np.testing.assert_allclose(plant.rhs(xs, us), want, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(
        plant.rhs(torch.tensor(xs), torch.tensor(us)).numpy(), want, rtol=1e-15, atol=1e-15
    )


def test_numpy_only_without_complex_support_says_what_to_write():
    plant = Plant.from_nlsys(
        control.nlsys(steering_update, None, states=3, inputs=2, name="steering"), dt=0.05
    )
    x0, u0 = POINTS[0]
    with pytest.raises(TypeError, match=r"steering.*neuroctl\.namespace\(x\)"):
        neuroctl.plant_jacobians(plant, x0, u0)
    # simulation (no derivative) still works through numpy
    np.testing.assert_allclose(plant.rhs(x0, u0), steering_update(0, x0, u0, {}), rtol=1e-15)


def test_verification_on_sets_needs_the_agnostic_form():
    plant = Plant.from_nlsys(kincar(), dt=0.1)

    class Box:  # a set object: neither numpy nor torch
        shape = (3,)

    with pytest.raises(TypeError, match=r"numpy-only.*neuroctl\.namespace\(x\)"):
        plant.rhs(Box(), Box())


def test_discrete_nlsys_jacobians_and_dt():
    dt = 0.1

    def upd(t, x, u, params):
        return np.array([x[0] + dt * x[1], x[1] + dt * (-np.sin(x[0]) + u[0] * np.cos(x[0]))])

    sys = control.nlsys(upd, None, states=["q", "v"], inputs=["f"], dt=dt, name="dpend")
    plant = Plant.from_nlsys(sys)
    assert plant.dt == dt and not plant.is_continuous
    x0, u0 = np.array([0.7, -0.3]), np.array([0.4])
    _assert_linearize_close(neuroctl.plant_jacobians(plant, x0, u0), control.linearize(sys, x0, u0))
    np.testing.assert_allclose(plant.step(x0, u0), upd(0, x0, u0, {}), rtol=1e-15)
    with pytest.raises(ValueError, match="dt: expected the sample time"):
        Plant.from_nlsys(sys, dt=0.2)
    with pytest.raises(ValueError, match="dt: system 'pendulum' is continuous"):
        Plant.from_nlsys(pendulum())
    with pytest.raises(TypeError, match="sys: expected a control.NonlinearIOSystem"):
        Plant.from_nlsys(upd, dt=0.1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        Plant.from_nlsys(sys, dtt=0.1)


def test_feedthrough_output_is_refused():
    sys = control.nlsys(
        pendulum_update, lambda t, x, u, params: x[:1] + u[:1], states=2, inputs=1, name="ft"
    )
    with pytest.raises(ValueError, match="feedthrough"):
        Plant.from_nlsys(sys, dt=0.01)


def _closed_loop(sys, K):
    def upd(t, x, u, params):
        return pendulum_update(t, x, -K @ x[:1], params)

    return control.nlsys(upd, None, states=2, inputs=0, outputs=2, name="cl")


def test_analyze_and_simulate_agree_with_python_control():
    sys = pendulum(params={"g": 9.8, "l": 1.0, "b": 0.5})
    plant = Plant.from_nlsys(sys, dt=0.002)
    assert plant.output_names == ("angle",)
    K = np.array([[20.0]])  # u = -K angle
    net = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        net.weight[:] = torch.tensor(-K)
    rep = neuroctl.analyze(plant, net, step_input="tau_d", step_output="theta")
    cl = _closed_loop(sys, K)
    want = np.linalg.eigvals(control.linearize(cl, [0, 0], []).A)
    np.testing.assert_allclose(np.sort_complex(rep.regions[0].poles), np.sort_complex(want),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    assert rep.verdict == "stable"
    # simulate (RK4 at 2 ms, the command held over each step) against solve_ivp at tight
    # tolerance, step by step with the same sampled control law
    x0 = np.array([0.8, 0.0])
    steps, dt = 200, plant.dt
    traj = neuroctl.simulate(plant, net, x0, steps=steps)
    x, want = x0, [x0]
    for _ in range(steps):
        u = -K @ x[:1]
        resp = control.input_output_response(
            sys, [0.0, dt], np.repeat(u[:, None], 2, axis=1), x, solve_ivp_method="DOP853",
            solve_ivp_kwargs={"rtol": 1e-13, "atol": 1e-13},
        )  # fmt: skip
        x = np.asarray(resp.states)[:, -1]
        want.append(x)
    np.testing.assert_allclose(traj.states, np.array(want), rtol=0, atol=1e-10)


def test_plain_plant_with_numpy_rhs_says_what_to_write():
    # written for one numpy state vector: the plant's probe at construction (a batch) says how
    def rhs(x, u):
        return np.array([x[1], -np.sin(x[0]) + u[0]])

    with pytest.raises(ValueError, match=r"rhs: .*batch axes.*neuroctl\.namespace\(x\)"):
        Plant(states=2, inputs=1, dt=0.01, rhs=rhs)


# numpy warns when np.sin converts a tensor; as for a user (warnings not errors), the plant's
# check of the result type then names the cause
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
def test_plain_plant_with_numpy_only_batched_rhs_says_what_to_write():
    def rhs_batched(x, u):  # batched, but numpy only: converts tensors silently
        return np.stack([x[..., 1], -np.sin(x[..., 0]) + u[..., 0]], -1)

    with pytest.raises(TypeError, match=r"rhs.*torch.*neuroctl\.namespace\(x\)"):
        Plant(states=2, inputs=1, dt=0.01, rhs=rhs_batched)


def _dpend(update_name):
    dt = 0.1

    def upd_numpy(t, x, u, params):
        return np.array([x[0] + dt * x[1], x[1] + dt * (-np.sin(x[0]) + u[0])])

    def upd_agnostic(t, x, u, params):
        xp = neuroctl.namespace(x)
        return xp.stack([x[0] + dt * x[1], x[1] + dt * (-xp.sin(x[0]) + u[0])])

    fn = {"numpy": upd_numpy, "agnostic": upd_agnostic}[update_name]
    return Plant.from_nlsys(control.nlsys(fn, None, states=["q", "v"], inputs=["f"], dt=dt))


def test_reach_on_agnostic_nlsys_encloses_simulations_and_numpy_one_says_what_to_write():
    from neuroctl.verify import reach

    ctrl = neuroctl.linear_controller(np.array([[-1.0, -1.0]]))
    lo, hi = np.array([-0.1, -0.1]), np.array([0.1, 0.1])
    res = reach(_dpend("agnostic"), ctrl, lo, hi, 3)
    x0 = np.random.default_rng(0).uniform(lo, hi, size=(500, 2))
    traj = neuroctl.simulate(_dpend("agnostic"), ctrl, x0, steps=3)
    assert np.all(traj.states >= res.lower - 1e-12) and np.all(traj.states <= res.upper + 1e-12)
    with pytest.raises(TypeError, match=r"numpy-only.*sets.*neuroctl\.namespace\(x\)"):
        reach(_dpend("numpy"), ctrl, lo, hi, 3)
