"""Gymnasium plumbing shared by the neuroctl environments (single env, batched vector env, drawing).

An environment is described by an :class:`EnvModel`: a :class:`neuroctl.Plant` (the physics), a
pure reward function, a sampler of initial states and references, and optionally a drawing
function. The generic :class:`PlantEnv` and :class:`PlantVectorEnv` own only the state, the
reference, the step counters and the random generator; every step calls ``plant.step`` (no physics
lives here). They are public: a plant of your own becomes a Gymnasium environment with
``PlantEnv(EnvModel(plant, reward, box_sampler(low, high)))``, and a natively batched one with
``PlantVectorEnv(model, num_envs)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from operator import le
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from neuroctl._array import as_like, is_torch
from neuroctl.plant import Plant

__all__ = [
    "EnvModel",
    "PlantEnv",
    "PlantVectorEnv",
    "box_sampler",
    "make_params",
    "check_options",
    "option_array",
    "draw_segments",
]


def make_params(params_class: type, params: Any, kwargs: dict) -> Any:
    """Build a frozen ``Params`` object from keywords, naming the valid ones on a misspelling.

    Parameters
    ----------
    params_class : type
        A dataclass.
    params : params_class or None
        A ready-made parameter object (then ``kwargs`` must be empty).
    kwargs : dict
        Keyword overrides of the defaults.
    """
    if params is not None:
        if not isinstance(params, params_class):
            raise TypeError(
                f"params: expected a {params_class.__name__}, received {type(params).__name__}"
            )
        if kwargs:
            return dataclasses.replace(params, **kwargs)
        return params
    valid = [f.name for f in dataclasses.fields(params_class) if f.init]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown keyword(s) {unknown} for {params_class.__name__}; expected some of {valid}"
        )
    return params_class(**kwargs)


def check_options(options: dict | None, accepted) -> dict:
    """``options`` of ``reset`` as a dict, refusing keys outside ``accepted`` (naming them).

    Parameters
    ----------
    options : dict or None
    accepted : sequence of str

    Returns
    -------
    dict
        ``options`` itself (``{}`` for None).

    Raises
    ------
    TypeError
        If ``options`` is not a dict.
    ValueError
        For an unknown key, naming the accepted ones.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options: expected a dict or None, received {type(options).__name__}")
    unknown = sorted(set(options) - set(accepted), key=str)
    if unknown:
        raise ValueError(
            f"options: unknown key(s) {unknown}; expected some of {sorted(accepted)}"
        )
    return options


def option_array(options: dict | None, key: str, default: np.ndarray) -> np.ndarray:
    """Read ``options[key]`` broadcast to the shape of ``default`` (which it replaces).

    Raises a ValueError naming the option if the value does not broadcast or is not finite.
    """
    if not options or key not in options or options[key] is None:
        return default
    if is_torch(default):
        value = as_like(np.asarray(options[key], dtype=np.float64), default)
        try:
            value = value.broadcast_to(default.shape).clone()
        except RuntimeError:
            raise ValueError(
                f"options[{key!r}]: expected shape broadcastable to {tuple(default.shape)}, "
                f"received shape {tuple(value.shape)}"
            ) from None
        return value
    value = np.asarray(options[key], dtype=np.float64)
    try:
        value = np.broadcast_to(value, default.shape).copy()
    except ValueError:
        raise ValueError(
            f"options[{key!r}]: expected shape broadcastable to {default.shape}, "
            f"received shape {value.shape}"
        ) from None
    if not np.isfinite(value).all():
        raise ValueError(f"options[{key!r}]: expected finite numbers, received {options[key]!r}")
    return value


