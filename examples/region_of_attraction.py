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
   of ``A / rate`` (``rate="auto"``), with a ``P`` fitted to simulated transitions from it
   (``lyapunov="fitted"``) and with a learned quartic ``V`` (``lyapunov="learned"``), proved in
   the box or (``--domain wide``) in a larger proof domain (``DOMAINS``), so that the certified
   set may hold states of the box whose trajectories leave the box;
4. the simulated basin: a grid of initial states of the box run to convergence (trajectories
   may leave the box); the fraction of it the certified set covers, and the fraction of it
   whose trajectories stay in the proof domain (no certified set in that domain can cover
   more: it is forward invariant);
5. (``--entry_steps N``) each certified set extended by *entry boxes*: boxes of the box whose
   states are proved, by reachability of the closed loop on sets, to be in the set, or in it
   and the boxes proved before, within ``N`` steps (so they converge too; the states that swing
   through the bottom and back);
6. the plot of each certified set over simulated trajectories;
7. (``--check``) each certificate against simulation: 10^4 states sampled in the certified
   region are in the invariant set after their proved number of steps, stay in it from there
   and converge; the decrease holds on 10^5 more of the invariant set.

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
from neuroctl.verify.lyapunov import QuadraticLyapunov
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
    lyapunov: str = "linearization,rate,fitted,learned"
    """Lyapunov shapes to certify: the Lyapunov equation's P (baseline), the equation of
    A / rate (SETTINGS), P fitted to samples from that one, a learned quartic V"""
    rounds: int = 3
    """train-and-prove rounds of the learned V"""
    domain: str = "box"
    """proof domain: "box" (the box itself) or "wide" (DOMAINS, certifying cut sets
    {V <= c} ∩ domain; the basin is still measured in the box)"""
    entry_steps: int = 0
    """with N > 0, extend each certified set by boxes proved to enter it within N steps"""
    entry_timeout: float = 120.0
    """seconds for the entry boxes of each certificate"""
    check: bool = False
    """check each certificate by simulation (check_by_simulation: 10^4 states run to the end,
    the decrease on 10^5 single steps)"""


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


#: half-widths of the proof domain of ``--domain wide`` around x* (the box's are in cases()).
#: The pendulum's converged trajectories from its box reach |θ| = 4.52 (they swing through the
#: bottom and back) and |θ̇| = 6.58; its domain keeps |θ̇| <= 8, so the speed clip of
#: Pendulum-v1 (left out of the plant) never acts on the certified set (F maps it into the
#: domain). The cart-pole's leave its box mostly in x and ẋ. The arm's all stay in its box:
#: its domain is the box.
DOMAINS = {
    "pendulum": [4.6, 8.0],
    "cartpole": [3.0, 0.72, 4.5, 2.4],
}

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


def proof_domain(name: str, box, domain: str, shrink: float = 1.0):
    """The proof domain (2, n) of a case: its box, or with ``domain="wide"`` the box of
    ``DOMAINS`` (scaled by ``shrink``) around the box's centre, x*."""
    if domain not in ("box", "wide"):
        raise ValueError(f"domain: expected 'box' or 'wide', received {domain!r}")
    if domain == "box" or name not in DOMAINS:
        return box
    centre, half = box.mean(0), shrink * np.asarray(DOMAINS[name])
    return np.stack([np.minimum(centre - half, box[0]), np.maximum(centre + half, box[1])])


# ---------------------------------------------------------------- 4. the simulated basin
def simulated_basin(plant, controller, box, x_star, *, grid: int, steps: int, reference=None,
                    domain=None):
    """Grid of initial states in the box, simulated for ``steps``; converged: within 1e-6.

    Returns the grid (N, n), whether each state converged (N,) and whether its trajectory
    stayed in ``domain`` (2, n; default the box) all along (N,).
    """
    n = box.shape[1]
    domain = box if domain is None else domain
    axes = [np.linspace(box[0, i], box[1, i], grid) for i in range(n)]
    G = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, n)
    chunk = 20000
    ends, stays = [], []
    for s in range(0, len(G), chunk):
        xs = closed_loop_rollout(plant, controller, G[s:s + chunk], steps, reference=reference)
        ends.append(xs[:, -1])
        stays.append(np.all((xs >= domain[0]) & (xs <= domain[1]), axis=(1, 2)))
    converged = np.linalg.norm(np.concatenate(ends) - x_star, axis=-1) < 1e-6
    return G, converged, np.concatenate(stays)


