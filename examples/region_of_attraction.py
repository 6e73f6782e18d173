"""Certified regions of attraction of inverted pendulums with a torque limit and of the cart-pole.

From how far does a ReLU-controlled inverted pendulum provably come back upright?
``neuroctl.verify.region_of_attraction`` proves a level set ``{V <= c}`` of a quadratic
Lyapunov function to lie in the region of attraction of the discrete closed loop, and the
script compares it with the basin of attraction simulated on a dense grid of the same box.

1. the plants: the arm of ``neuroctl/Arm-v0`` upright (target π) with its torque cut to 3 N m
   (less than the 4.9 N m gravity torque of the horizontal arm); a Pendulum-v1-like plant
   (Gymnasium's constants, ``θ = 0`` upright, torque ±2; Pendulum's speed clip at 8 rad/s is
   left out: the certified set lies inside ``|θ̇| < 8`` and cannot be left, so the clip never
   acts on it); the cart-pole of ``examples/cartpole_plant.py``;
2. the controller of each: an LQR-initialised ReLU network,
   ``u = ½ (relu(z + a) − relu(a − z))`` with ``z`` the LQR law on the observation: exactly the
   LQR law for ``|z| < a``, half its slope beyond (then the torque limit);
3. ``region_of_attraction`` with the Lyapunov equation's ``P`` (baseline), with the equation
   of ``A / rate`` (``rate="auto"``), and with a ``P`` fitted to simulated transitions from it
   (``lyapunov="fitted"``);
4. the simulated basin: a grid of initial states run to convergence; the fraction of it the
   certified set covers;
5. the plot of each certified set over simulated trajectories.

Run: ``python examples/region_of_attraction.py --out DIR`` (saves region_of_attraction.png).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from neuroctl.envs.arm import ArmParams, arm_plant
from torch import nn

from neuroctl import OperatingPoint, Plant, lqr, namespace, stack, unstack
from neuroctl.verify import region_of_attraction
from neuroctl.verify.roa import closed_loop_rollout


@dataclass
class Args:
    out: str = "."
    """folder of the plot"""
    cases: str = "arm,pendulum,cartpole"
    """comma-separated cases to run"""
    shrink: float = 1.0
    """scale of every search box (below 1 for a quick run)"""
    grid: int = 61
    """simulated basin: initial states per state (2-D cases; 4-D cases use grid // 4)"""
    steps: int = 1500
    """simulated basin: steps to convergence"""
    timeout: float = 120.0
    """seconds of branch and bound per certificate"""
    lyapunov: str = "linearization,rate,fitted"
    """Lyapunov shapes to certify: the Lyapunov equation's P (baseline), the equation of
    A / rate (SETTINGS), P fitted to samples from that one"""


# ---------------------------------------------------------------- 1. the plants
def pendulum_rhs(x, u):
    """Gymnasium Pendulum-v1 (g = 10, m = l = 1; θ = 0 upright): ``[θ̇, 3g/(2l) sin θ + 3 u]``."""
    xp = namespace(x, u)
    theta, omega = unstack(x)
    (torque,) = unstack(u)
    return stack([omega, 15.0 * xp.sin(theta) + 3.0 * torque], like=x)


def pendulum_plant() -> Plant:
    return Plant(states=["theta", "theta_dot"], inputs=["torque"], dt=0.05, rhs=pendulum_rhs,
                 integrator="semi_implicit_euler", input_lower=-2.0, input_upper=2.0,
                 equilibrium=lambda r: (np.zeros(2), np.zeros(1)), name="pendulum")


def cartpole_plant() -> Plant:
    import sys
    from importlib.util import module_from_spec, spec_from_file_location

    name = "example_cartpole_plant"
    if name not in sys.modules:  # the example script of the cart-pole, imported once
        spec = spec_from_file_location(name, Path(__file__).with_name("cartpole_plant.py"))
        sys.modules[name] = module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name].cartpole_plant()


# ---------------------------------------------------------------- 2. the controllers
def lqr_relu(plant: Plant, x_eq, u_eq, Q, R, a: float, reference=None) -> nn.Sequential:
    """ReLU network ``u = u_eq + ½ (relu(z + a) − relu(a − z))``, ``z = −K C⁺ (y − y_eq)``
    (``control.dlqr`` on the plant's linearization at ``x_eq``, the observation's at ``r``)."""
    # the plant at rest at x_eq under the torque u_eq (no controller yet: u_eq is zero here)
    rest = OperatingPoint.at(plant, None, x_eq, reference=reference, continuous=False)
    law = lqr(plant, rest, Q, R, continuous=False, on="observation")
    W, b = law.weight.detach(), law.bias.detach()
    u0 = torch.as_tensor(u_eq, dtype=torch.float64)
    hidden = nn.Linear(W.shape[1], 2).double()
    out = nn.Linear(2, 1).double()
    with torch.no_grad():
        hidden.weight[:] = torch.cat([W, -W])
        hidden.bias[:] = torch.cat([b - u0 + a, -(b - u0) + a])
        out.weight[:] = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
        out.bias[:] = u0
    return nn.Sequential(hidden, nn.ReLU(), out)