@dataclass(frozen=True)
class EnvModel:
    """Everything an environment needs besides its state.

    Attributes
    ----------
    plant : Plant
        The physics; ``plant.step`` is the only state update.
    reward : callable
        Pure ``reward(x, u, r) -> (...)`` on the state before the step, the saturated input and
        the reference (``r`` has shape ``(..., 0)`` for a plant without references). Written with
        array operations it also runs on torch tensors, and ``neuroctl.train.train_diffsim`` then
        trains on its negative as the cost.
    sample : callable
        ``sample(rng, n, options) -> (x, r)`` with shapes ``(n, n_states)`` and ``(n, n_ref)``
        (see :func:`box_sampler`).
    draw : callable, optional
        ``draw(x, r) -> ndarray (H, W, 3) uint8`` for one state ``(n_states,)``; without it the
        env has no render mode.
    obs_low, obs_high : ndarray, shape (p,), optional
        Observation bounds (float32 Box); default unbounded.
    render_fps : int, optional
        Default ``round(1 / plant.dt)``.
    """

    plant: Plant
    reward: Callable
    sample: Callable
    draw: Callable | None = None
    obs_low: np.ndarray | None = None
    obs_high: np.ndarray | None = None
    render_fps: int | None = None


def box_sampler(state_low, state_high, reference_low=None, reference_high=None) -> Callable:
    """A sampler for :class:`EnvModel`: initial states (and references) uniform in boxes.

    Parameters
    ----------
    state_low, state_high : array_like, shape (n_states,)
        Box of the initial state (equal bounds fix a component).
    reference_low, reference_high : array_like, shape (n_ref,), optional
        Box of the reference drawn at reset (default: no reference).

    Returns
    -------
    callable
        ``sample(rng, n, options) -> (x, r)``. ``reset(options={"state": ..., "reference": ...})``
        overrides the draws (arrays broadcastable to ``(n, n_states)`` and ``(n, n_ref)``).
    """
    lo, hi = _box(state_low, state_high, "state_low, state_high")
    if (reference_low is None) != (reference_high is None):
        raise ValueError("reference_low, reference_high: give both or neither")
    if reference_low is None:
        r_lo = r_hi = np.zeros(0)
    else:
        r_lo, r_hi = _box(reference_low, reference_high, "reference_low, reference_high")

    def sample(rng, n, options):
        check_options(options, ("state", "reference"))
        x = option_array(options, "state", rng.uniform(lo, hi, size=(n, lo.size)))
        r = option_array(options, "reference", rng.uniform(r_lo, r_hi, size=(n, r_lo.size)))
        return x, r

    return sample


def _box(low, high, what: str) -> tuple[np.ndarray, np.ndarray]:
    lo = np.atleast_1d(np.asarray(low, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(high, dtype=np.float64))
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ValueError(
            f"{what}: expected two vectors of the same length, received shapes {lo.shape} and "
            f"{hi.shape}"
        )
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()):
        raise ValueError(f"{what}: expected finite bounds with low <= high, received {lo}, {hi}")
    return lo, hi


def _check_model(model: Any) -> None:
    if not isinstance(model, EnvModel):
        raise TypeError(f"model: expected an EnvModel, received {type(model).__name__}")
    plant = model.plant
    if not isinstance(plant, Plant):
        raise TypeError(f"model.plant: expected a neuroctl.Plant, received {type(plant).__name__}")
    x, r = model.sample(np.random.default_rng(0), 2, None)
    x, r = np.asarray(x), np.asarray(r)
    if x.shape != (2, plant.n_states) or r.shape != (2, plant.n_references):
        raise ValueError(
            f"model.sample(rng, 2, None): expected shapes (2, {plant.n_states}) and "
            f"(2, {plant.n_references}), received {x.shape} and {r.shape}"
        )


def _observation_bounds(model: EnvModel) -> tuple[np.ndarray, np.ndarray]:
    p = model.plant.n_outputs
    lo = np.full(p, -np.inf) if model.obs_low is None else np.asarray(model.obs_low, float)
    hi = np.full(p, np.inf) if model.obs_high is None else np.asarray(model.obs_high, float)
    if lo.shape != (p,) or hi.shape != (p,):
        raise ValueError(
            f"obs_low, obs_high: expected shape ({p},) (the plant's outputs), received "
            f"{lo.shape} and {hi.shape}"
        )
    # bounds beyond float32 are unbounded in float32 (set without the cast's overflow warning)
    big = _FLOAT32_MAX
    lo = np.where(lo < -big, -np.inf, lo).astype(np.float32)
    hi = np.where(hi > big, np.inf, hi).astype(np.float32)
    return lo, hi


