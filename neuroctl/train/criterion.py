"""Success criteria checked while a policy trains: when (env steps, seconds) a run first meets it.

Each env registers its criterion with its training facts
(:func:`neuroctl.envs.register_training`, ``evaluate=``): a function of the exported policy that
returns ``success`` (bool), ``score`` (the number the criterion thresholds) and ``criterion``
(in words). :class:`CriterionWatch` evaluates it on the exported deterministic policy every
``every`` env steps of an RL run, logs each check to ``criterion.csv`` in the run folder and can
stop the run at the first check that meets it.

Two target sets keep the verdict honest: the checks during training use the seed
``CHECK_SEED_OFFSET + seed`` (they choose when to stop), and the run's summary evaluates the
policy it exports once more on :data:`HELD_OUT_SEED`, a set the stopping rule never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .result import CsvLog, Timer

__all__ = [
    "CHECK_SEED_OFFSET",
    "HELD_OUT_SEED",
    "CriterionWatch",
    "check_interval",
    "criterion_of",
    "evaluate_criterion",
]

#: Seed of the targets/rings of the checks during training: ``CHECK_SEED_OFFSET + seed``.
CHECK_SEED_OFFSET = 10_000
#: Seed of the held-out evaluation in a run's summary (and of ``benchmarks/bench_train.py``).
HELD_OUT_SEED = 2024

#: Columns of ``criterion.csv`` besides the criterion's own numeric figures.
_FIELDS = ["steps", "time", "success", "score"]


def criterion_of(env_id: str) -> Callable | None:
    """The success criterion registered for an env id (None: the env has none).

    Returns
    -------
    callable or None
        ``criterion(policy, env_id, *, seed, env_kwargs) -> dict``.
    """
    from neuroctl.envs.registry import training_evaluate

    return training_evaluate(env_id)


def check_interval(eval_every, env_id: str, steps: int) -> int:
    """Env steps between criterion checks of a run, from ``train_rl``'s ``eval_every``.

    Parameters
    ----------
    eval_every : int, "auto" or None
        ``"auto"``: 20 checks over ``steps`` (at least 1000 steps apart) when the env has a
        criterion, none otherwise; None or 0: none.
    env_id : str
    steps : int
        The run's budget of env steps.

    Returns
    -------
    int
        0 for no checks.

    Raises
    ------
    ValueError
        ``eval_every`` is not one of the above, or checks are asked of an env without criterion.
    """
    if eval_every is None or eval_every == 0:
        return 0
    if eval_every == "auto":
        return max(steps // 20, 1000) if criterion_of(env_id) is not None else 0
    if (
        isinstance(eval_every, bool)
        or not isinstance(eval_every, (int, np.integer))
        or eval_every < 0
    ):
        raise ValueError(
            "eval_every: expected a positive int (env steps), 'auto' or None, received "
            f"{eval_every!r}"
        )
    if criterion_of(env_id) is None:
        raise ValueError(
            f"eval_every: {env_id!r} has no registered success criterion to check; register "
            "one with neuroctl.envs.register_training(env_id, evaluate=criterion)"
        )
    return int(eval_every)


def evaluate_criterion(env_id: str, policy, *, seed: int, env_kwargs: dict | None = None) -> dict:
    """Evaluate an env's registered criterion on a policy.

    Parameters
    ----------
    env_id : str
    policy : nn.Module
        Observation ``(..., p)`` -> action ``(..., m)``.
    seed : int
        Seed of the criterion's random targets / rings.
    env_kwargs : dict, optional

    Returns
    -------
    dict
        The criterion's figures, with ``success`` (bool), ``score`` (float) and ``criterion``.

    Raises
    ------
    ValueError
        The env has no registered criterion, or it returned no ``success`` / ``score``.
    """
    fn = criterion_of(env_id)
    if fn is None:
        raise ValueError(
            f"env_id: {env_id!r} has no registered success criterion; register one with "
            "neuroctl.envs.register_training(env_id, evaluate=criterion)"
        )
    metrics = dict(fn(policy, env_id, seed=int(seed), env_kwargs=env_kwargs))
    missing = [k for k in ("success", "score") if k not in metrics]
    if missing:
        raise ValueError(
            f"the success criterion of {env_id!r} returned no {missing} (expected a dict with "
            f"'success' (bool) and 'score' (float)); received keys {sorted(metrics)}"
        )
    metrics["success"] = bool(metrics["success"])
    metrics["score"] = float(metrics["score"])
    return metrics


class CriterionWatch:
    """Checks an env's criterion during an RL run (an SB3 callback via :meth:`callback`).

    Parameters
    ----------
    env_id : str
        An env with a registered criterion.
    every : int
        Env steps between checks (> 0, as :func:`check_interval` gives).
    seed : int
        The run's seed; checks use ``CHECK_SEED_OFFSET + seed``.
    out_dir : str or Path
        Run folder: each check is a row of ``criterion.csv`` (steps, time, success, score and the
        criterion's numeric figures).
    stop : bool
        Stop training at the first check that meets the criterion.
    env_kwargs : dict, optional
    keep_until : int, optional
        On resume: rows of ``criterion.csv`` beyond this step count (a killed session's) are
        dropped.

    Attributes
    ----------
    met : dict or None
        ``{"steps", "time", "metrics"}`` of the first check that met the criterion; ``time`` is
        training seconds of this session, evaluations excluded.
    last : dict or None
        Figures of the latest check.
    """

    def __init__(
        self,
        env_id: str,
        *,
        every: int,
        seed: int,
        out_dir,
        stop: bool = True,
        env_kwargs: dict | None = None,
        keep_until: int | None = None,
    ) -> None:
        self.env_id, self.every, self.seed = env_id, int(every), int(seed)
        self.stop, self.env_kwargs = bool(stop), env_kwargs
        self.path = Path(out_dir) / "criterion.csv"
        self.keep_until = keep_until
        self.met: dict | None = None
        self.last: dict | None = None
        self.eval_seconds = 0.0
        self._log: CsvLog | None = None
        self._timer = Timer()

    def check(self, policy, steps: int) -> bool:
        """Evaluate the criterion on ``policy`` at ``steps``; True when it is met."""
        t_train = self._timer() - self.eval_seconds
        t0 = self._timer()
        m = evaluate_criterion(
            self.env_id, policy, seed=CHECK_SEED_OFFSET + self.seed, env_kwargs=self.env_kwargs
        )
        self.eval_seconds += self._timer() - t0
        self.last = m
        numeric = {
            k: v
            for k, v in m.items()
            if k not in _FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self._log is None:
            self._log = CsvLog(self.path, _FIELDS + sorted(numeric), keep_until=self.keep_until)
        self._log.write(
            steps=int(steps), time=t_train, success=int(m["success"]), score=m["score"], **numeric
        )
        if m["success"] and self.met is None:
            self.met = {"steps": int(steps), "time": t_train, "metrics": m}
        return bool(m["success"])

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def callback(self):
        """An SB3 callback running :meth:`check` every ``every`` env steps."""
        from stable_baselines3.common.callbacks import BaseCallback

        from .export import export_policy

        watch = self

        class _CriterionCallback(BaseCallback):
            def __init__(self):
                super().__init__()
                self.next_check = math.inf

            def _on_training_start(self) -> None:
                watch._timer, watch.eval_seconds = Timer(), 0.0  # time to the criterion: training
                start = int(self.num_timesteps)
                self.next_check = (start // watch.every + 1) * watch.every

            def _on_step(self) -> bool:
                if self.num_timesteps < self.next_check:
                    return True
                self.next_check += watch.every
                net = export_policy(self.model, vec_normalize=self.model.get_vec_normalize_env())
                met = watch.check(net, int(self.num_timesteps))
                return not (met and watch.stop)

        return _CriterionCallback()
