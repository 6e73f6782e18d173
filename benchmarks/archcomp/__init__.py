"""The ARCH-COMP AINNCS closed-loop benchmarks (data read from ``../shared/data/archcomp``).

:mod:`~benchmarks.archcomp.plants` writes each plant once (array-agnostic ``rhs``);
:mod:`~benchmarks.archcomp.suite` states each problem (control period, initial set, horizon,
controller file and control law, property, published verdict) as a :class:`Benchmark` and
:func:`load` hands it to ``check_closed_loop``; :mod:`~benchmarks.archcomp.simulate` is the
``solve_ivp`` closed-loop simulator and falsifier.
"""

from .simulate import Rollout, search_counterexample, simulate
from .spec import Clause, robustness, to_temporal
from .suite import BENCHMARKS, DATA, Benchmark, load, names

__all__ = [
    "BENCHMARKS",
    "DATA",
    "Benchmark",
    "Clause",
    "Rollout",
    "load",
    "names",
    "robustness",
    "search_counterexample",
    "simulate",
    "to_temporal",
]
