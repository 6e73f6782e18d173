"""The main job as a library function: ring road, arm, verification, and their report.

``neuroctl.demo.run(out_dir)`` simulates a traffic ring road with and without an automated
vehicle, the arm with ReLU, tanh and sigmoid controllers and with the shipped policy, analyses
each closed loop at its operating point (exact local gains handed to python-control), checks one
verification query on the shipped arm policy, and writes an HTML report. ``neuroctl demo`` and
``neuroctl report`` call it.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .episodes import (
    Controller,
    InputError,
    Progress,
    load_controller,
    make_env,
    rollout,
    rollout_metrics,
    stability_report,
    verify_query,
)

__all__ = ["DemoResult", "explain_cells", "run", "slope_controller", "stability_rows"]


@dataclass
class DemoResult:
    """What :func:`run` computed and wrote.

    Attributes
    ----------
    report_path : pathlib.Path
        The report's ``index.html`` (absolute).
    summary : dict
        The numbers of every section (``"ring"``, ``"arm"``, ``"verification"``), plain data.
    notes : list of str
        What could not be computed, and why.
    text : str
        The report's tables as plain text.
    seconds : float
        Wall-clock time of the run.
    """

    report_path: Path
    summary: dict
    notes: list = field(default_factory=list)
    text: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            **self.summary,
            "report": str(self.report_path),
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return f"DemoResult(report_path={str(self.report_path)!r}, {self.seconds:.1f} s)"


def check_out_dir(out_dir) -> Path:
    """``out_dir``, created if new, if a report can be written there (new, or an earlier report).

    Raises
    ------
    InputError
        A file, a folder holding other files, or a place where no folder can be created.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"out_dir {out}: expected a folder, received a file")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").exists():
        raise InputError(
            f"out_dir {out}: expected a new folder or an earlier report, received a folder "
            "with other files"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"out_dir {out}: expected a folder that can be created, received an error "
            f"({exc.strerror or exc})"
        ) from None
    return out


def explain_cells(rows, reasons: dict) -> list[dict]:
    """Copies of ``rows`` for display, an empty cell (``None``) of column ``c`` written as
    ``"n/a (reasons[c])"``: a table never shows a blank without saying why."""
    out = []
    for row in rows:
        shown = dict(row)
        for col, reason in reasons.items():
            if col in shown and shown[col] is None:
                shown[col] = f"n/a ({reason})"
        out.append(shown)
    return out


STABILITY_CELLS = {
    "overshoot [%]": "unstable: no step response to settle",
    "rise [s]": "unstable: no step response to settle",
    "PM [deg]": "no single-input loop to break",
    "GM": "no single-input loop to break",
    "damping": "no pole",
    "wn [rad/s]": "no pole",
}
"""Why a cell of :func:`stability_rows` can be empty."""

INF_NOTE = (
    "inf in a table: a period of inf is a real (non-oscillating) mode; a gain margin of inf "
    "means the loop's phase never crosses -180 deg, so no gain increase destabilizes it; a "
    "validity radius of inf means the controller is affine everywhere."
)


def stability_rows(label: str, report) -> list[dict]:
    """One table row per activation region of a StabilityReport."""
    rows = []
    for r in report.regions:
        si = r.step_info or {}
        mg = r.margins or {}
        rows.append(
            {
                "controller": label,
                "region": r.index,
                "verdict": r.verdict,
                ("max Re [1/s]" if report.continuous else "|z| max"): (
                    r.max_real if report.continuous else r.spectral_radius
                ),
                "damping": r.damping,
                "wn [rad/s]": r.natural_frequency,
                "overshoot [%]": si.get("Overshoot"),
                "rise [s]": si.get("RiseTime"),
                "PM [deg]": mg.get("phase_margin"),
                "GM": mg.get("gain_margin"),
            }
        )
    return rows


