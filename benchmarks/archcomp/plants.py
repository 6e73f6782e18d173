"""The ARCH-COMP AINNCS plants, each written once from its ``dynamics*.m``, array-agnostic.

Every right-hand side ``rhs(x, u) -> dx/dt`` takes states of shape ``(..., n)`` and commands of
shape ``(..., m)`` and is written with :func:`neuroctl.namespace`, :func:`neuroctl.unstack` and
:func:`neuroctl.stack`, so that one definition runs on numpy arrays, torch tensors (batched,
differentiable) and the verifier's affine forms. ``u`` is the command the plant receives (after
the controller's output offset or scaling, which belongs to the control law, see
:mod:`benchmarks.archcomp.suite`). State order and units are those of the ``.m`` files.
"""

from __future__ import annotations

from neuroctl import namespace, stack, unstack

__all__ = [
    "unicycle_rhs",
    "double_pendulum_rhs",
    "airplane_rhs",
    "attitude_rhs",
    "quad_rhs",
    "nav_rhs",
    "docking_rhs",
    "tora_rhs",
    "cartpole_rhs",
    "vcas_update",
    "QUAD",
    "DOCKING",
    "VCAS_G",
]


def unicycle_rhs(x, u):
    """Unicycle (Benchmark10-Unicycle/dynamics10.m): position (x1, x2) m, heading x3 rad, speed x4.

    ``u = (acceleration, turn rate)``: the .m's ``u(i) - 20`` with the offset in the control law.
    """
    xp = namespace(x, u)
    _, _, psi, v = unstack(x)
    a, w = unstack(u)
    return stack([v * xp.cos(psi), v * xp.sin(psi), w, a], x)


def double_pendulum_rhs(x, u):
    """Double pendulum (Double_Pendulum/dynamics_dp.m; m = 0.5, L = 0.5, c = 0, g = 1).

    States: angles th1, th2 (rad) and angular speeds w1, w2; ``u = (T1, T2)`` torques.
    """
    xp = namespace(x, u)
    th1, th2, w1, w2 = unstack(x)
    T1, T2 = unstack(u)
    d = th1 - th2
    s, c = xp.sin(d), xp.cos(d)
    s1, s2 = xp.sin(th1), xp.sin(th2)
    inner = -(s * w2**2) / 2 + 4 * T1 + 2 * s1
    num = s * w1**2 + 8 * T2 + 2 * s2 - c * inner
    den = c**2 / 2 - 1
    dw1 = 4 * T1 + 2 * s1 - (w2**2 * s) / 2 + (c * num) / (2 * den)
    dw2 = -num / den
    return stack([w1, w2, dw1, dw2], x)


def airplane_rhs(x, u):
    """Airplane (Airplane/dynamics.m; Ix = Iy = Iz = 1, Ixz = 0, m = 1, g = 1).

    States, in the .m's order: position (x, y, z), body velocities (u, v, w), Euler angles
    (phi, theta, psi), then body rates **r, p, q** (x10 = r, x11 = p, x12 = q). Commands: forces
    (Fx, Fy, Fz) and moments (Mx, My, Mz); ``dp = Mx``, ``dq = My``, ``dr = Mz``.
    """
    xp = namespace(x, u)
    _, _, _, vu, vv, vw, phi, theta, psi, r, p, q = unstack(x)
    Fx, Fy, Fz, Mx, My, Mz = unstack(u)
    cph, sph = xp.cos(phi), xp.sin(phi)
    cth, sth = xp.cos(theta), xp.sin(theta)
    cps, sps = xp.cos(psi), xp.sin(psi)
    # T_psi @ T_theta @ T_phi @ (u, v, w), written out row by row
    dx = cps * cth * vu + (cps * sth * sph - sps * cph) * vv + (cps * sth * cph + sps * sph) * vw
    dy = sps * cth * vu + (sps * sth * sph + cps * cph) * vv + (sps * sth * cph - cps * sph) * vw
    dz = -sth * vu + cth * sph * vv + cth * cph * vw
    # (1 / cos theta) * mat_2 @ (p, q, r)
    sec = 1 / cth
    dphi = sec * (cth * p + sth * sph * q + sth * cph * r)
    dtheta = sec * (cth * cph * q - cth * sph * r)
    dpsi = sec * (sph * q + cph * r)
    du = -sth + Fx - q * vw + r * vv
    dv = cth * sph + Fy - r * vu + p * vw
    dw = cth * cph + Fz - p * vv + q * vu
    return stack([dx, dy, dz, du, dv, dw, dphi, dtheta, dpsi, Mz, Mx, My], x)


def attitude_rhs(x, u):
    """Attitude control of a rigid body (Attitude-Control/dynamics.m): angular velocities
    (x1, x2, x3) and Rodrigues parameters (x4, x5, x6); ``u`` three torques."""
    w1, w2, w3, p1, p2, p3 = unstack(x)
    u1, u2, u3 = unstack(u)
    n2 = p1**2 + p2**2 + p3**2
    return stack(
        [
            0.25 * (u1 + w2 * w3),
            0.5 * (u2 - 3 * w1 * w3),
            u3 + 2 * w1 * w2,
            0.5 * (w2 * (n2 - p3) + w3 * (n2 + p2) + w1 * (n2 + 1)),
            0.5 * (w1 * (n2 + p3) + w3 * (n2 - p1) + w2 * (n2 + 1)),
            0.5 * (w1 * (n2 - p2) + w2 * (n2 + p1) + w3 * (n2 + 1)),
        ],
        x,
    )


