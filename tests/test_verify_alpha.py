"""α-CROWN slopes: sound (below the exact MILP optimum) and never weaker than CROWN."""

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl.verify import Spec, check, output_bounds
from neuroctl.verify.alpha import optimized_lower_bound
from neuroctl.verify.bounds import _boxes, _crown_all, linear_lower_bound
from neuroctl.verify.milp import minimize_margin


def _net(seed, act=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(3, 16), act(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    ).double()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimized_bound_lies_between_crown_and_the_exact_minimum(seed):
    net = _net(seed)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1.0, 0.0, (4, 3))
    hi = lo + rng.uniform(0.5, 1.5, (4, 3))
    C = np.array([[1.0, -1.0], [0.5, 2.0]])
    rnet, lo, hi, _ = _boxes(net, lo, hi)
    pre = _crown_all(rnet, lo, hi)
    crown, _, _ = linear_lower_bound(rnet, lo, hi, C, intermediate="crown")
    opt, coef = optimized_lower_bound(rnet, pre, lo, hi, C, steps=30)
    assert np.all(opt >= crown - 1e-12)
    assert np.sum(opt - crown) > 1e-3  # the slopes pay on these boxes
    for b in range(4):
        for j in range(2):
            pre_b = [(l[b], u[b]) for l, u in pre]
            exact = minimize_margin(rnet, lo[b], hi[b], C[j : j + 1], [0.0], pre_bounds=pre_b)
            assert exact.status == "optimal"
            assert opt[b, j] <= exact.value + 1e-7
    assert coef.shape == (4, 2, 3)


def test_smooth_layers_keep_their_lines_and_stay_sound():
    net = _net(3, nn.Tanh)
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    rnet, lo, hi, _ = _boxes(net, lo, hi)
    pre = _crown_all(rnet, lo, hi)
    opt, _ = optimized_lower_bound(rnet, pre, lo, hi, np.eye(2), steps=20)
    x = np.random.default_rng(0).uniform(-1, 1, (100_000, 3))
    with torch.no_grad():
        y = net(torch.as_tensor(x)).numpy()
    assert np.all(opt[0] <= y.min(0) + 1e-9)
    assert np.all(opt[0] >= output_bounds(net, lo[0], hi[0]).lower - 1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_check_with_optimized_slopes_gives_the_verdicts_of_the_exact_maximum(seed):
    net = _net(seed)
    lo, hi = -np.ones(3), np.ones(3)
    true_max = output_bounds(net, lo, hi, method="milp").upper[0]
    for thr, want in ((true_max + 1e-3, "holds"), (true_max - 1e-3, "violated")):
        spec = Spec.output_range(2, upper=[thr, np.inf])
        r = check(net, lo, hi, spec, samples=0, timeout=60, alpha_steps=10)
        assert r.status == want
        if want == "holds":
            assert r.stats["alpha_boxes"] > 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_alpha_steps_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="alpha_steps: expected a non-negative integer"):
        check(_net(0), -np.ones(3), np.ones(3), Spec.require([[1.0, 0.0]], [0.0]), alpha_steps=bad)
