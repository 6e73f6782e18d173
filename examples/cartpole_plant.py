"""A plant neuroctl does not ship, the cart-pole, defined in a few lines and then used everywhere.

The pole balanced on a cart of Barto, Sutton & Anderson (1983), with the equations and constants
of Gymnasium's ``CartPole-v1`` (a 1 kg cart, a 0.1 kg pole of half-length 0.5 m, explicit Euler at
20 ms) but a continuous force bounded to ±10 N instead of CartPole's two pushes. State
``[x, θ, ẋ, θ̇]`` (m, rad, m/s, rad/s; ``θ = 0`` upright), input the force on the cart [N].

1. the plant: one right-hand side for numpy and torch, names, ``dt``, integrator, bounds;
2. LQR on its linearization at the upright position, and ``neuroctl.analyze`` of the closed loop;
3. ``neuroctl.simulate`` of a batch of tilted starts under that controller;
4. a Gymnasium environment from the plant (``PlantEnv``), checked by ``check_env``;
5. verification: the closed loop provably keeps ``|θ| < limit`` for a number of steps from a box
   of initial states (``neuroctl.verify.reach.check_invariant``);
6. training a small ReLU policy by differentiable simulation through the plant
   (``neuroctl.train.train_diffsim`` on the environment registered with Gymnasium).

Run: ``python examples/cartpole_plant.py --out DIR`` (saves cartpole_plant.png in DIR).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.env_checker import check_env
from neuroctl.envs import EnvModel, PlantEnv, box_sampler

import neuroctl
from neuroctl import Plant, namespace, stack, unstack

GRAVITY, CART_MASS, POLE_MASS, HALF_LENGTH = 9.8, 1.0, 0.1, 0.5  # as Gymnasium's CartPole-v1
TOTAL_MASS, POLE_MOMENT = CART_MASS + POLE_MASS, POLE_MASS * HALF_LENGTH
ENV_ID = "examples/CartPole-v0"


@dataclass
class Args:
    out: str = "."
    tilt: float = 0.2  # initial |θ| of the simulated batch [rad]
    limit: float = 0.25  # |θ| to stay below in the verification [rad]
    box_tilt: float = 0.1  # initial box of the verification: |θ| <= box_tilt, |θ̇| <= 0.2
    verify_steps: int = 50
    train_steps: int = 200
    seed: int = 0


def cartpole_rhs(x, u):
    """``dx/dt`` of the cart-pole (Gymnasium's CartPole equations), shapes (..., 4), (..., 1)."""
    xp = namespace(x, u)
    _, theta, speed, spin = unstack(x)
    (force,) = unstack(u)
    sin, cos = xp.sin(theta), xp.cos(theta)
    temp = (force + POLE_MOMENT * spin * spin * sin) / TOTAL_MASS
    spin_rate = (GRAVITY * sin - cos * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos * cos / TOTAL_MASS)
    )
    accel = temp - POLE_MOMENT * spin_rate * cos / TOTAL_MASS
    return stack([speed, spin, accel, spin_rate], like=x)


def cartpole_lqr(plant: Plant):
    """LQR on the discrete map at the upright equilibrium (an ``nn.Linear`` on the state)."""
    Q, R = np.diag([1.0, 10.0, 1.0, 1.0]), [[0.1]]
    return neuroctl.lqr(plant, plant.equilibrium(), Q=Q, R=R, continuous=False)


def cartpole_metrics(states, inputs, r):
    """The figures of a balancing run: the tilt and cart offset at the end, the peak force."""
    return {
        "final_tilt": float(abs(states[-1, 1])),
        "final_offset": float(abs(states[-1, 0])),
        "peak_force": float(np.abs(inputs).max()) if inputs.size else 0.0,
    }


def cartpole_plant() -> Plant:
    # what an analysis needs, declared with the plant: its rest states and its controllers
    return Plant(
        states=["x", "theta", "x_dot", "theta_dot"],
        inputs=["force"],
        dt=0.02,
        rhs=cartpole_rhs,
        integrator="euler",  # CartPole-v1's "euler" kinematics
        input_lower=-10.0,
        input_upper=10.0,
        equilibrium=lambda r: (np.zeros(4), np.zeros(1)),  # upright
        operating_points={"hanging": lambda r: (np.array([0.0, np.pi, 0.0, 0.0]), np.zeros(1))},
        controllers={
            "lqr": ("LQR at the upright equilibrium (discrete map)", cartpole_lqr),
            "zero": ("no force", lambda plant: None),
        },
        metrics=cartpole_metrics,
        name="cartpole",
    )


def cartpole_reward(x, u, r):
    """``-(x² + θ² + 0.1 ẋ² + 0.1 θ̇² + 0.001 F²)``: array operations only (numpy and torch)."""
    pos, theta, speed, spin = unstack(x)
    (force,) = unstack(u)
    return -(
        pos * pos + theta * theta + 0.1 * (speed * speed + spin * spin) + 0.001 * (force * force)
    )


