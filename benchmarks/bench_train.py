"""Training speed, side by side in one run: diffsim against SB3 PPO, and env-steps/s.

1. Wall-clock time to reach the issue's criteria, diffsim vs PPO (Stable-Baselines3) on the same
   env, same machine, same run:
   * Arm-v0: >= 95% of 100 random targets reached (|error| < 0.05 rad, |speed| < 0.1 rad/s at
     3 s);
   * RingRoad-v0: speed std reduced by >= 80% against all-human traffic on the same seeds and
     mean speed >= 95% of the uniform-flow equilibrium speed; tightened here to >= 99% and a
     minimum gap >= 2 m, because a zero-acceleration AV already meets the issue's version (see
     ``ring_ok``).
   Evaluation time is excluded from the clocks (they pause while the criterion is checked).
   PPO gets a budget of env steps; if it does not reach the criterion, the best figure is
   reported with the time spent.
2. Env-steps/s of ``neuroctl.train.train_rl`` PPO on Arm-v0 against plain SB3 PPO on
   Pendulum-v1 (same hyper-parameters, those of Arm-v0 including its ``VecNormalize``, same
   number of envs).

Run: ``python benchmarks/bench_train.py [--quick | --fps-only]`` (prints ratios; torch on one
thread).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


@dataclass
class Args:
    arm_ppo_budget: int = 500_000  # the horizon of the linear learning-rate decay
    ring_ppo_budget: int = 300_000
    eval_every_ppo: int = 16_384
    eval_every_diffsim: int = 5
    fps_steps: int = 16_384
    fps_rounds: int = 3
    seed: int = 0


class Clock:
    """Wall clock that can be paused (for the evaluations)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.paused = 0.0

    def pause(self):
        return _Pause(self)

    def __call__(self):
        return time.perf_counter() - self.t0 - self.paused


class _Pause:
    def __init__(self, clock):
        self.clock = clock

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        self.clock.paused += time.perf_counter() - self.t


def arm_ok(policy) -> tuple[bool, dict]:
    from neuroctl.train.tasks import arm_success_rate

    m = arm_success_rate(policy, n=100, seed=2024)
    return m["success_rate"] >= 0.95, m


def ring_ok(policy) -> tuple[bool, dict]:
    """The issue's ring criterion, tightened so that it cannot be met without damping control.

    A zero-acceleration AV (coasting at its speed at the end of the warm-up) already meets the
    issue's ">= 80% std reduction and mean speed >= 95% of v_eq" (printed by main), and an AV
    that tailgates its leader (engaging its fail-safe) raises the others' speeds above v_eq. The
    benchmark therefore also asks for the mean speed of every ring to be >= 99% of v_eq and for
    the AV never to come closer than the humans' jam distance s0 = 2 m.
    """
    from neuroctl.train.ring_task import ring_wave_metrics

    m = ring_wave_metrics(policy, n_rings=4, seed=2024)
    ok = m["std_reduction"] >= 0.80 and m["speed_ratio_min"] >= 0.99 and m["min_gap"] >= 2.0
    return ok, m


def diffsim_to_criterion(env_id, check, args, out, max_steps=400, **options):
    from neuroctl.train import train_diffsim

    clock = Clock()
    state = {"reached": None, "metrics": None}

    def cb(step, policy, cost):
        if step % args.eval_every_diffsim:
            return True
        with clock.pause():
            ok, m = check(policy)
        state["metrics"] = m
        if ok:
            state["reached"] = (step, clock())
            return False
        return True

    train_diffsim(
        env_id,
        steps=max_steps,
        seed=args.seed,
        out_dir=out,
        progress=False,
        tensorboard=False,
        analyze=False,
        resume=False,
        callback=cb,
        **options,
    )
    return state, clock()


