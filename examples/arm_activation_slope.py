"""The activation's slope is a proportional gain: ReLU, tanh and sigmoid with the same weights.

A one-unit controller ``u = k σ(w (r - θ))`` on the arm ``I θ̈ = u - b θ̇ - k_g sin θ`` (I = 1/3,
b = 0.5) acts, near the target, as a proportional controller of gain ``k w σ'(0)``: slope 1 for
tanh and for ReLU's active side, slope 1/4 for a centred sigmoid. Same weights, different loops:

* horizontal arm (k_g = 0, k w = 4): slope 1 is faster but oscillating (ζ ≈ 0.22, 50% overshoot),
  slope 1/4 slower and better damped (ζ ≈ 0.43, 22% overshoot);
* upright arm (k_g = -5, k w = 8): the plant needs a gain above 5; slope 1 gives 8 (stable, gain
  margin 0.625), slope 1/4 gives 2: unstable.

ReLU sits on its kink at the target: neuroctl reports both sides (slope 1 and slope 0), and the
verdict says when they disagree. Each linear prediction is checked against a nonlinear simulation
of a small target step on the discrete plant (semi-implicit Euler, dt = 0.02 s).

Run: ``python examples/arm_activation_slope.py --out DIR``
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
from neuroctl.envs.arm import ArmParams, arm_plant  # noqa: E402
from torch import nn  # noqa: E402

import neuroctl as nc  # noqa: E402


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    w: float = 1.0  # input weight of the unit
    step: float = 0.05  # target step of the simulation, rad (small: the linear regime)
    duration: float = 10.0  # simulated time, s


def controller(act: str, w: float, k: float) -> nn.Sequential:
    """``u = k σ(w (r - θ))``; the sigmoid is centred (``k (σ - 1/2)``) so that u(0) = 0."""
    net = nn.Sequential(nn.Linear(4, 1), nc.ACTIVATIONS[act](), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[w, 0.0, 0.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.fill_(k)
        net[2].bias.fill_(-k / 2 if act == "sigmoid" else 0.0)
    return net


def step_metrics(t, y):
    """Overshoot (%) and 10-90% rise time of a simulated step (``step_info`` on data, relative
    to the final value: without gravity compensation the upright arm settles off target)."""
    info = control.step_info(y, t, yfinal=y[-1])
    return info["Overshoot"], info["RiseTime"]


def main(args: Args) -> dict:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="arm_slope_"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    cases = {
        "horizontal": (ArmParams(gravity=0.0, max_torque=50.0), 4.0),  # k_g = 0, k w = 4
        "upright": (ArmParams(gravity=-10.0, max_torque=50.0), 8.0),  # k_g = -5, k w = 8
    }
    steps = int(round(args.duration / 0.02))
    results: dict = {}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    print(
        f"{'arm':>10} {'act':>7} {'region':>6} {'verdict':>9} {'dominant pole':>18} {'zeta':>6}"
        f" {'OS lin%':>8} {'OS sim%':>8} {'rise lin':>8} {'rise sim':>8} {'PM':>6} {'GM':>6}"
    )
    for row, (name, (params, kw)) in enumerate(cases.items()):
        plant = arm_plant(params)
        ax_p, ax_s = axes[row]
        for act, color in (("relu", "C3"), ("tanh", "C0"), ("sigmoid", "C2")):
            net = controller(act, args.w, kw / args.w)
            rep = nc.analyze(plant, net, reference=[0.0])
            sim = nc.simulate(plant, net, [0.0, 0.0], steps, reference=[args.step])
            theta = sim.states[:, 0]
            grew = bool(np.abs(theta[-1] - args.step) > 10 * args.step)
            os_sim, rise_sim = (np.nan, np.nan) if grew else step_metrics(sim.times, theta)
            ax_s.plot(
                sim.times,
                np.clip(theta / args.step, -1, 5),
                color=color,
                lw=1.5,
                label=f"{act}: simulated",
            )
            regions = []
            for reg in rep.regions:
                si, mg = reg.step_info or {}, reg.margins or {}
                p = reg.dominant_pole
                regions.append(
                    dict(
                        verdict=reg.verdict,
                        pole=p,
                        zeta=reg.damping,
                        overshoot=si.get("Overshoot"),
                        rise=si.get("RiseTime"),
                        phase_margin=mg.get("phase_margin"),
                        gain_margin=mg.get("gain_margin"),
                        slope=float(reg.region.gain[0, 0]) / kw if kw else np.nan,
                        max_real=reg.max_real,
                    )
                )
                ax_p.plot(
                    reg.poles.real,
                    reg.poles.imag,
                    "x",
                    color=color,
                    ms=9,
                    label=f"{act} region {reg.index} ({reg.verdict})",
                )
                if reg.verdict == "stable":
                    T = np.linspace(0, args.duration, 600)
                    resp = control.step_response(rep._reduced_closed_loop(reg), T=T)
                    ax_s.plot(
                        T,
                        np.squeeze(resp.outputs),
                        "--",
                        color=color,
                        lw=1,
                        label=f"{act} region {reg.index}: linear",
                    )
                print(
                    f"{name:>10} {act:>7} {reg.index:>6} {reg.verdict:>9} "
                    f"{p.real:>8.3f}{p.imag:>+8.3f}j  {reg.damping:>6.3f} "
                    f"{_f(si.get('Overshoot'))} {_f(os_sim)} {_f(si.get('RiseTime'))} "
                    f"{_f(rise_sim)} {_f(mg.get('phase_margin'), 6)} "
                    f"{_f(mg.get('gain_margin'), 6)}"
                )
            results[(name, act)] = dict(
                verdict=rep.verdict,
                regions=regions,
                overshoot_sim=os_sim,
                rise_sim=rise_sim,
                diverged=grew,
            )
        ax_p.axvline(0, color="grey", lw=0.8)
        ax_p.axhline(0, color="grey", lw=0.5)
        ax_p.set_title(f"{name} arm (k w = {kw:g}): closed-loop poles")
        ax_p.set_xlabel("Re [1/s]")
        ax_p.set_ylabel("Im [rad/s]")
        ax_p.legend(fontsize=7)
        ax_s.set_title(f"{name} arm: step of {args.step} rad (θ / step, clipped)")
        ax_s.set_xlabel("time [s]")
        ax_s.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    figure = out / "arm_activation_slope.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print("slope 1: faster, oscillating; slope 1/4: slower, damped, unstable upright")
    print(f"figure: {figure}")
    return {"results": results, "figure": str(figure)}


def _f(v, w: int = 8) -> str:
    return f"{'-':>{w}}" if v is None or not np.isfinite(v) else f"{v:>{w}.3f}"


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
