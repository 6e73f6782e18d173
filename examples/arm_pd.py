"""PD with gravity compensation on the single-link arm: simulated, and checked against theory.

The controller ``u = kp e − kd ω + m g (l/2) sin θ`` is one ``nn.Linear`` on the observation
``[e, ω, sin θ, cos θ]`` of ``neuroctl/Arm-v0``. With the gravity term cancelling gravity, the error
obeys ``I ë + (b + kd) ė + kp e = 0``: a second-order system whose poles, damping and overshoot are
known in closed form. The example

1. builds the plant and the controller, prints the closed-loop poles (python-control);
2. simulates a batch of targets for 3 s (torque limit active) and prints the final errors;
3. simulates one small step without saturation and compares its overshoot with the closed form;
4. runs the controller in the Gymnasium env for one episode and prints the return;
5. saves a figure (angles, speeds, torques against time).

Run: ``python examples/arm_pd.py --out DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import control  # noqa: E402
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller  # noqa: E402

import neuroctl  # noqa: E402


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    kp: float = 10.0  # proportional gain [N m/rad]
    kd: float = 2.0  # derivative gain [N m s/rad]
    gravity: float = 9.81  # [m/s²]; 0 for a horizontal arm
    seconds: float = 3.0  # simulated time
    seed: int = 0


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="arm_pd_"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. plant, controller, closed-loop poles of the error dynamics
    params = ArmParams(gravity=args.gravity)
    plant = arm_plant(params)
    controller = pd_gravity_controller(params, kp=args.kp, kd=args.kd)
    error_dynamics = control.tf([1.0], [params.inertia, params.friction + args.kd, args.kp])
    poles = control.poles(error_dynamics)
    zeta = -poles[0].real / abs(poles[0])
    overshoot = 100 * math.exp(-zeta * math.pi / math.sqrt(1 - zeta**2)) if zeta < 1 else 0.0
    print(f"{plant}")
    print(f"closed-loop poles {np.round(poles, 3)}, damping {zeta:.3f}, overshoot {overshoot:.1f}%")

    # 2. a batch of targets over the whole range, from rest near the bottom
    steps = round(args.seconds / params.dt)
    targets = np.linspace(params.target_low, params.target_high, 7)[:, None]
    x0 = np.zeros((7, 2))
    traj = neuroctl.simulate(plant, controller, x0, steps, reference=targets)
    err = np.abs(targets[:, 0] - traj.states[:, -1, 0])
    speed = np.abs(traj.states[:, -1, 1])
    print(
        f"after {args.seconds:g} s: max |error| {err.max():.2e} rad, "
        f"max |speed| {speed.max():.2e} rad/s, "
        f"max |torque| {np.abs(traj.inputs).max():.2f} N m (limit {params.max_torque})"
    )

    # 3. a small step (no saturation): measured overshoot against the closed form
    small = neuroctl.simulate(plant, controller, [0.0, 0.0], steps, reference=[0.2])
    measured = 100 * (small.states[:, 0].max() / 0.2 - 1)
    print(f"small step: overshoot {measured:.1f}% (closed form {overshoot:.1f}%)")

    # 4. the same controller in the Gymnasium env (float32 observations)
    env = gym.make("neuroctl/Arm-v0", gravity=args.gravity)
    obs, _ = env.reset(seed=args.seed)
    episode_return, done = 0.0, False
    while not done:
        with torch.no_grad():
            action = controller(torch.as_tensor(obs, dtype=torch.float64)).numpy()
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        episode_return += reward
        done = terminated or truncated
    final_error = abs(float(obs[0]))
    print(f"env episode: return {episode_return:.2f}, final |error| {final_error:.2e} rad")

    # 5. figure
    fig = traj.plot()
    fig.axes[0].plot(traj.times, np.broadcast_to(targets.T, (traj.times.size, 7)), "k:", lw=0.8)
    fig.suptitle(f"Arm-v0, PD + gravity compensation (kp={args.kp:g}, kd={args.kd:g})")
    fig.tight_layout()
    figure = out / "arm_pd.png"
    fig.savefig(figure, dpi=90)
    plt.close(fig)
    print(f"figure: {figure}")
    return {
        "poles": poles,
        "overshoot_closed_form": overshoot,
        "overshoot_measured": measured,
        "max_final_error": float(err.max()),
        "max_final_speed": float(speed.max()),
        "episode_return": episode_return,
        "episode_final_error": final_error,
        "figure": str(figure),
    }


def parse_args(argv=None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
