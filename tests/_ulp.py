"""Floating-point comparison of results from two libraries, in units of the last place.

Two libraries (numpy and torch, or two numpy versions) may evaluate the same expression with a
different order of operations, fused multiply-adds or vectorized kernels, so their float64
results can differ by a few ulps. Tests compare such results with :func:`assert_ulp_close`,
never with ``==``; equality stays for results of one computation (a seed replayed, a copy).
"""

from __future__ import annotations

import numpy as np

#: ulps allowed between two libraries' results of one short expression (a few operations)
ULPS = 8


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def assert_ulp_close(actual, desired, *, maxulp: int = ULPS, what: str = "") -> None:
    """Assert that two float arrays agree to ``maxulp`` units in the last place, elementwise.

    Parameters
    ----------
    actual, desired : array_like or torch.Tensor
        Same shape and float dtype. Infinities must agree exactly; NaN matches NaN.
    maxulp : int
        Largest allowed distance, in ulps of the dtype, between corresponding elements. Exact
        zeros on one side are compared with an absolute tolerance of ``maxulp`` times the
        smallest normal number's ulp scaled by the largest magnitude of ``desired``.
    what : str
        Names the compared quantity in the failure message.
    """
    a, d = _np(actual), _np(desired)
    assert a.shape == d.shape, f"{what}: shapes differ, {a.shape} against {d.shape}"
    both_nan = np.isnan(a) & np.isnan(d)
    infinite = np.isinf(d)
    assert (a[infinite] == d[infinite]).all(), f"{what}: infinities differ"
    same = both_nan | infinite
    a, d = np.where(same, 0.0, a), np.where(same, 0.0, d)
    # near zero an ulp distance is meaningless (cancellation); compare those absolutely, relative
    # to the array's scale
    scale = float(np.max(np.abs(d))) if d.size else 0.0
    eps = np.finfo(d.dtype if d.dtype.kind == "f" else np.float64).eps
    tiny = np.abs(d) <= maxulp * eps * scale
    close_abs = np.abs(a - d) <= maxulp * eps * max(scale, 1e-300)
    ok_tiny = ~tiny | close_abs
    assert ok_tiny.all(), f"{what}: near-zero entries differ by {np.max(np.abs(a - d)[tiny])}"
    if (~tiny).any():
        np.testing.assert_array_max_ulp(a[~tiny], d[~tiny], maxulp=maxulp)
