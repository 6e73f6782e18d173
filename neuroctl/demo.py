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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._json import json_dict
from .episodes import (
    Controller,
    InputError,
    Progress,
    env_plant,
    load_controller,
    make_env,
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

    @json_dict
    def to_dict(self) -> dict:
        return {
            **self.summary,
            "report": str(self.report_path),
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return f"DemoResult(report_path={str(self.report_path)!r}, {self.seconds:.1f} s)"

    def report(self, *, tables: bool = True) -> str:
        """What ``neuroctl demo`` prints (``neuroctl report``: without the tables).

        Parameters
        ----------
        tables : bool, keyword-only
            Start with the report's tables as plain text (:attr:`text`) and an empty line.

        Returns
        -------
        str
            Then one ``note: ...`` line per note, and where the report was written, with the
            run's wall-clock time in seconds.
        """
        lines = [self.text, ""] if tables else []
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"report written to {self.report_path} ({self.seconds:.1f} s)")
        return "\n".join(lines)


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
    """Copies of ``rows`` for display, an empty cell (``None``) of column ``c`` replaced by
    ``Missing(reasons[c])``: the report shows it as "n/a" with the reason as a footnote, so a
    table never shows a blank without saying why."""
    from .report import Missing

    out = []
    for row in rows:
        shown = dict(row)
        for col, reason in reasons.items():
            if col in shown and shown[col] is None:
                shown[col] = Missing(reason)
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
    _roa_row(demo, sec, env, ctrl)
    env.close()
    demo.progress.update(1)


def _roa_row(demo: _Demo, sec, env, ctrl) -> None:
    """Certified region of attraction of the controller's closed loop (state box ±1 rad,
    ±3 rad/s around the origin)."""
    try:
        from neuroctl.verify import region_of_attraction

        plant = env_plant(env)
        box = np.array([[-1.0, -3.0], [1.0, 3.0]])
        roa = region_of_attraction(plant, ctrl.module, box=box, timeout=10.0 if demo.quick
                                   else 30.0)
    except Exception as exc:  # noqa: BLE001
        demo.note(sec, f"region of attraction: not available ({type(exc).__name__}: {exc})")
        return
    row = {
        "controller": ctrl.name,
        "semantics": roa.semantics,
        "certified": roa.certified,
        "level": roa.level,
        "volume [rad^2/s]": roa.volume,
        "fraction of the box": roa.volume / float(np.prod(box[1] - box[0])),
        "limited by": roa.limited_by,
        "time [s]": roa.time,
    }
    sec.add_table([row], caption="Region of attraction (neuroctl.verify.region_of_attraction): "
                  "{V <= level} of a quadratic Lyapunov function from the exact linearization, "
                  "proved to lie in the region of attraction of the discrete closed loop, inside "
                  "the state box theta in [-1, 1] rad, speed in [-3, 3] rad/s")
    demo.summary["region_of_attraction"] = row


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
        from ._demo_ring import ring_section

        for part in (ring_section, _arm_section, _verify_section):
            part(demo)
    index = Path(report.write(out)).resolve()
    return DemoResult(
        report_path=index,
        summary=demo.summary,
        notes=list(demo.notes),
        text=report.to_text(),
        seconds=time.perf_counter() - start,
    )
