"""Verification questions about a controller, posed with plain values: a bound on the command
over a box of an env's observations, a closed-loop property from boxes of a plant's states, and a
region of attraction in a box of states.

This is the layer ``neuroctl verify`` stands on: the functions take the env or the plant and
numbers, check them, and hand back the library's results. Bad input raises
:class:`~neuroctl.episodes.InputError`, whose message starts with the name of the argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._report_table import format_box
from .episodes import InputError, verify_query

__all__ = [
    "EnvQuery",
    "EnvVerification",
    "ClosedLoopQuery",
    "closed_loop_query",
    "observation_box",
    "output_spec",
    "region_of_attraction_box",
    "state_box",
    "verify_env",
]


def _values(values, n: int, what: str) -> np.ndarray:
    """1 value (repeated) or ``n`` values as a float64 array of shape ``(n,)``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected numbers, received {values!r}") from None
    if arr.size == 1:
        arr = np.full(n, float(arr.reshape(())))
    if arr.shape != (n,):
        expected = "1 value" if n == 1 else f"1 or {n} values"
        raise InputError(f"{what}: expected {expected}, received {arr.size}")
    if np.isnan(arr).any():
        raise InputError(f"{what}: expected numbers, received {arr.tolist()}")
    return arr


def _first_unordered(lower: np.ndarray, upper: np.ndarray) -> int | None:
    bad = np.flatnonzero(lower > upper)
    return int(bad[0]) if bad.size else None


# --- a bound on the command over a box of observations -----------------------------------------


def observation_box(env, lower=None, upper=None) -> tuple[np.ndarray, np.ndarray, str]:
    """The box of observations to verify on: ``lower``/``upper`` where given, else the env's.

    Parameters
    ----------
    env : gymnasium.Env
        An env with a ``Box`` observation space of ``n_obs`` components.
    lower, upper : array_like, shape (n_obs,) or (), optional
        Corners of the box, in the observation's units (one value: the same for every
        component); a side left out is the env's.

    Returns
    -------
    lower, upper : ndarray, shape (n_obs,)
    source : str
        Where the box comes from, in words (for reports).

    Raises
    ------
    InputError
        Naming ``lower`` and/or ``upper``: a wrong number of values, a side unbounded in some
        component (with the component's name where the plant has one), ``lower > upper``.
    """
    space = env.observation_space
    n_in = int(np.prod(space.shape))
    env_lo = np.asarray(space.low, dtype=np.float64).reshape(-1)
    env_hi = np.asarray(space.high, dtype=np.float64).reshape(-1)
    lo = env_lo if lower is None else _values(lower, n_in, "lower")
    hi = env_hi if upper is None else _values(upper, n_in, "upper")
    finite_lo, finite_hi = np.isfinite(lo), np.isfinite(hi)
    unbounded = np.flatnonzero(~(finite_lo & finite_hi))
    if unbounded.size:
        plant = getattr(env.unwrapped, "plant", None)
        names = list(getattr(plant, "output_names", ()) or ())
        label = ", ".join(
            f"{k} ({names[k]})" if len(names) == n_in else str(int(k)) for k in unbounded
        )
        sides = [s for s, ok in (("lower", finite_lo), ("upper", finite_hi)) if not ok.all()]
        where = (
            f"the observation box of {env.spec.id}"
            if lower is None or upper is None
            else ("the given box")
        )
        raise InputError(
            f"{' and '.join(sides)}: expected a finite box, but {where} is unbounded in "
            f"component(s) {label}; give lower and upper ({n_in} values each, or one value for "
            "all)"
        )
    k = _first_unordered(lo, hi)
    if k is not None:
        raise InputError(
            f"lower/upper: expected lower <= upper, received {lo[k]:g} > {hi[k]:g} in component "
            f"{k} (the env's box is {env_lo[k]:g} .. {env_hi[k]:g})"
        )
    source = {
        (True, True): f"the observation box of {env.spec.id}",
        (False, False): "the given box",
    }.get((lower is None, upper is None), f"the given box and the box of {env.spec.id}")
    return lo, hi, source