def _render_metadata(cls_metadata: dict, model: EnvModel) -> dict:
    fps = model.render_fps or max(1, round(1.0 / model.plant.dt))
    modes = list(cls_metadata["render_modes"]) if model.draw is not None else []
    return {**cls_metadata, "render_modes": modes, "render_fps": fps}


def _validate_render_mode(render_mode, modes):
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode: expected one of {modes} or None, received {render_mode!r}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _not_finite(env, x, u, x_next, obs, reward, copy=None) -> None:
    """Raise for a step that produced a non-finite state, observation or reward."""
    where = "" if copy is None else f" (copy {copy})"
    name = env.spec.id if getattr(env, "spec", None) is not None else type(env).__name__
    raise FloatingPointError(
        f"{name} step{where}: expected finite numbers (observations within float32), but the "
        "step from state "
        f"{np.asarray(x).tolist()} with input {np.asarray(u).tolist()} gave state "
        f"{np.asarray(x_next).tolist()}"
        + ("" if obs is None else f", observation {np.asarray(obs).tolist()}")
        + f" and reward {float(reward)}: the plant's dynamics diverged (bound its state, e.g. "
        "a speed limit in post_step=, or end the episode before); the state is left as it was"
    )


class PlantEnv(gym.Env):
    """Single Gymnasium environment around an :class:`EnvModel`.

    The state is ``plant``'s, the observation ``plant.observe(x, r)`` (float32), the action the
    plant input (clipped to its bounds; a non-finite action raises ``ValueError``), the reward
    ``model.reward`` on the state before the step. No termination; wrap in
    ``gymnasium.wrappers.TimeLimit`` (or register with ``max_episode_steps``) for episodes.
    Every step checks that the new state, its observation and the reward are finite: if not, it
    raises ``FloatingPointError`` (naming the state and action) and keeps the last finite state,
    so that no non-finite number ever reaches a learner.

    Parameters
    ----------
    model : EnvModel
        Checked at construction: its plant's functions were probed when the plant was built
        (output shapes, numpy and torch; see :class:`neuroctl.Plant`), and its sampler is
        called once, with a generator of its own, to check the shapes it returns against the
        plant's.
    render_mode : {"rgb_array", None}
        Available when ``model.draw`` is given.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, model: EnvModel, render_mode: str | None = None):
        _check_model(model)
        self._setup(model, None, render_mode)

    def _setup(self, model: EnvModel, params: Any, render_mode: str | None) -> None:
        self.metadata = _render_metadata(type(self).metadata, model)
        _validate_render_mode(render_mode, self.metadata["render_modes"])
        self.model = model
        self.params = params
        self.plant = model.plant
        self.render_mode = render_mode
        plant = model.plant
        self.action_space = spaces.Box(
            plant.input_lower.astype(np.float32),
            plant.input_upper.astype(np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Box(*_observation_bounds(model), dtype=np.float32)
        self._m = plant.n_inputs
        self._u_shape = (plant.n_inputs,)
        self._advance = plant.advance
        self._observe = plant.observe
        self._saturate = plant.saturate
        self._u_lower = plant.input_lower.tolist()
        self._u_upper = plant.input_upper.tolist()
        self._reward = model.reward
        self.state: np.ndarray | None = None
        self.reference: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        x, r = self.model.sample(self.np_random, 1, options)
        self.state, self.reference = x[0], r[0]
        return self._observe(self.state, self.reference).astype(np.float32), {}

    def step(self, action):
        if self.state is None:
            raise RuntimeError("step: expected a call of reset() before the first step()")
        u = np.asarray(action, dtype=np.float64)
        if u.shape != self._u_shape:
            if u.size != self._m:
                raise ValueError(f"action: expected shape {self._u_shape}, received {u.shape}")
            u = u.reshape(self._u_shape)
        values = u.tolist()  # Python floats: cheaper than numpy calls on a tiny array
        if not all(map(math.isfinite, values)):
            raise ValueError(f"action: expected finite numbers, received {action!r}")
        # saturate once (the reward and the plant both use the applied input), and only when
        # needed: inside the bounds the clip is the identity
        if not (all(map(le, self._u_lower, values)) and all(map(le, values, self._u_upper))):
            u = self._saturate(u)
        x, r = self.state, self.reference
        reward = float(self._reward(x, u, r))
        x_next = self._advance(x, u)
        obs = self._observe(x_next, r)
        # finite, and in float32's range (checked before the cast, which would overflow to
        # inf): one sum of magnitudes is False for a NaN, an infinity or an entry past the range
        # (and for entries summing past it, ~1e38: no physical observation)
        if not (math.isfinite(reward) and sum(map(abs, obs.tolist())) <= _FLOAT32_MAX):
            _not_finite(self, x, u, x_next, obs, reward)
        self.state = x_next
        return obs.astype(np.float32), reward, False, False, {}

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        if self.state is None:
            raise RuntimeError("render: expected a call of reset() before render()")
        return self.model.draw(self.state, self.reference)


def _action_matrix(u, num_envs: int, m: int):
    """The actions ``u`` (numpy array or tensor) as a ``(num_envs, m)`` matrix; a ValueError
    naming the shape received when they cannot be reshaped to it."""
    if tuple(u.shape) == (num_envs, m):
        return u
    try:
        return u.reshape(num_envs, m)
    except (ValueError, RuntimeError):  # numpy's and torch's reshape errors
        raise ValueError(
            f"actions: expected shape ({num_envs}, {m}), received {tuple(u.shape)}"
        ) from None


class PlantVectorEnv(VectorEnv):
    """Natively batched vector environment: all copies step in one ``plant.step`` call.

    Autoreset follows Gymnasium's default next-step mode: the step after a copy is truncated
    (or terminated) resets it, ignores its action and returns its reset observation with reward
    0. ``options["reset_mask"]`` (bool array, shape ``(num_envs,)``) in :meth:`reset` resets only
    the masked copies.

    ``PlantVectorEnv(model, num_envs, max_episode_steps=...)`` batches a plant of one's own (the
    model is checked as by :class:`PlantEnv`). A step whose new state or reward is not finite
    for some copy raises ``FloatingPointError`` naming the copy, as :class:`PlantEnv` does.

    **Torch tensors on any device.** ``device="cpu"``, ``"cuda"`` or a ``torch.device`` keeps
    the state, the reference, the random draws, the rewards and the step counters as torch
    tensors on that device, in ``dtype`` (``"float64"``, the default, or ``"float32"``), and
    steps them with the same plant functions as the numpy path (the physics is written once).
    ``array="torch"`` (default with a device) returns observations, rewards and the
    terminated/truncated flags as tensors on the device; ``array="numpy"`` copies them to numpy
    arrays (observations float32) at the end of each step. Actions may be tensors or arrays.
    Random stream: one ``torch.Generator`` on the device per vector env, seeded at
    ``reset(seed=s)`` with ``s`` (without a seed, with a draw of the env's ``np_random``);
    every reset and autoreset draws a full batch of initial states from it and keeps the draws
    of the copies being reset, so the stream depends only on the seed and the number of resets,
    not on which copies were done. To stay free of host synchronisation inside the step loop the
    torch path does not check each step for non-finite values (check ``env.state`` yourself).
    Without ``device`` the env is the numpy one, unchanged.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 50,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        model: EnvModel,
        num_envs: int = 1,
        *,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        device=None,
        dtype: str = "float64",
        array: str | None = None,
    ):
        _check_model(model)
        self._setup(model, None, num_envs, max_episode_steps, render_mode, device, dtype, array)

    def _setup(
        self,
        model: EnvModel,
        params: Any,
        num_envs: int,
        max_episode_steps: int | None,
        render_mode: str | None,
        device=None,
        dtype: str = "float64",
        array: str | None = None,
    ) -> None:
        self._torch = torch_options(device, dtype, array)
        if not (isinstance(num_envs, (int, np.integer)) and num_envs > 0):
            raise ValueError(f"num_envs: expected a positive int, received {num_envs!r}")
        if max_episode_steps is not None and not (
            isinstance(max_episode_steps, (int, np.integer)) and max_episode_steps > 0
        ):
            raise ValueError(
                "max_episode_steps: expected a positive int or None, "
                f"received {max_episode_steps!r}"
            )
        self.metadata = _render_metadata(type(self).metadata, model)
        _validate_render_mode(render_mode, self.metadata["render_modes"])
        self.model = model
        self.params = params
        self.plant = model.plant
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        plant = model.plant
        self.single_action_space = spaces.Box(
            plant.input_lower.astype(np.float32),
            plant.input_upper.astype(np.float32),
            dtype=np.float32,
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.Box(*_observation_bounds(model), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.state: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._no_term = np.zeros(self.num_envs, dtype=bool)
        if self._torch is not None:
            import torch

            dev, tdtype, _ = self._torch
            self._generator = torch.Generator(device=dev)
            self._steps = torch.zeros(self.num_envs, dtype=torch.int64, device=dev)
            self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=dev)
            self._no_term = torch.zeros(self.num_envs, dtype=torch.bool, device=dev)

    def _obs(self, u=None, reward=None):
        obs = self.plant.observe(self.state, self.reference)
        if u is not None:
            ok = (np.abs(obs) <= _FLOAT32_MAX).all(axis=-1)  # False for NaN too
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                _not_finite(self, self.state[i], u[i], self.state[i], obs[i], reward[i], copy=i)
        return obs.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._torch is not None:
            return self._reset_torch(seed, options)
        options = dict(options) if options else {}
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask']: expected a bool array of shape ({self.num_envs},), "
                    f"received {mask.dtype} array of shape {mask.shape}"
                )
        if mask is None or self.state is None:
            self.state, self.reference = self.model.sample(self.np_random, self.num_envs, options)
            self._steps[:] = 0
            self._prev_done[:] = False
        else:
            x, r = self.model.sample(self.np_random, int(mask.sum()), options)
            self.state[mask], self.reference[mask] = x, r
            self._steps[mask] = 0
            self._prev_done[mask] = False
        return self._obs(), {}

    def step(self, actions):
        if self.state is None:
            raise RuntimeError("step: expected a call of reset() before the first step()")
        if self._torch is not None:
            return self._step_torch(actions)
        m = self.plant.n_inputs
        u = _action_matrix(np.asarray(actions, dtype=np.float64), self.num_envs, m)
        if not np.isfinite(u).all():
            bad = np.flatnonzero(~np.isfinite(u).all(axis=-1))
            raise ValueError(
                f"actions: expected finite numbers, received non-finite actions for envs {bad}"
            )
        u = self.plant.saturate(u)
        reward = np.asarray(self.model.reward(self.state, u, self.reference), dtype=np.float64)
        x_next = self.plant.advance(self.state, u)
        ok = np.isfinite(x_next).all(axis=-1) & np.isfinite(reward)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            _not_finite(self, self.state[i], u[i], x_next[i], None, reward[i], copy=i)
        self.state = x_next
        self._steps += 1
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self._steps >= self.max_episode_steps
        terminated = self._no_term.copy()
        done = self._prev_done
        if done.any():
            x, r = self.model.sample(self.np_random, int(done.sum()), None)
            self.state[done], self.reference[done] = x, r
            self._steps[done] = 0
            reward[done] = 0.0
            truncated[done] = False
        self._prev_done = terminated | truncated
        return self._obs(u, reward), reward, terminated, truncated, {}

    # ----------------------------------------------------------------- torch path
    def _sample_torch(self, options):
        """A full batch of initial states and references drawn from the env's generator."""
        dev, dtype, _ = self._torch
        x, r = self.model.sample(TorchRandom(self._generator, dev, dtype), self.num_envs, options)
        return as_like(x, self._like), as_like(r, self._like)

    def _reset_torch(self, seed, options):
        import torch

        dev, dtype, _ = self._torch
        self._like = torch.zeros((), dtype=dtype, device=dev)
        seed_generator(self._generator, seed, self.np_random, first=self.state is None)
        options = dict(options) if options else {}
        mask = options.pop("reset_mask", None)
        x, r = self._sample_torch(options)
        if mask is None or self.state is None:
            self.state, self.reference = x, r
            self._steps.zero_()
            self._prev_done.zero_()
        else:
            mask = torch.as_tensor(np.asarray(mask) if not is_torch(mask) else mask, device=dev)
            if tuple(mask.shape) != (self.num_envs,) or mask.dtype != torch.bool:
                raise ValueError(
                    f"options['reset_mask']: expected a bool array of shape ({self.num_envs},), "
                    f"received {mask.dtype} array of shape {tuple(mask.shape)}"
                )
            self.state = torch.where(mask[:, None], x, self.state)
            self.reference = torch.where(mask[:, None], r, self.reference)
            self._steps.masked_fill_(mask, 0)
            self._prev_done.masked_fill_(mask, False)
        obs = self.plant.observe(self.state, self.reference)
        return torch_outputs(self._torch[2], obs)[0], {}

    def _step_torch(self, actions):
        import torch

        dev, dtype, _ = self._torch
        m = self.plant.n_inputs
        u = actions if is_torch(actions) else torch.as_tensor(np.asarray(actions, dtype=float))
        u = _action_matrix(u, self.num_envs, m)
        u = self.plant.saturate(u.to(device=dev, dtype=dtype))
        reward = self.model.reward(self.state, u, self.reference)
        x_next = self.plant.advance(self.state, u)
        self._steps += 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(self._prev_done)
        else:
            truncated = self._steps >= self.max_episode_steps
        terminated = self._no_term.clone()
        done = self._prev_done
        # the copies done last step restart: a full batch is drawn so that the step has no
        # data-dependent shape (no host synchronisation) and the stream does not depend on `done`
        x, r = self._sample_torch(None)
        self.state = torch.where(done[:, None], x, x_next)
        self.reference = torch.where(done[:, None], r, self.reference)
        self._steps.masked_fill_(done, 0)
        reward = torch.where(done, torch.zeros_like(reward), reward)
        truncated = truncated & ~done
        self._prev_done = terminated | truncated
        obs = self.plant.observe(self.state, self.reference)
        return (*torch_outputs(self._torch[2], obs, reward, terminated, truncated), {})

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        if self.state is None:
            raise RuntimeError("render: expected a call of reset() before render()")
        return tuple(self.model.draw(x, r) for x, r in zip(self.state, self.reference))


