"""Checks of the arguments shared by the analyses (gains, operating points, linearization).

Each returns the normalized value or raises naming the argument, what was expected and what was
received.
"""

from __future__ import annotations

import math

import numpy as np

from .plant import Plant


def _check_norm(norm) -> float:
    if norm in (1, 2) or (isinstance(norm, float) and math.isinf(norm) and norm > 0):
        return float(norm)
    if isinstance(norm, str) and norm.lower() in ("inf", "linf"):
        return math.inf
    raise ValueError(f"norm: expected 1, 2 or inf (math.inf or 'inf'), received {norm!r}")


def _check_positive(value, what: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{what}: expected a {kind} finite number, received {value!r}")
    return float(value)


def _norm_label(norm: float) -> str:
    return "inf" if math.isinf(norm) else str(int(norm))


def _check_plant(plant) -> None:
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")


def _is_continuous(plant: Plant, continuous: bool | None) -> bool:
    if continuous is not None and not isinstance(continuous, (bool, np.bool_)):
        raise TypeError(f"continuous: expected True, False or None, received {continuous!r}")
    if continuous is None:
        return plant.is_continuous
    if continuous and not plant.is_continuous:
        raise ValueError(f"continuous=True, but plant {plant.name!r} has no rhs (discrete only)")
    return bool(continuous)
