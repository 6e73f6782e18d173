"""Certified regions of attraction: the fraction of the simulated basin each certificate covers.

For each case of ``examples/region_of_attraction.py`` (the arm upright with a 3 N m torque
limit, a Pendulum-v1-like plant, the cart-pole; LQR-initialised ReLU controllers) and each
Lyapunov shape (the Lyapunov equation's ``P``, the baseline; ``P`` fitted to simulated
transitions), print the certified level, the volume of the certified set, the volume of the
simulated basin inside the same box (a dense grid run to convergence), the fraction of it that
is certified, and the time of the certificate.

Run: ``python benchmarks/bench_roa.py [--cases arm,pendulum,cartpole] [--timeout 240]``.

Measured (2-core machine, defaults; fraction = certified grid states / converged grid states):

    case      V              volume    basin   certified  time [s]
    arm       linearization   1.727    10.08     16.6%      0.2
    arm       rate            3.278    10.08     31.6%      0.1
    arm       fitted          8.213    10.08     79.6%      0.7
    pendulum  linearization   0.709    13.48      5.2%      0.1
    pendulum  rate            1.073    13.48      7.8%      0.3
    pendulum  fitted          4.981    13.48     36.2%      2.9
    cartpole  linearization  6.3e-08   24.87      0.0%      8.6
    cartpole  rate            0.354    24.87      1.2%     21.2
    cartpole  fitted          0.856    24.87      2.8%    219.0

The pendulum's and the cart-pole's simulated basins fill most of their boxes (84% and 86%),
and a certified ellipsoid must lie inside the box: at most π/4 of a rectangle, π²/32 of a 4-D
box.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "region_of_attraction.py"


def load():
    spec = spec_from_file_location("example_region_of_attraction", EXAMPLE)
    mod = module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="arm,pendulum,cartpole")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--grid", type=int, default=81)
    parser.add_argument("--steps", type=int, default=1500)
    a = parser.parse_args()
    ex = load()
    with tempfile.TemporaryDirectory() as out:
        table = ex.main(ex.Args(out=out, cases=a.cases, timeout=a.timeout, grid=a.grid,
                                steps=a.steps))
    print()
    print(f"{'case':9s} {'V':13s} {'level':>10s} {'volume':>9s} {'basin':>9s} "
          f"{'certified':>9s} {'time [s]':>8s}  limited by")
    for (case, shape), row in table.items():
        print(f"{case:9s} {shape:13s} {row['level']:10.4g} {row['volume']:9.4g} "
              f"{row['basin_volume']:9.4g} {row['fraction_of_basin']:9.1%} "
              f"{row['seconds']:8.1f}  {row['limited_by']}")


if __name__ == "__main__":
    main()
