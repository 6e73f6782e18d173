"""Ring road (neuroctl/RingRoad-v0): dynamics against closed forms and REFERENCE.md, env manners."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from _ulp import assert_ulp_close
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from neuroctl.envs.ring_road import (
    IDMParams,
    OVMParams,
    Params,
    hinge_flux,
    idm_acceleration,
    ovm_acceleration,
    ring_gaps,
    ring_metrics,
    ring_plant,
    uniform_flow_equilibrium,
)
from neuroctl.envs.ring_road.controllers import FollowerStopper, IDMController, PISaturation
from neuroctl.envs.ring_road.env import RingRoadEnv, RingRoadVectorEnv, rollout
from neuroctl.envs.ring_road.render import car_pixels, speed_colour

import neuroctl  # noqa: F401  (registers the env ids)

ENV_ID = "neuroctl/RingRoad-v0"


def idm_scalar(s, v, vl, a=1.0, b=1.5, v0=30.0, T=1.0, delta=4.0, s0=2.0):
    """REFERENCE.md's IDM formula written out for one car."""
    s_star = s0 + max(0.0, v * T + v * (v - vl) / (2.0 * math.sqrt(a * b)))
    return a * (1.0 - (v / v0) ** delta - (s_star / s) ** 2)


# --------------------------------------------------------------------------- pure dynamics
def test_idm_acceleration_matches_the_formula_on_numpy_and_torch():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.5, 60.0, 200)
    v = rng.uniform(0.0, 30.0, 200)
    vl = rng.uniform(0.0, 30.0, 200)
    expected = np.array([idm_scalar(*args) for args in zip(s, v, vl)])
    np.testing.assert_allclose(idm_acceleration(s, v, vl), expected, rtol=1e-12, atol=1e-12)
    got_t = idm_acceleration(*(torch.as_tensor(a) for a in (s, v, vl)))
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-12, atol=1e-12)
    # 0-d arrays, numpy scalars and broadcast shapes (a plant's probe hands these over)
    for args in ((s[0], v[0], vl[0]), (np.asarray(s[0]), np.asarray(v[0]), np.asarray(vl[0]))):
        np.testing.assert_allclose(idm_acceleration(*args), expected[0], rtol=1e-12)
    np.testing.assert_allclose(
        idm_acceleration(s[:1], v[:5], vl[0]),
        [idm_scalar(s[0], vi, vl[0]) for vi in v[:5]],
        rtol=1e-12,
        atol=1e-12,
    )
    # a non-default exponent takes the general power path
    p = IDMParams(delta=3.0)
    np.testing.assert_allclose(
        idm_acceleration(s, v, vl, p),
        [idm_scalar(*args, delta=3.0) for args in zip(s, v, vl)],
        rtol=1e-12,
        atol=1e-12,
    )


def test_uniform_flow_equilibrium_matches_reference_and_closed_form():
    gap, v = uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0)
    assert gap == pytest.approx(5.455, abs=5e-4)
    assert v == pytest.approx(3.454, abs=5e-4)
    # the closed form 1 - (v/v0)^4 = ((s0 + v T)/s)^2 holds, so IDM's acceleration vanishes
    assert 1 - (v / 30) ** 4 - ((2 + v) / gap) ** 2 == pytest.approx(0.0, abs=1e-12)
    assert idm_scalar(float(gap), float(v), float(v)) == pytest.approx(0.0, abs=1e-12)
    assert uniform_flow_equilibrium(22, 230.0) == (gap, v)  # (n, L) positional form
    # REFERENCE: the sign of the string-stability criterion changes at gap 21.6 m, speed 18.1
    _, v_long = uniform_flow_equilibrium(n_vehicles=22, ring_length=22 * (21.6 + 5.0))
    assert v_long == pytest.approx(18.1, abs=0.05)


def test_idm_partial_derivatives_at_equilibrium_match_reference():
    gap, v = (float(a) for a in uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0))
    s = torch.tensor(gap, dtype=torch.float64, requires_grad=True)
    vv = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    vl = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    f_s, f_v, f_vl = torch.autograd.grad(idm_acceleration(s, vv, vl), (s, vv, vl))
    # f(s, dv, v) with dv = v_lead - v: f_dv = d/dv_lead, f_v = d/dv + d/dv_lead
    assert float(f_s) == pytest.approx(0.3666, abs=5e-5)
    assert float(f_vl) == pytest.approx(0.5170, abs=5e-5)
    assert float(f_v + f_vl) == pytest.approx(-0.3668, abs=5e-5)


