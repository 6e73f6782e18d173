"""Every bad input of the ``neuroctl`` command: exit 2, one line on stderr naming the option, no
traceback; with ``--json`` the error is in the JSON too. Exit 4 is kept for real bugs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import neuroctl
from neuroctl.cli import main

SIM = ["simulate", "Arm-v0", "-c", "pd"]
AN = ["analyze", "Arm-v0", "-c", "pd"]
VF = ["verify", "Arm-v0", "-c", "{net}"]
BOX = ["--lower", "-1", "--upper", "1"]
TR = ["train", "Arm-v0", "--algo", "diffsim", "--out", "{tmp}/run"]
TOY = "_cli_toy"  # tests/_cli_toy.py, imported by the module:Env-v0 form

# (id, argv, fragments of the one error line: the option first)
CASES = [
    # simulate: counts, seeds
    ("steps-0", [*SIM, "--steps", "0"], ["--steps", "received 0"]),
    ("steps-negative", [*SIM, "--steps", "-5"], ["--steps", "received -5"]),
    ("steps-text", [*SIM, "--steps", "abc"], ["--steps", "'abc'"]),
    ("steps-fraction", [*SIM, "--steps", "1.5"], ["--steps", "'1.5'"]),
    ("steps-exponent", [*SIM, "--steps", "1e3"], ["--steps", "'1e3'"]),
    ("steps-huge", [*SIM, "--steps", "10000001"], ["--steps", "10000000"]),
    ("episodes-0", [*SIM, "--episodes", "0"], ["--episodes", "received 0"]),
    ("episodes-negative", [*SIM, "--episodes", "-1"], ["--episodes"]),
    ("episodes-1e14", [*SIM, "--episodes", "100000000000000"], ["--episodes", "100000"]),
    ("episodes-text", [*SIM, "--episodes", "two"], ["--episodes", "'two'"]),
    ("seed-negative", [*SIM, "--seed", "-1"], ["--seed", "4294967295", "received -1"]),
    ("seed-2**32", [*SIM, "--seed", "4294967296"], ["--seed", "4294967295"]),
    ("seed-text", [*SIM, "--seed", "abc"], ["--seed"]),
    ("seed-fraction", [*SIM, "--seed", "1.5"], ["--seed"]),
    # envs
    ("env-unknown", ["simulate", "neuroctl/Nope-v0", "-c", "pd"], ["unknown environment", "Nope"]),
    ("env-unknown-bare", ["simulate", "Nope", "-c", "pd"], ["unknown environment 'Nope'"]),
    ("env-module-missing", ["simulate", "no_such_mod_xyz:E-v0", "-c", "zero"], ["no_such_mod_xyz"]),
    ("env-module-no-id", ["simulate", f"{TOY}:Missing-v0", "-c", "zero"], ["Missing-v0"]),
    ("env-discrete", ["simulate", "CartPole-v1", "-c", "zero"], ["CartPole-v1", "Box action"]),
    ("env-discrete-verify", ["verify", "CartPole-v1", "-c", "zero"], ["CartPole-v1", "Box"]),
    # controllers
    ("controller-name", ["simulate", "Arm-v0", "-c", "nope"], ["controller 'nope'", "pd"]),
    ("controller-missing", ["simulate", "Arm-v0", "-c", "{tmp}/absent.onnx"], ["absent.onnx"]),
    ("controller-directory", ["simulate", "Arm-v0", "-c", "{tmp}"], ["controller", "directory"]),
    ("controller-suffix", ["simulate", "Arm-v0", "-c", "{tmp}/x.h5"], ["x.h5", ".onnx"]),
    ("controller-garbage-pt", ["analyze", "Arm-v0", "-c", "{garbage_pt}"], ["neuroctl policy"]),
    ("controller-no-json", ["analyze", "Arm-v0", "-c", "{lonely_pt}"], ["lonely.json"]),
    ("controller-bad-nnet", ["simulate", "Arm-v0", "-c", "{bad_nnet}"], ["bad.nnet", ".nnet"]),
    ("controller-bad-onnx", ["simulate", "Arm-v0", "-c", "{bad_onnx}"], ["bad.onnx", "ONNX"]),
    ("controller-bad-zip", ["simulate", "Arm-v0", "-c", "{bad_zip}"], ["bad.zip", "SB3"]),
    ("controller-inputs", ["analyze", "Arm-v0", "-c", "{net3}"], ["controller", "4 inputs"]),
    ("controller-outputs", ["simulate", "Arm-v0", "-c", "{net2out}"], ["controller", "1 outputs"]),
    ("controller-none-shipped", ["simulate", "Pendulum-v1", "-c", "pretrained"], ["pretrained"]),
    ("controller-required", ["simulate", "Arm-v0"], ["-c/--controller"]),
    ("controller-nan-weights", ["analyze", "Arm-v0", "-c", "{nan_net}"], ["nan.pt", "finite"]),
    ("controller-nan-simulate", ["simulate", "Arm-v0", "-c", "{nan_net}"], ["nan.pt", "finite"]),
    (
        "controller-shipped-misfit",
        ["analyze", "RingRoad-v0", "-c", "pretrained", "-e", "n_av=2"],
        ["controller 'pretrained'", "expected 6 inputs", "3 inputs"],
    ),
    # env keywords
    ("kwarg-no-value", [*SIM, "-e", "novalue"], ["-e/--env-kwarg", "KEY=VALUE"]),
    ("kwarg-bad-key", [*SIM, "-e", "1x=2"], ["-e/--env-kwarg", "'1x=2'"]),
    ("kwarg-bad-value", [*SIM, "-e", "mass=-1"], ["-e/--env-kwarg", "mass"]),
    ("kwarg-unknown", [*SIM, "-e", "no_such_kw=1"], ["-e/--env-kwarg", "no_such_kw"]),
    ("kwarg-twice", [*SIM, "-e", "mass=1", "-e", "mass=2"], ["-e/--env-kwarg", "twice"]),
    (
        "kwarg-ring-of-one",
        ["simulate", "RingRoad-v0", "-c", "human", "-e", "n_vehicles=1", "-e", "n_av=0"],
        ["-e/--env-kwarg", "RingRoad"],
    ),
    # usage
    ("no-env", ["simulate"], ["env"]),
    ("unknown-option", [*SIM, "--nope"], ["--nope"]),
    ("unknown-command", ["nocommand"], ["nocommand"]),
    ("no-command", [], ["expected a command", "received none"]),
    ("no-command-debug", ["--debug"], ["expected a command"]),
    ("report-has-no-json", ["report", "--json"], ["--json"]),
    # analyze
    ("target-nan", [*AN, "--target", "nan"], ["--target", "finite", "nan"]),
    ("target-inf", [*AN, "--target", "inf"], ["--target", "finite", "inf"]),
    ("target-minus-inf", [*AN, "--target", "-inf"], ["--target", "finite"]),
    ("target-text", [*AN, "--target", "abc"], ["--target", "'abc'"]),
    ("target-count", [*AN, "--target", "1", "2"], ["--target", "expected 1", "received 2"]),
    ("plot-no-folder", [*AN, "--plot", "/proc/no/such/x.png"], ["--plot", "not a folder"]),
    ("plot-unwritable", [*AN, "--plot", "/proc/x.png"], ["--plot", "writable"]),
    ("plot-directory", [*AN, "--plot", "{tmp}"], ["--plot", "directory"]),
    ("plot-suffix", [*AN, "--plot", "{tmp}/x.xyz"], ["--plot", ".png"]),
    ("plot-missing-folder", [*AN, "--plot", "{tmp}/no/x.png"], ["--plot", "not a folder"]),
    (
        "analyze-no-plant",
        ["analyze", "MountainCarContinuous-v0", "-c", "zero"],
        ["MountainCarContinuous-v0", "plant"],
    ),
    (
        "analyze-module-no-plant",
        ["analyze", f"{TOY}:CliToyNoPlant-v0", "-c", "zero"],
        ["CliToyNoPlant-v0", "plant"],
    ),
    ("analyze-stateful", ["analyze", "RingRoad-v0", "-c", "pi"], ["controller 'pi'", "static"]),
    # verify: property values
    ("max-abs-nan", [*VF, *BOX, "--max-abs", "nan"], ["--max-abs", "nan"]),
    ("max-abs-inf", [*VF, *BOX, "--max-abs", "inf"], ["--max-abs", "inf"]),
    ("max-abs-negative", [*VF, *BOX, "--max-abs", "-1"], ["--max-abs", ">= 0"]),
    ("max-abs-count", [*VF, *BOX, "--max-abs", "1", "2"], ["--max-abs", "expected 1 value"]),
    (
        "output-bounds-unordered",
        [*VF, *BOX, "--output-lower", "5", "--output-upper", "-5"],
        ["--output-lower", "<="],
    ),
    ("output-lower-nan", [*VF, *BOX, "--output-lower", "nan"], ["--output-lower", "finite"]),
    ("output-upper-inf", [*VF, *BOX, "--output-upper", "inf"], ["--output-upper", "finite"]),
    ("output-lower-count", [*VF, *BOX, "--output-lower", "0", "1"], ["--output-lower"]),
    ("timeout-negative", [*VF, *BOX, "--timeout", "-1"], ["--timeout", "> 0"]),
    ("timeout-zero", [*VF, *BOX, "--timeout", "0"], ["--timeout", "> 0"]),
    ("timeout-nan", [*VF, *BOX, "--timeout", "nan"], ["--timeout", "nan"]),
    ("timeout-inf", [*VF, *BOX, "--timeout", "inf"], ["--timeout", "inf"]),
    ("timeout-text", [*VF, *BOX, "--timeout", "abc"], ["--timeout", "'abc'"]),
    # verify: options that exclude each other
    (
        "max-abs-and-vnnlib",
        [*VF, "--max-abs", "9", "--vnnlib", "{vnnlib}"],
        ["--max-abs", "vnnlib"],
    ),
    (
        "output-and-vnnlib",
        [*VF, "--output-upper", "1", "--vnnlib", "{vnnlib}"],
        ["--output-upper", "--vnnlib"],
    ),
    ("box-and-vnnlib", [*VF, "--lower", "0", "--vnnlib", "{vnnlib}"], ["--lower", "--vnnlib"]),
    (
        "max-abs-and-output",
        [*VF, *BOX, "--max-abs", "1", "--output-lower", "0"],
        ["--max-abs", "--output-lower"],
    ),
    # verify: the box
    ("lower-nan", [*VF, "--lower", "nan", "--upper", "1"], ["--lower", "finite"]),
    ("upper-inf", [*VF, "--lower", "-1", "--upper", "inf"], ["--upper", "finite"]),
    ("box-unordered", [*VF, "--lower", "1", "--upper", "0"], ["--lower", "<="]),
    (
        "box-unordered-component",
        [*VF, "--lower", "0", "0", "0", "0", "--upper", "1", "1", "-1", "1"],
        ["--lower", "component 2"],
    ),
    ("box-count", [*VF, "--lower", "0", "0", "--upper", "1"], ["--lower", "1 or 4"]),
    ("box-unbounded", VF, ["--lower and --upper", "unbounded", "0 (error), 1 (omega)"]),
    ("box-half-unbounded", [*VF, "--lower", "-1"], ["--upper", "unbounded", "0 (error)"]),
    ("verify-no-network", ["verify", "Arm-v0", "-c", "zero", *BOX], ["--controller", "zero"]),
    ("verify-stateful", ["verify", "RingRoad-v0", "-c", "pi"], ["controller 'pi'", "static"]),
    ("vnnlib-missing", [*VF, "--vnnlib", "{tmp}/absent.vnnlib"], ["--vnnlib", "not found"]),
    ("vnnlib-directory", [*VF, "--vnnlib", "{tmp}"], ["--vnnlib", "directory"]),
    ("vnnlib-garbage", [*VF, "--vnnlib", "{bad_vnnlib}"], ["--vnnlib", "unbalanced"]),
    ("vnnlib-sizes", [*VF, "--vnnlib", "{empty_vnnlib}"], ["--vnnlib", "4 inputs"]),
    # train
    ("train-steps-0", [*TR, "--steps", "0"], ["--steps", "received 0"]),
    ("train-steps-negative", [*TR, "--steps", "-1"], ["--steps"]),
    ("train-steps-huge", [*TR, "--steps", "10000000000"], ["--steps", "1000000000"]),
    ("train-seed-negative", [*TR, "--seed", "-1"], ["--seed", "received -1"]),
    ("train-seed-2**32", [*TR, "--seed", "4294967296"], ["--seed"]),
    ("train-out-unwritable", ["train", "Arm-v0", "--out", "/proc/x/run"], ["--out", "writable"]),
    ("train-out-file", ["train", "Arm-v0", "--out", "{file}"], ["--out", "file"]),
    ("train-out-required", ["train", "Arm-v0"], ["--out"]),
    ("train-activation", [*TR, "--activation", "swish2"], ["--activation", "relu"]),
    ("train-algo", ["train", "Arm-v0", "--algo", "foo", "--out", "{tmp}/r"], ["--algo", "foo"]),
    ("train-env", ["train", "Nope-v0", "--out", "{tmp}/r"], ["unknown environment 'Nope-v0'"]),
    ("train-kwarg", [*TR, "-e", "mass=-1"], ["-e/--env-kwarg", "mass"]),
    ("train-seed-and-seeds", [*TR, "--seed", "1", "--seeds", "0", "1"], ["--seeds", "--seed"]),
    ("train-seeds-repeated", [*TR, "--seeds", "0", "0"], ["--seeds", "distinct", "[0, 0]"]),
    ("train-seeds-none", [*TR, "--seeds"], ["--seeds"]),
    ("train-workers-one-seed", [*TR, "--workers", "2"], ["--workers", "--seeds"]),
    ("train-no-stop-diffsim", [*TR, "--no-stop"], ["--no-stop", "diffsim"]),
    # demo and report
    ("demo-out-unwritable", ["demo", "--out", "/proc/x"], ["--out", "writable"]),
    ("demo-out-file", ["demo", "--out", "{file}"], ["--out", "file"]),
    ("demo-out-other-files", ["demo", "--out", "{busy}"], ["--out", "other files"]),
    ("report-out-unwritable", ["report", "--out", "/proc/x/y"], ["--out", "writable"]),
]


def _slope_net(n_in: int, n_out: int, activation=nn.ReLU):
    net = nn.Sequential(nn.Linear(n_in, 4), activation(), nn.Linear(4, n_out))
    torch.manual_seed(0)
    return net


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The files the cases name, each made the way a user would make it."""
    from neuroctl.train.export import save_policy

    tmp = tmp_path_factory.mktemp("cli_errors")
    f = {"tmp": str(tmp)}
    f["net"] = str(save_policy(_slope_net(4, 1), tmp / "net"))
    f["net3"] = str(save_policy(_slope_net(3, 1), tmp / "net3"))
    f["net2out"] = str(save_policy(_slope_net(4, 2), tmp / "net2out"))
    f["tanh"] = str(save_policy(_slope_net(4, 1, nn.Tanh), tmp / "tanh"))
    broken = _slope_net(4, 1)
    with torch.no_grad():
        broken[2].bias.fill_(float("nan"))
    f["nan_net"] = str(save_policy(broken, tmp / "nan"))
    garbage = Path(save_policy(_slope_net(4, 1), tmp / "garbage"))
    garbage.write_bytes(b"garbage")
    f["garbage_pt"] = str(garbage)
    lonely = Path(save_policy(_slope_net(4, 1), tmp / "lonely"))
    lonely.with_suffix(".json").unlink()
    f["lonely_pt"] = str(lonely)
    (tmp / "bad.nnet").write_text("2,4,1,8,\nnot numbers\n")
    (tmp / "bad.onnx").write_bytes(b"not a protobuf")
    (tmp / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    for name in ("bad_nnet", "bad_onnx", "bad_zip"):
        f[name] = str(tmp / name.replace("_", "."))
    decls = "\n".join(f"(declare-const X_{i} Real)" for i in range(4))
    (tmp / "q.vnnlib").write_text(
        decls
        + "\n(declare-const Y_0 Real)\n"
        + "\n".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))" for i in range(4))
        + "\n(assert (>= Y_0 100))\n"
    )
    f["vnnlib"] = str(tmp / "q.vnnlib")
    (tmp / "bad.vnnlib").write_text("(assert (>= X_0 1)\n")
    f["bad_vnnlib"] = str(tmp / "bad.vnnlib")
    (tmp / "empty.vnnlib").write_text("; nothing declared\n")
    f["empty_vnnlib"] = str(tmp / "empty.vnnlib")
    (tmp / "plain.txt").write_text("a file, not a folder\n")
    f["file"] = str(tmp / "plain.txt")
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.txt").write_text("someone else's\n")
    f["busy"] = str(tmp / "busy")
    return f


