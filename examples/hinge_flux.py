"""The hinge flux q(rho) = v_max max(0, rho) max(0, 1 - rho/rho_max) against a simulated ring.

The ring env's optimal-velocity humans (``human_model="ovm"``) have the hinge optimal velocity
V(h) = v_max max(0, 1 - 1/(rho_max h)) of the spacing h = 1/rho, so their uniform-flow flux
rho V(1/rho) *is* the hinge flux: Greenshields' parabola with the physical constraints (no
negative density, no flow beyond jam density) written as ReLUs.

Steps: for a sweep of densities (22 cars on rings of different lengths) run the all-human OVM ring
with Flow's acceleration noise, measure the flux (density x mean speed) after the warm-up, and
compare it with q(rho). Where uniform flow is string stable -- V'(h) < alpha/2 + beta for this
OVM (Bando et al. 1995 with the relative-speed term), i.e. below a critical density -- the
measured points lie on the hinge; above it stop-and-go waves form and the measured flux leaves
the curve: the waves trace a nearly straight congested branch, far below the parabola over most
of the congested range (the ring cannot realise the uniform-flow flux) and crossing it near jam
density, where stopped cars cannot go slower than 0.

Run: ``python examples/hinge_flux.py --out DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from neuroctl.envs.ring_road import OVMParams, hinge_flux, ring_metrics  # noqa: E402 (registers ids)


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    n_vehicles: int = 22
    n_densities: int = 14  # densities swept, evenly spaced in (0, rho_max)
    warmup_steps: int = 1500  # 150 s to settle (or for the wave to form)
    steps: int = 1500  # measured steps after the warm-up (dt = 0.1 s)
    noise: float = 0.2  # Flow's acceleration noise
    seed: int = 0


def critical_density(p: OVMParams) -> float:
    """Density above which uniform OVM flow is string unstable: V'(1/rho) = alpha/2 + beta.

    V'(h) = v_max / (rho_max h^2), so the threshold spacing is sqrt(v_max / (rho_max (alpha/2 +
    beta))) and the density its inverse.
    """
    return 1.0 / np.sqrt(p.v_max / (p.rho_max * (p.alpha / 2 + p.beta)))


def main(args: Args) -> dict:
    out = Path(args.out or tempfile.mkdtemp(prefix="hinge_flux_"))
    out.mkdir(parents=True, exist_ok=True)
    ovm = OVMParams()
    car = 5.0
    rho_c = critical_density(ovm)

    # 1. densities: 22 cars on rings from long (free flow) to short (near jam density)
    rho = np.linspace(0.07, 0.93, args.n_densities) * ovm.rho_max
    lengths = args.n_vehicles / rho
    rho = args.n_vehicles / lengths

    # 2. simulate each ring and measure the flux
    measured, speed_std = [], []
    for k, length in enumerate(lengths):
        env = gym.make(
            "neuroctl/RingRoad-v0",
            n_vehicles=args.n_vehicles,
            n_av=0,
            ring_length=float(length),
            human_model="ovm",
            noise=args.noise,
            warmup_steps=args.warmup_steps,
            max_episode_steps=args.steps,
        )
        _, info = env.reset(seed=args.seed + k)
        speeds, gaps = [], []
        no_action = np.zeros(env.action_space.shape, dtype=np.float32)
        for _ in range(args.steps):
            _, _, _, _, info = env.step(no_action)
            speeds.append(info["speeds"].copy())
            gaps.append(info["gaps"].copy())
        env.close()
        m = ring_metrics(np.array(speeds), np.array(gaps), vehicle_length=car)
        measured.append(m.flow / 3600.0)  # vehicles per second
        speed_std.append(m.speed_std)
    measured, speed_std = np.array(measured), np.array(speed_std)
    model = hinge_flux(rho, ovm.v_max, ovm.rho_max)

    # 3. the numbers
    print(
        f"OVM: v_max = {ovm.v_max} m/s, rho_max = {ovm.rho_max:.4f} veh/m, critical density "
        f"(string stability) rho_c = {rho_c:.4f} veh/m"
    )
    print(
        f"{'rho [veh/m]':>12} {'q(rho) [veh/s]':>15} {'measured':>10} {'rel. diff':>10} "
        f"{'speed std':>10}"
    )
    for r, q, qm, s in zip(rho, model, measured, speed_std):
        print(f"{r:12.4f} {q:15.4f} {qm:10.4f} {(qm - q) / q:10.2%} {s:10.3f}")

    # 4. the figure: the hinge flux, its ReLU pieces, the measured fundamental diagram
    grid = np.linspace(-0.02, 1.1 * ovm.rho_max, 400)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(grid, hinge_flux(grid, ovm.v_max, ovm.rho_max), "k", lw=2, label="hinge flux q(rho)")
    stable = rho < rho_c
    ax.plot(rho[stable], measured[stable], "o", color="C2", label="ring, string stable")
    ax.plot(rho[~stable], measured[~stable], "o", color="C3", label="ring, waves")
    ax.axvline(rho_c, color="gray", ls=":", lw=1, label="critical density")
    ax.set_xlabel("density rho [veh/m]")
    ax.set_ylabel("flux [veh/s]")
    ax.legend(fontsize=8)
    ax.set_title("Fundamental diagram: hinge model vs simulated OVM ring")
    fig.tight_layout()
    figure = out / "hinge_flux.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print(f"figure: {figure}")
    return {
        "rho": rho.tolist(),
        "hinge_flux": model.tolist(),
        "measured_flux": measured.tolist(),
        "speed_std": speed_std.tolist(),
        "critical_density": float(rho_c),
        "figure": str(figure),
    }


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