def test_hinge_flux_equals_the_ovm_uniform_flow_flux():
    o = OVMParams()
    n = 22
    rho = np.linspace(0.01, 0.199, 60)  # up to the 5 m cars touching
    gap, speed = uniform_flow_equilibrium(
        n_vehicles=n, ring_length=n / rho, human_model="ovm", ovm=o
    )
    np.testing.assert_allclose(rho * speed, hinge_flux(rho, o.v_max, o.rho_max), atol=1e-12)
    # uniform flow is an equilibrium of the OVM: zero acceleration at that speed
    np.testing.assert_allclose(ovm_acceleration(gap, speed, speed, o), 0.0, atol=1e-12)
    # the hinges: no flux at negative density, nor above the jam density
    assert hinge_flux(np.array(-0.05), o.v_max, o.rho_max) == 0.0
    assert hinge_flux(np.array(1.5 * o.rho_max), o.v_max, o.rho_max) == 0.0
    # Greenshields' parabola in between, maximal at rho_max / 2
    r = np.array([0.25, 0.5, 0.75]) * o.rho_max
    np.testing.assert_allclose(
        hinge_flux(r, o.v_max, o.rho_max), o.v_max * r * (1 - r / o.rho_max), rtol=1e-12
    )


def test_numpy_ring_reproduces_reference_wave_statistics():
    """REFERENCE (SUMO 1.28 and numpy Euler): all IDM, 22 cars, 230 m, at rest, +-0.5 m jitter."""
    p = Params(n_av=0, ring_length=230.0, noise=0.0)
    n, L = 22, 230.0
    rng = np.random.default_rng(0)
    x = np.concatenate([(np.arange(n) * L / n + rng.uniform(-0.5, 0.5, n)) % L, np.zeros(n)])
    speeds, gaps = [], []
    step = ring_plant(p, L).step
    for k in range(1, 6001):
        x = step(x, np.zeros(0))
        if k >= 3000:
            speeds.append(x[n:])
            gaps.append(ring_gaps(x[:n], L))
    m = ring_metrics(np.array(speeds), np.array(gaps))
    assert m.mean_speed == pytest.approx(2.397, rel=0.02)
    assert m.speed_std == pytest.approx(2.924, rel=0.02)
    assert np.max(speeds) == pytest.approx(8.47, rel=0.02)
    assert m.flow == pytest.approx(3600 * n / L * m.mean_speed, rel=1e-9)


def test_ring_metrics_and_gaps_closed_form():
    q = np.array([0.0, 10.0, 25.0, 90.0])
    g = ring_gaps(q, 100.0, 5.0)
    np.testing.assert_allclose(g, [5.0, 10.0, 60.0, 5.0])
    m = ring_metrics(np.array([1.0, 2.0, 3.0, 6.0]), g)
    assert (m.mean_speed, m.min_gap) == (3.0, 5.0)
    assert m.speed_std == pytest.approx(np.std([1, 2, 3, 6]))
    assert m.flow == pytest.approx(3600 * 4 / 100 * 3.0)
    assert set(m.to_dict()) == {"mean_speed", "speed_std", "min_gap", "flow"}


def test_batched_gaps_and_step_agree_with_the_remainder_and_torch():
    # the batched numpy wraps (masked in place) against the floating remainder, torch, and
    # lengths given per copy (B,) or already laid out per car (B, N)
    rng = np.random.default_rng(7)
    B, n = 64, 22
    p = Params()
    L = rng.integers(220, 271, B).astype(float)
    q = np.sort(rng.uniform(0, 1, (B, n)), axis=1) * (L[:, None] - n * 6) + np.arange(n) * 6
    q = (q + rng.uniform(0, 300, (B, 1))) % L[:, None]  # cars across the wrap point
    v = rng.uniform(0, 12, (B, n))
    expected = np.stack([(np.roll(q[b], -1) - q[b]) % L[b] - 5.0 for b in range(B)])
    per_car = np.ascontiguousarray(np.broadcast_to(L[:, None], (B, n)))
    for lengths in (L, per_car):
        assert_ulp_close(ring_gaps(q, lengths, 5.0), expected, what="numpy gaps")
    gaps_torch = ring_gaps(torch.as_tensor(q), torch.as_tensor(L))
    assert_ulp_close(gaps_torch, expected, what="torch gaps")
    x = np.concatenate([q, v], axis=1)
    u = rng.uniform(-3, 3, (B, 1))
    w = rng.normal(0, 0.1, (B, n))
    t = torch.as_tensor
    ref = ring_plant(p, t(L)).step(t(x), t(u), t(w))
    for lengths in (L, per_car):
        got = ring_plant(p, lengths).step(x, u, w)
        assert_ulp_close(got, ref, what="numpy step against torch step")
    assert ((ref[:, :n] >= 0) & (ref[:, :n] < torch.as_tensor(L)[:, None])).all()
    # positions from outside [0, L) (a user's state) wrap as torch's floating remainder does
    far = x.copy()
    far[:, :n] += 3 * L[:, None]
    far_ref = ring_plant(p, t(L)).step(t(far), t(u), t(w))
    assert_ulp_close(ring_plant(p, L).step(far, u, w), far_ref, what="wrap from [3L, 4L)")
    assert ((far_ref[:, :n] >= 0) & (far_ref[:, :n] < t(L)[:, None])).all()


