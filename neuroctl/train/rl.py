"""Reinforcement learning on neuroctl envs through Stable-Baselines3 (PPO, SAC, TD3).

The algorithms are SB3's; this module adds what a controls workflow needs around them: the
hidden activation as a choice (``neuroctl.ACTIVATIONS``), checkpoints at intervals written
atomically, resume after an interruption (Ctrl-C writes a checkpoint), seeds, CSV and TensorBoard
logs, a progress bar showing the current return, and the export of the deterministic actor as a
plain ``nn.Sequential`` (:func:`~neuroctl.train.export_policy`).

Stable-Baselines3 is the optional extra ``rl``: ``pip install 'neuroctl[rl]'``.

Checkpoint files are SB3 ``.zip`` archives loaded with SB3's own loader (tensors with
``torch.load(weights_only=True)``; the archive's ``data`` entry may hold cloudpickled objects such
as schedules, and SAC's replay buffer and the ``VecNormalize`` statistics are pickles): resume
only from run folders you made.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections import deque
from pathlib import Path

import numpy as np

from neuroctl.envs.hyperparams import DEFAULT_HYPERPARAMS  # the RL defaults live with the envs
from neuroctl.envs.registry import rl_hyperparams

from ..controllers import ACTIVATIONS
from .criterion import HELD_OUT_SEED, CriterionWatch, check_interval, evaluate_criterion
from .export import (
    atomic_write_bytes,
    atomic_write_text,
    export_policy,
    save_policy,
    sweep_temporary_files,
)
from .result import CsvLog, TensorBoardLog, Timer, TrainResult, cli_command, policy_summary

__all__ = ["train_rl", "ALGOS", "DEFAULT_HYPERPARAMS"]

ALGOS = ("ppo", "sac", "td3")

#: SB3 arguments that may be a schedule: a number, or ``"lin_<start>"`` (rl-baselines3-zoo's
#: notation) for a linear decay from ``start`` at the first step to 0 at the run's last step.
_SCHEDULED = ("learning_rate", "clip_range")


def _schedule(key: str, value):
    """A number or callable as given, SB3's ``LinearSchedule`` for ``"lin_<start>"``.

    SB3 passes the fraction of the run that remains (1 at the first step, 0 at ``steps``), over
    all sessions of a resumed run.
    """
    if (isinstance(value, (int, float)) and not isinstance(value, bool)) or callable(value):
        return value
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            start = math.nan
        if math.isfinite(start) and start > 0:
            from stable_baselines3.common.utils import LinearSchedule

            return LinearSchedule(start, 0.0, 1.0)
    raise ValueError(
        f"algo_kwargs[{key!r}]: expected a number or 'lin_<start>' (linear decay to 0, e.g. "
        f"'lin_1e-3'), received {value!r}"
    )


def _action_noise(value, action_space):
    """``algo_kwargs["action_noise"]``: SB3's noise object as given, or ``"normal_<std>"`` for
    Gaussian noise of ``std`` times the action half-range."""
    if value is None or not isinstance(value, str):
        return value
    try:
        std = float(value[7:]) if value.startswith("normal_") else math.nan
    except ValueError:
        std = math.nan
    if not (math.isfinite(std) and std > 0):
        raise ValueError(
            "algo_kwargs['action_noise']: expected an SB3 action noise or 'normal_<std>' (std a "
            f"positive fraction of the action half-range, e.g. 'normal_0.1'), received {value!r}"
        )
    from stable_baselines3.common.noise import NormalActionNoise

    half = (np.asarray(action_space.high, float) - np.asarray(action_space.low, float)) / 2
    return NormalActionNoise(mean=np.zeros_like(half), sigma=std * half)


#: File beside a run's ``checkpoint.zip`` holding its ``VecNormalize`` statistics (a pickle).
VECNORMALIZE_FILE = "vecnormalize.pkl"


def _normalize_options(value) -> dict:
    """``algo_kwargs["normalize"]`` as ``VecNormalize`` keyword arguments (``{}``: none)."""
    if value is False or value is None:
        return {}
    if value is True:
        return dict(norm_obs=True, norm_reward=True)
    if isinstance(value, dict) and set(value) <= {"norm_obs", "norm_reward"}:
        opts = dict(
            norm_obs=bool(value.get("norm_obs", True)),
            norm_reward=bool(value.get("norm_reward", True)),
        )
        return opts if any(opts.values()) else {}
    raise ValueError(
        "algo_kwargs['normalize']: expected a bool or a dict with keys 'norm_obs' and/or "
        f"'norm_reward' (bools), received {value!r}"
    )


def _sb3():
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:
        raise ImportError(
            "neuroctl.train.train_rl needs Stable-Baselines3: pip install 'neuroctl[rl]'"
        ) from exc
    return sb3


def _make_callback(*, ckpt, state_path, every, n_envs, csv_log, tb, progress, total, extra):
    from stable_baselines3.common.callbacks import BaseCallback

    class _RunCallback(BaseCallback):
        """Checkpoints, CSV/TensorBoard logs and a progress bar with the current return."""

        def __init__(self):
            super().__init__()
            self.returns: deque = deque(maxlen=20)
            self.episodes = 0
            self.last_ckpt = 0
            self.bar = None
            self.timer = Timer()
            self.history: list[dict] = []

        def _on_training_start(self) -> None:
            self.last_ckpt = self.num_timesteps
            self.t_start_steps = self.num_timesteps
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=self.num_timesteps, unit="step")

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                ep = info.get("episode")
                if ep is not None:
                    self.returns.append(float(ep["r"]))
                    self.episodes += 1
            if self.bar is not None:
                self.bar.update(n_envs)
                if self.returns:
                    self.bar.set_postfix(ret=f"{np.mean(self.returns):.3g}", refresh=False)
            if self.num_timesteps - self.last_ckpt >= every:
                self.save()
            return True

        def log_row(self) -> dict:
            elapsed = self.timer()
            row = dict(
                steps=self.num_timesteps,
                episodes=self.episodes,
                mean_return=float(np.mean(self.returns)) if self.returns else "",
                fps=(self.num_timesteps - self.t_start_steps) / max(elapsed, 1e-9),
                time=elapsed,
            )
            csv_log.write(**row)
            if self.returns:
                tb.scalar("rollout/mean_return", row["mean_return"], self.num_timesteps)
            tb.scalar("time/fps", row["fps"], self.num_timesteps)
            self.history.append(row)
            return row

        def _on_rollout_end(self) -> None:
            self.log_row()

        def save(self) -> None:
            _save_checkpoint(self.model, ckpt, state_path, self.num_timesteps)
            self.last_ckpt = self.num_timesteps

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    from stable_baselines3.common.callbacks import CallbackList

    run_cb = _RunCallback()
    cbs = [run_cb] + (list(extra) if isinstance(extra, (list, tuple)) else [extra] if extra else [])
    return run_cb, CallbackList(cbs)


def _save_checkpoint(model, ckpt: Path, state_path: Path, num_timesteps: int) -> None:
    buf = io.BytesIO()
    model.save(buf)
    atomic_write_bytes(ckpt, buf.getvalue())
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        import pickle

        atomic_write_bytes(ckpt.with_name("replay_buffer.pkl"), pickle.dumps(model.replay_buffer))
    vec_norm = model.get_vec_normalize_env()
    if vec_norm is not None:  # its running statistics (pickled without the wrapped env)
        import pickle

        atomic_write_bytes(ckpt.with_name(VECNORMALIZE_FILE), pickle.dumps(vec_norm))
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state["num_timesteps"] = int(num_timesteps)
    atomic_write_text(state_path, json.dumps(state, indent=2) + "\n")


def train_rl(
    env_id: str,
    *,
    algo: str = "ppo",
    activation: str = "relu",
    hidden=(64, 64),
    steps: int = 100_000,
    seed: int = 0,
    out_dir="runs/rl",
    n_envs: int = 4,
    native_vec: bool = True,
    checkpoint_every: int = 10_000,
    resume: bool = True,
    progress: bool = True,
    tensorboard: bool = True,
    algo_kwargs: dict | None = None,
    env_kwargs: dict | None = None,
    callback=None,
    eval_episodes: int = 10,
    analyze: bool = True,
    eval_every: int | str | None = "auto",
    stop_at_criterion: bool = True,
) -> TrainResult:
    """Train PPO, SAC or TD3 (Stable-Baselines3) on a Gymnasium env and export the actor.

    Parameters
    ----------
    env_id : str
        A registered Gymnasium id (``"neuroctl/Arm-v0"``, ``"Pendulum-v1"``, ...).
    algo : {"ppo", "sac", "td3"}
    activation : str
        Hidden activation, a key of :data:`neuroctl.ACTIVATIONS` (``"relu"``, ``"tanh"``, ...);
        used for the actor and the critic.
    hidden : sequence of int
        Hidden widths of the actor and critic MLPs.
    steps : int
        Total environment steps (over all sessions when resumed).
    seed : int
        Seed of the model (torch, numpy) and of the vectorised envs; a fresh run with the same
        seed reproduces the same training.
    out_dir : str or Path
        Run folder: ``checkpoint.zip``, ``run.json``, ``progress.csv`` (steps, episodes, mean
        return, env-steps/s), ``tb/`` (TensorBoard), ``sb3/session<k>/`` (SB3's own losses, CSV
        and TensorBoard, one folder per session), ``policy.pt``, ``policy.json``,
        ``summary.json``; ``vecnormalize.pkl`` with ``normalize``.
    n_envs : int
        Number of env copies.
    native_vec : bool
        Step the copies with the env's native batched vector env when it has one
        (:mod:`neuroctl.train.vec`), else (or if False) with SB3's ``DummyVecEnv``.
    checkpoint_every : int
        Env steps between checkpoints.
    resume : bool
        Continue from ``out_dir/checkpoint.zip`` if present (the run's configuration must match).
    progress : bool
        Show a progress bar with the mean return of the last 20 episodes.
    tensorboard : bool
        Also log to TensorBoard (``out_dir/tb``).
    algo_kwargs : dict, optional
        SB3 keyword arguments overriding :data:`DEFAULT_HYPERPARAMS`; a ``policy_kwargs`` entry
        (e.g. ``{"log_std_init": -2}``) is merged with the network set by ``hidden`` and
        ``activation``. ``learning_rate`` and ``clip_range`` may be ``"lin_<start>"`` (linear
        decay from ``start`` to 0 at ``steps``). ``normalize`` (not an SB3 argument: True, or a
        dict with ``norm_obs`` / ``norm_reward`` bools) trains behind SB3's ``VecNormalize``;
        its observation normalization is exported as the policy's first layers and its running
        statistics are checkpointed (``vecnormalize.pkl``, a pickle) and resumed.
    env_kwargs : dict, optional
        Passed to ``gymnasium.make``.
    callback : SB3 callback or list, optional
        Extra callbacks (e.g. :func:`~neuroctl.train.RevivalCallback`).
    eval_episodes : int
        Deterministic evaluation episodes of the exported policy for the summary (0: none).
    analyze : bool
        Add ``neuroctl.analyze`` of the exported policy at the plant's operating point to the
        summary (when the env exposes ``unwrapped.plant``).
    eval_every : int, "auto" or None
        Env steps between checks of the env's registered success criterion
        (:mod:`neuroctl.train.criterion`) on the exported policy, logged to ``criterion.csv``;
        ``"auto"``: 20 checks over the run (at least every 1000 steps) when the env has a
        criterion, none otherwise; None or 0: no checks.
    stop_at_criterion : bool
        Stop at the first check that meets the criterion and export that policy (``steps`` is
        then a budget). A resumed run that had stopped there stays stopped. The summary's
        ``criterion`` entry says whether and when (env steps, training seconds of the session,
        evaluations excluded) the criterion was met, the figures of the last check, and the
        criterion evaluated again on the exported policy with held-out targets
        (:data:`~neuroctl.train.criterion.HELD_OUT_SEED`).

    Returns
    -------
    TrainResult
        With ``interrupted=True`` if stopped by Ctrl-C (a checkpoint was saved: call again with
        the same arguments to resume).
    """
    sb3 = _sb3()
    from stable_baselines3.common.env_util import make_vec_env

    from .vec import make_sb3_vec_env

    algo = str(algo).lower()
    if algo not in ALGOS:
        raise ValueError(f"algo: expected one of {ALGOS}, received {algo!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: expected one of {sorted(ACTIVATIONS)}, received {activation!r}"
        )
    if not (isinstance(steps, (int, np.integer)) and steps > 0):
        raise ValueError(f"steps: expected a positive int, received {steps!r}")
    if not (isinstance(n_envs, (int, np.integer)) and n_envs > 0):
        raise ValueError(f"n_envs: expected a positive int, received {n_envs!r}")
    hidden = [int(h) for h in hidden]
    import neuroctl  # noqa: F401 - registers the env ids

    every = check_interval(eval_every, env_id, int(steps))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_temporary_files(out)  # left by a session killed during a checkpoint write
    ckpt, state_path = out / "checkpoint.zip", out / "run.json"
    hyper = rl_hyperparams(env_id, algo)
    hyper.update(algo_kwargs or {})
    normalize = _normalize_options(hyper.pop("normalize", False))
    schedules = {k: _schedule(k, hyper[k]) for k in _SCHEDULED if k in hyper}
    config = dict(
        env_id=env_id,
        algo=algo,
        activation=activation,
        hidden=hidden,
        seed=int(seed),
        n_envs=int(n_envs),
        algo_kwargs={k: v for k, v in hyper.items() if isinstance(v, (int, float, str, bool))},
        env_kwargs=env_kwargs or {},
        normalize=normalize,
    )
    cls = {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]
    if native_vec:
        venv = make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    else:
        venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs or {})
    resumed = bool(resume and ckpt.exists())
    vecnorm_path = ckpt.with_name(VECNORMALIZE_FILE)
    if resumed:
        old = json.loads(state_path.read_text()) if state_path.exists() else {}
        mismatched = {k: (old.get(k), v) for k, v in config.items() if k in old and old.get(k) != v}
        if mismatched:
            venv.close()
            raise ValueError(
                f"resume: the checkpoint in {out} was made with a different configuration "
                f"(key: (checkpoint, now)) {mismatched}; use another out_dir or resume=False"
            )
        if normalize:
            from stable_baselines3.common.vec_env import VecNormalize

            if not vecnorm_path.exists():
                venv.close()
                raise ValueError(
                    f"resume: {vecnorm_path} (the normalization statistics) is missing; "
                    "use another out_dir or resume=False"
                )
            venv = VecNormalize.load(str(vecnorm_path), venv)
            venv.training = True
        model = cls.load(ckpt, env=venv, device="cpu")
        rb = ckpt.with_name("replay_buffer.pkl")
        if algo in ("sac", "td3") and rb.exists():
            model.load_replay_buffer(rb)
    else:
        for stale in (
            ckpt,
            ckpt.with_name("replay_buffer.pkl"),
            vecnorm_path,
            out / "progress.csv",
        ):
            if stale.exists():
                stale.unlink()
        if (out / "sb3").exists():
            shutil.rmtree(out / "sb3")
        hyper = {**hyper, **schedules}
        if "action_noise" in hyper:
            hyper["action_noise"] = _action_noise(hyper["action_noise"], venv.action_space)
        extra_policy = dict(hyper.pop("policy_kwargs", None) or {})
        clash = {"net_arch", "activation_fn"} & set(extra_policy)
        if clash:
            venv.close()
            raise ValueError(
                f"algo_kwargs['policy_kwargs']: {sorted(clash)} are set by hidden= and "
                "activation=; remove them"
            )
        policy_kwargs = dict(net_arch=hidden, activation_fn=ACTIVATIONS[activation], **extra_policy)
        if normalize:
            from stable_baselines3.common.vec_env import VecNormalize

            venv = VecNormalize(venv, gamma=float(hyper.get("gamma", 0.99)), **normalize)
        model = cls(
            "MlpPolicy", venv, seed=seed, device="cpu", policy_kwargs=policy_kwargs, **hyper
        )
        atomic_write_text(state_path, json.dumps({**config, "num_timesteps": 0}, indent=2) + "\n")
    done_before = int(model.num_timesteps)
    # SB3's own metrics (losses, entropy, ...) per session: its CSV writer truncates files
    from stable_baselines3.common.logger import configure

    sessions = out / "sb3"
    k = len(list(sessions.glob("session*"))) if sessions.exists() else 0
    formats = ["csv", "tensorboard"] if tensorboard else ["csv"]
    model.set_logger(configure(str(sessions / f"session{k}"), formats))
    # on resume, rows past the checkpoint (a killed session's) are dropped: they are redone
    csv_log = CsvLog(
        out / "progress.csv",
        ["steps", "episodes", "mean_return", "fps", "time"],
        keep_until=done_before if resumed else None,
    )
    tb = TensorBoardLog(out / "tb", enabled=tensorboard)
    run_cb, cb = _make_callback(
        ckpt=ckpt,
        state_path=state_path,
        every=int(checkpoint_every),
        n_envs=n_envs,
        csv_log=csv_log,
        tb=tb,
        progress=progress,
        total=int(steps),
        extra=callback,
    )
    if csv_log.last_row is not None:  # episodes count over all sessions
        run_cb.episodes = int(float(csv_log.last_row.get("episodes") or 0))
    met_before = _met_before(state_path) if resumed else None
    watch = None
    if every:
        watch = CriterionWatch(
            env_id,
            every=every,
            seed=int(seed),
            out_dir=out,
            stop=stop_at_criterion,
            env_kwargs=env_kwargs,
            keep_until=done_before if resumed else None,
        )
        from stable_baselines3.common.callbacks import CallbackList

        cb = CallbackList([cb, watch.callback()])
    timer = Timer()
    interrupted = False
    try:
        remaining = int(steps) - done_before
        if met_before is not None and stop_at_criterion:
            remaining = 0  # this run stopped at its criterion in an earlier session
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _save_checkpoint(model, ckpt, state_path, model.num_timesteps)
        if watch is not None:
            watch.close()
            if watch.met is not None:
                _record_met(state_path, watch.met)
        if model.num_timesteps > done_before:
            run_cb.log_row()
        if run_cb.bar is not None:
            run_cb.bar.close()
        csv_log.close()
        tb.close()
        model.logger.close()
        venv.close()
    wall = timer()
    command = cli_command(env_id, algo, activation, int(steps), int(seed), out)
    history = CsvLog.read(out / "progress.csv")
    result = TrainResult(
        env_id=env_id,
        algo=algo,
        activation=activation,
        seed=int(seed),
        steps=int(steps),
        steps_done=int(model.num_timesteps),
        out_dir=out,
        policy_path=None,
        checkpoint_path=ckpt,
        interrupted=interrupted,
        resumed=resumed,
        wall_time=wall,
        history=history,
        command=command,
    )
    if interrupted:
        result.save()
        return result
    net, info = export_policy(model, vec_normalize=model.get_vec_normalize_env(), with_info=True)
    meta = dict(
        env_id=env_id,
        algo=algo,
        activation=activation,
        hidden=hidden,
        seed=int(seed),
        steps=int(model.num_timesteps),
        command=command,
        export=info.to_dict(),
    )
    result.policy_path = save_policy(net, out / "policy", metadata=meta)
    summary: dict = {"export": repr(info), "env_steps_per_s": _fps(history)}
    if eval_episodes:
        summary.update(
            evaluate_policy(
                env_id, net, episodes=eval_episodes, seed=seed + 10_000, env_kwargs=env_kwargs
            )
        )
    if watch is not None or met_before is not None:
        met = met_before or (watch.met if watch is not None else None)
        summary["criterion"] = _criterion_summary(env_id, net, watch, met, env_kwargs)
    if analyze:
        summary.update(policy_summary(env_id, net, seed=seed))
    result.summary = summary
    result.save()
    return result


def _met_before(state_path: Path) -> dict | None:
    """The criterion check recorded in ``run.json`` by an earlier session (None: none)."""
    if not state_path.exists():
        return None
    return json.loads(state_path.read_text()).get("criterion_met")


def _record_met(state_path: Path, met: dict) -> None:
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state["criterion_met"] = {"steps": met["steps"], "time": met["time"], "metrics": met["metrics"]}
    atomic_write_text(state_path, json.dumps(state, indent=2, default=str) + "\n")


def _criterion_summary(env_id, net, watch, met, env_kwargs) -> dict:
    """Whether and when the criterion was met, and its held-out evaluation on ``net``."""
    held_out = evaluate_criterion(env_id, net, seed=HELD_OUT_SEED, env_kwargs=env_kwargs)
    last = watch.last if watch is not None else None
    return {
        "criterion": held_out.get("criterion", ""),
        "met": met is not None,
        "met_at_steps": None if met is None else int(met["steps"]),
        "met_at_seconds": None if met is None else float(met["time"]),
        "every": None if watch is None else watch.every,
        "last_check": last or (met and met["metrics"]),
        "held_out": held_out,
        "held_out_success": bool(held_out["success"]),
    }


def _fps(history: list[dict]) -> float:
    vals = [float(r["fps"]) for r in history if r.get("fps") not in ("", None)]
    return vals[-1] if vals else math.nan


def evaluate_policy(
    env_id: str, policy, *, episodes: int = 10, seed: int = 0, env_kwargs: dict | None = None
) -> dict:
    """Mean and std of the undiscounted return of a policy ``nn.Module`` over episodes.

    Parameters
    ----------
    env_id : str
    policy : nn.Module
        Observation ``(p,)`` -> action ``(m,)``.
    episodes : int
    seed : int
        Episode ``i`` is reset with seed ``seed + i``.

    Returns
    -------
    dict
        ``{"eval_return_mean": float, "eval_return_std": float, "eval_episodes": int}``
    """
    import gymnasium as gym
    import torch

    env = gym.make(env_id, **(env_kwargs or {}))
    returns = []
    with torch.no_grad():
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                act = policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()
                obs, r, term, trunc, _ = env.step(act)
                total += float(r)
                done = term or trunc
            returns.append(total)
    env.close()
    return {
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_episodes": int(episodes),
    }
