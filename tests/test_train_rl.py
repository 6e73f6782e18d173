"""RL training through Stable-Baselines3: export of the deterministic actor, resume, seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

sb3 = pytest.importorskip(
    "stable_baselines3", reason="needs the rl extra: pip install neuroctl[rl]"
)

from neuroctl.train import export_policy, train_rl  # noqa: E402
from neuroctl.train.export import load_policy, save_policy  # noqa: E402

PENDULUM = "Pendulum-v1"


def _random_obs(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(-8, 8, n)]
    ).astype(np.float32)


#: A PPO run short enough for the test suite (two envs, 1024 steps, a tiny network).
SHORT_PPO = dict(
    algo="ppo",
    steps=1024,
    n_envs=2,
    hidden=(16,),
    progress=False,
    tensorboard=False,
    eval_episodes=0,
    analyze=False,
)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_export_equals_sb3_deterministic_action(algo, activation, tmp_path):
    cls = {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]
    from neuroctl import ACTIVATIONS

    model = cls(
        "MlpPolicy",
        PENDULUM,
        seed=1,
        device="cpu",
        policy_kwargs=dict(net_arch=[16, 16], activation_fn=ACTIVATIONS[activation]),
    )
    head = {
        "ppo": lambda: model.policy.action_net,
        "sac": lambda: model.policy.actor.mu,
        "td3": lambda: model.policy.actor.mu[-2],
    }[algo]()
    with torch.no_grad():  # large outputs so that the clip / tanh saturation is exercised
        gen = torch.Generator().manual_seed(0)
        head.weight.copy_(5 * torch.randn(head.weight.shape, generator=gen))
    obs = _random_obs()
    expected, _ = model.predict(obs, deterministic=True)
    net, info = export_policy(model, with_info=True)
    assert isinstance(net, nn.Sequential)
    got = net(torch.as_tensor(obs)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    near_bound = 2.0 - 1e-6 if algo == "ppo" else 1.9  # clip: exactly; tanh: approached
    assert np.mean(np.abs(expected) >= near_bound) > 0.05  # the squashing was exercised
    assert info.squashing == ("clip" if algo == "ppo" else "tanh")
    assert info.piecewise_linear == (algo == "ppo" and activation == "relu")
    assert all(type(m).__module__.startswith("torch.nn.modules.") for m in net)
    # saved as state dict + JSON and loaded with torch.load(weights_only=True): same function
    save_policy(net, tmp_path / "policy", metadata={"algo": algo})
    back = load_policy(tmp_path / "policy.pt")
    np.testing.assert_array_equal(back(torch.as_tensor(obs)).detach().numpy(), got)


def _weights(model):
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


class _Interrupt(sb3.common.callbacks.BaseCallback):
    """Simulates Ctrl-C once ``at`` env steps are done."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def _on_step(self):
        if self.num_timesteps >= self.at:
            raise KeyboardInterrupt
        return True


