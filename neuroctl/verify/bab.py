"""Check an output specification over an input box: falsify, then branch and bound.

:func:`check` answers "can any input of the box produce an unsafe output?" with

1. falsification: seeded random sampling, then projected gradient descent on the margin;
2. input-splitting branch and bound, vectorized: many boxes are bounded at once by one batched
   linear-relaxation pass (forward linear bounds for the hidden layers, back-substitution of the
   specification rows); all the unsafe polytopes of the specification are bounded in the same
   pass, and a box is done when each is proven on it (some row of the polytope provably
   violated); the linear bound's minimizing vertex and the box centre are evaluated as candidate
   counterexamples; a box is split at the middle of an input dimension: by default the one,
   among the few with the largest ``|coefficient| × width`` (gradient × width), whose split
   leaves the least to prove on its two halves (both halves of each candidate are bounded in
   one batched pass; halves proven there are done), or simply the one of largest score;
3. small sub-boxes with few unstable ReLUs are settled exactly by the MILP of
   :mod:`neuroctl.verify.milp` (piecewise-linear networks only).

Networks with smooth activations (tanh, sigmoid) go through the same search: their neurons are
relaxed by the tangent and chord lines of :mod:`neuroctl.verify.relaxations`, which tighten as
the boxes shrink, so input splitting alone decides them (or answers "unknown" on timeout).

Every counterexample is re-checked by a float64 forward pass of the original network before the
answer "violated" is given. On timeout the answer is "unknown" with the best bounds found.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._json import json_dict
from ..parallel import ProcessPool, _plan
from .bab_bounding import _bound_batch, _split_batch, _Union
from .bounds import ReluNetwork, _boxes, _intermediate
from .spec import Spec

__all__ = ["check", "CheckResult", "falsify"]


@dataclass(frozen=True, eq=False)
class CheckResult:
    """Outcome of :func:`check`.

    Attributes
    ----------
    status : {"holds", "violated", "unknown"}
    counterexample : ndarray (n_in,) or None
        An input of the box whose output is unsafe (re-checked in float64), when violated.
    output : ndarray (n_out,) or None
        The network output at the counterexample.
    margin : float
        Violated: the margin of the counterexample (``<= 0``). Holds: a proven lower bound on the
        margin over the box (``> 0``). Unknown: the proven lower bound reached (``<= 0``).
    lower_bound, upper_bound : float
        Proven lower bound on the minimum margin over the box, and the smallest margin observed at
        an input (``inf`` if none was evaluated).
    time : float
        Wall-clock seconds.
    stats : dict
        Search statistics (samples, gradient steps, boxes bounded, splits, MILP calls, phase).
    """

    status: str
    counterexample: np.ndarray | None
    output: np.ndarray | None
    margin: float
    lower_bound: float
    upper_bound: float
    time: float
    stats: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = [f"status={self.status!r}", f"margin={self.margin:.6g}", f"time={self.time:.3g}s"]
        if self.counterexample is not None:
            with np.printoptions(precision=6, suppress=True):
                parts.append(f"counterexample={self.counterexample}")
        parts.append(f"boxes={self.stats.get('boxes', 0)}")
        return f"CheckResult({', '.join(parts)})"

    @json_dict
    def to_dict(self) -> dict:
        def arr(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "status": self.status,
            "counterexample": arr(self.counterexample),
            "output": arr(self.output),
            "margin": self.margin,
            "lower_bound": self.lower_bound,
            "upper_bound": self.upper_bound,
            "time": self.time,
            "stats": dict(self.stats),
        }

    def plot(self, ax=None):
        """Bar plot of the counterexample output (or of the bounds). Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        if self.output is not None:
            ax.bar(np.arange(self.output.size), self.output, color="C3")
            ax.set_ylabel("output at counterexample")
        else:
            ax.bar([0, 1], [self.lower_bound, min(self.upper_bound, 1e300)], color=["C0", "C1"])
            ax.set_xticks([0, 1], ["proven lower bound", "smallest seen"])
            ax.set_ylabel("margin")
        ax.set_title(f"check: {self.status}")
        return ax


