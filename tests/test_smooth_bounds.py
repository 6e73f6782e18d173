"""Smooth activations (tanh, sigmoid) in the bounds and in check: brute force as the reference.

References: dense sampling of the exact function (the relaxation lines, the network outputs) and,
for check's verdicts, a dense grid whose maximum is at most ``L h`` below the true maximum, with
``L`` a Lipschitz bound of the network (product of the weights' spectral norms times the largest
slope of the activation) and ``h`` the largest distance of a point of the box to the grid.
"""

import numpy as np
import pytest
import torch
from scipy.special import expit
from torch import nn

from neuroctl.verify import (
    Spec,
    as_relu_network,
    check,
    crown_bounds,
    interval_bounds,
    output_bounds,
    pre_activation_bounds,
)
from neuroctl.verify.bounds import forward_bounds
from neuroctl.verify.relaxations import ACTIVATIONS

ACTS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
MAX_SLOPE = {"tanh": 1.0, "sigmoid": 0.25}
EXACT = {"tanh": np.tanh, "sigmoid": expit}


def _intervals(seed, n=1500):
    """Random intervals of every kind: convex part, concave part, across 0, tiny, huge."""
    rng = np.random.default_rng(seed)
    parts = []
    for scale in (1e-3, 0.3, 1.0, 3.0, 20.0):
        c = rng.normal(0.0, scale, n)
        w = np.abs(rng.normal(0.0, scale, n))
        parts.append((c - w / 2, c + w / 2))
    parts.append((np.full(5, 0.7), np.full(5, 0.7)))  # degenerate
    l, u = (np.concatenate(p) for p in zip(*parts))
    return l, u


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu"])
def test_relaxation_lines_enclose_the_function_and_touch_it(name):
    act = ACTIVATIONS[name]
    l, u = _intervals(1)
    a_lo, b_lo, a_up, b_up = act.relax(l, u)
    assert np.all(a_lo >= 0) and np.all(a_up >= 0)  # what the forward linear bounds rely on
    t = np.linspace(0.0, 1.0, 1001)[:, None]
    z = l + (u - l) * t
    fz = EXACT.get(name, lambda v: np.maximum(v, 0.0))(z)
    below = fz - (a_lo * z + b_lo)
    above = (a_up * z + b_up) - fz
    assert below.min() >= -1e-12 and above.min() >= -1e-12
    if name != "relu":
        # tight: each line touches the function on the interval (a chord at the ends, a tangent
        # at its point, which is within (u - l) / 2000 of a sample, where the gap is at most
        # |f''| / 2 times that squared, |f''| <= 0.8)
        wide = (u - l) > 1e-6
        touch = 1e-10 + 0.4 * ((u - l)[wide] / 2000) ** 2
        assert np.all(below.min(0)[wide] <= touch) and np.all(above.min(0)[wide] <= touch)


def _smooth_net(seed, act, n_in=2, width=10, mixed=False):
    torch.manual_seed(seed)
    second = nn.ReLU() if mixed else ACTS[act]()
    return nn.Sequential(
        nn.Linear(n_in, width),
        ACTS[act](),
        nn.Linear(width, width),
        second,
        nn.Linear(width, 2),
    ).double()


def _samples(net, lo, hi, n=100_000, seed=0):
    x = np.random.default_rng(seed).uniform(lo, hi, (n, lo.size))
    x = np.vstack([x, lo, hi])
    with torch.no_grad():
        return x, net(torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_in", [1, 2])
def test_bounds_of_every_method_contain_1e5_sampled_outputs_and_crown_is_tighter(act, seed, n_in):
    net = _smooth_net(seed, act, n_in=n_in)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-2.0, 0.0, n_in)
    hi = lo + rng.uniform(0.5, 3.0, n_in)
    x, y = _samples(net, lo, hi)
    tol = 1e-9
    ib = output_bounds(net, lo, hi, method="interval")
    cb = output_bounds(net, lo, hi, method="crown")
    fb = forward_bounds(net, lo, hi)
    for lb, ub in ((ib.lower, ib.upper), (cb.lower, cb.upper), fb):
        assert np.all(lb <= y.min(0) + tol) and np.all(ub >= y.max(0) - tol)
    # nested, and the linear relaxation strictly tighter than interval arithmetic
    assert np.all(ib.lower <= cb.lower + tol) and np.all(cb.upper <= ib.upper + tol)
    assert np.sum(cb.upper - cb.lower) < 0.9 * np.sum(ib.upper - ib.lower)
    # pre-activation bounds of every method contain the sampled pre-activations
    zs = as_relu_network(net, smooth=True).pre_activations(x)
    for method in ("interval", "forward", "crown"):
        for (l, u), z in zip(pre_activation_bounds(net, lo, hi, method=method), zs):
            assert np.all(l <= z.min(0) + tol) and np.all(u >= z.max(0) - tol)
    # the lowering keeps the activations and is exact
    np.testing.assert_allclose(as_relu_network(net, smooth=True)(x), y, rtol=0, atol=1e-12)