# ----------------------------------------------------------------------------- torch
_ARRAYS = ("torch", "numpy")
_DTYPES = ("float32", "float64")


def torch_options(device, dtype, array):
    """Check a vector env's ``device``, ``dtype`` and ``array`` arguments.

    Returns
    -------
    None (the numpy path: ``device`` is None) or ``(torch.device, torch.dtype, array)``.
    """
    if device is None:
        if array not in (None, "numpy"):
            raise ValueError(
                f"array: expected 'numpy' or None without a device, received {array!r}"
            )
        return None
    import torch

    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(
            f"device: expected None, 'cpu', 'cuda' or a torch.device, received {device!r}"
        ) from None
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {_DTYPES}, received {dtype!r}")
    array = "torch" if array is None else array
    if array not in _ARRAYS:
        raise ValueError(f"array: expected one of {_ARRAYS}, received {array!r}")
    return dev, getattr(torch, dtype), array


def seed_generator(generator, seed, np_random, *, first: bool) -> None:
    """Seed a torch vector env's ``torch.Generator`` at ``reset(seed=seed)``.

    With a seed, ``generator.manual_seed(seed)``; without one, at the env's first reset
    (``first``), with a draw of its ``np_random`` (itself seeded by Gymnasium); otherwise the
    stream goes on.
    """
    if seed is not None:
        generator.manual_seed(int(seed))
    elif first:
        generator.manual_seed(int(np_random.integers(2**62)))


