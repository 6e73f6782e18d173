"""neuroctl.analyze: poles, verdicts, step figures, margins, against REFERENCE.md and simulation.

Independent sources: REFERENCE.md's activation-slope table of the arm (closed forms there), a
copy-free test plant written here from the equation ``I θ̈ = u - b θ̇ - k_g sin θ``, and nonlinear
simulation of the closed loop for the verdicts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from neuroctl.envs.arm import ArmParams, arm_plant
from torch import nn

import neuroctl as nc

F64 = torch.float64


def _own_arm(k_g: float):
    """I θ̈ = u - b θ̇ - k_g sin θ with I = 1/3, b = 0.5; observation [r - θ, ω, sin θ, cos θ]."""
    I, b = 1.0 / 3.0, 0.5

    def rhs(x, u):
        xp = nc.namespace(x)
        acc = (u[..., 0] - b * x[..., 1] - k_g * xp.sin(x[..., 0])) / I
        return xp.stack([x[..., 1], acc], axis=-1)

    def observe(x, r):
        xp = nc.namespace(x)
        th = x[..., 0]
        return xp.stack([r[..., 0] - th, x[..., 1], xp.sin(th), xp.cos(th)], axis=-1)

    return nc.Plant(
        states=["theta", "omega"],
        inputs=["torque"],
        dt=0.02,
        rhs=rhs,
        observe=observe,
        outputs=["error", "omega", "sin", "cos"],
        references=["target"],
        equilibrium=lambda r: (np.array([r[0], 0.0]), np.array([k_g * math.sin(r[0])])),
    )


def _slope_controller(act: str, w: float, k: float) -> nn.Sequential:
    """u = k σ(w (r - θ)) (sigmoid centred: k (σ - 1/2)), one hidden unit."""
    net = nn.Sequential(nn.Linear(4, 1), nc.ACTIVATIONS[act](), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[w, 0.0, 0.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.fill_(k)
        net[2].bias.fill_(-k / 2 if act == "sigmoid" else 0.0)
    return net


def _sig3(x) -> str:
    return f"{float(x):.3g}"


def _plants(k_g):
    g = 2 * k_g  # m = l = 1: k_g = m g l / 2
    return {"own": _own_arm(k_g), "arm": arm_plant(ArmParams(gravity=g, max_torque=50.0))}


# REFERENCE.md, "Activation slope as proportional gain": horizontal arm, k w = 4
HORIZONTAL = {
    1.0: dict(pole=(-0.75, 3.38), zeta=0.217, overshoot=49.8, rise=0.353, pm=24.4),
    0.25: dict(pole=(-0.75, 1.56), zeta=0.433, overshoot=22.1, rise=0.876, pm=46.1),
}


@pytest.mark.parametrize("which", ["own", "arm"])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_activation_slope_table_of_reference_horizontal_arm(act, which):
    plant = _plants(0.0)[which]
    rep = nc.analyze(plant, _slope_controller(act, 1.0, 4.0), reference=[0.0])
    slope = 0.25 if act == "sigmoid" else 1.0
    if act == "relu":  # at the origin the unit sits on its kink: both sides are reported
        assert rep.at_kink and rep.verdict == "depends on region"
        (reg,) = [r for r in rep.regions if np.any(r.region.gain)]  # the active side
        (off,) = [r for r in rep.regions if not np.any(r.region.gain)]
        assert off.verdict == "marginal"  # no torque: a free horizontal arm (pole at 0)
    else:
        assert not rep.at_kink and rep.verdict == "stable"
        (reg,) = rep.regions
    ref = HORIZONTAL[slope]
    p = reg.dominant_pole
    assert (_sig3(p.real), _sig3(p.imag)) == tuple(_sig3(v) for v in ref["pole"])
    assert _sig3(reg.damping) == _sig3(ref["zeta"])
    assert _sig3(reg.step_info["Overshoot"]) == _sig3(ref["overshoot"])
    assert _sig3(reg.step_info["RiseTime"]) == _sig3(ref["rise"])
    assert _sig3(reg.margins["phase_margin"]) == _sig3(ref["pm"])


@pytest.mark.parametrize("which", ["own", "arm"])
def test_activation_slope_table_of_reference_upright_arm(which):
    plant = _plants(-5.0)[which]
    high = nc.analyze(plant, _slope_controller("tanh", 1.0, 8.0), reference=[0.0])
    assert high.verdict == "stable"
    assert _sig3(high.regions[0].margins["gain_margin"]) == "0.625"
    low = nc.analyze(plant, _slope_controller("sigmoid", 1.0, 8.0), reference=[0.0])
    assert low.verdict == "unstable"
    assert _sig3(low.regions[0].max_real) == "2.34"
    assert low.regions[0].step_info is None  # no step figures for an unstable loop


def test_scalar_kink_verdict_says_the_regions_disagree():
    plant = nc.Plant(states=["x"], inputs=["u"], dt=1.0, update=lambda x, u: x + u)
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU(), nn.Linear(1, 1, bias=False))
    net = net.double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(-0.5)
    rep = nc.analyze(plant, net, nc.OperatingPoint.at(plant, net, [0.0]))
    assert rep.verdict == "depends on region"
    by_radius = {r.spectral_radius: r.verdict for r in rep.regions}
    assert by_radius == {0.5: "stable", 1.0: "marginal"}
    text = repr(rep)
    assert "DEPENDS ON REGION" in text and "marginal" in text and "stable" in text


def _stacked_simulation(plant, nets, x0, refs, steps):
    """Simulate G closed loops of same-architecture Sequentials at once (weights stacked)."""
    layers = []
    for pos, layer in enumerate(nets[0]):
        if isinstance(layer, nn.Linear):
            W = torch.stack([n[pos].weight.detach() for n in nets]).to(F64)
            b = torch.stack([n[pos].bias.detach() for n in nets]).to(F64)
            layers.append((W, b))
        else:
            layers.append(layer)

    def control(y):
        for layer in layers:
            if isinstance(layer, tuple):
                y = torch.einsum("goi,gi->go", layer[0], y) + layer[1]
            else:
                y = layer(y)
        return y

    x = torch.as_tensor(x0, dtype=F64)
    r = torch.as_tensor(refs, dtype=F64)
    out = [x]
    with torch.no_grad():
        for _ in range(steps):
            x = plant.step(x, control(plant.observe(x, r)))
            out.append(x)
    return torch.stack(out, 1).numpy()


def test_step_on_grid_matches_python_control_step_response():
    """The blocked recurrence behind step_info reproduces control.step_response on its grid."""
    import control

    from neuroctl.analysis import _step_on_grid

    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 6):
        for _ in range(3):
            A = rng.normal(size=(n, n))
            A -= (np.abs(np.linalg.eigvals(A)).max() + 0.3) * np.eye(n)
            sys = control.ss(A, rng.normal(size=(n, 1)), rng.normal(size=(1, n)), rng.normal())
            T = np.linspace(0.0, float(control.step_response(sys).time[-1]), 20001)
            ref = np.squeeze(control.step_response(sys, T=T).outputs)
            ours = _step_on_grid(sys, T)
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
            info = control.step_info(ours, T=T, yfinal=float(sys.dcgain()))
            for k, v in control.step_info(sys, T=T).items():
                assert info[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_linear_verdict_predicts_nonlinear_decay_or_growth_on_arm():
    """>= 100 random small controllers (6 activations) on the arm, hanging and upright."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    acts = ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus"]
    steps = 1500
    cases = {}
    n_no_op = 0
    for i in range(150):
        act, g = acts[i % 6], (9.81, -9.81)[(i // 6) % 2]
        plant = arm_plant(ArmParams(gravity=g))
        net = nc.mlp(4, 1, (8,), act, seed=i, dtype=F64, output_scale=float(rng.uniform(1, 15)))
        r = float(rng.uniform(-1.0, 1.0))
        try:
            op = nc.operating_point(plant, net, reference=[r], continuous=False)
        except nc.OperatingPointError:  # no equilibrium near the target for this network
            n_no_op += 1
            continue
        rep = nc.analyze(plant, net, op)
        d = rng.normal(size=2)
        e0 = min(0.1 * rep.state_radius, 1e-4)
        cases.setdefault((act, g), []).append((net, op, rep, e0, op.x + e0 * d / np.linalg.norm(d)))
    agree = decisive = 0
    n_outside = n_slow = 0
    for (_act, g), group in cases.items():
        plant = arm_plant(ArmParams(gravity=g))
        X = _stacked_simulation(
            plant,
            [c[0] for c in group],
            np.array([c[4] for c in group]),
            np.array([c[1].r for c in group]),
            steps,
        )
        for (_, op, rep, e0, _), traj in zip(group, X):
            e = np.linalg.norm(traj - op.x, axis=-1)
            rho = rep.regions[0].spectral_radius
            if rep.verdict not in ("stable", "unstable") or abs(steps * math.log(rho)) < 4.6:
                n_slow += 1  # rho^steps within [1e-2, 1e2]: not decided within the horizon
                continue
            exits = np.nonzero(e > rep.state_radius)[0]
            grew = exits.size > 0 or e[-1] > e0
            if rep.verdict == "stable" and exits.size:
                n_outside += 1  # left the validity radius: outside the claim
                continue
            decisive += 1
            agree += grew == (rep.verdict == "unstable")
    print(
        f"verdict vs simulation: {agree}/{decisive} agree; no equilibrium {n_no_op}, "
        f"undecided within horizon {n_slow}, left the radius {n_outside}"
    )
    assert decisive >= 100, (decisive, n_no_op, n_slow, n_outside)
    assert agree >= 0.99 * decisive, (agree, decisive)


def test_report_objects_print_serialise_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plant = _own_arm(0.0)
    rep = nc.analyze(plant, _slope_controller("relu", 1.0, 4.0), reference=[0.0])
    d = rep.to_dict()
    assert d["verdict"] == "depends on region" and len(d["regions"]) == 2
    assert d["regions"][0]["poles"] == [[z.real, z.imag] for z in rep.regions[0].poles]
    fig = rep.plot()
    pole_lines = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("region")]
    got = np.sort_complex([complex(x, y) for ln in pole_lines for x, y in zip(*ln.get_data())])
    want = np.sort_complex(np.concatenate([r.poles for r in rep.regions]))
    np.testing.assert_allclose(got, want)
    step_lines = fig.axes[1].lines
    assert len(step_lines) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="step_output"):
        nc.analyze(plant, _slope_controller("tanh", 1.0, 4.0), reference=[0.0], step_output="x")
    with pytest.raises(TypeError):
        nc.analyze(plant, _slope_controller("tanh", 1.0, 4.0), reference=[0.0], verbose=True)
