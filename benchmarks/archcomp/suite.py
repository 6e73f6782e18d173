"""The ARCH-COMP AINNCS benchmarks: plant, control law, initial set, property, published verdict.

Each :class:`Benchmark` states the facts of one problem of ``shared/data/archcomp`` once (read from
its ``dynamics*.m`` and specification file); :func:`load` turns it into what
``neuroctl.verify.check_closed_loop`` takes: ``(plant, controller, x_lower, x_upper, spec,
steps)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from benchmarks.data import missing_reason, shared_data
from neuroctl import Plant, namespace
from neuroctl.controllers import affine_layer
from neuroctl.verify import load_mat, load_nnet, load_onnx

from . import plants as P
from .spec import Clause, to_temporal
from .vcas import VcasController

__all__ = ["Benchmark", "BENCHMARKS", "load", "names", "DATA"]

DATA = shared_data("archcomp")
_INF = math.inf


@dataclass(frozen=True)
class Benchmark:
    """One closed-loop problem of the ARCH-COMP AINNCS category.

    Parameters
    ----------
    name : str
        Identifier (``load(name)``).
    folder : str
        Folder under ``shared/data/archcomp``.
    states, inputs : tuple of str
        State and command names, in the ``.m`` file's order.
    dt : float
        Control period (s): the command is held over each period (zero-order hold).
    steps : int
        Number of control periods (horizon ``steps * dt``).
    x_lower, x_upper : tuple of float
        Initial box.
    controller : str
        Controller file, relative to ``folder`` (the NNV ``.mat`` where there is one: the
        published verdicts used it).
    clauses : tuple of Clause
        The property (their conjunction), see :mod:`benchmarks.archcomp.spec`.
    published : {"verified", "falsified"} or None
        The verdict published for it (None: none published).
    rhs : callable, optional
        Continuous dynamics ``rhs(x, u)`` (:mod:`benchmarks.archcomp.plants`).
    update : callable, optional
        Discrete map instead of ``rhs`` (VCAS).
    output_scale, output_offset : float
        Control law ``u = output_scale * N(x) + output_offset``.
    note : str
        Where the facts come from and any choice made.
    """

    name: str
    folder: str
    states: tuple
    inputs: tuple
    dt: float
    steps: int
    x_lower: tuple
    x_upper: tuple
    controller: str
    clauses: tuple
    published: str | None
    rhs: Callable | None = None
    update: Callable | None = None
    output_scale: float = 1.0
    output_offset: float = 0.0
    note: str = ""

    @property
    def horizon(self) -> float:
        """``steps * dt`` in seconds."""
        return self.steps * self.dt

    @property
    def verifiable(self) -> bool:
        """False when the controller is not one network (VCAS switches among nine)."""
        return self.update is None

    def plant(self) -> Plant:
        """The plant as a :class:`neuroctl.Plant` (RK4 ``step``; the continuous ``rhs`` is what
        the verdict is about)."""
        kind = {"rhs": self.rhs} if self.rhs is not None else {"update": self.update}
        return Plant(
            states=list(self.states), inputs=list(self.inputs), dt=self.dt, name=self.name, **kind
        )

    def network(self) -> nn.Sequential:
        """The controller network as stored in its file (float64)."""
        path = DATA / self.folder / self.controller
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.name}: expected the controller file {path}; {missing_reason('archcomp')}"
            )
        loader = {".mat": load_mat, ".onnx": load_onnx, ".nnet": load_nnet}[path.suffix]
        return loader(path)

    def control_law(self) -> nn.Module:
        """``x -> u``: the network with the benchmark's output offset and scaling as a layer."""
        if self.update is not None:
            return VcasController(DATA / self.folder)
        net = self.network()
        if self.output_scale == 1.0 and self.output_offset == 0.0:
            return net
        m = len(self.inputs)
        out = affine_layer(
            np.full(m, self.output_scale), np.full(m, self.output_offset), dtype=torch.float64
        )
        return nn.Sequential(*net, out)

    def spec(self):
        """The property as a :mod:`neuroctl.verify.temporal` specification."""
        return to_temporal(self.clauses)


