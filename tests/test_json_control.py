"""Every result's to_dict() is json.dumps-able under the one convention of neuroctl._json, and a
report's closed loops are python-control systems whose step response gives the report's
step_info."""

from __future__ import annotations

import json
import math

import control
import numpy as np
import pytest
import torch
from neuroctl.envs.arm import ArmParams, arm_plant

import neuroctl
from neuroctl import linear_controller, mlp
from neuroctl._json import from_json_float, jsonable


def _dumps(d) -> str:
    return json.dumps(d, allow_nan=False)  # strict JSON: no Infinity / NaN tokens


def test_jsonable_convention():
    value = {
        1: np.array([1 + 2j, -0.5j]),
        "z": complex(math.inf, math.nan),
        "f": [math.inf, -math.inf, math.nan, np.float32(0.25)],
        "i": (np.int64(3), np.bool_(True)),
        "t": torch.tensor([[1.0, math.inf]]),
        "none": None,
    }
    got = json.loads(_dumps(jsonable(value)))
    assert got == {
        "1": [[1.0, 2.0], [-0.0, -0.5]],
        "z": ["inf", "nan"],
        "f": ["inf", "-inf", "nan", 0.25],
        "i": [3, True],
        "t": [[1.0, "inf"]],
        "none": None,
    }
    assert from_json_float("-inf") == -math.inf and math.isnan(from_json_float("nan"))
    with pytest.raises(TypeError, match=r"jsonable: expected .* received a builtins.object"):
        jsonable(object())
    with pytest.raises(ValueError, match="'Infinity'"):
        from_json_float("Infinity")


def test_linearization_and_report_dicts_dump_with_complex_poles_inf_and_nan():
    # the arm closed with a PD law: complex poles; gain margin inf, phase crossover nan
    arm = arm_plant(ArmParams())
    ctrl = linear_controller(np.array([[8.0, -2.0, 0.0, 0.0]]))
    rep = neuroctl.analyze(arm, ctrl, reference=[0.3])
    assert np.iscomplex(rep.regions[0].poles).any()
    mg = rep.regions[0].margins
    assert mg["gain_margin"] == math.inf and math.isnan(mg["phase_crossover"])
    d = json.loads(_dumps(rep.to_dict()))
    assert d["regions"][0]["poles"] == [[z.real, z.imag] for z in rep.regions[0].poles]
    assert d["regions"][0]["margins"]["gain_margin"] == "inf"
    assert d["regions"][0]["margins"]["phase_crossover"] == "nan"
    lin = rep.linearization
    dl = json.loads(_dumps(lin.to_dict()))
    assert dl["regions"][0]["poles"] == [[z.real, z.imag] for z in lin.regions[0].poles()]
    assert dl["radius"] == ("inf" if math.isinf(lin.radius) else lin.radius)
    _dumps(lin.jacobians.to_dict())
    _dumps(rep.op.to_dict())


def test_gain_trajectory_and_env_dicts_dump():
    net = mlp(2, 1, (8,), "relu", seed=1, dtype=torch.float64)
    g = neuroctl.local_gain(net, [0.0, 0.0])
    _dumps(g.to_dict())
    for reg in g.regions:
        _dumps(reg.to_dict())
    arm = arm_plant(ArmParams())
    traj = neuroctl.simulate(arm, mlp(4, 1, (4,), "tanh", seed=0), np.zeros((3, 2)), steps=5)
    _dumps(traj.to_dict())
    _dumps(ArmParams().to_dict())


def test_verification_result_dicts_dump():
    from neuroctl.verify import Spec, certify_local, check, output_bounds

    net = mlp(2, 1, (8,), "relu", seed=2, dtype=torch.float64)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    _dumps(output_bounds(net, lo, hi).to_dict())
    res = check(net, lo, hi, Spec.output_range(1, upper=[50.0]), timeout=10)
    _dumps(res.to_dict())
    _dumps(certify_local(net, [0.3, -0.1], output_bound=0.1).to_dict())


def test_string_stability_dict_dumps():
    from neuroctl.envs.ring_road.dynamics import idm_acceleration

    def accel(s, v, vl):
        return idm_acceleration(s, v, vl)

    try:
        ss = neuroctl.string_stability(accel, speed=10.0)
    except TypeError:
        pytest.skip("string_stability takes another form of model here")
    _dumps(ss.to_dict())


@pytest.mark.parametrize("continuous", [True, False])
def test_step_response_of_report_closed_loop_gives_report_step_info(continuous):
    # the arm (continuous rhs, or its discrete map) closed with a PD law at a target
    arm = arm_plant(ArmParams())
    ctrl = linear_controller(np.array([[8.0, -2.0, 0.0, 0.0]]))
    rep = neuroctl.analyze(arm, ctrl, reference=[0.3], continuous=continuous)
    assert rep.verdict == "stable"
    reg = rep.regions[0]
    cl = reg.closed_loop
    assert isinstance(cl, control.StateSpace)
    assert rep.step_input in cl.input_labels and rep.step_output in cl.output_labels
    assert cl.state_labels == list(arm.state_names)
    dc = float(cl[rep.step_output, rep.step_input].dcgain())
    if continuous:
        t_end = float(control.step_response(cl, input=cl.input_index[rep.step_input]).time[-1])
        T = np.linspace(0.0, t_end, 20001)
        resp = control.step_response(
            cl, T=T, input=cl.input_index[rep.step_input], output=cl.output_index[rep.step_output]
        )
        info = control.step_info(resp.outputs, T=resp.time, yfinal=dc)
    else:
        resp = control.step_response(
            cl, input=cl.input_index[rep.step_input], output=cl.output_index[rep.step_output]
        )
        info = control.step_info(resp.outputs, T=resp.time, yfinal=dc)
    for k, v in reg.step_info.items():
        assert info[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    # and the frequency-domain tools run on it, with named signals
    sub = cl[rep.step_output, rep.step_input]
    mag = control.frequency_response(sub, [0.1, 1.0]).magnitude
    assert np.all(np.isfinite(mag))
    assert rep.closed_loops[0] is cl
