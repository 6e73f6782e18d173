"""Stable-Baselines3 ``VecEnv`` over a natively batched Gymnasium vector env.

neuroctl's envs have vector versions that step every copy in one array operation
(``gymnasium.make_vec(id, vectorization_mode="vector_entry_point")``). They use Gymnasium's
next-step autoreset; SB3 expects the finished copy to be reset in the same step, with its last
observation in ``info["terminal_observation"]``. This adapter resets finished copies at once,
with ``reset(options={"reset_mask": done})`` where the env supports it (``PlantVectorEnv``),
or with a full ``reset()`` when all copies finish together (the ring road, whose episodes all
have the same length). It also adds the ``info["episode"]`` statistics that SB3's ``Monitor``
would.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NativeVecEnv", "make_sb3_vec_env"]


def make_sb3_vec_env(env_id: str, *, n_envs: int, seed: int, env_kwargs: dict | None = None):
    """An SB3 ``VecEnv``: the native vector env when the id has one, else a ``DummyVecEnv``."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    if spec.vector_entry_point is not None:
        venv = gym.make_vec(
            env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {})
        )
        return NativeVecEnv(venv, seed=seed)
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs or {})


def NativeVecEnv(venv, *, seed: int | None = None):  # noqa: N802 - a class factory
    """Wrap a Gymnasium ``VectorEnv`` (next-step autoreset) as an SB3 ``VecEnv``."""
    # imported here, not at module level: Stable-Baselines3 is an optional extra
    from stable_baselines3.common.vec_env import VecEnv

    class _Native(VecEnv):
        def __init__(self):
            self.venv = venv
            self._first_seed = seed
            self._actions = None
            n = venv.num_envs
            self._ret = np.zeros(n)
            self._len = np.zeros(n, dtype=np.int64)
            super().__init__(n, venv.single_observation_space, venv.single_action_space)

        def reset(self):
            s = self._seeds[0] if self._seeds[0] is not None else self._first_seed
            self._first_seed = None
            obs, _ = self.venv.reset(seed=s)
            self._reset_seeds()
            self._reset_options()
            self._ret[:] = 0.0
            self._len[:] = 0
            return np.asarray(obs, dtype=np.float32)

        def step_async(self, actions):
            self._actions = np.asarray(actions)

        def step_wait(self):
            obs, rew, term, trunc, _ = self.venv.step(self._actions)
            obs = np.asarray(obs, dtype=np.float32)
            rew = np.asarray(rew, dtype=np.float32)
            done = np.asarray(term) | np.asarray(trunc)
            self._ret += rew
            self._len += 1
            infos = [{} for _ in range(self.num_envs)]
            if done.any():
                for i in np.flatnonzero(done):
                    infos[i]["terminal_observation"] = obs[i].copy()
                    infos[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                    infos[i]["episode"] = {"r": float(self._ret[i]), "l": int(self._len[i])}
                if done.all():
                    new, _ = self.venv.reset()
                else:
                    new, _ = self.venv.reset(options={"reset_mask": done})
                new = np.asarray(new, dtype=np.float32)
                obs[done] = new[done]
                self._ret[done] = 0.0
                self._len[done] = 0
            return obs, rew, done.copy(), infos

        def close(self):
            self.venv.close()

        def get_attr(self, attr_name, indices=None):
            if attr_name == "render_mode":
                return [getattr(self.venv, "render_mode", None)] * self.num_envs
            value = getattr(self.venv, attr_name)
            return [value] * len(self._indices(indices))

        def set_attr(self, attr_name, value, indices=None):
            setattr(self.venv, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            raise NotImplementedError("NativeVecEnv: env_method is not supported")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._indices(indices))

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            return [indices] if isinstance(indices, int) else indices

    return _Native()