def slope_controller(activation: str, *, gain: float, weight: float = 1.0, offset: float = 0.5):
    """``u = gain * act(weight * e)`` on the arm observation ``[e, omega, sin, cos]`` as a net.

    ReLU is shifted to be active at ``e = 0`` (``gain * (relu(weight e + offset) - offset)``) and
    the sigmoid is centred (``gain * (sigmoid(weight e) - 1/2)``) so that ``u = 0`` at the target;
    the slopes there are 1 (ReLU, tanh) and 1/4 (sigmoid): the activation-slope table.
    """
    import torch
    from torch import nn

    from .controllers import ACTIVATIONS

    first, last = nn.Linear(4, 1).double(), nn.Linear(1, 1).double()
    shift = {"relu": offset}.get(activation, 0.0)
    centre = {"relu": -gain * offset, "sigmoid": -gain / 2}.get(activation, 0.0)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[weight, 0.0, 0.0, 0.0]]))
        first.bias.fill_(shift)
        last.weight.fill_(gain)
        last.bias.fill_(centre)
    net = nn.Sequential(first, ACTIVATIONS[activation](), last)
    return net.requires_grad_(False)


@dataclass
class _Demo:
    quick: bool
    progress: Progress
    report: Any
    summary: dict
    notes: list

    def note(self, section, text: str) -> None:
        self.notes.append(text)
        section.add_note(text)


