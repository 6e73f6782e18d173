"""Exact analysis of ReLU networks by mixed-integer linear programming (big-M).

The encoding (:func:`encode`) is kept apart from the solver back ends (:data:`BACKENDS`): it builds
a plain :class:`MILP` (sparse constraint matrix, bounds, integrality) that any back end solves.

Encoding of ``h = relu(z)``, ``z = W h_prev + b`` with pre-activation bounds ``l <= z <= u``
(from :func:`neuroctl.verify.bounds.pre_activation_bounds`, i.e. tightened layer by layer):

* stable inactive (``u <= 0``): ``h = 0`` (no variable content, no binary);
* stable active (``l >= 0``): ``h = z``;
* unstable: ``h >= z``, ``h >= 0``, ``h <= z - l (1 - δ)``, ``h <= u δ``, ``δ`` binary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .._json import json_dict
from .bounds import ReluNetwork, _boxes, _intermediate

__all__ = ["MILP", "MILPSolution", "encode", "solve", "minimize_margin", "BACKENDS"]


@dataclass(frozen=True, eq=False)
class MILP:
    """``min c·v + offset`` s.t. ``row_lower <= A v <= row_upper``, ``lower <= v <= upper``.

    Variables flagged in ``integrality`` are binary.

    Attributes
    ----------
    c : ndarray (n_var,)
    A : scipy.sparse.csr_matrix (n_con, n_var)
    row_lower, row_upper, lower, upper : ndarray
    integrality : ndarray of int (n_var,), 1 for binary variables
    x_index, y_index : ndarray of int
        Positions of the network input and output variables.
    n_unstable : int
        Number of binaries (unstable ReLUs).
    offset : float
        Constant added to the objective.
    """

    c: np.ndarray
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integrality: np.ndarray
    x_index: np.ndarray
    y_index: np.ndarray
    n_unstable: int
    offset: float = 0.0

    def with_objective(self, C, d) -> MILP:
        """Objective ``min max_j (C y - d)_j`` (one row: ``min C y - d``) over the feasible set.

        For several rows an epigraph variable ``s >= (C y - d)_j`` is added (last variable).
        """
        C = np.atleast_2d(np.asarray(C, dtype=np.float64))
        d = np.atleast_1d(np.asarray(d, dtype=np.float64))
        nv = self.c.size
        if C.shape[0] == 1:
            c = np.zeros(nv)
            c[self.y_index] = C[0]
            return replace(self, c=c, offset=-float(d[0]))
        m = C.shape[0]
        rows = sp.lil_matrix((m, nv + 1))
        for j in range(m):
            rows[j, self.y_index] = C[j]
            rows[j, nv] = -1.0
        A = sp.vstack([sp.hstack([self.A, sp.csr_matrix((self.A.shape[0], 1))]), rows.tocsr()])
        c = np.zeros(nv + 1)
        c[nv] = 1.0
        return MILP(
            c,
            A.tocsr(),
            np.concatenate([self.row_lower, np.full(m, -np.inf)]),
            np.concatenate([self.row_upper, d]),
            np.append(self.lower, -np.inf),
            np.append(self.upper, np.inf),
            np.append(self.integrality, 0),
            self.x_index,
            self.y_index,
            self.n_unstable,
        )

    def __repr__(self) -> str:
        return (
            f"MILP(variables={self.c.size}, constraints={self.A.shape[0]}, "
            f"binaries={self.n_unstable})"
        )


def encode(net, lower, upper, *, pre_bounds=None, method: str = "crown") -> MILP:
    """Big-M encoding of ``y = net(x)``, ``lower <= x <= upper`` (objective zero).

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like, shape (n_in,)
    pre_bounds : list of (l, u), optional
        Pre-activation bounds per ReLU layer; computed with ``method`` when omitted.
    method : {"interval", "forward", "crown"}, keyword-only
    """
    rnet, lo, hi, single = _boxes(net, lower, upper)
    if not single:
        raise ValueError(f"encode: expected one box of shape (n_in,), received {lo.shape}")
    if not rnet.piecewise_linear:
        smooth = sorted({a for a in rnet.activations if a != "relu"})
        raise NotImplementedError(
            f"encode: the MILP encoding is exact for piecewise-linear networks only, received "
            f"one with smooth activations {smooth}; use interval or CROWN bounds (or check, "
            "which decides smooth networks by input splitting)"
        )
    if pre_bounds is None:
        pre_bounds = [(l[0], u[0]) for l, u in _intermediate(method)(rnet, lo, hi)]
    return _encode(rnet, lo[0], hi[0], pre_bounds)


def _encode(rnet: ReluNetwork, lo, hi, pre_bounds) -> MILP:
    n_in = rnet.n_inputs
    lower, upper, integ = [lo], [hi], [np.zeros(n_in, int)]
    rows, cols, vals, rlo, rhi = [], [], [], [], []
    nrow = 0
    prev = np.arange(n_in)  # variable indices of the previous layer's values
    nvar = n_in
    n_bin = 0

    def add_row(var_idx, coefs, lo_, hi_):
        nonlocal nrow
        rows.append(np.full(len(var_idx), nrow))
        cols.append(np.asarray(var_idx))
        vals.append(np.asarray(coefs, dtype=np.float64))
        rlo.append(lo_)
        rhi.append(hi_)
        nrow += 1

    for k, (l, u) in enumerate(pre_bounds):
        W, b = rnet.weights[k], rnet.biases[k]
        n = W.shape[0]
        h = np.arange(nvar, nvar + n)
        nvar += n
        lower.append(np.zeros(n))
        upper.append(np.maximum(u, 0.0))
        integ.append(np.zeros(n, int))
        unstable = np.flatnonzero((l < 0) & (u > 0))
        delta = dict(zip(unstable.tolist(), range(nvar, nvar + unstable.size)))
        nvar += unstable.size
        n_bin += unstable.size
        lower.append(np.zeros(unstable.size))
        upper.append(np.ones(unstable.size))
        integ.append(np.ones(unstable.size, int))
        nz = [np.flatnonzero(W[i]) for i in range(n)]
        for i in range(n):
            if u[i] <= 0:
                continue  # h_i fixed to 0 by its bounds
            idx = np.concatenate([[h[i]], prev[nz[i]]])
            coef = np.concatenate([[1.0], -W[i, nz[i]]])
            if l[i] >= 0:
                add_row(idx, coef, b[i], b[i])  # h = z
                continue
            add_row(idx, coef, b[i], np.inf)  # h >= z
            dv = delta[i]
            # h - z + l (1 - delta) <= 0  ->  h - W h_prev - l delta <= b - l
            add_row(np.append(idx, dv), np.append(coef, -l[i]), -np.inf, b[i] - l[i])
            add_row([h[i], dv], [1.0, -u[i]], -np.inf, 0.0)  # h <= u delta
        prev = h
    W, b = rnet.weights[-1], rnet.biases[-1]
    n_out = W.shape[0]
    y = np.arange(nvar, nvar + n_out)
    nvar += n_out
    lower.append(np.full(n_out, -np.inf))
    upper.append(np.full(n_out, np.inf))
    integ.append(np.zeros(n_out, int))
    for i in range(n_out):
        nzi = np.flatnonzero(W[i])
        add_row(
            np.concatenate([[y[i]], prev[nzi]]), np.concatenate([[1.0], -W[i, nzi]]), b[i], b[i]
        )
    A = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nvar)
    )
    return MILP(
        np.zeros(nvar),
        A,
        np.array(rlo),
        np.array(rhi),
        np.concatenate(lower),
        np.concatenate(upper),
        np.concatenate(integ),
        np.arange(n_in),
        y,
        n_bin,
    )


@dataclass(frozen=True)
class MILPSolution:
    """Result of a MILP solve.

    Attributes
    ----------
    status : str
        "optimal", "infeasible", or "time_limit".
    value : float
        Objective of the best solution found (``inf`` if none).
    bound : float
        Proven lower bound on the optimum (equal to ``value`` when optimal).
    x : ndarray or None
        Network input of the best solution.
    time : float
    """

    status: str
    value: float
    bound: float
    x: np.ndarray | None
    time: float

    def __repr__(self) -> str:
        return (
            f"MILPSolution(status={self.status!r}, value={self.value:.6g}, "
            f"bound={self.bound:.6g}, time={self.time:.3g}s)"
        )

    @json_dict
    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "value": self.value,
            "bound": self.bound,
            "x": None if self.x is None else self.x.tolist(),
            "time": self.time,
        }


#: Seconds granted at least to the LP relaxation that replaces a missing dual bound.
_LP_MIN_TIME = 1.0


def _lp_relaxation_bound(p: MILP, time_limit) -> float:
    """Optimum of the LP relaxation (binaries in [0, 1]): a proven lower bound on the MILP's.

    The LP gets ``max(time_limit, _LP_MIN_TIME)`` seconds (it is solved in polynomial time and
    is usually far faster than the MILP); ``-inf`` when it does not finish.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    opts: dict[str, bool | float] = {"disp": False}
    if time_limit is not None:
        opts["time_limit"] = max(float(time_limit), _LP_MIN_TIME)
    res = milp(
        p.c,
        constraints=LinearConstraint(p.A, p.row_lower, p.row_upper),
        integrality=np.zeros_like(p.integrality),
        bounds=Bounds(p.lower, p.upper),
        options=opts,
    )
    if res.status == 0:
        return float(res.fun)
    if res.status == 2:
        return np.inf
    return -np.inf


