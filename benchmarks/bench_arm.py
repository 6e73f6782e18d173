"""Speed of the arm environments against Gymnasium's Pendulum-v1, measured side by side.

Prints ratios measured in one run (absolute numbers depend on the machine):

* single env through ``gymnasium.make`` (default wrappers): Arm-v0 steps/s / Pendulum-v1 steps/s
  (goal >= 1);
* batched: Arm-v0 ``make_vec(..., vectorization_mode="vector_entry_point")`` with 1024 envs,
  env-steps/s / ``SyncVectorEnv`` of 64 Pendulum-v1 (goal >= 50).

Run: ``python benchmarks/bench_arm.py [--seconds 1.0] [--num-envs 1024]``.

``--device cpu|cuda [--vector-envs N ...] [--compile]`` measures instead the batched arms on
torch tensors of that device next to the numpy vector env (env-steps/s for each ``N``;
``--compile`` also wraps the torch step in ``torch.compile`` and reports when that fails).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import neuroctl  # noqa: F401  (registers the ids)


def single_rate(env_id: str, seconds: float, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    action = np.full(env.action_space.shape, 0.5, dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        n += 1000
        elapsed = time.perf_counter() - t0
        if elapsed > seconds:
            return n / elapsed


def vector_rate(env, seconds: float) -> float:
    env.reset(seed=0)
    actions = np.full(env.action_space.shape, 0.5, dtype=np.float32)
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            env.step(actions)
        n += 20 * env.num_envs
        elapsed = time.perf_counter() - t0
        if elapsed > seconds:
            return n / elapsed


def torch_vector_rate(env, seconds: float, device) -> float:
    """Env-steps/s of a vector env on torch tensors (actions on the device; synchronised)."""
    env.reset(seed=0)
    actions = torch.full(env.action_space.shape, 0.5, dtype=torch.float64, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    env.step(actions)  # warm-up (compilation, kernels)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            env.step(actions)
        sync()
        n += 20 * env.num_envs
        elapsed = time.perf_counter() - t0
        if elapsed > seconds:
            return n / elapsed


def device_main(args) -> dict:
    """The ``--device`` measurement: numpy and torch vector envs side by side, per size."""
    out = {}
    print(f"{'environment':28s} {'N':>8s} {'numpy':>12s} {'torch':>12s} {'compiled':>12s}")
    for env_id in ("neuroctl/Arm-v0", "neuroctl/Arm2Link-v0"):
        for n in args.vector_envs:
            kw = dict(num_envs=n, vectorization_mode="vector_entry_point")
            ref = vector_rate(gym.make_vec(env_id, **kw), args.seconds)
            tv = gym.make_vec(env_id, **kw, device=args.device, dtype=args.dtype)
            rate = torch_vector_rate(tv, args.seconds, args.device)
            compiled = float("nan")
            if args.compile:
                tc = gym.make_vec(env_id, **kw, device=args.device, dtype=args.dtype)
                tc._step_torch = torch.compile(tc._step_torch)
                try:
                    compiled = torch_vector_rate(tc, args.seconds, args.device)
                except Exception as exc:  # noqa: BLE001  (report any backend failure, go on)
                    print(f"torch.compile skipped: {type(exc).__name__}: {str(exc)[:120]}")
                    args.compile = False
            print(f"{env_id:28s} {n:8d} {ref:12.0f} {rate:12.0f} {compiled:12.0f}")
            out[(env_id, n)] = (ref, rate, compiled)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--num-envs", type=int, default=1024, help="copies in the batched env")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument("--device", default=None, help="torch device of the batched arms")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument(
        "--vector-envs", type=int, nargs="+", default=[1000, 10000], help="batch sizes (--device)"
    )
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.device is not None:
        return device_main(args)

    # the machine is shared: measure in interleaved rounds and keep each one's best round
    best: dict[str, float] = {}
    kw = dict(num_envs=args.num_envs, vectorization_mode="vector_entry_point")
    envs = {
        "pendulum_sync": gym.make_vec("Pendulum-v1", num_envs=64, vectorization_mode="sync"),
        "arm_vec": gym.make_vec("neuroctl/Arm-v0", **kw),
        "arm2_vec": gym.make_vec("neuroctl/Arm2Link-v0", **kw),
    }
    for _ in range(args.rounds):
        rates = {
            "pendulum": single_rate("Pendulum-v1", args.seconds),
            "arm": single_rate("neuroctl/Arm-v0", args.seconds),
            "arm_rk4": single_rate("neuroctl/Arm-v0", args.seconds, integrator="rk4"),
            "arm2": single_rate("neuroctl/Arm2Link-v0", args.seconds),
            **{name: vector_rate(env, args.seconds) for name, env in envs.items()},
        }
        for name, rate in rates.items():
            best[name] = max(best.get(name, 0.0), rate)
    pendulum, arm, arm_rk4, arm2 = (best[k] for k in ("pendulum", "arm", "arm_rk4", "arm2"))
    pendulum_sync, arm_vec, arm2_vec = (best[k] for k in envs)

    rows = [
        ("Pendulum-v1, gym.make", pendulum, 1.0),
        ("Arm-v0, gym.make (semi-implicit Euler)", arm, arm / pendulum),
        ("Arm-v0, gym.make (rk4)", arm_rk4, arm_rk4 / pendulum),
        ("Arm2Link-v0, gym.make", arm2, arm2 / pendulum),
        ("Pendulum-v1, SyncVectorEnv x 64", pendulum_sync, 1.0),
        (f"Arm-v0, vector_entry_point x {args.num_envs}", arm_vec, arm_vec / pendulum_sync),
        (f"Arm2Link-v0, vector_entry_point x {args.num_envs}", arm2_vec, arm2_vec / pendulum_sync),
    ]
    print(f"{'environment':48s} {'steps/s':>12s} {'ratio':>8s}")
    for name, rate, ratio in rows:
        print(f"{name:48s} {rate:12.0f} {ratio:8.2f}")
    print(f"single-env goal (Arm-v0 / Pendulum-v1 >= 1.0): {arm / pendulum:.2f}")
    print(
        f"batched goal (Arm-v0 x {args.num_envs} / Sync Pendulum x 64 >= 50): "
        f"{arm_vec / pendulum_sync:.1f}"
    )
    return {name: ratio for name, _, ratio in rows}


if __name__ == "__main__":
    main()
