"""The standalone examples (hinge flux, value-function kink, derivative approximation) run and
show what they claim, each number checked against an independent source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _examples import load_example


def test_derivative_approximation_relu_good_values_bad_derivatives(tmp_path):
    example = load_example("derivative_approximation")
    result = example.main(example.Args(out=str(tmp_path)))
    relu, tanh = result["errors"]["relu"], result["errors"]["tanh"]
    # both fit the function itself (closed form f) to within 1% RMS
    assert relu["f"] < 1e-2 and tanh["f"] < 1e-2
    # a ReLU net is piecewise affine: autograd's f'' is exactly 0, so its relative error is 1
    assert relu["d2f"] == pytest.approx(1.0, abs=1e-12)
    # the staircase f' is several times worse than the smooth net's f'
    assert relu["df"] > 3 * tanh["df"]
    # the smooth net gets the second derivative to within 25% RMS of the closed form
    assert tanh["d2f"] < 0.25
    assert Path(result["figure"]).stat().st_size > 0


def test_value_function_kink_consumption_rule_solves_the_model(tmp_path):
    example = load_example("value_function_kink")
    args = example.Args()
    x, c = example.solve_consumption(args)

    def cons(v):
        return np.interp(v, x, c)

    income = np.array([args.income_low, args.income_high])
    x0 = x[1]

    def expected_mu(a_next):
        nxt = cons(args.interest * np.asarray(a_next)[..., None] + income)
        return args.beta * args.interest * np.mean(nxt**-args.sigma, axis=-1)

    # above the kink the Euler equation u'(c) = beta R E u'(c') holds (to interpolation error)
    xs = np.linspace(x0 + 0.05, args.x_hi, 50)
    residual = cons(xs) ** -args.sigma / expected_mu(xs - cons(xs)) - 1.0
    assert np.max(np.abs(residual)) < 1e-3
    # below it the limit binds: c = x and consuming more is worth more than saving the first unit
    xs = np.linspace(args.x_lo, x0 - 0.01, 50)
    assert np.allclose(cons(xs), xs)
    assert np.all(xs**-args.sigma > expected_mu(np.zeros_like(xs)))


def test_value_function_kink_relu_breakpoint_sits_at_the_kink(tmp_path):
    pytest.importorskip("neuroctl.pwl", reason="neuroctl.pwl (pwl_from_relu_net) not available")
    example = load_example("value_function_kink")
    result = example.main(example.Args(out=str(tmp_path)))
    x0 = result["x_bar"]
    # the ReLU net has a breakpoint within 1% of the fitted range of the model's kink
    assert abs(result["nearest_breakpoint"] - x0) < 0.01 * (3.0 - 0.3)
    # and a smaller error than the tanh net of the same size near the kink
    relu, tanh = result["errors"]["relu"], result["errors"]["tanh"]
    assert relu["near_kink"] < 0.5 * tanh["near_kink"]
    assert Path(result["figure"]).stat().st_size > 0


def test_hinge_flux_matches_the_ring_where_uniform_flow_is_string_stable(tmp_path):
    import functools

    from neuroctl.envs.ring_road import OVMParams, ovm_acceleration

    import neuroctl

    example = load_example("hinge_flux")
    result = example.main(example.Args(out=str(tmp_path)))
    rho = np.array(result["rho"])
    model, measured = np.array(result["hinge_flux"]), np.array(result["measured_flux"])
    p = OVMParams()
    # the hinge flux itself: Greenshields' parabola clipped by the two ReLUs
    np.testing.assert_allclose(model, p.v_max * rho * (1 - rho / p.rho_max), rtol=1e-12)
    # the critical density agrees with neuroctl.string_stability of the OVM law
    rho_c = result["critical_density"]
    law = functools.partial(ovm_acceleration, params=p)
    assert neuroctl.string_stability(law, gap=1 / (0.97 * rho_c) - 5.0).string_stable
    assert not neuroctl.string_stability(law, gap=1 / (1.03 * rho_c) - 5.0).string_stable
    # below it the simulated ring realises the hinge flux (to 1%); above it waves form (speed
    # std > 1 m/s) and, once clear of the threshold, the flux departs from q by more than 5%
    stable, waves, far = rho < 0.95 * rho_c, rho > 1.1 * rho_c, rho > 1.3 * rho_c
    assert stable.sum() >= 3 and far.sum() >= 3
    np.testing.assert_allclose(measured[stable], model[stable], rtol=1e-2)
    assert np.all(np.array(result["speed_std"])[stable] < 0.1)
    assert np.all(np.array(result["speed_std"])[waves] > 1.0)
    assert np.all(np.abs(measured[far] - model[far]) > 0.05 * model[far])
    assert Path(result["figure"]).stat().st_size > 0
