"""Differentiable-simulation training and the shipped pretrained policies."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _examples import load_example
from torch import nn

import neuroctl
from neuroctl.train import train_diffsim
from neuroctl.train.diffsim import diffsim_policy
from neuroctl.train.rl import evaluate_policy
from neuroctl.train.tasks import make_task

ARM = "neuroctl/Arm-v0"
RING = "neuroctl/RingRoad-v0"
FAST = dict(hidden=(16, 16), batch=32, progress=False, tensorboard=False, analyze=False)


def test_short_diffsim_run_improves_the_env_return(tmp_path):
    res = train_diffsim(
        ARM,
        steps=15,
        seed=0,
        lr=3e-2,
        lr_final=3e-2,
        out_dir=tmp_path / "arm",
        task_options={"horizon": 75},
        **FAST,
    )
    assert not res.interrupted and res.steps_done == 15
    # judged by the env itself (gym.make, its reward), on episodes the training never saw
    untrained = diffsim_policy(make_task(ARM), (16, 16), "relu", 0)
    before = evaluate_policy(ARM, untrained, episodes=8, seed=777)["eval_return_mean"]
    after = evaluate_policy(ARM, res.policy(), episodes=8, seed=777)["eval_return_mean"]
    assert after > before + 0.5 * abs(before)
    costs = [float(r["cost"]) for r in res.history]
    assert costs[-1] < costs[0]


class _StopAt:
    def __init__(self, at):
        self.at = at

    def __call__(self, step, policy, cost):
        if step == self.at:
            raise KeyboardInterrupt


def test_diffsim_resume_after_interrupt_reproduces_the_uninterrupted_run(tmp_path):
    kw = dict(steps=12, seed=5, checkpoint_every=100, task_options={"horizon": 20}, **FAST)
    straight = train_diffsim(ARM, out_dir=tmp_path / "a", **kw)
    cut = train_diffsim(ARM, out_dir=tmp_path / "b", callback=_StopAt(7), **kw)
    assert cut.interrupted and cut.steps_done == 7 and cut.policy_path is None
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert int(state["step"]) == 7
    resumed = train_diffsim(ARM, out_dir=tmp_path / "b", **kw)
    assert resumed.resumed and resumed.steps_done == 12
    for (ka, va), (kb, vb) in zip(
        straight.policy().state_dict().items(), resumed.policy().state_dict().items()
    ):
        assert ka == kb and torch.equal(va, vb)
    rows = [int(r["steps"]) for r in resumed.history]
    assert rows == [10, 12] or rows == sorted(rows)
    with pytest.raises(ValueError, match="different configuration"):
        train_diffsim(ARM, out_dir=tmp_path / "b", **{**kw, "seed": 6})


def test_diffsim_policy_is_a_plain_relu_sequential_with_explicit_clip():
    net = diffsim_policy(make_task(ARM), (8, 8), "relu", 0)
    assert isinstance(net, nn.Sequential)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "Hardtanh", "Linear"]
    y = torch.randn(1000, 4) * 1e3  # far outside: the output is clipped to the torque bounds
    with torch.no_grad():
        net[-3].weight.fill_(1.0)
        u = net(y)
    max_torque = gym.make(ARM).unwrapped.params.max_torque
    assert u.abs().max() == pytest.approx(max_torque)


def test_pretrained_arm_policy_reaches_95_percent_of_100_random_targets():
    policy = neuroctl.pretrained(ARM)
    assert isinstance(policy, nn.Sequential)
    assert {type(m).__name__ for m in policy} <= {"Linear", "ReLU", "Hardtanh"}
    env = gym.make(ARM)
    plant = env.unwrapped.plant
    rng = np.random.default_rng(2024)  # targets never used in training or in the recipe check
    x0, r = env.unwrapped.model.sample(rng, 100, None)
    traj = neuroctl.simulate(plant, policy, x0, 150, reference=r)  # 3 s at dt = 0.02
    err = np.abs(r[:, 0] - traj.states[:, -1, 0])
    speed = np.abs(traj.states[:, -1, 1])
    assert np.mean((err < 0.05) & (speed < 0.1)) >= 0.95
    info = neuroctl.train.pretrained.__module__  # the function lives in neuroctl.train
    assert info.startswith("neuroctl.train")


def test_pretrained_arm2link_policy_reaches_its_targets():
    policy = neuroctl.pretrained("neuroctl/Arm2Link-v0")
    env = gym.make("neuroctl/Arm2Link-v0")
    x0, r = env.unwrapped.model.sample(np.random.default_rng(2024), 100, None)
    traj = neuroctl.simulate(env.unwrapped.plant, policy, x0, 150, reference=r)
    err = np.abs(r - traj.states[:, -1, :2]).max(-1)
    speed = np.abs(traj.states[:, -1, 2:]).max(-1)
    assert np.mean((err < 0.05) & (speed < 0.1)) >= 0.95


def test_pretrained_ring_policy_damps_the_wave_against_all_human_traffic():
    from neuroctl.train.ring_task import ring_wave_metrics

    policy = neuroctl.pretrained(RING)
    m = ring_wave_metrics(policy, n_rings=4, seed=99, horizon=1500)
    # the all-human ring on the same lengths and noise is the baseline (string unstable)
    assert m["speed_std_human"] > 0.5
    assert m["std_reduction"] >= 0.80
    assert m["speed_ratio_min"] >= 0.95
    assert m["min_gap"] > 0.0


def test_pretrained_files_are_small_and_record_their_command():
    from neuroctl.train.pretrained import _DIR, available, pretrained_info

    assert set(available()) == {ARM, RING, "neuroctl/Arm2Link-v0"}
    for env_id in available():
        meta = pretrained_info(env_id)
        assert meta["command"].startswith(f"neuroctl train {env_id} --algo")
        assert (_DIR / f"{env_id.split('/')[-1].lower()}.pt").stat().st_size < 200_000
        spec = json.loads((_DIR / f"{env_id.split('/')[-1].lower()}.json").read_text())
        assert spec["format"] == "neuroctl.policy/1"


def test_building_a_pretrained_policy_from_an_interrupted_run_copies_nothing(
    tmp_path, monkeypatch
):
    import importlib

    from neuroctl.train import run
    from neuroctl.train.result import TrainResult

    def interrupted_train(env_id, *, out_dir, **kwargs):  # Ctrl-C before the policy's export
        return TrainResult(
            env_id=env_id,
            algo=kwargs["algo"],
            activation=kwargs["activation"],
            seed=kwargs["seed"],
            steps=kwargs["steps"],
            steps_done=10,
            out_dir=out_dir,
            policy_path=None,
            checkpoint_path=out_dir / "checkpoint.pt",
            interrupted=True,
        )

    monkeypatch.setattr(run, "train", interrupted_train)
    # the module, not the function neuroctl.train.pretrained of the same name
    pretrained_module = importlib.import_module("neuroctl.train.pretrained")
    dest = tmp_path / "dest"
    with pytest.raises(RuntimeError, match="interrupted before it exported a policy"):
        pretrained_module.build_pretrained(ARM, work_dir=tmp_path / "work", dest=dest)
    assert list(dest.iterdir()) == []


def test_example_train_arm_relu_reaches_analyses_and_verifies(tmp_path):
    import control

    out = load_example("train_arm_relu").main(["--out", str(tmp_path)])
    assert out["success_rate"] >= 0.95
    assert 0.0 <= out["dead_fraction"] < 1.0
    policy, analysis = out["policy"], out["analysis"]

    # the analysed poles against python-control's own linearization of the nonlinear closed loop
    # (finite differences are exact here: the operating point sits inside one activation region)
    plant, op = analysis.linearization.plant, analysis.op
    assert not analysis.at_kink and analysis.state_radius > 1e-3

    def closed_loop(t, x, u, params):
        x_t = torch.as_tensor(x, dtype=torch.float64)
        y = plant.observe(x_t, torch.as_tensor(op.r, dtype=torch.float64))
        with torch.no_grad():
            command = plant.saturate(policy.double()(y))
        return plant.rhs(x_t, command).numpy()

    sys = control.nlsys(closed_loop, None, states=2, inputs=0, outputs=2)
    reference_poles = control.poles(control.linearize(sys, op.x, [], eps=1e-7))
    np.testing.assert_allclose(
        np.sort_complex(analysis.regions[0].poles), np.sort_complex(reference_poles), atol=1e-4
    )
    assert analysis.stable == bool(np.all(reference_poles.real < 0))

    # the verdict against brute force over the same box of observations
    verdict, limit = out["verification"], out["torque_limit"]
    lower, upper = out["box"]
    if verdict.status == "violated":
        cex = verdict.counterexample
        assert np.all(cex >= lower - 1e-12) and np.all(cex <= upper + 1e-12)
        with torch.no_grad():
            u = policy.double()(torch.as_tensor(cex, dtype=torch.float64)).numpy()
        assert abs(u[0]) > limit
    else:
        assert verdict.status == "holds"
        samples = np.random.default_rng(0).uniform(lower, upper, size=(200_000, 4))
        with torch.no_grad():
            u = policy.double()(torch.as_tensor(samples)).numpy()
        assert np.abs(u).max() <= limit


def test_diffsim_trains_a_smooth_policy_and_logs_no_dead_units_for_it(tmp_path):
    # a tanh network has no unit that can die: the dead-unit column is NaN, not an error
    res = train_diffsim(
        ARM,
        steps=4,
        seed=0,
        activation="tanh",
        log_every=2,
        out_dir=tmp_path / "tanh",
        task_options={"horizon": 10},
        **FAST,
    )
    assert res.steps_done == 4
    assert all(np.isnan(float(r["dead_fraction"])) for r in res.history)
    assert not any(isinstance(m, nn.ReLU) for m in res.policy().modules())
    assert any(isinstance(m, nn.Tanh) for m in res.policy().modules())


def _run(env_id, summary):
    """A finished run's result as the trainers write it (no training needed to read it)."""
    from neuroctl.train.result import TrainResult

    return TrainResult(
        env_id=env_id,
        algo="diffsim",
        activation="relu",
        seed=0,
        steps=3,
        steps_done=3,
        out_dir=Path("run"),
        policy_path=None,
        checkpoint_path=Path("run/checkpoint.pt"),
        summary=summary,
    )


