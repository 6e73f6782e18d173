"""neuroctl.plant_jacobians / operating_point / linearize / lqr.

Independent sources: python-control's own ``linearize`` (finite differences), ``feedback``,
``lqr`` and ``dlqr``; closed forms of the arm (I θ̈ = u - b θ̇ - k_g sin θ); scipy's brentq.
"""

from __future__ import annotations

import math

import control
import numpy as np
import pytest
import torch
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller
from scipy.optimize import brentq
from torch import nn

import neuroctl as nc

F64 = torch.float64


def _closed_loop_nlsys(plant, net, cont):
    """The closed loop as a python-control nlsys with the reference as input (test's own)."""

    def upd(t, x, r, params):
        with torch.no_grad():
            u = net(torch.as_tensor(plant.observe(x, r))).numpy()
        u = plant.saturate(u)
        return plant.rhs(x, u) if cont else plant.step(x, u)

    return control.nlsys(upd, None, inputs=1, states=2, outputs=2, dt=0 if cont else plant.dt)


def _arm_closed_form(p: ArmParams, theta):
    I, b, kg = p.inertia, p.friction, p.gravity_torque
    A = np.array([[0.0, 1.0], [-kg * math.cos(theta) / I, -b / I]])
    B = np.array([[0.0], [1.0 / I]])
    C = np.array([[-1.0, 0], [0, 1], [math.cos(theta), 0], [-math.sin(theta), 0]])
    return A, B, C


@pytest.mark.parametrize("continuous", [True, False])
@pytest.mark.parametrize("act", ["tanh", "softplus", "gelu"])
def test_linearize_agrees_with_control_linearize_on_smooth_loops(act, continuous):
    arm = arm_plant(ArmParams())
    net = nc.mlp(4, 1, (16,), act, seed=1, dtype=F64, output_scale=3.0)
    op = nc.operating_point(arm, net, reference=[0.4], continuous=continuous)
    assert op.success
    lin = nc.linearize(arm, net, op)
    assert lin.continuous == continuous and len(lin.regions) == 1
    fd = control.linearize(_closed_loop_nlsys(arm, net, continuous), op.x, op.r)
    cl = lin.regions[0].closed_loop
    scale = max(1.0, np.abs(cl.A).max())
    assert np.abs(cl.A - fd.A).max() <= 1e-6 * scale
    assert np.abs(cl.B[:, [cl.input_labels.index("target")]] - fd.B).max() <= 1e-6 * scale
    pl = control.linearize(arm.to_nlsys(continuous=continuous), op.x, np.r_[op.u, op.r])
    assert np.abs(lin.plant_ss.A - pl.A).max() <= 1e-6 * scale
    assert np.abs(lin.plant_ss.B - pl.B[:, :1]).max() <= 1e-6 * scale
    assert np.abs(lin.plant_ss.C - pl.C).max() <= 1e-6


def test_plant_jacobians_equal_the_closed_form():
    p = ArmParams(friction=0.3, gravity=9.81)
    arm = arm_plant(p)
    for theta in (0.0, 0.7, -2.0):
        j = nc.plant_jacobians(arm, [theta, 0.5], [1.0], r=[0.2], continuous=True)
        A, B, C = _arm_closed_form(p, theta)
        np.testing.assert_allclose(j.A, A, atol=1e-14)
        np.testing.assert_allclose(j.B, B, atol=1e-14)
        np.testing.assert_allclose(j.C, C, atol=1e-14)
        np.testing.assert_allclose(j.Cr, [[1.0], [0], [0], [0]], atol=1e-14)


def test_operating_point_reports_the_steady_state_error_of_an_uncompensated_controller():
    p = ArmParams(gravity=9.81)
    arm = arm_plant(p)
    kp, r = 10.0, 0.8
    op = nc.operating_point(arm, nc.linear_controller([[kp, -1.0, 0.0, 0.0]]), reference=[r])
    theta = brentq(lambda t: kp * (r - t) - p.gravity_torque * math.sin(t), -1.0, r)
    assert op.success and op.residual_norm < 1e-12
    assert op.x[0] == pytest.approx(theta, abs=1e-12)
    assert op.steady_state_error[0] == pytest.approx(theta - r, abs=1e-12)
    # gravity compensation removes it
    op2 = nc.operating_point(arm, pd_gravity_controller(p), reference=[r])
    assert abs(op2.steady_state_error[0]) < 1e-12


def _scalar_relu_loop():
    plant = nc.Plant(states=["x"], inputs=["u"], dt=1.0, update=lambda x, u: x + u)
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU(), nn.Linear(1, 1, bias=False))
    net = net.double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(-0.5)
    return plant, net


def test_scalar_kink_gives_two_closed_loops_where_control_linearize_gives_one():
    plant, net = _scalar_relu_loop()
    op = nc.OperatingPoint.at(plant, net, [0.0])
    lin = nc.linearize(plant, net, op)
    assert lin.at_kink
    A = sorted(float(r.A_cl[0, 0]) for r in lin.regions)
    assert A == [0.5, 1.0]  # x > 0: 1 - 0.5; x < 0: 1
    for cl in lin.closed_loops:
        assert cl.ninputs >= 1 and cl.dt == 1.0
    fd = control.linearize(
        control.nlsys(
            lambda t, x, u, p: plant.step(x, _eval(net, x)), None, inputs=1, states=1, dt=1.0
        ),
        [0.0],
        [0.0],
    )
    assert fd.A.shape == (1, 1) and any(abs(fd.A[0, 0] - a) < 1e-6 for a in A)


def _eval(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, float))).numpy()


