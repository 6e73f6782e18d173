"""Runs the verification examples and checks what they print against independent computations."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_verify_safety_query_example_proves_and_finds_a_real_counterexample():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "verify_safety_query.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"MPLBACKEND": "Agg", "PATH": "", "PYTHONPATH": str(ROOT)},
    ).stdout
    import neuroctl
    from neuroctl.verify import output_bounds

    policy = neuroctl.pretrained("neuroctl/Arm-v0")
    lower = np.array([-0.05, -0.2, -np.sin(0.05), np.cos(0.05)])
    upper = np.array([0.05, 0.2, np.sin(0.05), 1.0])
    exact = output_bounds(policy, lower, upper, method="milp")  # exact extreme torques
    u_max = max(-exact.lower[0], exact.upper[0])
    for limit, verdict in re.findall(r"\|u\| <= ([\d.]+): (PROVED|VIOLATED)", out):
        assert (verdict == "PROVED") == (u_max <= float(limit))
    m = re.search(r"VIOLATED at observation \[([^\]]+)\] -> u = (-?[\d.]+)", out)
    assert m is not None
    x = np.array([float(v) for v in m.group(1).split()])
    with torch.no_grad():
        u = policy(torch.as_tensor(x, dtype=torch.float32)).item()
    assert abs(u - float(m.group(2))) < 0.05  # printed observation is rounded to 4 decimals
    assert "PROVED" in out
