"""ARCH-COMP AINNCS closed-loop benchmarks as data for ``benchmarks/bench_archcomp.py``.

Each benchmark is a :class:`Benchmark`: the plant (written once, with an array-agnostic ``rhs``),
the controller (an ``nn.Module`` with its output offsets and scalings as layers), the initial
box, the property (:mod:`neuroctl.verify.temporal`), the horizon and the published verdict of
``../shared/data/archcomp/README.md``. ``BENCHMARKS`` lists functions that build them, so that
listing the benchmarks loads no network file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Benchmark", "BENCHMARKS"]


@dataclass
class Benchmark:
    """One closed-loop verification problem with its published answer."""

    name: str
    """label, e.g. "Docking" or "Double_Pendulum (less robust)" """
    plant: object
    """the neuroctl.Plant (dt = the control period)"""
    controller: object
    """the nn.Module from the plant's observation to the command"""
    x_lower: np.ndarray
    """initial box, lower corner, shape (n,)"""
    x_upper: np.ndarray
    """initial box, upper corner, shape (n,)"""
    spec: object
    """the property (always / never / eventually / at, joined with &)"""
    steps: int
    """horizon in control periods"""
    published: str | None
    """"verified", "falsified" or None (no published verdict)"""
    semantics: str | None = None
    """what is decided; None: continuous for a plant with rhs"""
    reference: np.ndarray | None = None
    """reference of the observation, if the plant has one"""
    options: dict = field(default_factory=dict)
    """further keyword options of check_closed_loop (max_step, max_splits, ...)"""
    notes: str = ""
    """where the description comes from (specification file, control law)"""


#: functions building the benchmarks (filled by the plant and controller definitions)
BENCHMARKS: list[Callable[[], Benchmark]] = []