def _ring_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    from neuroctl.envs.ring_road import IDMParams, idm_acceleration, uniform_flow_equilibrium
    from neuroctl.envs.ring_road.render import RingTrajectory

    sec = demo.report.section(
        "Ring road: a stop-and-go wave and an automated vehicle",
        "22 cars on a 230 m single-lane ring (Sugiyama et al. 2008), IDM humans with Flow's "
        "parameters and acceleration noise, dt = 0.1 s, 750 warm-up steps, then 300 s recorded "
        "(the quick run records 60 s). The uniform flow is string unstable, so a wave forms; one "
        "automated vehicle (car 0) driven by FollowerStopper (Stern et al. 2018) or by the "
        "shipped neural policy damps it.",
    )
    steps = 600 if demo.quick else 3000
    kw = dict(ring_length=230.0, n_vehicles=22)
    scenarios = [
        ("all human", {"n_av": 0}, "human"),
        ("FollowerStopper", {"n_av": 1}, "followerstopper"),
        ("neural AV (pretrained)", {"n_av": 1}, "pretrained"),
    ]
    rows, trajs, stab_rows, string_rows = [], [], [], []
    for label, extra, ctrl_name in scenarios:
        demo.progress.update(0, note=f"ring: {label}")
        env = make_env("neuroctl/RingRoad-v0", {**kw, **extra})
        try:
            ctrl = load_controller(ctrl_name, env)
        except InputError as exc:
            demo.note(sec, f"{label}: skipped ({exc})")
            demo.progress.update(1)
            continue
        ro = rollout(env, ctrl, seed=0, steps=steps)
        metrics = rollout_metrics(env, ro)
        rows.append({"scenario": label, **{k: v for k, v in metrics.items() if k != "steps"}})
        p = env.unwrapped.params
        n = p.n_vehicles
        trajs.append(
            RingTrajectory(
                times=ro.times,
                positions=ro.states[:, :n],
                speeds=ro.speeds,
                gaps=ro.gaps,
                ring_length=env.unwrapped.ring_length,
                av_indices=np.asarray(p.av_indices),
                failsafe=np.zeros((len(ro.rewards), p.n_av), bool),
                label=label,
                vehicle_length=p.vehicle_length,
            )
        )
        try:
            rep = stability_report(env, ctrl.module)
            for reg in rep.regions:
                stab_rows.append(
                    {
                        "scenario": label,
                        "region": reg.index,
                        "verdict": reg.verdict,
                        "max Re [1/s]": reg.max_real,
                        "growth [1/s]": reg.growth_rate,
                        "period [s]": reg.period,
                        "damping": reg.damping,
                    }
                )
        except Exception as exc:  # noqa: BLE001 - report what could not be analysed
            demo.note(
                sec, f"{label}: stability analysis not available ({type(exc).__name__}: {exc})"
            )
        env.close()
        demo.progress.update(1)
    # string stability of each car-following law at the uniform-flow equilibrium
    try:
        import functools

        import neuroctl

        gap, speed = uniform_flow_equilibrium(n_vehicles=22, ring_length=230.0)
        laws = [("IDM human", functools.partial(idm_acceleration, params=IDMParams()))]
        for label, _, ctrl_name in scenarios[1:]:
            env = make_env("neuroctl/RingRoad-v0", {**kw, "n_av": 1})
            try:
                laws.append((label, load_controller(ctrl_name, env).module))
            except InputError:
                pass
            env.close()
        for label, law in laws:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    ss = neuroctl.string_stability(law, gap=float(gap))
                for w in caught:
                    demo.note(sec, f"string stability of {label}: warning {w.message}")
                wave = _wave_frequency(stab_rows)
                string_rows.append(
                    {
                        "law": label,
                        "gap [m]": ss.gap,
                        "speed [m/s]": ss.speed,
                        "peak gain": ss.peak_gain,
                        "peak at [rad/s]": ss.peak_frequency,
                        "gain at the wave": None if wave is None else _gain(ss.transfer, wave),
                        "string stable": ss.string_stable,
                        "Ward-Wilson": ss.ward_wilson,
                    }
                )
            except Exception as exc:  # noqa: BLE001
                demo.note(sec, f"string stability of {label} not available ({exc})")
    except Exception as exc:  # noqa: BLE001
        demo.note(sec, f"string stability not available ({type(exc).__name__}: {exc})")
    if rows:
        sec.add_table(
            rows,
            caption="Simulation metrics after the warm-up (speeds in m/s, gaps in "
            "m, flow in vehicles/h)",
        )
    demo.summary["ring"] = {"metrics": rows, "stability": stab_rows, "string": string_rows}
    if trajs:
        v_max = max(float(t.speeds.max()) for t in trajs)
        fig, axes = plt.subplots(len(trajs), 1, figsize=(9, 3.2 * len(trajs)), squeeze=False)
        for ax, t in zip(axes[:, 0], trajs):
            t.plot(ax=ax, stride=5, v_max=v_max)
        for ax, t in zip(axes[:, 0], trajs):  # plot() titles the figure's first axes
            ax.set_title(t.label)
        fig.tight_layout()
        sec.add_figure(
            fig,
            "ring-space-time",
            caption="Space-time diagrams: each car's position "
            "along the ring, coloured by speed; the wave shows as red bands travelling "
            "backwards. The AV is the black line.",
        )
        fig, axes = plt.subplots(
            len(trajs), 1, sharex=True, sharey=True, figsize=(9, 2.4 * len(trajs)), squeeze=False
        )
        for ax, t in zip(axes[:, 0], trajs):
            ax.plot(t.times, t.speeds, lw=0.5, color="0.6")
            for i in t.av_indices:
                ax.plot(t.times, t.speeds[:, int(i)], lw=1.2, color="C3", label="AV")
            ax.set_ylabel("speed [m/s]")
            ax.set_title(t.label, fontsize=10)
        axes[-1, 0].set_xlabel("time after warm-up [s]")
        fig.tight_layout()
        sec.add_figure(fig, "ring-speeds", caption="Speeds of all cars (grey) and of the AV (red).")
    if stab_rows:
        human = next((r for r in stab_rows if r["scenario"] == "all human"), None)
        verdict = (
            ""
            if human is None
            else f" The all-human uniform flow is {human['verdict']} (largest real part "
            f"{human['max Re [1/s]']:+.4g} 1/s; Ward & Wilson 2011 predict string instability)."
        )
        sec.add_text(
            "Linear stability of the whole ring (44 states) at uniform flow, continuous "
            "model, exact Jacobians; the neutral shift of all positions is factored out."
            + verdict
            + " Growth rate and period are those of the least stable mode."
        )
        sec.add_table(
            explain_cells(stab_rows, {"period [s]": "no mode", "damping": "no mode"}),
            caption="Ring stability at the uniform-flow equilibrium. " + INF_NOTE,
        )
    if string_rows:
        sec.add_table(
            explain_cells(string_rows, {"gain at the wave": "the all-human ring was not analysed"}),
            caption="String stability (leader speed to follower speed; stable iff peak gain <= "
            "1); 'gain at the wave' is |G(j w)| at the frequency of the all-human ring's least "
            "stable mode",
        )
        text = _string_stability_explained(rows, stab_rows, string_rows)
        if text:
            sec.add_text(text)