def test_interrupt_saves_checkpoint_and_resume_continues_the_run(tmp_path):
    kw = dict(
        **SHORT_PPO,
        seed=3,
        algo_kwargs=dict(n_steps=128, batch_size=64, n_epochs=2),
    )
    out = tmp_path / "run"
    first = train_rl(PENDULUM, out_dir=out, callback=_Interrupt(600), **kw)
    assert first.interrupted and first.policy_path is None
    assert (out / "checkpoint.zip").exists()
    saved = json.loads((out / "run.json").read_text())
    # 600 steps were asked before Ctrl-C; the rollout in progress counts 2 envs per step
    assert saved["num_timesteps"] == first.steps_done >= 600
    ckpt = sb3.PPO.load(out / "checkpoint.zip", device="cpu")
    assert ckpt.num_timesteps == first.steps_done

    second = train_rl(PENDULUM, out_dir=out, **kw)
    assert second.resumed and not second.interrupted
    assert second.steps_done >= 1024
    # the resumed session trained on (its env steps = total - checkpoint), not from scratch
    rows = [int(r["steps"]) for r in second.history]
    assert rows == sorted(rows) and rows[0] < first.steps_done < rows[-1]
    assert len([r for r in rows if r <= first.steps_done]) >= 2  # earlier rows kept
    # a fresh run (resume=False) with the same seed differs from the resumed one only by the
    # interruption, but is itself reproducible: two fresh runs give identical weights
    a = train_rl(PENDULUM, out_dir=tmp_path / "a", resume=False, **kw)
    b = train_rl(PENDULUM, out_dir=tmp_path / "b", resume=False, **kw)
    pa, pb = a.policy(), b.policy()
    for (ka, va), (kb, vb) in zip(pa.state_dict().items(), pb.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # mismatched configuration refuses to resume instead of mixing runs
    with pytest.raises(ValueError, match="different configuration"):
        train_rl(PENDULUM, out_dir=out, **{**kw, "seed": 4})


def test_revival_callback_hooks_the_sb3_optimizer_and_logs_dead_units(tmp_path):
    from neuroctl.train import RevivalCallback

    cb = RevivalCallback(min_dead_steps=5)
    res = train_rl(
        PENDULUM,
        algo="ppo",
        steps=512,
        seed=0,
        n_envs=2,
        hidden=(8,),
        out_dir=tmp_path,
        progress=False,
        tensorboard=False,
        eval_episodes=0,
        analyze=False,
        callback=cb,
        algo_kwargs=dict(n_steps=128, batch_size=64, n_epochs=3),
    )
    mon = cb.monitors["policy"]
    model = cb.model
    # every Adam step of SB3 went through the hook: n_epochs x minibatches per rollout
    assert mon.n_steps == model._n_updates * (128 * 2 // 64)
    assert res.steps_done == model.num_timesteps


class _Keep(sb3.common.callbacks.BaseCallback):
    """Keeps the trained model (to compare the export against SB3's own prediction)."""

    def _on_step(self):
        return True


def test_normalized_run_exports_the_normalization_and_resumes_its_statistics(tmp_path):
    kw = dict(
        **SHORT_PPO,
        seed=5,
        algo_kwargs=dict(
            n_steps=128, batch_size=64, n_epochs=2, normalize=True, learning_rate="lin_1e-3"
        ),
    )
    out = tmp_path / "run"
    first = train_rl(PENDULUM, out_dir=out, callback=_Interrupt(600), **kw)
    assert first.interrupted and (out / "vecnormalize.pkl").exists()
    keep = _Keep()
    second = train_rl(PENDULUM, out_dir=out, callback=keep, **kw)
    assert second.resumed and second.steps_done >= 1024
    vn = keep.model.get_vec_normalize_env()
    # the running statistics continued from the checkpoint: one count per env per step
    # (plus SB3's initial 1e-4), not only this session's steps
    assert vn.obs_rms.count == pytest.approx(second.steps_done + 1e-4 + 2, abs=2)
    # the learning rate decays linearly over the whole run (both sessions) to 0 at `steps`
    assert keep.model.lr_schedule(0.25) == pytest.approx(0.25e-3)
    assert keep.model.lr_schedule(-0.1) == 0.0
    # the saved policy includes the normalization: it equals SB3's deterministic action on
    # the normalized observation
    net = load_policy(second.policy_path)
    obs = _random_obs()
    expected, _ = keep.model.predict(vn.normalize_obs(obs), deterministic=True)
    got = net(torch.as_tensor(obs)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    meta = json.loads((out / "policy.json").read_text())["metadata"]
    assert meta["export"]["obs_normalization"]
    # the command line reading the SB3 checkpoint picks up the statistics saved beside it
    from neuroctl.cli import load_network

    from_zip = load_network(out / "checkpoint.zip")
    with torch.no_grad():
        np.testing.assert_allclose(
            from_zip(torch.as_tensor(obs)).numpy(), expected, atol=1e-6, rtol=0
        )


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(learning_rate="exp_1e-3"), "lin_<start>"),
        (dict(learning_rate="lin_-1"), "lin_<start>"),
        (dict(normalize="yes"), "norm_obs"),
        (dict(normalize={"norm_action": True}), "norm_obs"),
    ],
)
def test_bad_schedule_or_normalize_option_is_refused(bad, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        train_rl(PENDULUM, steps=64, out_dir=tmp_path, progress=False, algo_kwargs=bad)
