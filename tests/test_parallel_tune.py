"""Ray Tune sweep of train_diffsim: a trial that fails resumes from its checkpoint and ends with
the policy of the uninterrupted run."""

import json
import os

import pytest
import torch

tune = pytest.importorskip(
    "ray.tune", reason='Ray Tune is not installed (pip install "neuroctl[dist]")'
)
ray = pytest.importorskip("ray")

from neuroctl.train import train_diffsim  # noqa: E402
from neuroctl.train.tune import diffsim_trainable  # noqa: E402

ARM = "neuroctl/Arm-v0"
KW = dict(
    hidden=(8, 8),
    batch=16,
    analyze=False,
    steps=8,
    checkpoint_every=4,
    task_options={"horizon": 10},
)


def test_failed_trial_resumes_from_its_tune_checkpoint(tmp_path):
    marker = str(tmp_path / "failed")

    def fail_once(step, policy, cost):
        if step == 6 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("injected failure after the step-4 checkpoint")

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(diffsim_trainable, {"cpu": 1}),
            param_space={
                "env_id": ARM,
                "seed": tune.grid_search([1, 2]),
                "callback": fail_once,
                **KW,
            },
            run_config=tune.RunConfig(
                storage_path=str(tmp_path / "tune"),
                failure_config=tune.FailureConfig(max_failures=1),
                verbose=0,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert os.path.exists(marker) and not results.errors
    # the trial that failed at step 6 started again from its step-4 checkpoint, not from 0
    assert sorted(r.metrics["restored_step"] for r in results) == [0, 4]
    for r in results:
        assert r.metrics["done"] and r.metrics["steps"] == 8
        straight = train_diffsim(
            ARM,
            seed=r.config["seed"],
            out_dir=tmp_path / str(r.config["seed"]),
            progress=False,
            tensorboard=False,
            **KW,
        )
        with r.checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "checkpoint.pt"), weights_only=True)
        assert int(state["step"]) == 8
        ref = torch.load(straight.checkpoint_path, weights_only=True)
        assert ref["policy"].keys() == state["policy"].keys()
        for k, v in ref["policy"].items():
            assert torch.equal(v, state["policy"][k]), k


def test_failed_rl_trial_resumes_from_its_tune_checkpoint(tmp_path):
    from stable_baselines3.common.callbacks import BaseCallback

    from neuroctl.train.tune import rl_trainable

    marker = str(tmp_path / "failed")

    class FailOnce(BaseCallback):
        def _on_step(self):
            if self.num_timesteps >= 100 and not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("injected failure after the 64-step checkpoint")
            return True

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(rl_trainable, {"cpu": 1}),
            param_space={
                "env_id": ARM,
                "seed": tune.grid_search([1, 2]),
                "callback": FailOnce(),
                "hidden": (8, 8),
                "n_envs": 2,
                "steps": 192,
                "checkpoint_every": 64,
                "algo_kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
                "eval_episodes": 0,
                "analyze": False,
            },
            run_config=tune.RunConfig(
                storage_path=str(tmp_path / "tune"),
                failure_config=tune.FailureConfig(max_failures=1),
                verbose=0,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert os.path.exists(marker) and not results.errors
    # the trial that failed past env step 100 started again from its step-64 checkpoint
    assert sorted(r.metrics["restored_step"] for r in results) == [0, 64]
    for r in results:
        assert r.metrics["done"] and r.metrics["steps"] == 192
        with r.checkpoint.as_directory() as d:
            with open(os.path.join(d, "run.json")) as f:
                state = json.load(f)
            assert state["num_timesteps"] == 192
            assert os.path.exists(os.path.join(d, "policy.pt"))
