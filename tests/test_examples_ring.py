"""examples/ring_wave.py runs, saves the space-time diagram, and the AVs calm the wave."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ring_wave.py"


def test_ring_wave_example(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path), "--steps", "1500"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "MPLBACKEND": "Agg"},
    ).stdout
    assert (tmp_path / "ring_wave.png").stat().st_size > 10_000
    std = {
        label: float(v)
        for label, v in re.findall(r"^(.*?)\s+RingMetrics\(.*?speed_std=([\d.]+)", out, re.M)
    }
    assert set(std) == {"all human (IDM)", "FollowerStopper AV", "PI with saturation AV"}
    # one controlled car removes most of the speed fluctuation (Stern et al. 2018: up to ~80%)
    assert std["FollowerStopper AV"] < 0.5 * std["all human (IDM)"]
    assert std["PI with saturation AV"] < 0.5 * std["all human (IDM)"]
