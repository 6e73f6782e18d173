"""The result of a training run, and the pieces shared by the RL and diffsim trainers."""

from __future__ import annotations

import csv
import io
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._json import json_dict
from .export import atomic_write_text

__all__ = ["TrainResult", "CsvLog", "command_line", "policy_summary"]


def command_line(func: str, **kwargs) -> str:
    """The Python call that reproduces a run, e.g. ``neuroctl.train.train_rl('x', steps=10)``."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{func}({args})"


def cli_command(env_id: str, algo: str, activation: str, steps: int, seed: int, out) -> str:
    """The equivalent ``neuroctl train`` command line."""
    return (
        f"neuroctl train {shlex.quote(env_id)} --algo {algo} --activation {activation} "
        f"--steps {steps} --seed {seed} --out {shlex.quote(str(out))}"
    )


class CsvLog:
    """Append-only CSV log keyed by a step column (survives resumes without repeating rows).

    Parameters
    ----------
    path : str or Path
    fields : list of str
        Column names; ``key`` among them.
    key : str
        The step column. A row whose key equals the last row's is not written again (a session
        that logs at its last step and again when it closes writes one row).
    keep_until : int, optional
        On resume, the step of the checkpoint the run continues from: rows past it (logged
        after the checkpoint by a session that was killed, and about to be logged again) are
        dropped, as is a last line cut short by the kill. The file is rewritten atomically.
    """

    def __init__(self, path, fields: list[str], *, key: str = "steps", keep_until=None) -> None:
        self.path = Path(path)
        self.fields = list(fields)
        if key not in self.fields:
            raise ValueError(f"key: expected one of the fields {self.fields}, received {key!r}")
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last = None
        self.rows_before: list[dict] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._trim(keep_until)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._w = csv.DictWriter(self._f, fieldnames=self.fields)
        if new:
            self._w.writeheader()
            self._f.flush()

    @staticmethod
    def _step(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    def _trim(self, keep_until) -> None:
        text = self.path.read_text()
        complete = text.endswith("\n")
        lines = text.splitlines(keepends=True)
        if not complete:
            lines = lines[:-1]  # cut short by a kill in the middle of a row
        rows = list(csv.DictReader(lines))
        keep = [
            r
            for r in rows
            if None not in r.values()  # a row with too few fields
            and (keep_until is None or (self._step(r.get(self.key)) or 0.0) <= keep_until)
        ]
        if len(keep) != len(rows) or not complete:
            buf = io.StringIO(newline="")
            w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(keep)
            atomic_write_text(self.path, buf.getvalue())
        self.rows_before = keep
        if keep:
            self._last = self._step(keep[-1].get(self.key))

    @property
    def last_row(self) -> dict | None:
        """The last row kept from earlier sessions (None for a new log)."""
        return self.rows_before[-1] if self.rows_before else None

    def write(self, **row) -> bool:
        """Append ``row`` (missing fields empty); False if its step repeats the last row's."""
        step = self._step(row.get(self.key))
        if step is not None and step == self._last:
            return False
        self._w.writerow({k: row.get(k, "") for k in self.fields})
        self._f.flush()
        self._last = step
        return True

    def close(self) -> None:
        self._f.close()

    @staticmethod
    def read(path) -> list[dict]:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))


class TensorBoardLog:
    """Scalars to TensorBoard if ``tensorboard`` is installed (silently off otherwise)."""

    def __init__(self, logdir, enabled: bool = True) -> None:
        self._w = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - optional
                return
            self._w = SummaryWriter(str(logdir))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._w is not None:
            self._w.add_scalar(tag, float(value), int(step))

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def policy_summary(env_id: str, policy, *, seed: int = 0) -> dict:
    """``analyze`` of a policy at the operating point of the env's plant (best effort).

    The operating point is the plant's default (:func:`neuroctl.operating_point`); where that
    solve does not converge, it starts again after the closed loop has run one episode.

    Returns a dict with ``"analysis"`` (the StabilityReport's ``to_dict()`` and its text) or an
    ``"analysis_error"`` string saying why it was not available.
    """
    out: dict[str, Any] = {}
    try:
        import gymnasium as gym

        import neuroctl

        env = gym.make(env_id)
        plant = getattr(env.unwrapped, "plant", None)
        horizon = env.spec.max_episode_steps if env.spec is not None else None
        env.close()
        if plant is None:
            out["analysis_error"] = f"{env_id} exposes no plant (env.unwrapped.plant)"
            return out
        try:  # the plant's own operating point (relative equilibria included)
            report = neuroctl.analyze(plant, policy)
        except neuroctl.OperatingPointError:
            if not horizon:
                raise
            # a policy whose equilibrium is far from the plant's nominal point: let the closed
            # loop settle for one episode, then solve from there
            op = neuroctl.operating_point(plant, policy, settle=int(horizon))
            report = neuroctl.analyze(plant, policy, op)
        out["analysis_text"] = repr(report)
        try:
            out["analysis"] = report.to_dict()
        except Exception as exc:  # noqa: BLE001 - the summary must not lose a trained policy
            out["analysis"] = {"error": f"to_dict failed: {exc}"}
    except Exception as exc:  # noqa: BLE001 - report, never lose the trained policy
        out["analysis_error"] = f"{type(exc).__name__}: {exc}"
    return out