# --------------------------------------------------------------------------- plant
def test_plant_layout_equilibrium_and_torch_batch_with_per_copy_lengths():
    p = Params(ring_length=230.0)
    plant = ring_plant(p, 230.0)
    assert plant.n_states == 44 and plant.n_inputs == 1 and plant.n_disturbances == 22
    assert plant.state_names[0] == "q[0]" and plant.state_names[22] == "v[0]"
    x_eq, u_eq = plant.equilibrium()
    dx = plant.rhs(x_eq, u_eq)
    np.testing.assert_allclose(dx[22:], 0.0, atol=1e-12)  # uniform flow: no acceleration
    np.testing.assert_allclose(dx[:22], 3.454066, atol=1e-6)
    # one SUMO step moves every car by v dt and keeps the speeds
    x1 = plant.step(x_eq, u_eq)
    np.testing.assert_allclose(x1[:22], (x_eq[:22] + 0.3454066179) % 230.0, atol=1e-9)
    # batched torch plant with a different length per copy equals the numpy plant per copy
    lengths = np.array([225.0, 240.0, 262.0])
    rng = np.random.default_rng(1)
    xs = []
    for L in lengths:
        q = np.sort(rng.uniform(0, L - 22 * 6, 22)) + np.arange(22) * 6.0
        xs.append(np.concatenate([q, rng.uniform(0, 8, 22)]))
    xs = np.array(xs)
    u = rng.uniform(-1, 1, (3, 1))
    w = rng.normal(0, 0.06, (3, 22))
    batched = ring_plant(p, lengths).step(
        torch.as_tensor(xs), torch.as_tensor(u), torch.as_tensor(w)
    )
    single = [ring_plant(p, L).step(xs[i], u[i], w[i]) for i, L in enumerate(lengths)]
    np.testing.assert_allclose(batched.numpy(), np.array(single), atol=1e-12)


def test_plant_jacobians_at_uniform_flow_match_reference_stability_figures():
    """REFERENCE: 44-state ring, max real part +0.0235 /s (4 unstable), Euler radius 1.00227."""
    plant = ring_plant(Params(n_av=0, ring_length=230.0))
    x, u = (torch.as_tensor(a) for a in plant.equilibrium())
    A_c = torch.autograd.functional.jacobian(lambda z: plant.rhs(z, u), x).numpy()
    ev = np.linalg.eigvals(A_c)
    assert ev.real.max() == pytest.approx(0.0235, abs=5e-5)
    assert (ev.real > 1e-9).sum() == 4
    A_d = torch.autograd.functional.jacobian(lambda z: plant.step(z, u), x).numpy()
    assert np.abs(np.linalg.eigvals(A_d)).max() == pytest.approx(1.00227, abs=5e-6)
    # the AV's input acts on its own speed only, through dt
    av_plant = ring_plant(Params(n_av=1, ring_length=230.0))
    x1, u1 = (torch.as_tensor(a) for a in av_plant.equilibrium())
    B = torch.func.jacrev(lambda uu: av_plant.step(x1, uu))(u1).numpy()[:, 0]
    expected = np.zeros(44)
    expected[22], expected[0] = 0.1, 0.01
    np.testing.assert_allclose(B, expected, atol=1e-15)