def output_spec(env, *, max_abs=None, output_lower=None, output_upper=None):
    """The property on the command: ``|u| <= max_abs``, a range, or by default the action box.

    Bounds are non-strict (a command at a bound satisfies it, :meth:`Spec.output_range`).

    Parameters
    ----------
    env : gymnasium.Env
        An env with a ``Box`` action space of ``n_act`` components.
    max_abs : array_like, shape (n_act,) or (), optional, keyword-only
        Bound on the magnitude of each command, in the action's units.
    output_lower, output_upper : array_like, shape (n_act,) or (), optional, keyword-only
        A range of the commands (either side may be left out); not with ``max_abs``.

    Returns
    -------
    neuroctl.verify.Spec
        Named after the property (``"|u| <= 2"``, ``"u >= [-1.0] and u <= [1.0]"``,
        ``"within the action box"``).

    Raises
    ------
    InputError
        Naming the argument: a wrong number of values, ``max_abs`` with a range,
        ``output_lower > output_upper``.
    """
    from .verify import Spec

    n_out = int(np.prod(env.action_space.shape))
    has_range = output_lower is not None or output_upper is not None
    if max_abs is not None and has_range:
        raise InputError(
            "max_abs: not allowed with output_lower/output_upper (one property per query), "
            "received both"
        )
    if max_abs is not None:
        bound = _values(max_abs, n_out, "max_abs")
        if np.any(bound < 0):
            raise InputError(f"max_abs: expected values >= 0, received {bound.tolist()}")
        name = "|u| <= " + ", ".join(f"{b:g}" for b in bound)
        return Spec.output_range(n_out, lower=-bound, upper=bound, name=name)
    if has_range:
        ol = None if output_lower is None else _values(output_lower, n_out, "output_lower")
        ou = None if output_upper is None else _values(output_upper, n_out, "output_upper")
        k = None if ol is None or ou is None else _first_unordered(ol, ou)
        if k is not None:
            raise InputError(
                "output_lower/output_upper: expected output_lower <= output_upper, received "
                f"{ol[k]:g} > {ou[k]:g} in component {k}"
            )
        parts = [] if ol is None else [f"u >= {ol.tolist()}"]
        parts += [] if ou is None else [f"u <= {ou.tolist()}"]
        try:
            return Spec.output_range(n_out, lower=ol, upper=ou, name=" and ".join(parts))
        except ValueError as exc:  # only infinite bounds
            side = (
                "output_lower"
                if ou is None
                else "output_upper"
                if ol is None
                else ("output_lower/output_upper")
            )
            raise InputError(f"{side}: {exc}") from None
    a_lo = np.asarray(env.action_space.low, dtype=np.float64).reshape(-1)
    a_hi = np.asarray(env.action_space.high, dtype=np.float64).reshape(-1)
    return Spec.output_range(n_out, lower=a_lo, upper=a_hi, name="within the action box")


