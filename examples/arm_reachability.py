"""Closed-loop reachability of the arm: one controller proved safe, one caught leaving.

Two controllers of the single-link arm, both written as ReLU networks (PD with gravity
compensation followed by the torque limit as exact ReLU layers, ``neuroctl.pwl.saturated``):

- a damped PD: the joint angle is *proved* to stay within ±limit for 50 steps from every initial
  state of the box (zonotope reach sets of the closed loop, splitting where needed);
- a positive-feedback gain: ``check_invariant`` returns a simulated trajectory that leaves.

The reach sets are compared with 2000 simulations and with plain interval propagation.

Run: ``python examples/arm_reachability.py --out DIR`` (saves arm_reachability.png in DIR).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller

from neuroctl import simulate
from neuroctl.pwl import saturated
from neuroctl.verify.reach import check_invariant, reach


@dataclass
class Args:
    out: str = "."
    limit: float = 0.5  # joint-angle limit [rad]
    theta0: float = 0.3  # initial angle in [-theta0, theta0] [rad]
    omega0: float = 0.5  # initial speed in [-omega0, omega0] [rad/s]
    steps: int = 50
    samples: int = 2000
    seed: int = 0


def controller(params: ArmParams, kp: float, kd: float) -> torch.nn.Sequential:
    pd = torch.nn.Sequential(pd_gravity_controller(params, kp=kp, kd=kd))
    return saturated(pd, -params.max_torque, params.max_torque)


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = ArmParams()
    plant = arm_plant(params)
    lo, hi = np.array([-args.theta0, -args.omega0]), np.array([args.theta0, args.omega0])
    safe_lo, safe_hi = [-args.limit, -np.inf], [args.limit, np.inf]

    good = controller(params, kp=10.0, kd=2.0)
    bad = controller(params, kp=-8.0, kd=0.0)
    # the env is defined by its discrete map (Pendulum-v1's semi-implicit Euler step), which
    # the simulations below run: the proofs are about that map
    kw = dict(initial_lower=lo, initial_upper=hi, steps=args.steps, semantics="discrete")
    proof = check_invariant(plant, good, safe_lo, safe_hi, **kw)
    caught = check_invariant(plant, bad, safe_lo, safe_hi, **kw)
    x0 = np.random.default_rng(args.seed).uniform(lo, hi, (args.samples, 2))
    sims = simulate(plant, good, x0, args.steps)
    inside = int(proof.reach.contains(sims.states).sum()) if proof.reach is not None else 0
    box = reach(plant, good, lo, hi, args.steps, method="interval")
    finite = np.isfinite(box.upper[:, 0])
    blowup = int(np.argmin(finite)) if not finite.all() else None
    print(
        f"PD kp=10, kd=2: {proof}; angle within "
        f"[{proof.reach.lower[:, 0].min():.3f}, {proof.reach.upper[:, 0].max():.3f}] rad "
        f"(limit ±{args.limit}); {inside}/{args.samples} simulations inside the reach sets; "
        f"simulated angle range [{sims.states[..., 0].min():.3f}, "
        f"{sims.states[..., 0].max():.3f}]"
    )
    print(
        f"  interval propagation instead: final angle width "
        f"{box.upper[-1, 0] - box.lower[-1, 0]:.3g} rad"
        + (f" (unbounded from step {blowup})" if blowup is not None else "")
    )
    ce = caught.counterexample
    print(
        f"kp=-8 (positive feedback): {caught}; counterexample from x0 = "
        f"{np.round(ce.states[0, 0], 4)} reaches θ = {ce.states[0, caught.exit_step, 0]:.3f} rad "
        f"at step {caught.exit_step}"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    t = proof.reach.times
    axes[0].fill_between(
        t,
        proof.reach.lower[:, 0],
        proof.reach.upper[:, 0],
        alpha=0.3,
        label="reach sets (zonotope)",
    )
    axes[0].plot(t, sims.states[:50, :, 0].T, "k", lw=0.4, alpha=0.4)
    for v in (-args.limit, args.limit):
        axes[0].axhline(v, color="r", ls="--", lw=1)
    axes[0].set_ylim(-2 * args.limit, 2 * args.limit)
    axes[0].set_title("PD kp=10, kd=2: proved", fontsize=10)
    axes[0].set_xlabel("time [s]")
    axes[0].set_ylabel("θ [rad]")
    axes[0].legend(fontsize=8)
    axes[1].plot(ce.times, ce.states[0, :, 0], "r", label="counterexample (simulated)")
    for v in (-args.limit, args.limit):
        axes[1].axhline(v, color="r", ls="--", lw=1)
    axes[1].set_title("kp=-8: leaves the limits", fontsize=10)
    axes[1].set_xlabel("time [s]")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    figure = out / "arm_reachability.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    print(f"saved {figure} ({time.perf_counter() - t0:.2f} s)")
    return {
        "plant": plant,
        "good": good,
        "bad": bad,
        "proof": proof,
        "caught": caught,
        "simulations_inside": inside,
        "interval_blowup_step": blowup,
        "figure": str(figure),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for the figure")
    main(Args(out=parser.parse_args().out))
