"""Array-namespace helpers so that one definition of the physics runs on numpy and torch.

The dynamics in neuroctl are written against the array API (``xp.sin``, ``xp.stack``, ...).
:func:`namespace` returns the namespace of the inputs: numpy for numpy arrays and Python
scalars, torch for tensors (batched, differentiable with autograd).
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

__all__ = ["namespace", "is_torch", "as_like"]

_NUMPY = array_api_compat.array_namespace(np.zeros(0))


def is_torch(x: Any) -> bool:
    """True if ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def namespace(*arrays: Any):
    """Array namespace shared by ``arrays`` (numpy for scalars and numpy arrays, else torch).

    Parameters
    ----------
    *arrays
        Arrays, tensors or Python scalars. ``None`` entries are ignored.

    Returns
    -------
    module
        An array-API compatible namespace (``array_api_compat.numpy`` or
        ``array_api_compat.torch``).
    """
    for a in arrays:
        if a is not None and is_torch(a):
            return array_api_compat.array_namespace(a)
    return _NUMPY


def as_like(value: Any, like: Any):
    """Convert ``value`` to an array of the same kind, dtype and device as ``like``."""
    if is_torch(like):
        import torch

        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return np.asarray(value, dtype=np.asarray(like).dtype)