@dataclass(frozen=True, eq=False)
class EnvQuery:
    """One box of observations, the property checked on it, and the verdict.

    Attributes
    ----------
    lower, upper : ndarray, shape (n_obs,)
        The box of observations.
    box : str
        Where the box comes from, in words.
    spec : neuroctl.verify.Spec
    result : neuroctl.verify.CheckResult
    """

    lower: np.ndarray
    upper: np.ndarray
    box: str
    spec: Any
    result: Any

    def to_dict(self) -> dict:
        """The box, the property's name and the result's own dictionary, suitable for JSON."""
        return {
            "lower": self.lower,
            "upper": self.upper,
            "box": self.box,
            "spec": self.spec.name or repr(self.spec),
            **self.result.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class EnvVerification:
    """Outcome of :func:`verify_env`: the verdict of every query and the overall status.

    Attributes
    ----------
    status : {"holds", "violated", "unknown"}
        ``"violated"`` if a query is, else ``"unknown"`` if a query is, else ``"holds"``.
    queries : tuple of EnvQuery
    """

    status: str
    queries: tuple

    def to_dict(self) -> dict:
        """Plain-Python dictionary, suitable for JSON (through :mod:`neuroctl._json`)."""
        return {"status": self.status, "queries": [q.to_dict() for q in self.queries]}

    def summary(self) -> list[str]:
        """The report of every query, as lines of text: the property on its box, the verdict
        with its margin and time, and the counterexample if any (indented under the query)."""
        lines = []
        for q in self.queries:
            res = q.result
            lines.append(
                f"{q.spec.name or repr(q.spec)} on {q.box}: {format_box(q.lower, q.upper)}"
            )
            lines.append(f"  {res.status} (margin {res.margin:.4g}, {res.time:.2f} s)")
            if res.counterexample is not None:
                lines.append(
                    f"  counterexample: observation {np.round(res.counterexample, 6).tolist()}"
                    f" -> command {np.round(res.output, 6).tolist()}"
                )
        return lines

    def __repr__(self) -> str:
        return f"EnvVerification({self.status!r}, {len(self.queries)} queries)"


def verify_env(
    env,
    net,
    *,
    lower=None,
    upper=None,
    max_abs=None,
    output_lower=None,
    output_upper=None,
    vnnlib=None,
    timeout: float = 60.0,
    seed: int = 0,
) -> EnvVerification:
    """Prove a bound on a network's command over a box of the env's observations, or refute it.

    One query on the box of :func:`observation_box` with the property of :func:`output_spec`,
    or every query of a VNN-LIB file; each decided by :func:`neuroctl.verify.check`.

    Parameters
    ----------
    env : gymnasium.Env
        The env whose observation and action boxes give the sizes and the defaults.
    net : torch.nn.Module
        The controller's network, observation ``(n_obs,)`` to command ``(n_act,)``.
    lower, upper : array_like, shape (n_obs,) or (), optional, keyword-only
        The box of observations (default: the env's, where it is finite).
    max_abs, output_lower, output_upper : array_like, optional, keyword-only
        The property, as in :func:`output_spec` (default: the action box).
    vnnlib : str or Path, optional, keyword-only
        A VNN-LIB file stating the boxes and the property instead (not with the options above).
    timeout : float, keyword-only
        Seconds per query; on expiry its answer is ``"unknown"``.
    seed : int, keyword-only
        Seed of the falsifier.

    Returns
    -------
    EnvVerification

    Raises
    ------
    InputError
        Naming the argument (see :func:`observation_box`, :func:`output_spec`); ``vnnlib``
        with a box or a property, or a file that cannot be read; a network that ``check``
        does not support.
    """
    from .verify import read_vnnlib

    n_in = int(np.prod(env.observation_space.shape))
    n_out = int(np.prod(env.action_space.shape))
    if vnnlib is not None:
        for name, value in (
            ("max_abs", max_abs),
            ("output_lower", output_lower),
            ("output_upper", output_upper),
            ("lower", lower),
            ("upper", upper),
        ):
            if value is not None:
                raise InputError(
                    f"{name}: not allowed with vnnlib (the VNN-LIB file states the box and the "
                    "property), received both"
                )
        try:
            read = read_vnnlib(vnnlib, n_inputs=n_in, n_outputs=n_out)
        except (ValueError, NotImplementedError, KeyError, IndexError, OSError) as exc:
            raise InputError(f"vnnlib {vnnlib}: {exc}") from None
        queries = [(q.lower, q.upper, q.spec, "the VNN-LIB file") for q in read]
    else:
        lo, hi, source = observation_box(env, lower, upper)
        spec = output_spec(
            env, max_abs=max_abs, output_lower=output_lower, output_upper=output_upper
        )
        queries = [(lo, hi, spec, source)]
    done = tuple(
        EnvQuery(lo, hi, source, spec, verify_query(net, lo, hi, spec, timeout=timeout, seed=seed))
        for lo, hi, spec, source in queries
    )
    statuses = {q.result.status for q in done}
    status = next((s for s in ("violated", "unknown") if s in statuses), "holds")
    return EnvVerification(status, done)


# --- boxes of a plant's states: closed loop and region of attraction ------------------------


def state_box(plant, lower, upper, *, names: tuple[str, str] = ("lower", "upper")):
    """A box of the plant's states from plain values, checked.

    Parameters
    ----------
    plant : neuroctl.Plant
        The plant, of ``n`` states.
    lower, upper : array_like, shape (n,) or ()
        Corners of the box, in the states' units (one value: the same for every state).
    names : (str, str), keyword-only
        The names of the two arguments in the caller, used in the messages.

    Returns
    -------
    lower, upper : ndarray, shape (n,)

    Raises
    ------
    InputError
        Naming the argument: a side missing, a wrong number of values, ``lower > upper``
        (with the state's name).
    """
    n = plant.n_states
    states = ", ".join(plant.state_names)
    lo_name, hi_name = names
    if lower is None or upper is None:
        raise InputError(
            f"{lo_name}/{hi_name}: expected the state box (1 or {n} values each for "
            f"{list(plant.state_names)}), received {lower} and {upper}"
        )
    lo = _values(lower, n, f"{lo_name} (states {states})")
    hi = _values(upper, n, f"{hi_name} (states {states})")
    k = _first_unordered(lo, hi)
    if k is not None:
        raise InputError(
            f"{lo_name}/{hi_name}: expected {lo_name} <= {hi_name}, received {lo[k]:g} > "
            f"{hi[k]:g} in state {k} ({plant.state_names[k]})"
        )
    return lo, hi


@dataclass(frozen=True, eq=False)
class ClosedLoopQuery:
    """A closed-loop question, checked: the initial box, the property and its semantics.

    Attributes
    ----------
    plant : neuroctl.Plant
    initial_lower, initial_upper : ndarray, shape (n,)
    spec : neuroctl.verify.Property
    steps : int
    semantics : {"continuous", "discrete"}
    """

    plant: Any
    initial_lower: np.ndarray
    initial_upper: np.ndarray
    spec: Any
    steps: int
    semantics: str

    def check(self, controller, *, timeout: float = 60.0, seed: int = 0):
        """Decide the question for a controller (:func:`neuroctl.verify.check_closed_loop`).

        Parameters
        ----------
        controller : torch.nn.Module
            Static controller, plant output ``(n_out,)`` to command ``(n_inputs,)``.
        timeout : float, keyword-only
            Seconds; on expiry the answer is ``"unknown"``.
        seed : int, keyword-only
            Seed of the falsifier.

        Returns
        -------
        neuroctl.verify.ClosedLoopResult
        """
        from .verify import check_closed_loop

        return check_closed_loop(
            self.plant,
            controller,
            self.initial_lower,
            self.initial_upper,
            self.spec,
            steps=self.steps,
            timeout=timeout,
            semantics=self.semantics,
            seed=seed,
        )


def closed_loop_query(
    plant,
    initial_lower,
    initial_upper,
    *,
    steps: int,
    safe_lower=None,
    safe_upper=None,
    window=None,
    goal_lower=None,
    goal_upper=None,
    at_time: float | None = None,
    eventually_window=None,
    semantics: str | None = None,
) -> ClosedLoopQuery:
    """Check a closed-loop question given by boxes of states, before any work
    (:meth:`ClosedLoopQuery.check` then decides it).

    The property is :func:`neuroctl.verify.box_property`'s, its semantics
    :func:`neuroctl.verify.flow.resolve_semantics`'s, and its sizes and times are checked
    against the plant and the horizon ``steps * plant.dt``.

    Parameters
    ----------
    plant : neuroctl.Plant
        The plant, of ``n`` states.
    initial_lower, initial_upper : array_like, shape (n,) or ()
        The initial box of states.
    steps : int, keyword-only
        Horizon in control periods.
    safe_lower, safe_upper, window, goal_lower, goal_upper, at_time, eventually_window : optional
        The property, as in :func:`neuroctl.verify.box_property` (boxes of states, times in s).
    semantics : {"continuous", "discrete"} or None, keyword-only
        None: the plant's default.

    Returns
    -------
    ClosedLoopQuery

    Raises
    ------
    InputError
        Naming the argument(s): the boxes, the property, the semantics, times outside the
        horizon (``window/at_time/eventually_window``).
    """
    from .verify import box_property
    from .verify.flow import resolve_semantics

    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise InputError(
            f"steps: expected a positive number of control periods, received {steps!r}"
        )
    lo, hi = state_box(
        plant, initial_lower, initial_upper, names=("initial_lower", "initial_upper")
    )
    try:
        spec = box_property(
            plant.n_states,
            safe_lower=safe_lower,
            safe_upper=safe_upper,
            window=window,
            goal_lower=goal_lower,
            goal_upper=goal_upper,
            at_time=at_time,
            eventually_window=eventually_window,
        )
        semantics = resolve_semantics(plant, semantics)
    except ValueError as exc:  # box_property and resolve_semantics name the argument
        raise InputError(str(exc)) from None
    horizon = steps * plant.dt
    try:
        spec.validate(plant.n_states, plant.n_inputs, horizon, plant.dt, semantics)
    except ValueError as exc:
        raise InputError(
            f"window/at_time/eventually_window: {exc} (the horizon is steps x dt = {steps} x "
            f"{plant.dt:g} s)"
        ) from None
    return ClosedLoopQuery(plant, lo, hi, spec, int(steps), semantics)


def region_of_attraction_box(plant, controller, lower, upper, *, timeout: float = 60.0):
    """:func:`neuroctl.verify.region_of_attraction` in the box ``[lower, upper]`` of states.

    Parameters
    ----------
    plant : neuroctl.Plant
    controller : torch.nn.Module
        Static controller.
    lower, upper : array_like, shape (n,) or ()
        The search box of states (one value: the same for every state).
    timeout : float, keyword-only
        Seconds for the branch and bound.

    Returns
    -------
    neuroctl.verify.RegionOfAttraction

    Raises
    ------
    InputError
        Naming ``lower``/``upper`` (see :func:`state_box`).
    ValueError
        From :func:`~neuroctl.verify.region_of_attraction` (e.g. a box without the operating
        point inside).
    """
    from .verify import region_of_attraction

    lo, hi = state_box(plant, lower, upper)
    return region_of_attraction(plant, controller, box=np.stack([lo, hi]), timeout=timeout)
