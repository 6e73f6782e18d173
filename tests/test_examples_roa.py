"""examples/region_of_attraction.py runs, saves its plot, and its certified sets are confirmed
by its own simulated basin."""

from __future__ import annotations

from _examples import load_example

example = load_example("region_of_attraction")


def test_region_of_attraction_example_runs_and_every_certified_state_converges(tmp_path):
    args = example.Args(out=str(tmp_path), cases="arm", shrink=0.5, grid=21, steps=800,
                        timeout=10.0, lyapunov="linearization")
    table = example.main(args)
    assert (tmp_path / "region_of_attraction.png").stat().st_size > 0
    row = table[("arm", "linearization")]
    assert row["certified_not_converged"] == 0
    assert 0.0 < row["fraction_of_basin"] <= 1.0
    assert 0.0 < row["volume"] <= row["basin_volume"]
