"""The plant carries its analysis facts: right answers from ``analyze(plant, controller)`` alone.

Independent sources: REFERENCE.md (the all-human ring's growth rate and Euler spectral radius),
closed forms (uniform flow of IDM, the PD-controlled arms' characteristic polynomials, the
FollowerStopper's rest speed), and the metrics recomputed by hand from the states.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from _examples import load_example
from neuroctl.envs.arm import ArmParams, arm_plant
from neuroctl.envs.arm import pd_gravity_controller as arm_pd
from neuroctl.envs.arm2link import Arm2LinkParams, arm2link_plant
from neuroctl.envs.ring_road import (
    Params,
    ring_gaps,
    ring_metrics,
    ring_plant,
    uniform_flow_equilibrium,
)

import neuroctl as nc

N = 22


def _sig(x, k=3) -> str:
    return f"{float(x):.{k}g}"


def _all_human_ring():
    env = gym.make("neuroctl/RingRoad-v0", n_av=0, ring_length=230, noise=0, warmup_steps=0)
    return env.unwrapped.plant


# --------------------------------------------------------------------------- the ring
def test_default_analyze_of_the_all_human_ring_gives_the_reference_figures():
    plant = _all_human_ring()
    rep = nc.analyze(plant, None)
    (reg,) = rep.regions
    assert rep.verdict == "unstable"
    assert _sig(reg.max_real) == "0.0235"  # REFERENCE.md: +0.0235 1/s, 4 unstable modes
    assert int(np.sum(reg.poles.real > 0)) == 4
    assert reg.poles.size == 2 * N - 1  # the common shift is factored out
    repd = nc.analyze(plant, None, continuous=False)
    assert _sig(repd.regions[0].spectral_radius, 6) == "1.00227"  # REFERENCE.md


def test_the_ring_operating_point_is_uniform_flow_moving_at_the_equilibrium_speed():
    plant = _all_human_ring()
    gap, speed = uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)
    for continuous, drift in ((True, float(speed)), (False, float(speed) * 0.1)):
        op = nc.operating_point(plant, None, continuous=continuous)
        assert op.success and op.residual_norm < 1e-12
        assert op.drift[0] == pytest.approx(drift, rel=1e-12)  # m/s, or m per step
        np.testing.assert_allclose(op.x[N:], float(speed), rtol=1e-12)
        gaps = ring_gaps(op.x[:N], 230.0)
        np.testing.assert_allclose(gaps, float(gap), rtol=1e-9)
        assert op.x[0] == pytest.approx(0.0, abs=1e-9)  # held where the guess put car 0


def test_ring_plant_declares_its_shift_controllers_and_metrics():
    plant = ring_plant(Params(ring_length=230.0))
    V = plant.invariants
    assert V.shape == (2 * N, 1) and not V.flags.writeable
    # the shift invariance the plant declares holds for its rhs and its observation
    rng = np.random.default_rng(0)
    x, _ = plant.equilibrium()
    x = x + np.concatenate([rng.uniform(-1, 1, N), rng.uniform(0, 1, N)])
    u = np.array([0.3])
    shifted = x + 7.25 * V[:, 0]
    np.testing.assert_allclose(plant.rhs(shifted, u), plant.rhs(x, u), atol=1e-12)
    np.testing.assert_allclose(plant.observe(shifted), plant.observe(x), atol=1e-12)
    assert set(plant.controllers) == {"zero", "idm", "followerstopper", "pi"}
    assert set(ring_plant(Params(n_av=0, ring_length=230.0)).controllers) == {"human"}
    with pytest.raises(KeyError, match="no controller 'lqr'.*expected one of"):
        plant.controller("lqr")
    # metrics of a run recomputed by hand from the states
    states = nc.simulate(plant, plant.controller("idm"), x, 50).states
    m = plant.metrics(states)
    expected = ring_metrics(states[:, N:], ring_gaps(states[:, :N], 230.0)).to_dict()
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-12)
    assert m["min_speed"] == states[:, N:].min() and m["max_speed"] == states[:, N:].max()


def test_an_av_driving_like_a_human_gives_the_all_human_growth_rate():
    plant = ring_plant(Params(ring_length=230.0))
    rep = nc.analyze(plant, plant.controller("idm"))
    assert _sig(rep.regions[0].max_real) == "0.0235"


def test_follower_stopper_settles_to_its_target_speed_with_idm_gaps_behind():
    plant = ring_plant(Params(ring_length=230.0))
    fs = plant.controller("followerstopper")
    # the wave-damping law is flat at uniform flow: the solve from there does not converge,
    # and says so instead of returning the point it stopped at
    with pytest.raises(nc.OperatingPointError, match="above tol") as info:
        nc.operating_point(plant, fs)
    assert info.value.op.success is False and info.value.op.residual_norm > 1e-9
    op = nc.operating_point(plant, fs, settle=3000)
    v_des = 0.9 * float(uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)[1])
    assert op.drift[0] == pytest.approx(v_des, rel=1e-9)  # every car at the AV's target
    # the humans keep IDM's equilibrium gap at that speed (closed form)
    idm_gap = (2.0 + v_des * 1.0) / math.sqrt(1.0 - (v_des / 30.0) ** 4)
    gaps = ring_gaps(op.x[:N], 230.0)
    np.testing.assert_allclose(gaps[1:], idm_gap, rtol=1e-9)
    assert gaps.sum() + N * 5.0 == pytest.approx(230.0)
    assert nc.analyze(plant, fs, op).verdict == "stable"


# --------------------------------------------------------------------------- operating_point
def test_operating_point_raises_where_there_is_no_equilibrium_near_the_guess():
    # dx/dt = 1 + x^2 - u with u in [-1, 1]: no equilibrium at all for u = 0
    plant = nc.Plant(
        states=["x"],
        inputs=["u"],
        dt=0.1,
        rhs=lambda x, u: 1.0 + x * x - u,
        equilibrium=lambda r: (np.array([0.0]), np.array([0.0])),
    )
    with pytest.raises(nc.OperatingPointError, match=r"residual 1 .*above tol=1e-09"):
        nc.operating_point(plant, None)
    with pytest.raises(nc.OperatingPointError):
        nc.analyze(plant, None)
    # with the input at its bound 1, x = 0 is one
    op = nc.operating_point(plant, lambda y: torch.ones_like(y))
    assert op.residual_norm == 0.0 and op.x[0] == pytest.approx(0.0, abs=1e-7)


def test_operating_point_starts_from_a_named_operating_point_of_the_plant():
    cartpole = load_example("cartpole_plant")
    plant = cartpole.cartpole_plant()
    assert list(plant.operating_points()) == ["nominal", "hanging"]
    op = nc.operating_point(plant, None, guess="hanging")
    assert op.x[1] == pytest.approx(math.pi) and op.residual_norm < 1e-12
    # hanging is stable for the pole, marginal for the free cart
    rep = nc.analyze(plant, None, op)
    assert rep.verdict == "marginal"
    with pytest.raises(ValueError, match="guess: expected a state or one of the plant's"):
        nc.operating_point(plant, None, guess="sideways")
    # the default analysis of the plant's own LQR: the upright equilibrium, stable
    K = plant.controller("lqr")
    assert nc.analyze(plant, K, continuous=False).verdict == "stable"
    traj = nc.simulate(plant, K, np.array([0.0, 0.1, 0.0, 0.0]), 300)
    m = plant.metrics(traj.states, traj.inputs)
    assert m["final_tilt"] == abs(traj.states[-1, 1]) and m["final_tilt"] < 1e-3


# --------------------------------------------------------------------------- the arms
@pytest.mark.parametrize("target", [None, 0.7])
def test_arm_at_a_target_has_the_closed_form_pd_poles(target):
    p = ArmParams(gravity=9.81)
    plant = arm_plant(p)
    ctrl = plant.controller("pd")
    reference = None if target is None else [target]
    rep = nc.analyze(plant, ctrl, reference=reference)
    # gravity compensated exactly: I s^2 + (b + kd) s + kp with kp = 10, kd = 2
    expected = np.sort_complex(np.roots([p.inertia, p.friction + 2.0, 10.0]))
    np.testing.assert_allclose(np.sort_complex(rep.regions[0].poles), expected, rtol=1e-9)
    r = 0.0 if target is None else target
    assert rep.linearization.op.x[0] == pytest.approx(r, abs=1e-12)
    # the same controller the module's own factory builds
    y = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    assert torch.equal(ctrl(y), arm_pd(p)(y))
    assert set(plant.controllers) == {"pd", "zero"}


def test_two_link_arm_at_home_has_the_closed_form_pd_poles():
    p = Arm2LinkParams()
    plant = arm2link_plant(p)
    rep = nc.analyze(plant, plant.controller("pd"))
    q2 = p.home[1]
    c2 = math.cos(q2)
    M = np.array([[p.a1 + 2 * p.a2 * c2, p.a3 + p.a2 * c2], [p.a3 + p.a2 * c2, p.a3]])
    Kp, Kd, B = 5.0 * np.eye(2), np.eye(2), np.array(p.friction)
    A = np.block(
        [[np.zeros((2, 2)), np.eye(2)], [-np.linalg.solve(M, Kp), -np.linalg.solve(M, B + Kd)]]
    )
    expected = np.sort_complex(np.linalg.eigvals(A))
    np.testing.assert_allclose(np.sort_complex(rep.regions[0].poles), expected, rtol=1e-9)
    # the reaching metrics of a run, by hand
    x0 = np.array([0.3, 1.0, 0.0, 0.0])
    traj = nc.simulate(plant, plant.controller("pd"), x0, 200)
    m = plant.metrics(traj.states, traj.inputs)
    err = np.abs(np.array(p.home) - traj.states[-1, :2]).max()
    assert m["final_error"] == err and m["reached"] == bool(
        err < 0.05 and np.abs(traj.states[-1, 2:]).max() < 0.1
    )


# --------------------------------------------------------------------------- the API
def test_plant_fact_arguments_are_checked():
    base = dict(states=2, inputs=1, dt=0.1, rhs=lambda x, u: x)
    with pytest.raises(
        ValueError, match=r"invariants: expected finite directions of shape \(2, k\)"
    ):
        nc.Plant(**base, invariants=np.ones(3))
    with pytest.raises(ValueError, match="linearly independent"):
        nc.Plant(**base, invariants=np.ones((2, 2)))
    with pytest.raises(TypeError, match="controllers: expected a mapping of names"):
        nc.Plant(**base, controllers={"pd": lambda plant: None})
    with pytest.raises(TypeError, match="operating_points: expected a mapping"):
        nc.Plant(**base, operating_points={"up": (np.zeros(2), np.zeros(1))})
    with pytest.raises(ValueError, match="'nominal' is the plant's equilibrium"):
        nc.Plant(**base, operating_points={"nominal": lambda r: (np.zeros(2), np.zeros(1))})
    with pytest.raises(TypeError, match="metrics: expected a callable"):
        nc.Plant(**base, metrics={"a": 1})
    plant = nc.Plant(**base)
    assert plant.invariants.shape == (2, 0) and plant.controllers == {}
    assert plant.metrics(np.zeros((3, 2))) == {} and plant.operating_points() == {}
    with pytest.raises(ValueError, match=r"states: expected shape \(T \+ 1, 2\)"):
        plant.metrics(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="settle: expected an int >= 0"):
        nc.operating_point(plant, None, settle=-1)


def test_training_summary_analyses_the_ring_at_the_policys_own_uniform_flow():
    from neuroctl.train.result import policy_summary

    plant = gym.make("neuroctl/RingRoad-v0").unwrapped.plant  # 230 m before the first reset
    fs = plant.controller("followerstopper")
    out = policy_summary("neuroctl/RingRoad-v0", fs)
    assert "analysis_error" not in out
    v_des = 0.9 * float(uniform_flow_equilibrium(n_vehicles=N, ring_length=230.0)[1])
    speeds = np.array(out["analysis"]["op"]["x"])[N:]
    np.testing.assert_allclose(speeds, v_des, rtol=1e-9)  # the settled relative equilibrium
    assert out["analysis"]["verdict"] == "stable"
