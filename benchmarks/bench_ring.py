"""Ring road speed, side by side with libsumo on a 22-car, 230 m ring (one run).

Prints steps per second and ratios to libsumo:
  RingRoad-v0 single env (gymnasium.make, default wrappers; and unwrapped);
  RingRoadVectorEnv with 1024 rings (ring-steps per second), state in float64 (the default) and
  in float32 (``dtype="float32"``).
Each in two configurations: "same ring" is exactly what libsumo steps (22 IDM humans, no
acceleration noise); "defaults" is the env's default traffic (21 humans with Flow's acceleration
noise, drawn every step, and one AV with its fail-safe), which costs more per step.
libsumo reads the speeds of all cars every step, by subscription and by per-car getSpeed calls;
the faster of the two is the reference (1.00). Each figure is the best of ``repeats`` interleaved
runs (the machine is shared). Run: python benchmarks/bench_ring.py [--steps 20000]

``--device cpu|cuda --vector-envs N [N ...] [--dtype float32|float64] [--compile]`` measures
instead RingRoadVectorEnv on torch tensors of that device next to the numpy vector env, for each
``N`` and both configurations, in vehicle-steps per second (rings x cars per second) with the
ratio torch / numpy (``--compile`` also wraps the torch step in ``torch.compile`` and reports
when that fails). The dtype applies to both envs.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import neuroctl  # noqa: F401  (registers the env ids)


@dataclass
class Args:
    steps: int = 20000
    """steps of each single env and of libsumo"""
    vector_envs: tuple[int, ...] = (1024,)
    """rings in the batched env (the first without --device; each with --device)"""
    vector_steps: int = 300
    """steps of each batched env"""
    repeats: int = 3
    """interleaved runs, the best of each kept"""
    device: str | None = None
    """torch device of the batched env (then numpy vs torch instead of libsumo)"""
    dtype: str = "float64"
    """state dtype of both batched envs (--device)"""
    compile: bool = False
    """also time the torch step wrapped in torch.compile (--device)"""


def build_sumo_ring(folder: Path, n: int = 22, L: float = 230.0) -> None:
    import sumo

    netconvert = os.path.join(sumo.SUMO_HOME, "bin", "netconvert")
    if not os.path.exists(netconvert):
        netconvert = shutil.which("netconvert")
    R = L / (2 * math.pi)

    def arc(a0, a1, k=24):
        return " ".join(
            f"{R * math.cos(t):.4f},{R * math.sin(t):.4f}" for t in np.linspace(a0, a1, k)
        )

    (folder / "ring.nod.xml").write_text(
        f'<nodes><node id="bottom" x="0" y="{-R:.4f}" type="priority"/>'
        f'<node id="top" x="0" y="{R:.4f}" type="priority"/></nodes>'
    )
    (folder / "ring.edg.xml").write_text(
        "<edges>"
        f'<edge id="right" from="bottom" to="top" numLanes="1" speed="30" length="{L / 2}" '
        f'shape="{arc(-math.pi / 2, math.pi / 2)}"/>'
        f'<edge id="left" from="top" to="bottom" numLanes="1" speed="30" length="{L / 2}" '
        f'shape="{arc(math.pi / 2, 3 * math.pi / 2)}"/></edges>'
    )
    subprocess.run(
        [
            netconvert,
            "--node-files",
            "ring.nod.xml",
            "--edge-files",
            "ring.edg.xml",
            "--no-internal-links",
            "true",
            "--no-turnarounds",
            "true",
            "-o",
            "ring.net.xml",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    rng = np.random.default_rng(0)
    q = (np.arange(n) * L / n + rng.uniform(-0.5, 0.5, n)) % L
    veh = []
    for i in np.argsort(q)[::-1]:
        edge, pos = ("right", q[i]) if q[i] < L / 2 else ("left", q[i] - L / 2)
        route = " ".join([f"{edge} {'left' if edge == 'right' else 'right'}"] * 400)
        veh.append(
            f'<vehicle id="c{i}" type="idm" depart="0" departPos="{pos:.6f}" '
            f'departSpeed="0"><route edges="{route}"/></vehicle>'
        )
    (folder / "ring.rou.xml").write_text(
        '<routes><vType id="idm" carFollowModel="IDM" accel="1" decel="1.5" tau="1" minGap="2" '
        'length="5" maxSpeed="30" delta="4" speedDev="0" sigma="0"/>' + "".join(veh) + "</routes>"
    )


def bench_libsumo(folder: Path, steps: int, *, subscribe: bool) -> float:
    import libsumo
    from libsumo import constants as tc

    libsumo.start(
        [
            "sumo",
            "-n",
            str(folder / "ring.net.xml"),
            "-r",
            str(folder / "ring.rou.xml"),
            "--step-length",
            "0.1",
            "--no-step-log",
            "true",
            "--time-to-teleport",
            "-1",
            "--no-warnings",
            "true",
        ]
    )
    try:
        libsumo.simulationStep()
        ids = libsumo.vehicle.getIDList()
        if subscribe:
            for v in ids:
                libsumo.vehicle.subscribe(v, [tc.VAR_SPEED])
        t = time.perf_counter()
        for _ in range(steps):
            libsumo.simulationStep()
            if subscribe:
                speeds = libsumo.vehicle.getAllSubscriptionResults()
            else:
                speeds = [libsumo.vehicle.getSpeed(v) for v in ids]
        assert len(speeds) == len(ids)
        return steps / (time.perf_counter() - t)
    finally:
        libsumo.close()


def bench_env(env, steps: int) -> float:
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    t = time.perf_counter()
    for _ in range(steps):
        env.step(a)
    return steps / (time.perf_counter() - t)


def bench_vector(num_envs: int, steps: int, *, compile_step: bool = False, **env_kwargs) -> float:
    """Ring-steps per second of RingRoadVectorEnv; with ``device=`` on torch tensors (actions
    on the device, one step first for kernels and compilation, synchronised at the end)."""
    venv = gym.make_vec(
        "neuroctl/RingRoad-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        warmup_steps=0,
        **env_kwargs,
    )
    venv.reset(seed=0)
    device = env_kwargs.get("device")
    if device is None:
        a = np.zeros(venv.action_space.shape, dtype=np.float32)
        sync = _no_sync
    else:
        if compile_step:
            venv._step_torch = torch.compile(venv._step_torch)
        a = torch.zeros(venv.action_space.shape, device=device)
        sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else _no_sync
        for _ in range(3):  # kernels; compilation (the step counter's recompile included)
            venv.step(a)
        sync()
    t = time.perf_counter()
    for _ in range(steps):
        venv.step(a)
    sync()
    return num_envs * steps / (time.perf_counter() - t)


def _no_sync() -> None:
    pass


#: the ring libsumo steps: 22 IDM humans on 230 m without acceleration noise
SAME_RING = {"n_av": 0, "noise": 0.0, "ring_length": 230.0}
#: the env's defaults (21 humans with Flow's noise, one AV), on 230 m
DEFAULT_RING = {"ring_length": 230.0}


def device_main(args: Args) -> dict:
    """The ``--device`` measurement: numpy and torch vector envs side by side, per size."""
    configs = {"defaults": DEFAULT_RING, "same ring": SAME_RING}
    best: dict[tuple, float] = {}
    compile_error = None
    for _ in range(args.repeats):  # interleaved, best of each (the machine is shared)
        for name, ring in configs.items():
            for B in args.vector_envs:
                kinds = {"numpy": {}, "torch": {"device": args.device}}
                if args.compile and compile_error is None:
                    kinds["compiled"] = {"device": args.device, "compile_step": True}
                for kind, kw in kinds.items():
                    try:
                        rate = bench_vector(B, args.vector_steps, dtype=args.dtype, **ring, **kw)
                    except Exception as exc:  # noqa: BLE001  (report a backend failure, go on)
                        compile_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                        continue
                    key = (name, B, kind)
                    best[key] = max(best.get(key, 0.0), rate * 22)  # 22 cars per ring
    print(
        f"RingRoadVectorEnv, 22 cars on 230 m, {args.dtype}, device {args.device}: "
        f"vehicle-steps/s (best of {args.repeats}) and ratios to numpy"
    )
    print(
        f"{'configuration':12s} {'N':>7s} {'numpy':>12s} {'torch':>12s} {'torch/np':>9s} "
        f"{'compiled':>12s} {'comp/np':>8s}"
    )
    for name in configs:
        for B in args.vector_envs:
            ref, rate = best[(name, B, "numpy")], best[(name, B, "torch")]
            compiled = best.get((name, B, "compiled"), float("nan"))
            print(
                f"{name:12s} {B:7d} {ref:12,.0f} {rate:12,.0f} {rate / ref:9.2f} "
                f"{compiled:12,.0f} {compiled / ref:8.2f}"
            )
    if compile_error is not None:
        print(f"torch.compile failed: {compile_error}")
    return best


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in ("steps", "vector_steps", "repeats"):
        parser.add_argument(f"--{f.replace('_', '-')}", type=int, default=getattr(Args, f))
    parser.add_argument("--vector-envs", type=int, nargs="+", default=list(Args.vector_envs))
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=Args.dtype, choices=["float32", "float64"])
    parser.add_argument("--compile", action="store_true")
    args = Args(**vars(parser.parse_args(argv)))
    torch.set_num_threads(1)
    if args.device is not None:
        return device_main(args)

    B = args.vector_envs[0]
    singles = {
        "RingRoad-v0 gymnasium.make, defaults": (
            gym.make("neuroctl/RingRoad-v0", **DEFAULT_RING),
            1,
        ),
        "RingRoad-v0 unwrapped, defaults": (
            gym.make("neuroctl/RingRoad-v0", **DEFAULT_RING).unwrapped,
            None,
        ),
        "RingRoad-v0 gymnasium.make, same ring": (gym.make("neuroctl/RingRoad-v0", **SAME_RING), 1),
    }
    vectors = {
        f"x{B} float64, defaults": (DEFAULT_RING, "float64"),
        f"x{B} float32, defaults": (DEFAULT_RING, "float32"),
        f"x{B} float64, same ring": (SAME_RING, "float64"),
        f"x{B} float32, same ring": (SAME_RING, "float32"),
    }
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_sumo_ring(folder)
        for _ in range(args.repeats):  # interleaved, best of each (the machine is shared)
            for subscribe in (True, False):
                key = (
                    "libsumo, speeds by subscription" if subscribe else "libsumo, getSpeed per car"
                )
                rates.setdefault(key, []).append(
                    bench_libsumo(folder, args.steps, subscribe=subscribe)
                )
            for name, (env, _) in singles.items():
                rates.setdefault(name, []).append(bench_env(env, args.steps))
            for name, (kw, dtype) in vectors.items():
                rate = bench_vector(B, args.vector_steps, dtype=dtype, **kw)
                rates.setdefault(name, []).append(rate)
    best = {k: max(v) for k, v in rates.items()}
    # the faster libsumo way is the reference
    sumo = max(best["libsumo, speeds by subscription"], best["libsumo, getSpeed per car"])
    print("same ring: 22 IDM humans, no noise, 230 m (what libsumo steps); defaults: 21 humans")
    print("with Flow's acceleration noise and one AV, 230 m")
    print(f"{'':44s} {'steps/s':>12s} {'ratio':>8s}")
    for name in ("libsumo, speeds by subscription", "libsumo, getSpeed per car", *singles):
        goal = "   goal >= 1.0" if singles.get(name, (None, None))[1] else ""
        print(f"{name:44s} {best[name]:12,.0f} {best[name] / sumo:8.2f}{goal}")
    for name in vectors:
        label = f"RingRoadVectorEnv {name}"
        print(
            f"{label:44s} {best[name]:12,.0f} {best[name] / sumo:8.1f}   goal >= 100 (ring-steps/s)"
        )


if __name__ == "__main__":
    main()
