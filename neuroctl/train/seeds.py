"""The same training run over several seeds: success per seed, time to the criterion, curves.

``train_seeds(env_id, seeds=[0, 1, 2, 3, 4], algo="ppo")`` is what ``neuroctl train ENV --algo
ppo --seeds 0 1 2 3 4`` calls: one run of :func:`~neuroctl.train.train` per seed in
``out_dir/seed<k>`` (each resumable on its own), spread over processes with ``workers=`` or any
executor (:func:`neuroctl.parallel.map_tasks`), and a :class:`SeedsResult` that says on how many
seeds the env's success criterion was met, after how many env steps and seconds, how the
exported policies do on held-out targets, and the learning curves' mean and spread over seeds
(as rl-baselines3-zoo and CleanRL report them).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._json import json_dict
from .export import atomic_write_text
from .result import TrainResult

__all__ = ["SeedsResult", "train_seeds"]


def _check_seeds(seeds) -> list[int]:
    try:
        values = list(seeds)
    except TypeError:
        values = None
    if (
        not values
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in values)
        or len(set(values)) != len(values)
    ):
        raise ValueError(
            f"seeds: expected a non-empty sequence of distinct ints, received {seeds!r}"
        )
    return [int(s) for s in values]


def _train_one(env_id: str, algo: str, seed: int, out_dir: str, options: dict) -> dict:
    """One seed's run (module level: picklable for process pools); its result as a dict."""
    import torch

    from .run import train

    torch.set_num_threads(1)  # one core per run: seeds in parallel share the machine fairly
    return train(env_id, algo=algo, seed=seed, out_dir=out_dir, **options).to_dict()