def test_env_step_equals_plant_step_with_the_drawn_noise():
    from neuroctl.envs.ring_road.env import _ring_length

    env = RingRoadEnv(ring_length=(220, 270), warmup_steps=50)
    env.reset(seed=3)
    plant = env.plant
    # the generator of reset(seed=3), past the ring length and the 50 warm-up draws
    rng = np.random.default_rng(3)
    assert _ring_length(env.params, rng, None) == env.ring_length
    rng.standard_normal((50, 22), dtype=np.float32)
    actions = [0.3, -2.0, 5.0, -0.7]  # out-of-box actions are clipped like plant.saturate
    for a in actions:
        x = env.state.copy()
        w = rng.standard_normal(22, dtype=np.float32).astype(float) * (math.sqrt(0.1) * 0.2)
        env.step(np.array([a], dtype=np.float32))
        expected = plant.step(x, np.array([np.float32(a)], dtype=float), w)
        np.testing.assert_allclose(env.state, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- env manners
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"n_av": 0, "observation": "full"}, {"human_model": "ovm", "n_av": 3}],
)
def test_check_env_passes(kwargs):
    env = gym.make(ENV_ID, warmup_steps=20, render_mode="rgb_array", **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_spaces_lengths_and_info():
    env = gym.make(ENV_ID, n_vehicles=22, n_av=1, ring_length=(220, 270), warmup_steps=10)
    lengths = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        L = env.unwrapped.ring_length
        lengths.add(L)
        assert L == int(L) and 220 <= L <= 270
    assert len(lengths) > 3
    obs, r, term, trunc, info = env.step(np.array([0.5], dtype=np.float32))
    assert obs.shape == (3,) and obs.dtype == np.float32
    x = env.unwrapped.state
    np.testing.assert_allclose(info["speeds"], x[22:])
    np.testing.assert_allclose(info["gaps"], ring_gaps(x[:22], L))
    assert info["gaps"].sum() + 22 * 5.0 == pytest.approx(L)
    # Flow's partial observation of car 0
    np.testing.assert_allclose(
        obs, [x[22] / 15, (x[23] - x[22]) / 15, info["gaps"][0] / 270], rtol=1e-6
    )
    assert r == pytest.approx(4 * x[22:].mean() / 20 - 4 * 0.5, rel=1e-9)
    fixed = gym.make(ENV_ID, ring_length=250.0, n_av=0, warmup_steps=0)
    fixed.reset(seed=0)
    assert fixed.unwrapped.ring_length == 250.0
    assert fixed.action_space.shape == (0,)
    assert fixed.step(np.zeros(0))[0].shape == (0,)


def test_bad_actions_and_options():
    env = RingRoadEnv(warmup_steps=0, noise=0.0, ring_length=230.0)
    env.reset(seed=0)
    for bad in (np.array([np.nan]), np.array([np.inf])):
        with pytest.raises(ValueError, match="finite"):
            env.step(bad)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2))
    # clipping: a command of 7 acts like 1
    a = RingRoadEnv(warmup_steps=0, noise=0.0, ring_length=230.0)
    b = RingRoadEnv(warmup_steps=0, noise=0.0, ring_length=230.0)
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(20):
        a.step(np.array([7.0]))
        b.step(np.array([1.0]))
    np.testing.assert_array_equal(a.state, b.state)
    with pytest.raises(ValueError, match="overlap"):
        env.reset(options={"positions": np.arange(22) * 3.0})
    with pytest.raises(ValueError, match="unknown key"):
        env.reset(options={"velocity": 1})
    q = np.arange(22) * 10.0
    v = np.linspace(0, 5, 22)
    env.reset(options={"positions": q, "speeds": v})
    np.testing.assert_array_equal(env.state, np.concatenate([q, v]))


def test_params_validation_messages():
    with pytest.raises(ValueError, match=r"22 cars of 5.0 m need a ring longer than 110 m"):
        Params(ring_length=100.0)
    with pytest.raises(ValueError, match=r"n_av: expected an int between 0 and n_vehicles=4"):
        Params(n_vehicles=4, n_av=5, ring_length=100.0)
    with pytest.raises(ValueError, match=r"expected lo <= hi"):
        Params(ring_length=(270, 220))
    with pytest.raises(ValueError, match=r"human_model: expected one of .*received 'krauss'"):
        Params(human_model="krauss")
    with pytest.raises(ValueError, match=r"noise: expected a non-negative .*received -0.1"):
        Params(noise=-0.1)
    with pytest.raises(ValueError, match=r"IDMParams.T: expected a positive"):
        IDMParams(T=0.0)
    with pytest.raises(TypeError, match=r"unknown keyword.*'n_cars'"):
        gym.make(ENV_ID, n_cars=10)


