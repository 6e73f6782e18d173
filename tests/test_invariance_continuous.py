"""Forward invariance of a box for the continuous closed loop (zero-order hold).

Independent sources: the closed-form flow of linear plants with the command held (the verdict
each box must get), and scipy's ``solve_ivp`` at rtol 1e-10, atol 1e-12 (written here, not the
library's replay) from the corners and random states of the box: at the samples they stay in the
box, at dense instants between them in the proved tube and in the safe box.
"""

import numpy as np
import pytest
import torch
from _ode_replay import corners, scipy_closed_loop

from neuroctl import Plant, stack
from neuroctl.verify.reach import check_invariant


def _linear(weights):
    net = torch.nn.Linear(len(weights[0]), len(weights), bias=False).double()
    net.requires_grad_(False)
    net.weight.copy_(torch.tensor(weights, dtype=torch.float64))
    return net


def _replay(plant, net, x0, periods, dense=40):
    """Samples ``(N, periods+1, n)`` and dense states ``(N, periods, dense, n)`` (command held)."""
    return scipy_closed_loop(plant, net, x0, periods, dense=dense)


def _corners_and_random(lo, hi, n, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([corners(lo, hi), rng.uniform(lo, hi, (n, lo.size))])


def _assert_backed(res, plant, net, lo, hi, slo, shi, periods=4):
    x0 = _corners_and_random(lo, hi, 60)
    samples, between = _replay(plant, net, x0, periods)
    assert np.all((samples >= lo) & (samples <= hi))  # in the box at every sample
    assert np.all((between >= slo) & (between <= shi))  # in the safe box in between
    tl, tu = res.reach.tube_lower[0], res.reach.tube_upper[0]
    assert np.all((between >= tl) & (between <= tu))  # inside the proved tube
    assert np.all((samples[:, 1] >= res.reach.lower[1]) & (samples[:, 1] <= res.reach.upper[1]))


# x' = x + u, u = -3 x(kT) held: x(kT + t) = (3 - 2 e^t) x(kT). [-1, 1] is invariant for the
# flow (every instant) iff 3 - 2 e^t >= -1 on [0, T], i.e. T <= ln 2 = 0.693.
SCALAR_NET = _linear([[-3.0]])


def _scalar(dt):
    return Plant(
        states=1, inputs=1, dt=dt, rhs=lambda x, u: x + u, integrator="rk4", name="unstable"
    )


@pytest.mark.parametrize("dt", [0.2, 0.6])
def test_box_proved_invariant_in_continuous_time_when_the_closed_form_says_so(dt):
    plant = _scalar(dt)
    lo, hi = np.array([-1.0]), np.array([1.0])
    res = check_invariant(plant, SCALAR_NET, lo, hi, samples=64)
    assert res.holds is True and res.semantics == "continuous"
    assert "every instant" in res.notes[0]
    _assert_backed(res, plant, SCALAR_NET, lo, hi, lo, hi)


@pytest.mark.parametrize("dt", [0.75, 0.8])
def test_box_not_invariant_gets_a_counterexample_that_the_closed_form_confirms(dt):
    plant = _scalar(dt)
    res = check_invariant(plant, SCALAR_NET, [-1.0], [1.0], samples=64)
    assert res.holds is False and res.semantics == "continuous"
    ce = res.counterexample.states[0]
    x0 = ce[0, 0]
    assert -1.0 <= x0 <= 1.0
    want = (3.0 - 2.0 * np.exp(dt)) * x0
    assert abs(ce[1, 0] - want) <= 1e-8 * (1 + abs(want))
    assert abs(want) > 1.0  # leaves the box at the next sample


# x1' = -0.1 x1 + x2, x2' = -x1 - 0.1 x2 (no command): the samples every pi/2 s stay in [-1, 1]^2
# (row sums of expm(A pi/2) are 0.855), but in between a corner swings to
# max_t e^{-0.1 t} (|cos t| + |sin t|) = 1.3139 (at t = 0.685)
def _oscillator():
    def rhs(x, u):
        return stack(
            [-0.1 * x[..., 0] + x[..., 1], -x[..., 0] - 0.1 * x[..., 1] + u[..., 0]], like=x
        )

    return Plant(states=2, inputs=1, dt=np.pi / 2, rhs=rhs, name="damped oscillator")


OSC_NET = _linear([[0.0, 0.0]])


def test_closed_form_swing_of_the_oscillator():
    t = np.linspace(0.0, np.pi / 2, 200001)
    swing = np.exp(-0.1 * t) * (np.abs(np.cos(t)) + np.abs(np.sin(t)))
    assert 1.25 < swing.max() < 1.4
    assert np.exp(-0.1 * np.pi / 2) < 1.0  # the sample map is a contraction in the max norm


@pytest.mark.parametrize("safe", [None, 1.25])
def test_swing_between_samples_outside_the_safe_box_is_a_violation(safe):
    kw = {} if safe is None else dict(safe_lower=[-safe] * 2, safe_upper=[safe] * 2)
    res = check_invariant(_oscillator(), OSC_NET, [-1.0, -1.0], [1.0, 1.0], samples=64, **kw)
    assert res.holds is False and res.semantics == "continuous"
    x0 = res.counterexample.states[0, 0]
    s = 1.0 if safe is None else safe
    samples, between = _replay(_oscillator(), OSC_NET, x0[None], 1, dense=400)
    assert np.all(np.abs(samples) <= 1.0)  # the samples stay in the box: it leaves in between
    assert np.abs(between).max() > s


def test_swing_inside_the_safe_box_is_proved_and_contains_the_flow():
    plant, lo, hi = _oscillator(), -np.ones(2), np.ones(2)
    slo, shi = -1.4 * np.ones(2), 1.4 * np.ones(2)
    res = check_invariant(plant, OSC_NET, lo, hi, safe_lower=slo, safe_upper=shi, samples=64)
    assert res.holds is True and res.semantics == "continuous"
    assert np.all(res.reach.tube_lower >= slo) and np.all(res.reach.tube_upper <= shi)
    _assert_backed(res, plant, OSC_NET, lo, hi, slo, shi)


def test_safe_box_arguments_are_checked():
    plant = _oscillator()
    with pytest.raises(ValueError, match="safe_lower/safe_upper: expected a safe box containing"):
        check_invariant(plant, OSC_NET, [-1, -1], [1, 1], safe_lower=[-0.5, -2], safe_upper=[2, 2])
    with pytest.raises(ValueError, match="only with steps=None"):
        check_invariant(plant, OSC_NET, [-1, -1], [1, 1], steps=2, safe_upper=[2, 2])
