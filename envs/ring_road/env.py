"""Gymnasium environments of the ring road: ``RingRoadEnv`` and the batched ``RingRoadVectorEnv``.

Both own only the state, the ring length and the random generator; they step through the ring's
:class:`neuroctl.Plant` (:func:`~neuroctl.envs.ring_road.dynamics.ring_plant`), the one copy of
the physics: ``env.unwrapped.plant.step`` is the env's map.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from neuroctl._array import is_torch

from .._common import TorchRandom, _action_matrix, seed_generator, torch_options, torch_outputs
from .dynamics import (
    HEADWAY_SCALE,
    GapCache,
    Params,
    _NoiseBlocks,
    acceleration_noise,
    ring_gaps,
    ring_observation,
    ring_plant,
    ring_reward,
    ring_step_info,
)

__all__ = ["RingRoadEnv", "RingRoadVectorEnv", "make_params", "rollout"]

_FIELDS = tuple(f.name for f in dataclasses.fields(Params))


def make_params(params: Params | None = None, **overrides) -> Params:
    """A :class:`Params` from ``params`` (default ``Params()``) with keyword overrides.

    Unknown keywords raise ``TypeError`` naming the accepted ones.
    """
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise TypeError(f"unknown keyword(s) {unknown}; expected some of {list(_FIELDS)}")
    base = Params() if params is None else params
    if not isinstance(base, Params):
        raise TypeError(f"params: expected a ring_road Params, received {base!r}")
    return dataclasses.replace(base, **overrides) if overrides else base


def _spaces(p: Params):
    lo, hi = p.accel_bounds
    action_space = spaces.Box(lo, hi, shape=(p.n_av,), dtype=np.float32)
    # speeds up to 75 m/s and gaps up to the ring length (at least 1350 m) fit the bounds
    top = max(5.0, p.length_range[1] / HEADWAY_SCALE)
    if p.observation == "full":
        n = p.n_vehicles
        low = np.zeros(2 * n, dtype=np.float32)
        high = np.concatenate([np.full(n, 5.0), np.full(n, top)]).astype(np.float32)
    else:
        low = np.tile(np.array([0.0, -5.0, 0.0], dtype=np.float32), p.n_av)
        high = np.tile(np.array([5.0, 5.0, top], dtype=np.float32), p.n_av)
    obs_space = spaces.Box(low, high, dtype=np.float32)
    return action_space, obs_space


_NO_ACTION = np.zeros(0)
_NO_ACTION.flags.writeable = False


def _check_action(action, m: int, lo: float, hi: float) -> np.ndarray:
    if m == 0 and type(action) is np.ndarray and action.size == 0 and action.ndim <= 1:
        return _NO_ACTION
    if m == 1 and type(action) is np.ndarray and action.shape == (1,):  # one AV: the cheapest
        t = float(action.item(0))
        if not math.isfinite(t):
            raise ValueError(f"action: expected finite accelerations, received {action}")
        return np.array([min(max(t, lo), hi)])
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (m,):
        if a.size == m and a.ndim <= 1:
            a = a.reshape(m)
        else:
            raise ValueError(f"action: expected shape ({m},), received shape {a.shape}")
    vals = a.tolist()
    if not all(map(math.isfinite, vals)):
        raise ValueError(f"action: expected finite accelerations, received {a}")
    return np.array([min(max(t, lo), hi) for t in vals])


def _initial_state(p: Params, L: float, options: dict | None):
    n = p.n_vehicles
    options = {} if options is None else dict(options)
    unknown = set(options) - {"positions", "speeds", "ring_length"}
    if unknown:
        raise ValueError(
            f"options: unknown key(s) {sorted(unknown)}; expected 'positions', 'speeds', "
            "'ring_length'"
        )
    if "positions" in options:
        q = np.asarray(options["positions"], dtype=float)
        if q.shape != (n,) or not np.isfinite(q).all():
            raise ValueError(
                f"options['positions']: expected {n} finite positions in metres, received "
                f"{options['positions']!r}"
            )
        q = q % L
    else:
        q = _evenly_spaced(n, L)
    if "speeds" in options:
        v = np.asarray(options["speeds"], dtype=float)
        if v.shape != (n,) or not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(
                f"options['speeds']: expected {n} finite non-negative speeds in m/s, received "
                f"{options['speeds']!r}"
            )
    else:
        v = np.zeros(n)
    gaps = ring_gaps(q, L, p.vehicle_length)
    if (gaps < 0).any() or not np.isclose(gaps.sum() + n * p.vehicle_length, L):
        raise ValueError(
            "options['positions']: cars overlap or are not in ring order (car i+1 must be the "
            f"leader of car i); gaps {np.round(gaps, 3)} m on a ring of {L} m"
        )
    return np.concatenate([q, v])


def _evenly_spaced(n: int, L):
    """Positions ``i L / n`` (m) of ``n`` cars evenly spaced on a ring of length ``L`` (m).

    ``L`` a float gives shape ``(n,)``; a tensor of lengths, shape ``(k,)``, gives ``(k, n)``
    on its device, in its dtype.
    """
    if is_torch(L):
        import torch

        return torch.arange(n, dtype=L.dtype, device=L.device) * (L[:, None] / n)
    return np.arange(n) * (L / n)


def _warm_up(p: Params, x, car_lengths, rng, dtype):
    """``p.warmup_steps`` steps of the rings ``x`` (shape ``(k, 2N)``, lengths laid out per car,
    shape ``(k, N)``) with the AVs driving as noise-free humans and the humans' noise drawn from
    ``rng`` every step (numpy arrays, or tensors with a :class:`TorchRandom`)."""
    advance = ring_plant(p, car_lengths).advance
    k = x.shape[0]
    for _ in range(p.warmup_steps):  # u=None: the AVs drive as noise-free humans
        x = advance(x, None, acceleration_noise(rng, p, (k,), dtype))
    return x


def _ring_length(p: Params, rng, options: dict | None, size=None):
    """Ring length(s) of a reset, m: ``options["ring_length"]``, the fixed length, or integers
    drawn from ``rng`` (a numpy ``Generator``, or a :class:`TorchRandom`: then a float64 tensor
    on its device); a float, or shape ``(size,)``."""
    if options is not None and "ring_length" in options:
        L = np.asarray(options["ring_length"], dtype=float)
        if (
            (size is None and L.ndim)
            or not np.isfinite(L).all()
            or (L <= p.n_vehicles * p.vehicle_length).any()
        ):
            raise ValueError(
                "options['ring_length']: expected a length (one per copy for a vector env) "
                f"> {p.n_vehicles * p.vehicle_length:g} m, received {options['ring_length']!r}"
            )
        return float(L) if size is None else np.broadcast_to(L, (size,)).astype(float)
    lo, hi = p.length_range
    if lo == hi:
        return lo if size is None else np.full(size, lo)
    # Flow draws an integer length uniformly from lo..hi at every reset
    draw = rng.integers(math.ceil(lo), math.floor(hi) + 1, size=size)
    if size is None:
        return float(draw)
    return draw.double() if is_torch(draw) else draw.astype(float)


class RingRoadEnv(gym.Env):
    """Single-lane ring road with human drivers and automated vehicles (Sugiyama 2008, Flow).

    ## Description

    ``N`` cars drive around a single-lane ring of length ``L``. Humans follow the Intelligent
    Driver Model (or an optimal-velocity model) with Flow's acceleration noise; on a 22-car,
    230 m ring uniform flow is string unstable and a stop-and-go wave forms without any
    bottleneck (Sugiyama et al. 2008). The agent drives the automated vehicles (AVs) by their
    accelerations, as in Flow's ``WaveAttenuationPOEnv`` (``singleagent_ring``): the goal is to
    dissipate the wave. Defaults: 21 humans + 1 AV, ``L`` an integer drawn from 220..270 m at
    every reset, cars 5 m long, ``dt = 0.1`` s, 750 warm-up steps, 3000-step episodes.

    Cars are numbered in ring order: the leader of car ``i`` is car ``i + 1 mod N``. The AVs are
    cars ``floor(k N / n_av)``, ``k = 0..n_av-1`` -- with one AV, car 0.

    Update (SUMO's default Euler, as Flow): ``v' = max(v + a dt, 0)``, ``x' = x + v' dt``. No car
    ever overlaps its leader: every car's step is limited to its gap, and an AV command that
    would leave the AV unable to stop behind its leader (braking at ``failsafe_decel``) is cut
    by a fail-safe (Krauss' safe speed); ``info["failsafe"]`` tells when it acted. The fail-safe
    may brake harder than the action bound.

    ## Action Space

    ``Box(-1, 1, (n_av,), float32)``: acceleration of each AV in m/s^2. Actions outside the box
    are clipped to it (the reward uses the clipped action); a non-finite action raises
    ``ValueError``. With ``n_av=0`` the action has shape ``(0,)``.

    ## Observation Space

    ``observation="partial"`` (Flow), ``Box(shape=(3 n_av,), float32)``; per AV:

    | index | observation                 | unit           |
    |-------|-----------------------------|----------------|
    | 3k    | ``v_av / 15``               | (m/s) / 15     |
    | 3k+1  | ``(v_lead - v_av) / 15``    | (m/s) / 15     |
    | 3k+2  | ``headway / 270``           | m / 270        |

    (headway = bumper-to-bumper gap to the leader). ``observation="full"``:
    ``Box(shape=(2N,))`` with all speeds ``/15`` then all gaps ``/270``, in ring order. Box
    bounds: speeds ``[0, 5]`` (75 m/s), speed differences ``[-5, 5]``, gaps
    ``[0, max(5, L_max/270)]``.

    ## Rewards

    Flow's ``4 mean(v) / 20 - 4 mean|a_av|`` (all cars' speeds after the step, clipped AV
    actions); nothing is paid during the warm-up, which runs inside ``reset``.

    ## Starting State

    Cars evenly spaced and at rest; then ``warmup_steps`` steps in which the AVs drive as
    noise-free humans. ``reset(options={"positions": q, "speeds": v, "ring_length": L})`` sets
    the positions (m, ring order), speeds (m/s) and ring length before the warm-up (pass
    ``warmup_steps=0`` to start exactly there).

    ## Episode End

    Never terminates (no crash is possible); truncated after 3000 steps by the ``TimeLimit``
    set at registration.

    ## Info

    ``speeds`` (m/s) and ``gaps`` (m) of all cars in ring order, ``failsafe`` (bool per AV),
    ``accelerations`` (applied, m/s^2), ``ring_length`` (m).

    ## Arguments

    ``gymnasium.make("neuroctl/RingRoad-v0", n_vehicles=22, n_av=1, ring_length=(220, 270),
    noise=0.2, warmup_steps=750, human_model="idm", observation="partial", render_mode=None)``;
    any other field of :class:`~neuroctl.envs.ring_road.dynamics.Params` is accepted too, or a
    whole ``params=Params(...)``. A number ``ring_length`` fixes the length. ``human_model="ovm"``
    uses the optimal-velocity model whose uniform-flow flux is the hinge flux. Unknown keywords
    raise ``TypeError``; invalid values raise ``ValueError`` saying what was expected.
    The noise is drawn from ``np_random`` for 128 steps at a time: the same numbers as one draw
    per step, with the generator ahead by the steps not yet taken.
    ``render_mode="rgb_array"`` draws the ring with cars coloured by speed (no display needed).

    ``env.unwrapped.plant`` is the :class:`neuroctl.Plant` of the current ring (rebuilt when the
    length changes at reset); ``env.unwrapped.state`` the state ``[positions, speeds]``;
    ``env.unwrapped.ring_length`` the length in metres. :func:`rollout` records a run as a
    :class:`~neuroctl.envs.ring_road.render.RingTrajectory` (metrics, ``to_dict``, and a
    space-time diagram as ``plot()``).

    ## Example

    >>> import gymnasium as gym, numpy as np, neuroctl
    >>> env = gym.make("neuroctl/RingRoad-v0", ring_length=230.0, warmup_steps=100)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
    >>> obs.shape, info["speeds"].shape, info["gaps"].shape
    ((3,), (22,), (22,))

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, *, params: Params | None = None, render_mode: str | None = None, **kw):
        self.params = p = make_params(params, **kw)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected None or one of {self.metadata['render_modes']}, "
                f"received {render_mode!r}"
            )
        self.render_mode = render_mode
        self.action_space, self.observation_space = _spaces(p)
        self._n = p.n_vehicles
        self._m = p.n_av
        self._lo, self._hi = p.accel_bounds
        self._av = p.av_indices
        self._length = float(p.length_range[0] if p.length_range[0] == p.length_range[1] else 230)
        self._plant = None
        self._plant_length = None
        self.state = None
        self._gaps = None
        self._veh_length = p.vehicle_length
        # the plant the env steps: the ring plant, reusing the gaps computed for the observation
        self._cache = GapCache()
        self._physics = None
        self._physics_length = None
        self._noise = None

    # ------------------------------------------------------------------ properties
    @property
    def ring_length(self) -> float:
        """Current ring length, m."""
        return self._length

    @property
    def plant(self):
        """The :class:`neuroctl.Plant` of the current ring (its length as of the last reset)."""
        if self._plant is None or self._plant_length != self._length:
            self._plant = ring_plant(self.params, self._length)
            self._plant_length = self._length
        return self._plant

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        p = self.params
        self._length = _ring_length(p, self.np_random, options)
        x = _initial_state(p, self._length, options)
        if self._physics is None or self._physics_length != self._length:
            self._physics = ring_plant(p, self._length, gap_cache=self._cache)
            self._physics_length = self._length
        advance = self._physics.advance
        # the noise of many steps drawn at once (the same numbers as one draw per step)
        self._noise = _NoiseBlocks(self.np_random, p) if p.noise else None
        for _ in range(p.warmup_steps):  # u=None: the AVs drive as noise-free humans
            x = advance(x, None, self._step_noise())
        self.state = x
        self._gaps = ring_gaps(x[: self._n], self._length, p.vehicle_length)
        self._cache.set(x, self._gaps)
        return self._obs(), self._info(np.zeros(self._n), np.zeros(self._m, dtype=bool))

    def step(self, action):
        if self.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = _check_action(action, self._m, self._lo, self._hi)
        n = self._n
        x = self._physics.advance(self.state, a, self._step_noise())  # a is saturated already
        acc, failsafe = ring_step_info(self.state, x, a, self.params)
        self.state = x
        self._gaps = gaps = ring_gaps(x[:n], self._length, self._veh_length)
        self._cache.set(x, gaps)
        v = x[n:]
        reward = ring_reward(v, a)
        obs = ring_observation(x, self._length, self.params, gaps=gaps).astype(np.float32)
        info = {
            "speeds": v,
            "gaps": gaps,
            "failsafe": failsafe,
            "accelerations": acc,
            "ring_length": self._length,
        }
        return obs, reward, False, False, info

    def _step_noise(self):
        noise = self._noise
        if noise is None:
            return None
        if noise.rng is not self._np_random:  # np_random was replaced: draw from the new one
            noise = self._noise = _NoiseBlocks(self.np_random, self.params)
        return noise()

    def _obs(self):
        return ring_observation(self.state, self._length, self.params, gaps=self._gaps).astype(
            np.float32
        )

    def _info(self, acc, failsafe):
        n = self._n
        return {
            "speeds": self.state[n:],
            "gaps": self._gaps,
            "failsafe": failsafe,
            "accelerations": acc,
            "ring_length": self._length,
        }

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        if self.state is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        from .render import render_ring

        n = self._n
        return render_ring(self.state[:n], self.state[n:], self._length, av_indices=self._av)


