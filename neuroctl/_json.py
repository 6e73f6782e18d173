"""The one JSON convention of neuroctl: every ``to_dict()`` returns :func:`jsonable` values.

``json.dumps(result.to_dict(), allow_nan=False)`` works for every result object. The convention:

* numpy arrays and torch tensors become nested lists, numpy scalars Python numbers, tuples lists,
  dictionary keys strings, paths strings;
* a complex number is the pair ``[re, im]`` (an array of complex numbers a list of pairs);
* a non-finite float is a string: ``"inf"``, ``"-inf"`` or ``"nan"`` (JSON has no infinity or
  NaN; ``json.dumps`` would otherwise write the non-standard ``Infinity`` and ``NaN``);
* an object with a ``to_dict()`` is its dictionary; a dataclass instance its fields.

:func:`json_dict` decorates a ``to_dict`` method so that its result follows the convention.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["jsonable", "json_dict", "from_json_float"]


def _float(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def from_json_float(v: float | int | str) -> float:
    """The float of a :func:`jsonable` number (``"inf"``, ``"-inf"`` and ``"nan"`` included)."""
    if isinstance(v, str):
        if v not in ("inf", "-inf", "nan"):
            raise ValueError(f"v: expected a number or 'inf', '-inf', 'nan', received {v!r}")
        return float(v)
    return float(v)


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (dict, list, str, int, float, bool, None); see the module.

    Raises
    ------
    TypeError
        For a value with no JSON form under the convention (naming its type).
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(float(obj))
    if isinstance(obj, (complex, np.complexfloating)):
        return [_float(float(obj.real)), _float(float(obj.imag))]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return [jsonable(v) for v in obj.tolist()]
        return jsonable(obj.tolist())
    if isinstance(obj, PurePath):
        return str(obj)
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        return jsonable(obj.detach().cpu().numpy())
    to_dict = getattr(type(obj), "to_dict", None)
    if callable(to_dict):
        return jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    raise TypeError(
        f"jsonable: expected numbers, strings, arrays, dicts, lists or objects with to_dict(), "
        f"received a {type(obj).__module__}.{type(obj).__qualname__}"
    )


def json_dict(method: Callable[..., dict]) -> Callable[..., dict]:
    """Decorate a ``to_dict`` method: its result passes through :func:`jsonable`."""

    @functools.wraps(method)
    def to_dict(self, *args, **kwargs) -> dict:
        return jsonable(method(self, *args, **kwargs))

    return to_dict
