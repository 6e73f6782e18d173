"""What the ``neuroctl`` command promises besides its errors: ``--steps`` honoured, plots where it
says, the env's own box for ``verify``, non-strict bounds, any Gymnasium env (the module:Env-v0
form included), JSON everywhere with a stated inf/nan convention, a quiet closed pipe, a fast
``--help`` with help text for every option."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl.cli import build_parser, main

TESTS = Path(__file__).resolve().parent
TOY = "_cli_toy"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def strict_json(text: str):
    """``json.loads`` that refuses the non-standard tokens NaN, Infinity and -Infinity."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def odd_relu_net(tmp_path, name="odd"):
    """u = relu(p) - relu(-p) = p on the toy observation [p, v]: max |u| over [-2, 2]^2 is 2."""
    from neuroctl.train.export import save_policy

    first, last = nn.Linear(2, 2).double(), nn.Linear(2, 1).double()
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[1.0, -1.0]]))
        last.bias.zero_()
    return str(save_policy(nn.Sequential(first, nn.ReLU(), last), tmp_path / name))


def hand_rollout(env, policy, seed, steps):
    obs, _ = env.reset(seed=seed)
    total, n = 0.0, 0
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(policy(obs))
        total, n = total + float(r), n + 1
        if term or trunc:
            break
    return total, n


# --- controllers listed, as text and as JSON --------------------------------------------------


def test_controller_list_is_json_with_json(capsys):
    from neuroctl.episodes import builtin_controllers

    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", "list", "--json")
    assert code == 0
    doc = strict_json(out)
    assert doc["env"] == "neuroctl/Arm-v0"
    import gymnasium as gym

    expected = builtin_controllers(gym.make("neuroctl/Arm-v0"))
    assert [c["name"] for c in doc["controllers"]] == list(expected)
    assert [c["description"] for c in doc["controllers"]] == [d for d, _ in expected.values()]
    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", "list")
    assert code == 0 and all(name in out for name in expected)


# --- simulate: --steps beyond the time limit is honoured --------------------------------------


def test_steps_above_the_time_limit_are_run(capsys):
    import gymnasium as gym
    from neuroctl.envs.arm import pd_gravity_controller

    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", "pd", "--steps", "400", "--json")
    assert code == 0
    episode = strict_json(out)["episodes"][0]
    env = gym.make("neuroctl/Arm-v0", max_episode_steps=400)
    assert gym.make("neuroctl/Arm-v0").spec.max_episode_steps == 150  # the registered limit
    pd = pd_gravity_controller(env.unwrapped.params)

    def policy(obs):
        with torch.no_grad():
            return pd(torch.as_tensor(obs, dtype=torch.float64)).numpy().astype(np.float32)

    total, n = hand_rollout(env, policy, 0, 400)
    assert episode["steps"] == n == 400
    assert episode["return"] == pytest.approx(total, rel=1e-9)
    # and fewer steps than the limit stop there
    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", "pd", "--steps", "7", "--json")
    assert strict_json(out)["episodes"][0]["steps"] == 7


# --- analyze: the plot lands where the command says -------------------------------------------


def test_plot_is_written_where_the_command_says(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "analyze", "Arm-v0", "-c", "pd", "--plot", "poles.png")
    assert code == 0
    line = [ln for ln in out.splitlines() if ln.startswith("plot: ")][0]
    printed = Path(line[len("plot: ") :])
    assert printed.is_absolute() and printed == (tmp_path / "poles.png").resolve()
    assert printed.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poles.png"]


def test_parse_time_probes_leave_nothing_behind(capsys, tmp_path):
    target = tmp_path / "new" / "deeper"
    code, _, err = run(capsys, "demo", "--out", target, "--json", "--nope")
    assert code == 2  # the bad option, after --out was probed
    assert list(tmp_path.iterdir()) == []
    code, _, _ = run(capsys, "analyze", "Arm-v0", "-c", "pd", "--plot", tmp_path / "x.png", "-x")
    assert code == 2 and list(tmp_path.iterdir()) == []


# --- any Gymnasium env, the module:Env-v0 form included ---------------------------------------


def test_module_form_env_is_analyzed_from_its_plant(capsys):
    # mass-spring-damper with no input: poles are the roots of s^2 + s + 1
    code, out, _ = run(capsys, "analyze", f"{TOY}:CliToyPlant-v0", "-c", "zero", "--json")
    assert code == 0
    rep = strict_json(out)
    assert rep["env"] == "CliToyPlant-v0" and rep["verdict"] == "stable"
    poles = np.sort_complex([complex(a, b) for a, b in rep["regions"][0]["poles"]])
    np.testing.assert_allclose(poles, np.sort_complex(np.roots([1.0, 1.0, 1.0])), atol=1e-12)
    # JSON convention: an unbounded validity radius is the string "inf", never a bare token
    assert rep["radius"] == "inf"