def test_run_report_with_analysis_is_the_analyze_of_the_exported_policy():
    from neuroctl.train.result import policy_summary

    policy = neuroctl.pretrained(ARM)
    res = _run(ARM, {"score": 1.0, **policy_summary(ARM, policy)})
    plain, with_analysis = res.report(), res.report(analysis=True)
    direct = neuroctl.analyze(gym.make(ARM).unwrapped.plant, policy)
    assert with_analysis == (
        f"{plain}\n\nanalyze of the exported policy at the operating point of {ARM}:\n"
        f"{direct!r}"
    )
    assert "score: 1.0" in plain and "StabilityReport" not in plain


def test_run_report_names_the_env_without_its_module_and_says_why_analysis_is_missing():
    text = _run("_cli_toy:CliToyPlant-v0", {"analysis_text": "TEXT"}).report(analysis=True)
    assert text.endswith("\n\nanalyze of the exported policy at the operating point of "
                         "CliToyPlant-v0:\nTEXT")  # fmt: skip
    lost = _run(ARM, {"analysis_error": "no plant"})
    assert lost.report(analysis=True) == f"{lost.report()}\n\nanalyze not available: no plant"
    assert "analysis_error: no plant" in lost.report()  # among the summary's figures
    assert _run(ARM, {}).report(analysis=True) == _run(ARM, {}).report()