def torch_outputs(array: str, obs, *rest) -> tuple:
    """What a torch vector env hands out: ``(obs, *rest)`` unchanged for ``array="torch"``;
    copied to numpy arrays for ``array="numpy"`` (the observation in float32, the rest in
    their dtype)."""
    if array == "torch":
        return (obs, *rest)
    return (obs.detach().cpu().numpy().astype(np.float32),) + tuple(
        t.detach().cpu().numpy() for t in rest
    )


class TorchRandom:
    """The ``uniform`` / ``normal`` draws of a numpy ``Generator``, from a ``torch.Generator``.

    What the samplers of :class:`EnvModel` call (``rng.uniform(low, high, size)``), returning
    tensors of ``dtype`` on ``device`` drawn from ``generator`` (which lives on that device).
    """

    def __init__(self, generator, device, dtype):
        self.generator, self.device, self.dtype = generator, device, dtype

    def _size(self, size):
        return (size,) if isinstance(size, (int, np.integer)) else tuple(size)

    def _t(self, value):
        import torch

        return torch.as_tensor(np.asarray(value, dtype=float), dtype=self.dtype, device=self.device)

    def uniform(self, low=0.0, high=1.0, size=1):
        import torch

        z = torch.rand(
            self._size(size), generator=self.generator, dtype=self.dtype, device=self.device
        )
        low = self._t(low)
        return low + (self._t(high) - low) * z

    def normal(self, loc=0.0, scale=1.0, size=1):
        import torch

        z = torch.randn(
            self._size(size), generator=self.generator, dtype=self.dtype, device=self.device
        )
        return self._t(loc) + self._t(scale) * z

    def standard_normal(self, size=1, dtype=None):
        """``torch.randn(size)`` in ``dtype`` (a torch dtype; default the generator's)."""
        import torch

        return torch.randn(
            self._size(size),
            generator=self.generator,
            dtype=dtype or self.dtype,
            device=self.device,
        )

    def integers(self, low, high, size=1):
        """Integers uniform in ``low .. high - 1`` (numpy's ``Generator.integers``), int64."""
        import torch

        return torch.randint(
            int(low), int(high), self._size(size), generator=self.generator, device=self.device
        )


