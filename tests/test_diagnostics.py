"""Dead units and optimizer revival spikes (REFERENCE.md, "Optimizer revival spikes")."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from _examples import load_example
from torch import nn

from neuroctl import mlp
from neuroctl.train import RevivalMonitor, RevivalSpikeWarning, dead_units


def test_dead_units_match_brute_force_preactivations():
    net = mlp(3, 1, (16, 8), "relu", seed=0)
    with torch.no_grad():
        net[0].bias[:5] = -50.0  # five first-layer units can never fire on |x| <= 1
    x = torch.rand(500, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    rep = dead_units(net, x)
    z1 = x @ net[0].weight.T + net[0].bias
    z2 = torch.relu(z1) @ net[2].weight.T + net[2].bias
    expected = [torch.nonzero(~(z > 0).any(0)).flatten().numpy() for z in (z1, z2)]
    assert [d.tolist() for d in rep.dead] == [e.tolist() for e in expected]
    assert set(range(5)) <= set(rep.dead[0].tolist())
    assert rep.fractions[0] == pytest.approx(len(expected[0]) / 16)
    assert rep.to_dict()["widths"] == [16, 8]
    # an output clip between frozen scaling layers is not a hidden layer
    clipped = mlp(3, 1, (16, 8), "relu", output_activation="hardtanh", output_scale=2.0, seed=0)
    assert len(dead_units(clipped, x).layers) == 3
    assert len(dead_units(clipped, x, hidden_only=True).layers) == 2


def test_revival_spike_matches_closed_form_and_mitigations_remove_it():
    mod = load_example("revival_spike")
    args = mod.Args()
    closed = 1.0 / math.sqrt(1.0 - args.alpha)  # 10 x lr at alpha = 0.99
    plain = mod.run(args, None)
    # the revived unit's second moment decayed by alpha**1000 ~ 4e-5: the spike is the limit
    assert plain["revived_step_over_lr"] == pytest.approx(closed, rel=0.01)
    assert plain["dead_steps"] == args.dead_steps
    assert plain["warnings"] == 1
    assert plain["healthy_step_over_lr_max"] < 2.0
    for mitigation in ("reset", "clip"):
        res = mod.run(args, mitigation)
        # reset: s = g^2 so the step is lr * |g| / (|g| + eps); clip: capped at rms ratio 1
        assert res["revived_step_over_lr"] == pytest.approx(1.0, abs=0.02)
        assert res["warnings"] == 0


def test_revival_detector_warns_on_constructed_case_and_is_silent_on_healthy_net():
    # constructed: one parameter entry with zero gradient for 600 steps, then gradient 0.5
    p = nn.Parameter(torch.ones(2, 1))
    opt = torch.optim.RMSprop([p], lr=0.01, alpha=0.99)
    mon = RevivalMonitor(opt, min_dead_steps=50)
    for k in range(600):
        p.grad = torch.tensor([[1.0], [1.0]]) if k == 0 else torch.tensor([[0.0], [1.0]])
        opt.step()
    p.grad = torch.tensor([[0.5], [1.0]])
    with pytest.warns(RevivalSpikeWarning, match="dead 599 steps"):
        opt.step()
    (ev,) = mon.events
    assert (ev.unit, ev.dead_steps) == (0, 599)
    # s = alpha^600 (1 - alpha) 1^2 + (1 - alpha) 0.5^2 and the step is lr g / (sqrt(s) + eps)
    s = 0.99**600 * 0.01 + 0.01 * 0.25
    assert ev.step_ratio == pytest.approx(0.5 / (math.sqrt(s) + 1e-8), rel=1e-4)

    # healthy: a ReLU net whose units are all active on every batch never triggers it
    net = mlp(2, 1, (16, 16), "relu", seed=3)
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.abs_()
            lin.bias.fill_(0.1)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
    mon = RevivalMonitor(opt, module=net, min_dead_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RevivalSpikeWarning)
        for _ in range(300):
            x = torch.rand(32, 2, generator=gen)
            opt.zero_grad()
            nn.functional.mse_loss(net(x), x.prod(1, keepdim=True)).backward()
            opt.step()
    assert dead_units(net, torch.rand(256, 2, generator=gen)).total_fraction == 0.0
    assert mon.events == [] and mon.n_steps == 300


def test_monitor_rejects_unknown_mitigation():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="mitigation"):
        RevivalMonitor(opt, mitigation="zero")
    with pytest.raises(ValueError, match="expected an optimizer"):
        RevivalMonitor(opt, mitigation="reset")


def test_has_dead_unit_layers_tells_piecewise_linear_from_smooth_networks():
    from neuroctl.train import has_dead_unit_layers

    assert has_dead_unit_layers(mlp(3, 1, activation="relu"))
    assert has_dead_unit_layers(mlp(3, 1, activation="hardtanh"))
    assert not has_dead_unit_layers(mlp(3, 1, activation="tanh"))
    # an output clip after the last trainable layer is not a hidden unit
    clipped = torch.nn.Sequential(mlp(3, 1, activation="tanh"), torch.nn.Hardtanh())
    assert has_dead_unit_layers(clipped)
    assert not has_dead_unit_layers(clipped, hidden_only=True)
