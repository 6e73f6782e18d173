"""The PWL, local-robustness and arm-reachability examples run and show what they claim, each
number checked against an independent source."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from _examples import load_example


def _eval(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, float))).numpy()


def test_spline_relu_example(tmp_path):
    ex = load_example("spline_relu")
    args = ex.Args(out=str(tmp_path))
    res = ex.main(args)
    # FollowerStopper from REFERENCE.md (Stern et al. 2018), written out here independently
    dvm = min(args.closing_speed, 0.0)
    x1, x2, x3 = 4.5 + dvm**2 / 3.0, 5.25 + dvm**2 / 2.0, 6.0 + dvm**2 / 1.0
    vt, r = min(max(args.lead_speed, 0.0), args.target_speed), args.target_speed
    gaps = np.linspace(0.0, 40.0, 4001)
    ref = np.interp(gaps, [x1, x2, x3], [0.0, vt, r])  # np.interp holds the end values
    np.testing.assert_allclose(
        _eval(res["follower_stopper_net"], gaps[:, None])[:, 0], ref, atol=1e-12
    )
    assert res["follower_stopper_net"][0].out_features == 3
    knots, values = res["table"]
    np.testing.assert_allclose(_eval(res["table_net"], knots[:, None])[:, 0], values, atol=1e-12)
    assert max(res["round_trip"]) <= 1e-12
    # the breakpoints of the random network reproduce it (checked at fresh points)
    xs = np.random.default_rng(9).uniform(-3.0, 3.0, 5000)
    np.testing.assert_allclose(
        res["random_pwl"](xs), _eval(res["random_net"], xs[:, None])[:, 0], atol=1e-12
    )
    assert Path(res["figure"]).stat().st_size > 0


def test_local_robustness_example(tmp_path):
    ex = load_example("local_robustness")
    res = ex.main(ex.Args(out=str(tmp_path), samples=4000))
    net, x = res["net"], res["x"]
    rng = np.random.default_rng(1)
    for label, r in res["results"].items():
        cert = r["certificate"]
        norm = math.inf if label == "inf" else 2
        assert r["changed_inside"] == 0
        assert cert.certified_radius >= cert.region_radius > 0
        # independent re-check: random points of the certified ball keep the argmin
        pts = ex.sample_ball(rng, x, cert.certified_radius * (1 - 1e-9), norm, 4000)
        assert np.all(_eval(net, pts).argmin(axis=1) == int(_eval(net, x[None]).argmin()))
    assert Path(res["figure"]).stat().st_size > 0


def test_arm_reachability_example(tmp_path):
    ex = load_example("arm_reachability")
    args = ex.Args(out=str(tmp_path), samples=500)
    res = ex.main(args)
    assert res["proof"].holds is True and res["simulations_inside"] == args.samples
    caught = res["caught"]
    assert caught.holds is False
    # replay the counterexample with plant.step: it leaves the limit at exit_step, not before
    plant, bad = res["plant"], res["bad"]
    x = torch.as_tensor(caught.counterexample.states[0, 0])
    r = torch.zeros(1, dtype=torch.float64)
    thetas = [float(x[0])]
    with torch.no_grad():
        for _ in range(caught.exit_step):
            x = plant.step(x, bad(plant.observe(x, r)))
            thetas.append(float(x[0]))
    assert abs(thetas[-1]) > args.limit >= max(abs(t) for t in thetas[:-1])
    assert Path(res["figure"]).stat().st_size > 0