# ============================================================================ the problems
def _box(*bounds):
    return tuple(float(b) for b in bounds)


def _docking_speed_limit(x):
    """``|v|² - (0.2 + 2 n |p|)²`` (<= 0 is safe), n = 0.001027, ``|v| = sqrt(x3² + x4²)``,
    ``|p| = sqrt(x1² + x2²)``.

    The published property is ``|v| <= 0.2 + 2 n |p|``; both sides are non-negative, so it is
    the same set as ``|v|² <= (0.2 + 2 n |p|)²``, written without the square root of ``|v|²``
    (whose argument, a sum of squares spanning 0, would reach below sqrt's domain on a set by
    outward rounding alone).
    """
    xp = namespace(x)
    n = P.DOCKING["n"]
    limit = 0.2 + 2 * n * xp.sqrt(x[..., 0] ** 2 + x[..., 1] ** 2)
    return x[..., 2] ** 2 + x[..., 3] ** 2 - limit**2


def _benchmarks() -> dict[str, Benchmark]:
    B = {}
    B["unicycle"] = Benchmark(
        name="unicycle",
        folder="Benchmark10-Unicycle",
        states=("x", "y", "psi", "v"),
        inputs=("a", "omega"),
        dt=0.2,
        steps=50,
        rhs=P.unicycle_rhs,
        x_lower=_box(9.5, -4.5, 2.1, 1.5),
        x_upper=_box(9.55, -4.45, 2.11, 1.51),
        controller="controllerB_nnv.mat",
        output_offset=-20.0,
        clauses=(
            Clause(
                "at", _box(-0.6, -0.2, -0.06, -0.3), _box(0.6, 0.2, 0.06, 0.3), window=(10.0, 10.0)
            ),
        ),
        published="verified",
        note="u = N(x) - 20 (dynamics10.m); goal box at t = 10 s; the .m's disturbance w "
        "(not in Specifications.txt) is left out",
    )
    dp = dict(
        folder="Double_Pendulum",
        states=("th1", "th2", "w1", "w2"),
        inputs=("T1", "T2"),
        steps=20,
        rhs=P.double_pendulum_rhs,
        x_lower=_box(1, 1, 1, 1),
        x_upper=_box(1.3, 1.3, 1.3, 1.3),
    )
    B["double_pendulum_less_robust"] = Benchmark(
        name="double_pendulum_less_robust",
        dt=0.05,
        controller="controller_double_pendulum_less_robust.mat",
        clauses=(Clause("always", _box(-1.7, -1.7, -1.7, -1.7), _box(2, 2, 2, 2)),),
        published="verified",
        note="every state in [-1.7, 2] over 20 periods of 0.05 s",
        **dp,
    )
    B["double_pendulum_more_robust"] = Benchmark(
        name="double_pendulum_more_robust",
        dt=0.02,
        controller="controller_double_pendulum_more_robust.mat",
        clauses=(Clause("always", _box(-1.5, -1.5, -1.5, -1.5), _box(1.5, 1.5, 1.5, 1.5)),),
        published="falsified",
        note="every state in [-1.5, 1.5] over 20 periods of 0.02 s",
        **dp,
    )
    B["airplane"] = Benchmark(
        name="airplane",
        folder="Airplane",
        states=("x", "y", "z", "u", "v", "w", "phi", "theta", "psi", "r", "p", "q"),
        inputs=("Fx", "Fy", "Fz", "Mx", "My", "Mz"),
        dt=0.1,
        steps=20,
        rhs=P.airplane_rhs,
        x_lower=_box(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        x_upper=_box(0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0),
        controller="controller_airplane.mat",
        clauses=(
            Clause(
                "always",
                _box(-_INF, -1, -_INF, -_INF, -_INF, -_INF, -1, -1, -1, -_INF, -_INF, -_INF),
                _box(_INF, 1, _INF, _INF, _INF, _INF, 1, 1, 1, _INF, _INF, _INF),
            ),
        ),
        published="falsified",
        note="x2 and x7, x8, x9 in [-1, 1] over 2 s",
    )
    B["attitude_control"] = Benchmark(
        name="attitude_control",
        folder="Attitude-Control",
        states=("w1", "w2", "w3", "p1", "p2", "p3"),
        inputs=("u1", "u2", "u3"),
        dt=0.1,
        steps=30,
        rhs=P.attitude_rhs,
        x_lower=_box(-0.45, -0.55, 0.65, -0.75, 0.85, -0.65),
        x_upper=_box(-0.44, -0.54, 0.66, -0.74, 0.86, -0.64),
        controller="model.mat",
        clauses=(
            Clause(
                "never", _box(-0.2, -0.5, 0, -0.7, 0.7, -0.4), _box(0, -0.4, 0.2, -0.6, 0.8, -0.2)
            ),
        ),
        published="verified",
        note="avoid the unsafe box Xu during 3 s",
    )
    B["quad"] = Benchmark(
        name="quad",
        folder="QUAD",
        states=tuple(f"x{i}" for i in range(1, 13)),
        inputs=("thrust", "tau_phi", "tau_theta"),
        dt=0.1,
        steps=50,
        rhs=P.quad_rhs,
        x_lower=_box(-0.4, -0.4, -0.4, -0.4, -0.4, -0.4, 0, 0, 0, 0, 0, 0),
        x_upper=_box(0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0, 0, 0, 0, 0, 0),
        controller="model.mat",
        clauses=(
            Clause(
                "at",
                (-_INF, -_INF, 0.94) + (-_INF,) * 9,
                (_INF, _INF, 1.06) + (_INF,) * 9,
                window=(5.0, 5.0),
            ),
        ),
        published="verified",
        note="altitude x3 in [0.94, 1.06] at t = 5 s; the published run that asserts "
        "'verified' started from 1% of this box's radius (quad_small)",
    )
    nav_goal = Clause(
        "at", _box(-0.5, -0.5, -_INF, -_INF), _box(0.5, 0.5, _INF, _INF), window=(6.0, 6.0)
    )
    nav_obstacle = Clause("never", _box(1, 1, -_INF, -_INF), _box(2, 2, _INF, _INF))
    nav = dict(
        folder="NAV",
        states=("x", "y", "v", "theta"),
        inputs=("a", "omega"),
        dt=0.2,
        steps=30,
        rhs=P.nav_rhs,
        x_lower=_box(2.9, 2.9, 0, 0),
        x_upper=_box(3.1, 3.1, 0, 0),
        clauses=(nav_goal, nav_obstacle),
    )
    B["nav_set"] = Benchmark(
        name="nav_set",
        controller="networks/nn-nav-set.mat",
        published="verified",
        note="goal box at t = 6 s and the obstacle avoided at all times",
        **nav,
    )
    B["nav_point"] = Benchmark(
        name="nav_point",
        controller="networks/nn-nav-point.mat",
        published=None,
        note="no published verdict",
        **nav,
    )
    B["docking"] = Benchmark(
        name="docking",
        folder="Docking",
        states=("x", "y", "vx", "vy"),
        inputs=("Fx", "Fy"),
        dt=1.0,
        steps=40,
        rhs=P.docking_rhs,
        x_lower=_box(70, 70, -0.28, -0.28),
        x_upper=_box(106, 106, 0.28, 0.28),
        controller="model.mat",
        clauses=(Clause("always", fn=_docking_speed_limit),),
        published="verified",
        note="specification.txt gives no horizon: 40 s as in the published analysis (which "
        "started from velocities in [-0.14, 0.14], docking_small; the box here is the file's)",
    )
    # The published runs that assert "verified" for QUAD and docking (JuliaReach's ARCH-COMP 2024
    # package) start from smaller sets than the specification files; these are those problems.
    B["quad_small"] = replace(
        B["quad"],
        name="quad_small",
        x_lower=tuple(0.01 * v for v in B["quad"].x_lower),
        x_upper=tuple(0.01 * v for v in B["quad"].x_upper),
        note="the initial box of the published run: 1% of the radius of Specifications.txt "
        "(x1..x6 in [-0.004, 0.004]); altitude x3 in [0.94, 1.06] at t = 5 s",
    )
    B["docking_small"] = replace(
        B["docking"],
        name="docking_small",
        x_lower=_box(70, 70, -0.14, -0.14),
        x_upper=_box(106, 106, 0.14, 0.14),
        note="the initial box of the published run: velocities in [-0.14, 0.14] (half of "
        "specification.txt's), 40 s",
    )
    tora = dict(
        folder="Tora_Heterogeneous",
        states=("x1", "x2", "x3", "x4"),
        inputs=("u",),
        dt=0.5,
        steps=10,
        rhs=P.tora_rhs,
        x_lower=_box(-0.77, -0.45, 0.51, -0.3),
        x_upper=_box(-0.75, -0.43, 0.54, -0.28),
        output_scale=11.0,
        clauses=(
            Clause(
                "at", _box(-0.1, -0.9, -_INF, -_INF), _box(0.2, -0.6, _INF, _INF), window=(5.0, 5.0)
            ),
        ),
        published="verified",
    )
    B["tora_relu_tanh"] = Benchmark(
        name="tora_relu_tanh",
        controller="nn_tora_relu_tanh.mat",
        note="u = 11 N(x); (x1, x2) in the goal box at t = 5 s",
        **tora,
    )
    B["tora_sigmoid"] = Benchmark(
        name="tora_sigmoid",
        controller="nn_tora_sigmoid.mat",
        note="u = 11 N(x) as for the ReLU-tanh network (the data README, the published "
        "analysis); the .txt copy of this network ends with offset 0.5, scale 22 instead "
        "(u = 22 (N(x) - 0.5)); (x1, x2) in the goal box at t = 5 s",
        **tora,
    )
    B["cartpole"] = Benchmark(
        name="cartpole",
        folder="CartPole",
        states=("x", "v", "theta", "omega"),
        inputs=("f",),
        dt=0.02,
        steps=500,
        rhs=P.cartpole_rhs,
        x_lower=_box(-0.1, -0.05, -0.1, -0.05),
        x_upper=_box(0.1, 0.05, 0.1, 0.05),
        controller="model.onnx",
        clauses=(
            Clause(
                "always",
                _box(-0.001, -_INF, -0.001, -0.001),
                _box(0.001, _INF, 0.001, 0.001),
                window=(8.0, 10.0),
            ),
        ),
        published=None,
        note="x1, x3, x4 in [-0.001, 0.001] for t in [8, 10] s; no published "
        "verdict; the only controller file is the ONNX",
    )
    for hd, verdict in (
        (-19.5, "verified"),
        (-22.5, "verified"),
        (-25.5, "falsified"),
        (-28.5, "falsified"),
    ):
        name = f"vcas_{-hd:g}"
        B[name] = Benchmark(
            name=name,
            folder="VCAS",
            states=("h", "hdot0", "tau", "adv"),
            inputs=("adv_new", "hddot0"),
            dt=1.0,
            steps=10,
            update=P.vcas_update,
            x_lower=_box(-133, hd, 25, 0),
            x_upper=_box(-129, hd, 25, 0),
            controller="nnv_networks",
            published=verdict,
            clauses=(
                Clause(
                    "never",
                    _box(-100, -_INF, -_INF, -_INF),
                    _box(100, _INF, _INF, _INF),
                    window=(1.0, 10.0),
                ),
            ),
            note="discrete map; |h| > 100 ft after each of the 10 advisories; central "
            "accelerations; previous advisory COC",
        )
    return B


#: every benchmark, by name
BENCHMARKS: dict[str, Benchmark] = _benchmarks()


def names() -> list[str]:
    """Names of the benchmarks, in table order."""
    return list(BENCHMARKS)


def load(name: str):
    """Everything ``check_closed_loop`` takes for benchmark ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    tuple
        ``(plant, controller, x_lower, x_upper, spec, steps)``: a :class:`neuroctl.Plant`, the
        control law ``x -> u`` (an ``nn.Module``), the initial box (ndarrays of shape (n,)),
        the :mod:`neuroctl.verify.temporal` property and the number of control periods.
    """
    if name not in BENCHMARKS:
        raise KeyError(f"load: expected one of {names()}, received {name!r}")
    b = BENCHMARKS[name]
    return (b.plant(), b.control_law(), np.array(b.x_lower), np.array(b.x_upper), b.spec(), b.steps)
