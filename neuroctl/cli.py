"""The ``neuroctl`` command.

Subcommands
-----------
``demo``      the main job on built-in defaults (ring road and arm, stability, one verification
              query), prints the tables and writes an HTML report.
``report``    writes the same report without printing the tables.
``simulate``  runs an env in closed loop with a controller and prints its metrics.
``analyze``   stability of the closed loop at the env's operating point (poles, margins, ...).
``verify``    proves (or refutes with a counterexample) a bound on a ReLU controller's command
              over a box of observations.
``train``     trains a controller (PPO, SAC or differentiable simulation) and analyzes it.

A controller is a built-in name (``neuroctl simulate ENV --controller list`` lists them) or a saved
network: a ``.pt`` state dict with its ``.json`` architecture beside it (as written by
``neuroctl.train``), a Stable-Baselines3 ``.zip``, an ``.onnx`` or an ``.nnet`` file.

Exit codes
----------
0  success; the property holds; the closed loop is stable
1  the property is violated; the closed loop is unstable
2  usage or input error (unknown env, missing or corrupt file, size mismatch, bad option)
3  undecided: verification timed out ("unknown"); stability marginal or depends on the region
4  internal error (a bug: rerun with ``--debug`` for the traceback and please report it)
130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["main", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "EXIT_UNKNOWN", "EXIT_INTERNAL"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

ENV_IDS = ("neuroctl/Arm-v0", "neuroctl/Arm2Link-v0", "neuroctl/RingRoad-v0")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


# --- output helpers ----------------------------------------------------------------------------


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


@runtime_checkable
class _ToDict(Protocol):
    """Results that describe themselves as plain data (reports, trajectories, verdicts)."""

    def to_dict(self) -> dict: ...


def _jsonable(obj: Any) -> Any:
    """Convert numpy / torch / complex / Path values for ``json.dumps``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, (complex, np.complexfloating)):
        return {"real": float(np.real(obj)), "imag": float(np.imag(obj))}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _ToDict):
        return _jsonable(obj.to_dict())
    if type(obj).__module__.startswith("torch"):
        return _jsonable(obj.detach().cpu().numpy())
    return obj


def _print_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), indent=2))


def _table(rows: Sequence[dict], columns: Sequence[str] | None = None, caption: str = "") -> str:
    from .report import Table

    rows = [dict(r) for r in rows]
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    return Table(rows=rows, columns=list(columns), caption=caption or None).to_text()


# --- environments and controllers -------------------------------------------------------------


def _resolve_env_id(env_id: str) -> str:
    import gymnasium as gym

    import neuroctl  # noqa: F401 - registers the ids

    candidates = [env_id, f"neuroctl/{env_id}"]
    for c in candidates:
        if c in gym.envs.registry:
            return c
    raise UsageError(f"unknown environment {env_id!r}: expected one of {', '.join(ENV_IDS)}")


def _parse_kwargs(pairs: Sequence[str] | None) -> dict:
    """``["ring_length=230", "n_av=0"]`` -> ``{"ring_length": 230, "n_av": 0}``."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--env-kwarg: expected KEY=VALUE, received {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a plain string
    return out


def make_env(env_id: str, env_kwargs: dict | None = None):
    """``gymnasium.make`` with input errors turned into :class:`UsageError`."""
    import gymnasium as gym

    env_id = _resolve_env_id(env_id)
    try:
        return gym.make(env_id, **(env_kwargs or {}))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{env_id}: {exc}") from None


def _is_ring(env_id: str) -> bool:
    return "RingRoad" in env_id


def _builtin_controllers(env_id: str) -> dict[str, tuple[str, Callable]]:
    """Built-in controllers of an env: name -> (description, factory(env) -> module or None)."""

    def pretrained(env):
        import neuroctl

        try:
            return neuroctl.pretrained(env.spec.id)
        except (ImportError, AttributeError, FileNotFoundError, KeyError, ValueError) as exc:
            raise UsageError(f"no shipped pretrained policy for {env.spec.id}: {exc}") from None

    if "Arm2Link" in env_id:
        from neuroctl.envs.arm2link import pd_gravity_controller

        return {
            "pd": (
                "PD with gravity compensation",
                lambda env: pd_gravity_controller(env.unwrapped.params),
            ),
            "zero": ("no torque", lambda env: None),
            "pretrained": ("the shipped trained ReLU policy", pretrained),
        }
    if "Arm" in env_id:
        from neuroctl.envs.arm import pd_gravity_controller

        return {
            "pd": (
                "PD with gravity compensation",
                lambda env: pd_gravity_controller(env.unwrapped.params),
            ),
            "zero": ("no torque", lambda env: None),
            "pretrained": ("the shipped trained ReLU policy", pretrained),
        }
    if _is_ring(env_id):
        from neuroctl.envs.ring_road.controllers import (
            FollowerStopper,
            IDMController,
            PISaturation,
        )

        def ring_controller(cls):
            return lambda env: _construct_ring_controller(cls, env)

        return {
            "human": ("no AV: every car is an IDM human (use with n_av=0)", lambda env: None),
            "pretrained": ("the shipped trained ReLU AV policy", pretrained),
            "idm": ("the AV drives like an IDM human", ring_controller(IDMController)),
            "followerstopper": (
                "FollowerStopper (Stern et al. 2018)",
                ring_controller(FollowerStopper),
            ),
            "pi": ("PI with saturation (Stern et al. 2018)", ring_controller(PISaturation)),
        }
    return {"zero": ("no input", lambda env: None)}


def _construct_ring_controller(cls, env):
    """Instantiate a ring AV controller class with the env's parameters where it takes them.

    A target speed ``v_des`` is 90% of the ring's uniform-flow speed (as in
    ``examples/ring_wave.py``): FollowerStopper damps the wave by driving a little slower than
    the flow the humans would settle to.
    """
    import inspect

    from neuroctl.envs.ring_road import uniform_flow_equilibrium

    base = env.unwrapped
    params = base.params
    kwargs = {}
    for name in inspect.signature(cls).parameters:
        if name == "dt":
            kwargs[name] = params.dt
        elif name == "accel_bounds":
            kwargs[name] = tuple(float(b) for b in params.accel_bounds)
        elif name == "v_des":
            _, v = uniform_flow_equilibrium(params, ring_length=base.ring_length)
            kwargs[name] = 0.9 * float(v)
    return cls(**kwargs)


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


def load_network(path: str | Path):
    """Load a saved network (``.pt``+``.json``, SB3 ``.zip``, ``.onnx``, ``.nnet``).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    UsageError
        Missing file, unsupported suffix, or a file that cannot be read as that format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    supported = ".pt (with its .json), .json, .zip (Stable-Baselines3), .onnx, .nnet"
    if suffix not in (".pt", ".json", ".zip", ".onnx", ".nnet"):
        raise UsageError(
            f"controller file {path}: expected one of {supported}, received {suffix!r}"
        )
    if not path.is_file():
        raise UsageError(f"controller file {path}: not found")
    try:
        if suffix in (".pt", ".json"):
            from neuroctl.train.export import load_policy

            if not path.with_suffix(".json").is_file():
                raise UsageError(
                    f"controller file {path}: expected the architecture in "
                    f"{path.with_suffix('.json').name} beside it (as neuroctl.train writes), "
                    "received no such file"
                )
            if not path.with_suffix(".pt").is_file():
                raise UsageError(
                    f"controller file {path}: expected the weights in "
                    f"{path.with_suffix('.pt').name} beside it, received no such file"
                )
            return load_policy(path)
        if suffix == ".zip":
            return _load_sb3(path)
        if suffix == ".onnx":
            from neuroctl.verify import load_onnx

            return load_onnx(path)
        from neuroctl.verify import load_nnet

        return load_nnet(path)
    except UsageError:
        raise
    except ImportError as exc:
        raise UsageError(f"controller file {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse is an input error
        kind = {
            ".pt": "a neuroctl policy",
            ".json": "a neuroctl policy",
            ".zip": "an SB3 model",
            ".onnx": "an ONNX model",
            ".nnet": "an .nnet network",
        }[suffix]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"controller file {path}: expected {kind}, could not read it ({reason})"
        ) from None