def train_seeds(
    env_id: str,
    seeds=(0, 1, 2, 3, 4),
    *,
    algo: str = "ppo",
    out_dir="runs",
    workers: int | None = None,
    executor=None,
    progress: bool = False,
    **options,
) -> SeedsResult:
    """Train the same configuration once per seed and summarize over the seeds.

    Parameters
    ----------
    env_id : str
    seeds : sequence of int
        Distinct seeds; seed ``k`` runs in ``out_dir/seed<k>``.
    algo : {"ppo", "sac", "diffsim"}
    out_dir : str or Path
        Parent folder of the runs; ``seeds.json`` (the summary) is written there.
    workers : int, optional
        Runs in parallel in a local process pool of this many processes (one torch thread
        each); None or 1: one after the other in this process.
    executor : concurrent.futures.Executor, optional
        Where the runs go instead (e.g. :class:`neuroctl.parallel.RayExecutor`).
    progress : bool
        Progress bars of the runs (only without workers).
    **options
        Passed to :func:`~neuroctl.train.train` (``activation``, ``steps``, ``eval_every``, ...).

    Returns
    -------
    SeedsResult
    """
    from ..parallel import Failed, map_tasks

    seeds = _check_seeds(seeds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = dict(options, progress=bool(progress) and not workers and executor is None)
    tasks = [(env_id, algo, s, str(out / f"seed{s}"), opts) for s in seeds]
    results = map_tasks(_train_one, tasks, workers=workers, executor=executor)
    runs, lost = [], []
    for s, r in zip(seeds, results):
        if isinstance(r, Failed):
            lost.append({"seed": s, "error": r.error})
        else:
            runs.append(r)
    result = SeedsResult(env_id=env_id, algo=str(algo).lower(), seeds=seeds, runs=runs, lost=lost)
    result.out_dir = out
    result.save()
    return result


@dataclass
class SeedsResult:
    """Runs of one configuration over several seeds.

    Attributes
    ----------
    env_id, algo : str
    seeds : list of int
    runs : list of dict
        ``TrainResult.to_dict()`` of each finished run, in seed order.
    lost : list of dict
        ``{"seed", "error"}`` of runs whose worker died twice (no verdict for them).
    out_dir : Path or None
    """

    env_id: str
    algo: str
    seeds: list
    runs: list
    lost: list = field(default_factory=list)
    out_dir: Path | None = None

    @classmethod
    def load(cls, folder) -> SeedsResult:
        """Read a ``seeds.json`` written by :func:`train_seeds` (or its folder)."""
        path = Path(folder)
        path = path / "seeds.json" if path.is_dir() else path
        d = json.loads(path.read_text())
        return cls(
            env_id=d["env_id"],
            algo=d["algo"],
            seeds=d["seeds"],
            runs=d["runs"],
            lost=d.get("lost", []),
            out_dir=path.parent,
        )

    def results(self) -> list[TrainResult]:
        """The runs as :class:`~neuroctl.train.TrainResult` (their ``history`` included)."""
        fields = TrainResult.__dataclass_fields__
        out = []
        for r in self.runs:
            kw = {k: v for k, v in r.items() if k in fields}
            for k in ("out_dir", "checkpoint_path"):
                kw[k] = Path(kw[k])
            kw["policy_path"] = None if kw.get("policy_path") is None else Path(kw["policy_path"])
            out.append(TrainResult(**kw))
        return out

    def rows(self) -> list[dict]:
        """One row per seed: whether and when the criterion was met, held-out figures."""
        rows = []
        for r in self.runs:
            c = _criterion_entry(r.get("summary", {}))
            rows.append(
                {
                    "seed": r["seed"],
                    "met": c.get("met"),
                    "steps_to_criterion": c.get("met_at_steps"),
                    "seconds_to_criterion": c.get("met_at_seconds"),
                    "held_out_success": c.get("held_out_success"),
                    "held_out_score": (c.get("held_out") or {}).get("score"),
                    "steps_done": r.get("steps_done"),
                    "wall_time": r.get("wall_time"),
                }
            )
        rows += [{"seed": lo["seed"], "met": None, "lost": lo["error"]} for lo in self.lost]
        return rows

    @property
    def criterion(self) -> str:
        """The env's criterion in words (as its evaluation states it)."""
        for r in self.runs:
            text = _criterion_entry(r.get("summary", {})).get("criterion")
            if text:
                return text
        return ""

    @property
    def n_met(self) -> int:
        """Seeds whose run met the criterion during training."""
        return sum(bool(r.get("met")) for r in self.rows())

    @property
    def n_held_out(self) -> int:
        """Seeds whose exported policy meets the criterion on the held-out targets."""
        return sum(bool(r.get("held_out_success")) for r in self.rows())

    def _stat(self, key: str) -> tuple[float, float]:
        vals = [float(r[key]) for r in self.rows() if r.get(key) is not None]
        if not vals:
            return math.nan, math.nan
        return float(np.mean(vals)), float(np.std(vals))

    @json_dict
    def to_dict(self) -> dict:
        steps_mean, steps_std = self._stat("steps_to_criterion")
        secs_mean, secs_std = self._stat("seconds_to_criterion")
        return {
            "env_id": self.env_id,
            "algo": self.algo,
            "seeds": list(self.seeds),
            "criterion": self.criterion,
            "n_seeds": len(self.seeds),
            "n_met": self.n_met,
            "n_held_out_success": self.n_held_out,
            "steps_to_criterion_mean": steps_mean,
            "steps_to_criterion_std": steps_std,
            "seconds_to_criterion_mean": secs_mean,
            "seconds_to_criterion_std": secs_std,
            "per_seed": self.rows(),
            "lost": list(self.lost),
            "runs": list(self.runs),
        }

    def save(self) -> Path:
        """Write ``seeds.json`` in :attr:`out_dir` (atomically)."""
        if self.out_dir is None:
            raise ValueError("out_dir: this result has no folder to be saved in")
        return atomic_write_text(
            Path(self.out_dir) / "seeds.json", json.dumps(self.to_dict(), indent=2) + "\n"
        )

    def curves(self, y: str = "mean_return", *, points: int = 50) -> dict:
        """A logged figure over env steps, on a common grid: mean, min and max over seeds.

        Parameters
        ----------
        y : str
            ``"mean_return"`` (``progress.csv``, the mean return of the last 20 episodes) or
            ``"score"`` (the criterion's score at each check, ``criterion.csv``).
        points : int
            Grid size, from 0 to the longest run's last step.

        Returns
        -------
        dict
            ``steps`` ``(points,)``; ``mean``, ``low``, ``high`` ``(points,)`` over the seeds
            that have a value there (a run that stopped at its criterion holds its last value);
            ``per_seed`` ``(n_runs, points)`` (NaN before a run's first value).
        """
        series = []
        for r in self.runs:
            rows = r.get("history", []) if y == "mean_return" else _read_rows(r, "criterion.csv")
            pts = [
                (float(row["steps"]), float(row[y]))
                for row in rows
                if row.get(y) not in ("", None) and row.get("steps") not in ("", None)
            ]
            series.append(sorted(pts))
        last = max((p[-1][0] for p in series if p), default=0.0)
        grid = np.linspace(0.0, last, int(points))
        per_seed = np.full((len(series), grid.size), np.nan)
        for i, pts in enumerate(series):
            if not pts:
                continue
            xs, ys = np.array(pts).T
            inside = grid >= xs[0]
            per_seed[i, inside] = np.interp(grid[inside], xs, ys)  # holds the last value after
        with warnings.catch_warnings():  # "all-NaN slice": grid points before any run's values
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(per_seed, axis=0)
            low = np.nanmin(per_seed, axis=0)
            high = np.nanmax(per_seed, axis=0)
        return {"steps": grid, "mean": mean, "low": low, "high": high, "per_seed": per_seed}

    def plot(self, *, axes=None):
        """Learning curves over seeds: mean return and criterion score (mean line, min–max
        band, one thin line per seed). Returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        fig = axes[0].figure
        for ax, y, label in (
            (axes[0], "mean_return", "mean episode return"),
            (axes[1], "score", "criterion score at each check"),
        ):
            c = self.curves(y)
            if np.isfinite(c["mean"]).any():
                for line in c["per_seed"]:
                    ax.plot(c["steps"], line, lw=0.6, alpha=0.5, color="0.5")
                ax.fill_between(c["steps"], c["low"], c["high"], alpha=0.25, label="min–max")
                ax.plot(c["steps"], c["mean"], lw=2, label=f"mean of {len(self.runs)} seeds")
                ax.legend(loc="lower right")
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel("env steps")
            ax.set_ylabel(label)
        fig.suptitle(f"{self.algo} on {self.env_id}: {self.n_met}/{len(self.seeds)} seeds met")
        fig.tight_layout()
        return fig

    def report(self) -> str:
        """A printable summary: one line per seed, then the counts (used by the command line)."""
        d = self.to_dict()
        lines = [
            f"{self.algo} on {self.env_id}, seeds {self.seeds}",
            f"criterion: {self.criterion}",
        ]
        lines.append(
            f"{'seed':>5} {'met':>5} {'steps to it':>12} {'s to it':>8} {'held-out':>9} "
            f"{'score':>7} {'steps':>8} {'wall s':>7}"
        )
        for r in self.rows():
            if "lost" in r:
                lines.append(f"{r['seed']:>5}  lost: {r['lost']}")
                continue
            lines.append(
                f"{r['seed']:>5} {_yn(r['met']):>5} {_num(r['steps_to_criterion'], 'd'):>12} "
                f"{_num(r['seconds_to_criterion'], '.1f'):>8} {_yn(r['held_out_success']):>9} "
                f"{_num(r['held_out_score'], '.3f'):>7} {_num(r['steps_done'], 'd'):>8} "
                f"{_num(r['wall_time'], '.1f'):>7}"
            )
        lines.append(
            f"criterion met on {d['n_met']} of {d['n_seeds']} seeds during training; the exported "
            f"policy meets it on held-out targets on {d['n_held_out_success']} of {d['n_seeds']}"
        )
        if d["n_met"]:
            lines.append(
                f"env steps to the criterion {d['steps_to_criterion_mean']:.0f} ± "
                f"{d['steps_to_criterion_std']:.0f}, seconds {d['seconds_to_criterion_mean']:.1f}"
                f" ± {d['seconds_to_criterion_std']:.1f} (mean ± std over the seeds that met it)"
            )
        return "\n".join(lines)

    def write_report(self, folder=None) -> Path:
        """An HTML report (table per seed, learning curves) in ``folder`` (default:
        ``out_dir/report``). Returns the written ``index.html``."""
        from ..report import Report

        folder = Path(self.out_dir or ".") / "report" if folder is None else Path(folder)
        rep = Report(
            f"Training over seeds: {self.algo} on {self.env_id}",
            intro=f"Criterion: {self.criterion or 'none registered for this env'}.",
        )
        sec = rep.section("Success per seed")
        sec.add_table(
            [{k: v for k, v in r.items()} for r in self.rows()],
            missing="the criterion was not met (no time to it), or the run was lost",
        )
        sec.add_pre(self.report())
        rep.section("Learning curves").add_figure(
            self.plot(),
            "learning-curves",
            caption="Mean over seeds (line), min–max band, each seed thin; a run that stopped at "
            "its criterion holds its last value.",
        )
        return rep.write(folder)


def _criterion_entry(summary: dict) -> dict:
    """A run summary's criterion in the form ``train_rl`` writes (``summary["criterion"]``).

    A diffsim run has no checks during training: its summary holds the criterion's figures of
    the final policy (``success``, ``score``, ``criterion`` text), read here as met (or not) at
    the end, on its own evaluation targets.
    """
    entry = summary.get("criterion")
    if isinstance(entry, dict):
        return entry
    if "success" not in summary:
        return {}
    return {
        "criterion": entry or "",
        "met": summary["success"],
        "held_out_success": summary["success"],
        "held_out": {"score": summary.get("score")},
    }


def _read_rows(run: dict, name: str) -> list[dict]:
    path = Path(run["out_dir"]) / name
    if not path.exists():
        return []
    from .result import CsvLog

    return CsvLog.read(path)


def _yn(value) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _num(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(int(value) if fmt == "d" else float(value), fmt)