#: options of region_of_attraction per case: the cart-pole's slowest closed-loop poles sit at
#: 0.984, so its P comes from the equation of A / 0.995 and its boxes are split finer
SETTINGS = {
    "arm": {"rate": "auto"},
    "pendulum": {"rate": "auto"},
    "cartpole": {"rate": 0.995, "min_width": 2.5e-4},
}


def cases(shrink: float) -> dict:
    """Each case: plant, controller, reference, search box (2, n), states of the plot."""
    arm = arm_plant(ArmParams(max_torque=3.0))
    r = np.array([math.pi])
    x_eq, u_eq = arm.equilibrium(r)
    pend = pendulum_plant()
    cp = cartpole_plant()
    z2, z4 = np.zeros(2), np.zeros(4)
    half = {"arm": [1.2, 4.0], "pendulum": [1.0, 4.0], "cartpole": [1.0, 0.6, 1.5, 2.0]}
    centre = {"arm": x_eq, "pendulum": z2, "cartpole": z4}
    out = {
        "arm": (arm, lqr_relu(arm, x_eq, u_eq, np.diag([10.0, 1.0]), np.eye(1), 4.0, r), r),
        "pendulum": (pend, lqr_relu(pend, z2, np.zeros(1), np.diag([10.0, 1.0]), np.eye(1),
                                    3.0), None),
        "cartpole": (cp, lqr_relu(cp, z4, np.zeros(1), np.diag([1.0, 10.0, 1.0, 1.0]),
                                  np.eye(1), 15.0), None),
    }
    return {k: (p, c, ref, np.stack([centre[k] - shrink * np.array(half[k]),
                                     centre[k] + shrink * np.array(half[k])]), (0, 1))
            for k, (p, c, ref) in out.items()}


# ---------------------------------------------------------------- 4. the simulated basin
def simulated_basin(plant, controller, box, x_star, *, grid: int, steps: int, reference=None):
    """Grid of initial states in the box, simulated for ``steps``; converged: within 1e-6."""
    n = box.shape[1]
    axes = [np.linspace(box[0, i], box[1, i], grid) for i in range(n)]
    G = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, n)
    last = G
    chunk = 20000
    ends = []
    for s in range(0, len(G), chunk):
        ends.append(closed_loop_rollout(plant, controller, G[s:s + chunk], steps,
                                        reference=reference)[:, -1])
    last = np.concatenate(ends)
    converged = np.linalg.norm(last - x_star, axis=-1) < 1e-6
    return G, converged


def main(args: Args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [c for c in args.cases.split(",") if c]
    shapes = [s for s in args.lyapunov.split(",") if s]
    table = {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(len(shapes), len(chosen), figsize=(4.5 * len(chosen),
                                                            4 * len(shapes)), squeeze=False)
    all_cases = cases(args.shrink)
    for j, name in enumerate(chosen):
        plant, ctrl, ref, box, dims = all_cases[name]
        grid = args.grid if box.shape[1] == 2 else max(args.grid // 4, 5)
        basin = None
        for i, shape in enumerate(shapes):
            # ---- 3. the certificate
            t0 = time.perf_counter()
            opts = dict(SETTINGS[name])
            if shape == "linearization":
                opts.pop("rate")
            roa = region_of_attraction(
                plant, ctrl, box=box, reference=ref, timeout=args.timeout,
                lyapunov="fitted" if shape == "fitted" else "linearization", **opts)
            seconds = time.perf_counter() - t0
            if basin is None:
                basin = simulated_basin(plant, ctrl, box, roa.x_star, grid=grid,
                                        steps=args.steps, reference=ref)
            G, conv = basin
            inside = roa.contains(G)
            row = {
                "level": roa.level,
                "volume": roa.volume,
                "basin_volume": float(conv.mean() * np.prod(box[1] - box[0])),
                "fraction_of_basin": float((inside & conv).sum() / max(conv.sum(), 1)),
                "certified_not_converged": int((inside & ~conv).sum()),
                "seconds": seconds,
                "limited_by": roa.limited_by,
            }
            table[(name, shape)] = row
            print(f"{name:9s} {shape:13s} {roa}")
            print(f"{'':9s} {'':13s} certified {row['fraction_of_basin']:.1%} of the simulated "
                  f"basin (volume {row['basin_volume']:.4g}); {seconds:.1f} s")
            # ---- 5. the plot
            roa.plot(dims=dims, ax=axs[i, j], steps=min(args.steps, 400))
            axs[i, j].set_title(f"{name}, V {shape}: {row['fraction_of_basin']:.0%} of basin",
                                fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "region_of_attraction.png", dpi=80)
    plt.close(fig)
    return table


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Args):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse())