def cartpole_model(plant: Plant) -> EnvModel:
    start = np.array([0.05, 0.1, 0.05, 0.1])  # the initial state is uniform in ±start
    return EnvModel(plant, cartpole_reward, box_sampler(-start, start))


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plant = cartpole_plant()

    # 2. LQR on the discrete map at the upright equilibrium, and the closed loop's poles
    K = plant.controller("lqr")
    report = neuroctl.analyze(plant, K, continuous=False)
    poles = np.sort_complex(report.regions[0].poles)
    print(f"LQR gain K = {np.round(K.state_gain, 2).tolist()}; closed loop {report.verdict}")
    print(f"  poles {np.round(poles, 4).tolist()} (max |z| = {np.abs(poles).max():.4f})")

    # 3. a batch of tilted starts, balanced
    tilts = np.linspace(-args.tilt, args.tilt, 9)
    x0 = np.stack([np.zeros(9), tilts, np.zeros(9), np.zeros(9)], axis=-1)
    traj = neuroctl.simulate(plant, K, x0, steps=300)
    final_tilt = float(np.abs(traj.states[:, -1, 1]).max())
    peak_force = float(np.abs(traj.inputs).max())
    print(f"from tilts within ±{args.tilt} rad: |θ| <= {final_tilt:.2e} rad after 6 s,")
    print(f"  peak force {peak_force:.2f} N (bound 10 N)")

    # 4. the Gymnasium environment of the plant
    env = gym.wrappers.TimeLimit(PlantEnv(cartpole_model(plant)), max_episode_steps=250)
    with warnings.catch_warnings():  # the checker's advice: a force in N, unbounded states
        warnings.filterwarnings("ignore", message=".*(symmetric and normalized|infinity)")
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=args.seed)
    episode_return, done = 0.0, False
    while not done:
        with torch.no_grad():
            action = K(torch.as_tensor(obs, dtype=torch.float64)).numpy()
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        episode_return += reward
        done = terminated or truncated
    print(f"one episode of {ENV_ID} under LQR: return {episode_return:.3f}")

    # 5. verification of the closed loop on sets
    from neuroctl.verify.reach import check_invariant

    box = np.array([0.05, args.box_tilt, 0.05, 0.2])
    proof = check_invariant(
        plant,
        K,
        [-np.inf, -args.limit, -np.inf, -np.inf],
        [np.inf, args.limit, np.inf, np.inf],
        initial_lower=-box,
        initial_upper=box,
        steps=args.verify_steps,
        semantics="discrete",  # CartPole-v1 is defined by its Euler map, simulated below
    )
    print(f"|θ| < {args.limit} rad for {args.verify_steps} steps from ±{box.tolist()}: {proof}")

    # 6. differentiable simulation through the plant, on the registered environment
    from neuroctl.train import train_diffsim

    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=lambda: PlantEnv(cartpole_model(cartpole_plant())))
    with tempfile.TemporaryDirectory() as tmp:
        run = train_diffsim(
            ENV_ID,
            steps=args.train_steps,
            seed=args.seed,
            out_dir=tmp,
            progress=False,
            tensorboard=False,
            analyze=False,
            batch=64,
            lr=1e-2,
            lr_final=1e-3,
            task_options={"horizon": 100},  # 2 s windows
        )
        policy = run.policy()  # a plain nn.Sequential (loaded before the folder goes)
    learned = neuroctl.simulate(plant, policy, x0, steps=300)
    learned_tilt = float(np.abs(learned.states[:, -1, 1]).max())
    learned_report = neuroctl.analyze(plant, policy, continuous=False)
    print(
        f"diffsim ReLU policy ({args.train_steps} gradient steps): |θ| <= {learned_tilt:.2e} rad "
        f"after 6 s from the same tilts; closed loop {learned_report.verdict} at upright"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, tr, title in ((axes[0], traj, "LQR"), (axes[1], learned, "diffsim ReLU policy")):
        ax.plot(tr.times, tr.states[..., 1].T, lw=1)
        ax.set_title(title)
        ax.set_xlabel("time [s]")
    axes[0].set_ylabel("pole angle θ [rad]")
    fig.tight_layout()
    fig.savefig(out / "cartpole_plant.png", dpi=110)
    plt.close(fig)
    print(f"done in {time.perf_counter() - t0:.1f} s; figure {out / 'cartpole_plant.png'}")
    return {
        "plant": plant,
        "lqr": K,
        "poles": poles,
        "verdict": report.verdict,
        "final_tilt": final_tilt,
        "peak_force": peak_force,
        "episode_return": episode_return,
        "proof": proof,
        "policy": policy,
        "learned_tilt": learned_tilt,
        "learned_verdict": learned_report.verdict,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for the figure")
    main(Args(out=parser.parse_args().out))