def test_same_seed_same_trajectory():
    def run(seed):
        env = gym.make(ENV_ID, warmup_steps=100)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        out = [obs]
        for _ in range(100):
            out.append(env.step(rng.uniform(-1, 1, 1).astype(np.float32))[0])
        return np.array(out), env.unwrapped.state.copy()

    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    venvs = [
        gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", warmup_steps=50)
        for _ in range(2)
    ]
    for ve in venvs:
        ve.reset(seed=5)
        for _ in range(30):
            ve.step(np.full((3, 1), 0.2, dtype=np.float32))
    np.testing.assert_array_equal(venvs[0].unwrapped.state, venvs[1].unwrapped.state)


def test_vector_env_agrees_with_single_envs_and_autoresets():
    B, n = 3, 22
    lengths = np.array([221.0, 240.0, 268.0])
    rng = np.random.default_rng(2)
    q = np.array([np.sort(rng.uniform(0, L - n * 6, n)) + np.arange(n) * 6 for L in lengths])
    v = rng.uniform(0, 6, (B, n))
    venv = gym.make_vec(
        ENV_ID,
        num_envs=B,
        vectorization_mode="vector_entry_point",
        warmup_steps=0,
        noise=0.0,
        max_episode_steps=40,
    )
    assert isinstance(venv.unwrapped, RingRoadVectorEnv)
    obs_v, _ = venv.reset(seed=0, options={"positions": q, "speeds": v, "ring_length": lengths})
    singles = []
    for i in range(B):
        e = RingRoadEnv(warmup_steps=0, noise=0.0)
        singles.append(e)
        o, _ = e.reset(options={"positions": q[i], "speeds": v[i], "ring_length": lengths[i]})
        np.testing.assert_allclose(obs_v[i], o)
    actions = rng.uniform(-1.5, 1.5, (40, B, 1))
    for k in range(40):
        ov, rv, tv, trv, iv = venv.step(actions[k])
        for i, e in enumerate(singles):
            o, r, _, _, info = e.step(actions[k, i])
            np.testing.assert_allclose(ov[i], o, rtol=1e-6)
            assert rv[i] == pytest.approx(r, rel=1e-12)
            np.testing.assert_allclose(iv["speeds"][i], info["speeds"], atol=1e-12)
            np.testing.assert_allclose(iv["gaps"][i], info["gaps"], atol=1e-12)
        assert not tv.any()
        assert trv.all() == (k == 39)
    # next step: autoreset (gymnasium NEXT_STEP): new episode's first observation, reward 0
    speeds_before = iv["speeds"].copy()
    held = iv["speeds"]
    ov, rv, tv, trv, iv = venv.step(np.zeros((B, 1)))
    assert (rv == 0).all() and not trv.any()
    assert all(220 <= L <= 270 for L in iv["ring_length"])
    # the speeds handed out earlier do not change with later steps and resets, nor can they be
    # written to
    venv.reset(seed=1)
    np.testing.assert_array_equal(held, speeds_before)
    with pytest.raises(ValueError):
        held[0, 0] = 1.0
    venv.close()


