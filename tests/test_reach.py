"""Closed-loop reachability and invariance, against sampling, simulation and closed forms."""

import numpy as np
import pytest
import torch
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller
from neuroctl.envs.ring_road.dynamics import idm_acceleration

from neuroctl import Plant, linear_controller, mlp, namespace, simulate
from neuroctl.pwl import saturated
from neuroctl.verify.reach import AffineForm, check_invariant, reach

ARM = ArmParams()
LIMIT = 0.5  # joint-angle limit [rad]
INIT_LO, INIT_HI = np.array([-0.3, -0.5]), np.array([0.3, 0.5])


def _arm_controller(kp, kd):
    """PD with gravity compensation and the torque limit written as ReLU layers."""
    pd = pd_gravity_controller(ARM, kp=kp, kd=kd)
    return saturated(torch.nn.Sequential(pd), -ARM.max_torque, ARM.max_torque)


# ------------------------------------------------------------------ affine arithmetic itself
@pytest.mark.parametrize(
    "name, fn, lo, hi",
    [
        ("sin", np.sin, -1.0, 2.5),
        ("cos", np.cos, -0.3, 0.4),
        ("tanh", np.tanh, -2.0, 1.0),
        ("exp", np.exp, -1.0, 1.0),
        ("sqrt", np.sqrt, 0.5, 4.0),
        ("reciprocal", lambda v: 1.0 / v, 2.0, 16.0),
        ("reciprocal_neg", lambda v: 1.0 / v, -3.0, -0.5),
        ("square", lambda v: v * v if not isinstance(v, AffineForm) else v.square(), -1.0, 3.0),
        ("pow4", lambda v: v**4, -1.0, 2.0),
        ("pow1.5", lambda v: v**1.5, 0.5, 2.0),
        ("relu", lambda v: np.maximum(v, 0.0), -1.0, 2.0),
        ("clip", lambda v: np.clip(v, -0.5, 0.7), -1.0, 2.0),
        ("abs", np.abs, -1.0, 2.0),
        ("poly", lambda v: v * np.sin(v) - 3.0 * v / (v + 4.0), -1.0, 1.0),
    ],
)
def test_affine_form_encloses_sampled_values(name, fn, lo, hi):
    # the form must contain f(x) for every x of the box, with the input's own noise symbol:
    # f(x) - (c + g_in eps(x)) must lie within the radius of the other symbols
    x = AffineForm.from_box(np.array([[lo]]), np.array([[hi]]))
    y = fn(x)
    t = np.linspace(lo, hi, 20001)
    eps = (t - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
    g = y.g[:, 0, 0]
    exact = fn(t)
    residual = exact - (y.c[0, 0] + g[0] * eps)
    assert np.all(np.abs(residual) <= np.abs(g[1:]).sum() + 1e-12)
    assert y.lower[0, 0] <= exact.min() + 1e-12 and exact.max() <= y.upper[0, 0] + 1e-12


def test_affine_form_keeps_correlations_exact_for_linear_maps():
    x = AffineForm.from_box(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
    z = x[..., 0] * 2.0 - x[..., 0] - x[..., 0] + x[..., 1]  # == x1: no growth
    np.testing.assert_allclose([z.lower[0], z.upper[0]], [1.0, 3.0], atol=1e-15)


# ------------------------------------------------------------------ linear loop: closed form
def _linear_plant(a_cl):
    a_cl = np.asarray(a_cl, float)

    def update(x, u):
        return (
            x @ torch.as_tensor(a_cl).T.to(x.dtype) + u if torch.is_tensor(x) else (x @ a_cl.T + u)
        )

    return Plant(states=2, inputs=2, dt=1.0, update=update)


@pytest.mark.parametrize(
    "a_cl, invariant",
    [
        ([[0.5, 0.3], [-0.2, 0.6]], True),  # infinity norm 0.8 <= 1
        ([[0.5, 0.6], [-0.2, 0.6]], False),  # infinity norm 1.1 > 1
    ],
)
def test_box_invariance_of_linear_loop_matches_infinity_norm(a_cl, invariant):
    # x+ = A x maps the cube [-1, 1]^2 into itself iff max_i sum_j |A_ij| <= 1 (closed form);
    # the plant is x+ = x @ A^T + u with u = 0 from a zero linear controller
    plant = _linear_plant(a_cl)
    ctrl = linear_controller(np.zeros((2, 2)))
    res = check_invariant(plant, ctrl, [-1.0, -1.0], [1.0, 1.0])
    assert res.holds is invariant
    row_norm = np.abs(np.asarray(a_cl)).sum(axis=1).max()
    assert bool(row_norm <= 1.0) is invariant
    if not invariant:
        ce = res.counterexample.states[0]
        assert np.any(np.abs(ce[res.exit_step]) > 1.0)
        np.testing.assert_allclose(ce[1], np.asarray(a_cl) @ ce[0], atol=1e-12)
    else:
        # linear loop: the zonotope is exact, the 1-step box is |A| @ [1, 1]
        np.testing.assert_allclose(res.reach.upper[1], np.abs(a_cl).sum(axis=1), atol=1e-9)


# ------------------------------------------------------------------ arm
def test_arm_controller_proved_to_keep_angle_within_limits_for_50_steps():
    plant = arm_plant(ARM)
    ctrl = _arm_controller(kp=10.0, kd=2.0)
    res = check_invariant(
        plant,
        ctrl,
        [-LIMIT, -np.inf],
        [LIMIT, np.inf],
        initial_lower=INIT_LO,
        initial_upper=INIT_HI,
        steps=50,
        semantics="discrete",  # checked below against plant.step (simulate)
    )
    assert res.holds is True and res.semantics == "discrete"
    assert res.reach.upper[:, 0].max() <= LIMIT and res.reach.lower[:, 0].min() >= -LIMIT
    # soundness: many simulations stay inside the reach boxes of their own initial sub-box
    rng = np.random.default_rng(0)
    x0 = rng.uniform(INIT_LO, INIT_HI, (4000, 2))
    tr = simulate(plant, ctrl, x0, 50)
    assert res.reach.contains(tr.states).all()
    for b in range(res.reach.n_boxes):
        mine = np.all((x0 >= res.reach.initial_lower[b]) & (x0 <= res.reach.initial_upper[b]), 1)
        s = tr.states[mine]
        assert np.all(s >= res.reach.box_lower[b] - 1e-12)
        assert np.all(s <= res.reach.box_upper[b] + 1e-12)


def test_arm_controller_that_leaves_the_limits_gives_a_simulated_counterexample():
    plant = arm_plant(ARM)
    ctrl = _arm_controller(kp=-8.0, kd=0.0)  # positive feedback beats gravity
    res = check_invariant(
        plant,
        ctrl,
        [-LIMIT, -np.inf],
        [LIMIT, np.inf],
        initial_lower=INIT_LO,
        initial_upper=INIT_HI,
        steps=50,
        semantics="discrete",
    )
    assert res.holds is False
    # re-simulate the counterexample independently with plant.step and the controller
    x = torch.as_tensor(res.counterexample.states[0, 0], dtype=torch.float64)
    r = torch.zeros(1, dtype=torch.float64)
    theta = [float(x[0])]
    with torch.no_grad():
        for _ in range(res.exit_step):
            x = plant.step(x, ctrl(plant.observe(x, r)))
            theta.append(float(x[0]))
    assert abs(theta[-1]) > LIMIT and max(abs(t) for t in theta[:-1]) <= LIMIT


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reach_sets_contain_random_simulations_for_relu_controllers(seed):
    plant = arm_plant(ARM)
    net = mlp(4, 1, (16, 16), seed=seed, dtype=torch.float64, output_scale=[5.0])
    res = reach(plant, net, INIT_LO * 0.3, INIT_HI * 0.3, 30, splits=3, semantics="discrete")
    assert np.isfinite(res.upper).all()
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(INIT_LO * 0.3, INIT_HI * 0.3, (3000, 2))
    x0 = np.concatenate([x0, res.initial_lower, res.initial_upper])
    tr = simulate(plant, net, x0, 30)
    assert res.contains(tr.states, atol=1e-12).all()


def test_zonotope_is_tighter_than_interval_propagation():
    plant = arm_plant(ARM)
    ctrl = _arm_controller(kp=10.0, kd=2.0)
    z = reach(plant, ctrl, INIT_LO * 0.2, INIT_HI * 0.2, 20, semantics="discrete")
    b = reach(plant, ctrl, INIT_LO * 0.2, INIT_HI * 0.2, 20, method="interval")
    tr = simulate(
        plant, ctrl, np.random.default_rng(3).uniform(INIT_LO * 0.2, INIT_HI * 0.2, (2000, 2)), 20
    )
    assert z.contains(tr.states).all() and b.contains(tr.states).all()
    assert np.all(z.upper - z.lower <= b.upper - b.lower + 1e-12)


# ------------------------------------------------------------------ ring: one AV behind a leader
DT = 0.1
SAFE_GAP = 5.0


def _follower_update(x, u, w):
    # gap s, AV speed v, leader speed v_l (constant, unknown in a range); AV: IDM + command
    xp = namespace(x, u)
    gap, v, v_lead = x[..., 0], x[..., 1], x[..., 2]
    accel = idm_acceleration(gap, v, v_lead) + u[..., 0]
    v_next = xp.maximum(v + DT * accel, 0.0)
    v_lead_next = v_lead + DT * w[..., 0]
    return xp.stack([gap + DT * (v_lead_next - v_next), v_next, v_lead_next], axis=-1)


FOLLOWER = Plant(
    states=["gap", "v", "v_lead"],
    inputs=["accel"],
    dt=DT,
    update=_follower_update,
    disturbances=["a_lead"],
    input_lower=-1.0,
    input_upper=1.0,
    name="av_follower",
)


def test_ring_av_gap_never_below_safe_value_for_leader_speeds_in_range():
    # the AV's correction: a ReLU network (saturated) on the state, small random weights
    net = mlp(3, 1, (8,), seed=4, dtype=torch.float64, output_scale=[0.2])
    ctrl = saturated(net, -1.0, 1.0)
    lo, hi = np.array([9.0, 4.0, 4.0]), np.array([11.0, 5.0, 5.0])
    res = check_invariant(
        FOLLOWER,
        ctrl,
        [SAFE_GAP, -np.inf, -np.inf],
        [np.inf] * 3,
        initial_lower=lo,
        initial_upper=hi,
        steps=100,
        max_boxes=512,
    )
    assert res.holds is True
    # the whole initial box is too wide for one set: the proof needed bisection
    assert res.n_boxes > 1
    unsplit = check_invariant(
        FOLLOWER,
        ctrl,
        [SAFE_GAP, -np.inf, -np.inf],
        [np.inf] * 3,
        initial_lower=lo,
        initial_upper=hi,
        steps=100,
        max_boxes=1,
        samples=16,
    )
    assert unsplit.holds is None
    rng = np.random.default_rng(5)
    tr = simulate(FOLLOWER, ctrl, rng.uniform(lo, hi, (3000, 3)), 100)
    assert res.reach.contains(tr.states).all()
    assert tr.states[..., 0].min() >= res.reach.lower[:, 0].min() >= SAFE_GAP


def test_ring_av_that_accelerates_blindly_violates_the_gap():
    full_throttle = torch.nn.Linear(3, 1).double().requires_grad_(False)
    full_throttle.weight.zero_()
    full_throttle.bias.fill_(1.0)
    ctrl = saturated(full_throttle, -1.0, 1.0)
    lo, hi = np.array([9.0, 4.0, 4.0]), np.array([11.0, 5.0, 5.0])
    res = check_invariant(
        FOLLOWER,
        ctrl,
        [SAFE_GAP, -np.inf, -np.inf],
        [np.inf] * 3,
        initial_lower=lo,
        initial_upper=hi,
        steps=100,
    )
    assert res.holds is False
    assert res.counterexample.states[0, res.exit_step, 0] < SAFE_GAP


def test_errors_and_result_objects():
    plant = arm_plant(ARM)
    ctrl = _arm_controller(kp=10.0, kd=2.0)
    with pytest.raises(ValueError, match="method"):
        reach(plant, ctrl, INIT_LO, INIT_HI, 3, method="taylor")
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        reach(plant, ctrl, [0.0, 0.0, 0.0], INIT_HI, 3)
    with pytest.raises(TypeError):
        reach(plant, ctrl, INIT_LO, INIT_HI, 3, split=2)
    with pytest.raises(TypeError, match="Conv1d"):
        reach(plant, torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1)), INIT_LO, INIT_HI, 1)
    with pytest.raises(ValueError, match="bounded box"):
        check_invariant(plant, ctrl, [-1.0, -np.inf], [1.0, np.inf])
    res = reach(plant, ctrl, INIT_LO, INIT_HI, 5)
    assert "steps=5" in repr(res) and len(res.to_dict()["lower"]) == 6
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = res.plot()
    assert len(fig.axes) == 2
    plt.close(fig)


