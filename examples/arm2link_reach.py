"""Reaching with the two-link arm (Li & Todorov 2004 parameters) by PD with gravity compensation.

``τ = Kp e − Kd q̇ + G(q)`` is one ``nn.Linear`` on the observation
``[e1, e2, q̇1, q̇2, sin q1, sin(q1 + q2)]`` of ``neuroctl/Arm2Link-v0``. The example

1. simulates reaches to a batch of random targets, in the horizontal plane (Li & Todorov) and in a
   vertical plane with gravity, and prints the final errors and the peak torques;
2. checks the linearized closed loop at a target: its poles (python-control) are all stable;
3. saves a figure: hand paths in the plane, and a frame rendered by the env (``rgb_array``).

Run: ``python examples/arm2link_reach.py --out DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import control  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from neuroctl.envs.arm2link import (  # noqa: E402
    Arm2LinkEnv,
    Arm2LinkParams,
    arm2link_plant,
    arm2link_rhs,
    pd_gravity_controller,
)

import neuroctl  # noqa: E402


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    kp: float = 5.0  # proportional gain [N m/rad] (times the identity)
    kd: float = 1.0  # derivative gain [N m s/rad]
    targets: int = 8  # number of random targets
    seed: int = 0


def hand(q, p: Arm2LinkParams) -> np.ndarray:
    """Hand position [m] for joint angles ``(..., 2)`` (q1 from the downward vertical)."""
    q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
    return np.stack(
        [p.l1 * np.sin(q1) + p.l2 * np.sin(q12), -p.l1 * np.cos(q1) - p.l2 * np.cos(q12)], -1
    )


def closed_loop_poles(p: Arm2LinkParams, controller, target) -> np.ndarray:
    """Poles of the continuous closed loop linearized at rest at ``target`` (autograd)."""
    plant = arm2link_plant(p)
    x_eq, _ = plant.equilibrium(target)
    r = torch.as_tensor(np.asarray(target, float))

    def f(x):
        return arm2link_rhs(x, controller(plant.observe(x, r)), p)

    a = torch.autograd.functional.jacobian(f, torch.as_tensor(x_eq)).numpy()
    return control.poles(control.ss(a, np.zeros((4, 1)), np.eye(4), 0))


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="arm2link_reach_"))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    results = {}
    paths = {}

    # 1. reaches in the horizontal plane and in a vertical plane
    for label, gravity in (("horizontal", 0.0), ("vertical", 9.81)):
        p = Arm2LinkParams(gravity=gravity)
        controller = pd_gravity_controller(p, kp=args.kp, kd=args.kd)
        targets = rng.uniform(p.target_low, p.target_high, size=(args.targets, 2))
        x0 = np.concatenate([np.broadcast_to(p.home, targets.shape), np.zeros(targets.shape)], -1)
        traj = neuroctl.simulate(arm2link_plant(p), controller, x0, 150, reference=targets)
        err = np.abs(targets - traj.states[:, -1, :2]).max()
        peak = np.abs(traj.inputs).max(axis=(0, 1))
        # 2. linearized closed loop at the first target
        poles = closed_loop_poles(p, controller, targets[0])
        print(
            f"{label:10s}: after 3 s max |error| {err:.2e} rad, peak torques {np.round(peak, 2)}"
            f" N m, slowest pole {poles.real.max():.2f} 1/s"
        )
        results[label] = {"max_final_error": float(err), "max_pole_real": float(poles.real.max())}
        paths[label] = (hand(traj.states[..., :2], p), hand(targets, p))

    # 3. figure: hand paths and one rendered frame
    env = Arm2LinkEnv(render_mode="rgb_array")
    env.reset(seed=args.seed)
    frame = env.render()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    for ax, (label, (path, goal)) in zip(axes, paths.items()):
        ax.plot(path[..., 0].T, path[..., 1].T, lw=1)
        ax.plot(goal[:, 0], goal[:, 1], "kx")
        ax.set_aspect("equal")
        ax.set_title(f"hand paths, {label} plane")
        ax.set_xlabel("x [m]")
    axes[0].set_ylabel("y [m]")
    axes[2].imshow(frame)
    axes[2].set_axis_off()
    axes[2].set_title("env.render() (rgb_array)")
    fig.tight_layout()
    figure = out / "arm2link_reach.png"
    fig.savefig(figure, dpi=90)
    plt.close(fig)
    print(f"figure: {figure}")
    return {**results, "figure": str(figure)}


def parse_args(argv=None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
