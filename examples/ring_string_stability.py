"""Ring road: linear stability of uniform flow and string stability of three AV controllers.

22 cars on a 230 m ring (Sugiyama's experiment as set up in Flow): 21 IDM humans and one
automated vehicle (AV) driven by

* IDM -- the AV drives like a human (the all-human ring: a stop-and-go wave grows);
* FollowerStopper (Stern et al. 2018) with a target speed below the uniform-flow speed -- in
  uniform flow the AV then only tracks its target speed, which cuts the ring's feedback loop;
* a small ReLU network on Flow's AV observation ``[v/15, (v_lead - v)/15, headway/270]``, with
  its output bias set so that it commands 0 in uniform flow (an untrained "neural AV").

For each: the relative equilibrium (uniform flow, every car moving at one speed; the neutral mode
of shifting all cars is factored out), the ring's least stable mode (growth rate, period), and the
AV's string stability as a car-following law (peak of |G(jω)| from leader to follower speed); for
the IDM humans also the Ward-Wilson criterion. Networks are linearized exactly
(``neuroctl.local_gain``); FollowerStopper and IDM modules by autograd.

Run: ``python examples/ring_string_stability.py --out DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from neuroctl.envs.ring_road.controllers import FollowerStopper, IDMController  # noqa: E402
from neuroctl.envs.ring_road.dynamics import (  # noqa: E402
    IDMParams,
    Params,
    idm_acceleration,
    ring_plant,
    uniform_flow_equilibrium,
)

import neuroctl as nc  # noqa: E402


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    ring_length: float = 230.0  # m
    fs_speed: float = 3.0  # FollowerStopper target speed, m/s
    seed: int = 3  # seed of the neural AV


def neural_av(seed: int, gap: float, speed: float) -> torch.nn.Sequential:
    """A small ReLU AV (3 -> 16 -> 1) commanding exactly 0 in uniform flow at (gap, speed)."""
    net = nc.mlp(3, 1, (16,), "relu", seed=seed, dtype=torch.float64, output_scale=0.5)
    y = torch.tensor([[speed / 15, 0.0, gap / 270]], dtype=torch.float64)
    with torch.no_grad():
        net[-1].bias -= net(y)[0]
    return net


def flow_guess(plant, n: int, length: float, human_gap: float, speed: float) -> np.ndarray:
    """Positions with car 0 (the AV) taking the slack and every human at ``human_gap``."""
    av_gap = length - 5.0 * n - (n - 1) * human_gap
    gaps = np.r_[av_gap, np.full(n - 1, human_gap)]
    q = np.r_[0.0, np.cumsum(gaps[:-1] + 5.0)]
    return np.r_[q, np.full(n, speed)]


def main(args: Args) -> dict:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ring_string_"))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    params = Params(ring_length=args.ring_length)
    n = params.n_vehicles
    plant = ring_plant(params)
    shift = np.r_[np.ones(n), np.zeros(n)]  # moving every car: a neutral direction
    gap, speed = (float(v) for v in uniform_flow_equilibrium(params))
    idm = IDMParams()
    s_fs = (idm.s0 + args.fs_speed * idm.T) / np.sqrt(1 - (args.fs_speed / idm.v0) ** idm.delta)

    avs = {
        "IDM (human-like)": (IDMController(), plant.equilibrium(None)[0]),
        f"FollowerStopper r={args.fs_speed:g}": (
            FollowerStopper(v_des=args.fs_speed),
            flow_guess(plant, n, args.ring_length, s_fs, args.fs_speed),
        ),
        "neural AV (ReLU 3-16-1)": (neural_av(args.seed, gap, speed), plant.equilibrium(None)[0]),
    }
    rows = {}
    fig, (ax_p, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2))
    omega = np.logspace(-3, 1, 400)
    header = (
        f"{'AV controller':>26} {'AV gap':>7} {'speed':>6} {'verdict':>9} {'growth 1/s':>11}"
        f" {'period s':>9} {'|G| peak':>9} {'string':>9}"
    )
    print(header)
    for (name, (ctrl, guess)), color in zip(avs.items(), ("C3", "C0", "C2")):
        op = nc.operating_point(plant, ctrl, invariant=shift, guess=guess)
        rep = nc.analyze(plant, ctrl, op, invariant=shift)
        reg = rep.regions[0]
        av_gap = float((op.x[1] - op.x[0] - 5.0) % args.ring_length)
        ss = nc.string_stability(ctrl, gap=av_gap, speed=float(op.x[n]))
        rows[name] = dict(
            success=op.success,
            av_gap=av_gap,
            speed=float(op.x[n]),
            verdict=rep.verdict,
            growth_rate=reg.growth_rate,
            period=reg.period,
            peak_gain=ss.peak_gain,
            string_stable=ss.string_stable,
            method=ss.method,
        )
        print(
            f"{name:>26} {av_gap:>7.3f} {op.x[n]:>6.3f} {rep.verdict:>9} {reg.growth_rate:>11.4f}"
            f" {reg.period:>9.2f} {ss.peak_gain:>9.4f} "
            f"{'stable' if ss.string_stable else 'UNSTABLE':>9}"
        )
        ax_p.plot(reg.poles.real, reg.poles.imag, "x", color=color, ms=6, label=name)
        if ss.peak_gain > 0:
            ax_g.loglog(omega, _mag(ss, omega), color=color, label=name)
    human = nc.string_stability(functools.partial(idm_acceleration, params=idm), gap=gap)
    rows["human IDM"] = dict(
        ward_wilson=human.ward_wilson, peak_gain=human.peak_gain, partials=human.partials
    )
    print(
        f"human IDM at gap {gap:.3f} m: f_s={human.partials['f_s']:.4f}, "
        f"f_v={human.partials['f_v']:.4f}, f_dv={human.partials['f_dv']:.4f}; Ward-Wilson "
        f"{human.ward_wilson:.4f} ({'string stable' if human.ward_wilson > 0 else 'unstable'}),"
        f" peak |G| {human.peak_gain:.4f}"
    )
    ax_g.loglog(omega, _mag(human, omega), "k--", label="human IDM")
    ax_g.axhline(1.0, color="grey", lw=0.8)
    ax_g.set_xlabel("ω [rad/s]")
    ax_g.set_ylabel("|G(jω)| leader → follower speed")
    ax_g.legend(fontsize=8)
    ax_p.axvline(0.0, color="grey", lw=0.8)
    ax_p.set_xlim(-0.6, 0.1)
    ax_p.set_xlabel("Re [1/s]")
    ax_p.set_ylabel("Im [rad/s]")
    ax_p.set_title(f"ring of {n} cars, {args.ring_length:g} m: closed-loop poles (zoom)")
    ax_p.legend(fontsize=8)
    fig.tight_layout()
    figure = out / "ring_string_stability.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print(f"figure: {figure}")
    return {"rows": rows, "figure": str(figure)}


def _mag(ss, omega):
    r = ss.regions[0]
    jw = 1j * omega
    return np.abs((r["a_l"] * jw + r["a_s"]) / (jw * jw - r["a_v"] * jw + r["a_s"]))


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