@dataclass
class TrainResult:
    """Outcome of :func:`~neuroctl.train.train_rl` or :func:`~neuroctl.train.train_diffsim`.

    Attributes
    ----------
    env_id, algo, activation : str
    seed : int
    steps : int
        Requested total (env steps for RL, gradient steps for diffsim).
    steps_done : int
        Steps completed (over all sessions when resumed).
    out_dir : Path
    policy_path : Path or None
        The exported policy (``policy.pt`` + ``policy.json``), None if interrupted before any.
    checkpoint_path : Path
    interrupted : bool
        True if the run was stopped (Ctrl-C); a checkpoint was written, rerun to resume.
    resumed : bool
        True if this session continued an earlier checkpoint.
    wall_time : float
        Seconds spent in this session.
    history : list of dict
        Logged rows (steps, return/loss, ...).
    summary : dict
        Evaluation figures and the ``analyze`` report of the exported policy.
    command : str
        The ``neuroctl train`` command line that reproduces the run.
    """

    env_id: str
    algo: str
    activation: str
    seed: int
    steps: int
    steps_done: int
    out_dir: Path
    policy_path: Path | None
    checkpoint_path: Path
    interrupted: bool = False
    resumed: bool = False
    wall_time: float = 0.0
    history: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    command: str = ""

    def policy(self):
        """The exported policy as an ``nn.Sequential`` (loaded from :attr:`policy_path`)."""
        from .export import load_policy

        if self.policy_path is None:
            raise FileNotFoundError("this run exported no policy (interrupted before the end)")
        return load_policy(self.policy_path)

    @json_dict
    def to_dict(self) -> dict:
        d = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in self.__dict__.items()
            if k not in ("history",)
        }
        d["history"] = list(self.history)
        return json.loads(json.dumps(d, default=_json_default))

    def save(self) -> Path:
        """Write ``summary.json`` in :attr:`out_dir` (atomically)."""
        return atomic_write_text(
            Path(self.out_dir) / "summary.json",
            json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n",
        )

    def __repr__(self) -> str:
        state = "interrupted" if self.interrupted else "finished"
        ev = {k: v for k, v in self.summary.items() if isinstance(v, (int, float))}
        evs = ", ".join(f"{k}={v:.4g}" for k, v in ev.items())
        return (
            f"TrainResult({self.algo} on {self.env_id}, {self.activation}, seed={self.seed}, "
            f"{state} at {self.steps_done}/{self.steps} steps in {self.wall_time:.1f} s"
            f"{', ' + evs if evs else ''}; policy={self.policy_path})"
        )

    def report(self, *, analysis: bool = False) -> str:
        """A multi-line text summary (used by the command line).

        Parameters
        ----------
        analysis : bool, keyword-only
            Also the ``analyze`` of the exported policy at the env's operating point, after an
            empty line: its text (``summary["analysis_text"]``), or why it is not available
            (``summary["analysis_error"]``).

        Returns
        -------
        str
            The run (its ``repr``), the command that reproduces it, the evaluation figures of
            :attr:`summary` one per line, then the success criterion: met or not, and when.
        """
        lines = [repr(self), f"command: {self.command}"]
        for k, v in self.summary.items():
            if k in ("analysis", "analysis_text", "criterion"):
                continue  # the full report is summary["analysis_text"]; the criterion below
            lines.append(f"{k}: {v}")
        if isinstance(self.summary.get("criterion"), dict):
            lines += criterion_lines(self.summary["criterion"], self.steps_done)
        if analysis and self.summary.get("analysis_text"):
            env_id = self.env_id.split(":", 1)[-1]  # without the module of module:Env-v0
            lines += ["", f"analyze of the exported policy at the operating point of {env_id}:"]
            lines.append(self.summary["analysis_text"])
        elif analysis and self.summary.get("analysis_error"):
            lines += ["", f"analyze not available: {self.summary['analysis_error']}"]
        return "\n".join(lines)

    def plot(self, *, ax=None, y: str | None = None):
        """Learning curve from :attr:`history`. Returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3))
        else:
            fig = ax.figure
        if self.history:
            keys = [k for k in self.history[0] if k != "steps"]
            y = y or ("mean_return" if "mean_return" in keys else keys[0])
            xs = [float(r["steps"]) for r in self.history if r.get(y) not in ("", None)]
            ys = [float(r[y]) for r in self.history if r.get(y) not in ("", None)]
            ax.plot(xs, ys)
            ax.set_ylabel(y)
        ax.set_xlabel("steps")
        ax.set_title(f"{self.algo} on {self.env_id}")
        fig.tight_layout()
        return fig


def criterion_lines(c: dict, steps_done: int) -> list[str]:
    """The criterion part of a run's printed summary: met or not, when, and what to try."""
    held = c.get("held_out") or {}
    lines = [f"success criterion: {c.get('criterion', '')}"]
    if c.get("met"):
        lines.append(
            f"  met at {c['met_at_steps']} env steps ({c['met_at_seconds']:.1f} s of training); "
            f"on held-out targets: {'met' if held.get('success') else 'NOT met'} "
            f"(score {held.get('score', float('nan')):.3g})"
        )
    else:
        last = c.get("last_check") or {}
        lines.append(
            f"  NOT met in {steps_done} env steps (last check: score "
            f"{last.get('score', float('nan')):.3g}; held-out score "
            f"{held.get('score', float('nan')):.3g}): train longer (--steps), another seed "
            "(--seeds to see how often it is met), or another algorithm (sac, diffsim)"
        )
    return lines


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