# ------------------------------------------------------------------ exact MILP for linear plants
A_DI = np.array([[1.0, 0.1], [0.0, 1.0]])
B_DI = np.array([[0.005], [0.1]])
E_DI = np.array([[0.0], [0.1]])


def _double_integrator_update(x, u, w):
    if torch.is_tensor(x):
        t = torch.as_tensor
        return x @ t(A_DI.T) + u @ t(B_DI.T) + w @ t(E_DI.T)
    return x @ A_DI.T + u @ B_DI.T + w @ E_DI.T


DOUBLE_INTEGRATOR = Plant(
    states=["p", "v"],
    inputs=["a"],
    disturbances=["push"],
    dt=0.1,
    update=_double_integrator_update,
    input_lower=-1.0,
    input_upper=1.0,
)


def test_milp_reach_of_linear_plant_is_exact_and_attained_by_simulation():
    net = mlp(2, 1, (8,), seed=0, dtype=torch.float64, output_scale=[3.0])
    lo, hi, steps = np.array([-1.0, -0.5]), np.array([1.0, 0.5]), 6
    kw = dict(disturbance_lower=[-0.2], disturbance_upper=[0.2])
    exact = reach(DOUBLE_INTEGRATOR, net, lo, hi, steps, method="milp", **kw)
    zono = reach(DOUBLE_INTEGRATOR, net, lo, hi, steps, **kw)
    assert np.all(exact.lower >= zono.lower - 1e-9) and np.all(exact.upper <= zono.upper + 1e-9)
    assert np.any(exact.upper - exact.lower < zono.upper - zono.lower - 1e-3)  # strictly tighter
    # every bound is attained: simulate the MILP's own initial state and disturbances
    for (b, k, i, side), (x0, w) in exact.witnesses.items():
        wt = torch.as_tensor(w)
        tr = simulate(DOUBLE_INTEGRATOR, net, x0, k, disturbance=lambda j, x, wt=wt: wt[j])
        bound = (exact.box_lower if side == "lower" else exact.box_upper)[b, k, i]
        assert tr.states[k, i] == pytest.approx(bound, abs=1e-6)
    # and random trajectories (random disturbances) stay inside
    rng = np.random.default_rng(0)
    x0 = rng.uniform(lo, hi, (3000, 2))
    w = torch.as_tensor(rng.uniform(-0.2, 0.2, (3000, steps, 1)))
    tr = simulate(DOUBLE_INTEGRATOR, net, x0, steps, disturbance=lambda j, x: w[:, j])
    assert exact.contains(tr.states, atol=1e-9).all()


def test_milp_reach_refuses_a_nonlinear_plant():
    with pytest.raises(ValueError, match="affine"):
        reach(arm_plant(ARM), _arm_controller(10.0, 2.0), INIT_LO, INIT_HI, 2, method="milp")
