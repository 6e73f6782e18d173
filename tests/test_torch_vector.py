"""Vector envs and simulate on torch tensors: the same numbers as the numpy path.

Run on CPU tensors; the code is device-generic (the tensors' device is the env's ``device``).
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs.arm import arm_plant, pd_gravity_controller

import neuroctl  # noqa: F401  (registers the env ids)
from neuroctl import simulate

ARMS = ["neuroctl/Arm-v0", "neuroctl/Arm2Link-v0"]


def _pair(env_id, n, dtype="float64", max_episode_steps=150):
    kw = dict(num_envs=n, vectorization_mode="vector_entry_point")
    ref = gym.make_vec(env_id, **kw, max_episode_steps=max_episode_steps)
    tv = gym.make_vec(env_id, **kw, max_episode_steps=max_episode_steps, device="cpu", dtype=dtype)
    return ref.unwrapped if hasattr(ref, "unwrapped") else ref, tv


@pytest.mark.parametrize("env_id", ARMS)
def test_torch_arm_vector_env_equals_numpy_over_1000_steps_with_autoreset(env_id):
    n = 16
    ref, tv = _pair(env_id, n)
    ref.reset(seed=1)
    obs_t, _ = tv.reset(seed=1)
    assert torch.is_tensor(obs_t) and obs_t.dtype == torch.float64
    # both envs start from the torch env's draws; afterwards each autoreset copy is re-synced,
    # since the two envs draw from different generators
    ref.state = tv.state.numpy().copy()
    ref.reference = tv.reference.numpy().copy()
    rng = np.random.default_rng(0)
    hi = ref.single_action_space.high
    n_reset = 0
    for _ in range(1000):
        a = rng.uniform(-1.5, 1.5, size=(n, hi.size)) * hi  # beyond the bounds: saturation
        was_done = tv._prev_done.numpy().copy()
        obs_n, rew_n, term_n, trunc_n, _ = ref.step(a)
        obs_t, rew_t, term_t, trunc_t, _ = tv.step(torch.as_tensor(a))
        np.testing.assert_array_equal(trunc_t.numpy(), trunc_n)
        np.testing.assert_array_equal(term_t.numpy(), term_n)
        np.testing.assert_allclose(rew_t.numpy(), rew_n, rtol=0, atol=1e-12)
        keep = ~was_done
        np.testing.assert_allclose(tv.state.numpy()[keep], ref.state[keep], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            obs_t.numpy()[keep], obs_n[keep].astype(np.float64), rtol=0, atol=1e-6
        )  # the numpy env returns float32 observations
        n_reset += int(was_done.sum())
        ref.state[was_done] = tv.state.numpy()[was_done]
        ref.reference[was_done] = tv.reference.numpy()[was_done]
    assert n_reset >= n * 6  # 1000 steps of 150-step episodes: six autoresets per copy


@pytest.mark.parametrize("env_id", ARMS)
def test_torch_arm_vector_env_float32_stays_close(env_id):
    n = 8
    _, t32 = _pair(env_id, n, dtype="float32", max_episode_steps=None)
    t64 = gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="vector_entry_point",
        max_episode_steps=None,
        device="cpu",
    )
    t64.reset(seed=3)
    t32.reset(seed=3)
    t32.state = t64.state.to(torch.float32)
    t32.reference = t64.reference.to(torch.float32)
    rng = np.random.default_rng(1)
    hi = t64.single_action_space.high
    for _ in range(100):
        a = torch.as_tensor(rng.uniform(-1, 1, size=(n, hi.size)) * hi)
        t64.step(a)
        t32.step(a)
    assert t32.state.dtype == torch.float32
    # float32 rounds at 2**-24 ~ 6e-8 relative per operation; over 100 steps under random
    # torques (the two-link arm amplifies differences) we allow 1e-4 relative to the state's
    # magnitude, about 1700 float32 ulps of accumulated growth
    x32, x64 = t32.state.double().numpy(), t64.state.numpy()
    assert np.all(np.abs(x32 - x64) <= 1e-4 * (1 + np.abs(x64)))


@pytest.mark.parametrize("env_id", ARMS)
def test_torch_vector_env_reset_with_seed_is_reproducible_and_numpy_on_request(env_id):
    kw = dict(num_envs=4, vectorization_mode="vector_entry_point", device="cpu")
    a = gym.make_vec(env_id, **kw)
    b = gym.make_vec(env_id, **kw, array="numpy")
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    assert isinstance(ob, np.ndarray) and ob.dtype == np.float32
    np.testing.assert_array_equal(oa.numpy().astype(np.float32), ob)
    oa2, _ = a.reset(seed=7)
    torch.testing.assert_close(oa, oa2, rtol=0, atol=0)
    oc, _ = a.reset(seed=8)
    assert not torch.equal(oa, oc)


def test_torch_vector_env_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="dtype: expected"):
        gym.make_vec(
            "neuroctl/Arm-v0",
            num_envs=2,
            vectorization_mode="vector_entry_point",
            device="cpu",
            dtype="float16",
        )
    with pytest.raises(ValueError, match="array: expected"):
        gym.make_vec(
            "neuroctl/Arm-v0",
            num_envs=2,
            vectorization_mode="vector_entry_point",
            device="cpu",
            array="jax",
        )


def test_simulate_on_torch_tensors_equals_the_numpy_path():
    plant = arm_plant()
    ctrl = pd_gravity_controller()
    x0 = np.random.default_rng(0).uniform(-1, 1, size=(32, 2))
    ref = simulate(plant, ctrl, x0, 200, reference=np.full((32, 1), 0.3))
    got = simulate(plant, ctrl, torch.as_tensor(x0), 200, reference=np.full((32, 1), 0.3))
    np.testing.assert_allclose(got.states, ref.states, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.inputs, ref.inputs, rtol=0, atol=1e-12)
    got32 = simulate(
        plant,
        ctrl.float() if hasattr(ctrl, "float") else ctrl,
        torch.as_tensor(x0, dtype=torch.float32),
        200,
        reference=np.full((32, 1), 0.3),
        differentiable=True,
    )
    assert got32.states.dtype == torch.float32