# --------------------------------------------------------------------------- invariants
@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(2, 30),
    n_av_frac=st.floats(0, 1),
    slack=st.floats(0.5, 300),
    noise=st.floats(0, 2),
    model=st.sampled_from(["idm", "ovm"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_ring_invariants_under_random_actions(n, n_av_frac, slack, noise, model, seed):
    n_av = int(round(n_av_frac * n))
    L = n * 5.0 + slack
    p = Params(
        n_vehicles=n, n_av=n_av, ring_length=L, noise=noise, human_model=model, warmup_steps=0
    )
    rng = np.random.default_rng(seed)
    B = 8
    cuts = np.sort(rng.uniform(0, slack, (B, n)), axis=1)  # random free space split
    q = (cuts + np.arange(n) * 5.0 + rng.uniform(0, L, (B, 1))) % L
    x = np.concatenate([q, rng.uniform(0, 30, (B, n))], axis=1)
    step = ring_plant(p, L).step
    for _ in range(60):
        u = rng.uniform(-30, 30, (B, n_av))
        w = rng.normal(0, noise + 1e-9, (B, n))
        x = step(x, u, w)  # saturated to the action bounds by the plant
        gaps = ring_gaps(x[:, :n], L)
        assert (gaps >= -1e-9).all(), "a car overlapped its leader"
        assert (x[:, n:] >= 0).all()
        assert ((x[:, :n] >= 0) & (x[:, :n] < L)).all()
        # ring order kept: the gaps still add up to one lap (nobody passed anybody)
        np.testing.assert_allclose(gaps.sum(1) + n * 5.0, L, rtol=1e-9)


def test_failsafe_acts_when_the_av_commands_a_crash():
    env = RingRoadEnv(n_vehicles=3, n_av=1, ring_length=200.0, noise=0.0, warmup_steps=0)
    # AV (car 0) at 15 m/s, leader stopped 10 m ahead
    env.reset(options={"positions": [0.0, 15.0, 100.0], "speeds": [15.0, 0.0, 0.0]})
    flags, accels, gaps_av = [], [], []
    for _ in range(100):
        _, _, _, _, info = env.step(np.array([1.0]))
        flags.append(bool(info["failsafe"][0]))
        gaps_av.append(info["gaps"][0])
        assert info["gaps"].min() >= 0.0
        accels.append(info["accelerations"][0])
    assert flags[0]
    assert accels[0] < -1.0  # the fail-safe brakes beyond the action bound
    assert min(gaps_av) >= 0.5  # and keeps the AV off its leader
    # a harmless command is left alone
    env.reset(options={"positions": [0.0, 100.0, 150.0], "speeds": [5.0, 5.0, 5.0]})
    _, _, _, _, info = env.step(np.array([0.5]))
    assert not info["failsafe"][0]
    assert info["accelerations"][0] == pytest.approx(0.5)


# --------------------------------------------------------------------------- render
def test_render_rgb_array_colours_cars_by_speed():
    env = gym.make(
        ENV_ID, render_mode="rgb_array", n_vehicles=4, ring_length=100.0, warmup_steps=0, noise=0.0
    )
    speeds = np.array([0.0, 5.0, 10.0, 15.0])
    env.reset(options={"positions": [0.0, 25.0, 50.0, 75.0], "speeds": speeds})
    img = env.render()
    assert img.shape == (400, 400, 3) and img.dtype == np.uint8
    pix = car_pixels([0.0, 25.0, 50.0, 75.0], 100.0)
    colours = np.array([img[r, c] for r, c in pix])
    np.testing.assert_array_equal(colours, speed_colour(speeds))
    assert colours[0, 0] > colours[0, 1]  # stopped car red
    assert colours[3, 1] > colours[3, 0]  # fast car green
    venv = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode="vector_entry_point",
        render_mode="rgb_array",
        warmup_steps=0,
    )
    venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 2 and all(f.shape == (400, 400, 3) for f in frames)
    venv.close()


# --------------------------------------------------------------------------- controllers
def fs_scalar(v, vl, dx, r, w=(4.5, 5.25, 6.0), d=(1.5, 1.0, 0.5)):
    dvm = min(vl - v, 0.0)
    x1, x2, x3 = (wk + dvm**2 / (2 * dk) for wk, dk in zip(w, d))
    vt = min(max(vl, 0.0), r)
    if dx <= x1:
        return 0.0
    if dx <= x2:
        return vt * (dx - x1) / (x2 - x1)
    if dx <= x3:
        return vt + (r - vt) * (dx - x2) / (x3 - x2)
    return r


def test_follower_stopper_matches_stern_formula_and_decodes_flow_observation():
    rng = np.random.default_rng(4)
    v, vl, dx = rng.uniform(0, 10, 300), rng.uniform(0, 10, 300), rng.uniform(0, 20, 300)
    fs = FollowerStopper(v_des=6.0)
    y = torch.as_tensor(np.stack([v / 15, (vl - v) / 15, dx / 270], -1))
    got = fs(y)[..., 0].numpy()
    expected = np.clip([(fs_scalar(*a, 6.0) - a[0]) / 0.1 for a in zip(v, vl, dx)], -1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    idm = IDMController()(y)[..., 0].numpy()
    np.testing.assert_allclose(
        idm, np.clip([idm_scalar(d_, a, b) for a, b, d_ in zip(v, vl, dx)], -1, 1), atol=1e-9
    )


def test_pi_saturation_history_is_internal_state_cleared_by_reset():
    pi = PISaturation()
    assert pi.window == 380
    y = torch.tensor([[3.0 / 15, 0.0, 20.0 / 270]], dtype=torch.float64)
    first = [pi(y * (1 + 0.01 * k)) for k in range(5)]
    pi.reset()
    again = [pi(y * (1 + 0.01 * k)) for k in range(5)]
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
    # first call by hand: U = v = 3, v_target = 3 + (20 - 7)/23, alpha = 1, beta = 1/2
    v_cmd = 0.5 * (3 + 13 / 23)
    assert float(first[0]) == pytest.approx(max(-1.0, (v_cmd - 3) / 0.1))


def test_follower_stopper_halves_the_speed_std_after_warmup():
    torch.set_num_threads(1)
    kw = dict(ring_length=230.0, noise=0.2, warmup_steps=750)
    human = rollout(RingRoadEnv(n_av=0, **kw), None, 2000, seed=1)
    _, v_eq = uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0)
    fs = rollout(RingRoadEnv(n_av=1, **kw), FollowerStopper(v_des=0.9 * float(v_eq)), 2000, seed=1)
    std_h = human.metrics(t_from=100.0).speed_std
    std_fs = fs.metrics(t_from=100.0).speed_std
    assert std_fs <= 0.5 * std_h, (std_h, std_fs)
    assert fs.gaps.min() >= 0.0


def test_pi_with_saturation_is_stateful_and_a_network_is_not():
    from neuroctl import mlp
    from neuroctl.controllers import StatefulController

    assert isinstance(PISaturation(), StatefulController)
    assert not isinstance(FollowerStopper(v_des=3.0), StatefulController)
    assert not isinstance(mlp(3, 1), StatefulController)


# --------------------------------------------------------------------------- noise, float32
def test_acceleration_noise_is_normal_with_flow_scale_and_reproducible():
    from neuroctl.envs.ring_road.dynamics import acceleration_noise, standard_normal_float32
    from scipy import stats

    # below 512 draws: numpy's own float32 normals, number for number
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(
        standard_normal_float32(a, 22), b.standard_normal(22, dtype=np.float32)
    )
    # large draws (Box-Muller): N(0, 1) by a Kolmogorov-Smirnov test and the first moments
    z = standard_normal_float32(np.random.default_rng(0), 400_001).astype(np.float64)
    assert z.shape == (400_001,) and z.dtype == np.float64
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / math.sqrt(z.size) and abs(z.std() - 1) < 5 / math.sqrt(2 * z.size)
    assert stats.kurtosis(z, fisher=False) == pytest.approx(3.0, abs=0.05)
    # the two halves (cosine and sine branches) are uncorrelated
    h = z.size // 2
    assert abs(np.corrcoef(z[:h], z[h : 2 * h])[0, 1]) < 5 / math.sqrt(h)
    # Flow's scale sqrt(dt) * noise, per car and ring; the same seed gives the same draws
    p = Params(noise=0.2)
    w = acceleration_noise(np.random.default_rng(1), p, (1024,), np.float32)
    assert w.shape == (1024, 22) and w.dtype == np.float32
    assert w.std() == pytest.approx(math.sqrt(0.1) * 0.2, rel=0.02)
    again = acceleration_noise(np.random.default_rng(1), p, (1024,), np.float32)
    np.testing.assert_array_equal(w, again)


def test_noise_drawn_in_blocks_is_the_per_step_noise_number_for_number():
    from neuroctl.envs.ring_road.dynamics import _NoiseBlocks, acceleration_noise
    from neuroctl.envs.ring_road.env import _initial_state

    p = Params(noise=0.2)
    blocks = _NoiseBlocks(np.random.default_rng(9), p, block=7)
    one_by_one = np.random.default_rng(9)
    for _ in range(30):  # across several block boundaries
        np.testing.assert_array_equal(blocks(), acceleration_noise(one_by_one, p))
    # the single env: the same trajectory as drawing acceleration_noise every step, with the
    # physics of the plant (ring_plant.advance) fed the per-step draws
    env = gym.make("neuroctl/RingRoad-v0", warmup_steps=200, ring_length=230.0)
    env.reset(seed=11)
    base = env.unwrapped
    rng = np.random.default_rng(11)
    base.reset(seed=11)  # reseeded: consume nothing else, then replay with per-step draws
    x = _initial_state(base.params, base.ring_length, None)
    advance = base.plant.advance
    for _ in range(200):
        x = advance(x, None, acceleration_noise(rng, base.params))
    np.testing.assert_array_equal(base.state, x)
    for k in range(300):
        a = np.array([0.5 * math.sin(0.05 * k)])
        env.step(a)
        x = advance(x, a, acceleration_noise(rng, base.params))
        np.testing.assert_array_equal(base.state, x)
    # a generator replaced between steps is drawn from from the next step on
    base.np_random = np.random.default_rng(12)
    rng = np.random.default_rng(12)
    env.step(np.zeros(1))
    x = advance(x, np.zeros(1), acceleration_noise(rng, base.params))
    np.testing.assert_array_equal(base.state, x)


def test_float32_vector_env_reproduces_reference_waves_and_keeps_the_invariants():
    """REFERENCE: all IDM, 22 cars, 230 m, at rest with +-0.5 m jitter: mean 2.397, std 2.924."""
    n, L, B = 22, 230.0, 2
    rng = np.random.default_rng(0)
    q = (np.arange(n) * L / n + rng.uniform(-0.5, 0.5, (B, n))) % L
    kw = dict(num_envs=B, n_av=0, noise=0.0, warmup_steps=0, ring_length=L)
    envs = {dt: RingRoadVectorEnv(dtype=dt, **kw) for dt in ("float32", "float64")}
    for env in envs.values():
        env.reset(options={"positions": np.sort(q, axis=1), "speeds": np.zeros((B, n))})
    speeds, gaps = [], []
    for k in range(1, 6001):
        _, reward, *_, info = envs["float32"].step(np.zeros((B, 0)))
        _, reward64, *_, info64 = envs["float64"].step(np.zeros((B, 0)))
        assert info["speeds"].dtype == np.float32 and reward.dtype == np.float32
        if k <= 100:  # before the waves grow, the two precisions follow the same trajectory
            np.testing.assert_allclose(info["speeds"], info64["speeds"], atol=1e-3)
            np.testing.assert_allclose(reward, reward64, atol=1e-4)
        # float32 positions are resolved to ~3e-5 m: gaps may dip below 0 by that much only
        assert (info["gaps"] >= -1e-4).all() and (info["speeds"] >= 0).all()
        np.testing.assert_allclose(info["gaps"].sum(1, dtype=np.float64) + n * 5.0, L, rtol=1e-5)
        if k >= 3000:
            speeds.append(info["speeds"])
            gaps.append(info["gaps"])
    m = ring_metrics(np.array(speeds), np.array(gaps))
    assert m.mean_speed == pytest.approx(2.397, rel=0.02)
    assert m.speed_std == pytest.approx(2.924, rel=0.02)


def test_vector_env_rejects_an_unknown_dtype():
    with pytest.raises(ValueError, match=r"dtype: expected 'float32' or 'float64', received"):
        RingRoadVectorEnv(num_envs=2, dtype="float16")
    for bad in ("bogus", None, int):
        with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
            RingRoadVectorEnv(num_envs=2, dtype=bad)


def test_reward_is_flows_wave_attenuation_reward_single_and_batched():
    """Flow: r = 4 mean(v) / 20 - 4 mean|a_av| (clipped actions), per ring."""
    kw = dict(n_vehicles=12, n_av=3, ring_length=100.0, warmup_steps=20)
    env = RingRoadEnv(**kw)
    env.reset(seed=4)
    venv = RingRoadVectorEnv(num_envs=5, **kw)
    venv.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-2, 2, 3)  # beyond the [-1, 1] box: the clipped action counts
        _, r, *_, info = env.step(a)
        assert isinstance(r, float)
        expected = 4 * info["speeds"].mean() / 20 - 4 * np.abs(np.clip(a, -1, 1)).mean()
        assert r == pytest.approx(expected, rel=1e-12, abs=1e-12)
        actions = rng.uniform(-2, 2, (5, 3))
        _, rb, *_, info = venv.step(actions)
        expected = 4 * info["speeds"].mean(1) / 20 - 4 * np.abs(np.clip(actions, -1, 1)).mean(1)
        np.testing.assert_allclose(rb, expected, rtol=1e-12, atol=1e-12)


def test_ring_made_by_gymnasium_refuses_step_and_render_before_reset_by_itself():
    # registered without gymnasium's order and checker wrappers: the env enforces the order
    env = gym.make("neuroctl/RingRoad-v0", render_mode="rgb_array")
    assert isinstance(env, gym.wrappers.TimeLimit) and env.env is env.unwrapped
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        env.render()
    env.reset(seed=0)
    assert env.render().ndim == 3
    check_env(env.unwrapped, skip_render_check=False)
