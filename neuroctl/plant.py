"""The :class:`Plant` contract shared by simulation, linearization, verification and training.

A plant is a discrete-time model ``x[k+1] = step(x[k], u[k])`` with named states and inputs, a
sample time ``dt``, actuator bounds, and an observation map ``y = observe(x, r)`` that may depend
on a reference ``r`` (for example the target angle of an arm). Where a continuous model exists,
``rhs(x, u) = dx/dt`` is kept too and ``step`` is built from it with one of the integrators below.

Every function here is array-namespace agnostic: it runs on numpy arrays (fast single
environment) and on torch tensors (batched over any leading dimensions, differentiable), and
accepts shapes ``(..., n)``. No physics is ever written twice.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._array import (
    NOT_AGNOSTIC_HINT,
    as_like,
    check_vector,
    is_torch,
    namespace,
    not_agnostic_error,
    stack,
    unstack,
)

__all__ = [
    "Plant",
    "INTEGRATORS",
    "euler",
    "semi_implicit_euler",
    "rk4",
]

RHS = Callable[[Any, Any], Any]


def euler(rhs: RHS, x, u, dt: float):
    """Explicit Euler step ``x + dt * rhs(x, u)``.

    Parameters
    ----------
    rhs : callable
        Continuous dynamics ``(x, u) -> dx/dt`` with shapes ``(..., n), (..., m) -> (..., n)``.
    x : array, shape (..., n)
    u : array, shape (..., m)
    dt : float
        Step in seconds.
    """
    return x + dt * rhs(x, u)


#: Largest state of one vector that semi_implicit_euler steps on Python floats (beyond it numpy's
#: three operations on the whole vector are cheaper, e.g. a 44-state ring road).
_FLOAT_PATH_MAX = 16


_F64_OF: dict[float, np.ndarray] = {}


def _f64_of(value: float) -> np.ndarray:
    """``value`` as a read-only 0-d float64 array, made once per value."""
    a = _F64_OF.get(value)
    if a is None:
        if len(_F64_OF) > 64:
            _F64_OF.clear()
        a = _F64_OF[value] = np.array(float(value))
        a.flags.writeable = False
    return a


def semi_implicit_euler(rhs: RHS, x, u, dt: float):
    """Semi-implicit (symplectic) Euler step for a state ``[q, v]`` of two equal halves.

    The velocities are updated first and the positions move with the *new* velocities:
    ``v' = v + dt * rhs(x, u)[v-part]``, ``q' = q + dt * v'`` (as Gymnasium's Pendulum and SUMO's
    default update). The position half of ``rhs`` is ignored: it must equal ``v``.
    """
    n = x.shape[-1]
    if n % 2:
        raise ValueError(
            "semi_implicit_euler needs a state [positions, velocities] of even size; "
            f"received a state of size {n}"
        )
    h = n // 2
    f = rhs(x, u)
    if type(x) is np.ndarray and x.ndim == 1 and n <= _FLOAT_PATH_MAX:
        # one small state vector: the same operations in the same order on Python floats,
        # several times cheaper than on the tiny arrays of a single environment
        xs, fs = x.tolist(), unstack(f)
        v_next = [v + dt * a for v, a in zip(xs[h:], fs[h:])]
        q_next = [q + dt * v for q, v in zip(xs[:h], v_next)]
        return stack(q_next + v_next, like=x)
    if type(f) is np.ndarray:
        # numpy: fill one fresh array instead of concatenating two halves (the same numbers;
        # cheaper on the small arrays of a single environment). Torch keeps the out-of-place
        # form below for autograd.
        if type(x) is np.ndarray and x.ndim > 1 and x.dtype == f.dtype:
            # batches: the same operations (v + dt a, then q + dt v') on contiguous halves,
            # joined once (operations on the strided halves of a batch are several times
            # slower)
            v_batch = np.multiply(f[..., h:], dt)
            v_batch += x[..., h:]
            q_batch = np.multiply(v_batch, dt)
            q_batch += x[..., :h]
            return np.concatenate([q_batch, v_batch], axis=-1)
        if x.ndim == 1 and f.dtype == np.float64:
            # one state vector: dt as a 0-d array (the same products; numpy converts a Python
            # float on every operation) and plain slices
            dt_ = _f64_of(dt)
            x_next = x + dt_ * f  # its velocity half is v + dt a; the position half is replaced
            x_next[:h] = x[:h] + dt_ * x_next[h:]
            return x_next
        x_next = x + dt * f  # its velocity half is v + dt a; the position half is replaced
        x_next[..., :h] = x[..., :h] + dt * x_next[..., h:]
        return x_next
    v_next = x[..., h:] + dt * f[..., h:]
    q_next = x[..., :h] + dt * v_next
    return namespace(x, f).concat([q_next, v_next], axis=-1)


def rk4(rhs: RHS, x, u, dt: float):
    """Classical fourth-order Runge-Kutta step with the input held constant over ``dt``."""
    k1 = rhs(x, u)
    k2 = rhs(x + 0.5 * dt * k1, u)
    k3 = rhs(x + 0.5 * dt * k2, u)
    k4 = rhs(x + dt * k3, u)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


INTEGRATORS: dict[str, Callable] = {
    "euler": euler,
    "semi_implicit_euler": semi_implicit_euler,
    "rk4": rk4,
}


def _names(value: Sequence[str] | int, prefix: str, what: str) -> tuple[str, ...]:
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ValueError(
                f"{what}: expected a non-negative size or a list of names, received {value}"
            )
        return tuple(f"{prefix}[{i}]" for i in range(int(value)))
    names = tuple(value)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what}: expected a list of str names or an int size, received {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: names must be unique, received {names}")
    return names


def _bounds(value, m: int, fill: float, what: str) -> np.ndarray:
    if value is None:
        return np.full(m, fill)
    arr = np.broadcast_to(np.asarray(value, dtype=float), (m,)).copy()
    if np.isnan(arr).any():
        raise ValueError(f"{what}: expected numbers (±inf allowed), received {value!r}")
    return arr


def _batch_shape(value) -> tuple[int, ...]:
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if shape is None or not all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1 for b in shape
    ):
        raise ValueError(
            f"batch_shape: expected a tuple of positive ints (() for any batch), received {value!r}"
        )
    return tuple(int(b) for b in shape)


_AGNOSTIC_HINT = (
    "write it once for numpy and torch: xp = neuroctl.namespace(x) and xp.sin, xp.exp, "
    "xp.stack([...], axis=-1), or parts = neuroctl.unstack(x) and neuroctl.stack(parts, like=x); "
    "not math.* or np.* on the components, and no float() or .tolist() of them"
)


def _probe_point(plant: Plant) -> tuple[np.ndarray, np.ndarray]:
    """A state and an input at which to call the plant's functions once (rest if known)."""
    n, m = plant.n_states, plant.n_inputs
    lo, hi = plant.input_lower, plant.input_upper
    finite = np.isfinite(lo) & np.isfinite(hi)
    mid = np.clip(0.0, lo, hi)
    mid[finite] = 0.5 * (lo[finite] + hi[finite])
    if plant._equilibrium is None:
        return np.zeros(n), mid
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x_eq, u_eq = plant.equilibrium()
    except Exception:  # noqa: BLE001 - no rest state for the nominal reference: probe at zero
        return np.zeros(n), mid
    if x_eq.shape != (n,) or u_eq.shape != (m,):
        raise ValueError(
            f"equilibrium: expected a state of shape ({n},) and an input of shape ({m},), "
            f"received shapes {x_eq.shape} and {u_eq.shape}"
        )
    if not np.isfinite(x_eq).all():
        return np.zeros(n), mid
    u_eq = np.where(np.isfinite(u_eq), u_eq, mid)
    return x_eq, np.clip(u_eq, lo, hi)


