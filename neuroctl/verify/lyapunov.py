"""Lyapunov candidates for :func:`neuroctl.verify.region_of_attraction`.

Two shapes of a quadratic ``V(x) = (x - x*)ᵀ P (x - x*)``:

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

and a learned quartic (:class:`QuarticLyapunov`, :func:`learn_quartic`): the sum of squares

    ``V(x) = |Lᵀ s|² + |Gᵀ z(s)|²``,  ``s = (x - x*) / scale``,  ``z = [s, s_i s_j (i <= j)]``

with ``L`` lower triangular with a positive diagonal, so ``V(x*) = 0`` and
``V(x) >= |Lᵀ s|² > 0`` elsewhere *by construction*, trained on simulated transitions with hinge
losses and on the counterexamples of the verifier. Both kinds evaluate themselves on points and on
sets (:mod:`neuroctl.verify.affine`): the proof of :mod:`neuroctl.verify.roa` only calls
``value``, ``bounds`` and ``decrease_upper``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["QuadraticLyapunov", "QuarticLyapunov", "box_level", "fit_quadratic",
           "learn_quartic", "lyapunov_matrix"]


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


# ============================================================================ candidates as objects
class QuadraticLyapunov:
    """``V(x) = (x - x*)ᵀ P (x - x*)`` on points and on sets.

    Parameters
    ----------
    x_star : ndarray, shape (n,)
    P : ndarray, shape (n, n)
        Symmetric positive definite.
    """

    def __init__(self, x_star, P):
        self.x_star = np.asarray(x_star, dtype=np.float64)
        self.P = np.asarray(P, dtype=np.float64)

    def value(self, x) -> np.ndarray:
        """``V(x)``, shape (...) for states of shape (..., n)."""
        e = np.asarray(x, dtype=np.float64) - self.x_star
        return np.einsum("...i,ij,...j->...", e, self.P, e)

    def bounds(self, lo, hi):
        """Sound ``(lower, upper)`` of ``V`` over each box ``[lo, hi]`` (shape (B, n)), each
        shape (B,)."""
        from .affine import AffineForm

        return self.set_bounds(AffineForm.from_box(lo, hi))

    def set_bounds(self, X):
        """Sound ``(lower, upper)`` of ``V`` over each set of the affine forms ``X`` (shape
        (B, n)), each shape (B,)."""
        e = X - self.x_star
        v = ((e @ self.P) * e).sum(axis=-1)
        return v.lower, v.upper

    def decrease_upper(self, X, Fx) -> np.ndarray:
        """Upper bound of ``V(F(x)) - V(x)`` over sets ``X`` and their images ``Fx`` (affine
        forms of one computation, shape (B, n)): ``(F - x)ᵀ P (F + x - 2 x*)``, shape (B,)."""
        d = Fx - X
        s = Fx + X - 2.0 * self.x_star
        return ((d @ self.P) * s).sum(axis=-1).upper


def quartic_features(s):
    """``z(s) = [s_1..s_n, s_i s_j for i <= j]`` (squares as squares), shape (..., n + n(n+1)/2)
    for ``s`` of shape (..., n); numpy, torch or affine forms."""
    from .._array import stack, unstack

    parts = list(unstack(s))
    n = len(parts)
    quad = [parts[i] ** 2 if i == j else parts[i] * parts[j]
            for i in range(n) for j in range(i, n)]
    return stack(parts + quad, like=s)


class QuarticLyapunov(QuadraticLyapunov):
    """``V(x) = (x - x*)ᵀ P (x - x*) + |Gᵀ z((x - x*) / scale)|²`` (:func:`quartic_features`).

    ``V(x*) = 0`` and ``V(x) >= (x - x*)ᵀ P (x - x*) > 0`` elsewhere for any ``G``.

    Parameters
    ----------
    x_star : ndarray, shape (n,)
    P : ndarray, shape (n, n)
        Symmetric positive definite.
    G : ndarray, shape (n + n(n+1)/2, k)
        Weights of the ``k`` squared features.
    scale : ndarray, shape (n,)
        Positive state scales (units of each state).
    """

    def __init__(self, x_star, P, G, scale):
        super().__init__(x_star, P)
        self.G = np.asarray(G, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        n = self.x_star.size
        if self.G.ndim != 2 or self.G.shape[0] != n + n * (n + 1) // 2:
            raise ValueError(f"G: expected shape ({n + n * (n + 1) // 2}, k), received "
                             f"{self.G.shape}")

    def value(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        phi = quartic_features((x - self.x_star) / self.scale) @ self.G
        return super().value(x) + (phi**2).sum(axis=-1)

    def set_bounds(self, X):
        e = X - self.x_star
        phi = quartic_features(e / self.scale) @ self.G
        v = ((e @ self.P) * e).sum(axis=-1) + (phi**2).sum(axis=-1)
        return np.maximum(v.lower, 0.0), v.upper

    def decrease_upper(self, X, Fx) -> np.ndarray:
        """As the quadratic's, plus ``sum_k (φ_k(F) - φ_k(x)) (φ_k(F) + φ_k(x))`` with the
        features' differences and sums written in ``d = F - x`` and ``σ = F + x - 2 x*`` (each
        product ``F_i F_j ∓ x_i x_j`` as ``½ (d_i σ_j + σ_i d_j)``, ``½ (σ_i σ_j + d_i d_j)``),
        so the bound shrinks with ``d`` instead of carrying two independent ranges."""
        from .._array import stack, unstack

        quad = ((Fx - X) @ self.P) * (Fx + X - 2.0 * self.x_star)
        d = unstack((Fx - X) / self.scale)
        s = unstack((Fx + X - 2.0 * self.x_star) / self.scale)
        n = len(d)
        diff = list(d) + [d[i] * s[i] if i == j else 0.5 * (d[i] * s[j] + s[i] * d[j])
                          for i in range(n) for j in range(i, n)]
        both = list(s) + [0.5 * (s[i] ** 2 + d[i] ** 2) if i == j
                          else 0.5 * (s[i] * s[j] + d[i] * d[j])
                          for i in range(n) for j in range(i, n)]
        like = Fx
        phi_d = stack(diff, like=like) @ self.G
        phi_s = stack(both, like=like) @ self.G
        return (quad.sum(axis=-1) + (phi_d * phi_s).sum(axis=-1)).upper


def learn_quartic(
    x, x_next, good, *, x_star, scale, P0, init: QuarticLyapunov | None = None,
    steps: int = 800, margin: float = 0.02, features: int | None = None, seed: int = 0,
    weights=None,
) -> QuarticLyapunov:
    """Train a :class:`QuarticLyapunov` whose level 1 separates good states from bad ones and
    along whose transitions it decreases.

    Hinge losses (Adam, full batch, float64): ``relu(V(x_next) / V(x) - 1 + margin)`` on states
    with ``V(x)`` below about 1.2 (the set to be proved and its rim), ``relu(V(x) - 1)`` on good
    states (pulls them into ``{V <= 1}``) and ``10 relu(1 + margin - V(x))`` on bad ones (pushes
    them out).

    Parameters
    ----------
    x, x_next : ndarray, shape (N, n)
        States and their images under the closed loop.
    good : ndarray of bool, shape (N,)
        States whose trajectory stays where the certificate may reach (the box) and converges.
    x_star : ndarray, shape (n,)
    scale : ndarray, shape (n,)
        State scales of the features (e.g. the box's half-widths).
    P0 : ndarray, shape (n, n)
        Starting quadratic part (symmetric positive definite), used when ``init`` is None.
    init : QuarticLyapunov, optional
        Continue from this candidate (counterexample rounds).
    steps : int
        Adam steps.
    margin : float
        Relative decrease asked of the samples, and the bad states' distance above level 1.
    features : int, optional
        Number of squared features ``k`` (default the number of monomials).
    seed : int
        Seed of the features' initial weights.
    weights : ndarray, shape (N,), optional
        Per-sample weights (counterexamples count more).

    Returns
    -------
    QuarticLyapunov
    """
    import torch

    n = x_star.size
    m = n + n * (n + 1) // 2
    k = m if features is None else features
    t = torch.float64
    xs = torch.as_tensor(x, dtype=t)
    x1 = torch.as_tensor(x_next, dtype=t)
    good_t = torch.as_tensor(np.asarray(good, bool))
    w = torch.ones(len(xs), dtype=t) if weights is None else torch.as_tensor(weights, dtype=t)
    xst, sc = torch.as_tensor(x_star, dtype=t), torch.as_tensor(scale, dtype=t)
    D = np.diag(scale)
    if init is None:
        Ls = np.linalg.cholesky(D @ P0 @ D)
        G0 = np.random.default_rng(seed).normal(0.0, 0.05, (m, k))
    else:
        Ls = np.linalg.cholesky(D @ init.P @ D)
        G0 = init.G
    tril = torch.tril_indices(n, n)
    diag = tril[0] == tril[1]
    raw0 = torch.as_tensor(Ls[tril[0], tril[1]], dtype=t)
    raw0[diag] = torch.log(raw0[diag])
    raw = raw0.clone().requires_grad_(True)
    G = torch.as_tensor(G0, dtype=t).clone().requires_grad_(True)

    def chol(r):
        vals = torch.where(diag, torch.exp(r), r)
        return torch.zeros(n, n, dtype=t).index_put((tril[0], tril[1]), vals)

    # the features do not depend on the parameters: computed once
    s0, s1 = (xs - xst) / sc, (x1 - xst) / sc
    z0, z1 = quartic_features(s0), quartic_features(s1)

    def value(s, z, L):
        return ((s @ L) ** 2).sum(-1) + ((z @ G) ** 2).sum(-1)

    opt = torch.optim.Adam([raw, G], lr=2e-2)
    wg, wb = w * good_t, w * ~good_t
    for _ in range(steps):
        opt.zero_grad()
        L = chol(raw)
        v0, v1 = value(s0, z0, L), value(s1, z1, L)
        near = torch.sigmoid((1.2 - v0) * 20.0)
        dec = torch.relu(v1 / (v0 + 1e-12) - 1.0 + margin)
        loss = ((w * near * dec).sum() * 10.0 + (wg * torch.relu(v0 - 1.0)).sum()
                + 10.0 * (wb * torch.relu(1.0 + margin - v0)).sum()) / w.sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        L = chol(raw).numpy()
    Dinv = np.diag(1.0 / scale)
    P = Dinv @ (L @ L.T) @ Dinv
    return QuarticLyapunov(x_star, (P + P.T) / 2, G.detach().numpy().copy(), scale)
