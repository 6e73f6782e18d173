"""benchmarks/bench_archcomp.py: its falsification step finds the published counterexamples."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from benchmarks.archcomp import DATA
from benchmarks.data import missing_reason

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_archcomp.py"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=missing_reason("archcomp"))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_archcomp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_simulation_step_reproduces_falsified_verdicts_and_leaves_verified_ones_open(bench, capsys):
    names = ["double_pendulum_more_robust", "vcas_28.5", "tora_relu_tanh"]
    argv = [a for n in names for a in ("--only", n)] + ["--simulate-only", "--samples", "8"]
    rows = {r.name: r for r in bench.main(argv)}
    assert rows["double_pendulum_more_robust"].verdict == "violated"
    assert rows["double_pendulum_more_robust"].semantics == "continuous (simulation)"
    assert rows["vcas_28.5"].verdict == "violated"
    assert rows["vcas_28.5"].semantics == "discrete (simulation)"
    # a simulation never proves: a verified benchmark stays undecided without the verifier
    assert rows["tora_relu_tanh"].verdict == "unknown"
    assert [rows[n].agreement for n in names] == ["yes", "yes", "undecided"]
    out = capsys.readouterr().out
    assert "agree 2, wrong 0, undecided 1" in out


def test_unknown_benchmark_names_are_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse(["--only", "unicylce"])
    assert "received ['unicylce']" in capsys.readouterr().err


def test_two_workers_give_the_same_rows_in_the_same_order(bench):
    names = ["double_pendulum_more_robust", "vcas_28.5", "tora_relu_tanh"]
    argv = [a for n in names for a in ("--only", n)] + ["--simulate-only", "--samples", "8"]
    one = bench.main(argv)
    two = bench.main(argv + ["--workers", "2"])
    assert [r.name for r in two] == names
    assert [(r.verdict, r.semantics, r.detail) for r in two] == [
        (r.verdict, r.semantics, r.detail) for r in one
    ]