def _torch_forward(rnet: ReluNetwork):
    Ws = [torch.as_tensor(W) for W in rnet.weights]
    bs = [torch.as_tensor(b) for b in rnet.biases]
    acts = [a.torch for a in rnet.layer_activations]

    def f(x):
        for k, (W, b) in enumerate(zip(Ws, bs)):
            x = x @ W.T + b
            if k < len(Ws) - 1:
                x = acts[k](x)
        return x

    return f


def _spec_margin_torch(spec: Spec, y):
    parts = []
    for C, d in spec.unsafe:
        parts.append((y @ torch.as_tensor(C).T - torch.as_tensor(d)).max(-1).values)
    return torch.stack(parts, -1).min(-1).values


def falsify(
    net,
    lower,
    upper,
    spec: Spec,
    *,
    samples: int = 10_000,
    steps: int = 30,
    starts: int = 64,
    seed: int = 0,
):
    """Search for a counterexample: random sampling, then projected gradient descent.

    Parameters
    ----------
    net : nn.Module or ReluNetwork
    lower, upper : array_like (n_in,)
    spec : Spec
    samples, steps, starts, seed : int, keyword-only
        Random samples; gradient steps; number of best samples used as starts; RNG seed.

    Returns
    -------
    (x, margin) : (ndarray (n_in,), float)
        The input with the smallest margin found and its margin (``<= 0`` means a counterexample).
    """
    rnet, lo, hi, _ = _boxes(net, lower, upper)
    lo, hi = lo[0], hi[0]
    rng = np.random.default_rng(seed)
    x = lo + (hi - lo) * rng.random(size=(samples, lo.size))
    x = np.vstack([x, (lo + hi)[None] / 2])
    m = spec.margin(rnet(x))
    best = int(np.argmin(m))
    bx, bm = x[best], float(m[best])
    if bm <= 0 or steps <= 0:
        return bx, bm
    f = _torch_forward(rnet)
    order = np.argsort(m, kind="stable")[:starts]
    xt = torch.as_tensor(x[order]).clone()
    lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
    width = hi_t - lo_t
    for i in range(steps):
        xt.requires_grad_(True)
        mt = _spec_margin_torch(spec, f(xt))
        (g,) = torch.autograd.grad(mt.sum(), xt)
        with torch.no_grad():
            k = int(torch.argmin(mt))
            if float(mt[k]) < bm:
                bx, bm = xt[k].detach().numpy().copy(), float(mt[k])
                if bm <= 0:
                    return bx, bm
            step = 0.1 * width * (1 - i / steps)
            xt = torch.minimum(torch.maximum(xt - step * torch.sign(g), lo_t), hi_t)
    mt = _spec_margin_torch(spec, f(xt)).detach()
    k = int(torch.argmin(mt))
    if float(mt[k]) < bm:
        bx, bm = xt[k].numpy().copy(), float(mt[k])
    return bx, bm


