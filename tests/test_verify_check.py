"""check(): verdicts against brute force, counterexamples that check, determinism, specs, vnnlib."""

import time

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl.verify import Spec, check, read_vnnlib


def _net():
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )


def _grid_max(net, lo, hi, n=801):
    """Brute force: the output on a fine grid (a lower estimate of the true maximum)."""
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1)
    with torch.no_grad():
        y = net.double()(torch.as_tensor(g.reshape(-1, 2))).numpy()
    return y.max(0)


LO, HI = np.array([-1.0, -1.0]), np.array([1.0, 1.0])


def test_threshold_above_the_true_maximum_holds_and_below_is_violated_with_a_checked_input():
    net = _net()
    y_max = _grid_max(_net(), LO, HI)
    # the grid maximum is below the true maximum; crown-proven upper bound caps it from above
    from neuroctl.verify import output_bounds

    true_max = output_bounds(net, LO, HI, method="milp").upper[0]
    assert y_max[0] <= true_max + 1e-9
    ok = check(net, LO, HI, Spec.output_range(2, upper=[true_max + 0.01, np.inf]), timeout=30)
    assert ok.status == "holds" and ok.margin > 0 and ok.counterexample is None
    bad = check(net, LO, HI, Spec.output_range(2, upper=[y_max[0] - 0.01, np.inf]), timeout=30)
    assert bad.status == "violated"
    x = bad.counterexample
    assert np.all(x >= LO) and np.all(x <= HI)
    with torch.no_grad():
        y = net.double()(torch.as_tensor(x)).numpy()
    assert y[0] >= y_max[0] - 0.01 and bad.margin <= 0
    np.testing.assert_allclose(bad.output, y, rtol=0, atol=1e-12)


def test_branch_and_bound_finds_a_counterexample_the_sampler_misses():
    net = _net()
    from neuroctl.verify import output_bounds

    true_max = output_bounds(net, LO, HI, method="milp").upper[0]
    spec = Spec.output_range(2, upper=[true_max - 1e-4, np.inf])
    r = check(net, LO, HI, spec, samples=0, timeout=30)
    assert r.status == "violated" and r.stats["boxes"] > 0
    with torch.no_grad():
        y = net.double()(torch.as_tensor(r.counterexample)).numpy()
    assert y[0] >= true_max - 1e-4


def test_same_seed_gives_identical_results():
    net = _net()
    spec = Spec.require([[1.0, -1.0]], [0.5])
    a = check(net, LO, HI, spec, seed=3, timeout=30).to_dict()
    b = check(net, LO, HI, spec, seed=3, timeout=30).to_dict()
    a.pop("time"), b.pop("time")
    assert a == b


def test_timeout_returns_unknown_with_a_bound_never_a_guess():
    net = _net()
    from neuroctl.verify import output_bounds

    true_max = output_bounds(net, LO, HI, method="milp").upper[0]
    r = check(
        net, LO, HI, Spec.output_range(2, upper=[true_max + 1e-6, np.inf]), samples=0, timeout=0.0
    )
    assert r.status == "unknown" and r.counterexample is None
    assert r.lower_bound <= 1e-6  # a proven lower bound on the true minimum margin (1e-6)


def test_spec_margin_and_disjunction():
    s = Spec.require([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0])
    np.testing.assert_allclose(
        s.margin(np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 3.0]])), [1.0, -0.5, -1.0]
    )
    u = Spec.unsafe_polytope([[1.0, 0.0]], [-1.0]) | Spec.unsafe_polytope([[-1.0, 0.0]], [-1.0])
    # unsafe: y0 <= -1 or y0 >= 1
    np.testing.assert_allclose(u.margin(np.array([[0.0, 5.0], [2.0, 0.0]])), [1.0, -1.0])
    with pytest.raises(ValueError, match="expected C of shape"):
        Spec.require([[1.0, 0.0]], [1.0, 2.0])


def test_read_vnnlib_boxes_and_output_disjunctions(tmp_path):
    p = tmp_path / "p.vnnlib"
    p.write_text(
        "; test\n(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
        "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
        "(assert (or (and (<= X_0 1) (>= X_0 0) (<= X_1 0.5) (>= X_1 -0.5))\n"
        "            (and (<= X_0 3) (>= X_0 2) (<= X_1 0.5) (>= X_1 -0.5))))\n"
        "(assert (or (and (<= Y_0 Y_1)) (and (>= Y_0 2.5) (<= Y_1 -1))))\n"
    )
    qs = read_vnnlib(p)
    assert len(qs) == 2
    np.testing.assert_allclose(qs[1].lower, [2, -0.5])
    np.testing.assert_allclose(qs[1].upper, [3, 0.5])
    spec = qs[0].spec
    # unsafe points: y0 <= y1, or (y0 >= 2.5 and y1 <= -1)
    y = np.array([[0.0, 1.0], [3.0, -2.0], [1.0, 0.0], [3.0, 0.0]])
    assert list(spec.margin(y) <= 0) == [True, True, False, False]


@pytest.mark.parametrize("branching", ["bound", "gradient"])
def test_both_branching_rules_give_the_verdicts_of_the_exact_maximum(branching):
    from neuroctl.verify import output_bounds

    net = _net()
    true_max = output_bounds(net, LO, HI, method="milp").upper[0]
    for thr, want in ((true_max + 1e-4, "holds"), (true_max - 1e-4, "violated")):
        spec = Spec.output_range(2, upper=[thr, np.inf])
        r = check(net, LO, HI, spec, samples=0, timeout=60, branching=branching)
        assert r.status == want
        if want == "holds":
            assert 0 < r.margin <= 1e-4 + 1e-9  # a proven bound, not above the true margin
            assert (r.stats["branch_estimates"] > 0) == (branching == "bound")


