"""The layer registry (neuroctl.layers): descriptions against torch, one error in every analysis."""

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl import local_gain
from neuroctl._gain_rules import supported_layers as gain_supported
from neuroctl.layers import (
    LAYER_KINDS,
    PiecewiseLinear,
    Smooth,
    UnsupportedLayer,
    describe,
    layer_names,
)
from neuroctl.pwl import pwl_from_relu_net
from neuroctl.verify import interval_bounds, output_bounds
from neuroctl.verify.affine import AffineForm, controller_on_sets
from neuroctl.verify.affine import supported_layers as sets_supported
from neuroctl.verify.bounds import supported_layers as bounds_supported
from tests._ulp import assert_ulp_close

K = 4


def _prelu(k=K, seed=0):
    torch.manual_seed(seed)
    m = nn.PReLU(k)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.3, -0.7, 1.5, 0.05])[:k])
    return m


def _instances():
    """One instance of every registered layer type, acting on K channels."""
    return {
        nn.Linear: nn.Linear(K, K),
        nn.Identity: nn.Identity(),
        nn.Flatten: nn.Flatten(),
        nn.Dropout: nn.Dropout(0.3).eval(),
        nn.Sequential: nn.Sequential(nn.Identity()),
        nn.ReLU: nn.ReLU(),
        nn.LeakyReLU: nn.LeakyReLU(0.1),
        nn.PReLU: _prelu(),
        nn.ReLU6: nn.ReLU6(),
        nn.Hardtanh: nn.Hardtanh(-0.5, 0.7),
        nn.Tanh: nn.Tanh(),
        nn.Sigmoid: nn.Sigmoid(),
        nn.Softplus: nn.Softplus(beta=2.0),
        nn.ELU: nn.ELU(0.5),
        nn.GELU: nn.GELU(),
        nn.SiLU: nn.SiLU(),
    }


def test_every_registered_type_has_an_instance_here():
    assert set(_instances()) == set(LAYER_KINDS)


GRID = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)[:, None].expand(-1, K).contiguous()


@pytest.mark.parametrize(
    "layer",
    [nn.ReLU(), nn.LeakyReLU(0.1), _prelu(), nn.ReLU6(), nn.Hardtanh(-0.5, 0.7)],
    ids=lambda m: type(m).__name__,
)
def test_breakpoints_and_slopes_agree_with_torch_on_a_grid(layer):
    kind, desc = describe(layer)
    assert kind == "piecewise_linear" and isinstance(desc, PiecewiseLinear)
    with torch.no_grad():
        ref = layer.double()(GRID).numpy()
    assert_ulp_close(desc(GRID.numpy()), ref, what=type(layer).__name__)
    # the slope of each piece is torch's derivative strictly inside it
    edges = [-8.0, *desc.breaks, 8.0]
    for p, s in enumerate(desc.slopes):
        z = torch.full((1, K), 0.5 * (edges[p] + edges[p + 1]), dtype=torch.float64)
        z.requires_grad_(True)
        (g,) = torch.autograd.grad(layer(z).sum(), z)
        np.testing.assert_array_equal(np.broadcast_to(s, (K,)), g[0].numpy())


