"""Gymnasium envs in closed loop with a controller: the env, its built-in controllers, episodes
and their metrics, and the stability analysis at the env's operating point.

This is the layer the ``neuroctl`` command and :mod:`neuroctl.demo` stand on. Bad input (an
unknown env id, a controller that does not fit the env, ...) raises :class:`InputError`, a
``ValueError`` whose message names the argument, what was expected and what was received.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._json import json_dict

__all__ = [
    "Controller",
    "EpisodesResult",
    "InputError",
    "Progress",
    "Rollout",
    "builtin_controllers",
    "controller_listing",
    "check_finite",
    "check_sizes",
    "load_controller",
    "make_env",
    "require_boxes",
    "require_plant",
    "require_static",
    "resolve_env_id",
    "rollout",
    "rollout_metrics",
    "simulate_episodes",
    "stability_report",
    "verify_query",
]


class InputError(ValueError):
    """Bad input from the user: the message names the argument, the expected and the received."""


class Progress:
    """A minimal progress bar on stderr (silent when disabled or when stderr is not a terminal).

    Parameters
    ----------
    total : int
        Number of units of work.
    desc : str
        Label shown before the bar.
    enabled : bool or None
        Force on/off; ``None`` shows it when stderr is a terminal.
    """

    def __init__(self, total: int, desc: str = "", *, enabled: bool | None = None) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.n = 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.start = time.perf_counter()
        self._last = 0.0
        self.note = ""

    def update(self, k: int = 1, note: str | None = None) -> None:
        self.n = min(self.n + k, self.total)
        if note is not None:
            self.note = note
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.n == self.total):
            self._last = now
            frac = self.n / self.total
            bar = "#" * int(frac * 24)
            elapsed = now - self.start
            sys.stderr.write(
                f"\r{self.desc} [{bar:<24}] {100 * frac:3.0f}% {elapsed:5.1f}s {self.note[:40]:<40}"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_env_id(env_id: str) -> str:
    """The registered Gymnasium id of ``env_id``.

    Accepts a registered id (``neuroctl/Arm-v0``), a neuroctl id without its prefix (``Arm-v0``)
    and the ``module:Env-v0`` form of ``gymnasium.make`` (the module is imported first; it
    registers its envs).

    Raises
    ------
    InputError
        A module that cannot be imported, or an id that is not registered.
    """
    import difflib
    import importlib

    import gymnasium as gym

    import neuroctl  # noqa: F401 - registers the ids

    if not isinstance(env_id, str) or not env_id:
        raise InputError(f"env: expected an environment id, received {env_id!r}")
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(
                f"env {env_id!r}: expected an importable module before ':' (the module:Env-v0 "
                f"form of gymnasium.make), received {module!r}, which cannot be imported ({exc})"
            ) from None
        if name in gym.envs.registry:
            return name
        raise InputError(
            f"env {env_id!r}: module {module!r} was imported but registers no environment {name!r}"
        )
    for c in (env_id, f"neuroctl/{env_id}"):
        if c in gym.envs.registry:
            return c
    close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    own = sorted(i for i in gym.envs.registry if i.startswith("neuroctl/"))  # registered on import
    raise InputError(
        f"unknown environment {env_id!r}{hint}: expected one of {', '.join(own)}, another id "
        "registered with Gymnasium, or module:Env-v0"
    )


def make_env(
    env_id: str,
    env_kwargs: dict | None = None,
    *,
    max_episode_steps: int | None = None,
    kwargs_label: str = "env_kwargs",
):
    """``gymnasium.make`` with input errors turned into :class:`InputError`.

    Parameters
    ----------
    env_id : str
        See :func:`resolve_env_id`.
    env_kwargs : dict, optional
        Keywords of the env's constructor.
    max_episode_steps : int, optional, keyword-only
        Replaces the registered time limit.
    kwargs_label : str, keyword-only
        How the keywords are named in an error message (the CLI says ``-e/--env-kwarg``).
    """
    import gymnasium as gym

    resolved = resolve_env_id(env_id)
    kwargs = dict(env_kwargs or {})
    extra: dict[str, Any] = (
        {} if max_episode_steps is None else {"max_episode_steps": int(max_episode_steps)}
    )
    try:
        return gym.make(resolved, **kwargs, **extra)
    except (TypeError, ValueError, ImportError, gym.error.Error) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no keywords"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason.split(" was raised from the environment creator")[0]  # gymnasium's note
        raise InputError(f"{kwargs_label}: {resolved} rejected {given}: {reason}") from None


def reset_env(env, *, seed: int | None = None, options: dict | None = None):
    """``env.reset`` with a failure of the env's own parameters reported as :class:`InputError`.

    Some parameter combinations construct but cannot start an episode (a ring of one car).
    """
    import gymnasium as gym

    try:
        return env.reset(seed=seed, options=options)
    except (TypeError, ValueError, ImportError, gym.error.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"env_kwargs: {env.spec.id} cannot start an episode: {reason}") from None


def env_plant(env):
    """The :class:`neuroctl.Plant` of an env, or ``None`` when none is known.

    ``env.unwrapped.plant`` when the env carries one, else the plant registered for its id or
    class (:func:`neuroctl.envs.plant_of`: e.g. Gymnasium's ``Pendulum-v1``).
    """
    from neuroctl.envs import plant_of

    try:
        return plant_of(env)
    except LookupError:
        return None


def require_plant(env, what: str):
    """The :class:`neuroctl.Plant` of an env (:func:`env_plant`), or :class:`InputError`.

    Parameters
    ----------
    env : gymnasium.Env
    what : str
        What needs the plant, for the message (``"analyze"``, ``"verify --closed-loop"``).

    Returns
    -------
    neuroctl.Plant
    """
    plant = env_plant(env)
    if plant is None:
        raise InputError(
            f"env {env.spec.id}: expected an env with a neuroctl.Plant (env.unwrapped.plant, or "
            f"one registered with neuroctl.envs.register_plant: the dynamics that {what} "
            "linearizes), received one without (simulate and verify work on any env with Box "
            "spaces)"
        )
    return plant


def require_boxes(env, what: str) -> None:
    """Raise :class:`InputError` unless the env's observation and action spaces are both
    ``gymnasium.spaces.Box`` (continuous); ``what`` names the work that needs them."""
    from gymnasium import spaces

    for name, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, spaces.Box):
            raise InputError(
                f"env {env.spec.id}: expected a Box {name} space (continuous) for {what}, "
                f"received {space}"
            )


def builtin_controllers(env) -> dict[str, tuple[str, Callable]]:
    """Built-in controllers of an env: name -> (description, factory(env) -> module or None).

    The plant's own classical controllers (``plant.controllers``: the plant knows which belong
    to it), then the shipped trained policy where one exists for the env id; an env without a
    plant offers zero input only.
    """
    from neuroctl.train.pretrained import available

    out: dict[str, tuple[str, Callable]] = {}
    plant = env_plant(env)
    if plant is not None:
        for name, desc in plant.controllers.items():
            out[name] = (desc, lambda env, name=name: env_plant(env).controller(name))
    if env.spec is not None and env.spec.id in available():

        def pretrained(env):
            import neuroctl

            return neuroctl.pretrained(env.spec.id)

        out["pretrained"] = ("the shipped trained ReLU policy", pretrained)
    if not out:
        out["zero"] = ("no input", lambda env: None)
    return out


def controller_listing(env) -> tuple[str, dict]:
    """What ``--controller list`` shows for ``env``: a text table and the same as JSON data.

    Returns
    -------
    text : str
        ``"built-in controllers of ENV_ID:"`` then one ``"  name  description"`` line per
        controller of :func:`builtin_controllers`.
    data : dict
        ``env`` (the env id), ``controllers`` (``[{"name", "description"}]``, same order) and
        ``files`` (the network file formats a controller may also be).
    """
    builtins = builtin_controllers(env)
    lines = [f"  {k:<16} {d}" for k, (d, _) in builtins.items()]
    data = {
        "env": env.spec.id,
        "controllers": [{"name": k, "description": d} for k, (d, _) in builtins.items()],
        "files": "a network file: .pt (with its .json), .zip (SB3), .onnx, .nnet",
    }
    return f"built-in controllers of {env.spec.id}:\n" + "\n".join(lines), data


def _first_linear(net):
    import torch

    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            return m
    return None


def _last_linear(net):
    import torch

    last = None
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    return last


@dataclass
class Controller:
    """A resolved controller: the module (or None for zero input) and how it was named."""

    module: Any
    name: str
    description: str


from .files import SUFFIXES, LoadError, load  # noqa: E402 - light: torch loads on first use


def load_controller(spec: str, env) -> Controller:
    """A controller from a built-in name or a file, checked against the env's sizes."""
    env_id = env.spec.id
    builtins = builtin_controllers(env)
    if spec in builtins:
        desc, factory = builtins[spec]
        module = factory(env)
        if module is not None and _first_linear(module) is not None:
            check_sizes(module, env, repr(spec))  # a shipped policy fits its env's defaults only
        return Controller(module, spec, desc)
    looks_like_file = (
        any(spec.lower().endswith(s) for s in SUFFIXES) or os.sep in spec or Path(spec).exists()
    )
    if not looks_like_file:
        raise InputError(
            f"controller {spec!r}: expected a built-in name for {env_id} "
            f"({', '.join(builtins)}) or a network file (.pt, .zip, .onnx, .nnet)"
        )
    try:
        net = load(spec)
    except LoadError as exc:
        raise InputError(str(exc)) from None
    check_sizes(net, env, spec)
    check_finite(net, spec)
    return Controller(net, Path(spec).name, f"network from {spec}")


