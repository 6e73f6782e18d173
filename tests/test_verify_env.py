"""neuroctl.verify_env: verification questions from plain values. Bad values raise InputError
naming the argument; the results are those of check / check_closed_loop / region_of_attraction
called directly, and their summaries say what those results hold."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller
from torch import nn

import neuroctl  # noqa: F401  (registers the env ids)
from neuroctl.episodes import InputError, env_plant, load_controller
from neuroctl.verify import Box, Spec, always, check, check_closed_loop, region_of_attraction
from neuroctl.verify_env import (
    closed_loop_query,
    observation_box,
    output_spec,
    region_of_attraction_box,
    state_box,
    verify_env,
)


@pytest.fixture(scope="module")
def arm_env():
    env = gym.make("neuroctl/Arm-v0")  # observation [error, omega, sin, cos]: the first two open
    yield env
    env.close()


def _slope_net():
    """``u = 4 relu(e + 0.5) - 2``, increasing in the error e: over e in [-1, 1] its range is
    [-2, 4], reached at e = -1 (and below -0.5) and e = 1."""
    net = nn.Sequential(nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        net[0].bias.fill_(0.5)
        net[2].weight.fill_(4.0)
        net[2].bias.fill_(-2.0)
    return net


# --- errors name the argument -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, r"^lower and upper: expected a finite box, .* 0 \(error\), 1 \(omega\)"),
        ({"lower": -1.0}, r"^upper: expected a finite box"),
        ({"lower": 1.0, "upper": 0.0}, r"^lower/upper: expected lower <= upper, .* component 0"),
        ({"lower": [0, 0], "upper": 1.0}, r"^lower: expected 1 or 4 values, received 2"),
        ({"lower": "a", "upper": 1.0}, r"^lower: expected numbers"),
    ],
)
def test_observation_box_errors_name_the_argument(arm_env, kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        observation_box(arm_env, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_abs": 1.0, "output_lower": 0.0}, r"^max_abs: not allowed with output_lower"),
        ({"max_abs": -1.0}, r"^max_abs: expected values >= 0"),
        ({"max_abs": [1.0, 2.0]}, r"^max_abs: expected 1 value, received 2"),
        ({"output_lower": 5.0, "output_upper": -5.0}, r"^output_lower/output_upper: expected"),
        ({"output_upper": np.inf}, r"^output_upper: .*finite"),
    ],
)
def test_output_spec_errors_name_the_argument(arm_env, kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        output_spec(arm_env, **kwargs)


def test_vnnlib_excludes_a_box_and_a_property(arm_env, tmp_path):
    with pytest.raises(InputError, match=r"^lower: not allowed with vnnlib"):
        verify_env(arm_env, _slope_net(), vnnlib=tmp_path / "q.vnnlib", lower=0.0)
    with pytest.raises(InputError, match=r"^vnnlib .*absent.vnnlib"):
        verify_env(arm_env, _slope_net(), vnnlib=tmp_path / "absent.vnnlib")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"initial_upper": None}, r"^initial_lower/initial_upper: expected the state box"),
        (
            {"initial_upper": [0.3, 0.1, 0]},
            r"^initial_upper \(states theta, omega\): expected 1 or",
        ),
        ({"initial_upper": 0.1}, r"^initial_lower/initial_upper: .* in state 0 \(theta\)"),
        ({"steps": 0}, r"^steps: expected a positive number"),
        ({"safe_lower": [0, 0, 0]}, r"^safe_lower: expected 1 or 2 values"),
        ({"safe_lower": 1.0, "safe_upper": 0.0}, r"^safe_lower/safe_upper: expected"),
        ({"safe_upper": 1.0, "window": (0.5, 9.0)}, r"^window/at_time/eventually_window: "),
        ({"goal_upper": 1.0}, r"^at_time/eventually_window: expected exactly one"),
        ({"safe_upper": 1.0, "semantics": "hybrid"}, r"^semantics: expected one of"),
    ],
)
def test_closed_loop_query_errors_name_the_argument(kwargs, pattern):
    args = {"initial_lower": [0.2, -0.1], "initial_upper": [0.3, 0.1], "steps": 50, **kwargs}
    with pytest.raises(InputError, match=pattern):
        closed_loop_query(arm_plant(ArmParams()), args.pop("initial_lower"),
                          args.pop("initial_upper"), **args)  # fmt: skip


def test_region_of_attraction_box_errors_name_the_argument():
    plant = arm_plant(ArmParams())
    with pytest.raises(InputError, match=r"^lower/upper: expected the state box"):
        region_of_attraction_box(plant, pd_gravity_controller(ArmParams()), None, None)
    with pytest.raises(InputError, match=r"^lower/upper: expected lower <= upper, .* \(theta\)"):
        state_box(plant, 1.0, -1.0)


# --- results: those of the library's own calls ----------------------------------------------


def test_verify_env_is_check_on_the_box_and_the_bound(arm_env):
    net = _slope_net()
    lo, hi = -np.ones(4), np.ones(4)
    for bound, want in ((4.001, "holds"), (3.5, "violated")):  # the range is [-2, 4]
        got = verify_env(arm_env, net, lower=-1.0, upper=1.0, max_abs=bound, timeout=30)
        direct = check(net, lo, hi, Spec.output_range(1, lower=-bound, upper=bound), timeout=30)
        assert got.status == direct.status == want
        (q,) = got.queries
        np.testing.assert_array_equal(q.lower, lo)
        np.testing.assert_array_equal(q.upper, hi)
        assert q.box == "the given box" and q.spec.name == f"|u| <= {bound:g}"
        assert q.result.margin == direct.margin
        if want == "violated":
            np.testing.assert_array_equal(q.result.counterexample, direct.counterexample)
            u = 4.0 * max(q.result.counterexample[0] + 0.5, 0.0) - 2.0  # the network by hand
            assert abs(u) > 3.5
            assert got.summary()[2].startswith("  counterexample: observation [")
        res = q.result
        assert got.summary()[:2] == [
            f"|u| <= {bound:g} on the given box: [-1, 1] x [-1, 1] x [-1, 1] x [-1, 1]",
            f"  {want} (margin {res.margin:.4g}, {res.time:.2f} s)",
        ]
        doc = got.to_dict()
        assert doc["status"] == want and doc["queries"][0]["spec"] == f"|u| <= {bound:g}"


def test_the_default_property_is_the_action_box_and_a_value_at_it_holds(arm_env):
    net = _slope_net()
    limit = float(arm_env.action_space.high[0])
    with torch.no_grad():  # u = limit relu(e): on e in [-1, 1] it reaches the limit, at e = 1
        net[0].bias.zero_()
        net[2].weight.fill_(limit)
        net[2].bias.zero_()
    assert np.array_equal(arm_env.action_space.low, -arm_env.action_space.high)
    got = verify_env(arm_env, net, lower=[-1, -1, -1, -1], upper=[1, 1, 1, 1], timeout=30)
    assert got.queries[0].spec.name == "within the action box"
    assert got.status == "holds"
    below = verify_env(arm_env, net, lower=-1, upper=1, output_upper=limit - 1e-3, timeout=30)
    assert below.status == "violated"


def test_vnnlib_queries_give_the_worst_status(arm_env, tmp_path):
    decls = "\n".join(f"(declare-const X_{i} Real)" for i in range(4))
    decls += "\n(declare-const Y_0 Real)"
    # two boxes of the error: on [-1, 0] max u = 2, on [0, 1] max u = 4; unsafe u >= 3
    (tmp_path / "q.vnnlib").write_text(
        f"{decls}\n(assert (or (and (>= X_0 -1) (<= X_0 0) {_rest()}) "
        f"(and (>= X_0 0) (<= X_0 1) {_rest()})))\n(assert (>= Y_0 3))\n"
    )
    net = _slope_net()
    got = verify_env(arm_env, net, vnnlib=tmp_path / "q.vnnlib", timeout=30)
    assert [q.result.status for q in got.queries] == ["holds", "violated"]
    assert got.status == "violated"
    for q in got.queries:
        assert q.result.status == check(net, q.lower, q.upper, q.spec, timeout=30).status


def _rest() -> str:
    return " ".join(f"(>= X_{i} -1) (<= X_{i} 1)" for i in range(1, 4))


def test_closed_loop_query_is_check_closed_loop_with_box_property():
    plant, ctrl = arm_plant(ArmParams()), pd_gravity_controller(ArmParams())
    lo, hi = np.array([0.2, -0.1]), np.array([0.3, 0.1])
    q = closed_loop_query(plant, lo, hi, steps=50, safe_lower=[-0.05, -np.inf],
                          safe_upper=[0.05, np.inf], window=(0.2, 0.3))  # fmt: skip
    assert q.semantics == "continuous" and q.steps == 50
    got = q.check(ctrl)
    want = check_closed_loop(
        plant, ctrl, lo, hi, always(Box([-0.05, -np.inf], [0.05, np.inf]), (0.2, 0.3)), steps=50
    )
    assert got.status == want.status == "violated"
    np.testing.assert_array_equal(got.counterexample.x0, want.counterexample.x0)
    assert got.stats["boxes_analysed"] == want.stats["boxes_analysed"]
    lines = got.summary()
    assert lines[0] == "initial box (theta, omega): [0.2, 0.3] x [-0.1, 0.1]"
    assert lines[1] == f"property: {want.spec!r} over 50 periods (1 s)"
    assert lines[2] == f"semantics: continuous ({want.assumptions})"
    assert lines[3].startswith(f"violated in {got.time:.2f} s (")
    ce = want.counterexample
    assert lines[4] == (
        f"counterexample: x0 = {np.round(ce.x0, 6).tolist()}, robustness {ce.robustness:.4g} "
        f"(negative: violated), 50 commands, {ce.times.size} states read"
    )
    assert ce.robustness < 0 and ce.replay().violated


def test_region_of_attraction_box_is_region_of_attraction_on_the_stacked_box():
    env = gym.make("neuroctl/Arm-v0")
    plant, ctrl = env_plant(env), load_controller("pretrained", env).module
    env.close()
    got = region_of_attraction_box(plant, ctrl, [-1, -3], [1, 3], timeout=20)
    want = region_of_attraction(plant, ctrl, box=np.array([[-1.0, -3.0], [1.0, 3.0]]), timeout=20)
    assert got.certified and got.level == want.level
    np.testing.assert_array_equal(got.P, want.P)
    lines = got.summary()
    assert lines[0].startswith(f"level {want.level:.6g}  volume {want.volume:.4g}  (")
    assert f"({want.volume / 12.0:.1%} of the box)" in lines[0]
    assert lines[1] == repr(got)
