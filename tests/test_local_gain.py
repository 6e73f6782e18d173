"""neuroctl.local_gain: exact affine maps of piecewise-linear networks, kinks, smooth Jacobians.

Independent sources: the network itself evaluated by torch (float64) at sampled points, torch's
autograd Jacobian away from kinks, brute-force sampling of the gains around a kink, and a dense
grid for the activation derivative bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import neuroctl as nc
from neuroctl.layers import GELU_BOUNDS, SIGMOID_BOUNDS, SILU_BOUNDS, TANH_BOUNDS

F64 = torch.float64


def _net64(net):
    import copy

    return copy.deepcopy(net).to(F64)


def _eval(net, x):
    with torch.no_grad():
        return _net64(net)(torch.as_tensor(np.asarray(x, float), dtype=F64)).numpy()


def _pwl_nets():
    """Random piecewise-linear networks covering every supported PWL layer."""
    torch.manual_seed(0)
    nets = [
        nc.mlp(3, 2, (16, 16), "relu", seed=1, dtype=torch.float64),
        nc.mlp(4, 1, (12, 12), "leaky_relu", seed=2, input_scale=[1, 2, 0.5, 3], output_scale=2),
        nc.mlp(3, 2, (10,), "hardtanh", seed=3, output_activation="hardtanh"),
        nc.mlp(2, 1, (8, 8), "relu6", seed=4, input_offset=[0.5, -0.5]),
        nn.Sequential(
            nn.Flatten(),
            nn.Sequential(nn.Linear(3, 9), nn.PReLU(9)),
            nn.Identity(),
            nn.Sequential(nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 2, bias=False)),
            nn.Hardtanh(-0.3, 0.4),
        ),
    ]
    with torch.no_grad():
        nets[-1][1][1].weight.uniform_(-0.5, 0.5)
    return nets


def _ball_samples(rng, x, r, norm, k):
    n = x.size
    if norm == 2:
        d = rng.normal(size=(k, n))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        s = r * rng.uniform(0, 1, size=(k, 1)) ** (1 / n)
        s[: k // 4] = r * (1 - 1e-9)  # on the sphere
        return x + s * d
    d = rng.uniform(-1, 1, size=(k, n))
    d[: k // 4] = np.sign(d[: k // 4])  # corners of the box
    return x + r * (1 - 1e-9) * d


@pytest.mark.parametrize("norm", [2, math.inf])
@pytest.mark.parametrize("net_index", range(5))
def test_relu_network_equals_affine_map_inside_radius_and_differs_just_outside(net_index, norm):
    net = _pwl_nets()[net_index]
    n = net[0].in_features if isinstance(net[0], nn.Linear) else 3
    rng = np.random.default_rng(net_index)
    X = rng.normal(size=(20, n))
    lg = nc.local_gain(net, X, norm=norm)
    assert lg.exact and not lg.at_kink.any()
    np.testing.assert_allclose(lg.value, _eval(net, X), atol=1e-6)  # float32 nets vs float64
    n_outside = 0
    for i in range(len(X)):
        g = lg[i]
        r = g.radius
        assert 0 < r < np.inf
        pts = _ball_samples(rng, X[i], r, norm, 200)
        np.testing.assert_allclose(_eval(net, pts), g(pts), rtol=0, atol=1e-9)
        # just outside, along the direction to the binding neuron's breakpoint
        d = g.boundary_direction
        assert np.isclose(np.linalg.norm(d, ord=norm), 1.0)
        assert g.binding[0] >= 0
        out = X[i] + r * (1 + 1e-3) * d
        gap = np.abs(_eval(net, out[None])[0] - g(out)).max()
        n_outside += gap > 1e-10
    assert n_outside == len(X)


def test_float32_network_is_analysed_in_float64_and_matches_autograd():
    net = nc.mlp(4, 2, (32, 32), "tanh", seed=5)  # float32
    x = np.random.default_rng(1).normal(size=4)
    lg = nc.local_gain(net, x)
    J = torch.func.jacrev(_net64(net))(torch.as_tensor(x, dtype=F64)).detach().numpy()
    np.testing.assert_allclose(lg.K, J, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "elu", "gelu", "silu"])
def test_smooth_jacobian_and_validity_radius(act):
    net = nc.mlp(3, 2, (16, 16), act, seed=6, dtype=torch.float64)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 3))
    tol = 1e-3
    lg = nc.local_gain(net, X, validity_tol=tol)
    assert not lg.exact
    for i in range(len(X)):
        J = torch.func.jacrev(net)(torch.as_tensor(X[i], dtype=F64)).detach().numpy()
        np.testing.assert_allclose(lg.K[i], J, rtol=1e-12, atol=1e-14)
        g = lg[i]
        assert 0 < g.radius < np.inf
        pts = _ball_samples(rng, X[i], g.radius, 2, 300)
        err = np.linalg.norm(_eval(net, pts) - g(pts), axis=1)
        assert err.max() <= tol


def test_activation_derivative_bounds_hold_on_a_dense_grid():
    z = torch.linspace(-30, 30, 600001, dtype=F64, requires_grad=True)
    for f, (s1, s2) in [
        (torch.tanh, TANH_BOUNDS),
        (torch.sigmoid, SIGMOID_BOUNDS),
        (nn.GELU(), GELU_BOUNDS),
        (nn.GELU(approximate="tanh"), GELU_BOUNDS),
        (nn.SiLU(), SILU_BOUNDS),
    ]:
        (d1,) = torch.autograd.grad(f(z).sum(), z, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), z)
        assert d1.abs().max().item() <= s1
        assert d2.abs().max().item() <= s2
        assert d2.abs().max().item() >= 0.999 * s2  # not a loose bound


def _relu_layer(W, b=None):
    W = torch.as_tensor(np.asarray(W, float))
    lin = nn.Linear(W.shape[1], W.shape[0], bias=b is not None).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        if b is not None:
            lin.bias.copy_(torch.as_tensor(b, dtype=F64))
    return lin


def _gains_by_sampling(net, x0, k=4000, eps=1e-6, seed=0):
    """Distinct autograd Jacobians at random points of a tiny ball around x0 (off the kinks)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(k, x0.size))
    pts = torch.as_tensor(x0 + eps * d / np.linalg.norm(d, axis=1, keepdims=True), dtype=F64)
    J = torch.func.vmap(torch.func.jacrev(net))(pts).detach().numpy()
    return {tuple(np.round(j.ravel(), 9)) for j in J}


