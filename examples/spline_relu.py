"""Piecewise-linear functions and ReLU networks, both ways, exactly.

1. Stern et al.'s FollowerStopper command, for a fixed closing speed, is piecewise linear in the
   gap and constant outside its thresholds: it *is* a 3-unit ReLU network (constant
   extrapolation), equal to the formula to rounding.
2. A look-up table (Greenshields' flux sampled at a few densities) becomes a ReLU network with one
   hinge per knot (linear extrapolation), and the network gives the knots back.
3. A random ReLU network of one input is a PWL function: its exact breakpoints, and back.

Run: ``python examples/spline_relu.py --out DIR`` (saves spline_relu.png in DIR).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroctl import mlp, pwl_from_relu_net, relu_net_from_pwl


@dataclass
class Args:
    out: str = "."
    closing_speed: float = -2.0  # v_lead - v [m/s] (negative: closing in)
    lead_speed: float = 4.0  # [m/s]
    target_speed: float = 6.0  # r [m/s]
    n_knots: int = 9
    seed: int = 0


def follower_stopper(gap, dv, v_lead, r):
    """Stern et al. 2018 FollowerStopper command (REFERENCE.md), vectorized over ``gap``."""
    dvm = min(dv, 0.0)
    omega, d = (4.5, 5.25, 6.0), (1.5, 1.0, 0.5)
    x1, x2, x3 = (w + dvm**2 / (2 * dk) for w, dk in zip(omega, d))
    vt = min(max(v_lead, 0.0), r)
    gap = np.asarray(gap, float)
    return (
        np.where(
            gap <= x1,
            0.0,
            np.where(
                gap <= x2,
                vt * (gap - x1) / (x2 - x1),
                np.where(gap <= x3, vt + (r - vt) * (gap - x2) / (x3 - x2), r),
            ),
        ),
        (x1, x2, x3),
        vt,
    )


def evaluate(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(x, float)[:, None])).numpy()[:, 0]


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. FollowerStopper at a fixed closing speed: three knots, constant outside
    _, (x1, x2, x3), vt = follower_stopper(
        0.0, args.closing_speed, args.lead_speed, args.target_speed
    )
    fs_net = relu_net_from_pwl([x1, x2, x3], [0.0, vt, args.target_speed], extrapolation="constant")
    gaps = np.linspace(0.0, 30.0, 3001)
    fs_ref, _, _ = follower_stopper(gaps, args.closing_speed, args.lead_speed, args.target_speed)
    fs_err = float(np.abs(evaluate(fs_net, gaps) - fs_ref).max())
    print(
        f"FollowerStopper (dv={args.closing_speed} m/s): thresholds {x1:.3f}, {x2:.3f}, "
        f"{x3:.3f} m -> ReLU net with {fs_net[0].out_features} hidden units, "
        f"max |net - formula| on [0, 30] m = {fs_err:.2e}"
    )

    # 2. a look-up table: Greenshields' flux q = v_max rho (1 - rho / rho_max)
    v_max, rho_max = 30.0, 0.2
    knots = np.linspace(0.0, rho_max, args.n_knots)
    values = v_max * knots * (1 - knots / rho_max)
    lut_net = relu_net_from_pwl(knots, values, extrapolation="linear")
    rho = np.linspace(-0.05, 0.25, 3001)
    inside = (rho >= 0) & (rho <= rho_max)
    lut_err = float(
        np.abs(evaluate(lut_net, rho[inside]) - np.interp(rho[inside], knots, values)).max()
    )
    back = pwl_from_relu_net(lut_net, 0.0, rho_max, simplify=True)
    rt_knots = float(np.abs(back.knots - knots).max())
    rt_values = float(np.abs(back.values - values).max())
    print(
        f"look-up table ({args.n_knots} knots): max |net - interp| = {lut_err:.2e}; round trip "
        f"knots {rt_knots:.1e}, values {rt_values:.1e}"
    )

    # 3. a random ReLU network of one input: its exact breakpoints
    rnd = mlp(1, 1, (32, 32), seed=args.seed, dtype=torch.float64)
    f = pwl_from_relu_net(rnd, -3.0, 3.0, simplify=True)
    xs = np.random.default_rng(args.seed).uniform(-3.0, 3.0, 20000)
    rnd_err = float(np.abs(f(xs) - evaluate(rnd, xs)).max())
    rebuilt = relu_net_from_pwl(f.knots, f.values)
    rebuilt_err = float(np.abs(evaluate(rebuilt, xs) - evaluate(rnd, xs)).max())
    print(
        f"random 1-32-32-1 ReLU net on [-3, 3]: {f.n_pieces} linear pieces; max |PWL - net| = "
        f"{rnd_err:.2e}; rebuilt 2-layer net (width {rebuilt[0].out_features}) max error "
        f"{rebuilt_err:.2e}"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(gaps, fs_ref, "k", lw=3, alpha=0.3, label="formula")
    axes[0].plot(gaps, evaluate(fs_net, gaps), "C0", lw=1, label="ReLU net")
    axes[0].set_xlabel("gap [m]")
    axes[0].set_ylabel("command [m/s]")
    axes[0].set_title("FollowerStopper = 3 ReLUs", fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].plot(rho, evaluate(lut_net, rho), "C1", label="ReLU net (linear extrapolation)")
    axes[1].plot(knots, values, "ko", ms=3, label="table")
    axes[1].set_xlabel("density [veh/m]")
    axes[1].set_ylabel("flux [veh/s]")
    axes[1].legend(fontsize=8)
    xx = np.linspace(-3, 3, 2001)
    axes[2].plot(xx, evaluate(rnd, xx), "C2", lw=1, label="random ReLU net")
    axes[2].plot(f.knots, f.values, "k.", ms=4, label=f"{f.knots.size} breakpoints")
    axes[2].legend(fontsize=8)
    axes[2].set_xlabel("input")
    fig.tight_layout()
    figure = out / "spline_relu.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    print(f"saved {figure} ({time.perf_counter() - t0:.2f} s)")
    return {
        "follower_stopper_net": fs_net,
        "thresholds": (x1, x2, x3),
        "follower_stopper_error": fs_err,
        "table": (knots, values),
        "table_net": lut_net,
        "table_error": lut_err,
        "round_trip": (rt_knots, rt_values),
        "random_net": rnd,
        "random_pwl": f,
        "random_error": rnd_err,
        "rebuilt_error": rebuilt_err,
        "figure": str(figure),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for the figure")
    main(Args(out=parser.parse_args().out))