def _wave_frequency(stab_rows) -> float | None:
    """rad/s of the all-human ring's least stable mode (its stop-and-go wave), if oscillating."""
    human = next((r for r in stab_rows if r["scenario"] == "all human"), None)
    period = None if human is None else human.get("period [s]")
    if period is None or not np.isfinite(period) or period <= 0:
        return None
    return 2 * np.pi / float(period)


def _gain(transfer, omega: float) -> float:
    """``|G(j omega)|`` of a python-control transfer function."""
    return float(abs(complex(np.squeeze(transfer(1j * omega)))))


def _string_stability_explained(metrics, stab_rows, string_rows) -> str:
    """Why a law can be 'not string stable' and still damp the ring's wave, in this run's numbers.

    String stability is a property of the linearization at uniform flow of an infinite platoon
    of cars that all drive the same law; the ring holds one AV among humans, and the wave is the
    nonlinear ring's behaviour under it. The two agree once the frequency is looked at.
    """
    by_metrics = {r["scenario"]: r for r in metrics}
    by_stab = {r["scenario"]: r for r in stab_rows}
    wave = _wave_frequency(stab_rows)
    human = by_metrics.get("all human")
    parts = []
    for row in string_rows:
        label = row["law"]
        ring, sim = by_stab.get(label), by_metrics.get(label)
        if row["string stable"] or ring is None or sim is None or human is None:
            continue
        if ring["verdict"] != "stable" or sim["speed_std"] >= human["speed_std"]:
            continue
        at_wave = row["gain at the wave"]
        wave_text = (
            ""
            if wave is None or at_wave is None
            else f" At the frequency of the ring's stop-and-go wave ({wave:.3g} rad/s, a period "
            f"of {2 * np.pi / wave:.3g} s: the least stable mode of the all-human ring) its gain "
            f"is {at_wave:.3g}: it passes on {'less' if at_wave < 1 else 'more'} than it "
            "receives."
        )
        parts.append(
            f"Why {label} damps the wave although it is 'not string stable': string stability "
            "is a property of the linearization at uniform flow of an infinite platoon in which "
            f"every car drives this law; there a leader's speed oscillation grows by up to the "
            f"peak gain {row['peak gain']:.4g} per car. That peak lies at "
            f"{row['peak at [rad/s]']:.3g} rad/s (a period of "
            f"{2 * np.pi / row['peak at [rad/s]']:.3g} s), a slow drift of the flow."
            + wave_text
            + f" On the ring it is one car among humans: the whole ring's linearization with it "
            f"is stable (largest real part {ring['max Re [1/s]']:+.3g} 1/s), and the nonlinear "
            f"simulation agrees: the speed spread falls from {human['speed_std']:.3g} m/s (all "
            f"human) to {sim['speed_std']:.3g} m/s."
        )
    return "\n\n".join(parts)


