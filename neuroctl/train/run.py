"""One entry point for the command line: ``train(env_id, algo=..., ...)``."""

from __future__ import annotations

from typing import Any

from .result import TrainResult

__all__ = ["train", "ALGORITHMS"]

#: Names accepted by :func:`train` (and ``neuroctl train --algo``).
ALGORITHMS = ("ppo", "sac", "td3", "diffsim")


def train(
    env_id: str,
    *,
    algo: str = "ppo",
    activation: str = "relu",
    steps: int | None = None,
    seed: int = 0,
    out_dir="runs",
    progress: bool = True,
    **options,
) -> TrainResult:
    """Train a policy on an env with PPO, SAC (Stable-Baselines3) or differentiable simulation.

    This is what ``neuroctl train ENV --algo A --activation F --steps N --seed S --out DIR``
    calls. The exported policy is at ``result.policy_path`` (``policy.pt`` + ``policy.json``,
    load with :func:`neuroctl.train.export.load_policy`); ``result.summary`` holds the evaluation
    and ``neuroctl.analyze`` of the exported policy at the env's operating point;
    ``result.report()`` is a printable summary.

    Parameters
    ----------
    env_id : str
        Gymnasium id, e.g. ``"neuroctl/Arm-v0"``.
    algo : {"ppo", "sac", "td3", "diffsim"}
    activation : str
        Hidden activation (a key of :data:`neuroctl.ACTIVATIONS`).
    steps : int, optional
        Env steps for PPO/SAC (default 100000), gradient steps for diffsim (default 300).
    seed : int
    out_dir : str or Path
        Run folder (checkpoints, logs, exported policy, summary.json). Rerunning the same command
        resumes an interrupted run.
    progress : bool
        Progress bar with the current return (RL) or cost (diffsim).
    **options
        Passed to :func:`~neuroctl.train.train_rl` or :func:`~neuroctl.train.train_diffsim`
        (unknown names raise ``TypeError`` there).

    Returns
    -------
    TrainResult
    """
    algo = str(algo).lower()
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: expected one of {ALGORITHMS}, received {algo!r}")
    if algo == "diffsim":
        from .diffsim import train_diffsim

        kw: dict[str, Any] = {} if steps is None else {"steps": steps}
        return train_diffsim(
            env_id,
            activation=activation,
            seed=seed,
            out_dir=out_dir,
            progress=progress,
            **kw,
            **options,
        )
    from .rl import train_rl

    kw = {} if steps is None else {"steps": steps}
    return train_rl(
        env_id,
        algo=algo,
        activation=activation,
        seed=seed,
        out_dir=out_dir,
        progress=progress,
        **kw,
        **options,
    )