class _Recheck:
    """Float64 forward pass of the original network, independent of the lowering."""

    def __init__(self, net, spec: Spec):
        self.spec = spec
        if isinstance(net, torch.nn.Module):
            self.net = copy.deepcopy(net).to(torch.float64).eval()
        else:
            self.net = net

    def __call__(self, x):
        if isinstance(self.net, torch.nn.Module):
            with torch.no_grad():
                y = self.net(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()
        else:
            y = self.net(x)
        return y, float(self.spec.margin(y))


def check(
    net,
    lower,
    upper,
    spec: Spec,
    *,
    timeout: float = 60.0,
    seed: int = 0,
    samples: int = 10_000,
    pgd_steps: int = 30,
    batch_size: int = 512,
    intermediate: str = "crown",
    milp_unstable: int = 0,
    milp_backend: str = "scipy",
    alpha_steps: int = 0,
    branching: str = "auto",
    executor=None,
    workers: int | None = None,
) -> CheckResult:
    """Check that no input in ``[lower, upper]`` produces an output in the unsafe set of ``spec``.

    Parameters
    ----------
    net : nn.Module or ReluNetwork
        Feed-forward network of the layers of :data:`neuroctl.verify.bounds.LAYER_RULES`
        (piecewise-linear activations, tanh, sigmoid).
    lower, upper : array_like, shape (n_in,)
        The input box.
    spec : Spec
        The property (stored as its unsafe set).
    timeout : float, keyword-only
        Seconds; on expiry the answer is "unknown" with the best bounds found.
    seed : int, keyword-only
        Seed of the falsifier (same seed, same result).
    samples, pgd_steps : int, keyword-only
        Random samples and projected-gradient steps of the falsifier (0 disables).
    batch_size : int, keyword-only
        Boxes bounded per vectorized pass.
    intermediate : {"forward", "crown", "interval"}, keyword-only
        Hidden-layer bounds used in the branch and bound.
    milp_unstable : int, keyword-only
        Settle a box by MILP when it has at most this many unstable ReLUs (0: never). Applies to
        piecewise-linear networks only: a network with smooth layers (which MILP cannot encode)
        is decided by input splitting alone.
    milp_backend : {"scipy", "highspy"}, keyword-only
    alpha_steps : int, keyword-only
        Boxes that the CROWN bound does not prove are bounded again with optimized lower slopes
        of their unstable ReLUs (:func:`neuroctl.verify.alpha.optimized_lower_bound`), with this
        many projected-gradient steps (0: never).
    branching : {"auto", "bound", "gradient"}, keyword-only
        How a box is split: ``"gradient"`` halves the input dimension of largest
        ``|coefficient| × width`` of the linear bound; ``"bound"`` tries the
        :data:`BRANCH_CANDIDATES` best dimensions by that score, bounds both halves of each, and
        keeps the split that leaves the least to prove on its halves (halves proven there are
        done); no dimension is halved more than :data:`MAX_SPLIT_LEAD` times beyond the least
        halved one. ``"auto"`` (the default) runs a ``"bound"`` search and a ``"gradient"``
        search of the whole box in turn, each resumed where it stopped, in slices of
        :data:`AUTO_SLICE` boxes bounded (split estimates included) doubled every round
        (``"bound"`` first): the look-ahead of ``"bound"`` can keep halving input dimensions
        that are already narrow (each split improves one half's bound a little) while the
        dimensions that matter stay whole, which the gradient score does not, and the gradient
        search, cheaper per box, decides others sooner. Each search is sound on its own; the
        slices count boxes, not seconds, so which one answers depends on the machine only
        through the timeout.
        A piece of a batch lost on every attempt (see ``executor``) ends the search as before.
    executor : concurrent.futures.Executor, optional, keyword-only
        Where the boxes of a batch are bounded (:func:`neuroctl.parallel.map_tasks`): each
        batch, and each batch of split estimates, is cut into pieces bounded in parallel and put
        back in order, so the search (which boxes are proved, split, tried as counterexamples,
        when it stops) is the one of the sequential run. A piece whose worker died on every
        attempt makes the answer "unknown" (its boxes are not proved); a lost split estimate
        falls back to the ``"gradient"`` split of its boxes.
    workers : int, optional, keyword-only
        Without ``executor``: local worker processes for this call (``None`` or 1: in this
        process, nothing pickled).

    Returns
    -------
    CheckResult
    """
    t0 = time.perf_counter()
    deadline = t0 + float(timeout)
    if not isinstance(spec, Spec):
        raise TypeError(f"spec: expected a Spec, received {type(spec).__name__}")
    rnet, lo, hi, single = _boxes(net, lower, upper)
    if not single:
        raise ValueError(f"check: expected one box of shape (n_in,), received {lo.shape}")
    if spec.n_outputs != rnet.n_outputs:
        raise ValueError(
            f"check: the spec has {spec.n_outputs} outputs, the network {rnet.n_outputs}"
        )
    _intermediate(intermediate)  # validates the name
    if branching not in ("auto", "bound", "gradient"):
        raise ValueError(
            f"branching: expected 'auto', 'bound' or 'gradient', received {branching!r}"
        )
    for name, v in (("milp_unstable", milp_unstable), ("alpha_steps", alpha_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected a non-negative integer, received {v!r}")
    par = _plan(executor, workers)
    recheck = _Recheck(net, spec)
    stats = {
        "samples": 0,
        "pgd_steps": 0,
        "boxes": 0,
        "splits": 0,
        "milp_calls": 0,
        "alpha_boxes": 0,
        "branch_estimates": 0,
        "max_depth": 0,
        "lost_pieces": 0,
        "phase": "falsify",
    }
    best_m = np.inf

    def done(status, lower_bound, x=None):
        if x is not None:
            y, m = recheck(x)
            return CheckResult(
                status, np.asarray(x), y, m, lower_bound, m, time.perf_counter() - t0, stats
            )
        margin = lower_bound
        return CheckResult(
            status, None, None, margin, lower_bound, best_m, time.perf_counter() - t0, stats
        )

    # 1. falsification
    if samples > 0:
        x, m = falsify(rnet, lo[0], hi[0], spec, samples=samples, steps=pgd_steps, seed=seed)
        stats["samples"], stats["pgd_steps"] = samples, pgd_steps
        best_m = m
        if m <= 0 and recheck(x)[1] <= 0:
            return done("violated", -np.inf, x)

    # 2. branch and bound, all the unsafe polytopes together
    stats["phase"] = "branch_and_bound"
    own_pool = None
    if par is not None and par[0] is None:  # one pool for the search, renewed if a worker dies
        own_pool = ProcessPool(par[1])
        par = (own_pool, *par[1:])
    try:
        union = _Union(spec.unsafe)

        def search(how):
            return _Search(
                rnet,
                lo,
                hi,
                union,
                recheck,
                batch_size,
                intermediate,
                milp_unstable,
                milp_backend,
                alpha_steps,
                how,
                stats,
                par,
            )

        searches = [
            search(h) for h in (("bound", "gradient") if branching == "auto" else (branching,))
        ]
        status, last = _interleave(searches, deadline)
        if status == "violated":
            return done("violated", -np.inf, last.best_x)
        if status == "unknown":
            xs = [s.best_x for s in searches if s.best_x is not None]
            if xs:
                best_m = min(best_m, float(spec.margin(rnet(np.asarray(xs))).min()))
            return done("unknown", min(s.lower_bound for s in searches))
        global_lb = last.proven_lb
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)
    return done("holds", global_lb)


class _Search:
    """A branch and bound over the union of unsafe polytopes, run in slices of time.

    Proves ``max_j (C_k y - d_k)_j > 0`` on the box for every polytope ``k`` of the
    :class:`~neuroctl.verify.bab_bounding._Union`, or finds an input violating one. The
    polytopes are searched together: every box carries the polytopes still open on it (a
    polytope proven on a box is proven on its sub-boxes), is bounded for all of them in one pass,
    and is done when none is open. The split follows the open polytope of least bound.
    :meth:`run` goes on until a time and returns ``"paused"`` there; a later call resumes where
    it stopped (the stack of open boxes is kept). ``par``: None (everything here) or
    ``(executor, workers, width)`` from :func:`neuroctl.parallel._plan`: the bounding of each
    batch goes to the executor in ``width`` pieces, merged in submission order.

    Attributes
    ----------
    lower_bound : float
        Proven lower bound on the margin over the box (``-inf`` after a lost piece).
    best_x : ndarray (n_in,) or None
        The counterexample when violated, else the candidate input of least margin seen.
    work : int
        Boxes bounded so far, split estimates included.
    """

    def __init__(
        self,
        rnet,
        lo,
        hi,
        union,
        recheck,
        batch_size,
        intermediate,
        milp_unstable,
        milp_backend,
        alpha_steps,
        branching,
        stats,
        par,
    ):
        self.rnet, self.union, self.recheck = rnet, union, recheck
        self.batch_size, self.intermediate, self.alpha_steps = batch_size, intermediate, alpha_steps
        self.milp_unstable, self.milp_backend = milp_unstable, milp_backend
        self.branching, self.stats, self.par = branching, stats, par
        self.use_milp = milp_unstable > 0 and rnet.piecewise_linear
        self.stack_lo, self.stack_hi, self.stack_depth = [lo], [hi], [np.zeros(1, int)]
        self.stack_open = [np.ones((1, union.n_polytopes), bool)]
        # a lower bound on the margin over each stacked box (its parent's, -inf for the root)
        self.stack_lb = [np.full(1, -np.inf)]
        self.root_width = np.where(hi - lo > 0, hi - lo, 1.0)
        self.proven_lb = np.inf  # min over the proofs of a polytope on a box of their bound
        self.inflight_lb = np.inf  # the open boxes of a batch stopped before they were stacked
        self.best_x = None
        self.best_cm = np.inf
        self.lost = False
        self.work = 0  # boxes bounded, split estimates included

    @property
    def lower_bound(self) -> float:
        """The least of the proofs' bounds and of the bounds of the boxes still open (every
        stacked one, not only the last batch's)."""
        if self.lost:
            return -np.inf
        stacked = min((float(b.min()) for b in self.stack_lb if b.size), default=np.inf)
        return min(self.proven_lb, self.inflight_lb, stacked)

    def run(self, until: float, work: float = np.inf) -> str:
        """Search until ``time.perf_counter()`` passes ``until`` or :attr:`work` reaches ``work``.

        Returns
        -------
        {"holds", "violated", "unknown", "paused"}
            ``"unknown"``: the search cannot go on (a box that cannot be split, or a piece lost
            on every attempt); ``"paused"``: time is up, :meth:`run` again to go on.
        """
        from .milp import minimize_margin

        n = self.root_width.shape[1]
        while self.stack_lo:
            if time.perf_counter() > until or self.work >= work:
                return "paused"
            # pop up to batch_size boxes (LIFO: keeps the stack small, depth-first flavour)
            parts = [
                (
                    self.stack_lo.pop(),
                    self.stack_hi.pop(),
                    self.stack_depth.pop(),
                    self.stack_open.pop(),
                    self.stack_lb.pop(),
                )
            ]
            count = parts[0][0].shape[0]
            while self.stack_lo and count < self.batch_size:
                parts.append(
                    (
                        self.stack_lo.pop(),
                        self.stack_hi.pop(),
                        self.stack_depth.pop(),
                        self.stack_open.pop(),
                        self.stack_lb.pop(),
                    )
                )
                count += parts[-1][0].shape[0]
            blo, bhi, bdep, bopen, blb = (
                np.concatenate([q[i] for q in parts]) for i in range(5)
            )
            if blo.shape[0] > self.batch_size:
                self.stack_lo.append(blo[self.batch_size :])
                self.stack_hi.append(bhi[self.batch_size :])
                self.stack_depth.append(bdep[self.batch_size :])
                self.stack_open.append(bopen[self.batch_size :])
                self.stack_lb.append(blb[self.batch_size :])
                blo, bhi, bdep = (
                    blo[: self.batch_size],
                    bhi[: self.batch_size],
                    bdep[: self.batch_size],
                )
                bopen = bopen[: self.batch_size]
            self.inflight_lb = float(blb[: self.batch_size].min())  # until bounded
            self.stats["boxes"] += blo.shape[0]
            self.work += blo.shape[0]
            out = _bound_batch(
                self.rnet,
                blo,
                bhi,
                self.union,
                self.intermediate,
                self.alpha_steps,
                self.use_milp,
                self.par,
            )
            if out is None:  # a piece lost its worker on every attempt: its boxes are not proved
                self.stats["lost_pieces"] += 1
                self.lost = True
                return "unknown"
            val, pbound, Lam, vertex, pre, n_alpha = out
            self.stats["alpha_boxes"] += n_alpha
            proved = bopen & (pbound > 0)
            if proved.any():
                self.proven_lb = min(self.proven_lb, float(pbound[proved].min()))
            bopen = bopen & ~proved
            keep = bopen.any(1)
            if not keep.any():
                self.inflight_lb = np.inf
                continue
            blo, bhi, bdep, bopen = blo[keep], bhi[keep], bdep[keep], bopen[keep]
            val, pbound, Lam, vertex = val[keep], pbound[keep], Lam[keep], vertex[keep]
            open_bound = np.where(bopen, pbound, np.inf)
            self.inflight_lb = float(open_bound.min())
            # candidate counterexamples: the vertices minimizing each row's bound, and the centres
            cand = np.concatenate([vertex.reshape(-1, n), (blo + bhi) / 2])
            cm = self.union.margin(self.rnet(cand))
            k = int(np.argmin(cm))
            if cm[k] <= 0:
                y, m = self.recheck(cand[k])
                if m <= 0:
                    self.best_x = cand[k]
                    return "violated"
            if cm[k] < self.best_cm:
                self.best_x, self.best_cm = cand[k], float(cm[k])
            # exact MILP on boxes with few unstable ReLUs (piecewise-linear networks)
            if self.use_milp:
                unstable = sum(((l < 0) & (u > 0)).sum(1) for l, u in (p for p in pre))[keep]
                small = unstable <= self.milp_unstable
                for i in np.flatnonzero(small):
                    pre_i = [(l[keep][i], u[keep][i]) for l, u in pre]
                    for q in np.flatnonzero(bopen[i]):
                        remaining = until - time.perf_counter()
                        if remaining <= 0:
                            small[i] = False
                            break
                        C, d = self.union.polytope(q)
                        sol = minimize_margin(
                            self.rnet,
                            blo[i],
                            bhi[i],
                            C,
                            d,
                            pre_bounds=pre_i,
                            backend=self.milp_backend,
                            time_limit=remaining,
                        )
                        self.stats["milp_calls"] += 1
                        if sol.status == "optimal" and sol.value > 0:
                            self.proven_lb = min(self.proven_lb, sol.value)
                            bopen[i, q] = False
                            continue
                        if sol.x is not None and sol.value <= 0:
                            y, m = self.recheck(sol.x)
                            if m <= 0:
                                self.best_x = sol.x
                                return "violated"
                        small[i] = False
                        break
                rest = ~small
                blo, bhi, bdep, bopen = blo[rest], bhi[rest], bdep[rest], bopen[rest]
                val, pbound, Lam = val[rest], pbound[rest], Lam[rest]
                open_bound = open_bound[rest]
                if blo.shape[0] == 0:
                    self.inflight_lb = np.inf
                    continue
            # split: dimension maximizing |coef| × width of the row closest to a proof, in the
            # open polytope farthest from one
            B = blo.shape[0]
            worst = np.argmin(open_bound, axis=1)
            row_val = np.where(self.union.rows_of(worst), val, -np.inf)
            j = np.argmax(row_val, axis=1)
            coef = np.abs(Lam[np.arange(B), j])
            width = bhi - blo
            score = coef * width
            score = np.where(width > 0, score + 1e-12 * width, -1.0)
            if self.branching == "bound":
                self.stats["branch_estimates"] += 2 * min(BRANCH_CANDIDATES, n) * B
                self.work += 2 * min(BRANCH_CANDIDATES, n) * B
                # a dimension is split at most MAX_SPLIT_LEAD times more than the least split
                # one: near the minimizer the bound of the half containing it is capped by the
                # true margin for every candidate, and the estimate alone could keep halving one
                # dimension
                rel = width / self.root_width
                balanced = rel >= rel.max(1, keepdims=True) / 2**MAX_SPLIT_LEAD
                sb = np.where(balanced, score, -1.0)
                dim, v1, v2 = _split_batch(
                    self.rnet,
                    blo,
                    bhi,
                    self.union,
                    bopen,
                    sb,
                    BRANCH_CANDIDATES,
                    self.intermediate,
                    self.batch_size,
                    until,
                    self.par,
                    self.stats,
                )
            else:
                dim = np.argmax(score, axis=1)
            if np.any(width[np.arange(B), dim] <= 0):
                # a degenerate box that cannot be proven: its single point was checked above
                return "unknown"
            mid = (blo[np.arange(B), dim] + bhi[np.arange(B), dim]) / 2
            lo1, hi1 = blo.copy(), bhi.copy()
            hi1[np.arange(B), dim] = mid
            lo2, hi2 = blo.copy(), bhi.copy()
            lo2[np.arange(B), dim] = mid
            self.stats["splits"] += B
            self.stats["max_depth"] = max(self.stats["max_depth"], int(bdep.max()) + 1)
            clo, chi = np.vstack([lo1, lo2]), np.vstack([hi1, hi2])
            cdep = np.concatenate([bdep + 1, bdep + 1])
            copen = np.vstack([bopen, bopen])
            parent_lb = np.where(bopen, open_bound, np.inf).min(1)  # valid on each half
            clb = np.concatenate([parent_lb, parent_lb])
            if self.branching == "bound":
                # polytopes proven on a half by the estimate are done there; halves with none left
                # are done, the others are bounded again
                vb = np.vstack([v1, v2])
                proved = copen & (vb > 0)
                if proved.any():
                    self.proven_lb = min(self.proven_lb, float(vb[proved].min()))
                copen = copen & ~proved
                # the half's own estimate where it is tighter than its parent's bound
                clb = np.maximum(clb, np.where(copen, vb, np.inf).min(1))
                left = copen.any(1)
                clo, chi, cdep, copen, clb = (
                    clo[left], chi[left], cdep[left], copen[left], clb[left]
                )
                if clo.shape[0] == 0:
                    self.inflight_lb = np.inf
                    continue
            self.stack_lo.append(clo)
            self.stack_hi.append(chi)
            self.stack_depth.append(cdep)
            self.stack_open.append(copen)
            self.stack_lb.append(clb)
            self.inflight_lb = np.inf
        return "holds"


def _interleave(searches, deadline):
    """Run the searches in turn, in slices of :data:`AUTO_SLICE` boxes doubled every round.

    Each search resumes where its last slice stopped. The slices count boxes bounded (split
    estimates included), not seconds, so that the search does not depend on the machine's speed
    or on where the boxes are bounded (one search alone runs until ``deadline``). Returns
    ``(status, search)``: the first "holds" or "violated" and the search that found it, or
    "unknown" (time is up, or every search ended, or a piece was lost on every attempt: not a
    limit of a split rule, no other search is tried).
    """
    live = list(searches)
    length = AUTO_SLICE if len(live) > 1 else np.inf
    while live:
        for s in list(live):
            status = s.run(deadline, s.work + length)
            if status in ("holds", "violated"):
                return status, s
            if s.lost:
                return "unknown", s
            if status == "unknown":
                live.remove(s)
            if time.perf_counter() > deadline:
                return "unknown", s
        length *= 2
    return "unknown", searches[-1]


#: With ``branching="auto"``, boxes bounded (split estimates included) in the first slice of each
#: search, doubled every round: about a second of the look-ahead on ACAS Xu, one thread.
AUTO_SLICE = 512
#: Number of input dimensions (the best by gradient × width) whose split is tried per box.
BRANCH_CANDIDATES = 5
#: With ``branching="bound"``, a dimension is halved at most this many times more than the least
#: halved one of the same box (relative to the input box).
MAX_SPLIT_LEAD = 8