def _arm_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    from .simulate import simulate

    sec = demo.report.section(
        "Arm: the activation's slope acts as a proportional gain",
        "A single link, I = 1/3 kg m^2, friction 0.5 N m s/rad, driven by u = k act(w (r - theta)) "
        "with the same weights for ReLU, tanh and sigmoid: at the target the slope is 1 for ReLU "
        "(active side) and tanh, 1/4 for the centred sigmoid. Horizontal arm (no gravity, k w = "
        "4) and upright arm (k_g = -5, k w = 8).",
    )
    # (name, gravity, gain k, initial angle, target): a step for the horizontal arm, a release
    # from 0.1 rad off the balance point for the upright one
    configs = [("horizontal", 0.0, 4.0, 0.0, 0.3), ("upright", -10.0, 8.0, 0.1, 0.0)]
    rows, stab_rows, pole_figs = [], [], []
    steps = 150
    fig_sim, axes_sim = plt.subplots(1, len(configs), figsize=(10, 3.4), squeeze=False)
    for ci, (config, gravity, gain, theta0, target) in enumerate(configs):
        env = make_env(
            "neuroctl/Arm-v0", {"mass": 1.0, "length": 1.0, "friction": 0.5, "gravity": gravity}
        )
        plant = env.unwrapped.plant
        for activation in ("relu", "tanh", "sigmoid"):
            demo.progress.update(0, note=f"arm: {config} {activation}")
            net = slope_controller(activation, gain=gain)
            label = f"{activation} ({config})"
            x0 = np.array([theta0, 0.0])
            traj = simulate(plant, net, x0, steps, reference=np.array([target]))
            theta = traj.states[:, 0]
            dev = theta - target
            rows.append(
                {
                    "arm": config,
                    "activation": activation,
                    "start [rad]": theta0,
                    "target [rad]": target,
                    "final error [rad]": float(-dev[-1]),
                    "max |theta - target| after 1 s": float(np.abs(dev[traj.times >= 1]).max()),
                    "peak [rad]": float(theta.max()),
                    "max |u| [N m]": float(np.abs(traj.inputs).max()),
                }
            )
            axes_sim[0, ci].plot(traj.times, theta, label=activation)
            try:
                rep = stability_report(env, net, reference=[target])
                stab_rows += stability_rows(label, rep)
                fig = rep.plot()
                fig.suptitle(f"{label}: {rep.verdict}")
                fig.tight_layout()
                pole_figs.append((fig, f"arm-{config}-{activation}", label))
            except Exception as exc:  # noqa: BLE001
                demo.note(
                    sec, f"{label}: stability analysis not available ({type(exc).__name__}: {exc})"
                )
        axes_sim[0, ci].axhline(target, color="k", lw=0.8, ls=":")
        axes_sim[0, ci].set_title(f"{config} arm: from {theta0} rad to target {target} rad")
        axes_sim[0, ci].set_xlabel("time [s]")
        axes_sim[0, ci].set_ylabel("theta [rad]")
        axes_sim[0, ci].legend(fontsize=8)
        env.close()
        demo.progress.update(1)
    fig_sim.tight_layout()
    sec.add_table(
        rows, caption="Simulation of the nonlinear plant, 3 s from rest at the start angle"
    )
    sec.add_figure(
        fig_sim,
        "arm-steps",
        caption="Simulated responses (nonlinear plant): higher "
        "slope, faster and more oscillating; the sigmoid's low slope cannot hold the "
        "upright arm.",
    )
    sec.add_table(
        explain_cells(stab_rows, STABILITY_CELLS),
        caption="Linear stability at the target (continuous model). " + INF_NOTE,
    )
    for fig, name, label in pole_figs:
        sec.add_figure(
            fig,
            name,
            half=True,
            caption=f"{label}: closed-loop poles and the step "
            "response of every activation region (linear model)",
        )
    demo.summary["arm"] = {"simulation": rows, "stability": stab_rows}
    _arm_policy_part(demo, sec)