def test_module_form_env_without_plant_is_simulated(capsys):
    import gymnasium as gym

    code, out, _ = run(
        capsys, "simulate", f"{TOY}:CliToyNoPlant-v0", "-c", "zero", "--seed", "3", "--json"
    )
    assert code == 0
    episode = strict_json(out)["episodes"][0]
    total, n = hand_rollout(
        gym.make("CliToyNoPlant-v0"), lambda obs: np.zeros(1, np.float32), 3, 10_000
    )
    assert (episode["steps"], episode["return"]) == (n, pytest.approx(total, rel=1e-12))


# --- verify: the env's own box, non-strict bounds ---------------------------------------------


def test_verify_without_a_box_uses_the_envs_box_and_says_so(capsys, tmp_path):
    path = odd_relu_net(tmp_path)
    code, out, _ = run(capsys, "verify", f"{TOY}:CliToyPlant-v0", "-c", path, "--json")
    doc = strict_json(out)
    query = doc["queries"][0]
    assert query["lower"] == [-2.0, -2.0] and query["upper"] == [2.0, 2.0]
    assert query["box"] == "the observation box of CliToyPlant-v0"
    # the default property is the action box |u| <= 5, and |u| <= 2 on the box: it holds
    assert (code, doc["status"]) == (0, "holds")
    code, out, _ = run(capsys, "verify", f"{TOY}:CliToyPlant-v0", "-c", path)
    assert "on the observation box of CliToyPlant-v0: [-2, 2] x [-2, 2]" in out


def test_a_command_exactly_at_the_bound_satisfies_it(capsys, tmp_path):
    path = odd_relu_net(tmp_path)  # u = p on p in [-2, 2]: |u| reaches 2 exactly, at p = +-2
    env = f"{TOY}:CliToyPlant-v0"
    for prop in (["--max-abs", "2"], ["--output-upper", "2"], ["--output-lower", "-2"]):
        code, out, _ = run(capsys, "verify", env, "-c", path, *prop, "--json")
        assert (code, strict_json(out)["status"]) == (0, "holds"), prop
    code, out, _ = run(capsys, "verify", env, "-c", path, "--max-abs", "1.999", "--json")
    doc = strict_json(out)
    assert (code, doc["status"]) == (1, "violated")
    x = np.array(doc["queries"][0]["counterexample"])
    assert np.all(np.abs(x) <= 2.0) and abs(x[0]) > 1.999  # u = p, by hand


