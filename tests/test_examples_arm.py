"""The arm examples run, save their figure where asked, and show what they claim."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from _examples import load_example


def test_arm_pd_numbers_match_the_second_order_closed_form(tmp_path):
    example = load_example("arm_pd")
    args = example.parse_args(["--out", str(tmp_path)])  # the command line of the script
    result = example.main(args)
    assert Path(result["figure"]).parent == tmp_path
    image = matplotlib.image.imread(result["figure"])
    assert image.ndim == 3 and image.shape[0] > 100
    inertia, friction = 1.0 / 3.0, 0.5  # default rod: m l²/3 with m = l = 1
    expected = np.roots([inertia, friction + args.kd, args.kp])
    np.testing.assert_allclose(np.sort_complex(result["poles"]), np.sort_complex(expected))
    zeta = (friction + args.kd) / (2 * math.sqrt(args.kp * inertia))
    closed_form = 100 * math.exp(-zeta * math.pi / math.sqrt(1 - zeta**2))
    assert result["overshoot_closed_form"] == pytest.approx(closed_form, rel=1e-12)
    # sampled at 20 ms (a sixth of the 0.27 s time constant), the discrete loop overshoots a
    # little less than the continuous one
    assert abs(result["overshoot_measured"] - result["overshoot_closed_form"]) < 1.5
    # the training goal of the env: |error| < 0.05 rad and |speed| < 0.1 rad/s after 3 s
    assert result["max_final_error"] < 0.05 and result["max_final_speed"] < 0.1
    assert result["episode_final_error"] < 0.05
    assert Path(result["figure"]).stat().st_size > 0


def test_arm2link_reach_reaches_and_is_locally_stable(tmp_path):
    example = load_example("arm2link_reach")
    result = example.main(example.Args(out=str(tmp_path), targets=4))
    for plane in ("horizontal", "vertical"):
        assert result[plane]["max_final_error"] < 0.05
        assert result[plane]["max_pole_real"] < 0
    image = matplotlib.image.imread(result["figure"])
    assert image.ndim == 3
