"""check_closed_loop against closed forms: linear plants with linear controllers under zero-order
hold, whose exact state at every time is a linear image of the initial state (matrix
exponentials), and scipy solve_ivp trajectories for every "holds"."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from neuroctl import Plant, linear_controller, mlp, namespace
from neuroctl.verify import (
    Box,
    ClosedLoopResult,
    Constraint,
    Polytope,
    all_of,
    always,
    at,
    check_closed_loop,
    eventually,
    never,
    with_output_map,
)
from neuroctl.verify.reach import AffineForm


# ------------------------------------------------------------------ closed forms
def _mat(M, like):
    return torch.as_tensor(M, dtype=like.dtype) if torch.is_tensor(like) else M


def _zoh(A, B, tau):
    """``x(tau) = P x0 + G u`` for ``dx/dt = A x + B u`` with ``u`` held (augmented expm)."""
    n, m = B.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n], M[:n, n:] = A, B
    E = expm(M * tau)
    return E[:n, :n], E[:n, n:]


def _state_map(A, B, K, T, t):
    """``x(t) = M(t) x0`` of the loop ``u = K x[k]`` held over each period ``T``."""
    k = math.floor(t / T + 1e-9)
    P, G = _zoh(A, B, T)
    Pt, Gt = _zoh(A, B, t - k * T)
    return (Pt + Gt @ K) @ np.linalg.matrix_power(P + G @ K, k)


def _exact_box(M, lo, hi):
    c, r = 0.5 * (lo + hi), 0.5 * (hi - lo)
    return M @ c - np.abs(M) @ r, M @ c + np.abs(M) @ r


def _linear_plant(A, B, T, *, exact_map=False, integrator="rk4"):
    A, B = np.asarray(A, float), np.asarray(B, float)
    n, m = B.shape
    if exact_map:
        P, G = _zoh(A, B, T)

        def update(x, u):
            return x @ _mat(P.T, x) + u @ _mat(G.T, x)

        return Plant(states=n, inputs=m, dt=T, update=update, name="linear-zoh")

    def rhs(x, u):
        return x @ _mat(A.T, x) + u @ _mat(B.T, x)

    return Plant(states=n, inputs=m, dt=T, rhs=rhs, integrator=integrator, name="linear")


def _command_fn(controller):
    if isinstance(controller, torch.nn.Module):
        net = controller.double()
        return lambda x: net(torch.as_tensor(x)).detach().numpy()
    K = np.asarray(controller, float)
    return lambda x: K @ x


def _ode_trajectories(plant, controller, x0, steps, per_period=16, chunk=100):
    """solve_ivp (DOP853, rtol 1e-10, atol 1e-12) of ``plant.rhs`` with the saturated command
    of the controller (a gain ``K`` or a network) held over each period, ``chunk`` trajectories
    integrated together; states at the samples (N, steps+1, n) and inside each period
    (N, steps, per_period, n)."""
    command = _command_fn(controller)
    N, n = x0.shape
    S = np.empty((N, steps + 1, n))
    D = np.empty((N, steps, per_period, n))
    tau = plant.dt * np.arange(1, per_period + 1) / (per_period + 1)
    for i in range(0, N, chunk):
        x = x0[i : i + chunk]
        b = x.shape[0]
        S[i : i + b, 0] = x
        for k in range(steps):
            u = plant.saturate(np.stack([command(v) for v in x]))
            sol = solve_ivp(
                lambda t, y, u=u, b=b: plant.rhs(y.reshape(b, n), u).ravel(),
                (0, plant.dt),
                x.ravel(),
                method="DOP853",
                rtol=1e-10,
                atol=1e-12,
                dense_output=True,
            )
            x = sol.y[:, -1].reshape(b, n)
            S[i : i + b, k + 1] = x
            D[i : i + b, k] = sol.sol(tau).T.reshape(per_period, b, n).transpose(1, 0, 2)
    return S, D


def _assert_backed_by_trajectories(
    res: ClosedLoopResult, plant, controller, n_samples=1000, tol=1e-8
):
    """Every sampled ODE trajectory lies in the sets of the proved sub-box it starts in (at the
    samples; inside the tubes between them for a continuous verdict). ``tol`` covers the
    integration error of solve_ivp, not the sets."""
    assert res.status == "holds"
    rng = np.random.default_rng(1)
    lo, hi = res.initial_lower, res.initial_upper
    n = lo.size
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    x0 = np.concatenate([np.where(bits == 1, hi, lo), rng.uniform(lo, hi, (n_samples, n))])
    S, D = _ode_trajectories(plant, controller, x0, res.steps)
    inside_box = np.all(
        (x0[:, None] >= res.box_lower[None] - 1e-15) & (x0[:, None] <= res.box_upper[None] + 1e-15),
        axis=2,
    )
    assert inside_box.any(axis=1).all(), "the proved sub-boxes must cover the initial box"
    b = np.argmax(inside_box, axis=1)
    assert np.all(S >= res.lower[b] - tol) and np.all(S <= res.upper[b] + tol)
    if res.semantics == "continuous":
        assert np.all(D >= res.tube_lower[b][:, :, None] - tol)
        assert np.all(D <= res.tube_upper[b][:, :, None] + tol)


# a lightly damped oscillator, u = K x held for 0.2 s
A2 = np.array([[0.0, 1.0], [-2.0, -0.3]])
B2 = np.array([[0.0], [1.0]])
K2 = np.array([[-1.0, -0.5]])
LO2, HI2 = np.array([0.8, -0.2]), np.array([1.2, 0.2])
T2, N2 = 0.2, 25


def _worst_speed(t_grid):
    """Exact ``max |x2(t)|`` over the initial box and the times ``t_grid``."""
    out = 0.0
    for t in t_grid:
        lo, hi = _exact_box(_state_map(A2, B2, K2, T2, t), LO2, HI2)
        out = max(out, abs(lo[1]), abs(hi[1]))
    return out


# ------------------------------------------------------------------ sets
def test_set_margins_are_non_strict_and_exact_on_linear_images_of_boxes():
    box = Box([-1.0, -np.inf], [1.0, 2.0])
    z = np.array([[1.0, -5.0], [1.0 + 1e-12, 0.0], [0.0, 2.0]])
    assert (box.margins(z).max(-1) <= 0).tolist() == [True, False, True]
    H = np.array([[1.0, 1.0], [-1.0, 2.0]])
    poly = Polytope(H, [1.0, 0.5])
    pts = np.random.default_rng(0).uniform(-2, 2, (200, 2))
    inside = np.all(pts @ H.T <= [1.0, 0.5], axis=1)
    assert np.array_equal(poly.margins(pts).max(-1) <= 0, inside)
    # on an affine form the bounds of a linear margin are those of the linear image of the box
    lo, hi = np.array([[0.0, -1.0]]), np.array([[1.0, 0.5]])
    g = poly.margins(AffineForm.from_box(lo, hi))
    want_lo, want_hi = _exact_box(H, lo[0], hi[0])
    np.testing.assert_allclose(g.lower[0], want_lo - [1.0, 0.5], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(g.upper[0], want_hi - [1.0, 0.5], rtol=1e-14, atol=1e-15)


def test_constraint_bounds_on_sets_enclose_sampled_values():
    def cone(x):  # docking-like: speed below a bound growing with the distance
        xp = namespace(x)
        return (
            xp.sqrt(x[..., 2] ** 2 + x[..., 3] ** 2)
            - 0.2
            - 0.002054 * xp.sqrt(x[..., 0] ** 2 + x[..., 1] ** 2)
        )

    c = Constraint(cone)
    lo, hi = np.array([10.0, 20.0, 0.05, 0.1]), np.array([30.0, 40.0, 0.15, 0.2])
    g = c.margins(AffineForm.from_box(lo[None], hi[None]))
    pts = np.random.default_rng(0).uniform(lo, hi, (20000, 4))
    vals = c.margins(pts)[:, 0]
    assert g.lower[0, 0] <= vals.min() and vals.max() <= g.upper[0, 0]


def test_bad_specifications_name_the_argument():
    p = _linear_plant(A2, B2, T2)
    K = linear_controller(K2)
    with pytest.raises(ValueError, match="expected a set over 2 coordinates"):
        check_closed_loop(p, K, LO2, HI2, always(Box([0, 0, 0], [1, 1, 1])), steps=3)
    with pytest.raises(ValueError, match="over 3 coordinates"):
        check_closed_loop(
            p, K, LO2, HI2, always(Box([0, 0], [1, 1], over="state_command")), steps=3
        )
    with pytest.raises(ValueError, match="window: expected times within the horizon"):
        check_closed_loop(p, K, LO2, HI2, always(Box([-9, -9], [9, 9]), (0, 5.0)), steps=3)
    with pytest.raises(ValueError, match="containing a sampling instant"):
        check_closed_loop(p, K, LO2, HI2, eventually(Box([-9, -9], [9, 9]), (0.05, 0.1)), steps=3)
    with pytest.raises(TypeError, match="spec: expected a property"):
        check_closed_loop(p, K, LO2, HI2, Box([-9, -9], [9, 9]), steps=3)
    with pytest.raises(TypeError, match="is a set, not a property"):
        _ = Box([0], [1]) & always(Box([0], [1]))
    with pytest.raises(ValueError, match="Box: expected lower <= upper"):
        Box([1.0], [0.0])
    with pytest.raises(ValueError, match="over: expected one of"):
        Box([0.0], [1.0], over="command")
    with pytest.raises(ValueError, match="semantics='continuous'.*discrete update"):
        pd = _linear_plant(A2, B2, T2, exact_map=True)
        check_closed_loop(
            pd, K, LO2, HI2, always(Box([-9, -9], [9, 9])), steps=3, semantics="continuous"
        )
    with pytest.raises(ValueError, match="a discrete map is read at its samples"):
        pd = _linear_plant(A2, B2, T2, exact_map=True)
        check_closed_loop(pd, K, LO2, HI2, at(Box([-9, -9], [9, 9]), 0.1), steps=3)
    with pytest.raises(TypeError):
        check_closed_loop(p, K, LO2, HI2, always(Box([-9, -9], [9, 9])), steps=3, timout=1)


def test_repr_and_to_dict_of_properties():
    s = (
        always(Box([-1, -2], [1, 2]), window=(0, 1))
        & never(Polytope([[1, 0]], [-3]))
        & at(Box([-1, -1], [1, 1]), 2.0)
    )
    assert repr(s).startswith("always(Box([-1., -2.], [1., 2.]), window=(0.0, 1.0)) & never(")
    d = s.to_dict()
    assert d["op"] == "all_of" and [p["op"] for p in d["parts"]] == ["always", "never", "at"]
    assert d["parts"][0]["set"] == {
        "kind": "box",
        "lower": [-1.0, -2.0],
        "upper": [1.0, 2.0],
        "over": "state",
    }
    assert all_of(*s.parts).to_dict() == d


# ------------------------------------------------------------------ discrete semantics
def test_discrete_map_verdicts_match_the_exact_reach_set():
    # the plant given by its exact zero-order-hold map: at the samples its reach set is the
    # linear image of the initial box, so the largest speed over 25 steps is known
    p = _linear_plant(A2, B2, T2, exact_map=True)
    K = linear_controller(K2)
    worst = _worst_speed(np.arange(N2 + 1) * T2)
    ok = always(Box([-np.inf, -worst * 1.001], [np.inf, worst * 1.001]))
    res = check_closed_loop(p, K, LO2, HI2, ok, steps=N2)
    assert res.status == "holds" and res.semantics == "discrete"
    assert "discrete map" in res.assumptions
    for k in (5, 17, N2):
        lo, hi = _exact_box(_state_map(A2, B2, K2, T2, k * T2), LO2, HI2)
        assert np.all(res.lower[:, k].min(0) <= lo + 1e-12) and np.all(
            hi <= res.upper[:, k].max(0) + 1e-12
        )
        assert np.all(
            res.upper[:, k].max(0) - res.lower[:, k].min(0) <= (hi - lo) * (1 + 1e-6) + 1e-9
        )
    _assert_backed_by_trajectories(res, _linear_plant(A2, B2, T2), K2)

    bad = always(Box([-np.inf, -worst * 0.999], [np.inf, worst * 0.999]))
    res = check_closed_loop(p, K, LO2, HI2, bad, steps=N2)
    assert res.status == "violated"
    ce = res.counterexample
    speeds = [abs((_state_map(A2, B2, K2, T2, k * T2) @ ce.x0)[1]) for k in range(N2 + 1)]
    assert ce.robustness == pytest.approx(worst * 0.999 - max(speeds), rel=1e-9, abs=1e-12)
    rep = ce.replay()
    assert rep.violated and rep.deviation < 1e-12


def test_rk4_violation_that_the_ode_does_not_share_is_not_reported():
    # an undamped oscillator keeps |x| constant; RK4 with dt = 2.9 amplifies it by 1.19 a step
    A, B = np.array([[0.0, 1.0], [-1.0, 0.0]]), np.array([[0.0], [1.0]])
    p = _linear_plant(A, B, 2.9)
    K = linear_controller([[0.0, 0.0]])
    lo, hi = np.array([0.99, -0.01]), np.array([1.01, 0.01])
    spec = always(Box([-1.5, -1.5], [1.5, 1.5]))
    discrete = check_closed_loop(p, K, lo, hi, spec, steps=6, semantics="discrete")
    assert discrete.status == "violated" and discrete.counterexample.replay().violated
    x = discrete.counterexample.states
    assert np.abs(x).max() > 1.5  # the RK4 map leaves the box ...
    assert math.hypot(*hi) < 1.5  # ... the ODE (a rotation) never does
    continuous = check_closed_loop(p, K, lo, hi, spec, steps=6)
    assert continuous.status != "violated" and continuous.semantics == "continuous"
    assert continuous.counterexample is None


# ------------------------------------------------------------------ continuous semantics
def _rotation():
    A, B = np.array([[0.0, 1.0], [-1.0, 0.0]]), np.array([[0.0], [1.0]])
    return A, B, np.array([0.95, -0.05]), np.array([1.05, 0.05])


def test_violation_between_samples_is_found_and_replayed_in_continuous_time():
    # samples every pi: x[k] = (-1)^k x0, speed |x2| <= 0.05 there; in between it reaches |x0|
    A, B, lo, hi = _rotation()
    K = linear_controller([[0.0, 0.0]])
    spec = always(Box([-np.inf, -0.5], [np.inf, 0.5]))
    p = _linear_plant(A, B, math.pi)
    res = check_closed_loop(p, K, lo, hi, spec, steps=4)
    assert res.status == "violated" and res.semantics == "continuous"
    ce = res.counterexample
    exact = 0.5 - np.linalg.norm(ce.x0)  # the sup of |x2(t)| on a circle is its radius
    assert exact <= ce.robustness <= exact + 0.01  # read on a grid of 16 points a period
    rep = ce.replay()
    assert rep.violated and rep.deviation < 1e-8
    samples = np.isclose(ce.times / math.pi, np.round(ce.times / math.pi), atol=1e-12)
    assert np.all(np.abs(ce.states[samples, 1]) <= 0.05 + 1e-8)  # fine at the samples
    # the same property holds for the discrete map at the samples
    res_d = check_closed_loop(
        _linear_plant(A, B, math.pi, exact_map=True), K, lo, hi, spec, steps=4
    )
    assert res_d.status == "holds" and res_d.semantics == "discrete"


def test_time_windows_goals_and_at_times_against_the_exact_solution():
    A, B, K = np.array([[-0.5]]), np.array([[1.0]]), np.array([[-0.5]])
    lo, hi = np.array([0.9]), np.array([1.1])
    ctrl = linear_controller(K)
    exact = _linear_plant(A, B, 0.5, exact_map=True)
    ode = _linear_plant(A, B, 0.5)

    def x_max(t):
        return _exact_box(_state_map(A, B, K, 0.5, t), lo, hi)[1][0]

    # x decays: above 0.5 at the start, inside [-0.5, 0.5] over the window (2, 3)
    assert x_max(0.0) > 0.5 and x_max(2.0) < 0.5
    late = always(Box([-0.5], [0.5]), window=(2.0, 3.0))
    res = check_closed_loop(exact, ctrl, lo, hi, late, steps=6)
    assert res.status == "holds"
    _assert_backed_by_trajectories(res, ode, K)
    res = check_closed_loop(ode, ctrl, lo, hi, always(Box([-0.5], [0.5])), steps=6)
    assert res.status == "violated" and res.counterexample.replay().violated
    # goal at a sample of the window (1, 3): reached below 0.2, never below 0.01
    goal = x_max(2.0) * 1.01
    res = check_closed_loop(exact, ctrl, lo, hi, eventually(Box([-goal], [goal]), (1, 3)), steps=6)
    assert res.status == "holds"
    lo_3 = _exact_box(_state_map(A, B, K, 0.5, 3.0), lo, hi)[0][0]
    assert lo_3 > 0.01
    res = check_closed_loop(ode, ctrl, lo, hi, eventually(Box([-0.01], [0.01]), (1, 3)), steps=6)
    assert res.status == "violated"
    ce = res.counterexample
    x3 = (_state_map(A, B, K, 0.5, 3.0) @ ce.x0)[0]
    assert ce.robustness == pytest.approx(0.01 - x3, rel=1e-7)
    assert ce.replay().violated
    # at a time between two samples (1.25 s), read on the ODE itself
    t = 1.25
    bound = 0.5 * (x_max(t) + _exact_box(_state_map(A, B, K, 0.5, t), lo, hi)[0][0])
    res = check_closed_loop(ode, ctrl, lo, hi, at(Box([-1.0], [bound]), t), steps=6)
    assert res.status == "violated"
    ce = res.counterexample
    assert ce.robustness == pytest.approx(
        bound - (_state_map(A, B, K, 0.5, t) @ ce.x0)[0], rel=1e-7
    )


def test_unsafe_sets_and_conjunctions():
    A, B, lo, hi = _rotation()
    K = linear_controller([[0.0, 0.0]])
    # a ring of radius about 1 visits x1 = -1 at t = pi: the unsafe box around (-1, 0) is hit
    unsafe = Box([-1.2, -0.2], [-0.8, 0.2])
    exact = _linear_plant(A, B, math.pi / 2, exact_map=True)
    ode = _linear_plant(A, B, math.pi / 2)
    res = check_closed_loop(exact, K, lo, hi, never(unsafe), steps=4)
    assert res.status == "violated"
    # avoided in the first quarter turn, and staying in the disc: both hold (discrete map)
    disc = Constraint(lambda x: x[..., 0] ** 2 + x[..., 1] ** 2 - 1.2**2, name="disc")
    both = never(unsafe, window=(0, math.pi / 2)) & always(disc)
    res = check_closed_loop(exact, K, lo, hi, both, steps=4)
    assert res.status == "holds"
    _assert_backed_by_trajectories(res, ode, [[0.0, 0.0]])
    # a conjunction is violated when one part is, with the part's counterexample
    res = check_closed_loop(ode, K, lo, hi, always(disc) & never(unsafe), steps=4)
    assert res.status == "violated" and res.counterexample.replay().violated


def test_branch_and_bound_splits_the_initial_box_to_prove_a_nonlinear_constraint():
    # the disc |x| <= r on a rotated box: one affine form of x1^2 + x2^2 is too loose, halves
    # of the box are not
    A, B, lo, hi = _rotation()
    lo, hi = np.array([0.7, -0.3]), np.array([1.3, 0.3])
    K = linear_controller([[0.0, 0.0]])
    exact = _linear_plant(A, B, math.pi / 4, exact_map=True)
    r = math.hypot(1.3, 0.3) * 1.02
    disc = Constraint(lambda x: x[..., 0] ** 2 + x[..., 1] ** 2 - r**2, name="disc")
    res = check_closed_loop(exact, K, lo, hi, always(disc), steps=6)
    assert res.status == "holds" and res.stats["boxes_split"] > 0
    assert res.stats["boxes_proved"] == res.box_lower.shape[0] > 1
    assert res.proved_fraction == pytest.approx(1.0, rel=1e-12)
    _assert_backed_by_trajectories(res, _linear_plant(A, B, math.pi / 4), [[0.0, 0.0]])


def test_same_inputs_same_answer():
    A, B, lo, hi = _rotation()
    K = linear_controller([[0.0, -0.1]])
    p = _linear_plant(A, B, 0.5)
    spec = always(Box([-np.inf, -0.6], [np.inf, 0.6]))
    a = check_closed_loop(p, K, lo, hi, spec, steps=8, seed=3)
    b = check_closed_loop(p, K, lo, hi, spec, steps=8, seed=3)
    assert a.status == b.status == "violated"
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("time")
        for k in ("falsification_time", "proof_time"):
            d["stats"].pop(k)
    assert da == db


def test_output_map_and_observation_features():
    # u = N(y) - 20 with y = [x, 1] (a constant feature): the same loop as u = -0.5 x
    A, B = np.array([[-0.5]]), np.array([[1.0]])
    net = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-0.5, 20.0]]))
        net.bias.zero_()
    ctrl = with_output_map(net, offset=-20.0)
    y = torch.tensor([[0.3, 1.0]], dtype=torch.float64)
    assert ctrl(y).item() == pytest.approx(-0.15, rel=1e-14)
    P, G = _zoh(A, B, 0.5)

    def update(x, u):
        return x * float(P[0, 0]) + u * float(G[0, 0])

    def features(x):
        return namespace(x).concat([x, x * 0.0 + 1.0], axis=-1)

    plant = Plant(states=1, inputs=1, dt=0.5, update=update, observe=features, outputs=2)
    lo, hi = np.array([0.9]), np.array([1.1])
    worst = _exact_box(_state_map(A, B, np.array([[-0.5]]), 0.5, 1.0), lo, hi)[1][0]
    res = check_closed_loop(plant, ctrl, lo, hi, at(Box([-1.0], [worst * 1.0001]), 1.0), steps=2)
    assert res.status == "holds"
    res = check_closed_loop(plant, ctrl, lo, hi, at(Box([-1.0], [worst * 0.9999]), 1.0), steps=2)
    assert res.status == "violated"


def test_state_command_sets_read_the_saturated_command():
    A, B = np.array([[-0.5]]), np.array([[1.0]])
    P, G = _zoh(A, B, 0.5)

    def update(x, u):
        return x * float(P[0, 0]) + u * float(G[0, 0])

    plant = Plant(states=1, inputs=1, dt=0.5, update=update, input_lower=-0.3, input_upper=0.3)
    ctrl = linear_controller([[-2.0]])  # saturates at -0.3 for x > 0.15
    lo, hi = np.array([0.9]), np.array([1.1])
    # |u| <= 0.3 always holds because of the saturation (proved with 1e-9 to spare for the
    # rounding of the sets); |u| <= 0.29 does not
    box = Box([-np.inf, -0.3 - 1e-9], [np.inf, 0.3 + 1e-9], over="state_command")
    assert check_closed_loop(plant, ctrl, lo, hi, always(box), steps=4).status == "holds"
    tight = Box([-np.inf, -0.29], [np.inf, 0.29], over="state_command")
    res = check_closed_loop(plant, ctrl, lo, hi, always(tight), steps=4)
    assert res.status == "violated"
    assert res.counterexample.commands.min() == pytest.approx(-0.3, rel=1e-15)


def test_result_prints_and_plots():
    p = _linear_plant(A2, B2, T2, exact_map=True)
    res = check_closed_loop(
        p, linear_controller(K2), LO2, HI2, always(Box([-9, -9], [9, 9])), steps=5
    )
    assert repr(res).startswith("ClosedLoopResult('holds', semantics='discrete', steps=5")
    d = res.to_dict()
    assert d["status"] == "holds" and np.asarray(d["lower"]).shape == (1, 6, 2)
    import matplotlib

    matplotlib.use("Agg")
    fig = res.plot()
    assert len(fig.axes) == 2


def test_continuous_proofs_are_backed_by_ode_trajectories():
    p = _linear_plant(A2, B2, T2)
    K = linear_controller(K2)
    t_dense = np.linspace(0, N2 * T2, 40 * N2 + 1)
    worst = _worst_speed(t_dense)
    res = check_closed_loop(
        p, K, LO2, HI2, always(Box([-np.inf, -worst * 1.05], [np.inf, worst * 1.05])), steps=N2
    )
    assert res.status == "holds" and res.semantics == "continuous"
    _assert_backed_by_trajectories(res, p, K2)
    # the rotation with samples every pi: the RK4 map violates, the ODE does not
    A, B = np.array([[0.0, 1.0], [-1.0, 0.0]]), np.array([[0.0], [1.0]])
    p = _linear_plant(A, B, 2.9)
    res = check_closed_loop(
        p,
        linear_controller([[0.0, 0.0]]),
        [0.99, -0.01],
        [1.01, 0.01],
        always(Box([-1.5, -1.5], [1.5, 1.5])),
        steps=6,
    )
    assert res.status == "holds"
    _assert_backed_by_trajectories(res, p, np.zeros((1, 2)))


def test_mlp_controller_verdict_is_backed_by_trajectories():
    # a small tanh network on the exact map; every "holds" is checked on ODE trajectories
    net = mlp(2, 1, hidden=(8,), activation="tanh", output_scale=0.3, dtype=torch.float64, seed=0)
    p = _linear_plant(A2, B2, T2, exact_map=True)
    res = check_closed_loop(p, net, LO2, HI2, always(Box([-3, -3], [3, 3])), steps=10)
    assert res.status == "holds"
    _assert_backed_by_trajectories(res, _linear_plant(A2, B2, T2), net)


def test_disturbances_against_the_exact_worst_case():
    # x[k+1] = 0.9 x[k] + w[k], |w| <= 0.1: the largest state after k steps is
    # 0.9^k * 1.1 + 0.1 (1 - 0.9^k) / (1 - 0.9), over 8 steps at k = 8 (it grows towards 1)
    def update(x, u, w):
        return 0.9 * x + 0.0 * u + w

    plant = Plant(states=1, inputs=1, disturbances=1, dt=1.0, update=update)
    ctrl = linear_controller([[0.0]])
    lo, hi = np.array([0.9]), np.array([1.1])
    worst = max(0.9**k * 1.1 + 0.1 * (1 - 0.9**k) / 0.1 for k in range(9))
    kw = dict(steps=8, w_lower=[-0.1], w_upper=[0.1])
    res = check_closed_loop(plant, ctrl, lo, hi, always(Box([-2.0], [worst * 1.001])), **kw)
    assert res.status == "holds" and "disturbance" in res.assumptions
    res = check_closed_loop(plant, ctrl, lo, hi, always(Box([-2.0], [worst * 0.999])), **kw)
    assert res.status == "violated"
    ce = res.counterexample
    assert np.all(ce.disturbances == 0.1) and ce.x0[0] == 1.1
    assert ce.replay().violated


def test_undecided_within_the_budget_is_unknown_with_the_reason():
    A, B, lo, hi = _rotation()
    lo, hi = np.array([0.7, -0.3]), np.array([1.3, 0.3])
    K = linear_controller([[0.0, 0.0]])
    exact = _linear_plant(A, B, math.pi / 4, exact_map=True)
    r = math.hypot(1.3, 0.3) * 1.02
    disc = Constraint(lambda x: x[..., 0] ** 2 + x[..., 1] ** 2 - r**2, name="disc")
    res = check_closed_loop(exact, K, lo, hi, always(disc), steps=6, max_splits=0)
    assert res.status == "unknown" and "max_splits=0" in res.notes[0]
    res = check_closed_loop(exact, K, lo, hi, always(disc), steps=6, timeout=1e-6)
    assert res.status == "unknown" and "timeout" in res.notes[0]
    assert res.counterexample is None


def test_relu_controller_on_a_nonlinear_plant_discrete_map():
    # pendulum (sin) with a ReLU network and a torque limit, proved for its RK4 map and checked
    # on 1000 rollouts of that map
    from neuroctl import simulate

    def rhs(x, u):
        xp = namespace(x)
        return xp.stack([x[..., 1], -xp.sin(x[..., 0]) - 0.2 * x[..., 1] + u[..., 0]], axis=-1)

    plant = Plant(states=2, inputs=1, dt=0.05, rhs=rhs, input_lower=-1.0, input_upper=1.0)
    net = mlp(2, 1, hidden=(16, 16), output_scale=0.2, dtype=torch.float64, seed=1)
    lo, hi = np.array([-0.2, -0.2]), np.array([0.2, 0.2])
    spec = always(Box([-0.5, -0.6], [0.5, 0.6]))
    res = check_closed_loop(plant, net, lo, hi, spec, steps=20, semantics="discrete")
    assert res.status == "holds" and res.semantics == "discrete"
    rng = np.random.default_rng(2)
    x0 = np.concatenate(
        [[[-0.2, -0.2], [-0.2, 0.2], [0.2, -0.2], [0.2, 0.2]], rng.uniform(lo, hi, (1000, 2))]
    )
    tr = simulate(plant, net.double(), x0, 20)
    inside = np.all(
        (x0[:, None] >= res.box_lower[None]) & (x0[:, None] <= res.box_upper[None]), axis=2
    )
    b = np.argmax(inside, axis=1)
    assert inside.any(axis=1).all()
    assert np.all(tr.states >= res.lower[b] - 1e-12) and np.all(tr.states <= res.upper[b] + 1e-12)
    assert np.all(np.abs(tr.states[..., 0]) <= 0.5) and np.all(np.abs(tr.states[..., 1]) <= 0.6)


def test_continuous_windows_at_times_and_unsafe_sets_between_samples():
    A, B, K = np.array([[-0.5]]), np.array([[1.0]]), np.array([[-0.5]])
    lo, hi = np.array([0.9]), np.array([1.1])
    ode = _linear_plant(A, B, 0.5)
    ctrl = linear_controller(K)
    t = 1.25  # between two samples: read on the tube of the period, or the ODE itself
    x_hi = _exact_box(_state_map(A, B, K, 0.5, t), lo, hi)[1][0]
    res = check_closed_loop(ode, ctrl, lo, hi, at(Box([0.0], [x_hi * 1.05]), t), steps=4)
    assert res.status == "holds" and res.semantics == "continuous"
    _assert_backed_by_trajectories(res, ode, K)
    goal = _exact_box(_state_map(A, B, K, 0.5, 1.5), lo, hi)[1][0] * 1.05
    res = check_closed_loop(ode, ctrl, lo, hi, eventually(Box([0.0], [goal]), (1.0, 2.0)), steps=4)
    assert res.status == "holds"
    # a quarter turn of the rotation stays away from the box around (-1, 0)
    A, B, lo, hi = _rotation()
    rot = _linear_plant(A, B, math.pi / 2)
    unsafe = Box([-1.2, -0.2], [-0.8, 0.2])
    res = check_closed_loop(
        rot, linear_controller([[0.0, 0.0]]), lo, hi, never(unsafe, (0, math.pi / 2)), steps=2
    )
    assert res.status == "holds"
    _assert_backed_by_trajectories(res, rot, np.zeros((1, 2)))


def test_sub_boxes_given_up_are_cut_along_several_dimensions_into_a_partition():
    from neuroctl.verify.closed_loop import _children, _split_dims

    rank = np.array([0.2, 0.0, 0.9, 0.5, 0.1])
    assert _split_dims(rank, False, 32) == [2]
    assert _split_dims(rank, True, 32) == [2, 3, 0, 4]  # the zero-rank dimension is not cut
    assert _split_dims(rank, True, 4) == [2, 3]
    lo, hi = np.array([0.0, -1.0, 2.0, 0.0, 5.0]), np.array([1.0, 1.0, 3.0, 0.5, 5.0])
    kids = _children(lo, hi, [2, 3, 0])
    assert len(kids) == 8
    # brute force: every point of the box lies in exactly one child's interior (a partition)
    pts = np.random.default_rng(0).uniform(lo, hi, (4000, 5))
    inside = np.stack([np.all((pts > a) & (pts < b) | (a == b), axis=1) for a, b in kids], 1)
    assert np.all(inside.sum(axis=1) == 1)
    vol = sum(np.prod((b - a)[[0, 1, 2, 3]]) for a, b in kids)
    assert vol == pytest.approx(np.prod((hi - lo)[[0, 1, 2, 3]]), rel=1e-15)
