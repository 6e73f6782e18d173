"""Train a ReLU policy for the arm by differentiable simulation, then analyse and verify it.

Steps: train (backpropagation through 150-step batched rollouts of ``plant.step``), count the
targets reached, report dead ReLU units over the visited observations, analyze the closed loop
at the operating point with python-control (poles, margins) through ``neuroctl.analyze``, and ask
the verifier whether the policy can command more than 90% of the torque limit near its target
(a proof, or a counterexample re-checked in float64).

Run: ``python examples/train_arm_relu.py [--steps N] [--out DIR] [--ppo]`` (``--ppo`` also trains
SB3 PPO with a ReLU policy for comparison; slower).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

import neuroctl
from neuroctl.train import arm_success_rate, dead_units, train_diffsim, train_rl
from neuroctl.verify import Spec, check

ENV = "neuroctl/Arm-v0"


@dataclass
class Args:
    steps: int = 60
    lr: float = 1e-2
    lr_final: float = 1e-3
    hidden: tuple = (32, 32)
    batch: int = 64
    seed: int = 0
    out: str | None = None
    ppo: bool = False
    ppo_steps: int = 100_000


def parse(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=Args.steps, help="diffsim gradient steps")
    p.add_argument("--seed", type=int, default=Args.seed)
    p.add_argument("--out", default=None, help="run folder (default: a temporary folder)")
    p.add_argument("--ppo", action="store_true", help="also train SB3 PPO (slow)")
    a = p.parse_args(argv)
    return Args(steps=a.steps, seed=a.seed, out=a.out, ppo=a.ppo)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(1)
    out = args.out or tempfile.mkdtemp(prefix="train_arm_relu_")

    # 1. train by differentiable simulation
    res = train_diffsim(
        ENV,
        activation="relu",
        hidden=args.hidden,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        lr_final=args.lr_final,
        seed=args.seed,
        out_dir=f"{out}/diffsim",
        progress=False,
        analyze=False,
    )
    policy = res.policy()
    print(res)

    # 2. targets reached (|error| < 0.05 rad and |speed| < 0.1 rad/s at 3 s), 100 random targets
    reached = arm_success_rate(policy, n=100, seed=2024)
    print(f"targets reached: {reached['success_rate']:.0%} of {reached['n_targets']}")

    # 3. dead ReLU units over the observations of closed-loop rollouts
    import gymnasium as gym

    env = gym.make(ENV)
    model = env.unwrapped.model
    x0, r = model.sample(np.random.default_rng(1), 64, None)
    traj = neuroctl.simulate(model.plant, policy, x0, 150, reference=r)
    report = dead_units(policy, traj.observations.reshape(-1, traj.observations.shape[-1]))
    print(report)

    # 4. the closed loop at the operating point, with python-control
    analysis = neuroctl.analyze(model.plant, policy)
    print(analysis)

    # 5. can it command a dangerous torque? Observations near the target: error within 0.1 rad,
    #    speed within 0.5 rad/s, the arm in the lower half plane (sin in [-1, 1], cos in [0, 1])
    limit = 0.9 * env.unwrapped.params.max_torque
    box_lower = np.array([-0.1, -0.5, -1.0, 0.0])
    box_upper = np.array([0.1, 0.5, 1.0, 1.0])
    spec = Spec.output_range(1, lower=-limit, upper=limit, name=f"|u| <= {limit:g} N m")
    verdict = check(policy, box_lower, box_upper, spec, timeout=60, seed=args.seed)
    print(verdict)

    out_dict = {
        "success_rate": reached["success_rate"],
        "dead_fraction": report.total_fraction,
        "policy": policy,
        "analysis": analysis,
        "verification": verdict,
        "box": (box_lower, box_upper),
        "torque_limit": limit,
    }
    if args.ppo:
        ppo = train_rl(
            ENV,
            algo="ppo",
            steps=args.ppo_steps,
            seed=args.seed,
            out_dir=f"{out}/ppo",
            progress=True,
        )
        out_dict["ppo_success_rate"] = arm_success_rate(ppo.policy(), n=100, seed=2024)[
            "success_rate"
        ]
        print(f"PPO ({args.ppo_steps} env steps): {out_dict['ppo_success_rate']:.0%} reached")
    return out_dict


if __name__ == "__main__":
    main()