def check_by_simulation(roa, plant, controller, *, reference=None, states: int = 10_000,
                        transitions: int = 100_000, steps: int = 1500) -> dict:
    """The certificate against simulation (``plant.step``, the semantics of the proof).

    ``states`` uniform samples of the certified region run for ``steps`` steps (or past the
    latest of their proved steps): the fraction whose trajectory is in the invariant set after
    the state's proved number of steps (0 inside it, an entry box's otherwise), stays in it
    from there and ends within 1e-6 of x*.
    ``transitions`` samples of the invariant set, one step each: how many fail the decrease
    ``V(F(x)) < V(x)`` (for a learned V, inside the quadratic certificate's set N the decrease
    of its own V, which proves that part).
    """
    x0 = roa.sample(states, seed=0)
    k = roa.entry_step(x0)
    # past the latest proved step (a chained entry box's may be longer than ``steps``)
    steps = max(steps, int(k.max(initial=0)) + 1)
    xs = closed_loop_rollout(plant, controller, x0, steps, reference=reference)
    at_star = np.linalg.norm(xs - roa.x_star, axis=-1) < 1e-9
    after = np.arange(xs.shape[1])[None] >= k[:, None]
    stayed = (k >= 0) & np.all(roa.in_invariant_set(xs) | at_star | ~after, axis=1)
    converged = np.linalg.norm(xs[:, -1] - roa.x_star, axis=-1) < 1e-6
    x0 = roa.sample(transitions, seed=1)
    x0 = x0[roa.in_invariant_set(x0)]
    x1 = closed_loop_rollout(plant, controller, x0, 1, reference=reference)[:, 1]
    v0, v1 = roa.V(x0), roa.V(x1)
    if roa.near_P is not None:
        near = QuadraticLyapunov(roa.x_star, roa.near_P)
        q0, q1 = near.value(x0), near.value(x1)
        in_n = q0 <= roa.near_level
        v0, v1 = np.where(in_n, q0, v0), np.where(in_n, q1, v1)
    return {"stayed_and_converged": float((stayed & converged).mean()),
            "decrease_samples": int(len(x0)),
            "decrease_violations": int(((v1 >= v0) & (v0 > 0)).sum())}


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
    unknown = [s for s in shapes if s not in ("linearization", "rate", "fitted", "learned")]
    if unknown:
        raise ValueError(f"lyapunov: expected shapes among linearization, rate, fitted, learned, "
                         f"received {args.lyapunov!r}")
    all_cases = cases(args.shrink)
    for j, name in enumerate(chosen):
        plant, ctrl, ref, box, dims = all_cases[name]
        domain = proof_domain(name, box, args.domain, args.shrink)
        grid = args.grid if box.shape[1] == 2 else max(args.grid // 4, 5)
        basin = None
        for i, shape in enumerate(shapes):
            # ---- 3. the certificate
            t0, cpu0 = time.perf_counter(), time.process_time()
            opts = dict(SETTINGS[name])
            if shape == "linearization":
                opts.pop("rate")
            if domain is not box:  # the set cut by the domain may reach past the box
                opts["intersect_box"] = True
            roa = region_of_attraction(
                plant, ctrl, box=box, domain=domain, reference=ref, timeout=args.timeout,
                lyapunov=shape if shape in ("fitted", "learned") else "linearization",
                rounds=args.rounds, entry_steps=args.entry_steps,
                entry_grid=16 if box.shape[1] == 2 else 6, entry_timeout=args.entry_timeout,
                **opts)
            seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
            if basin is None:
                basin = simulated_basin(plant, ctrl, box, roa.x_star, grid=grid,
                                        steps=args.steps, reference=ref, domain=domain)
            G, conv, stays = basin
            inside = roa.contains(G)
            row = {
                "level": roa.level,
                "volume": roa.volume,
                "basin_volume": float(conv.mean() * np.prod(box[1] - box[0])),
                "fraction_of_basin": float((inside & conv).sum() / max(conv.sum(), 1)),
                # no certified set in the domain covers more: it is forward invariant
                "reachable_in_domain": float((conv & stays).sum() / max(conv.sum(), 1)),
                "certified_not_converged": int((inside & ~conv).sum()),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,  # all threads: on a loaded machine, vs. seconds
                "limited_by": roa.limited_by,
                "domain": args.domain if name in DOMAINS else "box",
                "lyapunov": roa.lyapunov,
                "entry_boxes": 0 if roa.entry is None else len(roa.entry),
            }
            if args.check and roa.certified:
                row.update(check_by_simulation(roa, plant, ctrl, reference=ref,
                                               steps=args.steps))
                print(f"{'':9s} {'':13s} simulation: {row['stayed_and_converged']:.2%} of 10^4 "
                      f"states of the region are in the invariant set after their steps, stay "
                      f"in it and converge; the decrease fails on {row['decrease_violations']} "
                      f"of {row['decrease_samples']} states of the invariant set")
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
        kind = type(f.default)
        if kind is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction,
                                default=f.default)
        else:
            parser.add_argument(f"--{f.name}", type=kind, default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse())