def ppo_to_criterion(env_id, check, args, out, budget):
    from stable_baselines3.common.callbacks import BaseCallback

    from neuroctl.train import export_policy, train_rl

    clock = Clock()
    state = {"reached": None, "metrics": None, "steps": 0}

    class Check(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next = args.eval_every_ppo

        def _on_step(self):
            if self.num_timesteps < self.next:
                return True
            self.next += args.eval_every_ppo
            with clock.pause():
                net = export_policy(self.model, vec_normalize=self.model.get_vec_normalize_env())
                ok, m = check(net)
            state["metrics"], state["steps"] = m, self.num_timesteps
            if ok:
                state["reached"] = (self.num_timesteps, clock())
                return False
            return True

    train_rl(
        env_id,
        algo="ppo",
        steps=budget,
        seed=args.seed,
        out_dir=out,
        progress=False,
        tensorboard=False,
        eval_episodes=0,
        analyze=False,
        resume=False,
        callback=Check(),
    )
    return state, clock()


def arm_ppo_hyperparams() -> dict:
    """The PPO settings of ``train_rl`` on Arm-v0 (defaults and the env's overrides)."""
    from neuroctl.envs.registry import rl_hyperparams

    return rl_hyperparams("neuroctl/Arm-v0", "ppo")


def sb3_pendulum_fps(args) -> float:
    """Plain SB3 PPO on Pendulum-v1 with the Arm-v0 settings (``VecNormalize`` included)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from neuroctl.train.rl import _normalize_options, _schedule

    hyper = arm_ppo_hyperparams()
    normalize = _normalize_options(hyper.pop("normalize", False))
    hyper = {
        k: _schedule(k, v) if k in ("learning_rate", "clip_range") else v for k, v in hyper.items()
    }
    venv = make_vec_env("Pendulum-v1", n_envs=4, seed=args.seed)
    if normalize:
        venv = VecNormalize(venv, gamma=hyper["gamma"], **normalize)
    model = PPO("MlpPolicy", venv, seed=args.seed, device="cpu", **hyper)
    t = time.perf_counter()
    model.learn(args.fps_steps)
    return model.num_timesteps / (time.perf_counter() - t)


def ours_fps(args, out, env_id="neuroctl/Arm-v0") -> float:
    """Env-steps/s of ``train_rl`` while learning (as for SB3: setup and export not counted)."""
    from neuroctl.train import train_rl

    res = train_rl(
        env_id,
        algo="ppo",
        steps=args.fps_steps,
        seed=args.seed,
        out_dir=out,
        progress=False,
        tensorboard=True,
        eval_episodes=0,
        analyze=False,
        resume=False,
        algo_kwargs=arm_ppo_hyperparams(),
    )
    return float(res.summary["env_steps_per_s"])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = Args()
    if "--quick" in argv:
        args.arm_ppo_budget, args.ring_ppo_budget = 32_768, 16_384
    if "--fps-only" in argv:
        args.arm_ppo_budget = args.ring_ppo_budget = 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    print(f"# bench_train (torch threads = 1), runs in {tmp}")

    print("\n## env-steps/s (PPO, 4 envs, same hyper-parameters)")
    # alternate the two measurements (the machine is shared) and keep the best of each
    runs_sb3, runs_ours, runs_pend = [], [], []
    for k in range(args.fps_rounds):
        runs_sb3.append(sb3_pendulum_fps(args))
        runs_ours.append(ours_fps(args, tmp / f"fps{k}"))
        runs_pend.append(ours_fps(args, tmp / f"fpsp{k}", "Pendulum-v1"))
    print("rounds SB3 Pendulum:", [round(v) for v in runs_sb3])
    print("rounds ours Arm    :", [round(v) for v in runs_ours])
    print("rounds ours Pend.  :", [round(v) for v in runs_pend])
    fps_sb3, fps_ours, fps_pend = max(runs_sb3), max(runs_ours), max(runs_pend)
    print(f"SB3 PPO on Pendulum-v1               : {fps_sb3:8.0f} env-steps/s")
    print(f"neuroctl train_rl PPO on Arm-v0      : {fps_ours:8.0f} env-steps/s")
    print(f"neuroctl train_rl PPO on Pendulum-v1 : {fps_pend:8.0f} env-steps/s")
    print(f"ratio ours Arm / SB3 Pendulum        : {fps_ours / fps_sb3:.2f}  (goal: >= 1)")
    print(f"ratio ours Pendulum / SB3 Pendulum   : {fps_pend / fps_sb3:.2f}  (pipeline overhead)")

    if args.arm_ppo_budget == 0:
        return
    from neuroctl.train.ring_task import ring_wave_metrics

    zero = torch.nn.Linear(3, 1)
    torch.nn.init.zeros_(zero.weight)
    torch.nn.init.zeros_(zero.bias)
    print(
        "\nring, zero-acceleration AV (no training):", ring_wave_metrics(zero, n_rings=4, seed=2024)
    )

    for env_id, check, budget, options in (
        ("neuroctl/Arm-v0", arm_ok, args.arm_ppo_budget, dict(lr=2e-2, lr_final=2e-3, batch=32)),
        ("neuroctl/RingRoad-v0", ring_ok, args.ring_ppo_budget, {}),
    ):
        name = env_id.split("/")[-1]
        print(f"\n## {name}: wall-clock time to the criterion")
        d, d_total = diffsim_to_criterion(env_id, check, args, tmp / f"{name}_diffsim", **options)
        if d["reached"]:
            print(
                f"diffsim : reached at gradient step {d['reached'][0]} in {d['reached'][1]:.1f} s"
            )
        else:
            print(f"diffsim : NOT reached in {d_total:.1f} s; last {d['metrics']}")
        print(f"          metrics {d['metrics']}")
        p, p_total = ppo_to_criterion(env_id, check, args, tmp / f"{name}_ppo", budget)
        if p["reached"]:
            print(f"SB3 PPO : reached at {p['reached'][0]} env steps in {p['reached'][1]:.1f} s")
        else:
            print(
                f"SB3 PPO : NOT reached within {budget} env steps ({p_total:.1f} s); "
                f"last check at {p['steps']} steps"
            )
        print(f"          metrics {p['metrics']}")
        t_d = d["reached"][1] if d["reached"] else np.inf
        t_p = p["reached"][1] if p["reached"] else p_total
        bound = "" if p["reached"] else " (lower bound: PPO did not reach it)"
        print(f"speed-up diffsim vs PPO: {t_p / t_d:.1f}x{bound}  (goal: >= 10x)")


if __name__ == "__main__":
    main()
