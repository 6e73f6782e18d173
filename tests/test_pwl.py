"""Exact PWL <-> ReLU conversions, checked against np.interp, np.clip and the network itself."""

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl import mlp, pwl_from_relu_net, relu_net_from_pwl
from neuroctl.pwl import PiecewiseLinear, saturated, saturation_layers


def _random_pwl(rng, k):
    # knot gaps in [0.1, 1], values O(1): the hinge sum then rounds to well below 1e-12
    # (its rounding error is about eps * sum_i |slope change_i| |x - t_i|)
    knots = -3.0 + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 1.0, k - 1))])
    values = rng.normal(size=k)
    return knots, values


def _net_eval(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, float)[:, None], dtype=torch.float64)).numpy()


@pytest.mark.parametrize("extrapolation", ["linear", "constant"])
def test_relu_net_interpolates_exactly_between_knots(extrapolation):
    rng = np.random.default_rng(0)
    for k in (2, 3, 7, 40):
        knots, values = _random_pwl(rng, k)
        net = relu_net_from_pwl(knots, values, extrapolation=extrapolation)
        x = np.concatenate([knots, rng.uniform(knots[0], knots[-1], 500)])
        np.testing.assert_allclose(_net_eval(net, x)[:, 0], np.interp(x, knots, values), atol=1e-12)
        # one hinge per knot
        assert net[0].out_features == k


def test_linear_extrapolation_continues_the_end_slopes():
    rng = np.random.default_rng(1)
    knots, values = _random_pwl(rng, 6)
    net = relu_net_from_pwl(knots, values, extrapolation="linear")
    s_left = (values[1] - values[0]) / (knots[1] - knots[0])
    s_right = (values[-1] - values[-2]) / (knots[-1] - knots[-2])
    left = knots[0] - np.array([0.5, 3.0, 100.0])
    right = knots[-1] + np.array([0.5, 3.0, 100.0])
    np.testing.assert_allclose(
        _net_eval(net, left)[:, 0], values[0] + s_left * (left - knots[0]), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        _net_eval(net, right)[:, 0],
        values[-1] + s_right * (right - knots[-1]),
        rtol=1e-12,
        atol=1e-12,
    )


def test_constant_extrapolation_holds_the_end_values():
    rng = np.random.default_rng(2)
    knots, values = _random_pwl(rng, 5)
    net = relu_net_from_pwl(knots, values, extrapolation="constant")
    out = _net_eval(net, np.array([knots[0] - 7.0, knots[0] - 0.1, knots[-1] + 0.1, 1e3]))[:, 0]
    np.testing.assert_allclose(out, [values[0], values[0], values[-1], values[-1]], atol=1e-12)


@pytest.mark.parametrize("extrapolation", ["linear", "constant"])
def test_round_trip_pwl_net_pwl_recovers_knots_and_values(extrapolation):
    rng = np.random.default_rng(3)
    for _ in range(20):
        knots, values = _random_pwl(rng, int(rng.integers(2, 30)))
        net = relu_net_from_pwl(knots, values, extrapolation=extrapolation)
        f = pwl_from_relu_net(net, knots[0], knots[-1], simplify=True)
        np.testing.assert_allclose(f.knots, knots, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f.values, values, rtol=0, atol=1e-12)


def test_round_trip_net_pwl_net_agrees_everywhere_on_the_interval():
    rng = np.random.default_rng(4)
    for seed, act in enumerate(["relu", "leaky_relu", "hardtanh", "relu6", "relu"]):
        net = mlp(1, 1, (16, 16, 8), act, seed=seed, dtype=torch.float64)
        f = pwl_from_relu_net(net, -4.0, 4.0)
        # every piece is affine: the interpolant matches the network at arbitrary points
        x = rng.uniform(-4.0, 4.0, 4000)
        np.testing.assert_allclose(f(x), _net_eval(net, x)[:, 0], rtol=0, atol=1e-12)
        # and back: the ReLU network of the breakpoints equals the original network
        net2 = relu_net_from_pwl(f.knots, f.values)
        np.testing.assert_allclose(_net_eval(net2, x), _net_eval(net, x), rtol=0, atol=1e-12)


def test_breakpoints_are_exact_kinks():
    # simplified breakpoints are places where the slope really changes (checked on the network
    # by one-sided secants far smaller than the distance to the neighbouring breakpoints)
    net = mlp(1, 1, (12, 12), seed=7, dtype=torch.float64)
    f = pwl_from_relu_net(net, -3.0, 3.0, simplify=True)
    inner = f.knots[1:-1]
    gaps = np.minimum(np.diff(f.knots)[:-1], np.diff(f.knots)[1:])
    h = 1e-3 * gaps
    y0, yl, yr = (_net_eval(net, inner + d)[:, 0] for d in (0.0, -h, h))
    left, right = (y0 - yl) / h, (yr - y0) / h
    np.testing.assert_allclose(left, f.slopes[:-1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(right, f.slopes[1:], rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(right - left) > 1e-9)


def test_multi_output_network():
    net = mlp(1, 3, (10,), seed=1, dtype=torch.float64)
    f = pwl_from_relu_net(net, -2.0, 2.0)
    assert f.values.shape == (f.knots.size, 3)
    x = np.linspace(-2.0, 2.0, 777)
    np.testing.assert_allclose(f(x), _net_eval(net, x), atol=1e-12)


def test_saturation_layers_equal_clip():
    lo, hi = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 1.0, 2.0])
    sat = saturation_layers(lo, hi)
    v = np.random.default_rng(5).normal(scale=3.0, size=(1000, 3))
    with torch.no_grad():
        out = sat(torch.as_tensor(v)).numpy()
    np.testing.assert_allclose(out, np.clip(v, lo, hi), atol=1e-15)


def test_saturated_controller_breakpoints_include_the_limits():
    # u = clip(2 y, -1, 1): breakpoints exactly at y = -0.5 and 0.5
    ctrl = nn.Sequential(nn.Linear(1, 1).double())
    with torch.no_grad():
        ctrl[0].weight.fill_(2.0)
        ctrl[0].bias.fill_(0.0)
    f = pwl_from_relu_net(saturated(ctrl, -1.0, 1.0), -3.0, 3.0, simplify=True)
    np.testing.assert_allclose(f.knots, [-3.0, -0.5, 0.5, 3.0], atol=1e-15)
    np.testing.assert_allclose(f.values, [-1.0, -1.0, 1.0, 1.0], atol=1e-15)


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="strictly increasing"):
        relu_net_from_pwl([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="extrapolation"):
        relu_net_from_pwl([0.0, 1.0], [1.0, 2.0], extrapolation="quadratic")
    with pytest.raises(TypeError, match="Tanh"):
        pwl_from_relu_net(mlp(1, 1, (4,), "tanh"), 0.0, 1.0)
    with pytest.raises(ValueError, match="scalar input"):
        pwl_from_relu_net(mlp(2, 1, (4,)), 0.0, 1.0)
    with pytest.raises(TypeError):
        relu_net_from_pwl([0.0, 1.0], [1.0, 2.0], extrapolate="linear")
    with pytest.raises(ValueError, match="lower <= upper"):
        saturation_layers(1.0, -1.0)


def test_result_object():
    f = PiecewiseLinear([0.0, 1.0, 2.0], [0.0, 1.0, 0.0])
    assert "2 pieces" in repr(f)
    assert f.to_dict() == {"knots": [0.0, 1.0, 2.0], "values": [0.0, 1.0, 0.0]}
    np.testing.assert_allclose(f.slopes, [1.0, -1.0])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = f.plot()
    assert len(fig.axes[0].lines) == 1
    plt.close(fig)