def test_mixed_smooth_and_piecewise_linear_layers_are_bounded_soundly():
    net = nn.Sequential(
        nn.Linear(2, 8),
        nn.Tanh(),
        nn.Linear(8, 8),
        nn.LeakyReLU(0.1),
        nn.Linear(8, 6),
        nn.Sigmoid(),
        nn.Identity(),
        nn.Linear(6, 6),
        nn.Hardtanh(-0.3, 0.4),
        nn.Flatten(),
        nn.Linear(6, 2),
        nn.ReLU6(),
    ).double()
    torch.manual_seed(5)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0)
    lo, hi = np.array([-1.0, -0.5]), np.array([0.5, 1.5])
    _, y = _samples(net, lo, hi)
    for f in (interval_bounds, crown_bounds, forward_bounds):
        lb, ub = f(net, lo, hi)
        assert np.all(lb <= y.min(0) + 1e-9) and np.all(ub >= y.max(0) - 1e-9)


def test_bounds_shrink_to_the_output_as_the_box_shrinks():
    net = _smooth_net(3, "tanh")
    x0 = np.array([0.3, -0.2])
    with torch.no_grad():
        y0 = net(torch.as_tensor(x0)).numpy()
    widths = []
    for r in (1e-1, 1e-2, 1e-3):
        lb, ub = crown_bounds(net, x0 - r, x0 + r)
        assert np.all(lb <= y0) and np.all(y0 <= ub)
        widths.append(np.max(ub - lb))
    # second order: the relaxation error falls faster than the box (width ~ r)
    assert widths[2] < widths[1] / 8 and widths[1] < widths[0] / 8


def test_milp_rejects_smooth_networks_and_as_relu_network_needs_smooth_true():
    net = _smooth_net(0, "sigmoid")
    with pytest.raises(NotImplementedError, match="piecewise-linear.*sigmoid"):
        output_bounds(net, -np.ones(2), np.ones(2), method="milp")
    with pytest.raises(NotImplementedError, match="smooth=True"):
        as_relu_network(net)
    assert as_relu_network(net, smooth=True).activations == ("sigmoid", "sigmoid")


# ------------------------------------------------------------------------------------------ check

LO, HI = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
N_GRID = 801


def _grid_max_and_gap(net, act):
    """Grid maximum of output 0 and ``L h``: the true maximum is in [grid, grid + L h]."""
    g = np.linspace(-1.0, 1.0, N_GRID)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    with torch.no_grad():
        y = net(torch.as_tensor(x)).numpy()
    Ws = [m.weight.detach().numpy() for m in net if isinstance(m, nn.Linear)]
    n_smooth = sum(isinstance(m, tuple(ACTS.values())) for m in net)
    L = np.prod([np.linalg.norm(W, 2) for W in Ws]) * MAX_SLOPE[act] ** n_smooth
    h = np.sqrt(2) * (g[1] - g[0]) / 2
    return y[:, 0].max(), L * h


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_decides_smooth_networks_like_a_brute_force_grid(act, seed):
    net = _smooth_net(seed, act, width=16)
    grid_max, gap = _grid_max_and_gap(net, act)
    assert gap < 0.01
    eps = 1e-3
    ok = check(
        net,
        LO,
        HI,
        Spec.output_range(2, upper=[grid_max + gap + eps, np.inf]),
        timeout=60,
        samples=0,
    )
    assert ok.status == "holds" and ok.margin > 0 and ok.stats["boxes"] > 0
    bad = check(
        net, LO, HI, Spec.output_range(2, upper=[grid_max - eps, np.inf]), timeout=60, samples=0
    )
    assert bad.status == "violated"
    x = bad.counterexample
    assert np.all(x >= LO) and np.all(x <= HI)
    with torch.no_grad():
        y = net(torch.as_tensor(x)).numpy()
    assert y[0] >= grid_max - eps and bad.margin <= 0
    np.testing.assert_allclose(bad.output, y, rtol=0, atol=1e-12)  # re-checked in float64


def test_check_on_a_smooth_network_out_of_time_is_unknown_with_a_bound():
    net = _smooth_net(0, "tanh", width=16)
    grid_max, gap = _grid_max_and_gap(net, "tanh")
    spec = Spec.output_range(2, upper=[grid_max + gap + 1e-6, np.inf])
    r = check(net, LO, HI, spec, samples=0, timeout=0.0)
    assert r.status == "unknown" and r.counterexample is None
    assert r.lower_bound <= gap + 1e-6  # a proven lower bound on the true minimum margin


def test_check_on_smooth_networks_is_deterministic_and_the_milp_option_is_harmless():
    net = _smooth_net(1, "sigmoid", width=16)
    spec = Spec.require([[1.0, -1.0]], [0.0])
    a = check(net, LO, HI, spec, seed=4, timeout=30).to_dict()
    b = check(net, LO, HI, spec, seed=4, timeout=30, milp_unstable=10).to_dict()
    a.pop("time"), b.pop("time")
    assert a == b and a["stats"]["milp_calls"] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_network_verdicts_agree_between_input_splitting_and_milp(seed):
    """Where both apply: input splitting alone (the smooth path) and with MILP on small boxes."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2))
    true_max = output_bounds(net, LO, HI, method="milp").upper[0]
    for thr, want in ((true_max + 1e-3, "holds"), (true_max - 1e-3, "violated")):
        spec = Spec.output_range(2, upper=[thr, np.inf])
        split = check(net, LO, HI, spec, samples=0, timeout=60)
        milp = check(net, LO, HI, spec, samples=0, timeout=60, milp_unstable=6)
        assert split.status == milp.status == want