def _argv(template, files):
    return [a.format(**files) for a in template]


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_naming_the_option(argv, fragments, files, capsys):
    code = main(_argv(argv, files))
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    line = _one_line(err)
    assert line.startswith("neuroctl"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "internal error" not in line


def test_there_are_more_cases_than_the_issue_tried():
    assert len(CASES) >= 84
    assert len({c[0] for c in CASES}) == len(CASES)


JSON_CASES = [c for c in CASES if c[0] in {
    "steps-0", "seed-negative", "target-nan", "max-abs-and-vnnlib", "box-unbounded",
    "controller-missing", "kwarg-ring-of-one", "timeout-nan", "env-unknown", "unknown-option",
}]  # fmt: skip


@pytest.mark.parametrize(
    "argv, fragments", [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES]
)
def test_with_json_the_error_is_json_on_stdout_too(argv, fragments, files, capsys):
    code = main([*_argv(argv, files), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    line = _one_line(err)
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and doc["error"]["type"] == "usage"
    assert doc["error"]["message"] in line
    for fragment in fragments:
        assert fragment in doc["error"]["message"]


def test_a_bug_is_exit_4_in_one_line_and_in_the_json(monkeypatch, capsys):
    import neuroctl.cli as cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_simulate", broken)
    assert main(SIM) == 4
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert "internal error" in line and "RuntimeError: a bug" in line and "--debug" in line
    assert main([*SIM, "--json"]) == 4
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc == {
        "error": {
            "type": "internal",
            "message": doc["error"]["message"],
            "command": "neuroctl simulate",
        },
        "exit_code": 4,
    }
    assert "RuntimeError: a bug" in doc["error"]["message"]
    with pytest.raises(RuntimeError, match="a bug"):  # --debug shows the traceback
        main(["--debug", *SIM])


def test_ctrl_c_is_exit_130(monkeypatch, capsys):
    import neuroctl.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_simulate", interrupted)
    assert main(SIM) == 130
    assert "interrupted" in _one_line(capsys.readouterr().err)


def test_neuroctl_load_reports_a_directory_as_a_directory(tmp_path):
    from neuroctl.files import LoadError

    with pytest.raises(LoadError, match="received a directory"):
        neuroctl.load(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        neuroctl.load(tmp_path / "absent.pt")
    with pytest.raises(TypeError, match="path: expected a str or pathlib.Path, received int"):
        neuroctl.load(3)


def test_verify_decides_a_tanh_network_soundly(files, capsys):
    # tanh networks are no longer refused: the bound is proved, and no sampled command exceeds it
    from neuroctl.files import load

    code = main(["verify", "Arm-v0", "-c", files["tanh"], *BOX, "--max-abs", "1", "--json"])
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    net = load(files["tanh"])
    x = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (100_000, 4)), dtype=torch.float32)
    with torch.no_grad():
        sampled = float(net(x).abs().max())
    assert code == (0 if sampled <= 1 else 1), doc
    if code == 0:
        assert doc["status"] == "holds"
