"""The ring road's vector env on torch tensors: the numpy env's numbers, the documented stream.

Run on CPU tensors; the code is device-generic (the tensors' device is the env's ``device``).
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs._common import TorchRandom
from neuroctl.envs.ring_road.dynamics import (
    Params,
    acceleration_noise,
    ring_observation,
    ring_plant,
)
from neuroctl.envs.ring_road.env import RingRoadVectorEnv
from scipy import stats

import neuroctl  # noqa: F401  (registers the env ids)

ENV_ID = "neuroctl/RingRoad-v0"


@pytest.fixture(autouse=True)
def one_torch_thread():
    # small tensors: a second thread only waits at every operation's barrier on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _make(num_envs, **kw):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)


def _circular(dq, L):
    """Differences of positions on rings of lengths ``L`` (``(B, 1)``), in ``[-L/2, L/2)``."""
    return (dq + L / 2) % L - L / 2


CONFIGS = {
    "flow ring, one AV": dict(ring_length=230.0),
    "OVM, three AVs, full observation": dict(
        n_vehicles=12, n_av=3, ring_length=100.0, human_model="ovm", observation="full"
    ),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_ring_vector_env_equals_numpy_over_1000_steps_with_autoresets(config):
    # no noise and a fixed ring length in Params: nothing random, so both envs start each
    # episode identically; the first episode from per-copy lengths and disturbed states
    kw = dict(CONFIGS[config], noise=0.0, warmup_steps=30, max_episode_steps=300)
    B = 6
    ref = _make(B, **kw)
    tv = _make(B, device="cpu", **kw)
    p = ref.params
    n, m, L0 = p.n_vehicles, p.n_av, p.ring_length
    rng = np.random.default_rng(0)
    lengths = L0 + rng.integers(0, 40, B)
    spacing = p.vehicle_length + 0.5
    q = np.sort(rng.uniform(0, 1, (B, n)), 1) * (lengths[:, None] - n * spacing)
    q += np.arange(n) * spacing
    options = dict(positions=q, speeds=rng.uniform(0, 5, (B, n)), ring_length=lengths)
    obs_n, info_n = ref.reset(seed=0, options=options)
    obs_t, info_t = tv.reset(seed=0, options=options)
    assert torch.is_tensor(obs_t) and obs_t.dtype == torch.float64
    np.testing.assert_array_equal(info_t["ring_length"].numpy(), lengths)
    np.testing.assert_allclose(tv.state.numpy(), ref.state, rtol=0, atol=1e-12)
    autoresets = failsafes = 0
    for _ in range(1000):
        a = rng.uniform(-1.5, 1.5, (B, m))  # beyond the bounds: clipped
        obs_n, rew_n, term_n, trunc_n, info_n = ref.step(a)
        obs_t, rew_t, term_t, trunc_t, info_t = tv.step(torch.as_tensor(a))
        L = info_n["ring_length"][:, None]
        np.testing.assert_array_equal(info_t["ring_length"].numpy(), info_n["ring_length"])
        dq = _circular(tv.state.numpy()[:, :n] - ref.state[:, :n], L)
        assert np.abs(dq).max() <= 1e-12
        np.testing.assert_allclose(info_t["speeds"].numpy(), info_n["speeds"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(info_t["gaps"].numpy(), info_n["gaps"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            info_t["accelerations"].numpy(), info_n["accelerations"], rtol=0, atol=1e-12
        )
        np.testing.assert_array_equal(info_t["failsafe"].numpy(), info_n["failsafe"])
        np.testing.assert_allclose(rew_t.numpy(), rew_n, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(term_t.numpy(), term_n)
        np.testing.assert_array_equal(trunc_t.numpy(), trunc_n)
        # the numpy env returns float32 observations: its float64 observation of its state
        obs_ref = ring_observation(ref.state, ref.lengths, p)
        np.testing.assert_allclose(obs_t.numpy(), obs_ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(obs_ref.astype(np.float32), obs_n)
        autoresets += int((rew_n == 0).all() and (info_n["ring_length"] == L0).all())
        failsafes += int(info_n["failsafe"].sum())
    assert autoresets == 3  # steps 301, 602, 903: the new episodes' first observations
    assert failsafes > 50  # the fail-safe acted, and identically


def test_torch_ring_reset_and_noise_follow_the_documented_stream():
    """Replays the stream of the docstring with a generator of its own, through the plant."""
    B, W, seed = 4, 20, 11
    p = Params(warmup_steps=W)  # lengths drawn from 220..270, Flow's noise 0.2
    env = _make(B, device="cpu", warmup_steps=W, max_episode_steps=50)
    n, lo, hi = p.n_vehicles, *p.length_range
    g = torch.Generator().manual_seed(seed)

    def noise():
        z = torch.randn((B, n), generator=g, dtype=torch.float32).double().numpy()
        return z * (math.sqrt(p.dt) * p.noise)

    def fresh_rings():
        L = torch.randint(int(lo), int(hi) + 1, (B,), generator=g).double().numpy()
        car_lengths = np.repeat(L[:, None], n, 1)
        x = np.concatenate([np.arange(n) * (L[:, None] / n), np.zeros((B, n))], 1)
        plant = ring_plant(p, car_lengths)
        for _ in range(W):
            x = plant.advance(x, None, noise())
        return L, plant, x

    L, plant, x = fresh_rings()
    env.reset(seed=seed)
    np.testing.assert_array_equal(env.lengths.numpy(), L)
    np.testing.assert_allclose(env.state.numpy(), x, rtol=0, atol=1e-12)
    rng = np.random.default_rng(0)
    for k in range(120):
        a = rng.uniform(-1.5, 1.5, (B, 1))
        w = noise()  # every step draws the noise first, also the autoreset step
        _, reward, _, truncated, _ = env.step(torch.as_tensor(a))
        if k in (50, 101):  # the step after the truncation: fresh rings, reward 0
            L, plant, x = fresh_rings()
            assert (reward == 0).all()
        else:
            x = plant.advance(x, np.clip(a, -1, 1), w)
        assert truncated.all() == (k in (49, 100))
        np.testing.assert_array_equal(env.lengths.numpy(), L)
        dq = _circular(env.state.numpy()[:, :n] - x[:, :n], L[:, None])
        assert np.abs(dq).max() <= 1e-12
        np.testing.assert_allclose(env.state.numpy()[:, n:], x[:, n:], rtol=0, atol=1e-12)


def test_torch_acceleration_noise_is_normal_with_flows_scale():
    p = Params(noise=0.2)
    g = torch.Generator().manual_seed(0)
    w = acceleration_noise(TorchRandom(g, "cpu", torch.float64), p, (20000,), torch.float64)
    assert torch.is_tensor(w) and w.shape == (20000, 22) and w.dtype == torch.float64
    z = w.numpy().ravel() / (math.sqrt(p.dt) * p.noise)  # documented: sqrt(dt) noise N(0, 1)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert abs(z.std() - 1) < 5 / math.sqrt(2 * z.size)
    # independent across cars (neighbours in a row) and steps (consecutive rows)
    cars = np.corrcoef(w[:, 0].numpy(), w[:, 1].numpy())[0, 1]
    steps = np.corrcoef(w[:-1, 0].numpy(), w[1:, 0].numpy())[0, 1]
    assert abs(cars) < 5 / math.sqrt(w.shape[0]) and abs(steps) < 5 / math.sqrt(w.shape[0])
    assert acceleration_noise(TorchRandom(g, "cpu", torch.float64), Params(noise=0.0)) is None


def test_torch_ring_same_seed_same_trajectory_other_seed_another():
    def run(seed):
        env = _make(3, device="cpu", warmup_steps=20)
        env.reset(seed=seed)
        states = [env.state.clone()]
        for _ in range(50):
            env.step(torch.full((3, 1), 0.2))
            states.append(env.state.clone())
        return env.lengths.clone(), torch.stack(states)

    L1, x1 = run(5)
    L2, x2 = run(5)
    L3, x3 = run(6)
    assert torch.equal(L1, L2) and torch.equal(x1, x2)
    assert not torch.equal(L1, L3) and not torch.equal(x1[-1], x3[-1])
    # the noise alone differs with the seed too (same ring lengths, same start)
    env = _make(3, device="cpu", warmup_steps=0, ring_length=230.0)
    env.reset(seed=5)
    a = env.step(torch.zeros(3, 1))[4]["speeds"].clone()
    env.reset(seed=6)
    b = env.step(torch.zeros(3, 1))[4]["speeds"]
    assert not torch.equal(a, b)


def test_torch_ring_float32_follows_float64_within_the_float32_rounding_of_the_horizon():
    B, W, T = 8, 200, 1000
    kw = dict(warmup_steps=W, max_episode_steps=None, device="cpu")
    e32 = _make(B, dtype="float32", **kw)
    e64 = _make(B, **kw)
    e32.reset(seed=3)
    e64.reset(seed=3)  # the same lengths and (float32) normal draws
    assert e32.state.dtype == torch.float32
    p, n = e64.params, e64.params.n_vehicles
    L = e64.lengths.numpy()[:, None]
    np.testing.assert_array_equal(e32.lengths.numpy(), e64.lengths.numpy())
    rng = np.random.default_rng(1)
    for _ in range(T):
        a = torch.as_tensor(rng.uniform(-1.5, 1.5, (B, 1)))
        obs32, r32, *_ = e32.step(a)
        _, r64, *_ = e64.step(a)
    assert obs32.dtype == torch.float32 and r32.dtype == torch.float32
    # every step rounds the positions (|q| < L <= 270 m) and speeds (< v0 = 30 m/s) to float32,
    # an error of at most u |.| with u = 2**-24; added up over the W + T steps (no growth
    # allowed beyond that sum) the state may be off by (W + T) u L_max and (W + T) u v0:
    # 1.9e-2 m and 2.1e-3 m/s; the reward 0.2 mean(v) by a fifth of the latter
    u, steps = 2.0**-24, W + T
    x32, x64 = e32.state.double().numpy(), e64.state.numpy()
    dq = _circular(x32[:, :n] - x64[:, :n], L)
    assert np.abs(dq).max() <= steps * u * p.length_range[1]
    assert np.abs(x32[:, n:] - x64[:, n:]).max() <= steps * u * p.idm.v0
    assert np.abs(r32.double().numpy() - r64.numpy()).max() <= 0.2 * steps * u * p.idm.v0


def test_torch_ring_outputs_tensors_on_the_device_or_numpy_on_request():
    kw = dict(device="cpu", warmup_steps=10, max_episode_steps=None)
    tv = _make(4, **kw)
    nv = _make(4, array="numpy", **kw)
    obs_t, info_t = tv.reset(seed=2)
    obs_n, info_n = nv.reset(seed=2)
    assert isinstance(obs_n, np.ndarray) and obs_n.dtype == np.float32
    np.testing.assert_array_equal(obs_t.numpy().astype(np.float32), obs_n)
    for _ in range(5):
        out_t = tv.step(np.full((4, 1), 0.3))
        out_n = nv.step(np.full((4, 1), 0.3))
    obs_t, rew_t, term_t, trunc_t, info_t = out_t
    obs_n, rew_n, term_n, trunc_n, info_n = out_n
    for t in (obs_t, rew_t, term_t, trunc_t, *info_t.values()):
        assert torch.is_tensor(t) and t.device == torch.device("cpu")
    assert term_t.dtype == torch.bool and rew_t.dtype == torch.float64
    assert isinstance(rew_n, np.ndarray) and rew_n.dtype == np.float64
    assert term_n.dtype == np.bool_ and trunc_n.dtype == np.bool_
    np.testing.assert_array_equal(obs_t.numpy().astype(np.float32), obs_n)
    np.testing.assert_array_equal(rew_t.numpy(), rew_n)
    for key in info_t:
        assert isinstance(info_n[key], np.ndarray)
        np.testing.assert_array_equal(info_t[key].numpy(), info_n[key])


def test_torch_ring_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="device: expected"):
        RingRoadVectorEnv(2, device="nowhere")
    with pytest.raises(ValueError, match="dtype: expected"):
        RingRoadVectorEnv(2, device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="array: expected one of"):
        RingRoadVectorEnv(2, device="cpu", array="jax")
    with pytest.raises(ValueError, match="array: expected 'numpy' or None without a device"):
        RingRoadVectorEnv(2, array="torch")
    with pytest.raises(ValueError, match=r"ring_length: expected lengths > 110 m"):
        ring_plant(Params(), torch.tensor([230.0, 100.0]))  # lengths on a device: checked too
    env = RingRoadVectorEnv(2, device="cpu", warmup_steps=0)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(torch.zeros(2, 1))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected shape \(2, 1\), received \(3,\)"):
        env.step(torch.zeros(3))


def test_ring_diffsim_task_steps_on_tensor_lengths_with_the_numpy_plants_numbers():
    # the diffsim task's rollout plant holds its batch's ring lengths as a tensor on the states'
    # device (no host array read per step); its steps equal the numpy plant's on the same lengths
    from neuroctl.train.tasks import make_task

    task = make_task(ENV_ID)
    x, _, ctx = task.sample(np.random.default_rng(3), 4)
    plant_t = task.plant._on(x)
    rings = plant_t.params
    assert torch.is_tensor(ctx["v_eq"]) and ctx["v_eq"].shape == (4, 1)
    from neuroctl.envs.ring_road.task import _lengths

    lengths = _lengths(rings, np.random.default_rng(3), 4)  # the draw sample() made first
    plant_np = ring_plant(rings, lengths)
    gen = torch.Generator().manual_seed(0)
    x_np = x.numpy().copy()
    for k in range(200):
        u = torch.full((4, 1), 0.3 * math.sin(0.05 * k), dtype=torch.float64)
        w = task.disturbance(gen, x)
        x = task.plant.step(x, u, w)
        x_np = plant_np.step(x_np, u.numpy(), w.numpy())
    assert task.plant._on(x) is plant_t  # made once per batch and device
    np.testing.assert_allclose(x.numpy(), x_np, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        task.plant.observe(x).numpy(), plant_np.observe(x_np), rtol=0, atol=1e-12
    )
