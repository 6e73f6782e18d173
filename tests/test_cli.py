"""The ``neuroctl`` command: exit codes, one-line input errors, JSON output checked against closed
forms and REFERENCE.md, the demo and its report in headless Chromium."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neuroctl.cli import main

ARM = ["-e", "mass=1.0", "-e", "length=1.0", "-e", "friction=0.5"]
INERTIA, FRICTION = 1.0 / 3.0, 0.5  # uniform rod about its end, m l^2 / 3


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def slope_net(activation: str, gain: float, *, shift: float = 0.0, centre: float = 0.0):
    """u = gain * act(e + shift) + centre on the arm observation [e, omega, sin, cos]."""
    first, last = nn.Linear(4, 1), nn.Linear(1, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        first.bias.fill_(shift)
        last.weight.fill_(gain)
        last.bias.fill_(centre)
    return nn.Sequential(
        first, {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[activation](), last
    )


def saved(tmp_path, net, name="net"):
    from neuroctl.train.export import save_policy

    return str(save_policy(net, tmp_path / name))


def closed_form_poles(k_eff: float, k_g: float) -> np.ndarray:
    """Roots of I s^2 + b s + (k_eff + k_g) = 0 (arm linearized at theta = 0)."""
    return np.sort_complex(np.roots([INERTIA, FRICTION, k_eff + k_g]))


def poles_of(region: dict) -> np.ndarray:
    return np.sort_complex(np.array([complex(a, b) for a, b in region["poles"]]))


# --- input errors: one line, exit 2, no traceback ---------------------------------------------


def needs_verify():
    import neuroctl.verify

    missing = [n for n in ("check", "Spec", "load_onnx") if not hasattr(neuroctl.verify, n)]
    if missing:
        pytest.skip(f"neuroctl.verify does not export {missing}")


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]


def test_unknown_env_is_an_input_error(capsys):
    code, out, err = run(capsys, "simulate", "neuroctl/Nope-v0", "-c", "pd")
    assert_one_line_error(code, err, "unknown environment 'neuroctl/Nope-v0'", "neuroctl/Arm-v0")


def test_missing_and_corrupt_files_are_input_errors(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", str(tmp_path / "absent.onnx"))
    assert_one_line_error(code, err, "absent.onnx", "not found")
    pt = Path(saved(tmp_path, slope_net("relu", 4.0)))
    pt.write_bytes(b"garbage")
    code, _, err = run(capsys, "analyze", "Arm-v0", "-c", str(pt))
    assert_one_line_error(code, err, "net.pt", "expected a neuroctl policy")
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", str(tmp_path / "x.h5"))
    assert_one_line_error(code, err, "x.h5", ".onnx")


def test_corrupt_onnx_file_is_an_input_error(capsys, tmp_path):
    needs_verify()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    code, _, err = run(capsys, "analyze", "Arm-v0", "-c", str(bad))
    assert_one_line_error(code, err, "bad.onnx", "expected an ONNX model")


def test_network_of_the_wrong_size_is_an_input_error(capsys, tmp_path):
    import neuroctl

    net = neuroctl.mlp(3, 1, hidden=(8,), seed=0)
    code, _, err = run(capsys, "analyze", "Arm-v0", "-c", saved(tmp_path, net))
    assert_one_line_error(code, err, "expected 4 inputs", "received a network with 3 inputs")
    net = neuroctl.mlp(4, 2, hidden=(8,), seed=0)
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", saved(tmp_path, net, "two"))
    assert_one_line_error(code, err, "expected 1 outputs", "with 2 outputs")


def test_bad_options_are_input_errors(capsys):
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", "pd", "-e", "mass=-1")
    assert_one_line_error(code, err, "mass")
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", "no_such_controller")
    assert_one_line_error(code, err, "no_such_controller", "pd")
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", "pd", "-e", "novalue")
    assert_one_line_error(code, err, "KEY=VALUE")
    code, _, err = run(capsys, "train", "Arm-v0", "--activation", "swish2", "--out", "x")
    assert_one_line_error(code, err, "--activation", "relu")


def test_console_script_usage_error_exit_code():
    # the installed entry point, as a user runs it
    proc = subprocess.run(
        [sys.executable, "-m", "neuroctl.cli", "analyze", "Arm-v0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--controller" in proc.stderr and "Traceback" not in proc.stderr


# --- simulate ----------------------------------------------------------------------------------


def test_simulate_json_matches_a_hand_written_rollout(capsys):
    import gymnasium as gym
    from neuroctl.envs.arm import pd_gravity_controller

    code, out, err = run(
        capsys,
        "simulate",
        "Arm-v0",
        "-c",
        "pd",
        "--episodes",
        "2",
        "--seed",
        "3",
        "--json",
        "--progress",
    )
    assert code == 0
    assert "100%" in err  # the progress bar ran to the end
    result = json.loads(out)
    env = gym.make("neuroctl/Arm-v0")
    ctrl = pd_gravity_controller(env.unwrapped.params)
    for k, episode in enumerate(result["episodes"]):
        obs, _ = env.reset(seed=3 + k)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                a = ctrl(torch.as_tensor(obs, dtype=torch.float64)).numpy().astype(np.float32)
            obs, r, term, trunc, _ = env.step(a)
            total += r
            done = term or trunc
        assert episode["return"] == pytest.approx(total, rel=1e-9)
        err_final = abs(env.unwrapped.reference[0] - env.unwrapped.state[0])
        assert episode["final_error"] == pytest.approx(err_final, abs=1e-12)


# --- analyze: poles against the closed form, exit codes by verdict -----------------------------


def test_analyze_reproduces_the_activation_slope_table(capsys, tmp_path):
    # horizontal arm, u = 4 tanh(e): slope 1 -> poles -0.75 +- 3.38j (REFERENCE.md)
    path = saved(tmp_path, slope_net("tanh", 4.0))
    code, out, _ = run(capsys, "analyze", "Arm-v0", "-c", path, *ARM, "-e", "gravity=0.0", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["verdict"] == "stable"
    np.testing.assert_allclose(poles_of(rep["regions"][0]), closed_form_poles(4.0, 0.0), atol=1e-9)
    assert poles_of(rep["regions"][0])[0] == pytest.approx(complex(-0.75, -3.38), abs=5e-3)
    # upright (k_g = -5), sigmoid centred with k w = 8: slope 1/4 -> unstable pole +2.34, exit 1
    path = saved(tmp_path, slope_net("sigmoid", 8.0, centre=-4.0), "sig")
    code, out, _ = run(
        capsys, "analyze", "Arm-v0", "-c", path, *ARM, "-e", "gravity=-10.0", "--json"
    )
    rep = json.loads(out)
    assert code == 1 and rep["verdict"] == "unstable"
    expected = closed_form_poles(8.0 / 4.0, -5.0)
    np.testing.assert_allclose(poles_of(rep["regions"][0]), expected, atol=1e-9)
    assert expected.real.max() == pytest.approx(2.34, abs=5e-3)


def test_analyze_at_a_kink_is_undecided(capsys, tmp_path):
    # u = 4 relu(e) at e = 0: slope 1 on one side (stable), 0 on the other (a pole at 0)
    path = saved(tmp_path, slope_net("relu", 4.0))
    code, out, _ = run(capsys, "analyze", "Arm-v0", "-c", path, *ARM, "-e", "gravity=0.0", "--json")
    rep = json.loads(out)
    assert rep["verdict"] == "depends on region" and code == 3
    found = sorted((poles_of(r) for r in rep["regions"]), key=lambda p: p.real.max())
    np.testing.assert_allclose(found[0], closed_form_poles(4.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(found[1], closed_form_poles(0.0, 0.0), atol=1e-9)
    # the human-readable table says the same
    code, out, _ = run(capsys, "analyze", "Arm-v0", "-c", path, *ARM, "-e", "gravity=0.0")
    assert code == 3 and "DEPENDS ON REGION" in out


# --- verify ------------------------------------------------------------------------------------


def test_verify_holds_and_violated_with_a_checked_counterexample(capsys, tmp_path):
    needs_verify()
    # u = 4 relu(e + 0.5) - 2 is increasing in e: over e in [-1, 1] its range is [-2, 4]
    net = slope_net("relu", 4.0, shift=0.5, centre=-2.0)
    path = saved(tmp_path, net)
    box = ["--lower", "-1", "-1", "-1", "-1", "--upper", "1", "1", "1", "1"]
    code, out, _ = run(capsys, "verify", "Arm-v0", "-c", path, *box, "--max-abs", "4.001", "--json")
    res = json.loads(out)
    assert code == 0 and res["status"] == "holds"
    code, out, _ = run(capsys, "verify", "Arm-v0", "-c", path, *box, "--max-abs", "3.5", "--json")
    res = json.loads(out)
    assert code == 1 and res["status"] == "violated"
    x = np.array(res["queries"][0]["counterexample"])
    assert np.all(x >= -1 - 1e-12) and np.all(x <= 1 + 1e-12)
    u = 4.0 * max(x[0] + 0.5, 0.0) - 2.0  # the network by hand
    assert abs(u) > 3.5
    assert res["queries"][0]["output"][0] == pytest.approx(u, abs=1e-5)


def test_verify_reads_the_property_from_a_vnnlib_file(capsys, tmp_path):
    needs_verify()
    net = slope_net("relu", 4.0, shift=0.5, centre=-2.0)  # increasing in e, u(0.5) = 2
    path = saved(tmp_path, net)
    decls = "\n".join(f"(declare-const X_{i} Real)" for i in range(4))
    box = "\n".join(
        f"(assert (>= X_{i} {lo}))\n(assert (<= X_{i} {hi}))"
        for i, (lo, hi) in enumerate([(-0.5, 0.5), (-1, 1), (-1, 1), (0, 1)])
    )
    for threshold, status, code_expected in ((2.5, "holds", 0), (1.5, "violated", 1)):
        # unsafe: u >= threshold somewhere in the box (the largest u is 4 relu(1) - 2 = 2)
        query = f"{decls}\n(declare-const Y_0 Real)\n{box}\n(assert (>= Y_0 {threshold}))\n"
        (tmp_path / "q.vnnlib").write_text(query)
        code, out, _ = run(
            capsys, "verify", "Arm-v0", "-c", path, "--vnnlib", str(tmp_path / "q.vnnlib"), "--json"
        )
        res = json.loads(out)
        assert (code, res["status"]) == (code_expected, status)
    x = np.array(res["queries"][0]["counterexample"])
    assert 4.0 * max(x[0] + 0.5, 0.0) - 2.0 >= 1.5 - 1e-9
    code, _, err = run(capsys, "verify", "Arm-v0", "-c", path, "--vnnlib", str(tmp_path / "no"))
    assert_one_line_error(code, err, "--vnnlib", "not found")


# --- the demo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["demo", "--quick", "--json", "--no-progress", "--out", str(out)])
    return code, json.loads(buf.getvalue()), out


def test_demo_prints_its_tables_then_notes_then_where_the_report_is(tmp_path):
    from neuroctl.demo import DemoResult

    page = tmp_path / "index.html"
    res = DemoResult(page, {}, notes=["no sumo", "quick"], text="T1\nT2", seconds=12.34)
    tail = f"note: no sumo\nnote: quick\nreport written to {page} (12.3 s)"
    assert res.report() == f"T1\nT2\n\n{tail}"
    assert res.report(tables=False) == tail  # what `neuroctl report` prints


def test_demo_numbers_match_closed_forms_and_reference(demo_run):
    code, summary, out = demo_run
    assert code == 0
    assert Path(summary["report"]) == (out / "index.html").resolve()
    stab = {r["controller"]: r for r in summary["arm"]["stability"]}
    # horizontal arm, slope 1: damping ratio b / (2 sqrt(I k w)) (REFERENCE: 0.217, PM 24.4 deg)
    zeta = FRICTION / (2 * math.sqrt(INERTIA * 4.0))
    assert stab["relu (horizontal)"]["damping"] == pytest.approx(zeta, rel=1e-9)
    assert stab["tanh (horizontal)"]["PM [deg]"] == pytest.approx(24.4, abs=0.05)
    assert stab["sigmoid (horizontal)"]["overshoot [%]"] == pytest.approx(22.1, abs=0.1)
    assert stab["sigmoid (upright)"]["verdict"] == "unstable"
    # the nonlinear simulation agrees: the sigmoid cannot hold the upright arm, tanh can
    sims = {(r["arm"], r["activation"]): r for r in summary["arm"]["simulation"]}
    assert abs(sims[("upright", "sigmoid")]["final error [rad]"]) > 1.0
    assert abs(sims[("upright", "tanh")]["final error [rad]"]) < 0.05
    # ring: the all-human uniform flow is unstable with growth rate +0.0235 1/s (REFERENCE.md)
    ring = {r["scenario"]: r for r in summary["ring"]["stability"]}
    if "all human" in ring:
        assert ring["all human"]["max Re [1/s]"] == pytest.approx(0.0235, abs=5e-5)
    metrics = {r["scenario"]: r for r in summary["ring"]["metrics"]}
    assert metrics["all human"]["min_gap"] >= 0.0


def test_demo_verification_result_agrees_with_brute_force(demo_run):
    needs_verify()
    code, summary, out = demo_run
    ver = summary["verification"]
    import neuroctl

    policy = neuroctl.pretrained("neuroctl/Arm-v0")
    lower, upper, bound = np.array(ver["lower"]), np.array(ver["upper"]), ver["bound"]
    rng = np.random.default_rng(1)
    y = lower + (upper - lower) * rng.random((100_000, 4))
    with torch.no_grad():
        u = policy(torch.as_tensor(y, dtype=torch.float32)).double().numpy()[:, 0]
    if ver["status"] == "holds":  # a proof: no sample may contradict it
        assert np.abs(u).max() <= bound + 1e-5
    else:
        assert ver["status"] == "violated"
        x = np.array(ver["counterexample"])
        assert np.all(x >= lower - 1e-9) and np.all(x <= upper + 1e-9)
        with torch.no_grad():
            ux = policy(torch.as_tensor(x[None], dtype=torch.float32)).double().item()
        assert abs(ux) > bound - 1e-5


def test_demo_report_loads_in_headless_chromium(demo_run):
    from test_report import CHROMIUM, chromium_check

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    code, summary, out = demo_run
    result = chromium_check(out / "index.html")
    assert len(result["images"]) >= 5  # space-time, speeds, arm steps, pole maps
    assert all(img["complete"] and img["width"] > 0 for img in result["images"]), result
    assert result["errors"] == [] and result["console"] == [], result


def test_demo_says_why_the_neural_av_damps_the_wave_though_not_string_stable(demo_run):
    import re

    import neuroctl

    code, summary, out = demo_run
    ring = summary["ring"]
    law = {r["law"]: r for r in ring["string"]}["neural AV (pretrained)"]
    stab = {r["scenario"]: r for r in ring["stability"]}
    sims = {r["scenario"]: r for r in ring["metrics"]}
    # the gain at the wave against the closed form G(s) = (a_l s + a_s) / (s^2 - a_v s + a_s)
    p = neuroctl.string_stability(neuroctl.pretrained("neuroctl/RingRoad-v0"), gap=law["gap [m]"])
    a_s, a_v, a_l = (p.partials[k] for k in ("a_s", "a_v", "a_l"))
    s = 2j * math.pi / stab["all human"]["period [s]"]
    closed_form = abs((a_l * s + a_s) / (s * s - a_v * s + a_s))
    assert law["gain at the wave"] == pytest.approx(closed_form, rel=1e-9)
    assert law["peak gain"] == pytest.approx(1.333, abs=5e-4) and not law["string stable"]
    # the two results that seem to disagree, and the text that says why
    assert stab["neural AV (pretrained)"]["verdict"] == "stable"
    assert sims["neural AV (pretrained)"]["speed_std"] < sims["all human"]["speed_std"]
    html = (out / "index.html").read_text()
    text = re.sub(r"\s+", " ", html)
    assert (
        "Why neural AV (pretrained) damps the wave although it is &#x27;not string stable&#x27;"
        in text
    )
    assert "infinite platoon" in text and f"{law['gain at the wave']:.3g}" in text


def test_demo_report_has_no_unexplained_empty_cell(demo_run):
    import re

    code, summary, out = demo_run
    html = (out / "index.html").read_text()
    assert re.findall(r"<td[^>]*></td>", html) == []
    # the upright sigmoid arm: its empty step-response cells point to a footnote saying why
    assert "n/a: unstable: no step response to settle" in html


# --- train -------------------------------------------------------------------------------------


def test_train_exports_a_policy_and_analyzes_it(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, _ = run(
        capsys,
        "train",
        "Arm-v0",
        "--algo",
        "diffsim",
        "--activation",
        "leaky_relu",
        "--steps",
        "3",
        "--seed",
        "1",
        "--out",
        str(out),
        "--json",
        "--no-progress",
    )
    assert code == 0
    result = json.loads(text)
    assert result["steps_done"] == 3 and not result["interrupted"]
    from neuroctl.train.export import load_policy

    policy = load_policy(result["policy_path"])
    assert any(isinstance(m, nn.LeakyReLU) for m in policy.modules())
    # the summary's analysis is that of the exported file, as `neuroctl analyze` computes it
    code, text, _ = run(capsys, "analyze", "Arm-v0", "-c", result["policy_path"], "--json")
    direct = json.loads(text)
    summary = result["summary"]["analysis"]
    assert summary["verdict"] == direct["verdict"]
    np.testing.assert_allclose(
        poles_of(summary["regions"][0]), poles_of(direct["regions"][0]), atol=1e-9
    )
    assert code == {"stable": 0, "unstable": 1}.get(direct["verdict"], 3)


# --- saved networks: SB3 zip ----------------------------------------------------------------


def test_sb3_zip_controller_acts_as_sb3_predicts(capsys, tmp_path):
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed")
    import gymnasium as gym

    env = gym.make("neuroctl/Arm-v0")
    model = sb3.PPO("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
    model.save(tmp_path / "ppo")
    code, out, _ = run(
        capsys, "simulate", "Arm-v0", "-c", str(tmp_path / "ppo.zip"), "--seed", "5", "--json"
    )
    assert code == 0
    # the same episode driven by SB3's own deterministic predict
    obs, _ = env.reset(seed=5)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, r, term, trunc, _ = env.step(action)
        total += r
        done = term or trunc
    assert json.loads(out)["episodes"][0]["return"] == pytest.approx(total, rel=1e-4)
    # an SB3 model of another env (Pendulum-v1: 3 observations) does not fit the arm
    other = sb3.PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0, device="cpu")
    other.save(tmp_path / "pendulum")
    code, _, err = run(capsys, "analyze", "Arm-v0", "-c", str(tmp_path / "pendulum.zip"))
    assert_one_line_error(code, err, "expected 4 inputs", "3 inputs")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run(capsys, "analyze", "Arm-v0", "-c", str(tmp_path / "broken.zip"))
    assert_one_line_error(code, err, "broken.zip", "expected an SB3 model")


# --- saved networks: ONNX and .nnet, each against an independent evaluator --------------------


def _mlp_weights(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(8, 4)) * 0.5, rng.normal(size=8) * 0.1),
        (rng.normal(size=(1, 8)) * 0.5, rng.normal(size=1) * 0.1),
    ]


def _episode_return(policy_fn, seed: int) -> float:
    import gymnasium as gym

    env = gym.make("neuroctl/Arm-v0")
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(np.asarray(policy_fn(obs), np.float32).reshape(1))
        total += r
        done = term or trunc
    return total


def test_onnx_controller_acts_as_onnxruntime_computes(capsys, tmp_path):
    needs_verify()
    onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install onnx)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from onnx import TensorProto, helper, numpy_helper

    (w1, b1), (w2, b2) = _mlp_weights(1)
    inits = [
        numpy_helper.from_array(a.astype(np.float32), name)
        for a, name in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def reference(obs):
        return session.run(None, {"x": np.asarray(obs, np.float32).reshape(1, 4)})[0][0]

    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", str(path), "--seed", "2", "--json")
    assert code == 0
    assert json.loads(out)["episodes"][0]["return"] == pytest.approx(
        _episode_return(reference, 2), rel=1e-4
    )


def test_nnet_controller_acts_as_the_format_defines(capsys, tmp_path):
    needs_verify()

    def num(v):
        return f"{float(v):.17g}"

    (w1, b1), (w2, b2) = _mlp_weights(2)
    mean_in, range_in = np.array([0.1, -0.2, 0.0, 0.5]), np.array([2.0, 4.0, 1.0, 1.5])
    mean_out, range_out = 0.3, 5.0
    lines = [
        "// a hand-written .nnet file",
        "2,4,1,8,",
        "4,8,1,",
        "0,",
        ",".join(["-1e6"] * 4) + ",",
        ",".join(["1e6"] * 4) + ",",
        ",".join(map(num, [*mean_in, mean_out])) + ",",
        ",".join(map(num, [*range_in, range_out])) + ",",
    ]
    for w, b in ((w1, b1), (w2, b2)):
        lines += [",".join(map(num, row)) + "," for row in w]
        lines += [num(v) + "," for v in b]
    path = tmp_path / "mlp.nnet"
    path.write_text("\n".join(lines) + "\n")

    def reference(obs):  # the .nnet semantics: normalize inputs, ReLU hidden, unnormalize
        x = (np.asarray(obs, float) - mean_in) / range_in
        h = np.maximum(w1 @ x + b1, 0.0)
        return (w2 @ h + b2) * range_out + mean_out

    code, out, _ = run(capsys, "simulate", "Arm-v0", "-c", str(path), "--seed", "4", "--json")
    assert code == 0
    assert json.loads(out)["episodes"][0]["return"] == pytest.approx(
        _episode_return(reference, 4), rel=1e-4
    )
    (tmp_path / "bad.nnet").write_text("2,4,1,8,\nnot numbers\n")
    code, _, err = run(capsys, "simulate", "Arm-v0", "-c", str(tmp_path / "bad.nnet"))
    assert_one_line_error(code, err, "bad.nnet", "expected an .nnet network")
