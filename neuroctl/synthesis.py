"""Controller synthesis on the plant's linearization.

* :func:`lqr` -- an LQR gain on the plant's Jacobians at an operating point, returned as a frozen
  float64 ``nn.Linear`` acting on the observation or the state.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._array import check_vector
from ._checks import _check_plant, _is_continuous
from .jacobians import plant_jacobians
from .operating import OperatingPoint
from .plant import Plant

__all__ = ["lqr"]

F64 = torch.float64


def lqr(plant: Plant, op, Q, R, *, continuous: bool | None = None, on: str = "auto") -> nn.Linear:
    """LQR state feedback on the plant's linearization, as an ``nn.Linear`` controller.

    Parameters
    ----------
    plant : Plant
    op : OperatingPoint or tuple (x, u)
        Point of linearization: an :class:`OperatingPoint` or a state ``(n,)`` and input ``(m,)``
        at which the plant rests.
    Q : array_like, shape (n, n)
        State weight.
    R : array_like, shape (m, m)
        Input weight.
    continuous : bool, optional
        ``control.lqr`` on ``rhs`` (True) or ``control.dlqr`` on the discrete map (False).
        Default: the kind of ``op`` if given, else continuous if the plant has an ``rhs``.
    on : {"auto", "observation", "state"}
        What the returned layer acts on. With "auto", the observation if its Jacobian ``C`` has
        full column rank at the point (``y = C x`` locally invertible: the layer computes
        ``u = u0 - K C⁺ (y - y0)``, identical to ``u0 - K (x - x0)`` to first order and exactly
        for a linear observation map), otherwise the state.

    Returns
    -------
    nn.Linear (float64, frozen)
        With attributes ``acts_on`` ("observation" or "state"), ``state_gain`` (the LQR ``K``,
        shape (m, n), ``u = u0 - K (x - x0)``), ``riccati`` (the solution ``S``) and ``poles``.
    """
    import control

    from .controllers import linear_controller

    _check_plant(plant)
    if on not in ("auto", "observation", "state"):
        raise ValueError(f"on: expected 'auto', 'observation' or 'state', received {on!r}")
    w0: np.ndarray | None
    r0: np.ndarray | None
    if isinstance(op, OperatingPoint):
        x0, u0, w0, r0 = op.x, op.u, op.w, op.r
        cont = op.continuous if continuous is None else _is_continuous(plant, continuous)
    else:
        try:
            x0, u0 = op
        except (TypeError, ValueError):
            raise TypeError(
                f"op: expected an OperatingPoint or a tuple (x, u), received {op!r}"
            ) from None
        x0 = check_vector(x0, plant.n_states, "op[0] (the state)", plant.state_names)
        u0 = check_vector(u0, plant.n_inputs, "op[1] (the input)", plant.input_names)
        w0 = r0 = None
        cont = _is_continuous(plant, continuous)
    jac = plant_jacobians(plant, x0, u0, w0, r0, continuous=cont)
    Q = np.atleast_2d(np.asarray(Q, float))
    R = np.atleast_2d(np.asarray(R, float))
    n, m = plant.n_states, plant.n_inputs
    if Q.shape != (n, n) or R.shape != (m, m):
        raise ValueError(
            f"Q, R: expected shapes ({n}, {n}) and ({m}, {m}), received {Q.shape} and {R.shape}"
        )
    if not (np.isfinite(Q).all() and np.isfinite(R).all()):
        raise ValueError("Q, R: expected finite weights, received a NaN or an infinity")
    if cont:
        K, S, E = control.lqr(jac.A, jac.B, Q, R)
    else:
        K, S, E = control.dlqr(jac.A, jac.B, Q, R)
    K = np.asarray(K)
    C = jac.C
    use_obs = on == "observation" or (on == "auto" and np.linalg.matrix_rank(C) == n)
    if use_obs:
        if np.linalg.matrix_rank(C) < n:
            raise ValueError(
                "on='observation': the observation Jacobian C has rank "
                f"{np.linalg.matrix_rank(C)} < n={n}; the state is not recoverable from y"
            )
        G = -K @ np.linalg.pinv(C)
        offset = u0 - G @ jac.y0
    else:
        G, offset = -K, u0 + K @ x0
    layer = linear_controller(G)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor(np.array(offset, dtype=float), dtype=F64))
    # plain attributes, not parameters or buffers: nn.Module.__setattr__ would also store these
    # in the instance dict, but it is typed to take only tensors and modules
    vars(layer).update(
        acts_on="observation" if use_obs else "state",
        state_gain=K,
        riccati=np.asarray(S),
        poles=np.asarray(E),
    )
    return layer
