"""Validated enclosures of the continuous flow of a plant over one control period.

The controller acts by zero-order hold: over ``[kT, (k+1)T]`` (``T = plant.dt``) the plant obeys
``dx/dt = rhs(x, u_k, w)`` with the saturated command ``u_k = plant.saturate(controller(y_k))``
held, and the disturbance ``w`` constant somewhere in its bounds. For a set of initial states
(an :class:`~neuroctl.verify.affine.AffineForm`), :func:`closed_loop_period_sets` returns a set
that contains the exact solution at ``(k+1)T`` from every state of the set, every command of the
command set and every disturbance, and a box (the *tube*) that contains every state on the whole
period.

Each sub-step ``[t, t + h]`` is the classical validated Taylor step (Moore; Lohner; Nedialkov,
Jackson and Corliss 1999):

1. *A-priori enclosure* (Picard–Lindelöf). A box ``B`` with ``X + [0, h] f(B, U, W) ⊆ B``,
   ``f`` evaluated on boxes with affine arithmetic. Then every solution from ``X`` stays in
   ``B`` on ``[0, h]`` (the Picard operator maps the continuous functions with values in ``B``
   into themselves, so its fixed point, the solution, lies there). Found by iterating the
   Picard operator with inflation; on failure ``h`` is halved.
2. *Taylor step of order K* on affine forms. The Taylor coefficients of the flow,
   ``x_[0] = x0``, ``x_[i+1] = f(x)_[i] / (i + 1)``, are computed by Taylor-series arithmetic
   (:mod:`neuroctl.verify.taylor`, whose coefficients are affine forms: Griewank and Walther,
   *Evaluating Derivatives*, ch. 13; Moore 1966) by running the plant's own array-agnostic
   ``rhs`` on series. Keeping the coefficients as affine forms keeps their correlation with the
   symbols of the initial state and of the command. Then ``x(h) = sum_{i<=K} x_[i] h^i + R``
   with the Lagrange remainder ``R ∈ h^{K+1} x_[K+1](B)``: the ``(K+1)``-th coefficient
   evaluated (by the same series arithmetic) on the box ``B``, which contains ``x(τ)`` for the
   intermediate ``τ``.
3. *Tube*: for ``t ∈ [0, h]``, ``x(t) ∈ x_[0] + sum_i x_[i] h^i/2 ± sum_i |x_[i]| h^i/2 +
   [0, h^{K+1}] x_[K+1](B)``, intersected with ``B``.

Order ``K = 4``: the coefficients cost ``O(K^2)`` series products per operation of ``rhs``; the
remainder falls as ``h^5``, so halving the step divides it by 32 while the a-priori box (which
sets the remainder's argument) shrinks too. At order 4 the remainder of a control period of a
slow plant (``h`` = 0.05–0.5 s) is far below the width the affine forms carry anyway; higher
orders cost more per step than the sub-steps they save on the plants shipped here.

Sub-steps are ``h = T / 2^j`` (exact in binary, so they add up to ``T`` exactly), starting from
``max_step`` (default ``T``), halved when the a-priori enclosure fails or when the remainder is
wider than 1% of the set, and doubled back when it is far below that.

Rounding is sound by the argument of :mod:`neuroctl.verify.affine` (every affine-form operation
adds a proven bound of its floating-point error); the interval quantities here (a-priori boxes,
remainders, powers of ``h``) are computed with outward rounding.

Plants defined by a discrete ``update`` or with a ``post_step`` projection (a clamp after the
integrator, which no ODE describes) have the *discrete* semantics: the set after one period is
``plant.step`` evaluated on the sets, and the tube is the hull of the two samples (the map has no
states in between).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import numpy as np

from ..plant import Plant
from .affine import (
    AffineForm,
    SetArithmeticError,
    _const,
    _Context,
    _up,
    controller_on_sets,
)
from .taylor import Taylor, _div_int

__all__ = [
    "PeriodSets",
    "FlowEnclosureError",
    "closed_loop_period_sets",
    "flow_period",
    "ode_rollout",
    "plant_semantics",
    "resolve_semantics",
]

_U = 2.0**-53
ORDER = 4  #: order of the Taylor step
_MAX_REFINE = 12  # at most 2^12 sub-steps more than the initial ones
_REM_TOL = 1e-2  # a remainder wider than this fraction of the set halves the step
_SEMANTICS = ("continuous", "discrete")


class FlowEnclosureError(SetArithmeticError):
    """No validated enclosure of the flow could be found (the a-priori enclosure failed down to
    the smallest sub-step, or the right-hand side is undefined on the enclosure). A failure
    inside the proof."""


# ============================================================================ flow enclosure
def _rhs_on(plant: Plant, x, u, w):
    return plant.rhs(x, u, w) if plant.n_disturbances else plant.rhs(x, u)


def _ode_coefficients(plant: Plant, x0: AffineForm, u, w, order: int) -> list:
    """Taylor coefficients ``x_[0..order]`` of the flow from ``x0`` with ``u``, ``w`` held."""
    us = Taylor.constant(u)
    ws = None if w is None else Taylor.constant(w)
    x = Taylor(None, x0)
    fx = _rhs_on(plant, x, us, ws)
    if not isinstance(fx, Taylor):  # a right-hand side that does not depend on x
        fx = Taylor.constant(fx)
    x._rule = lambda k: _div_int(fx.coef(k - 1), k)
    out = []
    for k in range(order + 1):
        c = x.coef(k)
        if c is None:
            c = np.zeros(x0.shape)
        out.append(AffineForm._lift(c, x0.ctx) if not isinstance(c, AffineForm) else c)
    return out


def _box_forms(lo, hi, u, w):
    ctx = _Context()
    xb = AffineForm.from_box(lo, hi, ctx)
    ub = AffineForm.from_box(u.lower, u.upper, ctx)
    wb = None if w is None else AffineForm.from_box(w.lower, w.upper, ctx)
    return xb, ub, wb


def _rhs_box(plant, lo, hi, u, w):
    """Sound bounds of ``rhs`` over the box ``[lo, hi]`` and the hulls of ``u`` and ``w``."""
    xb, ub, wb = _box_forms(lo, hi, u, w)
    f = AffineForm._lift(_rhs_on(plant, xb, ub, wb), xb.ctx)
    return f.lower, f.upper


def _finite(*arrays) -> bool:
    return all(np.all(np.isfinite(a)) for a in arrays)


def _apriori(plant, xl, xu, u, w, h: float):
    """A box ``B`` with ``[xl, xu] + [0, h] f(B) ⊆ B`` (then returned as that image), or None."""

    def image(bl, bu):
        fl, fu = _rhs_box(plant, bl, bu, u, w)
        pl = np.nextafter(xl + np.nextafter(h * np.minimum(fl, 0.0), -np.inf), -np.inf)
        pu = np.nextafter(xu + np.nextafter(h * np.maximum(fu, 0.0), np.inf), np.inf)
        return pl, pu

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            bl, bu = image(xl, xu)
    except SetArithmeticError as err:  # undefined on the initial set itself: no step helps
        raise FlowEnclosureError(
            f"the right-hand side of plant {plant.name!r} is undefined on the set: {err}"
        ) from err
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(10):
                width = bu - bl
                pad = 0.1 * width + 1e-9 * (np.abs(bl) + np.abs(bu)) + 1e-12
                bl, bu = bl - pad, bu + pad
                if not _finite(bl, bu):
                    return None
                pl, pu = image(bl, bu)
                if not _finite(pl, pu):
                    return None
                if np.all(pl >= bl) and np.all(pu <= bu):
                    return pl, pu
                bl, bu = np.minimum(bl, pl), np.maximum(bu, pu)
    except SetArithmeticError:
        return None
    return None


def _mul_interval(lo, hi, s_lo: float, s_hi: float):
    """Outward-rounded ``[lo, hi] * [s_lo, s_hi]`` for ``0 <= s_lo <= s_hi``."""
    cand = [lo * s_lo, lo * s_hi, hi * s_lo, hi * s_hi]
    mn = np.minimum.reduce(cand)
    mx = np.maximum.reduce(cand)
    return (
        np.nextafter(mn - np.abs(mn) * 2 * _U, -np.inf),
        np.nextafter(mx + np.abs(mx) * 2 * _U, np.inf),
    )


def _pow_bounds(h: float, k: int):
    """``[lo, hi]`` containing the exact ``h**k`` (``h > 0`` a float)."""
    v = h**k
    slack = (2 * k + 2) * _U
    return float(np.nextafter(v * (1 - slack), 0.0)), float(np.nextafter(v * (1 + slack), np.inf))


@dataclass
class _Sub:
    x_next: AffineForm
    tube_lower: np.ndarray
    tube_upper: np.ndarray
    rem_rad: np.ndarray


def _taylor_substep(plant, x: AffineForm, u, w, h: float, order: int):
    xl, xu = x.lower, x.upper
    box = _apriori(plant, xl, xu, u, w, h)
    if box is None:
        return None
    bl, bu = box
    try:
        coeffs = _ode_coefficients(plant, x, u, w, order)
        xb, ub, wb = _box_forms(bl, bu, u, w)
        rc = _ode_coefficients(plant, xb, ub, wb, order + 1)[order + 1]
    except SetArithmeticError:
        return None
    rl, ru = rc.lower, rc.upper
    if not _finite(rl, ru):
        return None
    hk_lo, hk_hi = _pow_bounds(h, order + 1)
    r_lo, r_hi = _mul_interval(rl, ru, hk_lo, hk_hi)
    # x(h) by Horner, then the remainder as one new symbol per coordinate
    y = coeffs[order]
    for i in range(order - 1, -1, -1):
        y = y * h + coeffs[i]
    mid = 0.5 * r_lo + 0.5 * r_hi
    rad = np.nextafter(np.maximum(r_hi - mid, mid - r_lo), np.inf)
    x_next = (y + mid)._with_noise(rad)
    # tube over [0, h]
    t = coeffs[0]
    spread = np.zeros(x.shape)
    for i in range(1, order + 1):
        hi_lo, hi_hi = _pow_bounds(h, i)
        half = 0.5 * hi_lo
        t = t + coeffs[i] * half
        amp = np.maximum(np.abs(coeffs[i].lower), np.abs(coeffs[i].upper))
        # |t^i - half| <= h^i / 2 <= hi_hi / 2 (and half is within it of h^i / 2)
        spread = spread + _up(amp * (0.5 * hi_hi + (0.5 * hi_hi - half)), 3)
    tl = np.nextafter(t.lower - _up(spread, order) + np.minimum(r_lo, 0.0), -np.inf)
    tu = np.nextafter(t.upper + _up(spread, order) + np.maximum(r_hi, 0.0), np.inf)
    tl, tu = np.maximum(tl, bl), np.minimum(tu, bu)
    return _Sub(x_next, tl, tu, rad)


def _joint_reduce(forms, max_generators: int):
    """Order reduction of several forms of one context together (their correlations kept)."""
    from .reach import _reduce

    sizes = [f.shape[-1] for f in forms]
    # np.concatenate dispatches to AffineForm.__array_function__ and returns a form; numpy's
    # stubs cannot know that and say ndarray
    joined = cast(
        AffineForm,
        np.concatenate([AffineForm._lift(f, forms[0].ctx) for f in forms], axis=-1),
    )
    red = _reduce(joined, max_generators)
    out, start = [], 0
    for s in sizes:
        out.append(red[..., start : start + s])
        start += s
    return out


def flow_period(
    plant: Plant, x: AffineForm, u: AffineForm, w, *, max_step=None, order: int = ORDER
):
    """Enclose the flow of ``rhs`` over one period ``plant.dt`` with ``u``, ``w`` held.

    Parameters
    ----------
    plant : Plant
        With a continuous ``rhs``.
    x : AffineForm, shape (B, n)
    u : AffineForm, shape (B, m)
        The applied (saturated) command.
    w : AffineForm, shape (B, n_w), or None
    max_step : float, optional
        Largest sub-step [s] (default the period).

    Returns
    -------
    x_next : AffineForm, shape (B, n)
    tube_lower, tube_upper : ndarray, shape (B, n)
    substeps : int
    """
    T = plant.dt
    level0 = 0
    if max_step is not None:
        level0 = max(0, math.ceil(math.log2(T / max_step) - 1e-12))
    level = level0
    pos = Fraction(0)
    tube_lo, tube_hi = x.lower, x.upper
    n = x.shape[-1]
    count = 0
    while pos < 1:
        h = math.ldexp(T, -level)
        sub = _taylor_substep(plant, x, u, w, h, order)
        accurate = False
        if sub is not None:
            width = sub.x_next.upper - sub.x_next.lower
            accurate = bool(
                np.all(2.0 * sub.rem_rad <= _REM_TOL * width + 1e-12 * (1.0 + np.abs(sub.x_next.c)))
            )
        if sub is None or (not accurate and level < level0 + _MAX_REFINE // 2):
            if level >= level0 + _MAX_REFINE:
                raise FlowEnclosureError(
                    f"no validated enclosure of the flow of plant {plant.name!r} over a sub-step "
                    f"of {h:.3g} s (2^{level} sub-steps per period of {T} s): the a-priori "
                    "enclosure fails or the right-hand side is undefined on it (sets "
                    f"[{np.min(x.lower):.4g}, {np.max(x.upper):.4g}])"
                )
            level += 1
            continue
        x = sub.x_next
        tube_lo = np.minimum(tube_lo, sub.tube_lower)
        tube_hi = np.maximum(tube_hi, sub.tube_upper)
        pos += Fraction(1, 2**level)
        count += 1
        tiny = np.all(2.0 * sub.rem_rad <= 0.01 * _REM_TOL * width)
        if tiny and level > level0 and (pos * 2 ** (level - 1)).denominator == 1:
            level -= 1
        if x.g.shape[0] > 60 * n and pos < 1:
            parts = [x, u] + ([] if w is None else [w])
            red = _joint_reduce(parts, 30 * (n + u.shape[-1]))
            x, u = red[0], red[1]
            w = None if w is None else red[2]
    return x, tube_lo, tube_hi, count


# ============================================================================ closed loop
def plant_semantics(plant: Plant) -> str:
    """The semantics a closed-loop proof about ``plant`` has by default.

    ``"continuous"`` for a plant with a continuous ``rhs`` and no ``post_step`` projection;
    ``"discrete"`` (the map ``plant.step``) for a plant defined by ``update=`` or with a
    ``post_step`` (e.g. a speed clamp after the integrator).
    """
    if plant.is_continuous and plant._post_step is None:
        return "continuous"
    return "discrete"


def resolve_semantics(plant: Plant, semantics) -> str:
    """Check a ``semantics=`` argument against the plant (None: :func:`plant_semantics`)."""
    if semantics is None:
        return plant_semantics(plant)
    if semantics not in _SEMANTICS:
        raise ValueError(f"semantics: expected one of {_SEMANTICS} or None, received {semantics!r}")
    if semantics == "continuous":
        if not plant.is_continuous:
            raise ValueError(
                f"semantics='continuous': plant {plant.name!r} is defined by a discrete update "
                "(update=), it has no ODE to enclose; use semantics='discrete'"
            )
        if plant._post_step is not None:
            raise ValueError(
                f"semantics='continuous': plant {plant.name!r} applies a post_step projection "
                "after its integrator (e.g. a clamp), which is not part of its ODE; use "
                "semantics='discrete' (proofs about the map plant.step)"
            )
    return semantics


@dataclass
class PeriodSets:
    """The closed loop on sets over one control period ``[kT, (k+1)T]``.

    Attributes
    ----------
    x_next : AffineForm, shape (B, n)
        Encloses the state at ``(k+1)T`` from every state of the input set.
    u : AffineForm, shape (B, m)
        The controller's command at ``kT`` (before saturation), in the context of the input set.
    tube_lower, tube_upper : ndarray, shape (B, n)
        A box per set enclosing every state on ``[kT, (k+1)T]`` (continuous semantics: the flow;
        discrete semantics: the hull of the two samples, the map having no states in between).
    semantics : str
        ``"continuous"`` (the ODE ``rhs`` with the command held) or ``"discrete"``
        (``plant.step``).
    substeps : int
        Validated sub-steps taken (continuous), 1 for the discrete map.
    """

    x_next: AffineForm
    u: AffineForm
    tube_lower: np.ndarray
    tube_upper: np.ndarray
    semantics: str
    substeps: int = 1

    def __repr__(self) -> str:
        return (
            f"PeriodSets(semantics={self.semantics!r}, sets={self.x_next.shape[0]}, "
            f"substeps={self.substeps})"
        )


def closed_loop_period_sets(
    plant: Plant,
    controller,
    x: AffineForm,
    *,
    reference=None,
    w_lower=None,
    w_upper=None,
    semantics: str | None = "continuous",
    max_step: float | None = None,
) -> PeriodSets:
    """One control period of the closed loop on sets, with a tube over the period.

    The command ``u = controller(plant.observe(x, r))`` is computed on the set at the sampling
    instant and held; the applied command is ``plant.saturate(u)`` on the set.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module
        Feed-forward network (see :data:`neuroctl.verify.affine.LAYER_RULES`).
    x : AffineForm, shape (B, n)
        States at the sampling instant.
    reference : array_like, shape (n_ref,) or (B, n_ref), optional
        Default the plant's nominal reference.
    w_lower, w_upper : array_like, shape (n_w,), optional
        Disturbance bounds (default 0); the disturbance is constant over the period at any value
        in them (fresh noise symbols every period).
    semantics : {"continuous", "discrete"} or None
        ``"continuous"``: the exact ODE flow (plants with ``rhs`` and no ``post_step``; an error
        naming why otherwise). ``"discrete"``: the map ``plant.step``. None: the plant's own
        (:func:`plant_semantics`).
    max_step : float, optional
        Largest validated sub-step [s] (continuous; default the period, refined automatically).

    Returns
    -------
    PeriodSets

    Raises
    ------
    SetArithmeticError
        An operation is undefined on the sets (e.g. a division by a set containing 0), or
        :class:`FlowEnclosureError`: no enclosure of the flow was found. A failure of the proof,
        not an undecided result.
    """
    sem = resolve_semantics(plant, semantics)
    if max_step is not None and not (
        isinstance(max_step, (int, float, np.floating)) and np.isfinite(max_step) and max_step > 0
    ):
        raise ValueError(f"max_step: expected a positive number of seconds, received {max_step!r}")
    if not isinstance(x, AffineForm):
        raise TypeError(f"x: expected an AffineForm of shape (B, n), received {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != plant.n_states:
        raise ValueError(f"x: expected shape (B, {plant.n_states}), received {x.shape}")
    b = x.shape[0]
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = np.broadcast_to(_const(ref), (b, plant.n_references))
    y = plant.observe(x, r) if r is not None else plant.observe(x)
    y = AffineForm._lift(y, x.ctx)
    u = controller_on_sets(controller, y)
    w = None
    if plant.n_disturbances:
        lo = np.zeros(plant.n_disturbances) if w_lower is None else _const(w_lower)
        hi = np.zeros(plant.n_disturbances) if w_upper is None else _const(w_upper)
        lo = np.broadcast_to(lo, (b, plant.n_disturbances))
        hi = np.broadcast_to(hi, (b, plant.n_disturbances))
        w = AffineForm.from_box(lo, hi, x.ctx)
    if sem == "discrete":
        x_next = plant.step(x, u, w) if w is not None else plant.step(x, u)
        x_next = AffineForm._lift(x_next, x.ctx)
        tl = np.minimum(x.lower, x_next.lower)
        tu = np.maximum(x.upper, x_next.upper)
        return PeriodSets(x_next, u, tl, tu, sem, 1)
    ua = AffineForm._lift(plant.saturate(u), x.ctx)
    x_next, tl, tu, count = flow_period(plant, x, ua, w, max_step=max_step)
    return PeriodSets(x_next, u, tl, tu, sem, count)


# ============================================================================ ODE replay
def ode_rollout(plant: Plant, controller, x0, steps: int, *, reference=None, w=None, dense=8):
    """Closed loop of the continuous plant by scipy's ``solve_ivp`` (zero-order hold).

    The command is computed at each sampling instant, saturated and held; all initial states are
    integrated together as one stacked ODE (``rtol=1e-10``, ``atol=1e-12``, RK45).

    Parameters
    ----------
    plant : Plant
        With a continuous ``rhs``.
    controller : nn.Module
    x0 : array_like, shape (N, n)
    steps : int
    reference : array_like, shape (n_ref,), optional
    w : array_like, shape (N, steps, n_w), optional
        Disturbance held over each period.
    dense : int
        States recorded at this many interior instants of each period.

    Returns
    -------
    states : ndarray, shape (N, steps + 1, n)
    inputs : ndarray, shape (N, steps, m)
        Saturated commands.
    dense_states : ndarray, shape (N, steps, dense, n)
        States at ``kT + (j + 1) T / (dense + 1)``.
    """
    import torch
    from scipy.integrate import solve_ivp

    x = np.array(x0, dtype=np.float64, ndmin=2)
    N, n = x.shape
    r = None
    if plant.n_references:
        ref = plant.nominal_reference if reference is None else reference
        r = torch.as_tensor(np.broadcast_to(_const(ref), (N, plant.n_references)).copy())
    T = plant.dt
    t_in = np.arange(1, dense + 1) * T / (dense + 1)
    states, inputs, dense_states = [x.copy()], [], []
    for k in range(steps):
        with torch.no_grad():
            xt = torch.as_tensor(x)
            y = plant.observe(xt, r) if r is not None else plant.observe(xt)
            u = plant.saturate(controller(y)).double().numpy()
        wk = None if w is None else np.asarray(w, dtype=np.float64)[:, k]

        def f(t, z, u=u, wk=wk):
            xs = z.reshape(N, n)
            return np.asarray(_rhs_on(plant, xs, u, wk), dtype=np.float64).reshape(-1)

        sol = solve_ivp(f, (0.0, T), x.reshape(-1), rtol=1e-10, atol=1e-12, dense_output=True)
        if not sol.success:  # pragma: no cover - scipy's own failure
            raise RuntimeError(f"ode_rollout: solve_ivp failed: {sol.message}")
        dense_states.append(sol.sol(t_in).T.reshape(dense, N, n).transpose(1, 0, 2))
        x = sol.y[:, -1].reshape(N, n)
        states.append(x.copy())
        inputs.append(u)
    return (
        np.stack(states, 1),
        np.stack(inputs, 1) if inputs else np.zeros((N, 0, plant.n_inputs)),
        np.stack(dense_states, 1) if dense_states else np.zeros((N, 0, dense, n)),
    )