def _probe(plant: Plant) -> None:
    """Call the plant's functions once on numpy and torch inputs and check their shapes."""
    import torch

    n, m, nw, nr = plant.n_states, plant.n_inputs, plant.n_disturbances, plant.n_references
    p = plant.n_outputs
    x0, u0 = _probe_point(plant)
    r0 = plant.nominal_reference
    if plant.batch_shape:
        batches = [plant.batch_shape]
    else:
        b = next(b for b in range(3, 100) if b not in (n, m, p, nw, nr))
        batches = [(), (b,)]
    dyn_name = "rhs" if plant._rhs is not None else "update"
    dyn = plant._rhs if plant._rhs is not None else plant._update
    calls = [(dyn_name, n, "the time derivative" if dyn_name == "rhs" else "the next state")]
    if plant._observe is not None:
        calls.append(("observe", p, "the observation"))
    if plant._post_step is not None:
        calls.append(("post_step", n, "the projected state"))

    def run(name, x, u, w, r):
        if name == dyn_name:
            return dyn(x, u, w) if nw else dyn(x, u)
        if name == "observe":
            return plant._observe(x, r) if plant._observe_takes_reference else plant._observe(x)
        return plant._post_step(x)

    def arguments(batch, like):
        args = [np.broadcast_to(a, (*batch, a.size)).copy() for a in (x0, u0, np.zeros(nw), r0)]
        if like == "torch":
            args = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
        return args

    point = f" at x={x0.tolist()}, u={u0.tolist()}" if n + m <= 8 else ""

    def where(batch, like):
        kind = "torch tensors" if like == "torch" else "numpy arrays"
        return f"on a state of shape {(*batch, n)} ({kind}; probed once at construction)"

    for like in ("numpy", "torch"):
        for batch in batches if like == "numpy" else batches[-1:]:
            args = arguments(batch, like)
            for name, size, what in calls:
                try:
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = run(name, *args)
                except Exception as exc:
                    if like == "torch" or batch:
                        first = "numpy arrays" if like == "torch" else "one numpy state"
                        raise TypeError(
                            f"{name}: expected a function of numpy arrays and torch tensors of "
                            f"any batch shape (..., k); it runs on {first} but raised "
                            f"{type(exc).__name__}: {exc} {where(batch, like)}; {_AGNOSTIC_HINT}"
                        ) from exc
                    raise ValueError(
                        f"{name}: expected a function defined at the probe point, but it raised "
                        f"{type(exc).__name__}: {exc} {where(batch, like)}{point}; give "
                        "equilibrium= for a rest state at which the functions are defined"
                    ) from exc
                if like == "torch" and not torch.is_tensor(out):
                    raise TypeError(
                        f"{name}: expected a torch tensor {where(batch, like)}, received "
                        f"{type(out).__name__}; {_AGNOSTIC_HINT}"
                    )
                shape = tuple(np.shape(out)) if not torch.is_tensor(out) else tuple(out.shape)
                want = (*batch, size)
                if shape != want:
                    hint = ""
                    if batch and shape == want[::-1]:
                        hint = (
                            " (transposed: the batch axes come first, shape (..., k); index "
                            "x[..., i] and stack along axis=-1)"
                        )
                    elif batch and shape[-1:] == (size,):
                        hint = (
                            " (the batch axes of the input must be kept: written for one state "
                            f"vector? {_AGNOSTIC_HINT})"
                        )
                    elif shape == ():
                        hint = " (a scalar: return one component per entry along the last axis)"
                    raise ValueError(
                        f"{name}: expected {what} of shape {want} {where(batch, like)}, received "
                        f"shape {shape}{hint}"
                    )


