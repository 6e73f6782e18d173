"""Ring road: linear stability of uniform flow and string stability (REFERENCE.md figures).

Independent sources: REFERENCE.md (IDM partial derivatives, Ward-Wilson criterion, ring
eigenvalues, the 434 m threshold), the closed-form transfer function evaluated by python-control,
and python-control's finite-difference ``linearize`` of the closed loop.
"""

from __future__ import annotations

import functools
import math

import control
import numpy as np
import pytest
import torch
from neuroctl.envs.ring_road.controllers import IDMController
from neuroctl.envs.ring_road.dynamics import (
    IDMParams,
    Params,
    idm_acceleration,
    ring_plant,
    uniform_flow_equilibrium,
)
from scipy.optimize import brentq

import neuroctl as nc

N = 22
SHIFT = np.concatenate([np.ones(N), np.zeros(N)])  # moving every car: a neutral mode
IDM = functools.partial(idm_acceleration, params=IDMParams())


def _sig(x, k=3) -> str:
    return f"{float(x):.{k}g}"


def _human_ring(L, *, continuous):
    plant = ring_plant(Params(n_av=0, ring_length=float(L)))
    x, _ = plant.equilibrium(None)
    op = nc.OperatingPoint.at(plant, None, x, continuous=continuous, invariant=SHIFT)
    return plant, op


def test_all_human_ring_growth_rate_and_discrete_spectral_radius():
    plant, op = _human_ring(230.0, continuous=True)
    assert op.residual_norm < 1e-12 and op.drift[0] == pytest.approx(3.454, abs=1e-3)
    rep = nc.analyze(plant, None, op, invariant=SHIFT)
    (reg,) = rep.regions
    assert rep.verdict == "unstable"
    assert _sig(reg.max_real) == "0.0235"
    assert int(np.sum(reg.poles.real > 0)) == 4
    # the least stable mode is the k = 1 wave: speeds rotate by 2π/22 from car to car
    lam, vec = np.linalg.eig(rep.linearization.regions[0].A_cl)
    v = vec[N:, np.argmax(lam.real)]
    step = np.angle(v[1:] / v[:-1])
    np.testing.assert_allclose(np.abs(step), 2 * np.pi / N, atol=1e-9)
    assert reg.period == pytest.approx(2 * np.pi / abs(reg.dominant_pole.imag))
    _, opd = _human_ring(230.0, continuous=False)
    repd = nc.analyze(plant, None, opd, invariant=SHIFT)
    assert _sig(repd.regions[0].spectral_radius, 6) == "1.00227"


def test_ring_becomes_linearly_stable_above_about_434_m():
    def max_real(L):
        plant, op = _human_ring(L, continuous=True)
        return nc.analyze(plant, None, op, invariant=SHIFT).regions[0].max_real

    L_star = brentq(max_real, 300.0, 600.0, xtol=0.05)
    assert abs(L_star - 434) < 1.0


def test_idm_partials_ward_wilson_and_peak_gain():
    gap, speed = uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)
    ss = nc.string_stability(IDM, gap=float(gap))
    assert _sig(ss.gap, 4) == "5.455" and _sig(ss.speed, 4) == "3.454"
    p = ss.partials
    assert (_sig(p["f_s"], 4), _sig(p["f_v"], 4), _sig(p["f_dv"], 4)) == (
        "0.3666",
        "-0.3668",
        "0.517",
    )
    assert _sig(ss.ward_wilson, 4) == "-0.1097"
    assert not ss.string_stable and ss.peak_gain > 1
    # peak against python-control's own frequency response of the returned transfer function
    w = np.linspace(1e-4, 3.0, 30001)
    mag = np.abs(control.frequency_response(ss.transfer, w).complex).ravel()
    assert ss.peak_gain == pytest.approx(mag.max(), rel=1e-6)
    # the criterion changes sign at gap 21.6 m (speed 18.1 m/s)
    g_star = brentq(lambda g: nc.string_stability(IDM, gap=g).ward_wilson, 10.0, 40.0)
    assert _sig(g_star) == "21.6"
    assert _sig(nc.string_stability(IDM, gap=g_star).speed) == "18.1"
    stable = nc.string_stability(IDM, gap=30.0)
    assert stable.ward_wilson > 0 and stable.string_stable and stable.peak_gain <= 1


def test_network_on_the_observation_gives_the_same_partials_as_the_function():
    gap = float(uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)[0])
    f = nc.string_stability(IDM, gap=gap)
    m = nc.string_stability(IDMController(accel_bounds=(-5.0, 5.0)), gap=gap)
    for k in ("a_s", "a_v", "a_l"):
        assert m.partials[k] == pytest.approx(f.partials[k], rel=1e-9)
    # an exact ReLU network: u = relu(gap - 10) - relu(10 - gap) - (v - v_lead)... at gap = 10 it
    # sits on a kink of its gap dependence, with both regions reported
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 0.0, 270.0], [0.0, 0.0, -270.0]]))
        net[0].bias.copy_(torch.tensor([-10.0, 10.0]))
        net[2].weight.copy_(torch.tensor([[0.2, -0.6]]))
        net[2].bias.zero_()
    s = nc.string_stability(net, speed=5.0)
    assert s.gap == pytest.approx(10.0) and s.at_kink and s.method == "local_gain"
    assert sorted(r["a_s"] for r in s.regions) == pytest.approx([0.2, 0.6])


def _neural_av(seed):
    """A small ReLU AV whose command is 0 at the uniform flow of the 230 m ring."""
    net = nc.mlp(3, 1, (16,), "relu", seed=seed, dtype=torch.float64, output_scale=0.5)
    gap, v = uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)
    y = torch.tensor([[float(v) / 15, 0.0, float(gap) / 270]], dtype=torch.float64)
    with torch.no_grad():
        net[-1].bias -= net(y)[0]
    return net


@pytest.mark.parametrize("av", ["idm", "neural"])
def test_ring_with_an_av_controller_against_control_linearize(av):
    plant = ring_plant(Params(ring_length=230.0))
    ctrl = IDMController() if av == "idm" else _neural_av(3)
    x0, _ = plant.equilibrium(None)
    op = nc.operating_point(plant, ctrl, invariant=SHIFT, guess=x0)
    assert op.success
    rep = nc.analyze(plant, ctrl, op, invariant=SHIFT)
    (reg,) = rep.regions

    def upd(t, x, u, params):
        with torch.no_grad():
            a = ctrl(torch.as_tensor(plant.observe(x)))
        return plant.rhs(x, plant.saturate(a.numpy()))

    fd = control.linearize(control.nlsys(upd, None, inputs=0, states=2 * N), op.x, [])
    lam = np.linalg.eigvals(fd.A)
    lam = np.delete(lam, np.argmin(np.abs(lam)))  # the neutral shift mode
    assert reg.max_real == pytest.approx(lam.real.max(), abs=1e-5)
    assert np.isfinite(reg.growth_rate) and reg.growth_rate == reg.max_real
    im = abs(reg.dominant_pole.imag)
    assert reg.period == (pytest.approx(2 * math.pi / im) if im > 0 else math.inf)
    if av == "idm":  # an AV driving like a human: the all-human ring
        assert _sig(reg.max_real) == "0.0235"
