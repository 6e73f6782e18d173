"""``neuroctl verify --closed-loop``: the verdict is check_closed_loop's, a "holds" contains the
continuous trajectories (scipy ``solve_ivp`` at rtol 1e-10, atol 1e-12, written here), bad input
exits 2 naming the option."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _ode_replay import corners, scipy_closed_loop
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller

from neuroctl.cli import main
from neuroctl.verify import Box, always, check_closed_loop

LO, HI, STEPS = np.array([0.2, -0.1]), np.array([0.3, 0.1]), 50
BASE = ["verify", "Arm-v0", "-c", "pd", "--closed-loop", "--initial-lower", "0.2", "-0.1"]
BASE += ["--initial-upper", "0.3", "0.1", "--steps", str(STEPS)]
# the time-window property of the docs: |theta - target| <= 0.05 rad for t in [T0, T1]
ANGLE = ["--safe-lower", "-0.05", "-inf", "--safe-upper", "0.05", "inf"]
ANGLE_BOX = Box([-0.05, -np.inf], [0.05, np.inf])


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("window", "status", "code"), [((0.8, 1.0), "holds", 0), ((0.2, 0.3), "violated", 1)]
)
def test_verdict_is_check_closed_loop_s(capsys, window, status, code):
    argv = [*BASE, *ANGLE, "--window", *map(str, window)]
    got_code, out, _ = run(capsys, *argv, "--json")
    doc = json.loads(out)
    want = check_closed_loop(
        arm_plant(ArmParams()),
        pd_gravity_controller(ArmParams()),
        LO,
        HI,
        always(ANGLE_BOX, window=window),
        steps=STEPS,
    )
    assert (got_code, doc["status"]) == (code, status) and want.status == status
    assert doc["semantics"] == want.semantics == "continuous"
    assert doc["mode"] == "closed-loop" and doc["steps"] == STEPS
    if status == "violated":
        np.testing.assert_allclose(doc["counterexample"]["x0"], want.counterexample.x0)
        assert want.counterexample.replay().violated
    text_code, text, _ = run(capsys, *argv)
    assert text_code == code and f"closed loop: {status}" in text
    assert "semantics: continuous" in text and ("counterexample: x0 =" in text) == (code == 1)


def _replay(x0, dense=12):
    """Arm with the PD controller, command held over each period: samples and dense states."""
    plant, net = arm_plant(ArmParams()), pd_gravity_controller(ArmParams()).double()
    samples, between = scipy_closed_loop(plant, net, x0, STEPS, dense=dense)
    return samples, between, np.linspace(0.0, plant.dt, dense + 2)[1:-1]


def test_holds_contains_the_continuous_trajectories(capsys):
    code, out, _ = run(capsys, *BASE, *ANGLE, "--window", "0.8", "1.0", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "holds"
    lower, upper = np.min(doc["lower"], axis=0), np.max(doc["upper"], axis=0)
    tl, tu = np.min(doc["tube_lower"], axis=0), np.max(doc["tube_upper"], axis=0)
    x0 = np.concatenate([corners(LO, HI), np.random.default_rng(3).uniform(LO, HI, (20, 2))])
    samples, between, t_in = _replay(x0)
    assert np.all((samples >= lower) & (samples <= upper))
    assert np.all((between >= tl[:, None]) & (between <= tu[:, None]))
    times = np.arange(STEPS)[:, None] * 0.02 + t_in  # (T, dense)
    in_window = (times >= 0.8) & (times <= 1.0)
    assert np.all(np.abs(between[:, in_window, 0]) <= 0.05)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--safe-lower", "-0.05", "-inf", "1", "--safe-upper", "0.05"],
            "--safe-lower: expected 1 or 2",
        ),
        (["--safe-lower", "1", "--safe-upper", "0"], "expected --safe-lower <= --safe-upper"),
        ([*ANGLE, "--window", "0.8", "1.5"], "--window/--at/--eventually"),
        (
            ["--goal-lower", "-0.1", "--goal-upper", "0.1"],
            "--at/--eventually: expected exactly one",
        ),
        ([*ANGLE, "--max-abs", "1"], "--max-abs: not allowed with --closed-loop"),
        (["--initial-upper", "0.1", "0.1", *ANGLE], "expected --initial-lower <= --initial-upper"),
    ],
)
def test_bad_input_exits_2_naming_the_option(capsys, extra, needle):
    code, out, err = run(capsys, *BASE, *extra)
    assert code == 2 and needle in err and "\n" not in err.strip()


def test_closed_loop_options_need_closed_loop(capsys):
    code, _, err = run(capsys, "verify", "Arm-v0", "-c", "pd", "--steps", "3", "--max-abs", "1")
    assert code == 2 and "--steps: a closed-loop option, only with --closed-loop" in err