def check_finite(net, label: str) -> None:
    """Raise :class:`InputError` if a parameter of the network holds inf or nan."""
    import torch

    for name, value in net.named_parameters():
        bad = ~torch.isfinite(value.detach())
        if bool(bad.any()):
            first = value.detach().reshape(-1)[bad.reshape(-1)][0].item()
            raise InputError(
                f"controller {label}: expected finite weights, received {first} in "
                f"{name} ({int(bad.sum())} of {value.numel()} entries)"
            )


def check_sizes(net, env, label: str) -> None:
    """Raise :class:`InputError` if the network's input/output sizes do not match the env."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    first, last = _first_linear(net), _last_linear(net)
    if first is None:
        raise InputError(f"controller {label}: expected a network with a Linear layer, found none")
    if first.in_features != obs_dim:
        raise InputError(
            f"controller {label}: expected {obs_dim} inputs (the observation of {env.spec.id}), "
            f"received a network with {first.in_features} inputs"
        )
    if last.out_features != act_dim:
        raise InputError(
            f"controller {label}: expected {act_dim} outputs (the action of {env.spec.id}), "
            f"received a network with {last.out_features} outputs"
        )


# --- closed-loop rollouts ----------------------------------------------------------------------


def _policy_fn(module):
    """observation (numpy) -> action (numpy float32) for a controller module (None: zeros)."""
    import torch

    from .simulate import controller_dtype

    if module is None:
        return None
    dtype = controller_dtype(module, torch.float32)

    def act(obs):
        with torch.no_grad():
            u = module(torch.as_tensor(np.asarray(obs), dtype=dtype))
        return np.asarray(u.detach().cpu().numpy(), dtype=np.float32).reshape(-1)

    return act


@dataclass
class Rollout:
    """One closed-loop episode of a Gymnasium env."""

    times: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    states: np.ndarray
    reference: np.ndarray | None
    speeds: np.ndarray | None = None
    gaps: np.ndarray | None = None
    fail_safe: int = 0


def rollout(
    env,
    controller: Controller,
    *,
    seed: int,
    steps: int | None = None,
    options: dict | None = None,
    progress: Progress | None = None,
) -> Rollout:
    """Run one episode of ``env`` with ``controller`` acting on the observation."""
    act = _policy_fn(controller.module)
    from neuroctl.controllers import StatefulController

    if isinstance(controller.module, StatefulController):  # PI restarts every episode
        controller.module.reset()
    obs, info = reset_env(env, seed=seed, options=options)
    base = env.unwrapped
    from neuroctl.plant import Plant

    plant = getattr(base, "plant", None)
    dt = plant.dt if isinstance(plant, Plant) else 1.0
    horizon = steps if steps is not None else (env.spec.max_episode_steps or 1000)
    obs_l = [obs]
    act_l: list[np.ndarray] = []
    rew_l: list[float] = []
    has_state = isinstance(getattr(base, "state", None), np.ndarray)  # a foreign env may not
    state_l = [np.array(base.state, dtype=float, copy=True)] if has_state else []
    speeds_l, gaps_l, fail_safe = [], [], 0
    if "speeds" in info:
        speeds_l.append(np.asarray(info["speeds"], float))
        gaps_l.append(np.asarray(info["gaps"], float))
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    for _ in range(horizon):
        a = zero if act is None else act(obs)
        if not np.all(np.isfinite(a)):
            raise InputError(
                f"controller {controller.name}: expected finite commands, received "
                f"{np.asarray(a).tolist()} at step {len(act_l)} for the observation "
                f"{np.asarray(obs).tolist()}"
            )
        try:
            obs, reward, terminated, truncated, info = env.step(a)
        except FloatingPointError as exc:  # the env refuses to return non-finite numbers
            raise InputError(
                f"controller {controller.name}: the closed loop diverged at step {len(act_l)} "
                f"({exc})"
            ) from None
        obs_l.append(obs)
        act_l.append(np.asarray(a, float))
        rew_l.append(float(reward))
        if has_state:
            state_l.append(np.array(base.state, dtype=float, copy=True))
        if "speeds" in info:
            speeds_l.append(np.asarray(info["speeds"], float))
            gaps_l.append(np.asarray(info["gaps"], float))
        fail_safe += int(np.any(info.get("failsafe", False)))
        if progress is not None:
            progress.update(1)
        if terminated or truncated:
            break
    ref = getattr(base, "reference", None)
    n = len(obs_l)
    return Rollout(
        times=np.arange(n) * dt,
        observations=np.asarray(obs_l, float),
        actions=np.asarray(act_l, float).reshape(n - 1, -1),
        rewards=np.asarray(rew_l, float),
        states=np.asarray(state_l, float),
        reference=None if ref is None else np.asarray(ref, float),
        speeds=np.asarray(speeds_l) if speeds_l else None,
        gaps=np.asarray(gaps_l) if gaps_l else None,
        fail_safe=fail_safe,
    )


def rollout_metrics(env, ro: Rollout) -> dict:
    """Metrics of a rollout (plain floats): steps and return, then the plant's own figures."""
    out = {"steps": len(ro.rewards), "return": float(ro.rewards.sum())}
    plant = env_plant(env)
    if plant is not None and ro.states.ndim == 2 and ro.states.shape[-1] == plant.n_states:
        out.update(plant.metrics(ro.states, ro.actions, ro.reference))
    if ro.speeds is not None:  # the ring's info: how often the AV's fail-safe overrode it
        out["fail_safe_steps"] = int(ro.fail_safe)
    return out


