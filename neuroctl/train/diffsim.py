"""Differentiable-simulation training: backpropagation through batched closed-loop rollouts.

The plants are torch functions, so a controller is trained by gradient descent on the cost of
many rollouts at once (``plant.step`` on tensors of shape ``(batch, n)``), with truncated
windows for long horizons (the state is carried over, detached, from one window to the next).
Same run folder, checkpoints, logs and export as :func:`~neuroctl.train.train_rl`.

Reproducibility: the batch of gradient step ``k`` is drawn from ``np.random.default_rng([seed,
k])`` and its noise from a torch generator seeded with ``(seed, k)``, so a run resumed from a
checkpoint continues exactly as if it had not been interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..controllers import ACTIVATIONS, mlp
from .diagnostics import dead_units, has_dead_unit_layers
from .export import atomic_torch_save, atomic_write_text, save_policy, sweep_temporary_files
from .result import CsvLog, TensorBoardLog, Timer, TrainResult, cli_command, policy_summary
from .tasks import DiffsimTask, make_task

__all__ = ["train_diffsim", "diffsim_policy"]


def diffsim_policy(task: DiffsimTask, hidden, activation: str, seed: int) -> torch.nn.Sequential:
    """The policy trained by diffsim: ``mlp`` with input normalization and a clip to the bounds.

    Layers: optional frozen input affine layer, hidden ``Linear``+activation, output ``Linear``,
    ``Hardtanh`` and a frozen affine rescaling to ``[action_low, action_high]`` (the same clip
    that SB3's PPO applies, so the policy is piecewise linear with ReLU).
    """
    low, high = np.asarray(task.action_low, float), np.asarray(task.action_high, float)
    net = mlp(
        task.n_obs,
        len(low),
        tuple(hidden),
        activation,
        input_scale=task.obs_scale,
        input_offset=None if task.obs_scale is None else task.obs_offset,
        output_activation="hardtanh",
        output_scale=(high - low) / 2.0,
        output_offset=(high + low) / 2.0,
        seed=seed,
    )
    with torch.no_grad():  # start near zero action: no saturation, useful gradients
        last = [m for m in net if isinstance(m, torch.nn.Linear) and m.weight.requires_grad][-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
    return net


def _to_device(obj, dev):
    """Tensors in ``obj`` (nested tuples, lists, dicts) moved to ``dev``; the rest as is."""
    if torch.is_tensor(obj):
        return obj.to(dev)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(v, dev) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, dev) for k, v in obj.items()}
    return obj


def _rollout_cost(task: DiffsimTask, policy, x, r, ctx, gen: torch.Generator, seen=None):
    plant = task.plant
    total = 0.0
    for k in range(task.window):
        y = task.policy_input(x, r, ctx) if task.policy_input else plant.observe(x, r)
        if seen is not None and k % 10 == 0:
            seen.append(y.detach().to(torch.float32))
        a = policy(y.to(torch.float32)).to(torch.float64)
        u = task.apply_input(x, a, ctx) if task.apply_input else a
        u = plant.saturate(u)
        total = total + task.cost(x, u, r, ctx).mean()
        w = task.disturbance(gen, x) if task.disturbance is not None else None
        x = plant.step(x, u, w)
    return total / task.window, x


def train_diffsim(
    env_id: str,
    *,
    activation: str = "relu",
    hidden=(32, 32),
    steps: int = 300,
    seed: int = 0,
    out_dir="runs/diffsim",
    batch: int = 128,
    lr: float = 3e-3,
    lr_final: float = 3e-4,
    grad_clip: float = 1.0,
    checkpoint_every: int = 50,
    log_every: int = 10,
    resume: bool = True,
    progress: bool = True,
    tensorboard: bool = True,
    env_kwargs: dict | None = None,
    task_options: dict | None = None,
    eval_seed: int = 12345,
    analyze: bool = True,
    callback=None,
    device="cpu",
) -> TrainResult:
    """Train a policy by backpropagation through batched differentiable rollouts of the plant.

    Parameters
    ----------
    env_id : str
        ``"neuroctl/Arm-v0"`` (reaching random targets), ``"neuroctl/Arm2Link-v0"``,
        ``"neuroctl/RingRoad-v0"`` (damping the waves), an env whose task is registered with
        :func:`neuroctl.envs.register_training`, or another env built on neuroctl's ``PlantEnv``
        (see :func:`neuroctl.train.tasks.make_task`).
    activation : str
        Hidden activation, a key of :data:`neuroctl.ACTIVATIONS`.
    hidden : sequence of int
        Hidden widths.
    steps : int
        Total gradient steps (over all sessions when resumed).
    seed : int
        Seed of the initial weights, the sampled batches and the noise.
    out_dir : str or Path
        Run folder (``checkpoint.pt``, ``run.json``, ``progress.csv``, ``tb/``, ``policy.*``,
        ``summary.json``).
    batch : int
        Rollouts per gradient step.
    lr, lr_final : float
        Adam learning rate, decayed geometrically from ``lr`` to ``lr_final`` over ``steps``.
    grad_clip : float
        Gradient-norm clip.
    checkpoint_every, log_every : int
        Gradient steps between checkpoints / log rows.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if present (same configuration required).
    progress : bool
        Progress bar with the current cost.
    tensorboard : bool
        Also log to TensorBoard.
    env_kwargs : dict, optional
        Env parameters (as for ``gymnasium.make``).
    task_options : dict, optional
        Options of the task factory (e.g. ``horizon``).
    eval_seed : int
        Seed of the task's evaluation (e.g. the 100 arm targets).
    analyze : bool
        Add ``neuroctl.analyze`` of the policy at the plant's operating point to the summary.
    callback : callable, optional
        ``callback(step, policy, cost)`` after each gradient step; returning ``False`` ends the
        training there (the policy is exported as finished).
    device : str or torch.device
        Where the policy, the sampled batches, the rollouts and their noise generator live
        (``"cpu"``, ``"cuda"``, ...). The checkpoint and the exported policy are on the CPU.

    Returns
    -------
    TrainResult
        ``steps`` count gradient steps. ``interrupted=True`` after Ctrl-C (checkpoint saved).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: expected one of {sorted(ACTIVATIONS)}, received {activation!r}"
        )
    for name, v in (("steps", steps), ("batch", batch), ("checkpoint_every", checkpoint_every)):
        if not (isinstance(v, (int, np.integer)) and v > 0):
            raise ValueError(f"{name}: expected a positive int, received {v!r}")
    if not (lr > 0 and lr_final > 0):
        raise ValueError(f"lr, lr_final: expected positive numbers, received {lr}, {lr_final}")
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(
            f"device: expected 'cpu', 'cuda' or a torch.device, received {device!r}"
        ) from None
    hidden = [int(h) for h in hidden]
    task = make_task(env_id, env_kwargs, **(task_options or {}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_temporary_files(out)  # left by a session killed during a checkpoint write
    ckpt, state_path = out / "checkpoint.pt", out / "run.json"
    config = dict(
        env_id=env_id,
        algo="diffsim",
        activation=activation,
        hidden=hidden,
        seed=int(seed),
        steps=int(steps),
        batch=int(batch),
        lr=float(lr),
        lr_final=float(lr_final),
        grad_clip=float(grad_clip),
        env_kwargs=env_kwargs or {},
        task_options=task_options or {},
    )
    policy = diffsim_policy(task, hidden, activation, seed).to(dev)
    piecewise_linear = has_dead_unit_layers(policy, hidden_only=True)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    decay = (lr_final / lr) ** (1.0 / max(int(steps), 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
    start = 0
    resumed = bool(resume and ckpt.exists())
    if resumed:
        old = json.loads(state_path.read_text()) if state_path.exists() else {}
        mismatched = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
        if mismatched:
            raise ValueError(
                f"resume: the checkpoint in {out} was made with a different configuration "
                f"(key: (checkpoint, now)) {mismatched}; use another out_dir or resume=False"
            )
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        policy.load_state_dict(state["policy"])  # copied onto the policy's device
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])
    else:
        for stale in (ckpt, out / "progress.csv"):
            if stale.exists():
                stale.unlink()
        atomic_write_text(state_path, json.dumps(config, indent=2) + "\n")

    def save(step: int) -> None:
        atomic_torch_save(
            {
                "policy": policy.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
            },
            ckpt,
        )

    # on resume, rows past the checkpoint (a killed session's) are dropped: they are redone
    csv_log = CsvLog(
        out / "progress.csv",
        ["steps", "cost", "lr", "dead_fraction", "time"],
        keep_until=start if resumed else None,
    )
    tb = TensorBoardLog(out / "tb", enabled=tensorboard)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), initial=start, unit="grad step")
    timer = Timer()
    interrupted = False
    step = start
    stopped = False
    costs: list[float] = []
    try:
        while step < steps:
            rng = np.random.default_rng([int(seed), step])
            gen = torch.Generator(device=dev).manual_seed(int(seed) * 1_000_003 + step)
            x, r, ctx = _to_device(task.sample(rng, int(batch)), dev)
            for _ in range(task.windows):
                if step >= steps:
                    break
                log_now = (step + 1) % log_every == 0 or step + 1 == steps
                seen: list[torch.Tensor] = []  # the observations, collected when logging
                cost, x = _rollout_cost(task, policy, x, r, ctx, gen, seen if log_now else None)
                opt.zero_grad()
                cost.backward()
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
                sched.step()
                x = x.detach()
                step += 1
                costs.append(float(cost.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(cost=f"{costs[-1]:.4g}", refresh=False)
                if log_now:
                    # smooth policies have no units that can die: their column stays NaN
                    dead_fraction = (
                        dead_units(
                            policy, torch.cat(seen).reshape(-1, task.n_obs), hidden_only=True
                        ).total_fraction
                        if piecewise_linear
                        else float("nan")
                    )
                    mean_cost = float(np.mean(costs[-log_every:]))
                    row = dict(
                        steps=step,
                        cost=mean_cost,
                        lr=sched.get_last_lr()[0],
                        dead_fraction=dead_fraction,
                        time=timer(),
                    )
                    csv_log.write(**row)
                    tb.scalar("train/cost", mean_cost, step)
                    tb.scalar("diagnostics/dead_unit_fraction", dead_fraction, step)
                if step % checkpoint_every == 0:
                    save(step)
                if callback is not None and callback(step, policy, costs[-1]) is False:
                    stopped = True
                    break
            if stopped:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        policy.cpu()
        save(step)
        if bar is not None:
            bar.close()
        csv_log.close()
        tb.close()
    command = cli_command(env_id, "diffsim", activation, int(steps), int(seed), out)
    result = TrainResult(
        env_id=env_id,
        algo="diffsim",
        activation=activation,
        seed=int(seed),
        steps=int(steps),
        steps_done=step,
        out_dir=out,
        policy_path=None,
        checkpoint_path=ckpt,
        interrupted=interrupted,
        resumed=resumed,
        wall_time=timer(),
        history=CsvLog.read(out / "progress.csv"),
        command=command,
    )
    if interrupted:
        result.save()
        return result
    policy.eval()
    meta = dict(
        env_id=env_id,
        algo="diffsim",
        activation=activation,
        hidden=hidden,
        seed=int(seed),
        steps=step,
        command=command,
        config=config,
    )
    result.policy_path = save_policy(policy, out / "policy", metadata=meta)
    summary: dict = {"final_cost": float(np.mean(costs[-log_every:])) if costs else float("nan")}
    if task.evaluate is not None:
        summary.update(task.evaluate(policy, eval_seed))
    if analyze:
        summary.update(policy_summary(env_id, policy, seed=seed))
    result.summary = summary
    result.save()
    return result