def test_arm_relu_unit_at_the_target_gives_both_regions():
    arm = arm_plant(ArmParams(gravity=0.0))
    net = nn.Sequential(nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0]]))
        net[0].bias.zero_()
        net[2].weight.fill_(4.0)
        net[2].bias.zero_()
    op = nc.operating_point(arm, net, reference=[0.3])
    assert op.x[0] == pytest.approx(0.3, abs=1e-12)
    lin = nc.linearize(arm, net, op)
    assert lin.at_kink and len(lin.regions) == 2
    I, b = 1 / 3, 0.5
    got = sorted((r.A_cl.tolist() for r in lin.regions), key=lambda a: a[1][0])
    np.testing.assert_allclose(got[0], [[0, 1], [-4 / I, -b / I]], atol=1e-12)  # active
    np.testing.assert_allclose(got[1], [[0, 1], [0, -b / I]], atol=1e-12)  # inactive
    fd = control.linearize(_closed_loop_nlsys(arm, net, True), op.x, op.r)
    assert min(np.abs(fd.A - np.array(g)).max() for g in got) < 1e-5  # one of them only


def test_saturated_input_has_zero_gain():
    p = ArmParams(gravity=9.81, max_torque=2.0)
    arm = arm_plant(p)
    net = nc.linear_controller([[50.0, -5.0, 0.0, 0.0]])
    op = nc.operating_point(arm, net, reference=[2.5], guess=[0.3, 0.0])
    assert op.success
    theta = math.asin(p.max_torque / p.gravity_torque)
    assert op.x[0] == pytest.approx(theta, abs=1e-10)
    assert op.u[0] == pytest.approx(2.0) and op.u_command[0] > 2.0
    lin = nc.linearize(arm, net, op)
    (reg,) = lin.regions
    assert reg.saturated.tolist() == [True]
    A, _, _ = _arm_closed_form(p, theta)
    np.testing.assert_allclose(reg.A_cl, A, atol=1e-12)
    assert not np.any(reg.loop.C)


def test_closed_loop_equals_python_control_feedback_of_plant_and_gain():
    arm = arm_plant(ArmParams(gravity=9.81))
    net = nc.mlp(4, 1, (8,), "tanh", seed=3, dtype=F64, output_scale=5.0)
    lin = nc.linearize(arm, net, reference=[0.5])
    reg = lin.regions[0]
    plant = lin.plant_ss
    assert plant.input_labels == ["torque"] and plant.output_labels == list(arm.output_names)
    assert plant.state_labels == ["theta", "omega"]
    fb = control.feedback(plant, reg.controller, sign=+1)
    np.testing.assert_allclose(
        np.sort_complex(fb.poles()), np.sort_complex(reg.poles()), atol=1e-10
    )
    assert reg.closed_loop.input_labels == ["target", "torque_d"]
    assert reg.closed_loop.output_labels == ["theta", "omega", "torque"]
    # loop broken at the plant input: closed loop = L / (1 + L)
    np.testing.assert_allclose(
        np.sort_complex(control.feedback(reg.loop, 1).poles()),
        np.sort_complex(reg.poles()),
        atol=1e-10,
    )


@pytest.mark.parametrize("continuous", [True, False])
def test_lqr_gain_matches_python_control_and_places_the_poles(continuous):
    p = ArmParams(gravity=-9.81)  # upright: open-loop unstable
    arm = arm_plant(p)
    Q, R = np.diag([10.0, 1.0]), np.array([[0.1]])
    layer = nc.lqr(arm, ([0.0, 0.0], [0.0]), Q, R, continuous=continuous)
    assert isinstance(layer, nn.Linear) and layer.acts_on == "observation"
    if continuous:
        A, B, _ = _arm_closed_form(p, 0.0)
        K, _, E = control.lqr(A, B, Q, R)
        tol = 1e-9
    else:
        fd = control.linearize(arm.to_nlsys(), [0.0, 0.0], [0.0, 0.0])
        K, _, E = control.dlqr(fd.A, fd.B[:, :1], Q, R)
        tol = 1e-4
    np.testing.assert_allclose(layer.state_gain, K, rtol=tol, atol=tol)
    op = nc.OperatingPoint.at(arm, layer, [0.0, 0.0], reference=[0.0], continuous=continuous)
    lin = nc.linearize(arm, layer, op)
    np.testing.assert_allclose(
        np.sort_complex(lin.regions[0].poles()), np.sort_complex(E), atol=10 * tol
    )


def test_options_are_checked():
    arm = arm_plant(ArmParams())
    net = nc.mlp(4, 1, (4,), "tanh", seed=0)
    with pytest.raises(TypeError):
        nc.linearize(arm, net, eps=1e-6)
    with pytest.raises(ValueError, match="reference"):
        nc.operating_point(arm, net, reference=[0.0, 1.0])
    with pytest.raises(ValueError, match="on"):
        nc.lqr(arm, ([0, 0], [0]), np.eye(2), np.eye(1), on="output")
    lin = nc.linearize(arm, net, reference=[0.1])
    d = lin.to_dict()
    assert d["A"] == lin.jacobians.A.tolist() and len(d["regions"]) == 1


def test_linearize_stays_callable_after_importing_the_module():
    import neuroctl.linearize as module  # binds the package attribute to the module

    arm = arm_plant(ArmParams())
    net = nc.mlp(4, 1, (4,), "tanh", seed=0)
    lin = nc.linearize(arm, net, reference=[0.1])
    assert isinstance(lin, module.Linearization)
    np.testing.assert_allclose(
        lin.regions[0].A_cl, module.linearize(arm, net, lin.op).regions[0].A_cl
    )
