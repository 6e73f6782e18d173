"""The linearization examples run and show what they claim.

Independent sources: REFERENCE.md (arm slope table, IDM ring figures) and nonlinear simulation
of the same closed loops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _examples import EXAMPLES, load_example

import neuroctl as nc


def test_arm_activation_slope_example(tmp_path):
    example = load_example("arm_activation_slope")
    res = example.main(example.Args(out=str(tmp_path)))["results"]
    tanh, sig = res[("horizontal", "tanh")], res[("horizontal", "sigmoid")]
    # REFERENCE.md: slope 1 -> 49.8% overshoot, slope 1/4 -> 22.1%
    assert f"{tanh['regions'][0]['overshoot']:.3g}" == "49.8"
    assert f"{sig['regions'][0]['overshoot']:.3g}" == "22.1"
    # the nonlinear simulation of a small step agrees with the linear figures
    for r in (tanh, sig):
        assert abs(r["overshoot_sim"] - r["regions"][0]["overshoot"]) < 1.0
    # slope 1: faster (rise) but more overshoot than slope 1/4, in simulation too
    assert tanh["rise_sim"] < sig["rise_sim"] and tanh["overshoot_sim"] > sig["overshoot_sim"]
    # ReLU sits on its kink: slope 1 and slope 0 regions disagree
    assert res[("horizontal", "relu")]["verdict"] == "depends on region"
    slopes = sorted(reg["slope"] for reg in res[("horizontal", "relu")]["regions"])
    assert slopes == [0.0, 1.0]
    # upright: slope 1 stable (and the simulation settles), slope 1/4 unstable (and it falls)
    up_t, up_s = res[("upright", "tanh")], res[("upright", "sigmoid")]
    assert up_t["verdict"] == "stable" and not up_t["diverged"]
    assert f"{up_t['regions'][0]['gain_margin']:.3g}" == "0.625"
    assert up_s["verdict"] == "unstable" and up_s["diverged"]
    assert f"{up_s['regions'][0]['max_real']:.3g}" == "2.34"
    assert (tmp_path / "arm_activation_slope.png").stat().st_size > 0


def test_ring_string_stability_example(tmp_path):
    example = load_example("ring_string_stability")
    out = example.main(example.Args(out=str(tmp_path)))
    rows = out["rows"]
    idm, fs = rows["IDM (human-like)"], rows["FollowerStopper r=3"]
    assert idm["success"] and fs["success"]
    # REFERENCE.md: all-human ring, largest real part +0.0235 1/s; Ward-Wilson -0.1097
    assert idm["verdict"] == "unstable" and f"{idm['growth_rate']:.3g}" == "0.0235"
    assert f"{rows['human IDM']['ward_wilson']:.4g}" == "-0.1097"
    assert not idm["string_stable"] and idm["peak_gain"] > 1
    assert fs["verdict"] == "stable" and fs["string_stable"]
    assert Path(out["figure"]).stat().st_size > 0

    # simulation: a small speed perturbation grows at the predicted rate with the IDM AV
    # (discrete map: log|z|max / dt) and dies out with FollowerStopper
    from neuroctl.envs.ring_road.controllers import FollowerStopper, IDMController
    from neuroctl.envs.ring_road.dynamics import Params, ring_plant

    plant = ring_plant(Params(ring_length=230.0))
    n = 22
    shift = np.r_[np.ones(n), np.zeros(n)]
    ops = {}
    for name, ctrl, x0 in (
        ("idm", IDMController(), plant.equilibrium(None)[0]),
        (
            "fs",
            FollowerStopper(v_des=3.0),
            example.flow_guess(plant, n, 230.0, (230.0 - 5 * n - fs["av_gap"]) / (n - 1), 3.0),
        ),
    ):
        op = nc.operating_point(plant, ctrl, invariant=shift, guess=x0, continuous=False)
        rep = nc.analyze(plant, ctrl, op, invariant=shift)
        x = op.x.copy()
        x[n + 5] += 0.05
        traj = nc.simulate(plant, ctrl, x, 2000)
        ops[name] = (rep, np.std(traj.states[:, n:], axis=1))
    rep, spread = ops["idm"]
    predicted = np.log(rep.regions[0].spectral_radius) / plant.dt
    measured = (np.log(spread[2000]) - np.log(spread[1000])) / 100.0
    assert measured == pytest.approx(predicted, rel=0.05)
    rep, spread = ops["fs"]
    assert rep.verdict == "stable" and spread[-1] < 0.1 * spread[0]


@pytest.mark.parametrize("name", ["arm_activation_slope", "ring_string_stability"])
def test_examples_document_how_to_run(name):
    text = (EXAMPLES / f"{name}.py").read_text()
    assert f"python examples/{name}.py --out DIR" in text
