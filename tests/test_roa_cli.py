"""`neuroctl verify ENV -c CONTROLLER --roa` against the library call and simulation."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np

from neuroctl.cli import main
from neuroctl.episodes import env_plant, load_controller
from neuroctl.verify.roa import closed_loop_rollout

ARGS = ["verify", "neuroctl/Arm-v0", "-c", "pretrained", "--roa", "--lower", "-1", "-3",
        "--upper", "1", "3", "--timeout", "20"]


def test_roa_json_certificate_converges_in_simulation(capsys):
    assert main([*ARGS, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["certified"] and d["semantics"] == "discrete" and d["level"] > 0
    P, x_star, c = np.array(d["P"]), np.array(d["x_star"]), d["level"]
    env = gym.make("neuroctl/Arm-v0")
    plant, ctrl = env_plant(env), load_controller("pretrained", env).module
    rng = np.random.default_rng(0)
    x = rng.uniform([-1, -3], [1, 3], (20000, 2))
    e = x - x_star
    x = x[np.einsum("bi,ij,bj->b", e, P, e) <= c][:2000]
    assert len(x) > 100
    xs = closed_loop_rollout(plant, ctrl, x, 1500)
    assert np.all(np.linalg.norm(xs[:, -1] - x_star, axis=1) < 1e-6)


def test_roa_text_and_bad_input(capsys):
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "region of attraction, discrete semantics" in out and "level" in out
    assert main(ARGS[:5]) == 2  # no state box
    assert "--lower/--upper: expected the state box" in capsys.readouterr().err
    assert main([*ARGS, "--max-abs", "1"]) == 2


def test_demo_report_row_is_the_command_lines_certificate(capsys):
    """The demo's region-of-attraction row (neuroctl.demo) reports the certificate that
    `verify --roa` prints for the same controller and box."""
    from types import SimpleNamespace

    from neuroctl import demo

    tables, notes = [], []
    stub = SimpleNamespace(quick=True, summary={}, note=lambda sec, text: notes.append(text))
    sec = SimpleNamespace(add_table=lambda rows, caption: tables.append((rows, caption)))
    env = gym.make("neuroctl/Arm-v0")
    demo._roa_row(stub, sec, env, load_controller("pretrained", env))
    assert not notes and len(tables) == 1
    row = stub.summary["region_of_attraction"]
    assert main([*ARGS, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert row["certified"] and row["semantics"] == "discrete"
    assert row["level"] == d["level"] and row["limited by"] == d["limited_by"]
    np.testing.assert_allclose(row["fraction of the box"], d["volume"] / 12.0, rtol=1e-12)
