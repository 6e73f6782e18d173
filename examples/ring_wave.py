"""Stop-and-go wave on the Sugiyama ring, and one automated vehicle that dissipates it.

22 cars on a 230 m single-lane ring (``neuroctl/RingRoad-v0``). After Flow's 750-step warm-up
with human noise, the ring is driven for ``steps`` more steps three ways: all human (IDM), with
car 0 driven by FollowerStopper (Stern et al. 2018; target speed 90% of the uniform-flow speed),
and with car 0 driven by the PI controller with saturation. Prints the ring metrics and saves the
space-time diagrams (position along the ring against time, coloured by speed) to
``<out>/ring_wave.png``.

Run: ``python examples/ring_wave.py --out runs/ring``
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from neuroctl.envs.ring_road import uniform_flow_equilibrium  # noqa: E402
from neuroctl.envs.ring_road.controllers import FollowerStopper, PISaturation  # noqa: E402
from neuroctl.envs.ring_road.env import RingRoadEnv, rollout  # noqa: E402


@dataclass
class Args:
    out: str = "ring_wave_out"
    steps: int = 2000
    seed: int = 1
    ring_length: float = 230.0
    noise: float = 0.2


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    # 1. the three rings: same length, noise, warm-up and seed
    kw = dict(ring_length=args.ring_length, noise=args.noise, warmup_steps=750)
    _, v_eq = uniform_flow_equilibrium(n_vehicles=22, ring_length=args.ring_length)
    runs = {
        "all human (IDM)": (RingRoadEnv(n_av=0, **kw), None),
        "FollowerStopper AV": (RingRoadEnv(n_av=1, **kw), FollowerStopper(v_des=0.9 * float(v_eq))),
        "PI with saturation AV": (RingRoadEnv(n_av=1, **kw), PISaturation()),
    }
    # 2. roll them out and print the metrics after the first 100 s
    results, trajectories = {}, {}
    print(f"uniform flow: {float(v_eq):.3f} m/s; metrics over t >= 100 s after warm-up")
    for label, (env, ctrl) in runs.items():
        trajectories[label] = traj = rollout(env, ctrl, args.steps, seed=args.seed, label=label)
        results[label] = m = traj.metrics(t_from=100.0)
        print(f"{label:24s} {m}")
    # 3. space-time diagrams
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for ax, (label, traj) in zip(axes, trajectories.items()):
        traj.plot(ax=ax, stride=5, v_max=8.0)
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(out / "ring_wave.png", dpi=80)
    plt.close("all")
    print(f"saved {out / 'ring_wave.png'}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in Args().__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
