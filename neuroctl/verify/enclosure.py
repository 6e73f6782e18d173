"""A closed-loop property decided on sets: the enclosures of each control period of a batch of
initial boxes, and the robustness bounds of every set of the property on them.

Per control period ``[k dt, (k+1) dt]`` the sets are the state at the sample (an affine form,
correlated with the command it produces), the command (saturated), and a box enclosing every
state over the period (the *tube*). The property's sets are evaluated on them with the same affine
arithmetic (:mod:`neuroctl.verify.reach`), their bounds widened by ``1e-12`` relative (+ ``1e-15``)
for the rounding of those few operations.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np

from .affine import AffineForm, controller_on_sets
from .flow import closed_loop_period_sets
from .reach import _reduce
from .temporal import TIME_TOL, AllOf, At, _Points
from .trajectories import _reference

_INFLATE_REL, _INFLATE_ABS = 1e-12, 1e-15


class Deadline(Exception):
    """The time budget ran out inside a propagation (the sub-boxes stay undecided)."""


# ============================================================================ sets of a spec
def _inflate(lo, hi):
    pad = _INFLATE_REL * np.maximum(np.abs(lo), np.abs(hi)) + _INFLATE_ABS
    return lo - pad, hi + pad


def _set_values(spec, z_of, values, col):
    """Robustness bounds of every set of ``spec`` on one set point (``z_of(over)`` a form)."""
    for s in spec.sets():
        z = z_of(s.over)
        g = AffineForm._lift(s.margins(z), z.ctx)
        with np.errstate(invalid="ignore", over="ignore"):
            lo, hi = _inflate(g.lower, g.upper)
            inside = -np.max(hi, axis=-1)
            outside = np.max(lo, axis=-1)
        values[id(s), "inside"][:, col] = np.nan_to_num(inside, nan=-np.inf)
        values[id(s), "outside"][:, col] = np.nan_to_num(outside, nan=-np.inf)


def _propagate(plant, ctrl, spec, blo, bhi, steps, opts, max_gen):
    """Sets of a batch of initial boxes and the property's verdict on each.

    Returns ``holds`` (B,), ``score`` (B,) (lower bound of the robustness), the sample bounds
    ``(B, steps+1, n)`` twice, the tube bounds ``(B, steps, n)`` twice, the semantics the
    sets enclose, and ``abandoned`` (B,): the sets given up before the horizon because they
    could no longer prove the property (:func:`_abandon`; their later bounds are NaN).
    """
    b, n = blo.shape
    dt = plant.dt
    extra = _instants_between_samples(spec, dt, steps) if opts["semantics"] == "continuous" else []
    m_points = 2 * steps + 1 + len(extra)
    values = {}
    for s in spec.sets():
        for mode in ("inside", "outside"):
            values[id(s), mode] = np.full((b, m_points), -np.inf)
    t_lo = np.zeros(m_points)
    t_hi = np.zeros(m_points)
    sample = np.zeros(m_points, bool)
    t_lo[0::2][: steps + 1] = t_hi[0::2][: steps + 1] = np.arange(steps + 1) * dt
    sample[0 : 2 * steps + 1 : 2] = True
    t_lo[1 : 2 * steps : 2] = np.arange(steps) * dt
    t_hi[1 : 2 * steps : 2] = np.arange(1, steps + 1) * dt
    for j, (_, t) in enumerate(extra):
        t_lo[2 * steps + 1 + j] = t_hi[2 * steps + 1 + j] = t
    hopeless = np.zeros(b, bool)
    hopeless_score = np.full(b, -np.inf)
    x = AffineForm.from_box(blo, bhi)
    s_lo, s_hi = [blo], [bhi]
    tb_lo, tb_hi = [], []
    semantics = opts["semantics"]
    u_lo = u_hi = None
    for k in range(steps):
        if opts.get("deadline") is not None and time.perf_counter() > opts["deadline"]:
            raise Deadline(f"time budget spent at period {k} of {steps}")
        with np.errstate(invalid="ignore", over="ignore"):
            ps = closed_loop_period_sets(
                plant,
                ctrl,
                x,
                reference=opts["reference"],
                w_lower=opts["w_lower"],
                w_upper=opts["w_upper"],
                semantics=opts["semantics"],
                max_step=opts["max_step"],
            )
            semantics = ps.semantics if ps.semantics != opts["semantics"] else semantics
            u = plant.saturate(ps.u)
            u = AffineForm._lift(u, x.ctx)
            u_lo, u_hi = u.lower, u.upper
            xk = x

            def at_sample(over, xk=xk, u=u):
                return xk if over == "state" else np.concatenate([xk, u], axis=-1)

            _set_values(spec, at_sample, values, 2 * k)
            t_lo[2 * k] = t_hi[2 * k] = k * dt
            sample[2 * k] = True
            tlo, thi = np.asarray(ps.tube_lower, float), np.asarray(ps.tube_upper, float)
            finite = np.isfinite(tlo).all(axis=1) & np.isfinite(thi).all(axis=1)
            tlo_s = np.where(finite[:, None], tlo, 0.0)
            thi_s = np.where(finite[:, None], thi, 0.0)

            def on_tube(over, tlo_s=tlo_s, thi_s=thi_s, u_lo=u_lo, u_hi=u_hi):
                if over == "state":
                    return AffineForm.from_box(tlo_s, thi_s)
                return AffineForm.from_box(
                    np.concatenate([tlo_s, u_lo], -1), np.concatenate([thi_s, u_hi], -1)
                )

            if ps.semantics == "continuous":
                _set_values(spec, on_tube, values, 2 * k + 1)
                for key in values:
                    values[key][~finite, 2 * k + 1] = -np.inf
            else:  # a discrete map has no states between its samples
                for key in values:
                    values[key][:, 2 * k + 1] = np.inf
            t_lo[2 * k + 1], t_hi[2 * k + 1] = k * dt, (k + 1) * dt
            for j, (kj, t) in enumerate(extra):
                if kj == k and ps.semantics == "continuous":
                    col = 2 * steps + 1 + j
                    _set_values(
                        spec, _partial_period(plant, ctrl, xk, u, t - k * dt, opts), values, col
                    )
                    t_lo[col] = t_hi[col] = t
            x = _reduce(AffineForm._lift(ps.x_next, x.ctx), max_gen)
            x = _abandon(
                spec,
                values,
                t_lo,
                t_hi,
                sample,
                dt,
                2 * k + 1,
                extra,
                k,
                x,
                hopeless,
                hopeless_score,
            )
        tb_lo.append(tlo)
        tb_hi.append(thi)
        s_lo.append(x.lower)
        s_hi.append(x.upper)
        if hopeless.all():  # nothing left to prove: the later sets are not computed
            nan = np.full((b, n), np.nan)
            s_lo += [nan] * (steps - k - 1)
            s_hi += [nan] * (steps - k - 1)
            tb_lo += [nan] * (steps - k - 1)
            tb_hi += [nan] * (steps - k - 1)
            tub = np.stack(tb_lo, 1), np.stack(tb_hi, 1)
            return (
                np.zeros(b, bool),
                hopeless_score,
                np.stack(s_lo, 1),
                np.stack(s_hi, 1),
                tub[0],
                tub[1],
                semantics,
                hopeless,
            )
    # the last sample, with the last period's command (a box: the reduced form is a new context)
    with np.errstate(invalid="ignore", over="ignore"):
        xl, xh = x.lower, x.upper
        finite = np.isfinite(xl).all(axis=1) & np.isfinite(xh).all(axis=1)
        xl, xh = np.where(finite[:, None], xl, 0.0), np.where(finite[:, None], xh, 0.0)
        if steps == 0:
            u0 = AffineForm._lift(
                plant.saturate(_sets_command(plant, ctrl, x, opts["reference"])), x.ctx
            )
            u_lo, u_hi = u0.lower, u0.upper

        def last(over, xl=xl, xh=xh, x=x):
            if over == "state":
                return x
            return AffineForm.from_box(
                np.concatenate([xl, u_lo], -1), np.concatenate([xh, u_hi], -1)
            )

        _set_values(spec, last, values, 2 * steps)
        for key in values:
            values[key][~finite, 2 * steps] = -np.inf
    t_lo[2 * steps] = t_hi[2 * steps] = steps * dt
    sample[2 * steps] = True
    pts = _Points(t_lo, t_hi, sample, dt, values, on_sets=True)
    holds = np.asarray(spec.holds_on(pts), bool) & ~hopeless
    score = np.nan_to_num(np.asarray(spec.robustness(pts), float), nan=-np.inf)
    score = np.where(hopeless, hopeless_score, score)
    tub = (np.stack(tb_lo, 1), np.stack(tb_hi, 1)) if steps else (np.zeros((b, 0, n)),) * 2
    return holds, score, np.stack(s_lo, 1), np.stack(s_hi, 1), tub[0], tub[1], semantics, hopeless


def _abandon(spec, values, t_lo, t_hi, sample, dt, last_col, extra, k, x, hopeless, score):
    """Stop refining the sets that can no longer prove the property; returns ``x``.

    After period ``k`` the values of the points up to column ``last_col`` (and of the instants
    of ``extra`` inside periods ``<= k``) are known. With every later point at ``+inf`` (the
    best any later set could give) the verdict of a set is an upper bound of its final verdict
    (``holds_on`` is monotone in the values); a set for which even that is False is *hopeless*:
    it is marked (``hopeless``, ``score`` updated in place: its optimistic robustness, the
    priority of its box) and its form replaced by a copy of a live one (never read again).
    Only a decision to give up, so soundness is untouched; it saves the sub-steps a diverging
    set would take before its flow enclosure fails.
    """
    live = ~hopeless
    if not live.any():
        return x
    n_s = len(t_lo) - len(extra) - 1  # the last sample; the extra instants follow it
    known = np.zeros(len(t_lo), bool)
    known[: last_col + 1] = True
    for j, (kj, _) in enumerate(extra):
        known[n_s + 1 + j] = kj <= k
    best = {key: np.where(known, v, np.inf) for key, v in values.items()}
    pts = _Points(t_lo, t_hi, sample, dt, best, on_sets=True)
    can = np.asarray(spec.holds_on(pts), bool)
    new = live & ~can
    if not new.any():
        return x
    hopeless |= new
    score[new] = np.nan_to_num(np.asarray(spec.robustness(pts), float), nan=-np.inf)[new]
    if hopeless.all():
        return x
    # a copy of a live set: it costs the batch no extra sub-steps and fails only with that set
    src = int(np.nonzero(~hopeless)[0][0])
    c, g, e = x.c.copy(), x.g.copy(), np.array(x.e)
    c[new], g[:, new], e[new] = c[src], g[:, src : src + 1], e[src]
    return AffineForm(c, g, x.ctx, e)


def _instants_between_samples(spec, dt, steps):
    """``(k, t)`` for every time ``t`` of an ``at`` strictly inside period ``k``."""
    parts = spec.parts if isinstance(spec, AllOf) else (spec,)
    out = []
    for t in sorted({p.time for p in parts if isinstance(p, At)}):
        k = math.floor(t / dt)
        if t - k * dt > TIME_TOL * dt and (k + 1) * dt - t > TIME_TOL * dt and k < steps:
            out.append((k, t))
    return out


def _partial_period(plant, ctrl, xk, u, tau, opts):
    """The set at ``tau`` seconds into a period (the same command held): the enclosure of the
    period for a copy of the plant whose period is ``tau``."""
    part = copy.copy(plant)
    part.dt = float(tau)
    ps = closed_loop_period_sets(
        part,
        ctrl,
        xk,
        reference=opts["reference"],
        w_lower=opts["w_lower"],
        w_upper=opts["w_upper"],
        semantics="continuous",
        max_step=opts["max_step"],
    )
    x_t = AffineForm._lift(ps.x_next, xk.ctx)

    def z_of(over):
        return x_t if over == "state" else np.concatenate([x_t, u], axis=-1)

    return z_of


def _sets_command(plant, ctrl, x, reference):
    r = _reference(plant, reference, x.shape[0])
    y = AffineForm._lift(plant.observe(x, r) if r is not None else plant.observe(x), x.ctx)
    return controller_on_sets(ctrl, y)


def _propagate_guarded(plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures):
    """:func:`_propagate`; a sub-box on which an operation of the proof is undefined (a division
    by a set that contains 0, ...) is undecided, and the failure is recorded."""
    try:
        return _propagate(plant, ctrl, spec, blo, bhi, steps, opts, max_gen)
    except (ValueError, ArithmeticError) as e:
        if blo.shape[0] > 1:
            parts = [
                _propagate_guarded(
                    plant,
                    ctrl,
                    spec,
                    blo[i : i + 1],
                    bhi[i : i + 1],
                    steps,
                    opts,
                    max_gen,
                    failures,
                )
                for i in range(blo.shape[0])
            ]
            cat = [np.concatenate([p[j] for p in parts]) for j in range(6)]
            return (*cat, parts[0][6], np.concatenate([p[7] for p in parts]))
        failures.append(f"proof failed on [{blo[0]}, {bhi[0]}]: {e}")
        n = blo.shape[1]
        nan_s = np.full((1, steps + 1, n), np.nan)
        nan_t = np.full((1, steps, n), np.nan)
        return (
            np.zeros(1, bool),
            np.full(1, -np.inf),
            nan_s,
            nan_s,
            nan_t,
            nan_t,
            opts["semantics"],
            np.ones(1, bool),
        )
