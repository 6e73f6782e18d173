"""neuroctl verify --instances: a VNN-COMP instances.csv decided on workers, in the file's order,
against the published VNN-COMP 2021 consensus verdicts."""

import csv
import json

import pytest

from benchmarks.data import missing_reason, shared_data
from neuroctl.cli import main
from neuroctl.verify.instances import read_instances, verify_instances

DATA = shared_data("acasxu")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=missing_reason("acasxu"))
# small ACAS Xu instances, holding and violated, each decided well under a second
PICK = [("1_4", "prop_3"), ("1_7", "prop_3"), ("2_4", "prop_3"), ("1_8", "prop_3")]


def _instances_csv(tmp_path):
    path = tmp_path / "instances.csv"
    with open(path, "w") as f:
        for net, prop in PICK:
            a, b = net.split("_")
            onnx = DATA / "onnx" / f"ACASXU_run2a_{a}_{b}_batch_2000.onnx"
            f.write(f"{onnx},{DATA / 'vnnlib' / (prop + '.vnnlib')},30\n")
    return path


def _published():
    with open(DATA / "acasxu_vnncomp2021_verdicts.csv") as f:
        truth = {(r["network"], r["property"]): r["consensus_verdict"] for r in csv.DictReader(f)}
    return [truth[k] for k in PICK]


def test_cli_decides_the_instances_on_two_workers_as_published(tmp_path, capsys):
    path = _instances_csv(tmp_path)
    code = main(["verify", "--instances", str(path), "--workers", "2", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == _published()
    assert [r["onnx"] for r in rows] == [str(o) for o, _, _ in read_instances(path)]
    assert code == 1  # some instance is violated
    assert [r["status"] for r in verify_instances(path)] == _published()


def test_instances_mode_excludes_a_controller_and_bad_rows_are_named(tmp_path, capsys):
    path = _instances_csv(tmp_path)
    assert main(["verify", "--instances", str(path), "-c", "x.onnx"]) == 2
    assert "--controller: not allowed with --instances" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a.onnx,b.vnnlib\n")
    with pytest.raises(ValueError, match="line 1: expected 'onnx,vnnlib,timeout'"):
        read_instances(bad)
    assert main(["verify"]) == 2
    assert "--instances FILE.csv" in capsys.readouterr().err
    assert main(["verify", "Arm-v0", "-c", "x.onnx", "--workers", "2"]) == 2
    assert "--workers: used with --instances only" in capsys.readouterr().err
    assert main(["verify", "--instances", str(path), "--workers", "0"]) == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
    assert main(["verify"]) == 2
    assert "--instances FILE.csv" in capsys.readouterr().err
