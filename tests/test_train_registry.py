"""Training facts registered with the env (``neuroctl.envs.register_training``), for an env of
one's own in the ``module:Env-v0`` form (``tests/_cli_toy.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neuroctl.envs import register_training
from neuroctl.envs.hyperparams import DEFAULT_HYPERPARAMS, ENV_HYPERPARAMS
from neuroctl.envs.registry import TRAINING_FACTS, rl_hyperparams

import neuroctl  # noqa: F401 - registers the env ids
from neuroctl.train import train_diffsim
from neuroctl.train.diffsim import diffsim_policy
from neuroctl.train.tasks import DiffsimTask, make_task

TOY = "_cli_toy:CliToyPlant-v0"
CALLS: list = []


def spring_task(env_id, env_kwargs=None, *, window=40):
    """Drive the spring to rest from ``[-1, 1]^2``: cost ``p^2 + v^2`` per step."""
    from _cli_toy import spring_plant

    CALLS.append((env_id, window))
    plant = spring_plant()

    def sample(rng, n):
        return torch.as_tensor(rng.uniform(-1.0, 1.0, (n, 2)), dtype=torch.float64), None, None

    return DiffsimTask(
        env_id=env_id,
        plant=plant,
        sample=sample,
        cost=lambda x, u, r, ctx: x[..., 0] ** 2 + x[..., 1] ** 2,
        window=window,
        action_low=plant.input_lower.copy(),
        action_high=plant.input_upper.copy(),
        n_obs=plant.n_outputs,
    )


def rollout_cost(policy, x0: np.ndarray, steps: int = 40) -> float:
    """Mean over ``x0`` of ``sum_k |x_k|^2`` along ``plant.step`` under ``policy``, one state at
    a time (a plain loop, not the batched training rollout)."""
    from _cli_toy import spring_plant

    plant = spring_plant()
    dtype = next(policy.parameters()).dtype
    total = 0.0
    with torch.no_grad():
        for x in x0:
            x = torch.as_tensor(x, dtype=torch.float64)
            for _ in range(steps):
                total += float(x @ x)
                u = policy(plant.observe(x[None], None).to(dtype))[0].to(torch.float64)
                x = plant.step(x, u.clamp(-5.0, 5.0))
    return total / len(x0)


@pytest.fixture
def registry_restored():
    facts = {k: dict(v) for k, v in TRAINING_FACTS.items()}
    hyper = {k: dict(v) for k, v in ENV_HYPERPARAMS.items()}
    yield
    TRAINING_FACTS.clear()
    TRAINING_FACTS.update(facts)
    ENV_HYPERPARAMS.clear()
    ENV_HYPERPARAMS.update(hyper)


def test_a_registered_task_of_an_own_env_is_the_one_diffsim_trains_on(tmp_path, registry_restored):
    register_training(
        TOY,
        task=f"{__name__}:spring_task",
        evaluate=lambda policy, env_id, *, seed, env_kwargs: {
            "held_out_cost": rollout_cost(
                policy, np.random.default_rng(seed).uniform(-1, 1, (8, 2))
            )
        },
    )
    CALLS.clear()
    res = train_diffsim(
        TOY,
        hidden=(8,),
        steps=25,
        batch=16,
        seed=0,
        lr=2e-2,
        lr_final=2e-2,
        out_dir=tmp_path / "toy",
        task_options={"window": 30},
        progress=False,
        tensorboard=False,
        analyze=False,
    )
    assert CALLS == [(TOY, 30)]  # the registered factory, with the task options
    x0 = np.random.default_rng(123).uniform(-1.0, 1.0, (8, 2))
    untrained = diffsim_policy(spring_task(TOY), (8,), "relu", 0)
    before, after = rollout_cost(untrained, x0), rollout_cost(res.policy(), x0)
    assert after < 0.9 * before, (before, after)
    assert "held_out_cost" in res.summary  # the registered criterion is the task's evaluate


def test_the_bare_id_and_the_module_form_name_one_entry(registry_restored):
    register_training("CliToyPlant-v0", task=spring_task)
    assert make_task(TOY, window=7).window == 7


def test_an_env_without_a_task_or_plant_env_says_how_to_register_one():
    import _cli_toy  # noqa: F401 - registers CliToyNoPlant-v0

    with pytest.raises(ValueError, match=r"register_training\('CliToyNoPlant-v0', task=factory\)"):
        make_task("CliToyNoPlant-v0")


def test_registered_hyperparams_are_merged_over_the_defaults(registry_restored):
    register_training(TOY, hyperparams={"sac": {"gamma": 0.5, "tau": 0.01}})
    got = rl_hyperparams(TOY, "sac")
    assert got == {**DEFAULT_HYPERPARAMS["sac"], "gamma": 0.5, "tau": 0.01}
    assert rl_hyperparams(TOY, "ppo") == DEFAULT_HYPERPARAMS["ppo"]  # no entry: the defaults
    assert rl_hyperparams("CliToyNoPlant-v0", "sac") == DEFAULT_HYPERPARAMS["sac"]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(task="not an entry point"), "task: expected a callable"),
        (dict(evaluate=3), "evaluate: expected a callable"),
        (dict(hyperparams={"dqn": {}}), "hyperparams: expected {algo"),
    ],
)
def test_bad_registrations_name_the_argument(kwargs, needle):
    with pytest.raises(TypeError, match=needle.replace("{", r"\{")):
        register_training(TOY, **kwargs)
