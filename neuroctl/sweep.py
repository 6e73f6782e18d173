"""Grids of runs (simulations, analyses) as one table, spread over an executor.

:func:`sweep` calls a function at every point of a grid (the Cartesian product of named values,
e.g. ring lengths x controllers) through :func:`neuroctl.parallel.map_tasks` and returns one row
per point: the point's values, then what the function returned. The table is the same, in the
same order, whatever the executor.
"""

from __future__ import annotations

import itertools

import numpy as np

from .parallel import Failed, map_tasks, task_seeds

__all__ = ["sweep"]


def _row(fn, point: dict, seed):
    kwargs = dict(point)
    if seed is not None:
        kwargs["seed"] = seed
    out = fn(**kwargs)
    if hasattr(out, "to_dict") and not isinstance(out, dict):
        out = out.to_dict()
    if not isinstance(out, dict):
        out = {"result": out}
    return out


def sweep(
    fn,
    grid: dict,
    *,
    seed: int | None = None,
    executor=None,
    workers: int | None = None,
    table: str = "auto",
):
    """Run ``fn(**point)`` at every point of a grid; one row per point.

    Parameters
    ----------
    fn : callable
        Called with the grid's names as keywords (and ``seed=`` when ``seed`` is given). Returns a
        dict of results, an object with ``to_dict()`` (e.g. a stability report), or a value
        (column ``"result"``).
    grid : dict of str to sequence
        Names and values; the points are their Cartesian product, the last name varying fastest.
    seed : int, optional, keyword-only
        Seeds of the points, derived per point (:func:`neuroctl.parallel.task_seeds`), so a row
        does not depend on the executor.
    executor : concurrent.futures.Executor, optional, keyword-only
    workers : int, optional, keyword-only
        Without ``executor``: local processes (``None`` or 1: in this process).
    table : {"auto", "pandas", "records"}, keyword-only
        ``"auto"``: a ``pandas.DataFrame`` when pandas is importable, else a list of dicts.

    Returns
    -------
    pandas.DataFrame or list of dict
        Columns: the grid's names, ``"seed"`` when seeded, then the results. A point whose worker
        died on every attempt has ``"error"`` set and no results.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, received {type(fn).__name__}")
    if not isinstance(grid, dict) or not grid:
        raise TypeError(f"grid: expected a non-empty dict of name -> values, received {grid!r}")
    for k, v in grid.items():
        if not isinstance(k, str):
            raise TypeError(f"grid: expected str names, received {k!r}")
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) == 0:
            raise ValueError(f"grid[{k!r}]: expected a non-empty sequence, received {v!r}")
    if table not in ("auto", "pandas", "records"):
        raise ValueError(f"table: expected 'auto', 'pandas' or 'records', received {table!r}")
    names = list(grid)
    points = [dict(zip(names, vals)) for vals in itertools.product(*grid.values())]
    seeds = [None] * len(points) if seed is None else task_seeds(seed, len(points))
    outs = map_tasks(
        _row, [(fn, p, s) for p, s in zip(points, seeds)], executor=executor, workers=workers
    )
    rows = []
    for p, s, o in zip(points, seeds, outs):
        row = dict(p)
        if s is not None:
            row["seed"] = s
        if isinstance(o, Failed):
            row["error"] = o.error
        else:
            clash = set(o) & set(row)
            if clash:
                raise ValueError(f"fn: returned keys {sorted(clash)} that are grid names")
            row.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in o.items()})
        rows.append(row)
    if table == "records":
        return rows
    try:
        import pandas as pd
    except ImportError:
        if table == "pandas":
            raise ImportError("table='pandas': pandas is needed: pip install pandas") from None
        return rows
    return pd.DataFrame(rows)