KINK_NETS = {
    # relu(x1), relu(x2), relu(x1 + x2): 8 sign patterns, 6 non-empty
    "three_hyperplanes": lambda: nn.Sequential(
        _relu_layer([[1, 0], [0, 1], [1, 1]]), nn.ReLU(), _relu_layer([[1, -2, 0.5]])
    ),
    # the same neuron twice: 4 patterns, 2 non-empty
    "duplicate": lambda: nn.Sequential(
        _relu_layer([[1, 0], [2, 0]]), nn.ReLU(), _relu_layer([[1, 3]])
    ),
    # a second-layer kink whose gradient depends on the first layer's side
    "nested": lambda: nn.Sequential(
        _relu_layer([[1, 0], [0, 1]]),
        nn.ReLU(),
        nn.Sequential(_relu_layer([[1, -1]]), nn.ReLU()),
        _relu_layer([[2]]),
    ),
    # hardtanh at its upper breakpoint and leaky relu at 0
    "hardtanh_leaky": lambda: nn.Sequential(
        _relu_layer([[1, 1], [1, -1]], [1.0, 0.0]),
        nn.Hardtanh(-1, 1),
        _relu_layer([[1, 1]]),
        nn.LeakyReLU(0.1),
    ),
}


@pytest.mark.parametrize("name", sorted(KINK_NETS))
def test_kink_returns_every_non_empty_adjacent_region(name):
    net = KINK_NETS[name]()
    x0 = np.zeros(2)
    lg = nc.local_gain(net, x0)
    assert lg.at_kink and lg.radius == 0
    reported = {tuple(np.round(r.K.ravel(), 9)) for r in lg.regions}
    patterns = {tuple(np.concatenate(r.pattern)) for r in lg.regions}
    assert len(patterns) == len(lg.regions)  # distinct regions (their gains may coincide)
    assert reported == _gains_by_sampling(net, x0)
    for r in lg.regions:  # each witness direction lies in its region
        y = x0 + 1e-7 * r.direction
        np.testing.assert_allclose(_eval(net, y[None])[0], r(y), atol=1e-12)


def test_scalar_relu_kink_has_two_regions():
    net = nn.Sequential(_relu_layer([[1.0]]), nn.ReLU(), _relu_layer([[-0.5]]))
    lg = nc.local_gain(net, [0.0])
    assert sorted(float(r.K[0, 0]) for r in lg.regions) == [-0.5, 0.0]
    assert "KINK" in repr(lg)
    # autograd picks one side silently (relu'(0) = 0)
    J = torch.func.jacrev(net)(torch.zeros(1, dtype=F64)).item()
    assert J in (-0.5, 0.0)


