"""Results of :func:`~neuroctl.verify.check_closed_loop`: verdict, sets, counterexample."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._json import json_dict
from .._report_table import format_box
from .reach import _state_axes
from .temporal import Property

__all__ = ["ClosedLoopResult", "Counterexample", "Replay"]


@dataclass(frozen=True)
class Replay:
    """An independent re-simulation of a counterexample.

    Attributes
    ----------
    violated : bool
        The replayed trajectory violates the property (robustness below ``-tol``).
    robustness : float
        Robustness of the replayed trajectory (negative: violated).
    deviation : float
        Largest difference between the replayed and the stored states, at the stored times.
    times : ndarray, shape (M,)
    states : ndarray, shape (M, n)
    commands : ndarray, shape (T, m)
    tol : float
    """

    violated: bool
    robustness: float
    deviation: float
    times: np.ndarray = field(repr=False)
    states: np.ndarray = field(repr=False)
    commands: np.ndarray = field(repr=False)
    tol: float = 0.0


@dataclass(eq=False)
class Counterexample:
    """A trajectory of the closed loop that violates the property.

    Attributes
    ----------
    x0 : ndarray, shape (n,)
        Initial state.
    times : ndarray, shape (M,)
        Times [s] at which the trajectory was read: every sampling instant (once per period it
        ends or starts) and, for a continuous plant, dense times between them.
    states : ndarray, shape (M, n)
    commands : ndarray, shape (T, m)
        Applied (saturated) command of each control period.
    disturbances : ndarray, shape (T, n_w) or None
        Disturbance held over each period.
    robustness : float
        Robustness of the trajectory (negative).
    semantics : str
        "continuous" (the ODE, scipy ``solve_ivp``) or "discrete" (``plant.step``).
    """

    x0: np.ndarray
    times: np.ndarray
    states: np.ndarray
    commands: np.ndarray
    disturbances: np.ndarray | None
    robustness: float
    semantics: str
    _context: tuple = field(repr=False, default=())

    @classmethod
    def _build(cls, plant, ctrl, spec, x0, steps, opts, special, w):
        from .trajectories import _robustness, _simulate

        ro = _simulate(
            plant,
            ctrl,
            x0[None],
            steps,
            opts["reference"],
            None if w is None else w[None],
            opts["semantics"],
            special,
        )
        return cls(
            x0=np.array(x0, float),
            times=ro.t_points,
            states=ro.z_states[0],
            commands=ro.commands[0],
            disturbances=None if w is None else np.array(w[:steps]),
            robustness=float(_robustness(spec, plant, ro)[0]),
            semantics=opts["semantics"],
            _context=(plant, ctrl, spec, steps, opts, special),
        )

    def replay(self, *, tol: float | None = None) -> Replay:
        """Re-simulate from ``x0`` alone and check the violation.

        The commands are recomputed by the controller from the replayed states; a continuous
        plant is integrated over each control period by scipy ``solve_ivp`` with another method
        than the search's (Radau, implicit, ``rtol=1e-10``, ``atol=1e-12``), a discrete one
        stepped by ``plant.step``.

        Parameters
        ----------
        tol : float, optional, keyword-only
            Violation needs robustness below ``-tol`` (default ``REPLAY_TOL = 1e-7``).

        Returns
        -------
        Replay
        """
        from .trajectories import REPLAY_TOL, _robustness, _simulate

        tol = REPLAY_TOL if tol is None else float(tol)
        plant, ctrl, spec, steps, opts, special = self._context
        w = None if self.disturbances is None else self.disturbances[None]
        ro = _simulate(
            plant,
            ctrl,
            self.x0[None],
            steps,
            opts["reference"],
            w,
            opts["semantics"],
            special,
            method="Radau",
        )
        rho = float(_robustness(spec, plant, ro)[0])
        dev = float(np.max(np.abs(ro.z_states[0] - self.states))) if self.states.size else 0.0
        return Replay(
            violated=bool(rho < -tol),
            robustness=rho,
            deviation=dev,
            times=ro.t_points,
            states=ro.z_states[0],
            commands=ro.commands[0],
            tol=tol,
        )

    @json_dict
    def to_dict(self) -> dict:
        return {
            "x0": self.x0.tolist(),
            "times": self.times.tolist(),
            "states": self.states.tolist(),
            "commands": self.commands.tolist(),
            "disturbances": None if self.disturbances is None else self.disturbances.tolist(),
            "robustness": self.robustness,
            "semantics": self.semantics,
        }

    def __repr__(self) -> str:
        with np.printoptions(precision=6, suppress=True):
            return (
                f"Counterexample(x0={self.x0}, robustness={self.robustness:.4g}, "
                f"semantics={self.semantics!r})"
            )


@dataclass(eq=False)
class ClosedLoopResult:
    """Outcome of :func:`~neuroctl.verify.check_closed_loop`.

    Attributes
    ----------
    status : {"holds", "violated", "unknown"}
    semantics : {"continuous", "discrete"}
        What the verdict is about: the ODE with zero-order hold, or the plant's discrete map.
    assumptions : str
        The model the verdict rests on, in words.
    spec : Property
    steps : int
    times : ndarray, shape (T+1,)
        Sampling instants [s].
    initial_lower, initial_upper : ndarray, shape (n,)
        The initial box.
    box_lower, box_upper : ndarray, shape (P, n)
        The sub-boxes proved (all of them, a partition of the initial box, when "holds").
    lower, upper : ndarray, shape (P, T+1, n)
        Enclosures of the states at the sampling instants, per proved sub-box.
    tube_lower, tube_upper : ndarray, shape (P, T, n)
        Boxes enclosing every state over each control period, per proved sub-box (for the
        discrete map, which has no states between samples: the hull of the two samples).
    counterexample : Counterexample or None
        With "violated": a trajectory that violates the property, confirmed by a replay.
    time : float
        Seconds.
    stats : dict
        ``boxes_analysed``, ``boxes_split``, ``boxes_proved``, ``proof_failures``,
        ``simulations``, ``falsification_time``, ``proof_time``.
    notes : list of str
        Why an answer is "unknown" (timeout, budget, failures of the proof).
    """

    status: str
    semantics: str
    assumptions: str
    spec: Property
    steps: int
    times: np.ndarray
    initial_lower: np.ndarray
    initial_upper: np.ndarray
    box_lower: np.ndarray
    box_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    tube_lower: np.ndarray
    tube_upper: np.ndarray
    counterexample: Counterexample | None
    time: float
    stats: dict
    notes: list
    state_names: tuple = ()

    @classmethod
    def _build(
        cls,
        *,
        status,
        semantics,
        assumptions,
        spec,
        plant,
        steps,
        initial_lower,
        initial_upper,
        proved,
        counterexample,
        time,
        stats,
        notes,
    ):
        n = plant.n_states

        def cat(j, shape):
            return np.stack([p[j] for p in proved]) if proved else np.zeros((0, *shape))

        return cls(
            status=status,
            semantics=semantics,
            assumptions=assumptions,
            spec=spec,
            steps=steps,
            times=np.arange(steps + 1) * plant.dt,
            initial_lower=initial_lower,
            initial_upper=initial_upper,
            box_lower=cat(0, (n,)),
            box_upper=cat(1, (n,)),
            lower=cat(2, (steps + 1, n)),
            upper=cat(3, (steps + 1, n)),
            tube_lower=cat(4, (steps, n)),
            tube_upper=cat(5, (steps, n)),
            counterexample=counterexample,
            time=time,
            stats=dict(stats),
            notes=list(notes),
            state_names=plant.state_names,
        )

    @property
    def proved_fraction(self) -> float:
        """Fraction of the initial box's volume covered by proved sub-boxes (1 when "holds")."""
        w0 = self.initial_upper - self.initial_lower
        flat = w0 > 0
        if not self.box_lower.shape[0]:
            return 0.0
        vol = np.prod((self.box_upper - self.box_lower)[:, flat] / w0[flat], axis=1)
        return float(vol.sum())

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {
            "status": self.status,
            "semantics": self.semantics,
            "assumptions": self.assumptions,
            "spec": self.spec.to_dict(),
            "steps": self.steps,
            "times": self.times.tolist(),
            "initial_lower": self.initial_lower.tolist(),
            "initial_upper": self.initial_upper.tolist(),
            "box_lower": self.box_lower.tolist(),
            "box_upper": self.box_upper.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "tube_lower": self.tube_lower.tolist(),
            "tube_upper": self.tube_upper.tolist(),
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
            "time": self.time,
            "stats": dict(self.stats),
            "notes": list(self.notes),
        }

    def summary(self) -> list[str]:
        """The result in words, as lines of text: the initial box, the property over the
        horizon, the semantics and its assumptions, the verdict with the search's figures, the
        counterexample if any, and the notes."""
        names = ", ".join(self.state_names or [f"x[{i}]" for i in range(self.initial_lower.size)])
        s = self.stats
        lines = [
            f"initial box ({names}): {format_box(self.initial_lower, self.initial_upper)}",
            f"property: {self.spec!r} over {self.steps} periods ({self.times[-1]:g} s)",
            f"semantics: {self.semantics} ({self.assumptions})",
            f"{self.status} in {self.time:.2f} s ({s.get('boxes_proved', 0)} sub-boxes proved of "
            f"{s.get('boxes_analysed', 0)} analysed, {s.get('simulations', 0)} simulations)",
        ]
        ce = self.counterexample
        if ce is not None:
            lines.append(
                f"counterexample: x0 = {np.round(ce.x0, 6).tolist()}, robustness "
                f"{ce.robustness:.4g} (negative: violated), {ce.commands.shape[0]} commands, "
                f"{ce.times.size} states read"
            )
        lines += [f"note: {note}" for note in self.notes]
        return lines

    def plot(self, *, ax=None, states=None):
        """Sets at the samples and tubes between them (hull over proved sub-boxes), with the
        counterexample if any.

        Returns
        -------
        matplotlib.figure.Figure
        """

        n = self.initial_lower.size
        idx = list(range(n)) if states is None else list(states)
        fig, axes = _state_axes(len(idx), ax)
        for a, i in zip(axes, idx):
            if self.lower.shape[0]:
                lo, up = self.lower[..., i].min(0), self.upper[..., i].max(0)
                a.fill_between(self.times, lo, up, alpha=0.35, label="sets at the samples")
                if self.steps and self.semantics == "continuous":
                    tl, tu = self.tube_lower[..., i].min(0), self.tube_upper[..., i].max(0)
                    tt = np.repeat(self.times, 2)[1:-1]
                    a.fill_between(
                        tt, np.repeat(tl, 2), np.repeat(tu, 2), alpha=0.15, label="tubes"
                    )
            if self.counterexample is not None:
                ce = self.counterexample
                a.plot(ce.times, ce.states[:, i], color="r", lw=1.2, label="counterexample")
            a.set_ylabel(self.state_names[i] if self.state_names else f"x[{i}]")
        axes[0].legend(loc="upper right")
        axes[0].set_title(f"{self.status} ({self.semantics})")
        axes[-1].set_xlabel("time [s]")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        s = self.stats
        extra = ""
        if self.counterexample is not None:
            extra = f", counterexample at x0={np.array2string(self.counterexample.x0, precision=4)}"
        elif self.status == "unknown":
            extra = f", proved {100 * self.proved_fraction:.1f}% of the initial box"
        return (
            f"ClosedLoopResult({self.status!r}, semantics={self.semantics!r}, "
            f"steps={self.steps}, boxes proved {s.get('boxes_proved', 0)} / analysed "
            f"{s.get('boxes_analysed', 0)}, split {s.get('boxes_split', 0)}{extra}, "
            f"time={self.time:.3g}s)"
        )
