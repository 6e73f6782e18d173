"""Validated continuous-time enclosures: containment of scipy trajectories, relaxations, rounding.

The independent source is scipy's ``solve_ivp`` at rtol 1e-10, atol 1e-12, run on the stacked
ODE of many initial states with the command held per period (written here, not the library's
own replay), and exact rational arithmetic (``fractions``) for the rounding term.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch
from _examples import load_example
from _ode_replay import corners, scipy_closed_loop
from neuroctl.envs.arm import ArmParams, arm_plant
from neuroctl.envs.arm2link import Arm2LinkParams, arm2link_plant
from neuroctl.envs.pendulum import pendulum_plant
from neuroctl.envs.ring_road.dynamics import Params as RingParams
from neuroctl.envs.ring_road.dynamics import ring_plant

from neuroctl import Plant, mlp, namespace, stack, unstack
from neuroctl.verify.affine import AffineForm, SetArithmeticError, controller_on_sets
from neuroctl.verify.flow import closed_loop_period_sets, plant_semantics
from neuroctl.verify.reach import check_invariant, reach
from neuroctl.verify.taylor import Taylor


# ------------------------------------------------------------------ plants
def tora_rhs(x, u):
    """TORA: x1' = x2, x2' = -x1 + 0.1 sin x3, x3' = x4, x4' = u."""
    xp = namespace(x, u)
    x1, x2, x3, x4 = unstack(x)
    (f,) = unstack(u)
    return stack([x2, -x1 + 0.1 * xp.sin(x3), x4, f], like=x)


TORA = Plant(states=4, inputs=1, dt=1.0, rhs=tora_rhs, integrator="rk4", name="tora")
TORA_LO = np.array([0.6, -0.7, -0.4, 0.5])
TORA_HI = np.array([0.7, -0.6, -0.3, 0.6])


def tora_controller():
    """4 -> 16 -> 16 -> 1 ReLU, seeded; output scaled so the loop stays bounded for 10 s."""
    return mlp(4, 1, (16, 16), seed=0, dtype=torch.float64, output_scale=[0.3])


def assert_inside(res, samples, between):
    L, U = res.lower, res.upper
    assert np.all(samples >= L) and np.all(samples <= U)
    TL, TU = res.tube_lower[None, :, None], res.tube_upper[None, :, None]
    assert np.all(between >= TL) and np.all(between <= TU)


# ------------------------------------------------------------------ the heart: containment
def test_tora_ten_thousand_continuous_trajectories_inside_sets_and_tubes():
    net = tora_controller()
    res = reach(TORA, net, TORA_LO, TORA_HI, 10, splits=(2, 2, 1, 1))
    assert res.semantics == "continuous" and np.isfinite(res.upper).all()
    rng = np.random.default_rng(0)
    x0 = np.concatenate([corners(TORA_LO, TORA_HI), rng.uniform(TORA_LO, TORA_HI, (10_000, 4))])
    samples, between = scipy_closed_loop(TORA, net, x0, 10, dense=8)
    assert_inside(res, samples, between)
    # per initial sub-box as well (the sets of each sub-box, not only their hull)
    for b in range(res.n_boxes):
        mine = np.all((x0 >= res.initial_lower[b]) & (x0 <= res.initial_upper[b]), axis=1)
        assert np.all(samples[mine] >= res.box_lower[b]) and np.all(
            samples[mine] <= res.box_upper[b]
        )
        assert np.all(between[mine] >= res.box_tube_lower[b][:, None])
        assert np.all(between[mine] <= res.box_tube_upper[b][:, None])
    # the sets are informative: within a few times the sampled spread
    spread = samples.max(axis=0) - samples.min(axis=0)
    assert np.all(res.upper - res.lower <= 4.0 * spread + 0.05)


def test_rk4_step_semantics_excludes_the_true_tora_corner_trajectory_continuous_contains_it():
    # today's gap: one RK4 step of 1 s per period is far from the flow; the discrete sets
    # (about plant.step) do not contain the true trajectory from a corner, the continuous do
    net = tora_controller()
    x0 = corners(TORA_LO, TORA_HI)
    samples, between = scipy_closed_loop(TORA, net, x0, 10)
    disc = reach(TORA, net, TORA_LO, TORA_HI, 10, semantics="discrete")
    cont = reach(TORA, net, TORA_LO, TORA_HI, 10)
    outside = np.maximum(disc.lower - samples, samples - disc.upper).max()
    assert outside > 1e-3  # the discrete "proof" misses a real trajectory
    assert cont.semantics == "continuous"
    assert_inside(cont, samples, between)


def test_disturbance_held_over_each_period_is_enclosed_for_every_value_in_its_bounds():
    # TORA pushed on its last state, x4' = u + w, w constant over each period in [-0.05, 0.05]
    def rhs(x, u, w):
        return tora_rhs(x, u) + stack([0.0 * w[..., 0]] * 3 + [w[..., 0]], like=x)

    plant = Plant(states=4, inputs=1, disturbances=1, dt=1.0, rhs=rhs, name="tora_pushed")
    net = tora_controller()
    res = reach(
        plant, net, TORA_LO, TORA_HI, 8, disturbance_lower=[-0.05], disturbance_upper=[0.05]
    )
    assert res.semantics == "continuous"
    rng = np.random.default_rng(5)
    x0 = np.concatenate([corners(TORA_LO, TORA_HI), rng.uniform(TORA_LO, TORA_HI, (2000, 4))])
    w = rng.choice([-0.05, 0.05], (x0.shape[0], 8, 1))  # extreme pushes, switching per period
    samples, between = scipy_closed_loop(plant, net, x0, 8, dense=6, w=w)
    assert_inside(res, samples, between)
    # the push matters: the sets are wider than without it
    calm = reach(plant, net, TORA_LO, TORA_HI, 8)
    assert np.all(res.upper[-1] - res.lower[-1] > calm.upper[-1] - calm.lower[-1])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_smooth_controllers_stay_finite_for_30_periods_and_contain_the_flow(activation):
    # before the range-tight relaxations, tanh/sigmoid sets blew up to infinity in a few steps
    net = mlp(
        4,
        1,
        (16, 16),
        activation,
        seed=0,
        dtype=torch.float64,
        output_scale=[0.3],
        output_activation="tanh",
    )
    res = reach(TORA, net, TORA_LO, TORA_HI, 30)
    assert np.isfinite(res.upper).all() and np.isfinite(res.tube_upper).all()
    rng = np.random.default_rng(4)
    x0 = np.concatenate([corners(TORA_LO, TORA_HI), rng.uniform(TORA_LO, TORA_HI, (1000, 4))])
    samples, between = scipy_closed_loop(TORA, net, x0, 30, dense=4)
    assert_inside(res, samples, between)


@pytest.mark.parametrize("name", ["arm", "arm2link", "cartpole"])
def test_shipped_plants_continuous_trajectories_inside_sets_and_tubes(name):
    rng = np.random.default_rng(1)
    if name == "arm":
        plant = arm_plant(ArmParams())
        net = mlp(4, 1, (16, 16), seed=0, dtype=torch.float64, output_scale=[5.0])
        lo, hi, steps = np.array([-0.1, -0.15]), np.array([0.1, 0.15]), 20
    elif name == "arm2link":
        # its default joint-speed limit is a clamp after the step (discrete semantics); the ODE
        # of the arm itself is the plant with the limit lifted
        plant = arm2link_plant(Arm2LinkParams(max_speed=(np.inf, np.inf)))
        net = mlp(6, 2, (16,), seed=0, dtype=torch.float64, output_scale=[1.0, 1.0])
        home = plant.nominal_reference
        lo = np.concatenate([home - 0.05, [-0.1, -0.1]])
        hi = np.concatenate([home + 0.05, [0.1, 0.1]])
        steps = 8
    else:
        plant = load_example("cartpole_plant").cartpole_plant()
        net = torch.nn.Sequential(torch.nn.Linear(4, 1).double())
        with torch.no_grad():  # a stabilising state feedback (LQR-like gains)
            net[0].weight.copy_(torch.tensor([[1.0, 30.0, 2.0, 5.0]], dtype=torch.float64))
            net[0].bias.zero_()
        lo, hi, steps = np.array([-0.05, -0.05, -0.05, -0.05]), -np.array([-0.05] * 4), 10
    res = reach(plant, net, lo, hi, steps)
    assert res.semantics == "continuous" and np.isfinite(res.upper).all()
    x0 = np.concatenate([corners(lo, hi), rng.uniform(lo, hi, (10_000, lo.size))])
    samples, between = scipy_closed_loop(plant, net, x0, steps, dense=6)
    assert_inside(res, samples, between)


def test_discrete_semantics_of_a_plant_with_post_step_is_checked_against_plant_step():
    # a plant whose speed is clamped after the integrator (as the ring's): no ODE describes the
    # clamp, so the proof is about plant.step, and says so
    def rhs(x, u):
        return stack([x[..., 1], -0.5 * x[..., 1] + u[..., 0]], like=x)

    def clamp(x):
        xp = namespace(x)
        return stack([x[..., 0], xp.maximum(x[..., 1], 0.0)], like=x)

    plant = Plant(
        states=2,
        inputs=1,
        dt=0.1,
        rhs=rhs,
        integrator="semi_implicit_euler",
        post_step=clamp,
        input_lower=-1.0,
        input_upper=1.0,
        name="clamped",
    )
    assert plant_semantics(plant) == "discrete"
    with pytest.raises(ValueError, match="post_step"):
        reach(
            plant,
            mlp(2, 1, (8,), seed=0, dtype=torch.float64),
            [0, 0],
            [1, 1],
            2,
            semantics="continuous",
        )
    net = mlp(2, 1, (8,), seed=0, dtype=torch.float64, output_scale=[2.0])
    lo, hi = np.array([0.0, 0.0]), np.array([0.5, 0.3])
    res = reach(plant, net, lo, hi, 15)
    assert res.semantics == "discrete"
    rng = np.random.default_rng(2)
    x = torch.as_tensor(np.concatenate([corners(lo, hi), rng.uniform(lo, hi, (3000, 2))]))
    traj = [x.numpy()]
    with torch.no_grad():
        for _ in range(15):
            x = plant.step(x, net(x))
            traj.append(x.numpy())
    s = np.stack(traj, 1)
    assert np.all(s >= res.lower) and np.all(s <= res.upper)
    # the tube of the map is the hull of the two samples, stated as such
    np.testing.assert_array_equal(res.tube_lower, np.minimum(res.lower[:-1], res.lower[1:]))


def test_pendulum_v1_discrete_sets_contain_ten_thousand_plant_step_trajectories():
    # Pendulum-v1 is defined by its update (semi-implicit Euler, speed clip, torque clip): the
    # proof is about that map; its network sees (cos, sin, theta_dot), bounded on the sets
    plant = pendulum_plant()
    assert plant_semantics(plant) == "discrete"
    net = mlp(3, 1, (16, 16), seed=0, dtype=torch.float64, output_scale=[2.0])
    lo, hi, steps = np.array([-0.3, -0.5]), np.array([0.3, 0.5]), 20
    res = reach(plant, net, lo, hi, steps)
    assert res.semantics == "discrete" and np.isfinite(res.upper).all()
    rng = np.random.default_rng(5)
    x = torch.as_tensor(np.concatenate([corners(lo, hi), rng.uniform(lo, hi, (10_000, 2))]))
    traj = [x.numpy()]
    with torch.no_grad():
        for _ in range(steps):
            x = plant.step(x, net(plant.observe(x)))
            traj.append(x.numpy())
    s = np.stack(traj, 1)
    assert np.all(s >= res.lower) and np.all(s <= res.upper)


def test_ring_road_discrete_sets_contain_plant_step_trajectories_with_noise():
    # RingRoad's plant clamps speeds after its integrator: discrete semantics, checked against
    # plant.step with random noise in the bounds (6 cars, one AV with a small ReLU policy)
    plant = ring_plant(RingParams(n_vehicles=6, n_av=1, ring_length=60.0, noise=0.0), 60.0)
    assert plant_semantics(plant) == "discrete"
    x_eq, _ = plant.equilibrium(None)
    net = mlp(3, 1, (8,), seed=0, dtype=torch.float64, output_scale=[0.5])
    d = np.r_[np.full(6, 0.1), np.full(6, 0.05)]
    lo, hi = x_eq - d, x_eq + d
    lo[0], hi[0] = 0.5, 0.7  # car 0 away from the wrap of the positions
    W = np.full(6, 0.02)
    res = reach(plant, net, lo, hi, 20, disturbance_lower=-W, disturbance_upper=W)
    assert res.semantics == "discrete" and np.isfinite(res.upper).all()
    rng = np.random.default_rng(3)
    x = torch.as_tensor(np.concatenate([rng.uniform(lo, hi, (3000, 12)), [lo, hi]]))
    traj = [x.numpy()]
    with torch.no_grad():
        for _ in range(20):
            w = torch.as_tensor(rng.uniform(-W, W, (x.shape[0], 6)))
            x = plant.step(x, net(plant.observe(x)), w)
            traj.append(x.numpy())
    s = np.stack(traj, 1)
    assert np.all(s >= res.lower) and np.all(s <= res.upper)


def test_check_invariant_checks_the_tubes_between_samples():
    # x1' = x2, x2' = -x1 sampled every half period: x(k pi) = (-1)^k x0 (closed form), so the
    # samples never leave |x2| <= 0.3, but the flow x2(t) = -x1(0) sin t swings through ±0.5
    def rhs(x, u):
        return stack([x[..., 1], -x[..., 0] + u[..., 0]], like=x)

    plant = Plant(states=2, inputs=1, dt=np.pi, rhs=rhs, name="oscillator")
    zero = torch.nn.Linear(2, 1).double().requires_grad_(False)
    zero.weight.zero_()
    zero.bias.zero_()
    lo, hi = np.array([0.49, -0.01]), np.array([0.5, 0.01])
    kw = dict(initial_lower=lo, initial_upper=hi, steps=3, samples=16)
    cont = check_invariant(plant, zero, [-0.6, -0.3], [0.6, 0.3], **kw)
    assert cont.semantics == "continuous" and cont.holds is False
    ce = cont.counterexample.states[0]
    assert np.all(np.abs(ce[:, 1]) <= 0.3)  # every sample inside: it leaves in between
    # with room for the swing the property is proved, on tubes that contain the closed form
    ok = check_invariant(plant, zero, [-0.6, -0.6], [0.6, 0.6], **kw)
    assert ok.holds is True and ok.semantics == "continuous"
    assert np.all(ok.reach.tube_upper <= 0.6) and np.all(ok.reach.tube_lower >= -0.6)
    t = np.linspace(0.0, 3 * np.pi, 3001)
    for x0 in corners(lo, hi):
        flow = np.stack(
            [x0[0] * np.cos(t) + x0[1] * np.sin(t), -x0[0] * np.sin(t) + x0[1] * np.cos(t)], axis=-1
        )
        assert ok.reach.contains_tube(t, flow[None])[0]
    swing = np.maximum(ok.reach.tube_upper[:, 1], -ok.reach.tube_lower[:, 1])
    assert np.all(swing >= 0.49)  # each period's tube covers its swing (samples do not)


# ------------------------------------------------------------------ relaxations
RELAX = [
    ("tanh", np.tanh, 140.0, 212.0, (-1.0, 1.0)),
    ("tanh", np.tanh, -3.0, 3.0, (-1.0, 1.0)),
    ("tanh", np.tanh, 0.2, 0.9, (-1.0, 1.0)),
    ("tanh", np.tanh, -30.0, -2.0, (-1.0, 1.0)),
    ("sigmoid", lambda v: 1 / (1 + np.exp(-v)), -3.0, 3.0, (0.0, 1.0)),
    ("sigmoid", lambda v: 1 / (1 + np.exp(-v)), 5.0, 40.0, (0.0, 1.0)),
    ("exp", np.exp, -2.0, 1.5, (0.0, np.inf)),
    ("sqrt", np.sqrt, 0.0, 4.0, (0.0, np.inf)),
    ("reciprocal", lambda v: 1 / v, 0.5, 8.0, (0.0, np.inf)),
    ("reciprocal", lambda v: 1 / v, -8.0, -0.5, (-np.inf, 0.0)),
    ("hardtanh", lambda v: np.clip(v, -1, 1), 0.5, 1.5, (-1.0, 1.0)),
    ("hardtanh", lambda v: np.clip(v, -1, 1), -2.0, 2.0, (-1.0, 1.0)),
    ("hardtanh", lambda v: np.clip(v, -1, 1), -0.5, 0.5, (-1.0, 1.0)),
    ("relu6", lambda v: np.clip(v, 0, 6), -1.0, 7.0, (0.0, 6.0)),
    ("clip", lambda v: np.clip(v, -0.5, 0.7), -1.0, 0.2, (-0.5, 0.7)),
]


def _apply(name, x):
    if name == "sigmoid":
        return controller_on_sets(torch.nn.Sigmoid(), x)
    if name == "hardtanh":
        return controller_on_sets(torch.nn.Hardtanh(-1.0, 1.0), x)
    if name == "relu6":
        return controller_on_sets(torch.nn.ReLU6(), x)
    if name == "clip":
        return np.clip(x, -0.5, 0.7)
    return getattr(np, name)(x)


@pytest.mark.parametrize("name, fn, lo, hi, rng_", RELAX)
def test_relaxation_encloses_the_function_and_is_never_wider_than_its_range(name, fn, lo, hi, rng_):
    x = AffineForm.from_box(np.array([[lo]]), np.array([[hi]]))
    y = _apply(name, x)
    t = np.linspace(lo, hi, 200_001)
    exact = fn(t)
    eps = (t - x.c[0, 0]) / x.g[0, 0, 0]  # the input's own symbol
    g = y.g[:, 0, 0]
    residual = exact - (y.c[0, 0] + g[0] * eps)
    assert np.all(np.abs(residual) <= np.abs(g[1:]).sum() + y.e[0, 0])
    # hull within the exact range over the interval (grid ends, a few ulps for the outward
    # rounding of the bounds and the documented libm accuracy) and within the function's range
    tol = 32 * np.finfo(float).eps * max(1.0, np.abs(exact).max())
    assert exact.min() - tol <= y.lower[0, 0] <= exact.min()
    assert exact.max() <= y.upper[0, 0] <= exact.max() + tol
    assert y.lower[0, 0] >= rng_[0] - tol and y.upper[0, 0] <= rng_[1] + tol


def test_division_by_a_set_containing_zero_is_a_proof_failure_not_undecided():
    x = AffineForm.from_box(np.array([[-0.5]]), np.array([[2.0]]))
    with pytest.raises(SetArithmeticError, match="contains 0"):
        1.0 / x

    # in a closed loop: 1/x1 on a box that reaches 0 is reported as a failure of the proof
    def rhs(x, u):  # x2' = 0.001 x2 / x1: undefined on a set of x1 reaching 0
        return stack([-x[..., 0] + u[..., 0], 0.001 * x[..., 1] / x[..., 0]], like=x)

    plant = Plant(states=2, inputs=1, dt=0.1, rhs=rhs, name="singular")
    zero = torch.nn.Linear(2, 1).double().requires_grad_(False)
    zero.weight.zero_()
    zero.bias.zero_()
    res = check_invariant(
        plant,
        zero,
        [-1, -1],
        [1, 1],
        initial_lower=[-0.5, 0.01],
        initial_upper=[0.3, 0.1],
        steps=2,
        max_boxes=4,
        samples=8,
    )
    assert res.holds is None and res.failures and "contains 0" in res.failures[0]
    assert any("failed" in note for note in res.notes)
    r = reach(plant, zero, [-0.5, 0.01], [0.3, 0.1], 2, splits=(2, 1))  # split at x1 = -0.1
    assert len(r.failures) == 1 and r.failures[0].startswith("sub-box 1")
    assert np.isinf(r.box_upper[1, 1:]).all() and np.isfinite(r.box_upper[0]).all()


# ------------------------------------------------------------------ sound rounding
def test_rounding_term_encloses_the_exact_rational_result_of_cancelling_sums():
    # float64 loses every 1 in 1e16 + 1 + 1 + ... and the rounding of each step of a chain;
    # the affine forms' rounding term must cover the exact rational value of the whole chain
    big = AffineForm.from_box(np.array([[1e16]]), np.array([[1e16]]))
    y = big
    for _ in range(100):
        y = y + 1.0
    y = y - 1e16
    assert Fraction(float(y.lower[0, 0])) <= 100 <= Fraction(float(y.upper[0, 0]))
    assert y.upper[0, 0] - y.lower[0, 0] <= 1e3  # about 100 roundings of 1e16 (ulp 2)
    rng = np.random.default_rng(0)
    for _ in range(100):
        a, b, c = rng.uniform(-1, 1, 3) * 10.0 ** rng.integers(-8, 17, 3)
        k = float(rng.uniform(-3, 3))
        xa = AffineForm.from_box(np.array([[a]]), np.array([[a]]))
        xb = AffineForm.from_box(np.array([[b]]), np.array([[b]]), xa.ctx)
        y, exact = xa, Fraction(a)
        for j in range(30):  # a chain of form-form and form-constant operations
            if j % 3 == 0:
                y, exact = y * k + xb, exact * Fraction(k) + Fraction(b)
            elif j % 3 == 1:
                y, exact = (y - c) @ np.array([[0.1]]), (exact - Fraction(c)) * Fraction(0.1)
            else:
                y, exact = y * xa / 3.0 + c, exact * Fraction(a) / 3 + Fraction(c)
                y, exact = y * (1.0 / abs(a)), exact * Fraction(1.0 / abs(a))
        assert Fraction(float(y.lower[0, 0])) <= exact <= Fraction(float(y.upper[0, 0]))
        assert y.upper[0, 0] - y.lower[0, 0] <= 1e-9 * (abs(float(exact)) + 1.0)  # still tight


def test_taylor_series_coefficients_match_the_closed_form_of_a_linear_flow():
    # x' = A x has x(t) = expm(A t) x0: Taylor coefficients A^k x0 / k!
    from math import factorial

    A = np.array([[0.0, 1.0], [-2.0, -0.3]])
    x0 = AffineForm.from_box(np.array([[0.2, -0.1]]), np.array([[0.2, -0.1]]))
    x = Taylor(None, x0)
    f = x @ A.T
    x._rule = lambda k: f.coef(k - 1) / float(k)
    v = np.array([0.2, -0.1])
    for k in range(6):
        want = np.linalg.matrix_power(A, k) @ v / factorial(k)
        got = x.coef(k)
        assert np.all(got.lower[0] <= want + 1e-15) and np.all(want - 1e-15 <= got.upper[0])
        assert np.all(got.upper[0] - got.lower[0] <= 1e-14)


def test_taylor_series_of_elementary_functions_against_closed_forms():
    # sin, cos, exp, tanh, sqrt, 1/x of t -> a + t: their derivatives at a, divided by k!
    a = 0.7
    x = Taylor(lambda k: np.ones((1, 1)) if k == 1 else None, AffineForm.from_box([[a]], [[a]]))
    th = np.tanh(a)
    want = {
        "sin": [np.sin(a), np.cos(a), -np.sin(a) / 2, -np.cos(a) / 6],
        "cos": [np.cos(a), -np.sin(a), -np.cos(a) / 2, np.sin(a) / 6],
        "exp": [np.exp(a)] + [np.exp(a) / f for f in (1, 2, 6)],
        "tanh": [th, 1 - th**2, -th * (1 - th**2), (1 - th**2) * (3 * th**2 - 1) / 3],
        "sqrt": [a**0.5, 0.5 * a**-0.5, -0.125 * a**-1.5, 0.0625 * a**-2.5],
        "reciprocal": [1 / a, -1 / a**2, 1 / a**3, -1 / a**4],
    }
    for name, coefs in want.items():
        y = getattr(np, name)(x)
        for k, w in enumerate(coefs):
            c = y.coef(k)
            assert c.lower[0, 0] - 1e-12 <= w <= c.upper[0, 0] + 1e-12, (name, k)
            assert c.upper[0, 0] - c.lower[0, 0] <= 1e-9, (name, k)


# ------------------------------------------------------------------ API and errors
def test_period_sets_api_and_errors():
    net = tora_controller()
    x = AffineForm.from_box(TORA_LO[None], TORA_HI[None])
    ps = closed_loop_period_sets(TORA, net, x, max_step=0.25)
    assert ps.semantics == "continuous" and ps.substeps >= 4
    assert ps.x_next.shape == (1, 4) and ps.u.shape == (1, 1)
    assert ps.tube_lower.shape == (1, 4) and np.all(ps.tube_lower <= ps.x_next.lower)
    update_plant = Plant(states=2, inputs=1, dt=0.1, update=lambda x, u: x, name="map")
    with pytest.raises(ValueError, match="no ODE"):
        closed_loop_period_sets(
            update_plant,
            mlp(2, 1, (4,), seed=0, dtype=torch.float64),
            AffineForm.from_box([[0.0, 0.0]], [[1.0, 1.0]]),
        )
    with pytest.raises(ValueError, match="semantics"):
        closed_loop_period_sets(TORA, net, x, semantics="hybrid")
    with pytest.raises(ValueError, match="max_step"):
        closed_loop_period_sets(TORA, net, x, max_step=-1.0)
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        closed_loop_period_sets(TORA, net, AffineForm.from_box([[0.0]], [[1.0]]))
    with pytest.raises(ValueError, match="forward invariance needs a bounded box"):
        check_invariant(TORA, net, -np.ones(4), np.full(4, np.inf))
    with pytest.raises(ValueError, match="discrete map"):
        reach(TORA, net, TORA_LO, TORA_HI, 2, method="interval", semantics="continuous")