def test_verify_uses_the_rings_documented_box(capsys, tmp_path):
    import gymnasium as gym

    import neuroctl  # noqa: F401
    from neuroctl.train.export import save_policy

    space = gym.make("neuroctl/RingRoad-v0").observation_space
    assert np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))
    net = nn.Sequential(nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():  # u = 0.1 relu(gap) on the box: at most 0.1 * high[0]
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.fill_(0.1)
        net[2].bias.zero_()
    path = str(save_policy(net, tmp_path / "ring"))
    code, out, _ = run(capsys, "verify", "RingRoad-v0", "-c", path, "--json", "--timeout", "20")
    query = strict_json(out)["queries"][0]
    np.testing.assert_array_equal(query["lower"], space.low.astype(float))
    np.testing.assert_array_equal(query["upper"], space.high.astype(float))
    assert query["box"] == "the observation box of neuroctl/RingRoad-v0"
    assert code == (0 if 0.1 * float(space.high[0]) <= 1.0 else 1)


# --- JSON conventions ------------------------------------------------------------------------


def test_json_numbers_and_the_non_finite_convention(capsys):
    from neuroctl.cli import _print_json

    data = {
        "a": np.float32(0.5),
        "b": [math.inf, -math.inf, math.nan],
        "c": np.array([1, 2]),
        "d": 1 + 2j,
        "e": np.bool_(True),
        "f": torch.tensor([3.0]),
    }
    _print_json(data)
    assert json.loads(capsys.readouterr().out) == {
        "a": 0.5,
        "b": ["inf", "-inf", "nan"],
        "c": [1, 2],
        "d": [1.0, 2.0],
        "e": True,
        "f": [3.0],
    }
    assert "inf" in build_parser().epilog and '"inf"' in build_parser().epilog


# --- the process: a closed pipe, --help -------------------------------------------------------


def _env():
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def test_a_closed_pipe_ends_quietly():
    # ~300 kB of JSON, far more than a pipe holds: the writer meets the closed pipe
    cmd = [
        sys.executable,
        "-m",
        "neuroctl.cli",
        "simulate",
        f"{TOY}:CliToyNoPlant-v0",
        "-c",
        "zero",
    ]
    cmd += ["--steps", "1", "--episodes", "3000", "--json"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()) as proc:
        head = [proc.stdout.readline() for _ in range(3)]
        proc.stdout.close()  # `| head -3`
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert head[0].strip() == b"{"
    assert err == "", err
    assert code == 141


def test_help_is_fast_and_imports_nothing_heavy():
    probe = (
        "import sys, contextlib, io\n"
        "from neuroctl.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'control', 'matplotlib', 'scipy') "
        "if m in sys.modules]\n"
        "print(code, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert out.stdout.strip() == "0 []", out.stdout + out.stderr
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "neuroctl.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0 and "simulate" in proc.stdout
    assert elapsed < 3.0, elapsed  # measured well under 1 s; loose for a loaded machine


def test_env_keywords_are_python_literals_or_plain_strings(tmp_path):
    train = ["train", "Arm-v0", "--out", str(tmp_path / "run")]
    for command in (["simulate", "Arm-v0", "-c", "pd"], train):
        argv = [*command, "-e", "a=1", "-e", "b=[1, 2.5]", "-e", "c=text", "-e", "d='q'"]
        args = build_parser().parse_args(argv)
        assert args.env_kwarg == {"a": 1, "b": [1, 2.5], "c": "text", "d": "q"}
        assert build_parser().parse_args(command).env_kwarg is None


def test_every_subcommand_and_option_has_help():
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(helps) == set(sub.choices) and all(helps.values())
    for name, p in [("neuroctl", parser), *sub.choices.items()]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_import_is_light_and_lazy_functions_are_not_hidden_by_their_modules():
    probe = (
        "import sys\n"
        "import neuroctl\n"
        "light = 'torch' not in sys.modules\n"
        "from neuroctl.simulate import controller_dtype  # the module of the same name first\n"
        "import neuroctl.simulate\n"
        "print(light, callable(neuroctl.simulate), neuroctl.simulate.__module__, "
        "neuroctl.load.__module__, type(sys.modules['neuroctl.simulate']).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [
        "True",
        "True",
        "neuroctl.simulate",
        "neuroctl.files",
        "module",
    ], out.stdout + out.stderr


def test_train_on_a_module_form_env_writes_a_command_that_reruns(capsys, tmp_path):
    env = f"{TOY}:CliToyPlant-v0"
    argv = ["train", env, "--algo", "diffsim", "--steps", "3", "--out", tmp_path / "run"]
    code, out, _ = run(capsys, *argv, "--json", "--no-progress")
    assert code == 0
    result = strict_json(out)
    assert f"neuroctl train {env} " in result["command"]
    # the summary's analysis is the one `neuroctl analyze` computes on the exported file
    code, out, _ = run(capsys, "analyze", env, "-c", result["policy_path"], "--json")
    direct = strict_json(out)
    assert direct["verdict"] == result["summary"]["analysis"]["verdict"]
    np.testing.assert_allclose(
        direct["regions"][0]["poles"], result["summary"]["analysis"]["regions"][0]["poles"]
    )


# --- Gymnasium's Pendulum-v1: no plant of its own, analysed through its registered one


def test_pendulum_v1_sb3_policy_is_analysed_and_verified(capsys, tmp_path):
    import gymnasium as gym
    from neuroctl.envs import plant_of
    from stable_baselines3 import PPO

    import neuroctl
    from neuroctl.train import export_policy

    model = PPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [8, 8]},
    )
    model.save(tmp_path / "ppo.zip")
    code, out, _ = run(capsys, "analyze", "Pendulum-v1", "-c", str(tmp_path / "ppo.zip"), "--json")
    assert code in (0, 1, 3)
    doc = strict_json(out)
    # the same analysis through the library on the registered plant and the exported actor
    policy = export_policy(model)
    report = neuroctl.analyze(plant_of(gym.make("Pendulum-v1")), policy)
    expected = np.sort_complex(np.asarray(report.regions[0].poles))
    got = doc["regions"][0]["poles"]
    got = np.sort_complex(np.array([complex(*p) if isinstance(p, list) else p for p in got]))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert doc["verdict"] == report.verdict
    code, out, _ = run(
        capsys, "verify", "Pendulum-v1", "-c", str(tmp_path / "ppo.zip"), "--max-abs", "2", "--json"
    )
    assert code in (0, 1, 3) and strict_json(out)["status"] in ("holds", "violated", "unknown")