def _load_sb3(path: Path):
    try:
        import stable_baselines3 as sb3
    except ImportError:
        raise UsageError(
            f"controller file {path}: reading SB3 models needs stable-baselines3 "
            "(pip install 'neuroctl[rl]')"
        ) from None
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive")
    from neuroctl.train import export_policy

    errors = []
    for algo in ("PPO", "SAC", "TD3", "A2C"):
        try:
            model = getattr(sb3, algo).load(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - try the next algorithm
            errors.append(f"{algo}: {type(exc).__name__}")
            continue
        return export_policy(model, vec_normalize=_load_vec_normalize(path))
    raise ValueError("not a PPO/SAC/TD3/A2C model (" + "; ".join(errors) + ")")


def _load_vec_normalize(model_path: Path):
    """The ``VecNormalize`` statistics saved beside an SB3 model, or None.

    A model trained behind ``VecNormalize`` acts on normalized observations: without them its
    export is not the policy that acted. ``neuroctl train`` saves them as
    ``vecnormalize.pkl`` beside ``checkpoint.zip`` (a pickle, like the SB3 zip itself: load
    files you trust).
    """
    import pickle

    from stable_baselines3.common.vec_env import VecNormalize

    from neuroctl.train.rl import VECNORMALIZE_FILE

    stats = model_path.with_name(VECNORMALIZE_FILE)
    if not stats.is_file():
        return None
    with open(stats, "rb") as f:
        vec_normalize = pickle.load(f)
    if not isinstance(vec_normalize, VecNormalize):
        raise ValueError(
            f"{stats}: expected pickled VecNormalize statistics, "
            f"received {type(vec_normalize).__name__}"
        )
    return vec_normalize


@dataclass
class Controller:
    """A resolved controller: the module (or None for zero input) and how it was named."""

    module: Any
    name: str
    description: str


def load_controller(spec: str, env) -> Controller:
    """A controller from a built-in name or a file, checked against the env's sizes."""
    env_id = env.spec.id
    builtins = _builtin_controllers(env_id)
    if spec in builtins:
        desc, factory = builtins[spec]
        return Controller(factory(env), spec, desc)
    looks_like_file = (
        any(spec.lower().endswith(s) for s in (".pt", ".json", ".zip", ".onnx", ".nnet"))
        or os.sep in spec
    )
    if not looks_like_file:
        raise UsageError(
            f"controller {spec!r}: expected a built-in name for {env_id} "
            f"({', '.join(builtins)}) or a network file (.pt, .zip, .onnx, .nnet)"
        )
    net = load_network(spec)
    check_sizes(net, env, spec)
    return Controller(net, Path(spec).name, f"network from {spec}")


def check_sizes(net, env, label: str) -> None:
    """Raise :class:`UsageError` if the network's input/output sizes do not match the env."""
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    first, last = _first_linear(net), _last_linear(net)
    if first is None:
        raise UsageError(f"controller {label}: expected a network with a Linear layer, found none")
    if first.in_features != obs_dim:
        raise UsageError(
            f"controller {label}: expected {obs_dim} inputs (the observation of {env.spec.id}), "
            f"received a network with {first.in_features} inputs"
        )
    if last.out_features != act_dim:
        raise UsageError(
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
    obs, info = env.reset(seed=seed, options=options)
    base = env.unwrapped
    from neuroctl.plant import Plant

    plant = getattr(base, "plant", None)
    dt = plant.dt if isinstance(plant, Plant) else 1.0
    horizon = steps if steps is not None else (env.spec.max_episode_steps or 1000)
    obs_l, act_l, rew_l = [obs], [], []
    state_l = [np.array(base.state, dtype=float, copy=True)]
    speeds_l, gaps_l, fail_safe = [], [], 0
    if "speeds" in info:
        speeds_l.append(np.asarray(info["speeds"], float))
        gaps_l.append(np.asarray(info["gaps"], float))
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    for _ in range(horizon):
        a = zero if act is None else act(obs)
        obs, reward, terminated, truncated, info = env.step(a)
        obs_l.append(obs)
        act_l.append(np.asarray(a, float))
        rew_l.append(float(reward))
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
    """Env-specific metrics of a rollout (plain floats)."""
    out = {"steps": len(ro.rewards), "return": float(ro.rewards.sum())}
    if ro.speeds is not None:
        from neuroctl.envs.ring_road import ring_metrics

        # the env's warm-up runs inside reset: every recorded sample is after it
        p = env.unwrapped.params
        out.update(ring_metrics(ro.speeds, ro.gaps, vehicle_length=p.vehicle_length).to_dict())
        out.update(
            min_speed=float(ro.speeds.min()),
            max_speed=float(ro.speeds.max()),
            fail_safe_steps=int(ro.fail_safe),
        )
    elif ro.reference is not None and "Arm" in env.spec.id:
        n = ro.reference.size
        err = ro.reference - ro.states[-1, :n]
        speed = ro.states[-1, n : 2 * n]
        out.update(
            final_error=float(np.max(np.abs(err))),
            final_speed=float(np.max(np.abs(speed))),
            reached=bool(np.max(np.abs(err)) < 0.05 and np.max(np.abs(speed)) < 0.1),
            max_abs_action=float(np.max(np.abs(ro.actions))) if ro.actions.size else 0.0,
        )
    return out


# --- commands ----------------------------------------------------------------------------------


def _env_and_controller(args) -> tuple[Any, Controller]:
    env = make_env(args.env, _parse_kwargs(args.env_kwarg))
    if args.controller == "list":
        builtins = _builtin_controllers(env.spec.id)
        lines = [f"  {k:<16} {d}" for k, (d, _) in builtins.items()]
        raise _Listing(f"built-in controllers of {env.spec.id}:\n" + "\n".join(lines))
    return env, load_controller(args.controller, env)


class _Listing(Exception):
    """Not an error: a listing requested by the user (printed, exit 0)."""


def cmd_simulate(args) -> int:
    env, ctrl = _env_and_controller(args)
    if args.episodes < 1:
        raise UsageError(f"--episodes: expected a positive int, received {args.episodes}")
    rows = []
    horizon = args.steps if args.steps is not None else (env.spec.max_episode_steps or 1000)
    with Progress(horizon * args.episodes, "simulate", enabled=args.progress) as bar:
        for k in range(args.episodes):
            ro = rollout(env, ctrl, seed=args.seed + k, steps=args.steps, progress=bar)
            rows.append({"seed": args.seed + k, **rollout_metrics(env, ro)})
    env.close()
    result = {"env": env.spec.id, "controller": ctrl.name, "episodes": rows}
    if args.json:
        _print_json(result)
    else:
        print(f"{env.spec.id} with {ctrl.name} ({ctrl.description})")
        print(_table(rows))
    return EXIT_OK


def ring_uniform_state(env, module) -> np.ndarray:
    """The ring's uniform-flow state with ``module`` driving the AVs (a relative equilibrium).

    All cars at one speed ``v``, every car's acceleration zero, the gaps summing to the ring:
    ``N + 1`` equations for ``v`` and the ``N`` gaps, solved with ``scipy.optimize.root`` on the
    plant's own ``rhs`` (the AV's gap may differ from the humans' when its law differs). Positions
    move at ``v``: the state is an equilibrium of the gaps and speeds, not of the positions.
    """
    import torch
    from scipy.optimize import root

    from neuroctl.envs.ring_road import uniform_flow_equilibrium

    from .simulate import controller_dtype

    base = env.unwrapped
    plant, p = base.plant, base.params
    n, length, car = p.n_vehicles, base.ring_length, p.vehicle_length
    gap0, v0 = uniform_flow_equilibrium(p, ring_length=length)
    dtype = controller_dtype(module, torch.float64)

    def state(z):
        v, gaps = z[0], z[1:]
        q = np.concatenate([[0.0], np.cumsum(gaps[:-1] + car)])
        return np.concatenate([q, np.full(n, v)])

    def residual(z):
        x = state(z)
        if plant.n_inputs and module is not None:
            with torch.no_grad():
                y = torch.as_tensor(plant.observe(x), dtype=dtype)
                u = module(y).double().numpy().reshape(plant.n_inputs)
        else:
            u = np.zeros(plant.n_inputs)
        acc = np.asarray(plant.rhs(x, u), float)[n:]
        return np.concatenate([acc, [z[1:].sum() - (length - n * car)]])

    guess = np.concatenate([[v0], np.full(n, gap0)])
    sol = root(residual, guess, method="lm")
    if not sol.success or np.max(np.abs(residual(sol.x))) > 1e-6:
        # a saturated or flat control law can stall the solver far from the flow it settles
        # to: let the noise-free closed loop run from uniform flow, then polish its end state
        from .simulate import simulate

        x_end = simulate(plant, module, state(guess), 3000).states[-1]
        gaps = (np.roll(x_end[:n], -1) - x_end[:n]) % length - car
        sol = root(residual, np.concatenate([[x_end[n:].mean()], gaps]), method="lm")
    if not sol.success or np.max(np.abs(residual(sol.x))) > 1e-6:
        raise RuntimeError(f"no uniform-flow state found for this controller ({sol.message})")
    return state(sol.x)


def stability_report(env, module, *, reference=None):
    """``neuroctl.analyze`` of the env's plant with ``module`` at its operating point.

    On the ring the operating point is the uniform flow (:func:`ring_uniform_state`), and the
    shift of every position is a neutral direction of the dynamics; it is factored out
    (``invariant=``) so that the verdict is about the gaps and speeds.
    """
    import neuroctl

    plant = env.unwrapped.plant
    kw = {}
    if reference is not None:
        r = np.atleast_1d(np.asarray(reference, float))
        if r.shape != (plant.n_references,):
            raise UsageError(
                f"--target: expected {plant.n_references} value(s) for "
                f"{list(plant.reference_names)}, received {r.size}"
            )
        kw["reference"] = r
    if _is_ring(env.spec.id):
        n = plant.n_states // 2
        kw["invariant"] = np.concatenate([np.ones(n), np.zeros(n)])[:, None]
        from neuroctl.envs.ring_road import uniform_flow_equilibrium

        p, length = env.unwrapped.params, env.unwrapped.ring_length
        gap, v = uniform_flow_equilibrium(p, ring_length=length)
        spacing = float(gap) + p.vehicle_length
        guess = np.concatenate([spacing * np.arange(n), np.full(n, float(v))])
        op = neuroctl.operating_point(plant, module, invariant=kw["invariant"], guess=guess)
        if not op.success:  # e.g. a flat or saturated AV law: settle first, then polish
            x = ring_uniform_state(env, module)
            op = neuroctl.OperatingPoint.at(plant, module, x, invariant=kw["invariant"])
        return neuroctl.analyze(plant, module, op, **kw)
    return neuroctl.analyze(plant, module, **kw)


_VERDICT_EXIT = {"stable": EXIT_OK, "unstable": EXIT_FAIL}


def _static(ctrl: Controller, what: str) -> None:
    """Analysis and verification need a static map; a controller with internal state is not."""
    from neuroctl.controllers import StatefulController

    if isinstance(ctrl.module, StatefulController):
        raise UsageError(
            f"{what}: expected a static controller (a map from observation to command), "
            f"received {ctrl.name!r}, which has internal state (it is reset every episode)"
        )


def cmd_analyze(args) -> int:
    env, ctrl = _env_and_controller(args)
    _static(ctrl, "analyze")
    report = stability_report(env, ctrl.module, reference=args.target)
    env.close()
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = report.plot()
        fig.savefig(args.plot, dpi=90)
        plt.close(fig)
    if args.json:
        _print_json({"env": env.spec.id, "controller": ctrl.name, **report.to_dict()})
    else:
        print(f"{env.spec.id} with {ctrl.name} ({ctrl.description})")
        print(repr(report))
        if args.plot:
            print(f"plot: {args.plot}")
    return _VERDICT_EXIT.get(report.verdict, EXIT_UNKNOWN)


def _box(values, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size == 1:
        arr = np.full(n, float(arr.reshape(())))
    if arr.shape != (n,):
        raise UsageError(f"{what}: expected 1 or {n} values, received {arr.size}")
    return arr


def verify_query(net, lower, upper, spec, *, timeout: float, seed: int = 0):
    """``neuroctl.verify.check`` with unsupported networks reported as input errors."""
    from neuroctl.verify import check

    try:
        return check(net, lower, upper, spec, timeout=timeout, seed=seed)
    except (NotImplementedError, TypeError) as exc:
        raise UsageError(f"verify: {exc}") from None


def cmd_verify(args) -> int:
    from neuroctl.verify import Spec, read_vnnlib

    env, ctrl = _env_and_controller(args)
    if ctrl.module is None:
        raise UsageError(f"verify: controller {ctrl.name!r} is not a network")
    _static(ctrl, "verify")
    n_in = int(np.prod(env.observation_space.shape))
    n_out = int(np.prod(env.action_space.shape))
    queries = []
    if args.vnnlib:
        if not Path(args.vnnlib).is_file():
            raise UsageError(f"--vnnlib {args.vnnlib}: not found")
        try:
            queries = [tuple(q) for q in read_vnnlib(args.vnnlib, n_inputs=n_in, n_outputs=n_out)]
        except (ValueError, NotImplementedError, KeyError, IndexError) as exc:
            raise UsageError(f"--vnnlib {args.vnnlib}: {exc}") from None
    else:
        lo = env.observation_space.low if args.lower is None else _box(args.lower, n_in, "--lower")
        hi = env.observation_space.high if args.upper is None else _box(args.upper, n_in, "--upper")
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UsageError(
                f"verify: the observation box of {env.spec.id} is unbounded; give --lower and "
                "--upper"
            )
        if np.any(lo > hi):
            raise UsageError(f"verify: expected --lower <= --upper, received {lo} and {hi}")
        if args.max_abs is not None:
            bound = _box(args.max_abs, n_out, "--max-abs")
            spec = Spec.output_range(
                n_out,
                lower=-bound,
                upper=bound,
                name="|u| <= " + ", ".join(f"{b:g}" for b in bound),
            )
        elif args.output_lower is not None or args.output_upper is not None:
            ol = (
                None
                if args.output_lower is None
                else _box(args.output_lower, n_out, "--output-lower")
            )
            ou = (
                None
                if args.output_upper is None
                else _box(args.output_upper, n_out, "--output-upper")
            )
            spec = Spec.output_range(n_out, lower=ol, upper=ou, name="output range")
        else:
            a_lo, a_hi = env.action_space.low.astype(float), env.action_space.high.astype(float)
            spec = Spec.output_range(n_out, lower=a_lo, upper=a_hi, name="within the action box")
        queries = [(lo, hi, spec)]
    results = []
    for lo, hi, spec in queries:
        res = verify_query(ctrl.module, lo, hi, spec, timeout=args.timeout, seed=args.seed)
        results.append({"lower": lo, "upper": hi, "spec": repr(spec), "result": res})
    statuses = [r["result"].status for r in results]
    status = (
        "violated" if "violated" in statuses else "unknown" if "unknown" in statuses else "holds"
    )
    env.close()
    if args.json:
        _print_json(
            {
                "env": env.spec.id,
                "controller": ctrl.name,
                "status": status,
                "queries": [
                    {
                        "lower": r["lower"],
                        "upper": r["upper"],
                        "spec": r["spec"],
                        **_jsonable(r["result"].to_dict()),
                    }
                    for r in results
                ],
            }
        )
    else:
        print(f"{env.spec.id} with {ctrl.name}: {status}")
        for r in results:
            res = r["result"]
            print(f"  {r['spec']} on the box {format_box(r['lower'], r['upper'])}")
            print(f"    {res.status} (margin {res.margin:.4g}, {res.time:.2f} s)")
            if res.counterexample is not None:
                print(
                    f"    counterexample: observation {np.round(res.counterexample, 6).tolist()}"
                    f" -> command {np.round(res.output, 6).tolist()}"
                )
    return {"holds": EXIT_OK, "violated": EXIT_FAIL}.get(status, EXIT_UNKNOWN)


def format_box(lower, upper) -> str:
    return " x ".join(f"[{a:.4g}, {b:.4g}]" for a, b in zip(np.ravel(lower), np.ravel(upper)))


def cmd_train(args) -> int:
    from . import ACTIVATIONS

    env_id = _resolve_env_id(args.env)
    if args.activation not in ACTIVATIONS:
        raise UsageError(
            f"--activation: expected one of {', '.join(sorted(ACTIVATIONS))}, "
            f"received {args.activation!r}"
        )
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps: expected a positive int, received {args.steps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: expected a folder, received the file {out}")
    env_kwargs = _parse_kwargs(args.env_kwarg)
    make_env(env_id, env_kwargs).close()  # bad env keywords are input errors, found here
    from neuroctl.train import train

    options = {"env_kwargs": env_kwargs} if env_kwargs else {}
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = train(
        env_id,
        algo=args.algo,
        activation=args.activation,
        steps=args.steps,
        seed=args.seed,
        out_dir=out,
        progress=progress,
        **options,
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        summary = result.report()
        print(summary)
        text = result.summary.get("analysis_text")
        if text and text not in summary:
            print(f"\nanalyze of the exported policy at the operating point of {env_id}:")
            print(text)
        elif result.summary.get("analysis_error"):
            print(f"\nanalyze not available: {result.summary['analysis_error']}")
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _add_env_options(p: argparse.ArgumentParser, *, controller_default: str | None) -> None:
    p.add_argument("env", help="environment id, e.g. neuroctl/Arm-v0 (the prefix is optional)")
    p.add_argument(
        "-c",
        "--controller",
        default=controller_default,
        required=controller_default is None,
        help="built-in name ('list' shows them) or a network file (.pt, .zip, .onnx, .nnet)"
        + (f"; default {controller_default}" if controller_default else ""),
    )
    p.add_argument(
        "-e",
        "--env-kwarg",
        action="append",
        metavar="KEY=VALUE",
        help="keyword for gymnasium.make, e.g. -e ring_length=230 -e n_av=0 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


# --- the demo and its report -------------------------------------------------------------------


def stability_rows(label: str, report) -> list[dict]:
    """One table row per activation region of a StabilityReport."""
    rows = []
    for r in report.regions:
        si = r.step_info or {}
        mg = r.margins or {}
        rows.append(
            {
                "controller": label,
                "region": r.index,
                "verdict": r.verdict,
                ("max Re [1/s]" if report.continuous else "|z| max"): (
                    r.max_real if report.continuous else r.spectral_radius
                ),
                "damping": r.damping,
                "wn [rad/s]": r.natural_frequency,
                "overshoot [%]": si.get("Overshoot"),
                "rise [s]": si.get("RiseTime"),
                "PM [deg]": mg.get("phase_margin"),
                "GM": mg.get("gain_margin"),
            }
        )
    return rows


def slope_controller(activation: str, *, gain: float, weight: float = 1.0, offset: float = 0.5):
    """``u = gain * act(weight * e)`` on the arm observation ``[e, omega, sin, cos]`` as a net.

    ReLU is shifted to be active at ``e = 0`` (``gain * (relu(weight e + offset) - offset)``) and
    the sigmoid is centred (``gain * (sigmoid(weight e) - 1/2)``) so that ``u = 0`` at the target;
    the slopes there are 1 (ReLU, tanh) and 1/4 (sigmoid): the activation-slope table.
    """
    import torch
    from torch import nn

    from .controllers import ACTIVATIONS

    first, last = nn.Linear(4, 1).double(), nn.Linear(1, 1).double()
    shift = {"relu": offset}.get(activation, 0.0)
    centre = {"relu": -gain * offset, "sigmoid": -gain / 2}.get(activation, 0.0)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[weight, 0.0, 0.0, 0.0]]))
        first.bias.fill_(shift)
        last.weight.fill_(gain)
        last.bias.fill_(centre)
    net = nn.Sequential(first, ACTIVATIONS[activation](), last)
    return net.requires_grad_(False)


@dataclass
class _Demo:
    quick: bool
    progress: Progress
    report: Any
    summary: dict
    notes: list

    def note(self, section, text: str) -> None:
        self.notes.append(text)
        section.add_note(text)


def _ring_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    from neuroctl.envs.ring_road import IDMParams, idm_acceleration, uniform_flow_equilibrium
    from neuroctl.envs.ring_road.render import RingTrajectory

    sec = demo.report.section(
        "Ring road: a stop-and-go wave and an automated vehicle",
        "22 cars on a 230 m single-lane ring (Sugiyama et al. 2008), IDM humans with Flow's "
        "parameters and acceleration noise, dt = 0.1 s, 750 warm-up steps, then 300 s recorded "
        "(the quick run records 60 s). The uniform flow is string unstable, so a wave forms; one "
        "automated vehicle (car 0) driven by FollowerStopper (Stern et al. 2018) or by the "
        "shipped neural policy damps it.",
    )
    steps = 600 if demo.quick else 3000
    kw = dict(ring_length=230.0, n_vehicles=22)
    scenarios = [
        ("all human", {"n_av": 0}, "human"),
        ("FollowerStopper", {"n_av": 1}, "followerstopper"),
        ("neural AV (pretrained)", {"n_av": 1}, "pretrained"),
    ]
    rows, trajs, stab_rows, string_rows = [], [], [], []
    for label, extra, ctrl_name in scenarios:
        demo.progress.update(0, note=f"ring: {label}")
        env = make_env("neuroctl/RingRoad-v0", {**kw, **extra})
        try:
            ctrl = load_controller(ctrl_name, env)
        except UsageError as exc:
            demo.note(sec, f"{label}: skipped ({exc})")
            demo.progress.update(1)
            continue
        ro = rollout(env, ctrl, seed=0, steps=steps)
        metrics = rollout_metrics(env, ro)
        rows.append({"scenario": label, **{k: v for k, v in metrics.items() if k != "steps"}})
        p = env.unwrapped.params
        n = p.n_vehicles
        trajs.append(
            RingTrajectory(
                times=ro.times,
                positions=ro.states[:, :n],
                speeds=ro.speeds,
                gaps=ro.gaps,
                ring_length=env.unwrapped.ring_length,
                av_indices=np.asarray(p.av_indices),
                failsafe=np.zeros((len(ro.rewards), p.n_av), bool),
                label=label,
                vehicle_length=p.vehicle_length,
            )
        )
        try:
            rep = stability_report(env, ctrl.module)
            for reg in rep.regions:
                stab_rows.append(
                    {
                        "scenario": label,
                        "region": reg.index,
                        "verdict": reg.verdict,
                        "max Re [1/s]": reg.max_real,
                        "growth [1/s]": reg.growth_rate,
                        "period [s]": reg.period,
                        "damping": reg.damping,
                    }
                )
        except Exception as exc:  # noqa: BLE001 - report what could not be analysed
            demo.note(
                sec, f"{label}: stability analysis not available ({type(exc).__name__}: {exc})"
            )
        env.close()
        demo.progress.update(1)
    # string stability of each car-following law at the uniform-flow equilibrium
    try:
        import functools

        import neuroctl

        gap, speed = uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0)
        laws = [("IDM human", functools.partial(idm_acceleration, params=IDMParams()))]
        for label, _, ctrl_name in scenarios[1:]:
            env = make_env("neuroctl/RingRoad-v0", {**kw, "n_av": 1})
            try:
                laws.append((label, load_controller(ctrl_name, env).module))
            except UsageError:
                pass
            env.close()
        for label, law in laws:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    ss = neuroctl.string_stability(law, gap=float(gap))
                for w in caught:
                    demo.note(sec, f"string stability of {label}: warning {w.message}")
                string_rows.append(
                    {
                        "law": label,
                        "gap [m]": ss.gap,
                        "speed [m/s]": ss.speed,
                        "peak gain": ss.peak_gain,
                        "string stable": ss.string_stable,
                        "Ward-Wilson": ss.ward_wilson,
                    }
                )
            except Exception as exc:  # noqa: BLE001
                demo.note(sec, f"string stability of {label} not available ({exc})")
    except Exception as exc:  # noqa: BLE001
        demo.note(sec, f"string stability not available ({type(exc).__name__}: {exc})")
    if rows:
        sec.add_table(
            rows,
            caption="Simulation metrics after the warm-up (speeds in m/s, gaps in "
            "m, flow in vehicles/h)",
        )
    demo.summary["ring"] = {"metrics": rows, "stability": stab_rows, "string": string_rows}
    if trajs:
        v_max = max(float(t.speeds.max()) for t in trajs)
        fig, axes = plt.subplots(len(trajs), 1, figsize=(9, 3.2 * len(trajs)), squeeze=False)
        for ax, t in zip(axes[:, 0], trajs):
            t.plot(ax=ax, stride=5, v_max=v_max)
        for ax, t in zip(axes[:, 0], trajs):  # plot() titles the figure's first axes
            ax.set_title(t.label)
        fig.tight_layout()
        sec.add_figure(
            fig,
            "ring-space-time",
            caption="Space-time diagrams: each car's position "
            "along the ring, coloured by speed; the wave shows as red bands travelling "
            "backwards. The AV is the black line.",
        )
        fig, axes = plt.subplots(
            len(trajs), 1, sharex=True, sharey=True, figsize=(9, 2.4 * len(trajs)), squeeze=False
        )
        for ax, t in zip(axes[:, 0], trajs):
            ax.plot(t.times, t.speeds, lw=0.5, color="0.6")
            for i in t.av_indices:
                ax.plot(t.times, t.speeds[:, int(i)], lw=1.2, color="C3", label="AV")
            ax.set_ylabel("speed [m/s]")
            ax.set_title(t.label, fontsize=10)
        axes[-1, 0].set_xlabel("time after warm-up [s]")
        fig.tight_layout()
        sec.add_figure(fig, "ring-speeds", caption="Speeds of all cars (grey) and of the AV (red).")
    if stab_rows:
        sec.add_text(
            "Linear stability of the whole ring (44 states) at uniform flow, continuous "
            "model, exact Jacobians; the neutral shift of all positions is factored out. "
            "The all-human uniform flow is unstable (the IDM ring's Jacobian has largest "
            "real part +0.0235 1/s, Ward & Wilson 2011 predict string instability); growth "
            "rate and period are those of the least stable mode."
        )
        sec.add_table(stab_rows, caption="Ring stability at the uniform-flow equilibrium")
    if string_rows:
        sec.add_table(
            string_rows,
            caption="String stability (leader speed to follower speed; stable iff peak gain <= 1)",
        )


def _arm_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    from .simulate import simulate

    sec = demo.report.section(
        "Arm: the activation's slope acts as a proportional gain",
        "A single link, I = 1/3 kg m^2, friction 0.5 N m s/rad, driven by u = k act(w (r - theta)) "
        "with the same weights for ReLU, tanh and sigmoid: at the target the slope is 1 for ReLU "
        "(active side) and tanh, 1/4 for the centred sigmoid. Horizontal arm (no gravity, k w = "
        "4) and upright arm (k_g = -5, k w = 8).",
    )
    # (name, gravity, gain k, initial angle, target): a step for the horizontal arm, a release
    # from 0.1 rad off the balance point for the upright one
    configs = [("horizontal", 0.0, 4.0, 0.0, 0.3), ("upright", -10.0, 8.0, 0.1, 0.0)]
    rows, stab_rows, pole_figs = [], [], []
    steps = 150
    fig_sim, axes_sim = plt.subplots(1, len(configs), figsize=(10, 3.4), squeeze=False)
    for ci, (config, gravity, gain, theta0, target) in enumerate(configs):
        env = make_env(
            "neuroctl/Arm-v0", {"mass": 1.0, "length": 1.0, "friction": 0.5, "gravity": gravity}
        )
        plant = env.unwrapped.plant
        for activation in ("relu", "tanh", "sigmoid"):
            demo.progress.update(0, note=f"arm: {config} {activation}")
            net = slope_controller(activation, gain=gain)
            label = f"{activation} ({config})"
            x0 = np.array([theta0, 0.0])
            traj = simulate(plant, net, x0, steps, reference=np.array([target]))
            theta = traj.states[:, 0]
            dev = theta - target
            rows.append(
                {
                    "arm": config,
                    "activation": activation,
                    "start [rad]": theta0,
                    "target [rad]": target,
                    "final error [rad]": float(-dev[-1]),
                    "max |theta - target| after 1 s": float(np.abs(dev[traj.times >= 1]).max()),
                    "peak [rad]": float(theta.max()),
                    "max |u| [N m]": float(np.abs(traj.inputs).max()),
                }
            )
            axes_sim[0, ci].plot(traj.times, theta, label=activation)
            try:
                rep = stability_report(env, net, reference=[target])
                stab_rows += stability_rows(label, rep)
                fig = rep.plot()
                fig.suptitle(f"{label}: {rep.verdict}")
                fig.tight_layout()
                pole_figs.append((fig, f"arm-{config}-{activation}", label))
            except Exception as exc:  # noqa: BLE001
                demo.note(
                    sec, f"{label}: stability analysis not available ({type(exc).__name__}: {exc})"
                )
        axes_sim[0, ci].axhline(target, color="k", lw=0.8, ls=":")
        axes_sim[0, ci].set_title(f"{config} arm: from {theta0} rad to target {target} rad")
        axes_sim[0, ci].set_xlabel("time [s]")
        axes_sim[0, ci].set_ylabel("theta [rad]")
        axes_sim[0, ci].legend(fontsize=8)
        env.close()
        demo.progress.update(1)
    fig_sim.tight_layout()
    sec.add_table(
        rows, caption="Simulation of the nonlinear plant, 3 s from rest at the start angle"
    )
    sec.add_figure(
        fig_sim,
        "arm-steps",
        caption="Simulated responses (nonlinear plant): higher "
        "slope, faster and more oscillating; the sigmoid's low slope cannot hold the "
        "upright arm.",
    )
    sec.add_table(stab_rows, caption="Linear stability at the target (continuous model)")
    for fig, name, label in pole_figs:
        sec.add_figure(
            fig,
            name,
            half=True,
            caption=f"{label}: closed-loop poles and the step "
            "response of every activation region (linear model)",
        )
    demo.summary["arm"] = {"simulation": rows, "stability": stab_rows}
    _arm_policy_part(demo, sec)


def _arm_policy_part(demo: _Demo, sec) -> None:
    """The shipped ReLU policy of Arm-v0 (gravity on): success rate and stability at a target."""
    env = make_env("neuroctl/Arm-v0")
    try:
        ctrl = load_controller("pretrained", env)
    except UsageError as exc:
        demo.note(sec, f"shipped arm policy: skipped ({exc})")
        env.close()
        return
    try:
        from neuroctl.train import arm_success_rate

        n = 20 if demo.quick else 100
        res = arm_success_rate(ctrl.module, n=n, seed=0)
        target = 0.5
        rep = stability_report(env, ctrl.module, reference=[target])
        sec.add_text(
            "The shipped ReLU policy of neuroctl/Arm-v0 (vertical arm with gravity, trained by "
            "differentiable simulation; a small ReLU network): a target is reached when |error| < "
            "0.05 rad and |speed| < 0.1 rad/s at 3 s. Its closed loop at a target is analysed "
            "with the network's exact local gain."
        )
        sec.add_table(
            [
                {
                    "random targets": res.get("n_targets", n),
                    "reached (fraction)": res.get("success_rate"),
                    "max |error| [rad]": res.get("max_abs_error"),
                    "max |speed| [rad/s]": res.get("max_abs_speed"),
                }
            ],
            caption="Shipped policy on random targets (simulated, nonlinear plant)",
        )
        sec.add_table(
            stability_rows(f"shipped ReLU policy, target {target} rad", rep),
            caption="Shipped policy: linear stability at the target",
        )
        fig = rep.plot()
        fig.suptitle(f"shipped ReLU policy at target {target} rad: {rep.verdict}")
        fig.tight_layout()
        sec.add_figure(
            fig,
            "arm-pretrained",
            caption="Shipped policy: closed-loop poles and the "
            "step response of every activation region at the target",
        )
        demo.summary["arm"]["pretrained"] = {**res, "verdict": rep.verdict}
    except Exception as exc:  # noqa: BLE001
        demo.note(sec, f"shipped arm policy: not available ({type(exc).__name__}: {exc})")
    env.close()


def _verify_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    sec = demo.report.section("Verification: can the controller command a dangerous torque?")
    try:
        from neuroctl.verify import Spec
    except ImportError as exc:
        demo.note(sec, f"verification not available ({exc})")
        demo.progress.update(1)
        return
    env = make_env("neuroctl/Arm-v0")
    max_torque = float(env.action_space.high[0])
    try:
        ctrl = load_controller("pretrained", env)
        what = "the shipped ReLU policy of neuroctl/Arm-v0"
    except UsageError:
        ctrl = Controller(slope_controller("relu", gain=4.0), "relu", "ReLU slope controller")
        what = "the ReLU slope controller (no shipped policy available)"
    # near the target (small error, slow) at any angle of the lower half plane
    theta_lo, theta_hi = -np.pi / 2, np.pi / 2
    lower = np.array([-0.1, -0.5, np.sin(theta_lo), 0.0])
    upper = np.array([0.1, 0.5, np.sin(theta_hi), 1.0])
    bound = 0.9 * max_torque
    spec = Spec.output_range(1, lower=[-bound], upper=[bound], name=f"|u| <= {bound:g} N m")
    sec.add_text(
        f"Query on {what}: for every observation with target error in [-0.1, 0.1] rad, speed in "
        f"[-0.5, 0.5] rad/s and the arm anywhere in the lower half plane (sin theta in [-1, 1], "
        f"cos theta in [0, 1]), does the commanded torque stay within +-{bound:g} N m (90% of "
        f"the actuator limit, a margin kept for disturbances)? Answered by neuroctl.verify.check: "
        "falsification first, then branch and bound with linear-relaxation bounds; 'holds' is a "
        "proof over the whole box (which, being a box, also contains (sin, cos) pairs that no "
        "angle has: the proof covers more than the physical states), 'violated' comes with a "
        "counterexample re-checked in float64."
    )
    try:
        res = verify_query(ctrl.module, lower, upper, spec, timeout=30.0)
    except (UsageError, Exception) as exc:  # noqa: BLE001
        demo.note(sec, f"verification not available ({type(exc).__name__}: {exc})")
        env.close()
        demo.progress.update(1)
        return
    row = {
        "controller": ctrl.name,
        "property": spec.name,
        "status": res.status,
        "margin": res.margin,
        "time [s]": res.time,
    }
    sec.add_table([row], caption="Verification result")
    names = ["error [rad]", "speed [rad/s]", "sin theta", "cos theta"]
    if res.counterexample is not None:
        sec.add_table(
            [
                {"input": n, "lower": a, "upper": b, "counterexample": c}
                for n, a, b, c in zip(names, lower, upper, res.counterexample)
            ],
            caption=f"Counterexample: command {float(np.ravel(res.output)[0]):.4g} N m",
        )
    # the command over the box, sampled, against the bound
    rng = np.random.default_rng(0)
    xs = lower + (upper - lower) * rng.random((4000, 4))
    import torch

    with torch.no_grad():
        dtype = next(ctrl.module.parameters()).dtype
        us = ctrl.module(torch.as_tensor(xs, dtype=dtype)).double().numpy()[:, 0]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(xs[:, 0], us, s=2, alpha=0.4, label="sampled observations")
    ax.axhline(bound, color="C3", lw=1)
    ax.axhline(-bound, color="C3", lw=1, label="bound")
    if res.counterexample is not None:
        ax.plot(res.counterexample[0], np.ravel(res.output)[0], "k*", ms=12, label="counterexample")
    ax.set_xlabel("target error [rad]")
    ax.set_ylabel("command [N m]")
    ax.legend(fontsize=8)
    ax.set_title(f"{spec.name}: {res.status}")
    fig.tight_layout()
    sec.add_figure(
        fig,
        "verify",
        caption="Commands of sampled observations of the box; the proof "
        "covers every observation, the samples only illustrate.",
    )
    demo.summary["verification"] = {
        **row,
        "status": res.status,
        "lower": lower,
        "upper": upper,
        "bound": bound,
        "counterexample": res.counterexample,
        "output": res.output,
    }
    env.close()
    demo.progress.update(1)


def run_demo(args, *, print_tables: bool) -> int:
    """The main job: ring road, arm, verification; writes the report and prints where it is."""
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from .report import Report

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(args.out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "index.html").exists())
    ):
        raise UsageError(
            f"--out {out}: expected a new folder or an earlier report, received an existing "
            "path with other files"
        )
    start = time.perf_counter()
    report = Report(
        "neuroctl demo: neural controllers in closed loop",
        intro="Simulation, stability analysis (exact local gains handed to python-control) and "
        "verification of neural and classical controllers on a traffic ring road and a "
        "robot arm. Every number below was computed by this run.",
    )
    demo = _Demo(
        quick=bool(args.quick),
        progress=Progress(6, "demo", enabled=args.progress),
        report=report,
        summary={},
        notes=[],
    )
    with demo.progress:
        for part in (_ring_section, _arm_section, _verify_section):
            part(demo)
    index = report.write(out)
    elapsed = time.perf_counter() - start
    demo.summary.update(report=str(index), seconds=elapsed, notes=demo.notes)
    if args.json:
        _print_json(demo.summary)
    else:
        if print_tables:
            print(report.to_text())
            print()
        for n in demo.notes:
            print(f"note: {n}")
        print(f"report written to {index} ({elapsed:.1f} s)")
    return EXIT_OK


