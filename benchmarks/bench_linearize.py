"""Benchmark: neuroctl's batched local gains and single-point analyze vs python-control.

Peers, measured in the same run on the same machine, in interleaved rounds (best round of each):

* local gains of a 4-input network with two hidden layers of 64 ReLUs: ``neuroctl.local_gain``
  on a batch of points (exact gain, activation pattern, region radius, kink check), versus
  ``control.linearize`` of the network (wrapped as a static ``nlsys``) looped over points
  (forward differences, one point at a time);
* stability of the arm closed with that network at one given operating point: one
  ``neuroctl.analyze`` call as it is by default -- plant Jacobians, exact local gain with kink
  enumeration and validity radius, saturation, one closed loop per region, poles, verdict,
  dominant damping and frequency; its ``step_info`` and ``margins`` are computed on first access
  and are *not* in this figure -- versus ``control.linearize`` of the closed-loop ``nlsys`` plus
  ``control.poles``. A second line times the full report (``analyze`` then ``step_info`` and
  ``margins`` of every region, what printing the report computes) against the same peer.

Prints side-by-side times and ratios. Run: ``python benchmarks/bench_linearize.py``.
"""

from __future__ import annotations

import argparse
import math
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
    rounds: int = 3
    threads: int = 1
    seed: int = 0


def timed(fn, repeats):
    """Best time of ``repeats`` calls of ``fn`` (seconds)."""
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

    def out(t, x, u, params):
        with torch.no_grad():
            return net(torch.as_tensor(u, dtype=torch.float32)).double().numpy()

    static = control.nlsys(None, out, inputs=4, outputs=1)

    def peer_gains():
        for i in range(args.peer_points):
            _ = control.linearize(static, [], Y[i]).D

    arm = arm_plant(ArmParams())
    op = nc.operating_point(arm, net, reference=[0.5])

    def upd(t, x, r, params):
        with torch.no_grad():
            u = net(torch.as_tensor(arm.observe(x, r), dtype=torch.float32)).double().numpy()
        return arm.rhs(x, arm.saturate(u))

    closed = control.nlsys(upd, None, inputs=1, states=2, outputs=2)

    def full_report():
        rep = nc.analyze(arm, net, op)
        return [(r.step_info, r.margins) for r in rep.regions]

    # warm-up of every path
    nc.local_gain(net, Y[:100])
    control.linearize(static, [], Y[0])
    nc.analyze(arm, net, op)
    full_report()
    control.poles(control.linearize(closed, op.x, op.r))

    best: dict[str, float] = {}

    def keep(key, t):
        best[key] = min(best.get(key, math.inf), t)

    for _ in range(args.rounds):
        keep("ours_batch", timed(lambda: nc.local_gain(net, Y), max(2, args.repeats // 5)))
        keep("peer_batch", timed(peer_gains, 3))
        keep("analyze", timed(lambda: nc.analyze(arm, net, op).verdict, args.repeats))
        keep(
            "peer_lin_poles",
            timed(lambda: control.poles(control.linearize(closed, op.x, op.r)), args.repeats),
        )
        keep(
            "lin_poles", timed(lambda: nc.linearize(arm, net, op).regions[0].poles(), args.repeats)
        )
        keep("peer_lin", timed(lambda: control.linearize(closed, op.x, op.r), args.repeats))
        keep("full_report", timed(full_report, max(1, args.repeats // 10)))

    ours_pps = args.batch / best["ours_batch"]
    peer_pps = args.peer_points / best["peer_batch"]
    t_an, t_pc = best["analyze"], best["peer_lin_poles"]
    t_lin, t_pc_lin, t_full = best["lin_poles"], best["peer_lin"], best["full_report"]
    res = {
        "local_gain_points_per_s": ours_pps,
        "control_linearize_points_per_s": peer_pps,
        "batched_speedup": ours_pps / peer_pps,
        "analyze_s": t_an,
        "linearize_and_poles_s": t_lin,
        "control_linearize_poles_s": t_pc,
        "control_linearize_only_s": t_pc_lin,
        "analyze_over_control": t_an / t_pc,
        "full_report_s": t_full,
        "full_report_over_control": t_full / t_pc,
    }
    print(
        f"threads={args.threads}, batch={args.batch}, network 4-64-64-1 ReLU, "
        f"best of {args.rounds} interleaved rounds"
    )
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
    print(
        f"{'full report vs linearize+poles, ms':42}{1e3 * t_full:>14.3f}{1e3 * t_pc:>16.3f}"
        f"{t_full / t_pc:>9.2f}x  (analyze + step_info + margins)"
    )
    print(
        "analyze (the default call, the goal's figure): plant Jacobians, exact gain with kinks\n"
        "  and radius, closed loop per region, poles, verdict, damping, frequency; step_info and\n"
        "  margins are computed on first access: timed only in 'full report'"
    )
    print("goals: batched >= 100x per point; analyze <= 2x control.linearize + poles")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f, v in vars(Args()).items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    main(Args(**vars(ap.parse_args())))
