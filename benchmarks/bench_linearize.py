"""Benchmark: neuroctl's batched local gains and single-point analyze vs python-control.

Peers, measured in the same run on the same machine:

* local gains of a 4-input network with two hidden layers of 64 ReLUs: ``neuroctl.local_gain``
  on a batch of points, versus ``control.linearize`` of the network (wrapped as a static
  ``nlsys``) looped over points (forward differences, one point at a time);
* stability of the arm closed with that network at one operating point: ``neuroctl.analyze``
  (exact gain, kinks, poles, verdict; step_info and margins are lazy and not timed) versus
  ``control.linearize`` of the closed-loop ``nlsys`` plus ``control.poles``.

Prints side-by-side times and ratios. Run: ``python benchmarks/bench_linearize.py``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import control
import numpy as np
import torch
from neuroctl.envs.arm import ArmParams, arm_plant

import neuroctl as nc


@dataclass
class Args:
    batch: int = 100_000
    peer_points: int = 300
    repeats: int = 20
    threads: int = 1
    seed: int = 0


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    net = nc.mlp(4, 1, (64, 64), "relu", seed=args.seed, output_scale=5.0)
    Y = rng.normal(size=(args.batch, 4))

    # 1. batched local gains -----------------------------------------------------------
    nc.local_gain(net, Y[:100])  # warm-up
    t_ours = best_of(lambda: nc.local_gain(net, Y), max(1, args.repeats // 10))
    ours_pps = args.batch / t_ours

    def out(t, x, u, params):
        with torch.no_grad():
            return net(torch.as_tensor(u, dtype=torch.float32)).double().numpy()

    static = control.nlsys(None, out, inputs=4, outputs=1)
    control.linearize(static, [], Y[0])
    t = time.perf_counter()
    for i in range(args.peer_points):
        _ = control.linearize(static, [], Y[i]).D
    peer_pps = args.peer_points / (time.perf_counter() - t)

    # 2. one analyze vs control.linearize + poles on the arm ---------------------------------
    arm = arm_plant(ArmParams())
    op = nc.operating_point(arm, net, reference=[0.5])

    def upd(t, x, r, params):
        with torch.no_grad():
            u = net(torch.as_tensor(arm.observe(x, r), dtype=torch.float32)).double().numpy()
        return arm.rhs(x, arm.saturate(u))

    closed = control.nlsys(upd, None, inputs=1, states=2, outputs=2)
    nc.analyze(arm, net, op)
    t_an = best_of(lambda: nc.analyze(arm, net, op).verdict, args.repeats)
    t_lin = best_of(lambda: nc.linearize(arm, net, op).regions[0].poles(), args.repeats)
    t_pc = best_of(lambda: control.poles(control.linearize(closed, op.x, op.r)), args.repeats)
    t_pc_lin = best_of(lambda: control.linearize(closed, op.x, op.r), args.repeats)

    res = {
        "local_gain_points_per_s": ours_pps,
        "control_linearize_points_per_s": peer_pps,
        "batched_speedup": ours_pps / peer_pps,
        "analyze_s": t_an,
        "linearize_and_poles_s": t_lin,
        "control_linearize_poles_s": t_pc,
        "control_linearize_only_s": t_pc_lin,
        "analyze_over_control": t_an / t_pc,
    }
    print(f"threads={args.threads}, batch={args.batch}, network 4-64-64-1 ReLU")
    print(f"{'':42}{'neuroctl':>14}{'python-control':>16}{'ratio':>10}")
    print(
        f"{'local gains, points/s':42}{ours_pps:>14.3g}{peer_pps:>16.3g}"
        f"{ours_pps / peer_pps:>9.0f}x"
    )
    print(
        f"{'one analyze vs linearize+poles, ms':42}{1e3 * t_an:>14.3f}{1e3 * t_pc:>16.3f}"
        f"{t_an / t_pc:>9.2f}x"
    )
    print(
        f"{'neuroctl.linearize + poles, ms':42}{1e3 * t_lin:>14.3f}{1e3 * t_pc_lin:>16.3f}"
        f"{t_lin / t_pc_lin:>9.2f}x  (peer: linearize alone)"
    )
    print("goals: batched >= 100x per point; analyze <= 2x control.linearize + poles")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f, v in vars(Args()).items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    main(Args(**vars(ap.parse_args())))