def _arm_policy_part(demo: _Demo, sec) -> None:
    """The shipped ReLU policy of Arm-v0 (gravity on): success rate and stability at a target."""
    env = make_env("neuroctl/Arm-v0")
    try:
        ctrl = load_controller("pretrained", env)
    except InputError as exc:
        demo.note(sec, f"shipped arm policy: skipped ({exc})")
        env.close()
        return
    try:
        from neuroctl.train import arm_success_rate

        n = 20 if demo.quick else 100
        res = arm_success_rate(ctrl.module, n=n, seed=0)
        target = 0.5
        rep = stability_report(env, ctrl.module, reference=[target])
        sec.add_text(
            "The shipped ReLU policy of neuroctl/Arm-v0 (vertical arm with gravity, trained by "
            "differentiable simulation; a small ReLU network): a target is reached when |error| < "
            "0.05 rad and |speed| < 0.1 rad/s at 3 s. Its closed loop at a target is analysed "
            "with the network's exact local gain."
        )
        sec.add_table(
            [
                {
                    "random targets": res.get("n_targets", n),
                    "reached (fraction)": res.get("success_rate"),
                    "max |error| [rad]": res.get("max_abs_error"),
                    "max |speed| [rad/s]": res.get("max_abs_speed"),
                }
            ],
            caption="Shipped policy on random targets (simulated, nonlinear plant)",
        )
        sec.add_table(
            explain_cells(
                stability_rows(f"shipped ReLU policy, target {target} rad", rep), STABILITY_CELLS
            ),
            caption="Shipped policy: linear stability at the target. " + INF_NOTE,
        )
        fig = rep.plot()
        fig.suptitle(f"shipped ReLU policy at target {target} rad: {rep.verdict}")
        fig.tight_layout()
        sec.add_figure(
            fig,
            "arm-pretrained",
            caption="Shipped policy: closed-loop poles and the "
            "step response of every activation region at the target",
        )
        demo.summary["arm"]["pretrained"] = {**res, "verdict": rep.verdict}
    except Exception as exc:  # noqa: BLE001
        demo.note(sec, f"shipped arm policy: not available ({type(exc).__name__}: {exc})")
    env.close()