@pytest.mark.parametrize(
    "layer",
    [nn.Tanh(), nn.Sigmoid(), nn.Softplus(beta=2.0), nn.ELU(0.5), nn.GELU(), nn.SiLU()],
    ids=lambda m: type(m).__name__,
)
def test_smooth_values_derivatives_and_bounds_agree_with_autograd(layer):
    kind, desc = describe(layer)
    assert kind == "smooth" and isinstance(desc, Smooth)
    z = GRID[:, 0].clone().requires_grad_(True)
    y = layer(z)
    (d1,) = torch.autograd.grad(y.sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    val, der = desc.value_and_derivative(GRID[:, 0].numpy().copy())
    assert_ulp_close(val, y.detach().numpy(), what="f")
    np.testing.assert_allclose(der, d1.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert desc.lip >= float(d1.detach().abs().max())
    assert desc.curv >= float(d2.detach().abs().max())


def _gain(net, lo, hi):
    return local_gain(net, 0.5 * (lo + hi))


def _bounds(net, lo, hi):
    return interval_bounds(net, lo, hi)


def _sets(net, lo, hi):
    return controller_on_sets(net, AffineForm.from_box(lo[None], hi[None]))


def _pwl(net, lo, hi):
    return pwl_from_relu_net(net, lo[0], hi[0])


def _pwl_supported():
    return layer_names(("affine", "identity", "container", "piecewise_linear"))


#: analysis -> (run on a net with n_in inputs over a box, its supported layers, n_in)
ANALYSES = {
    "local_gain": (_gain, gain_supported, 3),
    "bounds": (_bounds, bounds_supported, 3),
    "reach": (_sets, sets_supported, 3),
    "pwl_from_relu_net": (_pwl, _pwl_supported, 1),
}


@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_each_analysis_supports_exactly_what_its_error_lists(analysis):
    run, supported, n_in = ANALYSES[analysis]
    lo, hi = -np.ones(n_in), np.ones(n_in)
    worked = []
    for cls, layer in _instances().items():
        net = nn.Sequential(nn.Linear(n_in, K), layer, nn.Linear(K, 2)).double()
        try:
            run(net, lo, hi)
            worked.append(cls.__name__)
        except UnsupportedLayer as err:
            assert err.supported == tuple(supported())
            assert cls.__name__ in str(err) and err.analysis == analysis
    assert worked == supported()
    for bad in (nn.LayerNorm(K), nn.Dropout(0.3).train()):
        net = nn.Sequential(nn.Linear(n_in, K), bad, nn.Linear(K, 2)).double()
        with pytest.raises(UnsupportedLayer, match=f"{analysis}: unsupported layer") as info:
            run(net, lo, hi)
        assert info.value.supported == tuple(supported())
        assert isinstance(info.value, TypeError)
        assert ", ".join(supported()) in str(info.value)


def _prelu_net():
    torch.manual_seed(3)
    return (
        nn.Sequential(
            nn.Linear(2, K), _prelu(), nn.Dropout(0.5), nn.Linear(K, K), _prelu(), nn.Linear(K, 1)
        )
        .double()
        .eval()
    )


def test_prelu_and_dropout_local_gain_is_the_autograd_jacobian_away_from_kinks():
    net = _prelu_net()
    rng = np.random.default_rng(0)
    for x in rng.uniform(-2, 2, (20, 2)):
        res = local_gain(net, x)
        xt = torch.tensor(x[None], requires_grad=True)
        J = torch.autograd.functional.jacobian(net, xt).numpy()[0, :, 0]
        np.testing.assert_allclose(res.K, J, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.K @ x + res.c, net(xt).detach().numpy()[0], atol=1e-12)


def test_prelu_and_dropout_bounds_enclose_brute_force_and_milp_is_tight():
    net = _prelu_net()
    lo, hi = np.array([-1.0, -0.5]), np.array([0.5, 1.0])
    g = np.stack(np.meshgrid(*(np.linspace(a, b, 401) for a, b in zip(lo, hi))), -1)
    with torch.no_grad():
        y = net(torch.from_numpy(g.reshape(-1, 2))).numpy()[:, 0]
    for method in ("interval", "crown", "milp"):
        b = output_bounds(net, lo, hi, method=method)
        assert b.lower[0] <= y.min() and b.upper[0] >= y.max(), method
    b = output_bounds(net, lo, hi, method="milp")
    # the exact optimum is within the network's Lipschitz constant times half a grid step
    lip = (
        np.prod(
            [np.linalg.norm(m.weight.detach().numpy(), 2) for m in net if isinstance(m, nn.Linear)]
        )
        * 1.5**2
    )
    step = np.linalg.norm((hi - lo) / 400) / 2
    assert b.upper[0] - y.max() <= lip * step and y.min() - b.lower[0] <= lip * step
    sets = _sets(net, lo, hi)
    assert sets.lower[0, 0] <= y.min() and sets.upper[0, 0] >= y.max()


def test_a_one_slope_prelu_bounds_like_the_leaky_relu_of_that_slope():
    torch.manual_seed(1)
    lin1, lin2 = nn.Linear(3, 5).double(), nn.Linear(5, 2).double()
    p = nn.PReLU(1).double()
    with torch.no_grad():
        p.weight.fill_(0.2)
    lo, hi = -np.ones(3), np.ones(3)
    a = output_bounds(nn.Sequential(lin1, p, lin2), lo, hi)
    b = output_bounds(nn.Sequential(lin1, nn.LeakyReLU(0.2), lin2), lo, hi)
    np.testing.assert_array_equal(a.lower, b.lower)
    np.testing.assert_array_equal(a.upper, b.upper)


def test_prelu_network_breakpoints_interpolate_the_network_exactly():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(1, K), _prelu(), nn.Dropout(0.2), nn.Linear(K, 1))
    net = net.double().eval()
    f = pwl_from_relu_net(net, -3.0, 3.0)
    x = np.linspace(-3.0, 3.0, 2001)
    with torch.no_grad():
        y = net(torch.from_numpy(x[:, None])).numpy()[:, 0]
    np.testing.assert_allclose(np.interp(x, f.knots, f.values), y, rtol=0, atol=1e-12)