class RingRoadVectorEnv(VectorEnv):
    """``num_envs`` ring roads stepped together in one array operation (no Python loop).

    Same arguments, spaces and dynamics as :class:`RingRoadEnv`; each copy draws its own ring
    length at reset, and the batched step is the ring plant's
    (:func:`~neuroctl.envs.ring_road.dynamics.ring_plant`) on states of shape ``(num_envs, 2N)``
    with lengths of shape ``(num_envs,)``. Episodes are truncated after ``max_episode_steps``
    (3000 when made through ``gymnasium.make_vec``) and reset on the next step (gymnasium 1.x
    ``AutoresetMode.NEXT_STEP``: that step returns the first observation of the new episode,
    reward 0; the copies being reset are not stepped).

    ``info`` holds ``speeds``, ``gaps`` (``(num_envs, N)``), ``failsafe`` (``(num_envs, n_av)``),
    ``accelerations`` and ``ring_length`` (``(num_envs,)``). ``reset(options=...)`` accepts the
    single-env keys with a leading ``num_envs`` axis (``ring_length`` of shape ``(num_envs,)``).
    ``plant`` is the batched :class:`neuroctl.Plant` (per-copy lengths) as of the last reset.

    ``dtype="float32"`` keeps the state (and ``info``'s arrays and the rewards) in single
    precision: the same physics at about half the memory traffic, for training at scale. Positions
    are then resolved to about 3e-5 m on rings of 256..512 m, so the gaps may dip below 0 by that
    much where float64 gives exactly 0; the default ``"float64"`` agrees with the single env to
    rounding.

    **Torch tensors on any device**, as the arms' vector envs
    (:class:`~neuroctl.envs.PlantVectorEnv`). ``device="cpu"``, ``"cuda"`` or a
    ``torch.device`` keeps the state, the ring lengths, the random draws, the rewards, the
    episode counters and ``info``'s arrays as torch tensors on that device, in ``dtype`` (the
    lengths in float64), and runs reset (lengths, initial positions and speeds, warm-up), step,
    fail-safe, wrapping, rewards and autoreset there, with the same ring functions as the numpy
    path (the physics is written once). ``array="torch"`` (default with a device) returns
    observations, rewards, terminated/truncated and ``info`` as tensors on the device;
    ``array="numpy"`` copies them to numpy arrays (observations float32) at the end of each step.
    Actions may be tensors or arrays; they are clipped to the action box, and (to stay free of
    host synchronisation) neither they nor the states are checked for non-finite values.

    Random stream (torch): one ``torch.Generator`` on the device per vector env, seeded at
    ``reset(seed=s)`` with ``s`` (without a seed, at the first reset, with a draw of the env's
    ``np_random``). A reset and an autoreset draw, for the whole batch, the ring lengths
    (``torch.randint(ceil(lo), floor(hi) + 1, (num_envs,))``, unless fixed or given in
    ``options``) and then, for each warm-up step, the noise; every step then draws the noise
    ``sqrt(dt) * noise * torch.randn(num_envs, N)`` (float32 normals, scaled in ``dtype``, m/s^2;
    nothing is drawn with ``noise=0``). All copies start their episodes together (reset acts on
    the whole batch and the ring never terminates), so the env knows on the host when the
    autoreset step comes: only that step (one in ``max_episode_steps``) runs the warm-up of fresh
    rings and checks their lengths on the host; the other steps have no host synchronisation.
    ``reset`` with ``positions`` or ``speeds`` in ``options`` checks them on the host. Without
    ``device`` the env is the numpy one, unchanged; on CPU in float64 the two agree to 1e-12 over
    1000 steps with autoresets for the same lengths, initial states and noise
    (``tests/test_ring_torch.py``).
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        params: Params | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        device=None,
        dtype: str | type = "float64",
        array: str | None = None,
        **kw,
    ):
        if not (isinstance(num_envs, (int, np.integer)) and num_envs >= 1):
            raise ValueError(f"num_envs: expected an int >= 1, received {num_envs!r}")
        if max_episode_steps is not None and not (
            isinstance(max_episode_steps, (int, np.integer)) and max_episode_steps >= 1
        ):
            raise ValueError(
                f"max_episode_steps: expected None or an int >= 1, received {max_episode_steps!r}"
            )
        self.params = p = make_params(params, **kw)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected None or one of {self.metadata['render_modes']}, "
                f"received {render_mode!r}"
            )
        try:
            self.dtype = np.dtype(dtype) if dtype is not None else None
        except TypeError:
            self.dtype = None
        if self.dtype is None or self.dtype.name not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', received {dtype!r}")
        self._torch = torch_options(device, self.dtype.name, array)
        self.render_mode = render_mode
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.single_action_space, self.single_observation_space = _spaces(p)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self._n, self._m = p.n_vehicles, p.n_av
        self._lo, self._hi = p.accel_bounds
        B = self.num_envs
        self.state = np.zeros((B, 2 * self._n), dtype=self.dtype)
        self.lengths = np.full(B, 230.0)
        self._car_lengths = np.full((B, self._n), 230.0, dtype=self.dtype)
        self._gaps = None
        self._elapsed = np.zeros(B, dtype=np.int64)
        self._autoreset = np.zeros(B, dtype=bool)
        self._plant = None
        self._plant_lengths = None
        # the plant the env steps: lengths laid out per car, and the gaps of the observation
        self._cache = GapCache()
        self._physics = None
        if self._torch is not None:
            import torch

            dev, tdtype, _ = self._torch
            self._generator = torch.Generator(device=dev)
            self._rng = TorchRandom(self._generator, dev, tdtype)
            self.state = torch.zeros((B, 2 * self._n), dtype=tdtype, device=dev)
            self.lengths = torch.full((B,), 230.0, dtype=torch.float64, device=dev)
            self._car_lengths = torch.full((B, self._n), 230.0, dtype=tdtype, device=dev)
            self._elapsed = torch.zeros(B, dtype=torch.int64, device=dev)
            self._autoreset = torch.zeros(B, dtype=torch.bool, device=dev)
            # the episodes' common step count, on the host (see the class docstring)
            self._episode_steps = 0

    @property
    def plant(self):
        """Batched :class:`neuroctl.Plant` with the per-copy ring lengths of the last reset."""
        if is_torch(self.lengths):
            import torch

            same, copy = torch.equal, self.lengths.clone
        else:
            same, copy = np.array_equal, self.lengths.copy
        if self._plant is None or not same(self._plant_lengths, self.lengths):
            self._plant = ring_plant(self.params, copy())
            self._plant_lengths = copy()
        return self._plant

    def _reset_rows(self, rows: np.ndarray, options: dict | None):
        p = self.params
        k = len(rows)
        opts = {} if options is None else dict(options)
        L = _ring_length(p, self.np_random, opts if "ring_length" in opts else None, size=k)
        if "ring_length" in opts:
            L = np.broadcast_to(np.asarray(opts["ring_length"], float), (self.num_envs,))[rows]
        car_lengths = np.repeat(np.asarray(L, dtype=self.dtype)[:, None], p.n_vehicles, axis=1)
        x = _initial_states(p, L, opts, rows, self.dtype)
        x = _warm_up(p, x, car_lengths, self.np_random, self.dtype)
        self.state[rows] = x
        self.lengths[rows] = L
        # the lengths laid out per car: same-shape operations in the step are cheaper than
        # broadcasting a column
        self._car_lengths[rows] = car_lengths
        self._physics = ring_plant(p, self._car_lengths.copy(), gap_cache=self._cache)
        self._elapsed[rows] = 0

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None
        super().reset(seed=seed)
        unknown = set(options or {}) - {"positions", "speeds", "ring_length"}
        if unknown:
            raise ValueError(
                f"options: unknown key(s) {sorted(unknown)}; expected 'positions', 'speeds', "
                "'ring_length'"
            )
        if self._torch is not None:
            return self._reset_torch(seed, options)
        rows = np.arange(self.num_envs)
        # a fresh state array: the speeds handed out in earlier infos are views of the old one
        self.state = self.state.copy()
        self._reset_rows(rows, options)
        self._autoreset[:] = False
        n = self._n
        self._gaps = ring_gaps(self.state[:, :n], self._car_lengths, self.params.vehicle_length)
        self._cache.set(self.state, self._gaps)
        acc = np.zeros((self.num_envs, n), dtype=self.dtype)
        fs = np.zeros((self.num_envs, self._m), dtype=bool)
        return self._obs(), self._info(acc, fs)

    def step(self, actions):
        if self._torch is not None:
            return self._step_torch(actions)
        B, m, n = self.num_envs, self._m, self._n
        p = self.params
        a = np.asarray(actions, dtype=self.dtype)
        if a.shape != (B, m):
            if a.size == B * m:
                a = a.reshape(B, m)
            else:
                raise ValueError(f"actions: expected shape ({B}, {m}), received {a.shape}")
        if m and not np.isfinite(a).all():
            raise ValueError("actions: expected finite accelerations, received non-finite values")
        a = a.clip(self._lo, self._hi)
        w = acceleration_noise(self.np_random, p, (B,), self.dtype)
        x = self._physics.advance(self.state, a, w)  # a is saturated already
        acc, failsafe = ring_step_info(self.state, x, a, p)
        reward = ring_reward(x[:, n:], a)
        done = self._autoreset
        if done.any():
            rows = np.flatnonzero(done)
            keep = ~done
            self.state = np.where(keep[:, None], x, self.state)
            self._reset_rows(rows, None)
            reward[rows] = 0.0
            acc[rows] = 0.0
            failsafe[rows] = False
        else:
            self.state = x
        self._elapsed += 1
        self._elapsed[done] = 0
        self._gaps = ring_gaps(self.state[:, :n], self._car_lengths, p.vehicle_length)
        self._cache.set(self.state, self._gaps)
        terminated = np.zeros(B, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = self._elapsed >= self.max_episode_steps
        else:
            truncated = np.zeros(B, dtype=bool)
        self._autoreset = terminated | truncated
        return self._obs(), reward, terminated, truncated, self._info(acc, failsafe)

    def _obs(self):
        return ring_observation(self.state, self.lengths, self.params, gaps=self._gaps).astype(
            np.float32
        )

    def _info(self, acc, failsafe):
        # a read-only view, not a copy: the step replaces self.state by a new array (and reset
        # copies it before writing), so the speeds handed out never change afterwards
        speeds = self.state[:, self._n :]
        speeds.flags.writeable = False
        return {
            "speeds": speeds,
            "gaps": self._gaps,
            "failsafe": failsafe,
            "accelerations": acc,
            "ring_length": self.lengths.copy(),
        }

    # ----------------------------------------------------------------- torch path
    def _new_rings_torch(self, options: dict | None):
        """Fresh rings for the whole batch, on the device: lengths ``(num_envs,)`` (float64),
        the lengths laid out per car ``(num_envs, N)`` and the states after the warm-up
        ``(num_envs, 2N)`` (in ``dtype``), drawn from the env's generator."""
        import torch

        p, B, n = self.params, self.num_envs, self._n
        dev, tdtype, _ = self._torch
        opts = {} if options is None else options
        L = _ring_length(p, self._rng, opts if "ring_length" in opts else None, size=B)
        L = torch.as_tensor(L, dtype=torch.float64, device=dev)
        if "positions" in opts or "speeds" in opts:  # checked on the host, as the numpy path
            x = _initial_states(p, L.cpu().numpy(), opts, np.arange(B), np.float64)
            x = torch.as_tensor(x, device=dev)
        else:
            x = torch.cat([_evenly_spaced(n, L), torch.zeros_like(L[:, None].expand(B, n))], 1)
        car_lengths = L[:, None].to(tdtype).expand(B, n).contiguous()
        x = _warm_up(p, x.to(tdtype), car_lengths, self._rng, tdtype)
        return L, car_lengths, x

    def _reset_torch(self, seed, options):
        import torch

        seed_generator(self._generator, seed, self.np_random, first=self._physics is None)
        self.lengths, self._car_lengths, self.state = self._new_rings_torch(options)
        self._physics = ring_plant(self.params, self._car_lengths, gap_cache=self._cache)
        self._elapsed.zero_()
        self._autoreset.zero_()
        self._episode_steps = 0
        n = self._n
        self._gaps = ring_gaps(self.state[:, :n], self._car_lengths, self.params.vehicle_length)
        self._cache.set(self.state, self._gaps)
        acc = torch.zeros_like(self.state[:, n:])
        fs = torch.zeros((self.num_envs, self._m), dtype=torch.bool, device=self.state.device)
        obs = ring_observation(self.state, self.lengths, self.params, gaps=self._gaps)
        return self._out_torch(obs, acc, fs)[0:2]

    def _step_torch(self, actions):
        import torch

        if self._physics is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        B, m, n = self.num_envs, self._m, self._n
        p = self.params
        dev, tdtype, _ = self._torch
        a = actions if is_torch(actions) else torch.as_tensor(np.asarray(actions, dtype=float))
        a = _action_matrix(a, B, m).to(device=dev, dtype=tdtype).clamp(self._lo, self._hi)
        w = acceleration_noise(self._rng, p, (B,), tdtype)
        x = self._physics.advance(self.state, a, w)  # a is saturated already
        acc, failsafe = ring_step_info(self.state, x, a, p)
        reward = ring_reward(x[:, n:], a)
        done = self._autoreset
        autoreset = self.max_episode_steps is not None and (
            self._episode_steps >= self.max_episode_steps
        )
        if autoreset:  # every copy's episode ended last step (see the class docstring)
            lengths, car_lengths, fresh = self._new_rings_torch(None)
            x = torch.where(done[:, None], fresh, x)
            self.lengths = torch.where(done, lengths, self.lengths)
            self._car_lengths = torch.where(done[:, None], car_lengths, self._car_lengths)
            self._physics = ring_plant(p, self._car_lengths, gap_cache=self._cache)
            reward = reward.masked_fill(done, 0.0)
            acc = acc.masked_fill(done[:, None], 0.0)
            failsafe = failsafe & ~done[:, None]
        self._episode_steps = 0 if autoreset else self._episode_steps + 1
        self.state = x
        self._elapsed += 1
        self._elapsed.masked_fill_(done, 0)
        self._gaps = ring_gaps(self.state[:, :n], self._car_lengths, p.vehicle_length)
        self._cache.set(self.state, self._gaps)
        terminated = torch.zeros_like(done)
        if self.max_episode_steps is not None:
            truncated = self._elapsed >= self.max_episode_steps
        else:
            truncated = torch.zeros_like(done)
        self._autoreset = terminated | truncated
        obs = ring_observation(self.state, self.lengths, p, gaps=self._gaps)
        return self._out_torch(obs, acc, failsafe, reward, terminated, truncated)

    def _out_torch(self, obs, acc, failsafe, *rest):
        """``(obs, *rest, info)`` as handed out (tensors, or numpy with ``array="numpy"``)."""
        info = {
            "speeds": self.state[:, self._n :],
            "gaps": self._gaps,
            "failsafe": failsafe,
            "accelerations": acc,
            "ring_length": self.lengths.clone(),
        }
        out = torch_outputs(self._torch[2], obs, *rest, *info.values())
        return (*out[: 1 + len(rest)], dict(zip(info, out[1 + len(rest) :])))

    def render(self):
        """Images of all rings (``render_mode="rgb_array"``): a tuple of ``(H, W, 3)`` arrays."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        from .render import render_ring

        n = self._n
        states, lengths = self.state, self.lengths
        if is_torch(states):
            states, lengths = states.detach().cpu().numpy(), lengths.cpu().numpy()
        return tuple(
            render_ring(x[:n], x[n:], float(L), av_indices=self.params.av_indices)
            for x, L in zip(states, lengths)
        )


def _initial_states(p: Params, lengths, options: dict, rows: np.ndarray, dtype) -> np.ndarray:
    """Initial states ``(k, 2N)`` of the copies ``rows`` of a vector env on rings of
    ``lengths`` (numpy, shape ``(k,)``, m), from ``reset``'s options (leading ``num_envs``
    axis), checked as the single env's."""
    x = np.empty((len(rows), 2 * p.n_vehicles), dtype=dtype)
    for j in range(len(rows)):
        one = {
            key: np.asarray(options[key])[rows[j]]
            for key in ("positions", "speeds")
            if key in options
        }
        x[j] = _initial_state(p, float(lengths[j]), one)
    return x


