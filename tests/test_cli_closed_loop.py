"""``neuroctl verify --closed-loop``: the command line decides what ``check_closed_loop`` decides,
and its "holds" contains the continuous plant's trajectories (scipy ``solve_ivp``, rtol 1e-10,
atol 1e-12, written here), its "violated" is a trajectory that scipy confirms."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs import plant_of
from scipy.integrate import solve_ivp

from neuroctl.cli import main
from neuroctl.train.pretrained import pretrained
from neuroctl.verify import check_closed_loop
from neuroctl.verify.temporal import Box, always

INITIAL = (np.array([0.2, -0.01]), np.array([0.22, 0.01]))
STEPS = 50  # 1 s of the arm at dt = 0.02 s
#: the time-window property: |theta| <= 0.1 rad for t in [0.5, 1] s
WINDOW_ARGS = [
    "--safe-lower", "-0.1", "-inf", "--safe-upper", "0.1", "inf", "--safe-window", "0.5", "1",
]  # fmt: skip


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def closed_loop_args(*extra):
    lo, hi = INITIAL
    return [
        "verify", "Arm-v0", "-c", "pretrained", "--closed-loop",
        "--initial-lower", *map(str, lo), "--initial-upper", *map(str, hi),
        "--steps", str(STEPS), "--timeout", "60", *extra,
    ]  # fmt: skip


def arm_and_policy():
    env = gym.make("neuroctl/Arm-v0")
    plant = plant_of(env)
    env.close()
    return plant, pretrained("neuroctl/Arm-v0").double()


def scipy_rollout(plant, net, x0, steps, dense=9):
    """Per control period one solve_ivp of the stacked ODE, the saturated command held."""
    x = np.array(x0, dtype=np.float64)
    N, n = x.shape
    r = torch.as_tensor(np.broadcast_to(plant.nominal_reference, (N, plant.n_references)).copy())
    t_in = np.linspace(0.0, plant.dt, dense + 2)[1:-1]
    samples, between = [x.copy()], []
    for _ in range(steps):
        with torch.no_grad():
            u = plant.saturate(net(plant.observe(torch.as_tensor(x), r))).numpy()

        def f(t, z, u=u):
            return np.asarray(plant.rhs(z.reshape(N, n), u)).reshape(-1)

        sol = solve_ivp(
            f, (0.0, plant.dt), x.reshape(-1), method="DOP853", rtol=1e-10, atol=1e-12,
            dense_output=True,
        )  # fmt: skip
        assert sol.success
        between.append(sol.sol(t_in).T.reshape(dense, N, n).transpose(1, 0, 2))
        x = sol.y[:, -1].reshape(N, n)
        samples.append(x.copy())
    return np.stack(samples, 1), np.stack(between, 1)


def test_time_window_property_holds_as_check_closed_loop_says_and_contains_scipy(capsys):
    code, out, err = run(capsys, *closed_loop_args(*WINDOW_ARGS, "--json"))
    assert err == "" and code == 0
    doc = json.loads(out)
    assert doc["status"] == "holds" and doc["semantics"] == "continuous"
    assert doc["spec"]["window"] == [0.5, 1.0]
    # the library call with the same property gives the same verdict
    plant, net = arm_and_policy()
    lib = check_closed_loop(
        plant, net, *INITIAL, always(Box([-0.1, -np.inf], [0.1, np.inf]), (0.5, 1.0)),
        steps=STEPS, timeout=60,
    )  # fmt: skip
    assert lib.status == doc["status"] and lib.semantics == doc["semantics"]
    # the proof's sets and tubes contain trajectories of the continuous plant, and the
    # property itself holds on them
    rng = np.random.default_rng(0)
    lo, hi = INITIAL
    corner = np.array(np.meshgrid(*zip(lo, hi))).reshape(2, -1).T
    x0 = np.concatenate([corner, rng.uniform(lo, hi, (2000, 2))])
    samples, between = scipy_rollout(plant, net, x0, STEPS)
    L, U = np.array(doc["lower"]).min(0), np.array(doc["upper"]).max(0)
    TL, TU = np.array(doc["tube_lower"]).min(0), np.array(doc["tube_upper"]).max(0)
    assert np.all(samples >= L) and np.all(samples <= U)
    assert np.all(between >= TL[None, :, None]) and np.all(between <= TU[None, :, None])
    t = np.arange(STEPS + 1) * plant.dt
    inside = (t >= 0.5 - 1e-12) & (t <= 1.0 + 1e-12)
    assert np.abs(samples[:, inside, 0]).max() <= 0.1
    assert np.abs(between[:, 25:, :, 0]).max() <= 0.1  # periods inside [0.5, 1] s


def test_violated_comes_with_a_trajectory_that_scipy_confirms(capsys):
    # |theta| <= 0.15 over the whole horizon: the initial box itself starts at 0.2 rad
    code, out, _ = run(
        capsys,
        *closed_loop_args("--safe-lower", "-0.15", "-inf", "--safe-upper", "0.15", "inf"),
    )
    assert code == 1 and ": violated" in out and "semantics: continuous" in out
    code, out, _ = run(
        capsys,
        *closed_loop_args("--safe-lower", "-0.15", "-inf", "--safe-upper", "0.15", "inf", "--json"),
    )
    doc = json.loads(out)
    x0 = np.array(doc["counterexample"]["x0"])
    plant, net = arm_and_policy()
    samples, between = scipy_rollout(plant, net, x0[None], STEPS)
    assert np.abs(samples[0, :, 0]).max() > 0.15


def test_goal_at_a_time_and_discrete_semantics_are_named(capsys):
    code, out, _ = run(
        capsys,
        *closed_loop_args(
            "--goal-lower", "-0.05", "-0.5", "--goal-upper", "0.05", "0.5", "--goal-at", "1",
            "--semantics", "discrete", "--json",
        ),
    )  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "holds" and doc["semantics"] == "discrete"
    assert doc["spec"]["op"] == "at" and doc["spec"]["time"] == 1.0
    # the discrete map from the corners reaches the goal at t = 1 s (independent replay)
    plant, net = arm_and_policy()
    lo, hi = INITIAL
    x = torch.as_tensor(np.array(np.meshgrid(*zip(lo, hi))).reshape(2, -1).T)
    r = torch.zeros(x.shape[0], 1, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(STEPS):
            x = plant.step(x, plant.saturate(net(plant.observe(x, r))))
    assert np.abs(x.numpy()[:, 0]).max() <= 0.05


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--safe-lower", "-1", "--safe-upper", "1", "--safe-window", "0", "5"], "horizon"),
        (["--goal-lower", "-1", "--goal-upper", "1"], "--goal-at/--goal-window"),
        (["--safe-lower", "-1"], "--safe-upper: expected with --safe-lower"),
        (["--safe-lower", "1", "--safe-upper", "-1"], "expected lower <= upper"),
        (["--safe-lower", "-1", "-1", "-1", "--safe-upper", "1"], "--safe-lower: expected"),
        ([], "expected a property"),
        (["--lower", "0", "--safe-lower", "-1", "--safe-upper", "1"], "--lower: not allowed"),
    ],
)
def test_bad_closed_loop_input_is_exit_2_naming_the_option(capsys, extra, fragment):
    code, out, err = run(capsys, *closed_loop_args(*extra))
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_closed_loop_options_without_the_mode_are_refused(capsys):
    code, _, err = run(capsys, "verify", "Arm-v0", "-c", "pretrained", "--steps", "10")
    assert code == 2 and "--steps: used with --closed-loop only" in err
