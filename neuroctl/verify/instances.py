"""Campaigns of verification instances (VNN-COMP's ``instances.csv``), one task per instance.

An ``instances.csv`` has one row per instance, no header: ``onnx,vnnlib,timeout`` (paths relative
to the file's folder, timeout in seconds). :func:`verify_instances` decides every instance with
:func:`neuroctl.verify.check` through :func:`neuroctl.parallel.map_tasks`, so instances run in
parallel on any executor and come back in the file's order; an instance whose worker died on
every attempt is "unknown".
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from ..parallel import Failed, map_tasks
from .bab import check
from .formats import load_onnx
from .spec import read_vnnlib

__all__ = ["read_instances", "verify_instance", "verify_instances"]


def read_instances(path) -> list[tuple[Path, Path, float]]:
    """The rows of an ``instances.csv``: ``(onnx path, vnnlib path, timeout [s])``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of (Path, Path, float)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instances: expected a CSV file, received {str(path)!r}")
    rows = []
    with open(path, newline="") as f:
        for k, r in enumerate(csv.reader(f), 1):
            if not r or not "".join(r).strip():
                continue
            if len(r) != 3:
                raise ValueError(
                    f"instances {path} line {k}: expected 'onnx,vnnlib,timeout', received {r}"
                )
            try:
                t = float(r[2])
            except ValueError:
                raise ValueError(
                    f"instances {path} line {k}: expected a timeout in seconds, received {r[2]!r}"
                ) from None
            rows.append((path.parent / r[0].strip(), path.parent / r[1].strip(), t))
    return rows


def verify_instance(onnx_path, vnnlib_path, timeout: float, seed: int = 0) -> tuple[str, float]:
    """Decide one instance: ``("holds" | "violated" | "unknown", seconds)``.

    The queries of the VNN-LIB file (a disjunction of input boxes) are checked in order within
    one budget of ``timeout`` seconds; the first violated or unknown one decides.
    """
    torch.set_num_threads(1)  # one core per instance: parallelism is across instances
    net = load_onnx(onnx_path)
    t0 = time.perf_counter()
    status = "holds"
    for q in read_vnnlib(vnnlib_path):
        left = timeout - (time.perf_counter() - t0)
        r = check(net, q.lower, q.upper, q.spec, timeout=max(left, 0.0), seed=seed)
        if r.status != "holds":
            status = r.status
            break
    return status, time.perf_counter() - t0


def verify_instances(
    path, *, timeout: float | None = None, executor=None, workers: int | None = None
) -> list[dict]:
    """Decide every instance of an ``instances.csv``, in the file's order.

    Parameters
    ----------
    path : str or Path
        The ``instances.csv``.
    timeout : float, optional, keyword-only
        Seconds per instance instead of the file's.
    executor : concurrent.futures.Executor, optional, keyword-only
    workers : int, optional, keyword-only
        Without ``executor``: local processes (``None`` or 1: in this process).

    Returns
    -------
    list of dict
        ``onnx``, ``vnnlib``, ``timeout``, ``status``, ``time`` (seconds) per instance.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout: expected a positive number of seconds, received {timeout!r}")
    rows = read_instances(path)
    tasks = [(o, v, timeout if timeout is not None else t) for o, v, t in rows]
    outs = map_tasks(verify_instance, tasks, executor=executor, workers=workers)
    table = []
    for (o, v, t), out in zip(tasks, outs):
        status, sec = ("unknown", float("nan")) if isinstance(out, Failed) else out
        table.append(
            {"onnx": str(o), "vnnlib": str(v), "timeout": t, "status": status, "time": sec}
        )
    return table
