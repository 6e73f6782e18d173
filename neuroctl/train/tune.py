"""Training sweeps on Ray Tune: function trainables around :func:`~neuroctl.train.train_diffsim`
and :func:`~neuroctl.train.train_rl`.

``tune.Tuner(diffsim_trainable, param_space={"env_id": ..., "seed": tune.grid_search([0, 1]),
"lr": ...})`` (or ``rl_trainable`` with ``train_rl``'s keywords, e.g. ``"algo_kwargs":
{"learning_rate": tune.grid_search([3e-4, 1e-3])}``) trains one policy per point of the space.
Each checkpoint of the run folder is reported through Tune's checkpoint API (``tune.report(...,
checkpoint=...)``); a trial that failed is restarted by Tune (``tune.FailureConfig(max_failures=
...)``) from its last reported checkpoint. A ``train_diffsim`` trial, since a resumed run
continues exactly as if it had not been interrupted, ends with the policy of an uninterrupted
run; a ``train_rl`` trial goes on from its checkpoint's env step (that it then ends with the
uninterrupted run's policy is not established).
Ray Tune is imported lazily (``pip install "ray[tune]"``).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

from .diffsim import train_diffsim
from .rl import train_rl

__all__ = ["diffsim_trainable", "rl_trainable"]


def _tune():
    try:
        from ray import tune
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            'Ray Tune is needed for training sweeps: pip install "neuroctl[dist]" '
            '(or pip install "ray[tune]")'
        ) from e
    return tune


def _config(config: dict) -> tuple[str, dict]:
    """``(env_id, the other keywords)``; the keywords the trainables set are refused."""
    config = dict(config)
    if "env_id" not in config:
        raise KeyError(f"config: expected an 'env_id' entry, received keys {sorted(config)}")
    for k in ("out_dir", "resume", "progress", "tensorboard"):
        if k in config:
            raise ValueError(f"config[{k!r}]: set by the trainable, remove it")
    return config.pop("env_id"), config


def _restore(tune, work: Path) -> bool:
    """Copy Tune's checkpoint of this trial (if any) into the fresh run folder ``work``."""
    restored = tune.get_checkpoint()
    if restored is None:
        return False
    with restored.as_directory() as d:
        shutil.copytree(d, work, dirs_exist_ok=True)
    return True


def diffsim_trainable(config: dict) -> None:
    """Ray Tune function trainable: ``train_diffsim(config["env_id"], **rest)``.

    Reports ``steps`` and ``cost`` with a checkpoint (the run folder) at every checkpoint of the
    run, then ``steps``, ``cost``, ``done=True`` and ``restored_step`` (the step of the Tune
    checkpoint this attempt started from, 0 for a fresh start) with the final checkpoint.

    Parameters
    ----------
    config : dict
        ``env_id`` and keywords of :func:`~neuroctl.train.train_diffsim` (``out_dir``,
        ``resume``, ``progress`` and ``tensorboard`` are set here: the run folder is a fresh
        folder restored from Tune's checkpoint). A ``callback`` is called as in
        ``train_diffsim``, after each step's report.
    """
    tune = _tune()
    env_id, config = _config(config)
    user_callback = config.pop("callback", None)
    every = int(config.get("checkpoint_every", 50))
    work = Path(tempfile.mkdtemp(prefix="neuroctl-tune-"))
    restored_step = 0
    if _restore(tune, work):
        import torch

        restored_step = int(torch.load(work / "checkpoint.pt", weights_only=True)["step"])

    def report(step, policy, cost):
        if step % every == 0:  # train_diffsim has just written checkpoint.pt
            tune.report(
                {"steps": step, "cost": float(cost), "done": False},
                checkpoint=tune.Checkpoint.from_directory(str(work)),
            )
        if user_callback is not None:
            return user_callback(step, policy, cost)
        return None

    try:
        res = train_diffsim(
            env_id,
            out_dir=work,
            resume=True,
            progress=False,
            tensorboard=False,
            callback=report,
            **config,
        )
        cost = float(res.history[-1]["cost"]) if res.history else float("nan")
        tune.report(
            {"steps": res.steps_done, "cost": cost, "done": True, "restored_step": restored_step},
            checkpoint=tune.Checkpoint.from_directory(str(work)),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _checkpointed_steps(work: Path) -> int:
    """The env steps of the checkpoint in a ``train_rl`` run folder (its ``run.json``)."""
    state = work / "run.json"
    return int(json.loads(state.read_text())["num_timesteps"]) if state.exists() else 0


def rl_trainable(config: dict) -> None:
    """Ray Tune function trainable: ``train_rl(config["env_id"], **rest)``.

    Reports ``steps`` (env steps) with a checkpoint (the run folder) each time ``train_rl``
    writes one (every ``checkpoint_every`` env steps), then ``steps``, ``mean_return`` (of the
    last rollouts, nan if no episode ended), ``done=True`` and ``restored_step`` (the env steps
    of the Tune checkpoint this attempt started from, 0 for a fresh start) with the final
    checkpoint.

    Parameters
    ----------
    config : dict
        ``env_id`` and keywords of :func:`~neuroctl.train.train_rl` (``out_dir``, ``resume``,
        ``progress`` and ``tensorboard`` are set here: the run folder is a fresh folder restored
        from Tune's checkpoint). A ``callback`` (SB3 callback or list) runs as in ``train_rl``.
    """
    tune = _tune()
    from stable_baselines3.common.callbacks import BaseCallback

    env_id, config = _config(config)
    # a copy: SB3 attaches the model (open log files) to a callback, and Tune sends the
    # trial's config, which holds the original, with every report
    extra = copy.deepcopy(config.pop("callback", None))
    every = int(config.get("checkpoint_every", 10_000))
    work = Path(tempfile.mkdtemp(prefix="neuroctl-tune-"))
    restored_step = _checkpointed_steps(work) if _restore(tune, work) else 0

    class _Report(BaseCallback):
        # after train_rl's own callback (first in its list), which has just saved when due
        def _on_training_start(self) -> None:
            self.last = self.num_timesteps

        def _on_step(self) -> bool:
            if self.num_timesteps - self.last >= every:
                self.last = self.num_timesteps
                if _checkpointed_steps(work) == self.num_timesteps:
                    tune.report(
                        {"steps": self.num_timesteps, "done": False},
                        checkpoint=tune.Checkpoint.from_directory(str(work)),
                    )
            return True

    extras = list(extra) if isinstance(extra, (list, tuple)) else [extra] if extra else []
    try:
        res = train_rl(
            env_id,
            out_dir=work,
            resume=True,
            progress=False,
            tensorboard=False,
            callback=[_Report(), *extras],
            **config,
        )
        returns = [r["mean_return"] for r in res.history if r.get("mean_return") not in ("", None)]
        tune.report(
            {
                "steps": res.steps_done,
                "mean_return": float(returns[-1]) if returns else float("nan"),
                "done": True,
                "restored_step": restored_step,
            },
            checkpoint=tune.Checkpoint.from_directory(str(work)),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
