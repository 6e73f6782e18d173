"""Where the benchmark data lives: ``shared/data/<name>`` next to the repository, never in it.

The data sets (ACAS Xu, ARCH-COMP AINNCS) are public files kept outside the repository; tests that
need them skip with :func:`missing_reason` when they are absent.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shared_data", "missing_reason"]

ROOT = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path:
    """The folder ``<repository>/../shared/data/<name>`` (it may not exist).

    Parameters
    ----------
    name : str
        Data set folder, e.g. ``"acasxu"`` or ``"archcomp"``.

    Returns
    -------
    Path
        Absolute path of the folder.
    """
    return ROOT.parent / "shared" / "data" / name


def missing_reason(name: str) -> str:
    """A skip reason naming where the data set ``name`` was looked for."""
    return f"{name} data not found at {shared_data(name)} (kept outside the repository)"
