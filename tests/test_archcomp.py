"""ARCH-COMP plants and problems: each rhs against the .m file itself, closed forms, the verdicts.

The data (``../shared/data/archcomp``) is read, never copied; every test skips with the path when
it is absent. The second transcription of each plant is the ``.m`` file's own text, evaluated by
a small MATLAB-expression reader below (scalar assignments, ``x(i)`` indexing, ``^``); the
airplane's matrix form is transcribed separately as matrices.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from benchmarks.archcomp import (
    BENCHMARKS,
    Clause,
    load,
    robustness,
    search_counterexample,
    simulate,
    vcas,
)
from benchmarks.archcomp import plants as P
from benchmarks.archcomp.suite import DATA
from benchmarks.archcomp.vcas import VCAS_ADVISORIES
from benchmarks.data import missing_reason
from neuroctl.verify import load_nnet
from neuroctl.verify.reach import AffineForm
from tests._ulp import assert_ulp_close

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=missing_reason("archcomp"))


# ------------------------------------------------------------- the .m files, read as text
_FUNCS = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "sqrt": math.sqrt}


def _matlab_rhs(path, n_out):
    """A point function ``f(x, u) -> dx`` that evaluates the scalar MATLAB function at ``path``."""
    text = re.sub(r"%[^\n]*", "", path.read_text())  # comments
    header = re.search(r"function\s*\[?\s*(\w+)\s*\]?\s*=\s*\w+\s*\(([^)]*)\)", text)
    out_name, args = header.group(1), [a.strip() for a in header.group(2).split(",")]
    body = text[header.end() :]
    body = re.sub(r"\.\.\.\s*\n", " ", body)  # continuation lines
    # a vector literal  out = [a; b; ...];  becomes one assignment per component
    vec = re.search(rf"{out_name}\s*=\s*\[(.*?)\]\s*;", body, re.S)
    if vec:
        parts = [p.strip() for p in vec.group(1).split(";") if p.strip()]
        body = body[: vec.start()] + "".join(
            f"{out_name}({i + 1},1) = {p};\n" for i, p in enumerate(parts)
        )
    statements = [s.strip() for s in re.split(r"[;\n]", body) if s.strip()]
    statements = [s for s in statements if s != "end"]

    def py(expr):
        expr = expr.replace("^", "**")
        for a in args:  # x(3) -> x[2]
            expr = re.sub(rf"\b{a}\((\d+)\)", lambda m, a=a: f"{a}[{int(m.group(1)) - 1}]", expr)
        return expr

    def f(x, u):
        env = dict(_FUNCS)
        env[args[0]] = list(x)
        env[args[1]] = list(u) if len(u) > 1 else float(u[0])
        if len(args) > 2:
            env[args[2]] = 1.0  # VCAS's T (its update is written for T = 1)
        dx = [None] * n_out
        for s in statements:
            lhs, rhs = (p.strip() for p in s.split("=", 1))
            m = re.fullmatch(rf"{out_name}\((\d+),\s*1\)", lhs)
            if m:
                dx[int(m.group(1)) - 1] = eval(py(rhs), env)  # noqa: S307 - a data file's math
            else:
                env[lhs] = eval(py(rhs), env)  # noqa: S307
        assert all(v is not None for v in dx), f"{path.name}: components {dx}"
        return np.array(dx, dtype=np.float64)

    return f


def _airplane_matrices(x, a):
    """Airplane/dynamics.m in its own matrix form (T_psi T_theta T_phi, mat_2)."""
    _, _, _, u, v, w, phi, th, psi, r, p, q = x
    Fx, Fy, Fz, Mx, My, Mz = a
    c, s = np.cos, np.sin
    T_psi = np.array([[c(psi), -s(psi), 0], [s(psi), c(psi), 0], [0, 0, 1]])
    T_th = np.array([[c(th), 0, s(th)], [0, 1, 0], [-s(th), 0, c(th)]])
    T_phi = np.array([[1, 0, 0], [0, c(phi), -s(phi)], [0, s(phi), c(phi)]])
    mat_2 = np.array(
        [
            [c(th), s(th) * s(phi), s(th) * c(phi)],
            [0, c(th) * c(phi), -c(th) * s(phi)],
            [0, s(phi), c(phi)],
        ]
    ) / c(th)
    d_pos = T_psi @ T_th @ T_phi @ np.array([u, v, w])
    d_ang = mat_2 @ np.array([p, q, r])
    du = -s(th) + Fx - q * w + r * v
    dv = c(th) * s(phi) + Fy - r * u + p * w
    dw = c(th) * c(phi) + Fz - p * v + q * u
    return np.concatenate([d_pos, [du, dv, dw], d_ang, [Mz, Mx, My]])


#: (benchmark whose rhs is checked, its .m file)
M_FILES = [
    ("unicycle", "Benchmark10-Unicycle/dynamics10.m"),
    ("double_pendulum_less_robust", "Double_Pendulum/dynamics_dp.m"),
    ("attitude_control", "Attitude-Control/dynamics.m"),
    ("quad", "QUAD/dynamics.m"),
    ("nav_set", "NAV/dynamics.m"),
    ("docking", "Docking/dynamics.m"),
    ("tora_sigmoid", "Tora_Heterogeneous/dynamicsTora.m"),
    ("cartpole", "CartPole/dynamics.m"),
]


def _random_points(bench, rng, k):
    """Random states around the initial box (widened) and random commands."""
    lo, hi = np.array(bench.x_lower), np.array(bench.x_upper)
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) + 0.5
    x = rng.uniform(mid - half, mid + half, (k, lo.size))
    u = rng.uniform(-3, 3, (k, len(bench.inputs)))
    return x, u


@pytest.mark.parametrize("name, mfile", M_FILES, ids=[m[0] for m in M_FILES])
def test_rhs_equals_the_m_file_read_as_text(name, mfile):
    bench = BENCHMARKS[name]
    ref = _matlab_rhs(DATA / mfile, len(bench.states))
    x, u = _random_points(bench, np.random.default_rng(0), 50)
    if name == "unicycle":  # the .m takes the raw network output: u_plant = u_net - 20
        expected = np.array([ref(xi, ui + 20.0) for xi, ui in zip(x, u)])
    else:
        expected = np.array([ref(xi, ui) for xi, ui in zip(x, u)])
    got = bench.rhs(x, u)
    # different operation orders: agreement to rounding of the larger terms of each component
    scale = np.abs(expected).max(axis=0) + 1.0
    assert np.all(np.abs(got - expected) <= 1e-12 * scale), name


def test_airplane_rhs_equals_the_m_files_matrix_form():
    bench = BENCHMARKS["airplane"]
    x, u = _random_points(bench, np.random.default_rng(1), 50)
    expected = np.array([_airplane_matrices(xi, ui) for xi, ui in zip(x, u)])
    np.testing.assert_allclose(bench.rhs(x, u), expected, rtol=0, atol=1e-12)


def test_vcas_update_equals_the_m_file():
    bench = BENCHMARKS["vcas_19.5"]
    ref = _matlab_rhs(DATA / "VCAS/planeDynamics.m", 4)
    rng = np.random.default_rng(2)
    x = np.column_stack(
        [
            rng.uniform(-200, 200, 30),
            rng.uniform(-40, 40, 30),
            rng.uniform(0, 25, 30),
            rng.integers(0, 9, 30),
        ]
    )
    u = np.column_stack([rng.integers(0, 9, 30), rng.uniform(-11, 11, 30)])
    expected = np.array([ref(xi, ui) for xi, ui in zip(x, u)])
    np.testing.assert_allclose(bench.update(x, u), expected, rtol=0, atol=1e-12)


RHS_BENCHMARKS = [n for n, b in BENCHMARKS.items() if b.rhs is not None and "robust" not in n]


@pytest.mark.parametrize("name", RHS_BENCHMARKS)
def test_rhs_runs_on_torch_batches_with_the_numpy_values(name):
    bench = BENCHMARKS[name]
    x, u = _random_points(bench, np.random.default_rng(3), 20)
    xt = torch.as_tensor(x).reshape(4, 5, -1).requires_grad_(True)
    yt = bench.rhs(xt, torch.as_tensor(u).reshape(4, 5, -1))
    assert yt.shape == (4, 5, len(bench.states))
    assert_ulp_close(yt.detach().reshape(20, -1), bench.rhs(x, u), maxulp=64, what=name)
    yt.sum().backward()  # differentiable
    assert torch.isfinite(xt.grad).all()


@pytest.mark.parametrize("name", RHS_BENCHMARKS)
def test_rhs_on_affine_forms_encloses_every_point_of_the_box(name):
    bench = BENCHMARKS[name]
    rng = np.random.default_rng(4)
    lo, hi = np.array(bench.x_lower), np.array(bench.x_upper)
    m = len(bench.inputs)
    # a small box around the initial set's centre, states and commands together
    c = np.concatenate([0.5 * (lo + hi), rng.uniform(-1, 1, m)])
    r = np.concatenate([0.5 * (hi - lo) + 1e-2, np.full(m, 1e-2)])
    z = AffineForm.from_box((c - r)[None], (c + r)[None])
    n = lo.size
    enc = bench.rhs(z[..., :n], z[..., n:])
    pts = rng.uniform(c - r, c + r, (2000, c.size))
    pts = np.vstack([pts, c - r, c + r])
    vals = bench.rhs(pts[:, :n], pts[:, n:])
    assert np.all(vals >= enc.lower[0] - 1e-9) and np.all(vals <= enc.upper[0] + 1e-9), name


# ------------------------------------------------------------------- closed-form facts
def test_docking_free_flight_follows_the_clohessy_wiltshire_solution():
    # u = 0: x(t) = (4 - 3 cos nt) x0 + sin(nt)/n vx0 + 2/n (1 - cos nt) vy0,
    #        y(t) = 6 (sin nt - nt) x0 + y0 - 2/n (1 - cos nt) vx0 + (4 sin nt - 3 nt)/n vy0
    n = P.DOCKING["n"]
    x0 = np.array([90.0, 80.0, 0.1, -0.2])
    t = np.linspace(0, 400, 9)
    sol = solve_ivp(
        lambda _t, y: P.docking_rhs(y, np.zeros(2)),
        (0, 400),
        x0,
        t_eval=t,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    nt = n * t
    px = (4 - 3 * np.cos(nt)) * x0[0] + np.sin(nt) / n * x0[2] + 2 / n * (1 - np.cos(nt)) * x0[3]
    py = (
        6 * (np.sin(nt) - nt) * x0[0]
        + x0[1]
        - 2 / n * (1 - np.cos(nt)) * x0[2]
        + (4 * np.sin(nt) - 3 * nt) / n * x0[3]
    )
    np.testing.assert_allclose(sol.y[0], px, rtol=1e-9)
    np.testing.assert_allclose(sol.y[1], py, rtol=1e-9)


@pytest.mark.parametrize("name", ["unicycle", "nav_set"])
def test_constant_turn_rate_drives_a_circle(name):
    bench = BENCHMARKS[name]
    v0, psi0, w = 1.5, 0.3, 0.7
    x0 = np.array([1.0, -2.0, psi0, v0]) if name == "unicycle" else np.array([1, -2, v0, psi0])
    u = np.array([0.0, w])
    sol = solve_ivp(
        lambda _t, y: bench.rhs(y, u),
        (0, 5),
        x0,
        t_eval=[5.0],
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    ex = 1.0 + v0 / w * (math.sin(psi0 + 5 * w) - math.sin(psi0))
    ey = -2.0 - v0 / w * (math.cos(psi0 + 5 * w) - math.cos(psi0))
    np.testing.assert_allclose(sol.y[:2, 0], [ex, ey], rtol=0, atol=1e-9)


def test_quad_hovers_at_rest_with_zero_thrust_command():
    # the thrust command is relative to hover: the resting state is an equilibrium
    np.testing.assert_array_equal(P.quad_rhs(np.zeros(12), np.zeros(3)), np.zeros(12))
    x = np.zeros(12)
    x[7] = 0.1  # pitched: gravity's component along the body axis accelerates x4
    assert P.quad_rhs(x, np.zeros(3))[3] == pytest.approx(-9.81 * math.sin(0.1), rel=1e-15)


# --------------------------------------------------------------------- the control laws
def test_output_offset_and_scaling_are_part_of_the_control_law():
    x = torch.as_tensor(np.random.default_rng(5).uniform(-1, 1, (10, 4)))
    for name, scale, offset in (("unicycle", 1.0, -20.0), ("tora_relu_tanh", 11.0, 0.0)):
        bench = BENCHMARKS[name]
        with torch.no_grad():
            raw, law = bench.network()(x), bench.control_law()(x)
        assert_ulp_close(law, scale * raw + offset, maxulp=8, what=name)


def test_vcas_controller_equals_a_loop_over_the_nnet_networks():
    # independent reading: the raw .nnet files, the normalization of Specifications.txt, one
    # state at a time, the JuliaReach rules for the acceleration
    nets = [
        load_nnet(
            DATA / "VCAS" / "nnet_networks" / f"VertCAS_noResp_pra0{k}_v9_20HU_200.nnet",
            normalize=False,
        )
        for k in range(1, 10)
    ]
    g = 32.2
    central = {
        "COC": 0.0,
        "DNC": -7 * g / 24,
        "DND": 7 * g / 24,
        "DES1500": -7 * g / 24,
        "CL1500": 7 * g / 24,
        "SDES1500": -g / 3,
        "SCL1500": g / 3,
        "SDES2500": -g / 3,
        "SCL2500": g / 3,
    }
    comply = {
        "COC": lambda r: False,
        "DNC": lambda r: r <= 0,
        "DND": lambda r: r >= 0,
        "DES1500": lambda r: r <= -1500,
        "CL1500": lambda r: r >= 1500,
        "SDES1500": lambda r: r <= -1500,
        "SCL1500": lambda r: r >= 1500,
        "SDES2500": lambda r: r <= -2500,
        "SCL2500": lambda r: r >= 2500,
    }
    rng = np.random.default_rng(6)
    x = np.column_stack(
        [
            rng.uniform(-400, 400, 200),
            rng.uniform(-50, 50, 200),
            rng.uniform(0, 25, 200),
            rng.integers(0, 9, 200),
        ]
    )
    ctrl = BENCHMARKS["vcas_19.5"].control_law()
    with torch.no_grad():
        got = ctrl(torch.as_tensor(x)).numpy()
    seen = set()
    for xi, gi in zip(x, got):
        feats = (xi[:3] - [0.0, 0.0, 20.0]) / [16000.0, 5000.0, 40.0]
        prev = int(xi[3])
        with torch.no_grad():
            adv = int(nets[prev](torch.as_tensor(feats)).argmax())
        name = VCAS_ADVISORIES[adv]
        acc = 0.0 if adv == prev and comply[name](60 * xi[1]) else central[name]
        assert gi[0] == adv and gi[1] == pytest.approx(acc, abs=1e-12)
        seen.add(name)
    assert len(seen) >= 3  # several advisories exercised


# ---------------------------------------------------------------- properties, simulations
def test_clause_robustness_on_hand_made_trajectories():
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    sample = np.array([True, False, True, False, True])
    x = np.array([[[0.0], [0.9], [0.5], [1.2], [0.2]]])  # one trajectory, one state
    box = dict(lower=(-1.0,), upper=(1.0,))
    assert robustness([Clause("always", **box)], t, x, sample)[0] == pytest.approx(-0.2)
    assert robustness([Clause("always", **box, window=(0, 1))], t, x, sample)[0] == pytest.approx(
        0.1
    )
    assert robustness([Clause("never", **box, window=(1.5, 1.5))], t, x, sample)[0] == (
        pytest.approx(0.2)
    )
    # eventually reads the samples only: the 0.9 at t = 0.5 does not count
    goal = dict(lower=(0.4,), upper=(2.0,))
    assert robustness([Clause("eventually", **goal, window=(0, 1))], t, x, sample)[0] == (
        pytest.approx(0.1)
    )
    assert robustness([Clause("at", **goal, window=(2, 2))], t, x, sample)[0] == pytest.approx(-0.2)


def test_simulation_matches_a_direct_solve_ivp_of_one_period():
    bench = BENCHMARKS["tora_relu_tanh"]
    x0 = np.array([-0.76, -0.44, 0.52, -0.29])
    ro = simulate(bench, x0, dense=4)
    with torch.no_grad():
        u0 = bench.control_law()(torch.as_tensor(x0)).numpy()
    sol = solve_ivp(
        lambda _t, y: P.tora_rhs(y, u0), (0, 0.5), x0, method="Radau", rtol=1e-12, atol=1e-13
    )
    np.testing.assert_allclose(ro.x[0, 4], sol.y[:, -1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ro.u[0, 0], u0, rtol=0, atol=0)
    assert ro.t[ro.sample].tolist() == [0.5 * k for k in range(11)]


PUBLISHED = [n for n, b in BENCHMARKS.items() if b.published is not None]


@pytest.mark.parametrize("name", PUBLISHED)
def test_simulation_reproduces_the_sign_of_the_published_verdict(name):
    bench = BENCHMARKS[name]
    if bench.published == "verified":
        lo, hi = np.array(bench.x_lower), np.array(bench.x_upper)
        ro = simulate(bench, 0.5 * (lo + hi))
        assert ro.rho[0] > 0, f"{name}: the centre's trajectory violates a verified property"
    else:
        x0, rho, _ = search_counterexample(bench, samples=16, seed=0)
        assert rho < 0, f"{name}: no falsifying trajectory among the samples"
        # replayed on a 4x finer time grid and tighter tolerance: still a counterexample
        replay = simulate(bench, x0, dense=32, rtol=1e-12, atol=1e-13)
        assert replay.rho[0] < 0
        assert np.all(x0 >= np.array(bench.x_lower)) and np.all(x0 <= np.array(bench.x_upper))


def test_load_hands_check_closed_loop_its_arguments():
    temporal = pytest.importorskip("neuroctl.verify.temporal")
    plant, controller, lo, hi, spec, steps = load("tora_sigmoid")
    bench = BENCHMARKS["tora_sigmoid"]
    assert isinstance(spec, temporal.Property)
    assert (plant.dt, steps, plant.is_continuous) == (0.5, 10, True)
    np.testing.assert_array_equal(lo, [-0.77, -0.45, 0.51, -0.3])
    np.testing.assert_array_equal(hi, [-0.75, -0.43, 0.54, -0.28])
    x = np.random.default_rng(7).uniform(lo, hi, (5, 4))
    u = np.random.default_rng(8).uniform(-1, 1, (5, 1))
    np.testing.assert_array_equal(plant.rhs(x, u), bench.rhs(x, u))
    with torch.no_grad():
        assert_ulp_close(controller(torch.as_tensor(x)), 11 * bench.network()(torch.as_tensor(x)))


def test_load_names_the_benchmarks_it_knows():
    with pytest.raises(KeyError, match=r"expected one of \['unicycle'.*received 'unicylce'"):
        load("unicylce")


@pytest.mark.parametrize("name", ["vcas_19.5", "vcas_22.5", "vcas_25.5", "vcas_28.5"])
def test_vcas_branch_and_bound_reaches_the_published_verdicts(name):
    bench = BENCHMARKS[name]
    r = vcas.verify(bench, timeout=60)
    assert r.semantics == "discrete"
    assert r.status == {"verified": "holds", "falsified": "violated"}[bench.published]
    if r.status == "violated":
        assert simulate(bench, r.counterexample).rho[0] < 0
    else:
        # brute force on the one-dimensional initial set agrees: no sampled h violates
        lo, hi = bench.x_lower, bench.x_upper
        h = np.linspace(lo[0], hi[0], 2001)
        x0 = np.column_stack([h, np.tile(lo[1:], (h.size, 1))])
        assert simulate(bench, x0).rho.min() > 0


def test_vcas_branch_and_bound_finds_a_violation_of_a_wider_band():
    # the h0' = -22.5 encounter passes within 102.8 ft: a band of +-110 ft must be violated
    bench = BENCHMARKS["vcas_22.5"]
    (clause,) = bench.clauses
    wider = dataclasses.replace(
        bench,
        clauses=(
            dataclasses.replace(
                clause, lower=(-110.0,) + clause.lower[1:], upper=(110.0,) + clause.upper[1:]
            ),
        ),
    )
    r = vcas.verify(wider, timeout=60)
    assert r.status == "violated"
    assert simulate(wider, r.counterexample).rho[0] < 0


def test_check_closed_loop_refutes_the_falsified_double_pendulum():
    pytest.importorskip("neuroctl.verify.closed_loop")
    from neuroctl.verify import check_closed_loop

    plant, controller, lo, hi, spec, steps = load("double_pendulum_more_robust")
    r = check_closed_loop(plant, controller, lo, hi, spec, steps=steps, timeout=30)
    assert (r.status, r.semantics) == ("violated", "continuous")
    x0 = np.asarray(r.counterexample.x0)
    assert np.all(x0 >= lo) and np.all(x0 <= hi)
    # this package's simulator, independent of neuroctl's, confirms the violation
    assert simulate(BENCHMARKS["double_pendulum_more_robust"], x0).rho[0] < 0


def _tora_txt(path):
    """The TORA text format: n_in, n_out, n_hidden, sizes, then per neuron its weights and bias,
    then the output offset and scale."""
    v = [float(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]
    n_hidden = int(v[2])
    sizes = [int(v[0]), *(int(s) for s in v[3 : 3 + n_hidden]), int(v[1])]
    pos, layers = 3 + n_hidden, []
    for a, b in zip(sizes[:-1], sizes[1:]):
        W, bias = np.empty((b, a)), np.empty(b)
        for j in range(b):
            W[j], bias[j] = v[pos : pos + a], v[pos + a]
            pos += a + 1
        layers.append((W, bias))
    assert len(v) - pos == 2, path.name
    return layers, v[pos], v[pos + 1]


@pytest.mark.parametrize("name", ["tora_relu_tanh", "tora_sigmoid"])
def test_tora_text_files_hold_the_mat_networks(name):
    bench = BENCHMARKS[name]
    layers, offset, scale = _tora_txt(
        DATA / bench.folder / bench.controller.replace(".mat", ".txt")
    )
    linears = [m for m in bench.network() if isinstance(m, torch.nn.Linear)]
    for (W, b), lin in zip(layers, linears, strict=True):
        assert_ulp_close(lin.weight, W, maxulp=1)
        assert_ulp_close(lin.bias, b, maxulp=1)
    if name == "tora_relu_tanh":  # the file's output map is the control law u = 11 N(x)
        assert (offset, scale) == (0.0, bench.output_scale)


def _assert_sets_hold_the_trajectories(bench, r, n_random=2000, tol=1e-8):
    """Trajectories of this package's simulator (solve_ivp, rtol 1e-10, atol 1e-12) from the
    corners and random states of the initial box lie in the sets of the proved sub-box they
    start in: at the samples, and in its tube at the dense times of each period. ``tol`` covers
    the integration error, not the sets."""
    lo, hi = r.initial_lower, r.initial_upper
    n = lo.size
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    rng = np.random.default_rng(3)
    corners = np.unique(np.where(bits == 1, hi, lo), axis=0)  # a point box side counts once
    x0 = np.concatenate([corners, rng.uniform(lo, hi, (n_random, n))])
    ro = simulate(bench, x0, dense=6)
    inside = np.all((x0[:, None] >= r.box_lower[None]) & (x0[:, None] <= r.box_upper[None]), 2)
    assert inside.any(axis=1).all(), "the proved sub-boxes must cover the initial box"
    b = np.argmax(inside, axis=1)
    k = np.minimum(np.floor(ro.t / bench.dt + 1e-9).astype(int), r.steps)
    on = ro.sample
    assert np.all(ro.x[:, on] >= r.lower[b][:, k[on]] - tol)
    assert np.all(ro.x[:, on] <= r.upper[b][:, k[on]] + tol)
    mid = ~on
    assert np.all(ro.x[:, mid] >= r.tube_lower[b][:, k[mid]] - tol)
    assert np.all(ro.x[:, mid] <= r.tube_upper[b][:, k[mid]] + tol)


def test_double_pendulum_less_robust_proof_on_a_corner_holds_the_trajectories():
    # one sixteenth of the published initial box (its lower corner), unprovable as one box:
    # the sets diverge within 5 periods, are given up, and the box is cut along all four
    # dimensions at once; every "holds" is checked on ODE trajectories
    from neuroctl.verify import check_closed_loop

    bench = BENCHMARKS["double_pendulum_less_robust"]
    plant, controller, lo, hi, spec, steps = load(bench.name)
    hi = lo + 0.5 * (hi - lo)
    r = check_closed_loop(plant, controller, lo, hi, spec, steps=steps, timeout=120)
    assert (r.status, r.semantics) == ("holds", "continuous")
    assert r.box_lower.shape[0] == 16 and r.stats["boxes_analysed"] == 17
    _assert_sets_hold_the_trajectories(bench, r)


def test_quad_from_the_published_initial_set_is_proved_for_the_continuous_plant():
    # the published run's problem (1% of the specification file's radius): one box, 50 periods of
    # 0.1 s through the 12-state ODE; the sets hold ODE trajectories from its 64 corners
    from neuroctl.verify import check_closed_loop

    bench = BENCHMARKS["quad_small"]
    assert bench.published == "verified"
    np.testing.assert_allclose(bench.x_upper[:6], 0.004, rtol=1e-15)
    plant, controller, lo, hi, spec, steps = load(bench.name)
    r = check_closed_loop(plant, controller, lo, hi, spec, steps=steps, timeout=120)
    assert (r.status, r.semantics) == ("holds", "continuous")
    # the altitude at t = 5 s lies in the goal [0.94, 1.06] on every proved sub-box
    assert r.lower[:, steps, 2].min() >= 0.94 and r.upper[:, steps, 2].max() <= 1.06
    _assert_sets_hold_the_trajectories(bench, r, n_random=200)