def _solve_scipy(p: MILP, time_limit):
    """HiGHS through ``scipy.optimize.milp``.

    When the time limit expires, ``scipy`` reports HiGHS's dual bound only if a feasible point was
    found (``mip_dual_bound`` is ``None`` otherwise). The proven bound is then the larger of that
    dual bound and the optimum of the LP relaxation, solved afterwards (under the same time limit,
    but at least :data:`_LP_MIN_TIME` seconds).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    opts: dict[str, bool | float] = {"disp": False}
    if time_limit is not None:
        opts["time_limit"] = float(time_limit)
    res = milp(
        p.c,
        constraints=LinearConstraint(p.A, p.row_lower, p.row_upper),
        integrality=p.integrality,
        bounds=Bounds(p.lower, p.upper),
        options=opts,
    )
    if res.status == 0:
        return "optimal", res.fun, res.fun, res.x
    if res.status == 2:
        return "infeasible", np.inf, np.inf, None
    bound = getattr(res, "mip_dual_bound", None)
    bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound)
    bound = max(bound, _lp_relaxation_bound(p, time_limit))
    if res.x is not None:
        return "time_limit", res.fun, min(bound, res.fun), res.x
    return "time_limit", np.inf, bound, None


def _solve_highspy(p: MILP, time_limit):
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    lp = highspy.HighsLp()
    A = p.A.tocsc()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_ = p.c
    lp.col_lower_, lp.col_upper_ = p.lower, p.upper
    lp.row_lower_, lp.row_upper_ = p.row_lower, p.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous
        for v in p.integrality
    ]
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    M = highspy.HighsModelStatus
    if status == M.kOptimal:
        x = np.array(h.getSolution().col_value)
        return "optimal", info.objective_function_value, info.objective_function_value, x
    if status == M.kInfeasible:
        return "infeasible", np.inf, np.inf, None
    bound = info.mip_dual_bound if np.isfinite(info.mip_dual_bound) else -np.inf
    if info.primal_solution_status == 2:
        return (
            "time_limit",
            info.objective_function_value,
            bound,
            np.array(h.getSolution().col_value),
        )
    return "time_limit", np.inf, bound, None


#: Solver back ends by name: each takes (MILP, time_limit) and returns (status, value, bound, v).
BACKENDS = {"scipy": _solve_scipy, "highspy": _solve_highspy}


def solve(
    problem: MILP, *, backend: str = "scipy", time_limit: float | None = None
) -> MILPSolution:
    """Solve a :class:`MILP` with HiGHS (through ``scipy.optimize.milp`` or ``highspy``).

    Parameters
    ----------
    problem : MILP
    backend : {"scipy", "highspy"}, keyword-only
    time_limit : float, optional, keyword-only
        Seconds. On expiry ``status`` is ``"time_limit"`` and ``bound`` is still a proven lower
        bound on the optimum: HiGHS's dual bound (``highspy``), or with ``scipy`` (which reports
        it only once a feasible point is found) the larger of that and the LP relaxation's
        optimum.
    """
    try:
        run = BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"backend: expected one of {sorted(BACKENDS)}, received {backend!r}"
        ) from None
    t0 = time.perf_counter()
    status, value, bound, v = run(problem, time_limit)
    off = problem.offset
    x = None if v is None else np.asarray(v)[problem.x_index]
    return MILPSolution(status, float(value) + off, float(bound) + off, x, time.perf_counter() - t0)


def minimize_margin(
    net,
    lower,
    upper,
    C,
    d,
    *,
    pre_bounds=None,
    backend: str = "scipy",
    time_limit: float | None = None,
) -> MILPSolution:
    """Exact ``min over the box of max_j (C y - d)_j`` (``y = net(x)``) by MILP."""
    rnet, lo, hi, _ = _boxes(net, lower, upper)
    p = encode(rnet, lo.reshape(-1), hi.reshape(-1), pre_bounds=pre_bounds)
    return solve(p.with_objective(C, d), backend=backend, time_limit=time_limit)
