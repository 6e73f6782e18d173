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


def test_region_of_attraction_example_in_the_wider_domain_checks_its_certificates(tmp_path):
    """--domain wide --check: the certified set's grid states of the box converge, no more of
    them than the trajectories that stay in the domain, and the simulation check of 10^4 states
    and 10^5 steps finds no failure."""
    args = example.Args(out=str(tmp_path), cases="pendulum", shrink=0.5, grid=21, steps=800,
                        timeout=10.0, lyapunov="rate", domain="wide", check=True)
    row = example.main(args)[("pendulum", "rate")]
    assert row["domain"] == "wide" and row["certified_not_converged"] == 0
    assert 0.0 < row["fraction_of_basin"] <= row["reachable_in_domain"] <= 1.0
    assert row["stayed_and_converged"] == 1.0 and row["decrease_violations"] == 0