def cmd_demo(args) -> int:
    return run_demo(args, print_tables=True)


def cmd_report(args) -> int:
    return run_demo(args, print_tables=False)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="neuroctl",
        description="Neural controllers in closed loop: simulate, analyze, verify, train.",
        epilog="exit codes: 0 holds/stable/ok, 1 violated/unstable, 2 usage or input error, "
        "3 unknown/undecided, 4 internal error",
    )
    parser.add_argument("--version", action="version", version=f"neuroctl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def progress_opt(p):
        p.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show a progress bar (default: when stderr is a terminal)",
        )

    p = sub.add_parser(
        "demo", help="the main job: ring road and arm, stability, verification, HTML report"
    )
    p.add_argument("--out", default="neuroctl-report", help="report folder (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="shorter simulations (for tests)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    progress_opt(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="write the demo's HTML report without printing tables")
    p.add_argument("--out", default="neuroctl-report", help="report folder (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="shorter simulations (for tests)")
    progress_opt(p)
    p.set_defaults(func=cmd_report, json=False)

    p = sub.add_parser("simulate", help="run an env in closed loop and print its metrics")
    _add_env_options(p, controller_default=None)
    p.add_argument("--steps", type=int, default=None, help="steps (default: the env's horizon)")
    p.add_argument("--episodes", type=int, default=1, help="episodes, seeds seed..seed+n-1")
    progress_opt(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("analyze", help="stability of the closed loop at the operating point")
    _add_env_options(p, controller_default=None)
    p.add_argument(
        "--target",
        type=float,
        nargs="+",
        default=None,
        help="reference (e.g. the arm's target angle, rad) for the operating point",
    )
    p.add_argument("--plot", metavar="PNG", default=None, help="save the pole map/step plot")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("verify", help="prove a bound on the controller's command over a box")
    _add_env_options(p, controller_default=None)
    p.add_argument(
        "--lower",
        type=float,
        nargs="+",
        default=None,
        help="lower corner of the observation box (default: the env's box)",
    )
    p.add_argument(
        "--upper", type=float, nargs="+", default=None, help="upper corner of the observation box"
    )
    p.add_argument(
        "--max-abs",
        type=float,
        nargs="+",
        default=None,
        help="property: |u_i| <= MAX_ABS for every command (one value or one per command)",
    )
    p.add_argument(
        "--output-lower", type=float, nargs="+", default=None, help="property: u >= OUTPUT_LOWER"
    )
    p.add_argument(
        "--output-upper", type=float, nargs="+", default=None, help="property: u <= OUTPUT_UPPER"
    )
    p.add_argument("--vnnlib", default=None, help="property from a VNN-LIB file instead")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("train", help="train a controller and analyze the exported policy")
    p.add_argument("env", help="environment id")
    p.add_argument("--algo", choices=("ppo", "sac", "diffsim"), default="ppo")
    p.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    p.add_argument(
        "--steps", type=int, default=100_000, help="env steps (RL) or gradient steps (diffsim)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, policy)")
    p.add_argument("-e", "--env-kwarg", action="append", metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    progress_opt(p)
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuroctl`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except _Listing as listing:
        print(listing)
        return EXIT_OK
    except UsageError as exc:
        print(f"neuroctl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"neuroctl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback on --debug
        if args.debug:
            raise
        print(
            f"neuroctl {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
