"""Local robustness certificates, checked by sampling, activation patterns and brute force."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl import mlp, pwl_from_relu_net
from neuroctl.verify.robustness import certify_local

ACAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "acasxu" / "onnx"


def _eval(net, pts):
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(pts, float))).numpy()


def _pattern(net, pts):
    """ReLU on/off pattern of every hidden unit, recorded with forward hooks (independent)."""
    signs = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: signs.append((inp[0] > 0).numpy()))
        for m in net.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        _eval(net, pts)
    finally:
        for h in hooks:
            h.remove()
    return np.concatenate(signs, axis=-1)


def _ball_samples(rng, x, r, norm, n):
    d = x.size
    if math.isinf(norm):
        pts = x + r * rng.uniform(-1.0, 1.0, (n, d))
        corners = x + r * rng.choice([-1.0, 1.0], (n, d))  # vertices: worst case of affine maps
        return np.concatenate([pts, corners])
    g = rng.normal(size=(2 * n, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    radii = np.concatenate([np.ones(n), rng.uniform(0.0, 1.0, n) ** (1.0 / d)])
    return x + r * radii[:, None] * g


CASES = [(seed, norm) for seed in range(3) for norm in (math.inf, 2)]


@pytest.mark.parametrize("seed, norm", CASES)
def test_output_never_moves_beyond_bound_inside_certified_radius(seed, norm):
    rng = np.random.default_rng(seed)
    net = mlp(4, 2, (20, 20), seed=seed, dtype=torch.float64)
    for bound in (1e-3, 0.05, 0.5):
        x = rng.normal(size=4)
        cert = certify_local(net, x, norm=norm, output_bound=bound)
        assert cert.certified_radius >= min(cert.region_radius, cert.affine_radius)
        pts = _ball_samples(rng, x, cert.certified_radius * (1 - 1e-9), norm, 4000)
        change = np.abs(_eval(net, pts) - cert.value).max()
        assert change <= bound + 1e-12
        if cert.exact:
            # tight: just beyond the certified radius the bound is violated
            ce = cert.counterexample
            dist = np.linalg.norm(ce - x, ord=norm)
            assert dist == pytest.approx(cert.certified_radius * (1 + 1e-6), rel=1e-9)
            assert np.abs(_eval(net, ce[None]) - cert.value).max() > bound


@pytest.mark.parametrize("seed, norm", CASES)
def test_decision_never_changes_inside_certified_radius(seed, norm):
    rng = np.random.default_rng(10 + seed)
    net = mlp(3, 4, (24, 24), seed=seed, dtype=torch.float64)
    for _ in range(3):
        x = rng.normal(size=3)
        cert = certify_local(net, x, norm=norm, decision="argmax")
        assert cert.decision == int(np.argmax(_eval(net, x[None])))
        pts = _ball_samples(rng, x, cert.certified_radius * (1 - 1e-9), norm, 4000)
        assert np.all(np.argmax(_eval(net, pts), axis=1) == cert.decision)
        if cert.exact:
            assert np.argmax(_eval(net, cert.counterexample[None])) != cert.decision


@pytest.mark.parametrize("seed, norm", CASES)
def test_region_radius_is_tight(seed, norm):
    rng = np.random.default_rng(20 + seed)
    net = mlp(3, 1, (16, 16), seed=seed, dtype=torch.float64)
    x = rng.normal(size=3)
    cert = certify_local(net, x, norm=norm, output_bound=1.0)
    r, d = cert.region_radius, cert.boundary_direction
    assert 0 < r < np.inf
    assert np.linalg.norm(d, ord=norm) == pytest.approx(1.0)
    p0 = _pattern(net, x[None])
    # just inside: same activation pattern; just beyond: a different one
    assert np.array_equal(_pattern(net, (x + (1 - 1e-6) * r * d)[None]), p0)
    assert not np.array_equal(_pattern(net, (x + (1 + 1e-6) * r * d)[None]), p0)
    # and everywhere inside the ball (sampled) the pattern is the one at x
    pts = _ball_samples(rng, x, r * (1 - 1e-9), norm, 3000)
    assert np.all(_pattern(net, pts) == p0)


def _true_radius_1d(net, x, bound):
    """Brute force on a scalar-input network from its exact breakpoints."""
    f = pwl_from_relu_net(net, x - 50.0, x + 50.0)
    fx = float(_eval(net, [[x]])[0, 0])
    best = np.inf
    for side in (1.0, -1.0):
        # walk away from x along the breakpoints; first crossing of |f - fx| = bound
        knots = f.knots[side * (f.knots - x) > 0]
        knots = np.sort(side * (knots - x))
        prev_t, prev_v = 0.0, 0.0
        for t in knots:
            v = float(f(x + side * t)) - fx
            if abs(v) > bound:
                target = np.sign(v) * bound
                t_cross = prev_t + (target - prev_v) / (v - prev_v) * (t - prev_t)
                best = min(best, t_cross)
                break
            prev_t, prev_v = t, v
    return best


@pytest.mark.parametrize("seed", range(4))
def test_certified_radius_is_below_brute_force_radius_and_equal_when_exact(seed):
    rng = np.random.default_rng(30 + seed)
    net = mlp(1, 1, (12, 12), seed=seed, dtype=torch.float64)
    for bound in (1e-3, 0.02, 0.2):
        x = float(rng.normal())
        cert = certify_local(net, [x], output_bound=bound)
        true_r = _true_radius_1d(net, x, bound)
        assert cert.certified_radius <= true_r * (1 + 1e-9)
        if cert.exact:
            assert cert.certified_radius == pytest.approx(true_r, rel=1e-9)


@pytest.mark.skipif(not ACAS.is_dir(), reason=f"ACAS Xu networks not found in {ACAS}")
@pytest.mark.parametrize("norm", [math.inf, 2])
def test_acasxu_advisory_is_constant_inside_certified_radius(norm):
    from neuroctl.verify.formats import load_onnx

    net = load_onnx(ACAS / "ACASXU_run2a_1_1_batch_2000.onnx").to(torch.float64)
    x = np.array([0.1, 0.05, -0.2, 0.3, 0.2])
    cert = certify_local(net, x, norm=norm, decision="argmin")
    assert cert.decision == int(np.argmin(_eval(net, x[None])))
    assert cert.certified_radius > cert.region_radius > 0
    pts = _ball_samples(np.random.default_rng(0), x, cert.certified_radius * (1 - 1e-9), norm, 5000)
    assert np.all(np.argmin(_eval(net, pts), axis=1) == cert.decision)


def test_errors_and_result_object():
    net = mlp(2, 2, (8,), seed=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="exactly one"):
        certify_local(net, [0.0, 0.0])
    with pytest.raises(ValueError, match="exactly one"):
        certify_local(net, [0.0, 0.0], output_bound=0.1, decision="argmax")
    with pytest.raises(ValueError, match="norm"):
        certify_local(net, [0.0, 0.0], norm=3, output_bound=0.1)
    with pytest.raises(ValueError, match="decision"):
        certify_local(net, [0.0, 0.0], decision="mode")
    with pytest.raises(TypeError, match="piecewise-linear"):
        certify_local(mlp(2, 2, (8,), "tanh", dtype=torch.float64), [0.0, 0.0], output_bound=1.0)
    with pytest.raises(TypeError):
        certify_local(net, [0.0, 0.0], output_bound=0.1, norms=2)
    cert = certify_local(net, [0.3, -0.1], output_bound=0.1)
    assert "region radius" in repr(cert)
    assert cert.to_dict()["certified_radius"] == cert.certified_radius
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = cert.plot(net)
    assert len(fig.axes[0].lines) >= 2
    plt.close(fig)
