"""Cross-check of the numpy ring road against SUMO (libsumo) on the Sugiyama ring.

The same all-human 22-car, 230 m ring is built in SUMO (two semicircular edges, no internal
links, IDM with Flow's parameters, Euler update at 0.1 s) and in numpy; both start at rest,
evenly spaced with +-0.5 m jitter, without noise. REFERENCE.md: over t = 300..600 s the mean speed
is 2.397 m/s and the speed standard deviation 2.924 m/s.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
from neuroctl.envs.ring_road import Params, ring_gaps, ring_metrics, ring_plant

libsumo = pytest.importorskip(
    "libsumo",
    reason="SUMO cross-check needs libsumo and eclipse-sumo: pip install libsumo eclipse-sumo",
)

N, L = 22, 230.0


def _netconvert() -> str | None:
    try:
        import sumo

        path = os.path.join(sumo.SUMO_HOME, "bin", "netconvert")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return shutil.which("netconvert")


def _write_ring(tmp_path, positions):
    """A 230 m single-lane ring of two 115 m edges and 22 IDM cars at rest at ``positions``."""
    netconvert = _netconvert()
    if netconvert is None:
        pytest.skip("SUMO cross-check needs netconvert: pip install eclipse-sumo")
    R = L / (2 * math.pi)

    def arc(a0, a1, k=24):
        return " ".join(
            f"{R * math.cos(t):.4f},{R * math.sin(t):.4f}" for t in np.linspace(a0, a1, k)
        )

    (tmp_path / "ring.nod.xml").write_text(
        f'<nodes><node id="bottom" x="0" y="{-R:.4f}" type="priority"/>'
        f'<node id="top" x="0" y="{R:.4f}" type="priority"/></nodes>'
    )
    (tmp_path / "ring.edg.xml").write_text(
        "<edges>"
        f'<edge id="right" from="bottom" to="top" numLanes="1" speed="30" length="{L / 2}" '
        f'shape="{arc(-math.pi / 2, math.pi / 2)}"/>'
        f'<edge id="left" from="top" to="bottom" numLanes="1" speed="30" length="{L / 2}" '
        f'shape="{arc(math.pi / 2, 3 * math.pi / 2)}"/>'
        "</edges>"
    )
    subprocess.run(
        [
            netconvert,
            "--node-files",
            "ring.nod.xml",
            "--edge-files",
            "ring.edg.xml",
            "--no-internal-links",
            "true",
            "--no-turnarounds",
            "true",
            "-o",
            "ring.net.xml",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    vehicles = []
    for i in np.argsort(positions)[::-1]:  # insert front-most first
        p = positions[i]
        edge, pos = ("right", p) if p < L / 2 else ("left", p - L / 2)
        route = " ".join([f"{edge} {'left' if edge == 'right' else 'right'}"] * 60)
        vehicles.append(
            f'<vehicle id="c{i}" type="idm" depart="0" departPos="{pos:.9f}" departSpeed="0" '
            f'departLane="0"><route edges="{route}"/></vehicle>'
        )
    (tmp_path / "ring.rou.xml").write_text(
        "<routes>"
        '<vType id="idm" carFollowModel="IDM" accel="1" decel="1.5" tau="1" minGap="2" '
        'length="5" maxSpeed="30" delta="4" speedDev="0" speedFactor="1" sigma="0"/>'
        + "".join(vehicles)
        + "</routes>"
    )


def _run_sumo(tmp_path, steps):
    libsumo.start(
        [
            "sumo",
            "-n",
            str(tmp_path / "ring.net.xml"),
            "-r",
            str(tmp_path / "ring.rou.xml"),
            "--step-length",
            "0.1",
            "--no-step-log",
            "true",
            "--time-to-teleport",
            "-1",
            "--no-warnings",
            "true",
        ]
    )
    try:
        libsumo.simulationStep()  # inserts the cars at rest (time 0)
        ids = [f"c{i}" for i in range(N)]
        assert set(libsumo.vehicle.getIDList()) == set(ids)
        speeds, positions = [], []
        for _ in range(steps + 1):
            speeds.append([libsumo.vehicle.getSpeed(v) for v in ids])
            positions.append(
                [
                    libsumo.vehicle.getLanePosition(v)
                    + (L / 2 if libsumo.vehicle.getRoadID(v) == "left" else 0.0)
                    for v in ids
                ]
            )
            libsumo.simulationStep()
        return np.array(positions), np.array(speeds)
    finally:
        libsumo.close()


def test_numpy_ring_agrees_with_sumo_and_reference(tmp_path):
    rng = np.random.default_rng(2008)
    q0 = (np.arange(N) * L / N + rng.uniform(-0.5, 0.5, N)) % L
    _write_ring(tmp_path, q0)
    steps = 6000
    q_sumo, v_sumo = _run_sumo(tmp_path, steps)
    np.testing.assert_allclose(q_sumo[0], q0, atol=1e-6)

    p = Params(n_av=0, ring_length=L, noise=0.0)
    x = np.concatenate([q0, np.zeros(N)])
    qs, vs = [q0], [np.zeros(N)]
    step = ring_plant(p, L).step  # the env's map
    for _ in range(steps):
        x = step(x, np.zeros(0))
        qs.append(x[:N])
        vs.append(x[N:])
    v_np = np.array(vs)

    # step by step, the two are the same map: speeds agree to 1e-6 m/s over the 600 s
    # (measured: 1e-8; SUMO's IDM with idmStepping gives one iteration at dt = 0.1)
    assert np.abs(v_np - v_sumo).max() < 1e-6

    window = slice(3000, 6001)  # t = 300..600 s
    gaps_np = ring_gaps(np.array(qs)[window], L)
    gaps_sumo = ring_gaps(q_sumo[window] % L, L)
    m_np = ring_metrics(v_np[window], gaps_np)
    m_sumo = ring_metrics(v_sumo[window], gaps_sumo)
    assert m_np.mean_speed == pytest.approx(m_sumo.mean_speed, rel=0.02)
    assert m_np.speed_std == pytest.approx(m_sumo.speed_std, rel=0.02)
    for m in (m_np, m_sumo):
        assert m.mean_speed == pytest.approx(2.397, rel=0.02)
        assert m.speed_std == pytest.approx(2.924, rel=0.02)
        assert m.min_gap > 0.0
