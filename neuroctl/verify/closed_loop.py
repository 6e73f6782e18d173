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
   width times sensitivity (gradient of the rollout's robustness); the centre of every undecided
   sub-box is simulated as a candidate counterexample. The search stops at a counterexample,
   when every sub-box is proved, at ``timeout`` or at ``max_splits``.

The answer is deterministic for given inputs and ``seed`` (unless ``timeout`` cuts it short).
"""

from __future__ import annotations

import copy
import heapq
import importlib.util
import time as _time

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn

from ..controllers import affine_layer
from ..plant import Plant
from .closed_loop_result import ClosedLoopResult, Counterexample
from .reach import AffineForm, _reduce, closed_loop_step_sets
from .temporal import Property, _Points

__all__ = ["check_closed_loop", "with_output_map"]

RTOL, ATOL = 1e-10, 1e-12
#: a trajectory counts as violating only with robustness below -REPLAY_TOL (integration error)
REPLAY_TOL = 1e-7
_INFLATE_REL, _INFLATE_ABS = 1e-12, 1e-15
_DENSE = 16  # interior points per period where a trajectory is read between samples
_SEMANTICS = ("continuous", "discrete")


# ============================================================================ period sets
class _PeriodSets:
    """Sets of one control period: ``x_next``, ``u`` (before saturation), the tube box."""

    def __init__(self, x_next, u, tube_lower, tube_upper, semantics):
        self.x_next, self.u = x_next, u
        self.tube_lower, self.tube_upper = tube_lower, tube_upper
        self.semantics = semantics


def _discrete_period_sets(
    plant: Plant,
    controller: nn.Module,
    x: AffineForm,
    *,
    reference=None,
    w_lower=None,
    w_upper=None,
    semantics: str = "continuous",
    max_step=None,
) -> _PeriodSets:
    """Sets of one control period of the closed loop from the discrete map only.

    Encloses the plant's discrete map (:func:`~neuroctl.verify.reach.closed_loop_step_sets`);
    the tube is the hull of the two samples, which is all the discrete map has. The result's
    ``semantics`` is ``"discrete"`` whatever was asked: :func:`check_closed_loop` proves nothing
    about the ODE with it.

    Parameters
    ----------
    plant, controller
    x : AffineForm, shape (B, n)
    reference, w_lower, w_upper
        As in :func:`~neuroctl.verify.reach.closed_loop_step_sets`.
    semantics : {"continuous", "discrete"}, keyword-only
    max_step : float, optional, keyword-only
        Largest integration sub-step [s] (unused by the discrete map).

    Returns
    -------
    object with ``x_next`` (AffineForm (B, n)), ``u`` (AffineForm (B, m), before saturation),
    ``tube_lower``, ``tube_upper`` ((B, n)) and ``semantics``.
    """
    x_next, u = closed_loop_step_sets(
        plant, controller, x, reference=reference, w_lower=w_lower, w_upper=w_upper
    )
    with np.errstate(invalid="ignore", over="ignore"):
        lo = np.minimum(x.lower, x_next.lower)
        hi = np.maximum(x.upper, x_next.upper)
    return _PeriodSets(x_next, u, lo, hi, "discrete")


_HAS_FLOW = importlib.util.find_spec(f"{__package__}.flow") is not None
if _HAS_FLOW:  # the sound enclosure of the ODE between samples
    from .flow import closed_loop_period_sets
else:
    closed_loop_period_sets = _discrete_period_sets


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


def _float64(controller: nn.Module) -> nn.Module:
    c = copy.deepcopy(controller).to(torch.float64)
    c.requires_grad_(False)
    return c.eval()


def _reference(plant: Plant, reference, b: int):
    if not plant.n_references:
        return None
    ref = plant.nominal_reference if reference is None else np.asarray(reference, float)
    return np.broadcast_to(np.asarray(ref, float), (b, plant.n_references)).copy()


def _command(plant, ctrl, x: np.ndarray, reference) -> np.ndarray:
    """Applied command ``sat(controller(observe(x, r)))``, ``(B, m)`` float64."""
    r = _reference(plant, reference, x.shape[0])
    xt = torch.as_tensor(x)
    with torch.no_grad():
        y = plant.observe(xt, None if r is None else torch.as_tensor(r))
        u = ctrl(y).to(torch.float64)
        if u.shape[-1] != plant.n_inputs:
            raise ValueError(
                f"controller: expected {plant.n_inputs} outputs for inputs "
                f"{list(plant.input_names)}, received shape {tuple(u.shape)}"
            )
        return plant.saturate(u).numpy()


class _Rollout:
    """Trajectories read at their samples and at dense times in between (numpy)."""

    def __init__(self, times, states, commands, t_points, z_states, z_commands, samples):
        self.times, self.states, self.commands = times, states, commands
        self.t_points, self.z_states, self.z_commands = t_points, z_states, z_commands
        self.samples = samples


def _period_grid(k: int, dt: float, special: list[float]) -> np.ndarray:
    """Interior read-out times of period ``k`` (uniform, plus the property's own times)."""
    t0, t1 = k * dt, (k + 1) * dt
    inner = t0 + dt * np.arange(1, _DENSE + 1) / (_DENSE + 1)
    extra = [t for t in special if t0 < t < t1]
    return np.unique(np.concatenate([inner, extra])) if extra else inner


def _simulate(
    plant, ctrl, x0, steps, reference, w, semantics, special, *, method="DOP853"
) -> _Rollout:
    """Closed-loop rollouts of a batch ``x0`` (B, n): the ODE per period, or the discrete map.

    The batch is one ODE system (for speed); :meth:`Counterexample.replay` integrates one
    trajectory alone. ``w`` (B, steps, n_w) holds a disturbance over each period.
    """
    b, n = x0.shape
    dt = plant.dt
    x = np.array(x0, dtype=np.float64)
    states, commands = [x], []
    t_pts, z_x, z_u, samp = [], [], [], []
    for k in range(steps):
        u = _command(plant, ctrl, x, reference)
        wk = None if w is None else w[:, k]
        if semantics == "continuous":
            grid = _period_grid(k, dt, special)

            def f(t, y, u=u, wk=wk):
                return np.asarray(plant.rhs(y.reshape(b, n), u, wk), dtype=np.float64).ravel()

            sol = solve_ivp(
                f, (0.0, dt), x.ravel(), method=method, rtol=RTOL, atol=ATOL, dense_output=True
            )
            if not sol.success:
                raise RuntimeError(f"solve_ivp failed in period {k}: {sol.message}")
            dense = sol.sol(grid - k * dt).T.reshape(len(grid), b, n).transpose(1, 0, 2)
            x_new = sol.y[:, -1].reshape(b, n)
        else:
            grid = np.zeros(0)
            dense = np.zeros((b, 0, n))
            with torch.no_grad():
                x_new = plant.step(
                    torch.as_tensor(x),
                    torch.as_tensor(u),
                    None if wk is None else torch.as_tensor(wk),
                ).numpy()
        g = len(grid)
        t_pts.append(np.concatenate([[k * dt], grid, [(k + 1) * dt]]))
        z_x.append(np.concatenate([x[:, None], dense, x_new[:, None]], axis=1))
        z_u.append(np.broadcast_to(u[:, None], (b, g + 2, u.shape[1])))
        samp.append(np.concatenate([[True], np.zeros(g, bool), [True]]))
        x = x_new
        states.append(x)
        commands.append(u)
    if steps == 0:
        u = _command(plant, ctrl, x, reference)
        t_pts, z_x, z_u, samp = [np.zeros(1)], [x[:, None]], [u[:, None]], [np.ones(1, bool)]
    return _Rollout(
        np.arange(steps + 1) * dt,
        np.stack(states, 1),
        np.stack(commands, 1) if commands else np.zeros((b, 0, plant.n_inputs)),
        np.concatenate(t_pts),
        np.concatenate(z_x, axis=1),
        np.concatenate(z_u, axis=1),
        np.concatenate(samp),
    )


def _trajectory_points(spec: Property, t, zx, zu, samples, dt) -> _Points:
    """Robustness of every set of ``spec`` at every point of trajectories (numpy or torch)."""
    values = {}
    for s in spec.sets():
        if s.over == "state":
            z = zx
        else:
            z = torch.cat([zx, zu], -1) if torch.is_tensor(zx) else np.concatenate([zx, zu], -1)
        g = s.margins(z)
        xp_max = torch.amax if torch.is_tensor(g) else np.max
        gmax = xp_max(g, -1) if torch.is_tensor(g) else xp_max(g, axis=-1)
        values[id(s), "inside"] = -gmax
        values[id(s), "outside"] = gmax
    return _Points(t, t, samples, dt, values, on_sets=False)


def _robustness(spec, plant, ro: _Rollout) -> np.ndarray:
    pts = _trajectory_points(spec, ro.t_points, ro.z_states, ro.z_commands, ro.samples, plant.dt)
    return np.asarray(spec.robustness(pts), dtype=np.float64)


def _torch_robustness(spec, plant, ctrl, x0, steps, reference, w):
    """Robustness of the differentiable discrete rollout (``plant.step``) at the samples."""
    b = x0.shape[0]
    r = _reference(plant, reference, b)
    r = None if r is None else torch.as_tensor(r)
    x, zx, zu = x0, [], []
    for k in range(steps):
        u = plant.saturate(ctrl(plant.observe(x, r)).to(torch.float64))
        x_new = plant.step(x, u, None if w is None else torch.as_tensor(w[:, k]))
        zx += [x, x_new]
        zu += [u, u]
        x = x_new
    if steps == 0:
        zx = [x]
        zu = [plant.saturate(ctrl(plant.observe(x, r)).to(torch.float64))]
    t = np.repeat(np.arange(steps + 1) * plant.dt, 2)[1:-1] if steps else np.zeros(1)
    pts = _trajectory_points(
        spec, t, torch.stack(zx, 1), torch.stack(zu, 1), np.ones(t.size, bool), plant.dt
    )
    return spec.robustness(pts)


def _gradient_search(spec, plant, ctrl, starts, lo, hi, steps, reference, w, iters=20):
    """Signed-gradient descent of the rollout's robustness from ``starts`` (K, n), in the box."""
    width = hi - lo
    x = torch.as_tensor(starts.copy())
    step = 0.25
    best_x, best_r = x.clone(), torch.full((x.shape[0],), np.inf, dtype=torch.float64)
    for _ in range(iters):
        x.requires_grad_(True)
        try:
            rho = _torch_robustness(spec, plant, ctrl, x, steps, reference, w)
            (grad,) = torch.autograd.grad(rho.sum(), x)
        except (RuntimeError, TypeError, ValueError):
            break
        with torch.no_grad():
            better = rho < best_r
            best_r = torch.where(better, rho, best_r)
            best_x[better] = x[better]
            g = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            x = x - step * torch.as_tensor(width) * torch.sign(g)
            x = torch.clamp(x, torch.as_tensor(lo), torch.as_tensor(hi))
        step *= 0.85
    return best_x.detach().numpy()


def _sensitivity(spec, plant, ctrl, centres, steps, reference):
    """``|d rho / d x0|`` of the discrete rollout at each centre (B, n); zeros if unavailable."""
    x = torch.as_tensor(centres.copy()).requires_grad_(True)
    try:
        rho = _torch_robustness(spec, plant, ctrl, x, steps, reference, None)
        (grad,) = torch.autograd.grad(rho.sum(), x)
    except (RuntimeError, TypeError, ValueError):
        return np.zeros_like(centres)
    return np.nan_to_num(np.abs(grad.numpy()), nan=0.0, posinf=0.0, neginf=0.0)


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
    ``(B, steps+1, n)`` twice, the tube bounds ``(B, steps, n)`` twice, and the semantics the
    sets enclose.
    """
    b, n = blo.shape
    dt = plant.dt
    m_points = 2 * steps + 1
    values = {}
    for s in spec.sets():
        for mode in ("inside", "outside"):
            values[id(s), mode] = np.full((b, m_points), -np.inf)
    t_lo = np.zeros(m_points)
    t_hi = np.zeros(m_points)
    sample = np.zeros(m_points, bool)
    x = AffineForm.from_box(blo, bhi)
    s_lo, s_hi = [blo], [bhi]
    tb_lo, tb_hi = [], []
    semantics = opts["semantics"]
    u_lo = u_hi = None
    for k in range(steps):
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
            u = plant.saturate(ps.u) if plant._bounded else ps.u
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
            x = _reduce(AffineForm._lift(ps.x_next, x.ctx), max_gen)
        tb_lo.append(tlo)
        tb_hi.append(thi)
        s_lo.append(x.lower)
        s_hi.append(x.upper)
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
    t_lo[-1] = t_hi[-1] = steps * dt
    sample[-1] = True
    pts = _Points(t_lo, t_hi, sample, dt, values, on_sets=True)
    holds = np.asarray(spec.holds_on(pts), bool)
    score = np.nan_to_num(np.asarray(spec.robustness(pts), float), nan=-np.inf)
    tub = (np.stack(tb_lo, 1), np.stack(tb_hi, 1)) if steps else (np.zeros((b, 0, n)),) * 2
    return holds, score, np.stack(s_lo, 1), np.stack(s_hi, 1), tub[0], tub[1], semantics


def _sets_command(plant, ctrl, x, reference):
    from .reach import controller_on_sets

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
            return (*cat, parts[0][6])
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
        )


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

    Returns ``(counterexample or None, simulations)``.
    """
    nw = plant.n_disturbances
    w = None if not nw else rng.uniform(wlo, whi, (x0.shape[0], max(steps, 1), nw))
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
    while heap:
        if timeout is not None and _time.perf_counter() - t_start > timeout:
            notes.append(f"timeout of {timeout:g} s reached with {len(heap)} sub-boxes undecided")
            break
        take = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
        blo = np.stack([t[2] for t in take])
        bhi = np.stack([t[3] for t in take])
        holds, score, sl, sh, tl, th, sem = _propagate_guarded(
            plant, ctrl, spec, blo, bhi, steps, opts, max_gen, failures
        )
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
                f"max_splits={max_splits} reached with {open_.size + len(heap)} sub-boxes undecided"
            )
            break
        sens = _sensitivity(spec, plant, ctrl, centres, steps, reference)
        for j, i in enumerate(open_):
            w = (bhi[i] - blo[i]) / width0
            s = sens[j] * (bhi[i] - blo[i])
            d = int(np.argmax(w * (1.0 + (s / s.max() if s.max() > 0 else 0.0))))
            mid = 0.5 * (blo[i, d] + bhi[i, d])
            left_hi, right_lo = bhi[i].copy(), blo[i].copy()
            left_hi[d] = right_lo[d] = mid
            for child in ((blo[i], left_hi), (right_lo, bhi[i])):
                heapq.heappush(heap, (float(score[i]), counter, child[0], child[1]))
                counter += 1
            stats["boxes_split"] += 1
    stats["proof_time"] = _time.perf_counter() - t_p
    stats["proof_failures"] = len(failures)
    notes.extend(failures[:5])
    if status == "violated":
        return result("violated", ce)
    return result(status, proved=proved)


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
        text += f"; disturbance in [{wlo}, {whi}], any value in each period"
    return text + "; controller evaluated in float64"
