"""The closed-loop decision procedure: a property of plant + neural controller, proved or refuted.

:func:`check_closed_loop` answers "holds", "violated" or "unknown" for a property of
:mod:`neuroctl.verify.temporal` over an initial box of states:

1. **Falsification.** Corners, random states and gradient-guided states (signed gradient steps on
   the robustness of a differentiable rollout of ``plant.step``: a search heuristic only) are
   simulated with the system whose semantics is asked for: the ODE ``plant.rhs`` with the command
   held over each control period (scipy ``solve_ivp``, DOP853, ``rtol=1e-10``, ``atol=1e-12``),
   or the discrete map ``plant.step``. A candidate that violates the property is replayed on its
   own (:meth:`Counterexample.replay`); only a confirmed one is a counterexample, so a violation of
   the discrete model that the ODE does not share is never reported.
2. **Enclosure with branch and bound on the initial set.** The sets of every control period
   (affine forms at the samples, a box enclosing every state over the period) are propagated for
   a batch of sub-boxes; the property is decided on each sub-box (proved, or unknown). The
   sub-box with the worst robustness bound is split first, along the dimension with the largest
   width times sensitivity (gradient of the rollout's robustness); a sub-box whose sets were
   given up before the horizon (they could no longer prove the property, or the flow enclosure
   failed) is cut along its ``log2(batch)`` best such dimensions at once. The centre of every
   undecided sub-box is simulated as a candidate counterexample. The search stops at a
   counterexample, when every sub-box is proved, at ``timeout`` or at ``max_splits``.

The answer is deterministic for given inputs and ``seed`` (unless ``timeout`` cuts it short).
"""

from __future__ import annotations

import heapq
import math
import time as _time

import numpy as np
import torch
from torch import nn

from ..controllers import affine_layer
from ..parallel import Failed, ProcessPool, _plan, map_tasks
from ..plant import Plant
from .closed_loop_result import ClosedLoopResult, Counterexample
from .enclosure import Deadline, _propagate_guarded
from .temporal import Property
from .trajectories import (
    REPLAY_TOL,
    _float64,
    _gradient_search,
    _robustness,
    _sensitivity,
    _simulate,
    _torch_robustness,
)

__all__ = ["check_closed_loop", "with_output_map"]

_SEMANTICS = ("continuous", "discrete")