#: quadrotor parameters of QUAD/dynamics.m: g (m/s²), mass (kg), inertias (kg m²)
QUAD = {"g": 9.81, "m": 1.4, "Jx": 0.054, "Jy": 0.054, "Jz": 0.104}


def quad_rhs(x, u):
    """Quadrotor (QUAD/dynamics.m), 12 states, ``u = (thrust, roll torque, pitch torque)``.

    Transcribed as published, including the .m's ``x12*x5 * x11*x6`` (a product) in ``dx4``, its
    ``x10*x6 - x11*x6`` in ``dx5`` and a zero yaw torque.
    """
    xp = namespace(x, u)
    g, m, Jx, Jy, Jz = (QUAD[k] for k in ("g", "m", "Jx", "Jy", "Jz"))
    _, _, _, x4, x5, x6, x7, x8, x9, x10, x11, x12 = unstack(x)
    u1, u2, u3 = unstack(u)
    c7, s7 = xp.cos(x7), xp.sin(x7)
    c8, s8 = xp.cos(x8), xp.sin(x8)
    c9, s9 = xp.cos(x9), xp.sin(x9)
    t8 = s8 / c8
    return stack(
        [
            c8 * c9 * x4 + (s7 * s8 * c9 - c7 * s9) * x5 + (c7 * s8 * c9 + s7 * s9) * x6,
            c8 * s9 * x4 + (s7 * s8 * s9 - c7 * c9) * x5 + (c7 * s8 * s9 + s7 * c9) * x6,
            s8 * x4 - s7 * c8 * x5 - c7 * c8 * x6,
            x12 * x5 * x11 * x6 - g * s8,
            x10 * x6 - x11 * x6 - g * s8,
            x11 * x4 - x10 * x5 + g * c8 * c7 - g - u1 / m,
            x10 + s7 * t8 * x11 + c7 * t8 * x12,
            c7 * x11 - s7 * x12,
            s7 * x11 / c8 - c7 * x12 / c8,
            x11 * x12 * (Jy - Jz) / Jx + u2 / Jx,
            (Jz - Jx) * x10 * x12 / Jy + u3 / Jy,
            (Jx - Jy) * x10 * x11 / Jz,  # t = 0: no yaw torque
        ],
        x,
    )


def nav_rhs(x, u):
    """Navigation robot (NAV/dynamics.m): position (x1, x2), speed x3, heading x4;
    ``u = (acceleration, turn rate)``."""
    xp = namespace(x, u)
    _, _, v, th = unstack(x)
    a, w = unstack(u)
    return stack([v * xp.cos(th), v * xp.sin(th), a, w], x)


#: spacecraft docking parameters of Docking/dynamics.m: mass (kg), mean motion n (rad/s)
DOCKING = {"m": 12.0, "n": 0.001027}


def docking_rhs(x, u):
    """Spacecraft docking in Clohessy-Wiltshire frame (Docking/dynamics.m): position (x, y) m,
    velocity (x', y') m/s; ``u = (Fx, Fy)`` N."""
    m, n = DOCKING["m"], DOCKING["n"]
    px, _, vx, vy = unstack(x)
    Fx, Fy = unstack(u)
    return stack([vx, vy, 2 * n * vy + 3 * n**2 * px + Fx / m, -2 * n * vx + Fy / m], x)


def tora_rhs(x, u):
    """TORA, translational oscillator with a rotational actuator
    (Tora_Heterogeneous/dynamicsTora.m); ``u`` one torque."""
    xp = namespace(x, u)
    x1, x2, x3, x4 = unstack(x)
    (v,) = unstack(u)
    return stack([x2, -x1 + 0.1 * xp.sin(x3), x4, v], x)


def cartpole_rhs(x, u):
    """Cart-pole (CartPole/dynamics.m): cart position x1 and speed x2, pole angle x3 (0 upright)
    and its rate x4; ``u`` the force command f."""
    xp = namespace(x, u)
    _, x2, x3, x4 = unstack(x)
    (f,) = unstack(u)
    dx4 = (0.08 * 0.41 * (9.8 * xp.sin(x3) - 2 * f * xp.cos(x3)) - 0.0021 * x4) / 0.0105
    return stack([x2, 2 * f, x4, dx4], x)


#: gravitational acceleration of the VCAS encounter, ft/s²
VCAS_G = 32.2


def vcas_update(x, u):
    """VCAS one-second update (VCAS/planeDynamics.m, T = 1), a discrete map.

    States: intruder altitude relative to the ownship h (ft), ownship climb rate h0' (ft/s),
    time to loss of horizontal separation tau (s), previous advisory index (0..8).
    ``u = (new advisory index, ownship acceleration h0'' ft/s²)``.
    """
    h, hd, tau, _ = unstack(x)
    adv, acc = unstack(u)
    return stack([h - hd - 0.5 * acc, hd + acc, tau - 1.0, adv], x)