def test_too_many_ambiguous_neurons_is_a_clear_error():
    net = nn.Sequential(_relu_layer(np.eye(12)), nn.ReLU(), _relu_layer(np.ones((1, 12))))
    with pytest.raises(ValueError, match="max_kink_neurons=10"):
        nc.local_gain(net, np.zeros(12))
    lg = nc.local_gain(net, np.full(12, 0.1))  # off the kinks: fine
    np.testing.assert_allclose(lg.K, np.ones((1, 12)))


def test_batched_results_equal_single_point_results():
    net = nc.mlp(4, 2, (64, 64), "relu", seed=7)
    X = np.random.default_rng(3).normal(size=(300, 4))  # > 64 points: the torch walk
    batch = nc.local_gain(net, X, norm="inf")
    assert len(batch) == 300
    for i in (0, 17, 299):  # single points: the numpy walk
        single = nc.local_gain(net, X[i], norm="inf")
        np.testing.assert_allclose(batch.K[i], single.K, rtol=1e-13, atol=1e-15)
        assert batch.radius[i] == pytest.approx(single.radius, rel=1e-12)


def test_preactivation_affine_forms_match_the_hidden_layers():
    net = nc.mlp(3, 1, (8, 8), "relu", seed=8, dtype=torch.float64)
    X = np.random.default_rng(4).normal(size=(6, 3))
    lg = nc.local_gain(net, X, preactivations=True, norm=2)
    with torch.no_grad():
        z1 = net[0](torch.as_tensor(X)).numpy()
        z2 = net[2](net[1](net[0](torch.as_tensor(X)))).numpy()
    for pre, z in zip(lg.preactivations, (z1, z2)):
        np.testing.assert_allclose(pre["z"], z, atol=1e-12)
        np.testing.assert_allclose(
            np.einsum("bkn,bn->bk", pre["grad"], X) + pre["offset"], z, atol=1e-12
        )
        # radius = min |z_j| / ||grad z_j||_2
        d = np.abs(z) / np.linalg.norm(pre["grad"], axis=2)
        np.testing.assert_allclose(pre["distance"], d, rtol=1e-12)
    expect = np.min([p["distance"].min(axis=1) for p in lg.preactivations], axis=0)
    np.testing.assert_allclose(lg.radius, expect, rtol=1e-12)


def test_unsupported_layer_names_itself_and_lists_the_supported_ones():
    net = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.ReLU())
    with pytest.raises(TypeError, match=r"LayerNorm.*supported layers: .*ReLU.*Tanh"):
        nc.local_gain(net, np.zeros(2))
    with pytest.raises(ValueError, match="norm"):
        nc.local_gain(nc.mlp(2, 1), np.zeros(2), norm=3)
    with pytest.raises(TypeError):
        nc.local_gain(nc.mlp(2, 1), np.zeros(2), tolerance=1e-3)


def test_result_object_prints_serialises_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = nc.mlp(2, 1, (8,), "relu", seed=9, dtype=torch.float64)
    g = nc.local_gain(net, [0.3, -0.2])
    d = g.to_dict()
    assert d["K"] == g.K.tolist() and d["radius"] == g.radius
    assert "exact affine map" in repr(g)
    fig = g.plot(net)
    line = [ln for ln in fig.axes[0].lines if ln.get_label() == "network"][0]
    aff = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("affine")][0]
    s, yn = line.get_data()
    inside = np.abs(s) <= g.radius
    np.testing.assert_allclose(yn[inside], aff.get_data()[1][inside], atol=1e-9)
    plt.close(fig)


def test_local_gain_pickles_with_its_binding_neuron():
    """The binding neuron is computed on first access; pickling computes and keeps it."""
    import pickle

    net = nc.mlp(4, 1, (16, 16), "relu", seed=0)
    X = np.random.default_rng(0).normal(size=(5, 4))
    g = nc.local_gain(net, X)
    h = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(h.binding, g.binding)
    np.testing.assert_array_equal(h.boundary_direction, g.boundary_direction)
    one = pickle.loads(pickle.dumps(nc.local_gain(net, X[2])))
    np.testing.assert_array_equal(one.binding, g.binding[2])
    np.testing.assert_allclose(one.K, g.K[2])


def test_an_empty_batch_is_refused_with_the_shape_received():
    with pytest.raises(ValueError, match=r"received \(0, 4\)"):
        nc.local_gain(nc.mlp(4, 1), np.zeros((0, 4)))