def _verify_section(demo: _Demo) -> None:
    import matplotlib.pyplot as plt

    sec = demo.report.section("Verification: can the controller command a dangerous torque?")
    try:
        from neuroctl.verify import Spec
    except ImportError as exc:
        demo.note(sec, f"verification not available ({exc})")
        demo.progress.update(1)
        return
    env = make_env("neuroctl/Arm-v0")
    max_torque = float(env.action_space.high[0])
    try:
        ctrl = load_controller("pretrained", env)
        what = "the shipped ReLU policy of neuroctl/Arm-v0"
    except InputError:
        ctrl = Controller(slope_controller("relu", gain=4.0), "relu", "ReLU slope controller")
        what = "the ReLU slope controller (no shipped policy available)"
    # near the target (small error, slow) at any angle of the lower half plane
    theta_lo, theta_hi = -np.pi / 2, np.pi / 2
    lower = np.array([-0.1, -0.5, np.sin(theta_lo), 0.0])
    upper = np.array([0.1, 0.5, np.sin(theta_hi), 1.0])
    bound = 0.9 * max_torque
    spec = Spec.output_range(1, lower=[-bound], upper=[bound], name=f"|u| <= {bound:g} N m")
    sec.add_text(
        f"Query on {what}: for every observation with target error in [-0.1, 0.1] rad, speed in "
        f"[-0.5, 0.5] rad/s and the arm anywhere in the lower half plane (sin theta in [-1, 1], "
        f"cos theta in [0, 1]), does the commanded torque stay within +-{bound:g} N m (90% of "
        f"the actuator limit, a margin kept for disturbances)? Answered by neuroctl.verify.check: "
        "falsification first, then branch and bound with linear-relaxation bounds; 'holds' is a "
        "proof over the whole box (which, being a box, also contains (sin, cos) pairs that no "
        "angle has: the proof covers more than the physical states), 'violated' comes with a "
        "counterexample re-checked in float64."
    )
    try:
        res = verify_query(ctrl.module, lower, upper, spec, timeout=30.0)
    except (InputError, Exception) as exc:  # noqa: BLE001
        demo.note(sec, f"verification not available ({type(exc).__name__}: {exc})")
        env.close()
        demo.progress.update(1)
        return
    row = {
        "controller": ctrl.name,
        "property": spec.name,
        "status": res.status,
        "margin": res.margin,
        "time [s]": res.time,
    }
    sec.add_table([row], caption="Verification result")
    names = ["error [rad]", "speed [rad/s]", "sin theta", "cos theta"]
    if res.counterexample is not None:
        sec.add_table(
            [
                {"input": n, "lower": a, "upper": b, "counterexample": c}
                for n, a, b, c in zip(names, lower, upper, res.counterexample)
            ],
            caption=f"Counterexample: command {float(np.ravel(res.output)[0]):.4g} N m",
        )
    # the command over the box, sampled, against the bound
    rng = np.random.default_rng(0)
    xs = lower + (upper - lower) * rng.random((4000, 4))
    import torch

    with torch.no_grad():
        dtype = next(ctrl.module.parameters()).dtype
        us = ctrl.module(torch.as_tensor(xs, dtype=dtype)).double().numpy()[:, 0]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(xs[:, 0], us, s=2, alpha=0.4, label="sampled observations")
    ax.axhline(bound, color="C3", lw=1)
    ax.axhline(-bound, color="C3", lw=1, label="bound")
    if res.counterexample is not None:
        ax.plot(res.counterexample[0], np.ravel(res.output)[0], "k*", ms=12, label="counterexample")
    ax.set_xlabel("target error [rad]")
    ax.set_ylabel("command [N m]")
    ax.legend(fontsize=8)
    ax.set_title(f"{spec.name}: {res.status}")
    fig.tight_layout()
    sec.add_figure(
        fig,
        "verify",
        caption="Commands of sampled observations of the box; the proof "
        "covers every observation, the samples only illustrate.",
    )
    demo.summary["verification"] = {
        **row,
        "status": res.status,
        "lower": lower,
        "upper": upper,
        "bound": bound,
        "counterexample": res.counterexample,
        "output": res.output,
    }
    env.close()
    demo.progress.update(1)


def run(
    out_dir: str | Path = "neuroctl-report",
    *,
    quick: bool = False,
    progress: bool | None = None,
) -> DemoResult:
    """Run the main job and write its HTML report.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Report folder: a new one, or one holding an earlier report (overwritten).
    quick : bool, keyword-only
        Shorter ring simulations (60 s recorded instead of 300 s) and fewer arm targets.
    progress : bool or None, keyword-only
        Show a progress bar on stderr; ``None``: when stderr is a terminal.

    Returns
    -------
    DemoResult

    Raises
    ------
    InputError
        ``out_dir`` cannot hold the report (see :func:`check_out_dir`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from .report import Report

    out = check_out_dir(out_dir)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.perf_counter()
    report = Report(
        "neuroctl demo: neural controllers in closed loop",
        intro="Simulation, stability analysis (exact local gains handed to python-control) and "
        "verification of neural and classical controllers on a traffic ring road and a "
        "robot arm. Every number below was computed by this run.",
    )
    demo = _Demo(
        quick=bool(quick),
        progress=Progress(6, "demo", enabled=progress),
        report=report,
        summary={},
        notes=[],
    )
    with demo.progress:
        for part in (_ring_section, _arm_section, _verify_section):
            part(demo)
    index = Path(report.write(out)).resolve()
    return DemoResult(
        report_path=index,
        summary=demo.summary,
        notes=list(demo.notes),
        text=report.to_text(),
        seconds=time.perf_counter() - start,
    )