@dataclass
class EpisodesResult:
    """Closed-loop episodes of one env with one controller: a row of metrics per episode.

    What ``neuroctl simulate`` prints (:meth:`report`) or writes as JSON (:meth:`to_dict`).

    Attributes
    ----------
    env_id : str
        The env's registered id.
    controller : Controller
    rows : list of dict
        One per episode, in order: ``seed``, then :func:`rollout_metrics` of the episode
        (``steps``, ``return``, the plant's own figures, ``fail_safe_steps`` on the ring).
    """

    env_id: str
    controller: Controller
    rows: list[dict]

    @json_dict
    def to_dict(self) -> dict:
        """``{"env", "controller" (its name), "episodes" (the rows)}``, JSON-able."""
        return {"env": self.env_id, "controller": self.controller.name, "episodes": self.rows}

    def report(self) -> str:
        """The env, the controller and its description, then the rows as an aligned table (a
        column per metric, in the order of the rows' keys)."""
        from .report import Table

        title = f"{self.env_id} with {self.controller.name} ({self.controller.description})"
        return f"{title}\n{Table.from_rows(self.rows).to_text()}"


def simulate_episodes(
    env, controller: Controller, *, episodes: int = 1, seed: int = 0, progress: bool | None = False
) -> EpisodesResult:
    """Run ``episodes`` closed-loop episodes and measure each (:func:`rollout_metrics`).

    Episode ``k`` starts from ``env.reset(seed=seed + k)`` and runs until the env ends it (its
    time limit, ``env.spec.max_episode_steps``, or 1000 steps without one).

    Parameters
    ----------
    env : gymnasium.Env
        An env made by ``gymnasium.make`` (or :func:`make_env`); it is left open.
    controller : Controller
        From :func:`load_controller`.
    episodes : int, keyword-only
        Number of episodes, >= 1.
    seed : int, keyword-only
        Seed of the first episode, >= 0.
    progress : bool or None, keyword-only
        A progress bar on stderr; ``None`` shows it when stderr is a terminal.

    Returns
    -------
    EpisodesResult
    """
    if not isinstance(controller, Controller):
        raise TypeError(
            "controller: expected a neuroctl.episodes.Controller (load_controller), received "
            f"{type(controller).__name__}"
        )
    for name, value, low in (("episodes", episodes, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name}: expected an int >= {low}, received {value!r}")
    horizon = env.spec.max_episode_steps or 1000
    rows = []
    with Progress(horizon * int(episodes), "simulate", enabled=progress) as bar:
        for k in range(int(episodes)):
            ro = rollout(env, controller, seed=int(seed) + k, steps=horizon, progress=bar)
            rows.append({"seed": int(seed) + k, **rollout_metrics(env, ro)})
    return EpisodesResult(env.spec.id, controller, rows)


def stability_report(env, module, *, reference=None):
    """``neuroctl.analyze`` of the env's plant with ``module`` at its operating point.

    The plant carries what the analysis needs (its operating points and invariant directions,
    e.g. the ring's common shift), so the default call is right. A control law whose operating
    point the solver does not reach from the plant's nominal points (a flat or saturated law)
    is settled first: the noise-free closed loop runs one episode, then the solve polishes its
    end state (:func:`neuroctl.operating_point` with ``settle=``).
    """
    import neuroctl

    plant = require_plant(env, "analyze")
    kw = {}
    if reference is not None:
        r = np.atleast_1d(np.asarray(reference, float))
        if r.shape != (plant.n_references,):
            raise InputError(
                f"reference: expected {plant.n_references} value(s) for "
                f"{list(plant.reference_names)}, received {r.size}"
            )
        kw["reference"] = r
    try:
        try:
            return neuroctl.analyze(plant, module, **kw)
        except neuroctl.OperatingPointError:
            settle = int(env.spec.max_episode_steps or 1000)
            op = neuroctl.operating_point(plant, module, settle=settle, **kw)
            return neuroctl.analyze(plant, module, op, **kw)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        # finite inputs whose analysis overflows (e.g. -e gravity=1e308): an input error
        raise InputError(
            f"env_kwargs: expected parameters of {env.spec.id} whose closed loop can be "
            f"linearized in float64, received ones for which it overflows ({exc})"
        ) from None


def require_static(ctrl: Controller, what: str) -> None:
    """Analysis and verification need a static map; a controller with internal state is not."""
    from neuroctl.controllers import StatefulController

    if isinstance(ctrl.module, StatefulController):
        raise InputError(
            f"controller {ctrl.name!r}: expected a static controller (a map from observation to "
            f"command) for {what}, received one with internal state (it is reset every episode)"
        )


def verify_query(net, lower, upper, spec, *, timeout: float, seed: int = 0):
    """``neuroctl.verify.check`` with unsupported networks reported as input errors."""
    from neuroctl.verify import check

    try:
        return check(net, lower, upper, spec, timeout=timeout, seed=seed)
    except (NotImplementedError, TypeError) as exc:
        raise InputError(f"controller: expected a network that verify supports, {exc}") from None