# ============================================================================ helpers
def with_output_map(net: nn.Module, *, scale=1.0, offset=0.0) -> nn.Sequential:
    """``u = scale * net(y) + offset`` as one ``nn.Sequential`` (a frozen diagonal layer appended).

    For the published controllers whose command is the network's output shifted or scaled
    (``u = N(x) - 20``, ``u = 11 N(x)``).

    Parameters
    ----------
    net : nn.Module
        The network; its last layer must be an ``nn.Linear`` or the output size is taken from
        ``scale``/``offset``.
    scale, offset : float or array_like, shape (m,), keyword-only

    Returns
    -------
    nn.Sequential
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net: expected a torch.nn.Module, received {type(net).__name__}")
    scale, offset = np.broadcast_arrays(np.asarray(scale, float), np.asarray(offset, float))
    m = None
    for layer in reversed(list(net.modules())):
        if isinstance(layer, nn.Linear):
            m = layer.out_features
            break
    if m is None:
        m = np.atleast_1d(scale).size
    scale = np.broadcast_to(np.atleast_1d(scale), (m,)).copy()
    offset = np.broadcast_to(np.atleast_1d(offset), (m,)).copy()
    p = next(iter(net.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float64
    parts = list(net) if isinstance(net, nn.Sequential) else [net]
    return nn.Sequential(*parts, affine_layer(scale, offset, dtype=dtype))


# ============================================================================ the procedure
def _vec(v, n: int, what: str, default=None) -> np.ndarray:
    if v is None:
        if default is None:
            raise ValueError(f"{what}: expected an array of shape ({n},), received None")
        return np.full(n, float(default))
    a = np.asarray(v, dtype=np.float64)
    if a.shape not in ((n,), ()):
        raise ValueError(f"{what}: expected shape ({n},), received {a.shape}")
    a = np.broadcast_to(a, (n,)).copy()
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: expected finite numbers, received {a}")
    return a


def _corners(lo, hi, rng, cap=256) -> np.ndarray:
    n = lo.size
    if 2**n <= cap:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    else:
        bits = rng.integers(0, 2, (cap, n))
    return np.where(bits == 1, hi, lo)


def _falsify(plant, ctrl, spec, x0, steps, opts, special, rng, wlo, whi):
    """Simulate candidates (N, n); the confirmed counterexample of the worst one, or None.

    With disturbances each candidate state is tried three times: the disturbance at its upper
    bound over the whole horizon, at its lower bound, and uniform in each period.

    Returns ``(counterexample or None, simulations)``.
    """
    nw = plant.n_disturbances
    w = None
    if nw:
        shape = (x0.shape[0], max(steps, 1), nw)
        w = np.concatenate(
            [np.broadcast_to(whi, shape), np.broadcast_to(wlo, shape), rng.uniform(wlo, whi, shape)]
        )
        x0 = np.concatenate([x0, x0, x0])
    rho = np.empty(x0.shape[0])
    for i in range(0, x0.shape[0], 256):
        ro = _simulate(
            plant,
            ctrl,
            x0[i : i + 256],
            steps,
            opts["reference"],
            None if w is None else w[i : i + 256],
            opts["semantics"],
            special,
        )
        rho[i : i + 256] = _robustness(spec, plant, ro)
    order = np.argsort(rho, kind="stable")
    for j in order[:3]:
        if not rho[j] < -REPLAY_TOL:
            break
        ce = Counterexample._build(
            plant, ctrl, spec, x0[j], steps, opts, special, None if w is None else w[j]
        )
        if ce.replay().violated:
            return ce, x0.shape[0]
    return None, x0.shape[0]


def check_closed_loop(
    plant: Plant,
    controller: nn.Module,
    x_lower,
    x_upper,
    spec: Property,
    *,
    steps: int,
    timeout: float = 60.0,
    reference=None,
    w_lower=None,
    w_upper=None,
    semantics: str | None = None,
    max_step: float | None = None,
    seed: int = 0,
    max_splits: int = 2048,
    samples: int = 256,
    batch: int = 32,
    max_generators: int | None = None,
    executor=None,
    workers: int | None = None,
) -> ClosedLoopResult:
    """Decide a property of the closed loop from every initial state of a box.

    The closed loop: at each sampling instant ``k dt`` the controller reads the observation
    ``plant.observe(x, r)`` and its command, saturated to the actuator bounds, is held over the
    control period (zero-order hold).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
        Feed-forward network (layers of :func:`~neuroctl.verify.reach`); output offsets and
        scalings as layers (:func:`with_output_map`). Analysed and simulated in float64.
    x_lower, x_upper : array_like, shape (n,)
        Initial box.
    spec : Property
        From :mod:`neuroctl.verify.temporal` (``always``, ``never``, ``eventually``, ``at``, ``&``).
    steps : int, keyword-only
        Horizon in control periods; the horizon is ``steps * plant.dt`` seconds.
    timeout : float, keyword-only
        Seconds for the whole procedure; at expiry the answer is "unknown" (with what was proved).
    reference : array_like, shape (n_ref,), optional, keyword-only
        Reference of the observation (default the plant's nominal one).
    w_lower, w_upper : array_like, shape (n_w,), optional, keyword-only
        Bounds of the disturbance (default 0).
    semantics : {"continuous", "discrete"}, optional, keyword-only
        What is decided: ``"continuous"`` the ODE ``plant.rhs`` with the command held (default for
        a plant with ``rhs``), ``"discrete"`` the map ``plant.step`` (default, and the only
        choice, for a plant defined by ``update=``).
    max_step : float, optional, keyword-only
        Largest integration sub-step [s] of the enclosure of the flow.
    seed : int, keyword-only
        Seed of the random candidates and disturbances.
    max_splits : int, keyword-only
        Budget of bisections of the initial box.
    samples : int, keyword-only
        Random candidates of the falsification.
    batch : int, keyword-only
        Sub-boxes whose sets are propagated together.
    max_generators : int, optional, keyword-only
        Order limit of the affine forms (default ``20 n``).
    executor : concurrent.futures.Executor, optional, keyword-only
        Where the sets of the sub-boxes are propagated (:func:`neuroctl.parallel.map_tasks`):
        each batch is cut into pieces propagated in parallel and put back in order, so the search
        (which box is split, when it stops) is the one of the sequential run. A piece whose
        worker died twice leaves its sub-boxes undecided (never proved).
    workers : int, optional, keyword-only
        Without ``executor``: local worker processes (``None`` or 1: in this process).

    Returns
    -------
    ClosedLoopResult
    """
    t_start = _time.perf_counter()
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")
    if not isinstance(controller, nn.Module):
        raise TypeError(
            f"controller: expected a torch.nn.Module, received {type(controller).__name__}"
        )
    if not isinstance(spec, Property):
        raise TypeError(
            "spec: expected a property of neuroctl.verify.temporal (always, never, eventually, "
            f"at, &), received {type(spec).__name__}"
        )
    if not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps: expected a non-negative int, received {steps!r}")
    steps = int(steps)
    if semantics is None:
        semantics = "continuous" if plant.is_continuous else "discrete"
    if semantics not in _SEMANTICS:
        raise ValueError(f"semantics: expected one of {_SEMANTICS}, received {semantics!r}")
    if semantics == "continuous" and not plant.is_continuous:
        raise ValueError(
            f"semantics='continuous': plant {plant.name!r} is defined by a discrete update "
            "(no rhs); pass semantics='discrete'"
        )
    if semantics == "continuous" and plant._post_step is not None:
        raise ValueError(
            f"semantics='continuous': plant {plant.name!r} has a post_step projection, which "
            "is part of its discrete map only; pass semantics='discrete'"
        )
    for what, v in (("timeout", timeout), ("max_step", max_step)):
        if v is not None and not (np.isfinite(v) and v > 0):
            raise ValueError(f"{what}: expected a positive number of seconds, received {v!r}")
    for what, v in (("max_splits", max_splits), ("samples", samples), ("batch", batch)):
        if not (isinstance(v, (int, np.integer)) and v >= (1 if what == "batch" else 0)):
            raise ValueError(f"{what}: expected a non-negative int, received {v!r}")
    n = plant.n_states
    lo = _vec(x_lower, n, "x_lower")
    hi = _vec(x_upper, n, "x_upper")
    if np.any(lo > hi):
        raise ValueError(f"x_lower, x_upper: expected lower <= upper, received {lo} and {hi}")
    nw = plant.n_disturbances
    wlo = _vec(w_lower, nw, "w_lower", default=0.0)
    whi = _vec(w_upper, nw, "w_upper", default=0.0)
    if np.any(wlo > whi):
        raise ValueError(f"w_lower, w_upper: expected lower <= upper, received {wlo}, {whi}")
    horizon = steps * plant.dt
    spec.validate(n, plant.n_inputs, horizon, plant.dt, semantics)
    special = spec.times()
    ctrl = _float64(controller)
    rng = np.random.default_rng(seed)
    opts = {
        "reference": reference,
        "w_lower": wlo if nw else None,
        "w_upper": whi if nw else None,
        "semantics": semantics,
        "max_step": max_step,
        "deadline": None if timeout is None else t_start + timeout,
    }
    max_gen = 20 * n if max_generators is None else int(max_generators)
    stats = {
        "simulations": 0,
        "boxes_analysed": 0,
        "boxes_split": 0,
        "boxes_proved": 0,
        "proof_failures": 0,
        "falsification_time": 0.0,
        "proof_time": 0.0,
    }
    notes: list[str] = []
    par = _parallel_plan(executor, workers, batch)
    assumptions = _assumptions(plant, semantics, nw, wlo, whi)

    def result(status, ce=None, proved=()):
        return ClosedLoopResult._build(
            status=status,
            semantics=semantics,
            assumptions=assumptions,
            spec=spec,
            plant=plant,
            steps=steps,
            initial_lower=lo,
            initial_upper=hi,
            proved=list(proved),
            counterexample=ce,
            time=_time.perf_counter() - t_start,
            stats=stats,
            notes=notes,
        )

    # 1. falsification
    t_f = _time.perf_counter()
    cands = np.concatenate(
        [_corners(lo, hi, rng), [0.5 * (lo + hi)], rng.uniform(lo, hi, (samples, n))]
    )
    w_grad = None if not nw else rng.uniform(wlo, whi, (8, max(steps, 1), nw))
    with torch.no_grad():
        try:
            rho_d = _torch_robustness(
                spec, plant, ctrl, torch.as_tensor(cands), steps, reference, None
            ).numpy()
        except (RuntimeError, TypeError, ValueError):
            rho_d = np.zeros(cands.shape[0])
    starts = cands[np.argsort(rho_d, kind="stable")[:8]]
    guided = _gradient_search(spec, plant, ctrl, starts, lo, hi, steps, reference, w_grad)
    ce, sims = _falsify(
        plant, ctrl, spec, np.concatenate([guided, cands]), steps, opts, special, rng, wlo, whi
    )
    stats["simulations"] += sims
    stats["falsification_time"] = _time.perf_counter() - t_f
    if ce is not None:
        return result("violated", ce)

    # 2. enclosure with branch and bound on the initial set
    t_p = _time.perf_counter()
    width0 = np.where(hi > lo, hi - lo, 1.0)
    heap = [(-np.inf, 0, lo, hi)]
    counter = 1
    proved: list = []
    failures: list[str] = []
    status = "unknown"
    own_pool = None
    if par is not None and par[0] is None:  # one pool for the search, renewed if a worker dies
        own_pool = ProcessPool(int(par[1]))
        par = (own_pool, *par[1:])
    try:
        while heap:
            if timeout is not None and _time.perf_counter() - t_start > timeout:
                notes.append(
                    f"timeout of {timeout:g} s reached with {len(heap)} sub-boxes undecided"
                )
                break
            take = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
            blo = np.stack([t[2] for t in take])
            bhi = np.stack([t[3] for t in take])
            try:
                holds, score, sl, sh, tl, th, sem, gave_up = _propagate_batch(
                    plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures, par, notes
                )
            except Deadline:
                notes.append(
                    f"timeout of {timeout:g} s reached with {len(heap) + len(take)} sub-boxes "
                    "undecided"
                )
                break
            stats["boxes_analysed"] += len(take)
            if sem != semantics:
                notes.append(
                    f"the sets available enclose the {sem} map only: nothing is proved about the "
                    f"{semantics} system (its counterexamples are still searched)"
                )
                break
            for i in np.nonzero(holds)[0]:
                proved.append((blo[i], bhi[i], sl[i], sh[i], tl[i], th[i]))
            stats["boxes_proved"] += int(holds.sum())
            open_ = np.nonzero(~holds)[0]
            if open_.size == 0:
                if not heap:
                    status = "holds"
                continue
            centres = 0.5 * (blo[open_] + bhi[open_])
            ce, sims = _falsify(plant, ctrl, spec, centres, steps, opts, special, rng, wlo, whi)
            stats["simulations"] += sims
            if ce is not None:
                status = "violated"
                break
            if stats["boxes_split"] + open_.size > max_splits:
                notes.append(
                    f"max_splits={max_splits} reached with {open_.size + len(heap)} sub-boxes "
                    "undecided"
                )
                break
            sens = _sensitivity(spec, plant, ctrl, centres, steps, reference)
            for j, i in enumerate(open_):
                w = (bhi[i] - blo[i]) / width0
                s = sens[j] * (bhi[i] - blo[i])
                rank = w * (1.0 + (s / s.max() if s.max() > 0 else 0.0))
                dims = _split_dims(rank, bool(gave_up[i]), batch)
                for child_lo, child_hi in _children(blo[i], bhi[i], dims):
                    heapq.heappush(heap, (float(score[i]), counter, child_lo, child_hi))
                    counter += 1
                stats["boxes_split"] += 2 ** len(dims) - 1
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)
    stats["proof_time"] = _time.perf_counter() - t_p
    stats["proof_failures"] = len(failures)
    notes.extend(failures[:5])
    if status == "violated":
        return result("violated", ce)
    return result(status, proved=proved)


def _split_dims(rank, gave_up: bool, batch: int) -> list:
    """Dimensions along which a sub-box is cut in halves, best ``rank`` first.

    A sub-box whose sets ran to the horizon without a proof is bisected along one dimension.
    One whose sets were given up before the horizon (they could no longer prove the property,
    or their flow enclosure failed) is far from provable: it is cut along every dimension of
    positive rank at once, at most ``log2(batch)`` of them (so its children fill one batch),
    which saves propagating the intermediate boxes that would fail the same way.
    """
    order = [int(d) for d in np.argsort(-rank, kind="stable") if rank[d] > 0]
    if not order:
        return [int(np.argmax(rank))]
    if not gave_up:
        return order[:1]
    return order[: max(1, int(math.log2(max(batch, 2))))]


def _children(lo, hi, dims):
    """The ``2^len(dims)`` boxes of ``[lo, hi]`` cut in halves along ``dims``."""
    boxes = [(lo.copy(), hi.copy())]
    for d in dims:
        mid = 0.5 * (lo[d] + hi[d])
        cut = []
        for blo, bhi in boxes:
            left_hi, right_lo = bhi.copy(), blo.copy()
            left_hi[d] = right_lo[d] = mid
            cut += [(blo, left_hi), (right_lo, bhi)]
        boxes = cut
    return boxes


def _parallel_plan(executor, workers, batch):
    """``None`` (sequential) or ``(executor, workers, pieces)``: how a batch is spread
    (:func:`neuroctl.parallel._plan`, with at most one piece per sub-box of a batch)."""
    par = _plan(executor, workers)
    if par is None:
        return None
    executor, workers, width = par
    return executor, workers, max(1, min(batch, width))


def _propagate_piece(plant, ctrl, spec, blo, bhi, steps, opts, max_gen, seconds_left):
    """One piece of a batch in a worker: ``(result tuple or None at the deadline, failures)``.

    The deadline travels as seconds left (clocks of two machines are not comparable).
    """
    opts = dict(opts)
    if seconds_left is not None:
        opts["deadline"] = _time.perf_counter() + seconds_left
    failures: list[str] = []
    try:
        out = _propagate_guarded(plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures)
    except Deadline:
        return None, failures
    return out, failures


def _propagate_batch(plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures, par, notes):
    """:func:`_propagate_guarded` of a batch, in pieces on an executor when ``par`` says so."""
    if par is None:
        return _propagate_guarded(plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures)
    executor, workers, pieces = par
    cuts = np.array_split(np.arange(blo.shape[0]), min(pieces, blo.shape[0]))
    dl = opts["deadline"]
    left = None if dl is None else max(dl - _time.perf_counter(), 0.0)
    sub = {k: v for k, v in opts.items() if k != "deadline"}
    tasks = [(plant, ctrl, spec, blo[c], bhi[c], steps, sub, max_gen, left) for c in cuts]
    outs = map_tasks(_propagate_piece, tasks, executor=executor)
    parts = []
    for c, o in zip(cuts, outs):
        if isinstance(o, Failed):
            notes.append(f"a worker died twice on {c.size} sub-boxes: they stay undecided")
            n = blo.shape[1]
            nan_s = np.full((c.size, steps + 1, n), np.nan)
            nan_t = np.full((c.size, steps, n), np.nan)
            parts.append(
                (
                    np.zeros(c.size, bool),
                    np.full(c.size, -np.inf),
                    nan_s,
                    nan_s,
                    nan_t,
                    nan_t,
                    opts["semantics"],
                    np.zeros(c.size, bool),
                )
            )
            continue
        res, fails = o
        failures.extend(fails)
        if res is None:
            raise Deadline()
        parts.append(res)
    cat = [np.concatenate([p[j] for p in parts]) for j in range(6)]
    sems = {p[6] for p in parts}
    sem = (
        opts["semantics"]
        if sems == {opts["semantics"]}
        else next(s for s in sems if s != opts["semantics"])
    )
    return (*cat, sem, np.concatenate([p[7] for p in parts]))


def _assumptions(plant, semantics, nw, wlo, whi) -> str:
    if semantics == "continuous":
        text = (
            f"the ODE dx/dt = rhs(x, u{', w' if nw else ''}) of plant {plant.name!r}; the "
            f"controller samples every {plant.dt:g} s and its saturated command is held over the "
            "period (zero-order hold)"
        )
    else:
        text = (
            f"the discrete map x[k+1] = step(x[k], u[k]) of plant {plant.name!r} "
            f"(dt = {plant.dt:g} s); properties read at the samples"
        )
    if nw:
        text += f"; disturbance in [{wlo}, {whi}], held over each period at any value in them"
    return text + "; controller evaluated in float64"
