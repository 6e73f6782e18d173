"""Array-namespace helpers so that one definition of the physics runs on numpy and torch.

The dynamics in neuroctl are written against the array API (``xp.sin``, ``xp.concat``, ...).
:func:`namespace` returns the namespace of the inputs: numpy itself for numpy arrays and Python
scalars (numpy >= 2 implements the array API functions used here, without the cost of a
wrapper on the small arrays of a single environment), ``array_api_compat.torch`` for tensors
(batched, differentiable with autograd).

Physics that reads a few named components of a small state (an arm's angle and speed) uses
:func:`unstack` and :func:`stack`: on the single state vector of one environment they work on
Python floats, where each arithmetic operation costs about a twentieth of the same operation on a
one-element numpy array, and on batches and tensors they are the usual indexing and stacking.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

__all__ = [
    "Array",
    "namespace",
    "is_torch",
    "as_like",
    "unstack",
    "stack",
    "check_vector",
    "NOT_AGNOSTIC_HINT",
]

#: A numpy array or a torch tensor, whichever the caller passed: code written once for both
#: dispatches on the kind at run time (``xp = namespace(x)``), which no static type expresses (a
#: union would reject every method the two kinds share only in spirit, ``.copy()`` and
#: ``.clone()``, ``keepdims`` and ``keepdim``), so for the type checker it is ``Any``.
Array: TypeAlias = Any

#: What to write instead of a numpy-only (or math-only) function of the state: quoted by every
#: error about a function that fails on a torch tensor or a set.
NOT_AGNOSTIC_HINT = (
    "write it array-agnostic: take the namespace of the input, xp = neuroctl.namespace(x), and "
    "use xp.sin, xp.cos, xp.stack(..., axis=-1) (or neuroctl.unstack / neuroctl.stack) instead "
    "of np.sin, math.sin, np.array([...]), so that one definition runs on numpy arrays and torch "
    "tensors"
)

# is_torch is called several times per environment step: remember the answer per type instead
# of inspecting the type's module every time
_IS_TORCH: dict[type, bool] = {
    t: False for t in (np.ndarray, float, int, bool, np.float64, np.float32, type(None))
}
_TORCH_NAMESPACE = None
_FLOAT64 = np.dtype(np.float64)


def is_torch(x: Any) -> bool:
    """True if ``x`` is a torch tensor (checked without importing torch)."""
    t = type(x)
    answer = _IS_TORCH.get(t)
    if answer is None:
        answer = _IS_TORCH[t] = t.__module__.startswith("torch")
    return answer


def namespace(*arrays: Any):
    """Array namespace shared by ``arrays`` (numpy for scalars and numpy arrays, else torch).

    Parameters
    ----------
    *arrays
        Arrays, tensors or Python scalars. ``None`` entries are ignored.

    Returns
    -------
    module
        ``numpy`` itself, or ``array_api_compat.torch`` if any of ``arrays`` is a tensor.
    """
    global _TORCH_NAMESPACE
    for a in arrays:
        torch_type = _IS_TORCH.get(type(a))  # is_torch inlined: one call per physics function
        if torch_type is False or (torch_type is None and not is_torch(a)):
            continue
        if _TORCH_NAMESPACE is None:
            import array_api_compat

            _TORCH_NAMESPACE = array_api_compat.array_namespace(a)
        return _TORCH_NAMESPACE
    return np


def as_like(value: Any, like: Any):
    """Convert ``value`` to an array of the same kind, dtype and device as ``like``."""
    if is_torch(like):
        import torch

        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return np.asarray(value, dtype=np.asarray(like).dtype)


def unstack(x: Any):
    """The components ``x[..., i]`` of the last axis of ``x``, in order.

    Parameters
    ----------
    x : array, tensor or array-like set object, shape (..., n)

    Returns
    -------
    sequence of length n
        A list of Python floats for a one-dimensional numpy array (the same numbers, in
        float64); arrays (views) of shape ``(...)`` for batched numpy arrays and other numpy-like
        objects; tensors of shape ``(...)`` for torch (differentiable).
    """
    if type(x) is np.ndarray and x.ndim == 1:
        return x.tolist()
    # indexing, also for tensors: a rollout differentiated through it runs ~1.5x faster than
    # through unbind, whose backward fills in every component's gradient
    shape = getattr(x, "shape", None)
    if not shape:
        raise ValueError(
            f"x: expected an array of shape (..., n), received {type(x).__name__} of shape "
            f"{tuple(shape) if shape is not None else None}"
        )
    return [x[..., i] for i in range(shape[-1])]


def stack(parts, like: Any):
    """Join components along a new last axis: the inverse of :func:`unstack`.

    Parameters
    ----------
    parts : sequence
        Components of equal batch shape ``(...)``: Python or numpy scalars, arrays, tensors.
    like : array or tensor
        An input of the computation; sets the namespace (and, for scalar parts, the dtype of a
        floating numpy result).

    Returns
    -------
    array or tensor, shape (..., len(parts))
    """
    scalars = arrays = True
    for p in parts:
        scalars = scalars and isinstance(p, float)  # Python floats and np.float64
        arrays = arrays and type(p) is np.ndarray
    if arrays:
        # one copy into (k, ...) and a transposed view: several times cheaper than np.stack on
        # the small batches of a vector env
        try:
            joined = np.array(parts)
        except ValueError:
            raise ValueError(
                "parts: expected components of one batch shape, received shapes "
                f"{[p.shape for p in parts]}"
            ) from None
        return joined.T if joined.ndim == 2 else np.moveaxis(joined, 0, -1)
    if not scalars:  # tensors, or numpy-like objects (sets in neuroctl.verify)
        return namespace(like, *parts).stack(parts, axis=-1)
    joined = np.array(parts)  # float64
    if type(like) is np.ndarray and like.dtype is not _FLOAT64 and like.dtype.kind == "f":
        joined = joined.astype(like.dtype)
    return joined


def not_agnostic_error(err: BaseException, x: Any, what: str) -> TypeError | None:
    """The error to raise when ``what`` failed with ``err`` on a torch tensor ``x``.

    Returns None (re-raise ``err`` as it is) when ``x`` is not a tensor or when ``err`` already
    says what to write; otherwise a TypeError naming ``what``, quoting ``err`` and adding
    :data:`NOT_AGNOSTIC_HINT` (the usual cause: ``np.sin`` or ``math.sin`` on a tensor).
    """
    if not is_torch(x) or NOT_AGNOSTIC_HINT in str(err):
        return None
    return TypeError(
        f"{what} failed on a torch tensor ({type(err).__name__}: {' '.join(str(err).split())}); "
        f"if it is written for numpy only, {NOT_AGNOSTIC_HINT}"
    )


def check_vector(value: Any, size: int, what: str, names=None, *, broadcast: bool = False):
    """``value`` as a finite float64 vector of shape ``(size,)``, or an error naming ``what``.

    Parameters
    ----------
    value : array_like or tensor
        Any shape holding ``size`` numbers (``(size,)``, ``(1, size)``, ...), or a scalar
        with ``broadcast=True``.
    size : int
    what : str
        The argument's name, for the message.
    names : sequence of str, optional
        The names of the components, for the message.
    broadcast : bool
        Accept a scalar and repeat it ``size`` times.

    Returns
    -------
    ndarray, shape (size,)

    Raises
    ------
    TypeError
        If ``value`` is not numeric.
    ValueError
        If it holds another number of entries, or a NaN or infinity.
    """
    label = f" for {list(names)}" if names is not None else ""
    if is_torch(value):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{what}: expected numbers of shape ({size},){label}, received {value!r}"
        ) from None
    if broadcast and arr.ndim == 0:
        arr = np.full(size, float(arr))
    if arr.size != size:
        raise ValueError(
            f"{what}: expected shape ({size},){label}, received shape {arr.shape}"
        )
    arr = arr.reshape(size)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: expected finite numbers{label}, received {arr.tolist()}")
    return arr
