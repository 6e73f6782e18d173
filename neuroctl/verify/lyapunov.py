"""Quadratic Lyapunov candidates for :func:`neuroctl.verify.region_of_attraction`.

Two shapes of ``V(x) = (x - x*)ᵀ P (x - x*)``:

- ``"linearization"``: ``P`` solves the discrete Lyapunov equation ``Aᵀ P A - P = -Q`` of the
  closed loop's exact Jacobian ``A`` at ``x*`` (``control.dlyap``);
- ``"fitted"``: ``P = L Lᵀ`` (positive definite by construction, ``V(x*) = 0``) chosen to
  maximise the volume of the largest level set ``{V <= c}`` that fits the box (or, for the cut
  set ``{V <= c} ∩ box``, the fraction of the box it covers) and on which the
  decrease ``V(F(x)) < V(x)`` holds at sampled states (each sample where it fails caps ``c`` at
  its ``V``), subject to ``Aᵀ P A - P ≺ 0`` (so the near field can be proved), starting from the
  linearization's ``P`` (Nelder–Mead on the Cholesky factor, log-diagonal). The samples' next
  states are computed once; each candidate costs a few quadratic forms. The fitted ``P`` is only
  a candidate: the certificate is proved for it exactly as for the other one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_level", "fit_quadratic", "lyapunov_matrix"]


def lyapunov_matrix(A, Q=None, *, rate: float = 1.0) -> np.ndarray:
    """``P`` with ``(A/rate)ᵀ P (A/rate) - P = -Q`` (``control.dlyap``), symmetrised.

    With ``rate < 1`` (above the spectral radius of ``A``), ``Aᵀ P A = rate² (P - Q)``: ``V``
    contracts at least by ``rate²`` per step of the linear loop, and ``P`` is better conditioned
    for a loop whose poles are close to the unit circle than with ``rate = 1``.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Closed-loop matrix with spectral radius below ``rate``.
    Q : array_like, shape (n, n), optional
        Symmetric positive definite (default ``I``).
    rate : float, keyword-only
    """
    import control

    A = np.asarray(A, dtype=np.float64) / rate
    n = A.shape[0]
    Q = np.eye(n) if Q is None else np.asarray(Q, dtype=np.float64)
    P = np.asarray(control.dlyap(A.T, Q), dtype=np.float64)
    return (P + P.T) / 2


def box_level(P, x_star, lower, upper) -> float:
    """Largest ``c`` with ``{(x - x*)ᵀ P (x - x*) <= c}`` inside the box (a relative margin
    ``1e-9`` below it): ``min_i room_i² / (P⁻¹)_ii``."""
    room = np.minimum(x_star - lower, upper - x_star)
    return float(np.min(room**2 / np.diag(np.linalg.inv(P)))) * (1 - 1e-9)


def _level(P, e0, e1, x_star, lower, upper, margin=0.0, escaped=None):
    v0 = np.einsum("bi,ij,bj->b", e0, P, e0)
    v1 = np.einsum("bi,ij,bj->b", e1, P, e1)
    bad = (v1 >= (1.0 - margin) * v0) & (v0 > 0)
    if escaped is None:
        c = box_level(P, x_star, lower, upper)
    else:
        bad |= escaped
        c = np.inf
    if bad.any():
        c = min(c, float(v0[bad].min()))
    return c


def fit_quadratic(
    A, P0, x_star, lower, upper, x, x_next, *, maxiter: int = 600, margin: float = 1e-3,
    intersect_box: bool = False, uniform=None,
) -> np.ndarray:
    """Fit ``P`` to sampled transitions ``x -> x_next`` (see the module docstring).

    Parameters
    ----------
    A : ndarray, shape (n, n)
    P0 : ndarray, shape (n, n)
        Starting point (positive definite, with ``Aᵀ P0 A - P0 ≺ 0``).
    x_star : ndarray, shape (n,)
    lower, upper : ndarray, shape (n,)
        The box.
    x, x_next : ndarray, shape (N, n)
        Sampled states and their images under the closed loop.
    maxiter : int
    margin : float
        A sample counts as a failure unless ``V(x_next) < (1 - margin) V(x)``: candidates whose
        decrease is marginal on the samples fail between them. The candidate's contraction
        ``||Lᵀ A L⁻ᵀ||₂`` is kept at most halfway between ``P0``'s and 1 for the same reason.
    intersect_box : bool
        Fit for the cut set ``{V <= c} ∩ box``: ``c`` is not capped by the box, a sample whose
        ``x_next`` leaves the box (shrunk by ``margin`` of its width) also caps it, and the
        objective is the fraction of ``uniform`` in the cut set (smoothed), not the ellipsoid's
        volume.
    uniform : ndarray, shape (M, n), optional
        Uniform samples of the box for that fraction (required with ``intersect_box``).

    Returns
    -------
    ndarray, shape (n, n)
        The fitted ``P`` (``P0`` itself if no candidate does better on the samples).
    """
    from scipy.optimize import minimize

    n = x_star.size
    e0, e1 = x - x_star, x_next - x_star
    tril = np.tril_indices(n)
    diag = tril[0] == tril[1]
    L0 = np.linalg.cholesky(P0 / np.max(np.abs(P0)))

    def unpack(z):
        L = np.zeros((n, n))
        vals = z.copy()
        vals[diag] = np.exp(np.clip(z[diag], -30, 30))
        L[tril] = vals
        return L @ L.T

    def pnorm(P):
        L = np.linalg.cholesky(P)
        return np.linalg.norm(L.T @ A @ np.linalg.inv(L.T), 2)

    rho_max = (1.0 + pnorm(P0)) / 2
    escaped = None
    if intersect_box:
        if uniform is None:
            raise ValueError("uniform: expected samples of the box with intersect_box=True, "
                             "received None")
        shrink = margin * (upper - lower)
        escaped = np.any((x_next < lower + shrink) | (x_next > upper - shrink), axis=1)
        eu = np.asarray(uniform, dtype=np.float64) - x_star

    def objective(z):
        P = unpack(z)
        try:
            if pnorm(P) > rho_max:
                return 1e6
        except np.linalg.LinAlgError:
            return 1e6
        c = _level(P, e0, e1, x_star, lower, upper, margin, escaped)
        if c <= 0:
            return 1e6
        if intersect_box:
            if not np.isfinite(c):
                return -1.0
            v = np.einsum("bi,ij,bj->b", eu, P, eu)
            # soft count of the samples in {V <= c}: a smooth objective for Nelder–Mead
            return -float(np.mean(1.0 / (1.0 + np.exp(np.clip((v / c - 1.0) * 50, -50, 50)))))
        return -(0.5 * n * np.log(c) - 0.5 * np.linalg.slogdet(P)[1])

    z0 = L0[tril].copy()
    z0[diag] = np.log(L0[tril][diag])
    starts = [z0]
    if intersect_box:  # also start from the best ellipsoid inside the box
        Pe = fit_quadratic(A, P0, x_star, lower, upper, x, x_next, maxiter=maxiter,
                           margin=margin)
        Le = np.linalg.cholesky(Pe / np.max(np.abs(Pe)))
        ze = Le[tril].copy()
        ze[diag] = np.log(Le[tril][diag])
        starts.append(ze)
    best_z, best_f = z0, objective(z0)
    for z in starts:
        res = minimize(objective, z, method="Nelder-Mead",
                       options={"maxiter": maxiter, "xatol": 1e-6, "fatol": 1e-9})
        for cand, f in ((z, objective(z)), (res.x, res.fun)):
            if f < best_f:
                best_z, best_f = cand, f
    return unpack(best_z) if best_f < objective(z0) else P0
