"""Optimized linear relaxations (α-CROWN): the lower slopes of unstable ReLUs as variables.

CROWN's back-substitution (:func:`neuroctl.verify.bounds.linear_lower_bound`) lower-bounds an
unstable ReLU ``relu(z)``, ``l < 0 < u``, by ``α z`` with ``α`` fixed to 0 or 1. Every ``α`` in
``[0, 1]`` gives a sound line, so the bound is a function of the slopes that can be maximized:
α-CROWN (Xu et al., ICLR 2021) does it by projected gradient ascent, one slope per neuron, per
objective row and per box. Every iterate is a sound bound, so the best one seen is kept, and the
result is never weaker than CROWN's (the starting point).

The intermediate (pre-activation) bounds stay fixed; smooth activations keep their tangent and
chord lines. The computation is batched over boxes and rows in torch float64.
"""

from __future__ import annotations

import numpy as np
import torch

from .bounds import ReluNetwork

__all__ = ["optimized_lower_bound"]


def _layer_data(rnet: ReluNetwork, pre, m):
    """Per hidden layer: lower slope and intercept, upper slope and intercept, unstable mask."""
    out = []
    for j, (l, u) in enumerate(pre):
        act = rnet.layer_activations[j]
        a_lo, b_lo, a_up, b_up = (torch.as_tensor(v) for v in act.relax(l, u))
        if act.name == "relu":
            unstable = torch.as_tensor((l < 0) & (u > 0))
        else:
            unstable = None
        out.append((a_lo, b_lo, a_up, b_up, unstable))
    return out


def optimized_lower_bound(
    rnet: ReluNetwork, pre, lo, hi, C, d=None, *, steps: int = 20, lr: float = 0.1
):
    """Lower bound of ``C y + d`` over each box with optimized ReLU lower slopes.

    Parameters
    ----------
    rnet : ReluNetwork
    pre : list of (ndarray, ndarray)
        Pre-activation bounds ``(l, u)`` of every hidden layer, each of shape (B, n_k).
    lo, hi : ndarray, shape (B, n_in)
        The boxes.
    C : ndarray, shape (m, n_out) or (B, m, n_out)
    d : ndarray, shape (m,), optional
    steps : int, keyword-only
        Projected-gradient (Adam) steps; 0 returns CROWN's bound.
    lr : float, keyword-only
        Step size of the slopes.

    Returns
    -------
    bound : ndarray, shape (B, m)
        Sound lower bound of each row over each box (the best over the iterates).
    coef : ndarray, shape (B, m, n_in)
        Input coefficients of the linear lower bound that attains it.
    """
    B = lo.shape[0]
    C = np.asarray(C, dtype=np.float64)
    C = torch.as_tensor(np.array(np.broadcast_to(C, (B, *C.shape[-2:]))))
    m = C.shape[1]
    Ws = [torch.as_tensor(W) for W in rnet.weights]
    bs = [torch.as_tensor(b) for b in rnet.biases]
    layers = _layer_data(rnet, pre, m)
    mid = torch.as_tensor((lo + hi) / 2)[:, :, None]
    rad = torch.as_tensor((hi - lo) / 2)[:, :, None]
    offset = 0.0 if d is None else torch.as_tensor(np.asarray(d, dtype=np.float64))

    # variables: one slope per (box, row, unstable ReLU), started at CROWN's choice
    alphas: list[torch.Tensor | None] = []  # None for a layer without unstable ReLUs
    for a_lo, _, _, _, unstable in layers:
        if unstable is None or not bool(unstable.any()):
            alphas.append(None)
            continue
        alphas.append(a_lo[:, None, :].expand(B, m, -1).clone().requires_grad_(True))

    def bound(alphas):
        Lam = C
        const = Lam @ bs[-1]
        for j in range(len(Ws) - 1, 0, -1):
            Lam = Lam @ Ws[j]
            a_lo, b_lo, a_up, b_up, unstable = layers[j - 1]
            low = a_lo[:, None, :]
            if alphas[j - 1] is not None:
                low = torch.where(unstable[:, None, :], alphas[j - 1], low)
            pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
            const = const + (pos * b_lo[:, None, :]).sum(-1) + (neg * b_up[:, None, :]).sum(-1)
            Lam = pos * low + neg * a_up[:, None, :]
            const = const + Lam @ bs[j - 1]
        Lam = Lam @ Ws[0]
        val = const + (Lam @ mid)[..., 0] - (Lam.abs() @ rad)[..., 0] + offset
        return val, Lam

    params = [a for a in alphas if a is not None]
    with torch.no_grad():
        best, best_lam = bound(alphas)
    if not params or steps <= 0:
        return best.numpy(), best_lam.numpy()
    # Adam written out (torch.optim's first step costs seconds of one-time set-up)
    b1, b2, eps = 0.9, 0.999, 1e-8
    m1 = [torch.zeros_like(a) for a in params]
    m2 = [torch.zeros_like(a) for a in params]
    for t in range(1, steps + 1):
        val, Lam = bound(alphas)
        grads = torch.autograd.grad(val.sum(), params)
        with torch.no_grad():
            better = val > best
            best = torch.where(better, val, best)
            best_lam = torch.where(better[..., None], Lam, best_lam)
            for a, g, s1, s2 in zip(params, grads, m1, m2):
                s1.mul_(b1).add_(g, alpha=1 - b1)
                s2.mul_(b2).addcmul_(g, g, value=1 - b2)
                step = lr * (s1 / (1 - b1**t)) / ((s2 / (1 - b2**t)).sqrt() + eps)
                a.add_(step).clamp_(0.0, 1.0)  # ascent on the bound, projected on [0, 1]
    with torch.no_grad():  # the last iterate
        val, Lam = bound(alphas)
        better = val > best
        best = torch.where(better, val, best)
        best_lam = torch.where(better[..., None], Lam, best_lam)
    return best.numpy(), best_lam.numpy()