# ----------------------------------------------------------------------------- drawing
_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def draw_segments(
    segments,
    *,
    extent: float,
    size: tuple[int, int] = (256, 256),
    background=(255, 255, 255),
) -> np.ndarray:
    """Rasterize thick line segments and discs with numpy (no display, no extra dependency).

    Parameters
    ----------
    segments : iterable of (p0, p1, width, rgb)
        End points ``p0, p1`` in metres (world frame, y up, origin at the image centre), width in
        metres, colour as three ints 0..255. A disc is a segment with ``p0 == p1``.
    extent : float
        Half the side of the square world window in metres.
    size : (H, W)
        Image size in pixels.

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
    """
    h, w = size
    if (h, w) not in _GRIDS:
        py, px = np.mgrid[0:h, 0:w].astype(np.float64)
        _GRIDS[(h, w)] = ((px + 0.5) / w * 2 - 1, 1 - (py + 0.5) / h * 2)
    gx, gy = _GRIDS[(h, w)]
    gx, gy = gx * extent, gy * extent
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.asarray(background, dtype=np.uint8)
    for p0, p1, width, rgb in segments:
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        ll = dx * dx + dy * dy
        t = 0.0 if ll == 0 else np.clip(((gx - x0) * dx + (gy - y0) * dy) / ll, 0.0, 1.0)
        d2 = (gx - x0 - t * dx) ** 2 + (gy - y0 - t * dy) ** 2
        img[d2 <= (width / 2) ** 2] = np.asarray(rgb, dtype=np.uint8)
    return img


def reach_metrics(states: np.ndarray, inputs: np.ndarray, r: np.ndarray) -> dict:
    """A reaching arm's figures of a run: how close it came to rest at the target.

    For states ``[angles (k), angular speeds (k)]`` and a target of ``k`` angles (a plant's
    ``metrics=``).

    Parameters
    ----------
    states : ndarray, shape (T + 1, 2k)
        rad, rad/s.
    inputs : ndarray, shape (T, m)
        Torques applied, N m.
    r : ndarray, shape (k,)
        Target angles, rad.

    Returns
    -------
    dict
        ``final_error`` (largest ``|r - q|`` at the end, rad), ``final_speed`` (largest
        ``|q̇|`` at the end, rad/s), ``reached`` (within 0.05 rad and 0.1 rad/s) and
        ``max_abs_action`` (N m).
    """
    k = r.size
    err = float(np.max(np.abs(r - states[-1, :k])))
    speed = float(np.max(np.abs(states[-1, k : 2 * k])))
    return {
        "final_error": err,
        "final_speed": speed,
        "reached": bool(err < 0.05 and speed < 0.1),
        "max_abs_action": float(np.max(np.abs(inputs))) if inputs.size else 0.0,
    }
