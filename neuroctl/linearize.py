"""Closed-loop linearization of a plant and a controller at an operating point.

:func:`linearize` combines the plant's Jacobians (:mod:`neuroctl.jacobians`), the controller's
exact local gain (:mod:`neuroctl.gains`: every adjacent activation region at a kink) and the
actuator saturation into one closed loop per region (:mod:`neuroctl.loops`), at an operating
point from :mod:`neuroctl.operating`.
"""

from __future__ import annotations

import itertools
import math
import sys
import types

import numpy as np
from torch import nn

# Besides what linearize() uses, the public names that lived in this module before it was split
# are imported (noqa: F401) so that their old path keeps working, e.g. ``from neuroctl.linearize
# import local_gain``; their homes are the modules named above.
from ._checks import _check_norm, _check_plant, _check_positive, _is_continuous
from ._gain_rules import GAIN_RULES  # noqa: F401
from .gains import LocalGain, Region, _supported, local_gain  # noqa: F401
from .jacobians import PlantJacobians, _jacobians, plant_jacobians  # noqa: F401
from .loops import Linearization, LoopRegion
from .operating import (
    OperatingPoint,
    OperatingPointError,  # noqa: F401
    _controller64,
    operating_point,
)
from .plant import Plant
from .simulate import check_controller
from .synthesis import lqr  # noqa: F401

__all__ = ["linearize"]


def _dual(v: np.ndarray, norm: float) -> float:
    if norm == 2:
        return float(np.linalg.norm(v))
    if math.isinf(norm):
        return float(np.abs(v).sum())
    return float(np.abs(v).max())


def linearize(
    plant: Plant,
    controller,
    op: OperatingPoint | None = None,
    *,
    reference=None,
    continuous: bool | None = None,
    norm: float | str = 2,
    kink_tol: float = 1e-9,
    validity_tol: float = 1e-3,
    max_kink_neurons: int = 10,
) -> Linearization:
    """Linearize the closed loop of ``plant`` and ``controller`` at an operating point.

    The plant Jacobians come from autograd on the pure dynamics (float64); the controller's gain
    from :func:`local_gain` (exact for piecewise-linear networks, every adjacent region at a
    kink), through the observation map and the actuator saturation (a saturated input has zero
    gain; a command exactly at a bound is a kink with both sides reported). Callables that are not
    networks are differentiated by autograd (one region, radius unknown: ``nan``).

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
    op : OperatingPoint, optional
        Default: :func:`operating_point` from the plant's nominal equilibrium.
    reference : array_like, optional
        Used only when ``op`` is not given.
    continuous : bool, optional
        Linearize ``rhs`` (continuous) or the discrete map; default continuous if the plant has an
        ``rhs``; if ``op`` is given its kind is used.
    norm, kink_tol, validity_tol, max_kink_neurons
        As in :func:`local_gain`.

    Returns
    -------
    Linearization
        With python-control objects ``plant_ss``, ``closed_loops`` (one per region; inputs:
        references, disturbances and plant-input disturbances, never empty), ``loops`` (broken at
        the plant input) and each region's ``controller`` gain.
    """
    _check_plant(plant)
    norm = _check_norm(norm)
    kink_tol = _check_positive(kink_tol, "kink_tol", allow_zero=True)
    check_controller(plant, controller)
    if op is None:
        op = operating_point(plant, controller, reference=reference, continuous=continuous)
    elif not isinstance(op, OperatingPoint):
        raise TypeError(f"op: expected an OperatingPoint, received {type(op).__name__}")
    elif reference is not None:
        raise ValueError(
            "reference: expected None when op= is given (the reference is used only to find the "
            f"operating point; op's is op.r), received {reference!r}"
        )
    else:
        want = (plant.n_states, plant.n_references, plant.n_disturbances, plant.n_outputs)
        got = (op.x.size, np.size(op.r), np.size(op.w), np.size(op.y))
        if want != got:
            raise ValueError(
                f"op: expected an operating point of plant {plant.name!r} (sizes of state, "
                f"reference, disturbance, observation {want}), received one with sizes {got}"
            )
    cont = op.continuous if continuous is None else _is_continuous(plant, continuous)
    walked = isinstance(controller, nn.Module) and _supported(controller)
    # a network with rules is walked in float64 as it is, no copy needed
    ctrl = controller if walked else _controller64(controller)
    m, p = plant.n_inputs, plant.n_outputs
    local = None
    if ctrl is None:
        raw = [(np.zeros((m, p)), (), None)]
        u_cmd = np.zeros(m)
        radius = math.inf
        at_kink = False
    elif walked:
        local = local_gain(
            ctrl,
            op.y,
            norm=norm,
            kink_tol=kink_tol,
            validity_tol=validity_tol,
            max_kink_neurons=max_kink_neurons,
        )
        raw = []
        for r in local.regions:  # distinct regions with the same affine map: one closed loop
            if not any(np.array_equal(r.K, k) for k, _, _ in raw):
                raw.append((r.K, r.pattern, r.direction))
        u_cmd = local.value
        radius = float(local.radius)
        at_kink = bool(local.at_kink)
    else:
        (Ky,), u_cmd = _jacobians(lambda y: ctrl(y), [op.y], (0,), m)
        raw = [(Ky, (), None)]
        radius = math.nan
        at_kink = False
    # the plant Jacobians after the network walk: measured slightly faster in this order
    jac = plant_jacobians(plant, op.x, op.u, op.w, op.r, continuous=cont)
    # actuator saturation: strictly outside -> zero gain; at a bound -> both sides
    lo, hi = plant.input_lower, plant.input_upper
    inside = (u_cmd > lo + kink_tol) & (u_cmd < hi - kink_tol)
    at_bound = ~inside & ((np.abs(u_cmd - lo) <= kink_tol) | (np.abs(u_cmd - hi) <= kink_tol))
    regions = []
    for K, pattern, direction in raw:
        amb = [i for i in range(m) if at_bound[i] and np.any(K[i] != 0)]
        for combo in itertools.product((False, True), repeat=len(amb)):
            sat = ~inside.copy()
            for i, s in zip(amb, combo):
                sat[i] = s
            S = np.diag((~sat).astype(float))
            Kx = S @ K @ jac.C
            regions.append(
                LoopRegion(
                    gain=K,
                    saturated=sat,
                    state_gain=Kx,
                    A_cl=jac.A + jac.B @ Kx,
                    pattern=pattern,
                    direction=direction,
                )
            )
        at_kink = at_kink or bool(amb)
    # distance of the command to the actuator bounds, in the observation space
    for i in range(m):
        if inside[i] and local is not None:
            g = _dual(local.K[i], norm)
            if g > 0:
                radius = min(radius, min(u_cmd[i] - lo[i], hi[i] - u_cmd[i]) / g)
        if at_bound[i]:
            radius = 0.0
    exo = (
        list(plant.reference_names)
        + list(plant.disturbance_names)
        + [f"{u}_d" for u in plant.input_names]
    )
    lin = Linearization(plant, op, jac, local, regions, at_kink, radius, norm, exo)
    for r in regions:
        r._lin = lin
    return lin


# ``neuroctl.linearize`` is both this module and the function :func:`linearize`: once the module
# is imported (e.g. ``from neuroctl.linearize import local_gain``), Python binds the package
# attribute ``neuroctl.linearize`` to the module, shadowing the function. Calling the module
# therefore calls the function, so ``neuroctl.linearize(plant, controller, op)`` always works.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return linearize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