def _n_positional(fn: Callable) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in sig.parameters.values() if p.kind in kinds]
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return 2
    return len(params)


def _returned_no_tensor(what: str, value) -> TypeError:
    return TypeError(
        f"{what} returned a {type(value).__module__}.{type(value).__name__} for a torch tensor "
        f"input (numpy functions convert tensors silently); {NOT_AGNOSTIC_HINT}"
    )


class Plant:
    """A discrete-time plant with named signals, written once for numpy and torch.

    Define a plant from a continuous right-hand side (integrated with ``integrator``) or from a
    discrete update. Everything in neuroctl (``simulate``, the Gymnasium wrapper, ``linearize``,
    ``analyze``, ``verify``, training) works on any ``Plant``.

    Parameters
    ----------
    states : sequence of str or int
        State names (or the number of states), size ``n``.
    inputs : sequence of str or int
        Input names (or the number of inputs), size ``m``.
    dt : float
        Sample time of the discrete map in seconds (> 0).
    rhs : callable, optional
        Continuous dynamics ``rhs(x, u) -> dx/dt``, shapes ``(..., n), (..., m) -> (..., n)``.
    update : callable, optional
        Discrete update ``update(x, u) -> x_next``. Exactly one of ``rhs`` and ``update`` is given.
    integrator : {"rk4", "euler", "semi_implicit_euler"}
        How ``step`` integrates ``rhs`` over ``dt`` (ignored with ``update``).
    input_lower, input_upper : array_like, optional
        Actuator bounds, shape ``(m,)`` or scalar; ``step`` clips the input to them.
    observe : callable, optional
        Observation map ``observe(x) -> y`` or, when ``references`` are given,
        ``observe(x, r) -> y``. Default: the full state.
    outputs : sequence of str or int, optional
        Observation names (default: the state names when ``observe`` is not given).
    references : sequence of str or int
        Names of the reference signals the observation depends on (e.g. a target angle).
    disturbances : sequence of str or int
        Names of exogenous disturbance inputs ``w`` (e.g. acceleration noise). When given,
        ``rhs`` and ``update`` take ``(x, u, w)``; :meth:`step` passes zeros if ``w`` is omitted.
    nominal_reference : array_like, optional
        Reference used when none is passed, shape ``(n_ref,)`` (default zeros).
    equilibrium : callable, optional
        ``equilibrium(r) -> (x_eq, u_eq)``: the state and input that hold the plant at rest for
        reference ``r`` (numpy arrays of shapes ``(n,)`` and ``(m,)``).
    post_step : callable, optional
        Projection applied after the integrator, ``post_step(x_next) -> x_next`` (e.g. a speed
        clamp). It is part of ``step``.
    batch_shape : tuple of int
        Leading batch shape the functions are bound to: ``()`` (default) for functions of any
        leading shape; ``(B,)`` for a plant whose parameters are per-copy arrays of shape
        ``(B,)`` (e.g. a batch of ring lengths), whose functions take ``(B, n)`` states only.
    name : str
        A label for printing.
    params : object, optional
        The parameter object the plant was built from (for reference only).

    invariants : array_like, shape (n, k) or (n,), optional
        Directions ``V`` along which the dynamics are invariant: ``rhs(x + V s, u) = rhs(x, u)``
        and ``observe(x + V s) = observe(x)`` for every ``s`` (e.g. shifting every car of a ring
        road by the same distance). Operating points along them are *relative* equilibria
        (``rhs(x, u) ∈ span V``), which :func:`neuroctl.operating_point` solves for, and their
        neutral modes are factored out of the poles by :func:`neuroctl.analyze`.
    operating_points : mapping of str to callable, optional
        Named nominal operating points besides ``equilibrium``: ``name -> fn(r) -> (x, u)``
        (e.g. a cart-pole's ``"hanging"`` next to its upright equilibrium). Each is the starting
        point of a solve, not a claim: :func:`neuroctl.operating_point` checks it.
    controllers : mapping of str to (str, callable), optional
        The classical controllers that belong to the plant: ``name -> (description,
        factory)`` with ``factory(plant)`` returning an ``nn.Module``, a callable on
        observations, or ``None`` (no input). Built by :meth:`controller`.
    metrics : callable, optional
        ``metrics(states, inputs, r) -> dict[str, float]`` of a trajectory, ``states`` of shape
        ``(T + 1, n)``, ``inputs`` of shape ``(T, m)``, reference ``r`` of shape ``(n_ref,)``:
        the figures that mean something for
        this plant (a ring's mean speed and smallest gap, an arm's final error). See
        :meth:`metrics`.

    Raises
    ------
    ValueError, TypeError
        For a bad argument, naming it. The functions are checked once at construction with a
        probe call (at the rest state of ``equilibrium`` if given, else zero state; the input at
        rest, else zero or mid-bounds): on one state ``(n,)`` and a batch ``(B, n)`` in numpy, and
        on a batch of torch tensors. An output of the wrong shape (one state of two, a scalar, a
        transposed ``(n, B)``) or a function that is not array-agnostic (``math.sin`` or
        ``np.sin`` on a tensor) raises with a message that says what was wrong.

    Notes
    -----
    The last four keywords are the facts an analysis needs, carried by the plant so that
    ``neuroctl.analyze(plant, controller)`` is right with no other argument.

    Examples
    --------
    A damped pendulum with a torque limit, integrated with RK4 at 20 ms:

    >>> import numpy as np
    >>> from neuroctl import Plant, namespace
    >>> def rhs(x, u):
    ...     xp = namespace(x)
    ...     return xp.stack([x[..., 1], -xp.sin(x[..., 0]) - 0.1 * x[..., 1] + u[..., 0]], axis=-1)
    >>> p = Plant(states=["theta", "omega"], inputs=["torque"], dt=0.02, rhs=rhs,
    ...           input_lower=-2.0, input_upper=2.0)
    >>> p.step(np.array([0.1, 0.0]), np.array([5.0])).shape
    (2,)
    """

    #: Exact Jacobians bypassing autograd, ``hook(x, u, w, r, continuous) -> (A, B, C, f0, y0)``
    #: or None to fall back to autograd (set by :meth:`from_nlsys` for numpy-only functions).
    _jacobian_hook: Callable | None = None

    @classmethod
    def from_nlsys(cls, sys, **options) -> Plant:
        """A plant from a python-control ``NonlinearIOSystem``: see :func:`neuroctl.from_nlsys`
        (keyword-only options ``dt``, ``integrator``, ``input_lower``, ``input_upper``,
        ``equilibrium``, ``name``)."""
        from .nlsys import from_nlsys

        return from_nlsys(sys, **options)

    def __init__(
        self,
        *,
        states: Sequence[str] | int,
        inputs: Sequence[str] | int,
        dt: float,
        rhs: RHS | None = None,
        update: RHS | None = None,
        integrator: str = "rk4",
        input_lower=None,
        input_upper=None,
        observe: Callable | None = None,
        outputs: Sequence[str] | int | None = None,
        references: Sequence[str] | int = (),
        disturbances: Sequence[str] | int = (),
        nominal_reference=None,
        equilibrium: Callable | None = None,
        post_step: Callable | None = None,
        batch_shape: tuple[int, ...] = (),
        name: str = "plant",
        params: Any = None,
        invariants=None,
        operating_points: Mapping[str, Callable] | None = None,
        controllers: Mapping[str, tuple[str, Callable]] | None = None,
        metrics: Callable | None = None,
    ) -> None:
        self.state_names = _names(states, "x", "states")
        self.input_names = _names(inputs, "u", "inputs")
        self.reference_names = _names(references, "r", "references")
        self.disturbance_names = _names(disturbances, "w", "disturbances")
        if not (isinstance(dt, (int, float, np.floating)) and np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt: expected a positive finite number of seconds, received {dt!r}")
        self.dt = float(dt)
        if (rhs is None) == (update is None):
            raise ValueError(
                "expected exactly one of rhs= (continuous dynamics) and update= (discrete map); "
                f"received rhs={'given' if rhs is not None else None}, "
                f"update={'given' if update is not None else None}"
            )
        if integrator not in INTEGRATORS:
            raise ValueError(
                f"integrator: expected one of {sorted(INTEGRATORS)}, received {integrator!r}"
            )
        self._rhs = rhs
        self._update = update
        self._numpy_zeros: dict[tuple, np.ndarray] = {}  # see _zero_disturbance
        self.integrator = integrator
        m = len(self.input_names)
        self.input_lower = _bounds(input_lower, m, -np.inf, "input_lower")
        self.input_upper = _bounds(input_upper, m, np.inf, "input_upper")
        if np.any(self.input_lower > self.input_upper):
            raise ValueError(
                "input bounds: expected input_lower <= input_upper, received "
                f"{self.input_lower} and {self.input_upper}"
            )
        self._bounded = bool(
            np.isfinite(self.input_lower).any() or np.isfinite(self.input_upper).any()
        )
        self._observe = observe
        self._observe_takes_reference = observe is not None and _n_positional(observe) >= 2
        if self.reference_names and observe is not None and not self._observe_takes_reference:
            raise ValueError("references were given, so observe must take (x, r)")
        if outputs is None:
            if observe is not None:
                raise ValueError("outputs: give the observation names (or size) with observe=")
            outputs = self.state_names
        self.output_names = _names(outputs, "y", "outputs")
        n_ref = len(self.reference_names)
        self.nominal_reference = (
            np.zeros(n_ref)
            if nominal_reference is None
            else check_vector(
                nominal_reference, n_ref, "nominal_reference", self.reference_names, broadcast=True
            )
        )
        for what, fn in (
            ("rhs", rhs),
            ("update", update),
            ("observe", observe),
            ("equilibrium", equilibrium),
            ("post_step", post_step),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what}: expected a callable, received {fn!r}")
        self._equilibrium = equilibrium
        self._post_step = post_step
        self.batch_shape = _batch_shape(batch_shape)
        self.name = name
        self.params = params
        self._set_facts(invariants, operating_points, controllers, metrics)
        _probe(self)

    # ------------------------------------------------------------------ sizes
    @property
    def n_states(self) -> int:
        """Number of states ``n``."""
        return len(self.state_names)

    @property
    def n_inputs(self) -> int:
        """Number of inputs ``m``."""
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        """Number of observations ``p``."""
        return len(self.output_names)

    @property
    def n_references(self) -> int:
        """Number of reference signals."""
        return len(self.reference_names)

    @property
    def n_disturbances(self) -> int:
        """Number of disturbance inputs."""
        return len(self.disturbance_names)

    @property
    def is_continuous(self) -> bool:
        """True if a continuous right-hand side is available (``rhs``)."""
        return self._rhs is not None

    # --------------------------------------------------------------- dynamics
    def _zero_disturbance(self, x):
        if is_torch(x):  # on the state's device (a namespace's zeros would be on the host)
            return x.new_zeros((*x.shape[:-1], self.n_disturbances))
        if type(x) is np.ndarray:  # one read-only array per shape and dtype, made once
            key = (x.shape[:-1], x.dtype)
            zeros = self._numpy_zeros.get(key)
            if zeros is None:
                if len(self._numpy_zeros) > 64:
                    self._numpy_zeros.clear()
                zeros = np.zeros((*key[0], self.n_disturbances), dtype=x.dtype)
                zeros.flags.writeable = False
                self._numpy_zeros[key] = zeros
            return zeros
        xp = namespace(x)
        return xp.zeros((*x.shape[:-1], self.n_disturbances), dtype=x.dtype)

    def rhs(self, x, u, w=None):
        """Continuous dynamics ``dx/dt``, shapes ``(..., n), (..., m) -> (..., n)``.

        The input is used as given (no saturation); :meth:`step` saturates. ``w`` (shape
        ``(..., n_w)``) is the disturbance, zeros if omitted; ignored by plants without one.
        """
        if self._rhs is None:
            raise AttributeError(f"plant {self.name!r} is discrete only: it has no rhs")
        try:
            if self.n_disturbances:
                dx = self._rhs(x, u, self._zero_disturbance(x) if w is None else w)
            else:
                dx = self._rhs(x, u)
        except (TypeError, ValueError, RuntimeError) as err:
            raise (not_agnostic_error(err, x, f"the rhs of plant {self.name!r}") or err) from err
        if type(dx) is not type(x) and is_torch(x) and not is_torch(dx):
            raise _returned_no_tensor(f"the rhs of plant {self.name!r}", dx)
        return dx

    def saturate(self, u):
        """Clip ``u`` (shape ``(..., m)``) to the actuator bounds."""
        if not self._bounded:
            return u
        if is_torch(u):
            import torch

            lo = torch.as_tensor(self.input_lower, dtype=u.dtype, device=u.device)
            hi = torch.as_tensor(self.input_upper, dtype=u.dtype, device=u.device)
            return torch.clamp(u, lo, hi)
        # same result as np.clip, at less than half its cost on the small arrays of a single env
        return np.minimum(np.maximum(u, self.input_lower), self.input_upper)

    def step(self, x, u, w=None):
        """The discrete map ``x[k+1]``: actuator saturation, integrator, then ``post_step``.

        Parameters
        ----------
        x : array or tensor, shape (..., n)
        u : array or tensor, shape (..., m)
        w : array or tensor, shape (..., n_w), optional
            Disturbance held over the step (zeros if omitted; plants without one ignore it).

        Returns
        -------
        array or tensor, shape (..., n)
        """
        return self.advance(x, self.saturate(u), w)

    def advance(self, x, u, w=None):
        """:meth:`step` for an input already within the actuator bounds (no saturation).

        For callers that saturate the input themselves because they need the applied input too
        (an environment's reward): ``step(x, u, w) == advance(x, saturate(u), w)``.

        Parameters
        ----------
        x : array or tensor, shape (..., n)
        u : array or tensor, shape (..., m)
            Input inside ``[input_lower, input_upper]`` (used as given).
        w : array or tensor, shape (..., n_w), optional

        Returns
        -------
        array or tensor, shape (..., n)
        """
        try:
            if self.disturbance_names:
                w = self._zero_disturbance(x) if w is None else w
                if self._update is not None:
                    x_next = self._update(x, u, w)
                else:
                    x_next = INTEGRATORS[self.integrator](
                        lambda x_, u_: self._rhs(x_, u_, w), x, u, self.dt
                    )
            elif self._update is not None:
                x_next = self._update(x, u)
            else:
                x_next = INTEGRATORS[self.integrator](self._rhs, x, u, self.dt)
        except (TypeError, ValueError, RuntimeError) as err:
            what = f"the {'rhs' if self._rhs is not None else 'update'} of plant {self.name!r}"
            raise (not_agnostic_error(err, x, what) or err) from err
        if type(x_next) is not type(x) and is_torch(x) and not is_torch(x_next):
            what = f"the {'rhs' if self._rhs is not None else 'update'} of plant {self.name!r}"
            raise _returned_no_tensor(what, x_next)
        if self._post_step is not None:
            x_next = self._post_step(x_next)
        return x_next

    def observe(self, x, r=None):
        """What the controller sees, ``y = observe(x, r)``, shape ``(..., p)``.

        Parameters
        ----------
        x : array or tensor, shape (..., n)
        r : array or tensor, shape (..., n_ref), optional
            Reference; defaults to ``nominal_reference``.
        """
        if self._observe is None:
            return x
        try:
            if self._observe_takes_reference:
                if r is None:
                    r = as_like(self.nominal_reference, x)
                return self._observe(x, r)
            return self._observe(x)
        except (TypeError, ValueError, RuntimeError) as err:
            what = f"the observe function of plant {self.name!r}"
            raise (not_agnostic_error(err, x, what) or err) from err

    def equilibrium(self, r=None):
        """State and input that hold the plant at rest for reference ``r``.

        Returns
        -------
        x_eq : ndarray, shape (n,)
        u_eq : ndarray, shape (m,)
        """
        if self._equilibrium is None:
            raise NotImplementedError(
                f"plant {self.name!r} defines no equilibrium; pass equilibrium= to Plant or give "
                "an initial guess to neuroctl.operating_point"
            )
        if r is None:
            r = self.nominal_reference
        else:
            r = check_vector(r, self.n_references, "r", self.reference_names)
        x_eq, u_eq = self._equilibrium(np.asarray(r, dtype=float))
        return np.asarray(x_eq, dtype=float), np.asarray(u_eq, dtype=float)

    # ------------------------------------------------------------- analysis facts
    def _set_facts(self, invariants, operating_points, controllers, metrics) -> None:
        n = self.n_states
        if invariants is None:
            V = np.zeros((n, 0))
        else:
            V = np.asarray(invariants, dtype=float)
            if V.ndim == 1:
                V = V[:, None]
            if V.ndim != 2 or V.shape[0] != n or not np.isfinite(V).all():
                raise ValueError(
                    f"invariants: expected finite directions of shape ({n}, k) or ({n},), "
                    f"received an array of shape {np.shape(invariants)}"
                )
            if V.shape[1] and np.linalg.matrix_rank(V) < V.shape[1]:
                raise ValueError(
                    f"invariants: expected {V.shape[1]} linearly independent directions, "
                    f"received a matrix of rank {np.linalg.matrix_rank(V)}"
                )
        V.flags.writeable = False
        self._invariants = V
        points = {} if operating_points is None else dict(operating_points)
        for key, fn in points.items():
            if not isinstance(key, str) or not callable(fn):
                raise TypeError(
                    "operating_points: expected a mapping of names (str) to callables "
                    f"fn(r) -> (x, u), received {key!r}: {fn!r}"
                )
        if "nominal" in points:
            raise ValueError(
                "operating_points: the name 'nominal' is the plant's equilibrium= point; "
                "give that one as equilibrium="
            )
        self._operating_points = points
        table = {} if controllers is None else dict(controllers)
        for key, entry in table.items():
            ok = (
                isinstance(key, str)
                and isinstance(entry, tuple)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and callable(entry[1])
            )
            if not ok:
                raise TypeError(
                    "controllers: expected a mapping of names (str) to (description, "
                    f"factory(plant)) pairs, received {key!r}: {entry!r}"
                )
        self._controllers = table
        if metrics is not None and not callable(metrics):
            raise TypeError(
                f"metrics: expected a callable metrics(states, inputs, r) -> dict, received "
                f"{metrics!r}"
            )
        self._metrics = metrics

    @property
    def invariants(self) -> np.ndarray:
        """Directions of invariance of the dynamics, shape ``(n, k)`` (``k = 0``: none).

        Read-only. See the ``invariants`` argument of :class:`Plant`.
        """
        return self._invariants

    def operating_points(self, r=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The plant's nominal operating points for reference ``r``, by name.

        ``"nominal"`` (from ``equilibrium=``, first) and the ``operating_points=`` the plant
        declares. With :attr:`invariants` these are relative equilibria (states that move along
        the invariant directions). They are starting points of
        :func:`neuroctl.operating_point`, which solves the closed loop from them.

        Parameters
        ----------
        r : array_like, shape (n_ref,), optional
            Reference; default ``nominal_reference``.

        Returns
        -------
        dict of str to (ndarray (n,), ndarray (m,))
        """
        if r is None:
            r = self.nominal_reference
        r = np.asarray(r, dtype=float)
        out = {}
        if self._equilibrium is not None:
            out["nominal"] = self.equilibrium(r)
        for key, fn in self._operating_points.items():
            x, u = fn(r)
            x, u = np.asarray(x, dtype=float), np.asarray(u, dtype=float)
            if x.shape != (self.n_states,) or u.shape != (self.n_inputs,):
                raise ValueError(
                    f"operating_points[{key!r}]: expected (x, u) of shapes ({self.n_states},) "
                    f"and ({self.n_inputs},), received {x.shape} and {u.shape}"
                )
            out[key] = (x, u)
        return out

    @property
    def controllers(self) -> dict[str, str]:
        """Names and descriptions of the classical controllers that belong to the plant."""
        return {key: entry[0] for key, entry in self._controllers.items()}

    def controller(self, name: str):
        """Build the classical controller ``name`` of this plant (see :attr:`controllers`).

        Parameters
        ----------
        name : str

        Returns
        -------
        nn.Module or callable or None
            What the factory returns (``None``: no input).
        """
        entry = self._controllers.get(name)
        if entry is None:
            raise KeyError(
                f"controller: plant {self.name!r} has no controller {name!r}; expected one of "
                f"{sorted(self._controllers)}"
            )
        return entry[1](self)

    def metrics(self, states, inputs=None, r=None) -> dict[str, float]:
        """The plant's own figures of a trajectory (empty if the plant declares none).

        Parameters
        ----------
        states : array_like, shape (T + 1, n)
            States of a run, initial state first.
        inputs : array_like, shape (T, m), optional
            Inputs applied (default zeros).
        r : array_like, shape (n_ref,), optional
            Reference of the run (default ``nominal_reference``).

        Returns
        -------
        dict of str to float (or bool)
        """
        x = np.asarray(states, dtype=float)
        if x.ndim != 2 or x.shape[-1] != self.n_states:
            raise ValueError(
                f"states: expected shape (T + 1, {self.n_states}), received {x.shape}"
            )
        u = (
            np.zeros((max(len(x) - 1, 0), self.n_inputs))
            if inputs is None
            else np.asarray(inputs, dtype=float)
        )
        if u.ndim != 2 or u.shape[-1] != self.n_inputs:
            raise ValueError(f"inputs: expected shape (T, {self.n_inputs}), received {u.shape}")
        r = self.nominal_reference if r is None else np.asarray(r, dtype=float)
        if r.shape != (self.n_references,):
            raise ValueError(f"r: expected shape ({self.n_references},), received {r.shape}")
        if self._metrics is None:
            return {}
        return dict(self._metrics(x, u, r))

    # ---------------------------------------------------------- python-control
    def to_nlsys(self, *, continuous: bool = False):
        """This plant as a python-control ``NonlinearIOSystem``.

        Parameters
        ----------
        continuous : bool
            If True, the continuous model from ``rhs`` (no saturation); otherwise the discrete
            map ``step`` with sample time ``dt``.

        Returns
        -------
        control.NonlinearIOSystem
            Inputs are the plant inputs, then the disturbances, then the references; outputs are
            the observations.
        """
        import control

        m, mw = self.n_inputs, self.n_inputs + self.n_disturbances

        def split(u):
            u = np.asarray(u, float)
            w = u[m:mw] if self.n_disturbances else None
            return u[:m], w, (u[mw:] if self.n_references else None)

        if continuous:
            if self._rhs is None:
                raise ValueError(f"plant {self.name!r} has no continuous model (rhs)")

            def updfcn(t, x, u, params):
                u_, w, _ = split(u)
                return np.asarray(self.rhs(np.asarray(x, float), u_, w))
        else:

            def updfcn(t, x, u, params):
                u_, w, _ = split(u)
                return np.asarray(self.step(np.asarray(x, float), u_, w))

        def outfcn(t, x, u, params):
            return np.asarray(self.observe(np.asarray(x, float), split(u)[2]))

        return control.nlsys(
            updfcn,
            outfcn,
            inputs=list(self.input_names)
            + list(self.disturbance_names)
            + list(self.reference_names),
            outputs=list(self.output_names),
            states=list(self.state_names),
            dt=0 if continuous else self.dt,
            name=self.name,
        )

    def __repr__(self) -> str:
        kind = f"rhs+{self.integrator}" if self._rhs is not None else "update"
        return (
            f"Plant({self.name!r}, states={list(self.state_names)}, "
            f"inputs={list(self.input_names)}, "
            f"outputs={self.n_outputs}, dt={self.dt}, {kind})"
        )
