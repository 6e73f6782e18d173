"""Training sweeps on Ray Tune: a function trainable around :func:`~neuroctl.train.train_diffsim`.

``tune.Tuner(diffsim_trainable, param_space={"env_id": ..., "seed": tune.grid_search([0, 1]),
"lr": ...})`` trains one policy per point of the space. Each checkpoint of the run folder is
reported through Tune's checkpoint API (``tune.report(..., checkpoint=...)``); a trial that
failed is restarted by Tune (``tune.FailureConfig(max_failures=...)``) from its last reported
checkpoint and, since a resumed run continues exactly as if it had not been interrupted, ends
with the policy of an uninterrupted run. Ray Tune is imported lazily
(``pip install "ray[tune]"``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .diffsim import train_diffsim

__all__ = ["diffsim_trainable"]


def _tune():
    try:
        from ray import tune
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            'Ray Tune is needed for training sweeps: pip install "neuroctl[dist]" '
            '(or pip install "ray[tune]")'
        ) from e
    return tune


def diffsim_trainable(config: dict) -> None:
    """Ray Tune function trainable: ``train_diffsim(config["env_id"], **rest)``.

    Parameters
    ----------
    config : dict
        ``env_id`` and keywords of :func:`~neuroctl.train.train_diffsim` (``out_dir``,
        ``resume``, ``progress`` and ``tensorboard`` are set here: the run folder is a fresh
        folder restored from Tune's checkpoint). A ``callback`` is called as in
        ``train_diffsim``, after each step's report.

    Reports ``steps`` and ``cost`` with a checkpoint (the run folder) at every checkpoint of the
    run, then ``steps``, ``cost``, ``done=True`` and ``restored_step`` (the step of the Tune
    checkpoint this attempt started from, 0 for a fresh start) with the final checkpoint.
    """
    tune = _tune()
    config = dict(config)
    if "env_id" not in config:
        raise KeyError(f"config: expected an 'env_id' entry, received keys {sorted(config)}")
    for k in ("out_dir", "resume", "progress", "tensorboard"):
        if k in config:
            raise ValueError(f"config[{k!r}]: set by diffsim_trainable, remove it")
    env_id = config.pop("env_id")
    user_callback = config.pop("callback", None)
    every = int(config.get("checkpoint_every", 50))
    work = Path(tempfile.mkdtemp(prefix="neuroctl-tune-"))
    restored = tune.get_checkpoint()
    restored_step = 0
    if restored is not None:
        with restored.as_directory() as d:
            shutil.copytree(d, work, dirs_exist_ok=True)
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