def test_unknown_branching_rule_is_rejected_by_name():
    with pytest.raises(ValueError, match="branching: expected 'auto', 'bound' or 'gradient'"):
        check(_net(), LO, HI, Spec.require([[1.0, 0.0]], [0.0]), branching="smart")


def test_bound_branching_stops_at_the_deadline():
    # the threshold is a sampled output, below the true maximum, so "holds" would be wrong;
    # "violated" needs a counterexample near the exact maximum or a very deep search: unknown,
    # on time
    torch.manual_seed(11)
    net = nn.Sequential(
        nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    ).double()
    lo, hi = -np.ones(4), np.ones(4)
    x = np.random.default_rng(0).uniform(lo, hi, (100_000, 4))
    with torch.no_grad():
        sampled_max = net(torch.as_tensor(x)).numpy().max()
    spec = Spec.output_range(1, upper=[sampled_max])
    r = check(net, lo, hi, spec, samples=0, timeout=1.0, batch_size=4096)
    assert r.status != "holds"
    assert r.time < 1.0 + 3.0


def _identity_net():
    """``y = relu(x0) - relu(-x0) = x0`` exactly in float64: on [-1, 1]^2 its range is [-1, 1]."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        net[2].bias.zero_()
    return net


def test_an_output_exactly_at_a_bound_satisfies_the_range():
    from neuroctl.verify import output_bounds

    # brute force: the floats at and next to the bounds, against the definition lower <= y <= upper
    spec = Spec.output_range(1, lower=[-1.0], upper=[1.0])
    y = np.array([-1.0, 1.0, 0.0, np.nextafter(1.0, 2.0), np.nextafter(-1.0, -2.0), 2.0])[:, None]
    outside = (y[:, 0] < -1.0) | (y[:, 0] > 1.0)
    assert np.array_equal(spec.margin(y) <= 0, outside)
    # the exact range of the network (MILP, and the grid, which contains x0 = +-1) is [-1, 1]
    net = _identity_net()
    exact = output_bounds(net, LO, HI, method="milp")
    assert (exact.lower[0], exact.upper[0]) == pytest.approx((-1.0, 1.0), abs=1e-9)
    grid = _grid_max(net, LO, HI, n=101)
    assert grid[0] == 1.0
    r = check(net, LO, HI, spec, timeout=30)
    assert r.status == "holds" and r.counterexample is None
    # one float64 below the maximum: violated at an input whose output is exactly 1
    below = Spec.output_range(1, upper=[np.nextafter(1.0, 0.0)])
    r = check(net, LO, HI, below, timeout=30)
    assert r.status == "violated" and r.output[0] == 1.0 and r.counterexample[0] == 1.0


def _union_spec(shift):
    """Unsafe: ``y0 >= max y0 + shift``, or ``y1 >= max y1 + shift and y0 <= y1``, or
    ``y1 <= min y1 - shift`` (the extremes of ``_net()`` on the box by MILP)."""
    from neuroctl.verify import output_bounds

    exact = output_bounds(_net(), LO, HI, method="milp")
    return Spec(
        (
            (np.array([[-1.0, 0.0]]), -np.array([exact.upper[0] + shift])),
            (np.array([[0.0, -1.0], [1.0, -1.0]]), -np.array([exact.upper[1] + shift, 0.0])),
            (np.array([[0.0, 1.0]]), np.array([exact.lower[1] - shift])),
        )
    )


@pytest.mark.parametrize("branching", ["auto", "bound", "gradient"])
@pytest.mark.parametrize("shift", [-0.002, 0.002, 0.01])
def test_unsafe_polytopes_searched_together_give_the_verdict_of_their_exact_minima(
    branching, shift
):
    from neuroctl.verify.milp import minimize_margin

    net = _net()
    spec = _union_spec(shift)
    # the exact least margin of the union: the least of its polytopes' exact minima (MILP)
    minima = [minimize_margin(net, LO, HI, C, d) for C, d in spec.unsafe]
    assert all(m.status == "optimal" for m in minima)
    least = min(m.value for m in minima)
    r = check(net, LO, HI, spec, samples=0, timeout=60, branching=branching, batch_size=8)
    assert r.status == ("holds" if least > 0 else "violated")
    if r.status == "holds":
        assert 0 < r.margin <= least + 1e-9  # a proven bound, not above the true margin
    else:
        with torch.no_grad():
            y = net.double()(torch.as_tensor(r.counterexample)).numpy()
        assert r.margin <= 0 and spec.margin(y) <= 0


def test_a_search_run_in_slices_is_the_search_run_at_once():
    from neuroctl.verify.bab import _Search
    from neuroctl.verify.bab_bounding import _Union
    from neuroctl.verify.bounds import as_relu_network

    rnet = as_relu_network(_net())
    spec = _union_spec(0.002)
    runs = []
    for sliced in (False, True):
        stats = {k: 0 for k in ("boxes", "splits", "max_depth", "branch_estimates", "milp_calls")}
        stats.update(alpha_boxes=0, lost_pieces=0)
        s = _Search(
            rnet,
            LO[None],
            HI[None],
            _Union(spec.unsafe),
            None,
            8,
            "crown",
            0,
            "scipy",
            0,
            "gradient",
            stats,
            None,
        )
        statuses = []
        while not statuses or statuses[-1] == "paused":
            # slices of 1 ms: a batch of 8 boxes or a few each
            statuses.append(s.run(time.perf_counter() + 1e-3 if sliced else np.inf))
            if len(statuses) > 10_000:
                break
        runs.append((statuses, stats, s.proven_lb))
    (one, stats1, lb1), (many, stats_n, lb_n) = runs
    assert one == ["holds"] and many[-1] == "holds" and len(many) > 1
    assert stats1 == stats_n and lb1 == lb_n
