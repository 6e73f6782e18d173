"""Soundness and tightness of interval, CROWN and MILP output bounds (brute force as reference)."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from neuroctl import affine_layer
from neuroctl.verify import (
    as_relu_network,
    crown_bounds,
    interval_bounds,
    output_bounds,
    pre_activation_bounds,
)


def _random_net(seed, kind):
    torch.manual_seed(seed)
    act = {
        "relu": nn.ReLU,
        "leaky": lambda: nn.LeakyReLU(0.1),
        "hardtanh": lambda: nn.Hardtanh(-0.5, 0.7),
        "relu6": nn.ReLU6,
    }[kind]
    return nn.Sequential(
        affine_layer([2.0, 0.5, 1.0], [0.1, -0.2, 0.0]),
        nn.Sequential(nn.Linear(3, 12), act()),
        nn.Linear(12, 10),
        act(),
        nn.Identity(),
        nn.Linear(10, 2),
    )


def _box(seed):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, 3)
    return lo, lo + rng.uniform(0.2, 1.5, 3)


@pytest.mark.parametrize("kind", ["relu", "leaky", "hardtanh", "relu6"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bounds_contain_outputs_of_random_inputs_and_nest(kind, seed):
    net = _random_net(seed, kind)
    lo, hi = _box(seed)
    x = np.random.default_rng(seed + 10).uniform(lo, hi, (100_000, 3))
    with torch.no_grad():
        y = net.double()(torch.as_tensor(x)).numpy()
    ib = output_bounds(net, lo, hi, method="interval")
    cb = output_bounds(net, lo, hi, method="crown")
    mb = output_bounds(net, lo, hi, method="milp")
    tol = 1e-9
    for b in (ib, cb, mb):
        assert np.all(b.lower <= y.min(0) + tol) and np.all(b.upper >= y.max(0) - tol)
    # interval ⊇ linear relaxation ⊇ MILP
    assert np.all(ib.lower <= cb.lower + tol) and np.all(cb.upper <= ib.upper + tol)
    assert np.all(cb.lower <= mb.lower + 1e-7) and np.all(mb.upper <= cb.upper + 1e-7)
    # the lowering is exact
    assert np.allclose(as_relu_network(net)(x), y, atol=1e-12)


def _brute_force_extremes(net, lo, hi):
    """Exact min/max of each output: one LP per activation pattern of the ReLU layers."""
    r = as_relu_network(net)
    (W0, W1, W2), (b0, b1, b2) = r.weights, r.biases
    n0, n1 = W0.shape[0], W1.shape[0]
    n_out = W2.shape[0]
    lower, upper = np.full(n_out, np.inf), np.full(n_out, -np.inf)
    for p0 in itertools.product([0, 1], repeat=n0):
        D0 = np.diag(p0)
        for p1 in itertools.product([0, 1], repeat=n1):
            D1 = np.diag(p1)
            # region: sign constraints on z0 = W0 x + b0 and z1 = W1 D0 z0 + b1
            A1, c1 = W1 @ D0 @ W0, W1 @ D0 @ b0 + b1
            s0 = np.where(np.array(p0) == 1, -1.0, 1.0)[:, None]
            s1 = np.where(np.array(p1) == 1, -1.0, 1.0)[:, None]
            A_ub = np.vstack([s0 * W0, s1 * A1])
            b_ub = np.concatenate([-s0[:, 0] * b0, -s1[:, 0] * c1])
            G, g = W2 @ D1 @ A1, W2 @ D1 @ c1 + b2
            for i in range(n_out):
                for sign in (1.0, -1.0):
                    res = linprog(
                        sign * G[i], A_ub=A_ub, b_ub=b_ub, bounds=list(zip(lo, hi)), method="highs"
                    )
                    if res.status != 0:
                        continue  # empty region
                    val = res.fun * sign + g[i]
                    lower[i], upper[i] = min(lower[i], val), max(upper[i], val)
    return lower, upper


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_bounds_equal_brute_force_region_enumeration(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    lo, hi = np.array([-1.0, -0.5]), np.array([0.8, 1.0])
    bl, bu = _brute_force_extremes(net, lo, hi)
    for backend in ("scipy", "highspy"):
        mb = output_bounds(net, lo, hi, method="milp", backend=backend)
        np.testing.assert_allclose(mb.lower, bl, atol=1e-6)
        np.testing.assert_allclose(mb.upper, bu, atol=1e-6)


def test_batched_boxes_match_single_boxes_and_contain_pre_activations():
    net = _random_net(3, "relu")
    rng = np.random.default_rng(3)
    lo = rng.uniform(-1, 0, (5, 3))
    hi = lo + rng.uniform(0.1, 1.0, (5, 3))
    for f in (interval_bounds, crown_bounds):
        bl, bu = f(net, lo, hi)
        for k in range(5):
            sl, su = f(net, lo[k], hi[k])
            np.testing.assert_allclose(bl[k], sl, rtol=0, atol=1e-12)
            np.testing.assert_allclose(bu[k], su, rtol=0, atol=1e-12)
    r = as_relu_network(net)
    x = rng.uniform(lo[0], hi[0], (20_000, 3))
    zs = r.pre_activations(x)
    for method in ("interval", "forward", "crown"):
        for (l, u), z in zip(pre_activation_bounds(net, lo[0], hi[0], method=method), zs):
            assert np.all(l <= z.min(0) + 1e-9) and np.all(u >= z.max(0) - 1e-9)


def test_float32_network_is_analysed_in_float64():
    net = _random_net(4, "relu")  # float32 parameters
    lo, hi = _box(4)
    l, u = crown_bounds(net, lo, hi)
    assert l.dtype == np.float64 and u.dtype == np.float64
    r = as_relu_network(net)
    assert all(W.dtype == np.float64 for W in r.weights)


def test_unsupported_layer_is_named_with_the_supported_list():
    net = nn.Sequential(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 1))
    with pytest.raises(NotImplementedError, match="ELU.*supported layers:.*ReLU.*Tanh"):
        interval_bounds(net, np.zeros(2), np.ones(2))


def test_unknown_method_and_bad_box_are_errors():
    net = _random_net(0, "relu")
    with pytest.raises(ValueError, match="method"):
        output_bounds(net, np.zeros(3), np.ones(3), method="exact")
    with pytest.raises(TypeError):
        output_bounds(net, np.zeros(3), np.ones(3), mehtod="crown")
    with pytest.raises(ValueError, match="lower <= upper"):
        interval_bounds(net, np.ones(3), np.zeros(3))


def _milp_hard_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 1)
    ).double()


def test_scipy_milp_out_of_time_returns_a_sound_bound_no_weaker_than_crown():
    from neuroctl.verify.milp import encode, solve

    net = _milp_hard_net()
    lo, hi = -np.ones(3), np.ones(3)
    problem = encode(net, lo, hi).with_objective([[-1.0]], [0.0])  # min -y: -max y
    exact = solve(problem, backend="highspy")  # no limit: the true maximum (about 2 s)
    assert exact.status == "optimal"
    true_max = -exact.value
    x = np.random.default_rng(0).uniform(lo, hi, (100_000, 3))
    with torch.no_grad():
        sampled_max = net(torch.as_tensor(x)).numpy().max()
    assert sampled_max <= true_max + 1e-9
    # the limit expires long before HiGHS finishes (no feasible point found yet)
    sol = solve(problem, backend="scipy", time_limit=0.02)
    assert sol.status == "time_limit" and np.isfinite(sol.bound)
    assert -sol.bound >= true_max - 1e-7
    ob = output_bounds(net, lo, hi, method="milp", backend="scipy", time_limit=0.02)
    cl, cu = crown_bounds(net, lo, hi)
    assert np.all(np.isfinite(ob.lower)) and np.all(np.isfinite(ob.upper))
    assert ob.upper[0] >= true_max - 1e-7 and ob.lower[0] <= _sampled_min(net, x) + 1e-9
    assert ob.upper[0] <= cu[0] + 1e-12 and ob.lower[0] >= cl[0] - 1e-12
    # and here strictly tighter than CROWN: the LP relaxation keeps both ReLU lines
    assert ob.upper[0] < cu[0] - 1e-3


def _sampled_min(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(x)).numpy().min()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_milp_time_limit_must_be_a_positive_number(bad):
    with pytest.raises(ValueError, match="time_limit: expected a positive finite number"):
        output_bounds(_milp_hard_net(), -np.ones(3), np.ones(3), method="milp", time_limit=bad)
