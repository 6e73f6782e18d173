"""neuroctl.episodes: closed-loop episodes of a Gymnasium env and their metrics, measured against
a hand-written Gymnasium loop; the checks that an env fits the work asked of it."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs.arm import pd_gravity_controller

import neuroctl  # noqa: F401  (registers the env ids)
from neuroctl.episodes import (
    Controller,
    EpisodesResult,
    InputError,
    load_controller,
    require_boxes,
    require_plant,
    simulate_episodes,
    stability_report,
)

TOY = "_cli_toy"  # tests/_cli_toy.py, imported by the module:Env-v0 form


def _hand_episode(env, policy, seed: int) -> tuple[float, int, float]:
    """Return, steps and final angle error of one episode, by Gymnasium's own loop."""
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(policy(obs))
        total, steps, done = total + float(r), steps + 1, term or trunc
    return total, steps, abs(env.unwrapped.reference[0] - env.unwrapped.state[0])


def test_episodes_are_the_hand_written_loop_seed_by_seed():
    env = gym.make("neuroctl/Arm-v0", max_episode_steps=60)
    ctrl = load_controller("pd", env)
    result = simulate_episodes(env, ctrl, episodes=3, seed=5)
    reference = gym.make("neuroctl/Arm-v0", max_episode_steps=60)
    pd = pd_gravity_controller(reference.unwrapped.params)

    def policy(obs):
        with torch.no_grad():
            return pd(torch.as_tensor(obs, dtype=torch.float64)).numpy().astype(np.float32)

    assert [row["seed"] for row in result.rows] == [5, 6, 7]
    for row in result.rows:
        total, steps, final_error = _hand_episode(reference, policy, row["seed"])
        assert row["steps"] == steps == 60
        assert row["return"] == pytest.approx(total, rel=1e-9)
        assert row["final_error"] == pytest.approx(final_error, abs=1e-12)
    # the same seeds give the same episodes: the env is reset from each seed, not continued
    again = simulate_episodes(env, ctrl, episodes=1, seed=6)
    assert again.rows[0] == result.rows[1]


def test_episodes_result_as_json_and_as_a_table():
    env = gym.make("neuroctl/Arm-v0", max_episode_steps=20)
    result = simulate_episodes(env, load_controller("zero", env), episodes=2, seed=0)
    assert isinstance(result, EpisodesResult) and result.env_id == "neuroctl/Arm-v0"
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert list(doc) == ["env", "controller", "episodes"]
    assert doc["controller"] == "zero" and [e["seed"] for e in doc["episodes"]] == [0, 1]
    lines = result.report().splitlines()
    assert lines[0] == "neuroctl/Arm-v0 with zero (no torque)"
    columns = list(result.rows[0])
    assert lines[1].split() == columns and set(lines[2]) == {"-", " "}
    # one line per episode, the values at 4 significant digits under their columns
    assert len(lines) == 3 + len(result.rows)
    for line, row in zip(lines[3:], result.rows):
        cells = dict(zip(columns, line.split()))
        assert int(cells["seed"]) == row["seed"] and int(cells["steps"]) == 20
        assert cells["return"] == f"{row['return']:.4g}"


def test_episodes_of_an_env_without_a_plant_have_steps_and_return_only():
    env = gym.make(f"{TOY}:CliToyNoPlant-v0")
    result = simulate_episodes(env, load_controller("zero", env), seed=3)
    (row,) = result.rows
    assert list(row) == ["seed", "steps", "return"] and row["seed"] == 3


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"episodes": 0}, r"^episodes: expected an int >= 1, received 0"),
        ({"episodes": 2.0}, r"^episodes: expected an int >= 1, received 2.0"),
        ({"episodes": True}, r"^episodes: expected an int >= 1, received True"),
        ({"seed": -1}, r"^seed: expected an int >= 0, received -1"),
    ],
)
def test_episodes_bad_counts_name_the_argument(kwargs, pattern):
    env = gym.make("neuroctl/Arm-v0")
    with pytest.raises(InputError, match=pattern):
        simulate_episodes(env, load_controller("zero", env), **kwargs)


def test_episodes_need_a_resolved_controller():
    env = gym.make("neuroctl/Arm-v0")
    with pytest.raises(TypeError, match=r"^controller: expected a neuroctl.episodes.Controller"):
        simulate_episodes(env, torch.nn.Linear(4, 1))
    assert isinstance(load_controller("zero", env), Controller)


def test_require_plant_returns_the_envs_plant_or_says_what_needs_it():
    env = gym.make("neuroctl/Arm-v0")
    assert require_plant(env, "analyze") is env.unwrapped.plant
    pendulum = gym.make("Pendulum-v1")  # Gymnasium's own env, its plant registered by neuroctl
    assert require_plant(pendulum, "analyze").n_states == 2
    bare = gym.make(f"{TOY}:CliToyNoPlant-v0")
    with pytest.raises(InputError, match=r"^env CliToyNoPlant-v0: .*the dynamics that analyze"):
        require_plant(bare, "analyze")
    # the stability analysis of the env says the same
    with pytest.raises(InputError, match=r"^env CliToyNoPlant-v0: .*neuroctl.Plant"):
        stability_report(bare, None)


def test_require_boxes_names_the_space_that_is_not_a_box():
    require_boxes(gym.make("neuroctl/Arm-v0"), "simulate")
    with pytest.raises(InputError, match=r"^env CartPole-v1: expected a Box action space .*"):
        require_boxes(gym.make("CartPole-v1"), "simulate")


def test_controller_listing_shows_the_plants_own_controllers_as_text_and_data():
    from neuroctl.episodes import builtin_controllers, controller_listing

    env = gym.make("neuroctl/Arm-v0")
    text, data = controller_listing(env)
    expected = builtin_controllers(env)
    lines = text.splitlines()
    assert lines[0] == "built-in controllers of neuroctl/Arm-v0:"
    # one line per controller, name then description, in the order of builtin_controllers
    assert [ln.split()[0] for ln in lines[1:]] == list(expected)
    assert [ln.split(None, 1)[1] for ln in lines[1:]] == [d for d, _ in expected.values()]
    assert data["env"] == "neuroctl/Arm-v0"
    assert data["controllers"] == [{"name": k, "description": d} for k, (d, _) in expected.items()]
    json.dumps(data)  # plain JSON