def rollout(env, controller=None, steps: int = 3000, *, seed=None, options=None, label=""):
    """Run a single ring env for ``steps`` steps and record a :class:`RingTrajectory`.

    Parameters
    ----------
    env : RingRoadEnv or a wrapper of it
    controller : callable, optional
        Applied to each AV's partial observation as a float64 tensor of shape ``(n_av, 3)``,
        returning accelerations ``(n_av, 1)`` (e.g. :class:`FollowerStopper`); its ``reset()`` is
        called first if it has one. ``None`` sends zero accelerations. With
        ``observation="full"`` the controller receives the full observation, shape ``(2N,)``.
    steps : int
    seed, options
        Passed to ``env.reset``.
    label : str

    Returns
    -------
    RingTrajectory
        Times start at 0 at the end of the warm-up.
    """
    import torch

    from .render import RingTrajectory

    base = env.unwrapped
    p = base.params
    from neuroctl.controllers import StatefulController

    if isinstance(controller, StatefulController):
        controller.reset()
    obs, info = env.reset(seed=seed, options=options)
    n, m = p.n_vehicles, p.n_av
    qs, vs, gs, fs = [base.state[:n].copy()], [info["speeds"].copy()], [info["gaps"].copy()], []
    for _ in range(steps):
        if controller is None or m == 0:
            a = np.zeros(m)
        else:
            y = torch.as_tensor(np.asarray(obs, dtype=np.float64))
            if p.observation == "partial":
                y = y.reshape(m, 3)
            with torch.no_grad():
                a = controller(y).detach().numpy().reshape(m)
        obs, _, _, _, info = env.step(a)
        qs.append(base.state[:n].copy())
        vs.append(info["speeds"].copy())
        gs.append(info["gaps"].copy())
        fs.append(np.asarray(info["failsafe"], dtype=bool).copy())
    return RingTrajectory(
        times=np.arange(steps + 1) * p.dt,
        positions=np.array(qs),
        speeds=np.array(vs),
        gaps=np.array(gs),
        ring_length=base.ring_length,
        av_indices=p.av_indices,
        failsafe=np.array(fs).reshape(steps, m),
        label=label,
        vehicle_length=p.vehicle_length,
    )
