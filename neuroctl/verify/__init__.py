"""Verification of feed-forward networks: output bounds, specification checks, formats.

``output_bounds`` gives sound bounds on every output over an input box (interval propagation,
CROWN-style linear relaxation, or exact MILP for piecewise-linear networks); ``check`` decides a
linear output specification (falsification, then input-splitting branch and bound, with MILP on
small sub-problems of piecewise-linear networks). Piecewise-linear activations, tanh and sigmoid
are supported (tanh and sigmoid by tangent and chord lines per interval).
``check_closed_loop`` decides a temporal property (``always``, ``never``, ``eventually``, ``at``
over ``Box``, ``Polytope`` and ``Constraint`` sets) of a plant in closed loop with a network.
"""

from __future__ import annotations

import time

import numpy as np

from .affine import SetArithmeticError
from .bab import CheckResult, check, falsify
from .bounds import (
    LAYER_RULES,
    OutputBounds,
    ReluNetwork,
    as_relu_network,
    crown_bounds,
    interval_bounds,
    pre_activation_bounds,
)
from .closed_loop import check_closed_loop, with_output_map
from .closed_loop_result import ClosedLoopResult, Counterexample, Replay
from .flow import FlowEnclosureError, PeriodSets, closed_loop_period_sets, plant_semantics
from .formats import load_mat, load_nnet, load_onnx
from .invariance import InvarianceResult, check_invariant
from .reach import ReachResult, reach
from .roa import RegionOfAttraction, region_of_attraction
from .robustness import LocalCertificate, certify_local
from .spec import Spec, VnnlibQuery, read_vnnlib
from .temporal import (
    AllOf,
    Always,
    At,
    Box,
    Constraint,
    Eventually,
    Never,
    Polytope,
    Property,
    all_of,
    always,
    at,
    box_property,
    eventually,
    never,
)

__all__ = [
    "AllOf",
    "Always",
    "At",
    "Box",
    "ClosedLoopResult",
    "Constraint",
    "Counterexample",
    "Eventually",
    "Never",
    "Polytope",
    "Property",
    "Replay",
    "all_of",
    "box_property",
    "always",
    "at",
    "check_closed_loop",
    "closed_loop_period_sets",
    "PeriodSets",
    "plant_semantics",
    "SetArithmeticError",
    "FlowEnclosureError",
    "eventually",
    "never",
    "with_output_map",
    "CheckResult",
    "LAYER_RULES",
    "OutputBounds",
    "ReluNetwork",
    "Spec",
    "VnnlibQuery",
    "InvarianceResult",
    "LocalCertificate",
    "ReachResult",
    "RegionOfAttraction",
    "region_of_attraction",
    "certify_local",
    "check_invariant",
    "reach",
    "as_relu_network",
    "check",
    "crown_bounds",
    "falsify",
    "interval_bounds",
    "load_mat",
    "load_nnet",
    "load_onnx",
    "output_bounds",
    "pre_activation_bounds",
    "read_vnnlib",
]


def output_bounds(
    net,
    lower,
    upper,
    *,
    method: str = "crown",
    time_limit: float | None = None,
    backend: str = "scipy",
) -> OutputBounds:
    """Sound bounds on every output of ``net`` over the input box ``[lower, upper]``.

    Parameters
    ----------
    net : nn.Module or ReluNetwork
        Feed-forward network of the layers of :data:`LAYER_RULES` (piecewise-linear
        activations, tanh, sigmoid).
    lower, upper : array_like, shape (n_in,) or (B, n_in)
        Input box(es); ``method="milp"`` takes one box.
    method : {"interval", "crown", "milp"}, keyword-only
        Interval propagation, CROWN-style linear relaxation (tangent and chord lines for tanh
        and sigmoid), or exact big-M MILP (piecewise-linear networks only).
    time_limit : float, optional, keyword-only
        Seconds per MILP; on expiry the MILP's proven bound is used (still sound): HiGHS's dual
        bound, or with ``backend="scipy"`` (which does not report it when no feasible point was
        found) the optimum of the LP relaxation. MILP bounds are intersected with the CROWN
        bounds of the same box, so they are never looser.
    backend : {"scipy", "highspy"}, keyword-only
        MILP back end.

    Returns
    -------
    OutputBounds
        ``.lower`` and ``.upper`` of shape (n_out,) or (B, n_out), float64.
    """
    t0 = time.perf_counter()
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if method == "interval":
        l, u = interval_bounds(net, lo, hi)
    elif method == "crown":
        l, u = crown_bounds(net, lo, hi)
    elif method == "milp":
        from .milp import encode, solve

        if lo.ndim != 1:
            raise ValueError(f"output_bounds(method='milp'): expected one box, received {lo.shape}")
        if time_limit is not None and not (
            isinstance(time_limit, (int, float)) and np.isfinite(time_limit) and time_limit > 0
        ):
            raise ValueError(
                f"time_limit: expected a positive finite number of seconds or None, received "
                f"{time_limit!r}"
            )
        problem = encode(net, lo, hi)
        cl, cu = crown_bounds(net, lo, hi)
        n = problem.y_index.size
        l, u = np.empty(n), np.empty(n)
        for i in range(n):
            e = np.zeros((1, n))
            e[0, i] = 1.0
            l[i] = solve(
                problem.with_objective(e, [0.0]), backend=backend, time_limit=time_limit
            ).bound
            u[i] = -solve(
                problem.with_objective(-e, [0.0]), backend=backend, time_limit=time_limit
            ).bound
        l, u = np.maximum(l, cl), np.minimum(u, cu)
    else:
        raise ValueError(
            f"method: expected one of 'interval', 'crown', 'milp', received {method!r}"
        )
    return OutputBounds(l, u, method, lo, hi, time.perf_counter() - t0)
