"""The API's contract: every bad input is refused with a message naming the argument.

Each case calls a public function with one bad input and asserts the exception type and that the
message names the argument (and, for values, says what was expected). The first cases are the
ones that used to be silently wrong: a plant whose ``rhs`` has the wrong shape was broadcast into
wrong trajectories, ``local_gain`` at NaN answered "exact affine map" with radius NaN, NaN
initial states gave all-NaN trajectories, misspelt reset options were ignored.
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from neuroctl.envs import EnvModel, PlantEnv, PlantVectorEnv, box_sampler
from neuroctl.envs.arm import ArmParams, arm_plant, pd_gravity_controller
from neuroctl.envs.arm2link import Arm2LinkParams

import neuroctl as nc

ARM = arm_plant()
NET = nc.mlp(4, 1, hidden=(8,), activation="relu")
PD = pd_gravity_controller()


def _rhs_ok(x, u):
    return nc.stack([x[..., 1], u[..., 0] - x[..., 0]], like=x)


def _plant(**kw):
    args = dict(states=["q", "v"], inputs=["f"], dt=0.01, rhs=_rhs_ok)
    args.update(kw)
    return nc.Plant(**args)


def _env_with(rhs):
    plant = _plant(rhs=rhs)
    return PlantEnv(EnvModel(plant, lambda x, u, r: -(x**2).sum(-1), box_sampler([-1, -1], [1, 1])))


def _rhs_drops_a_state(x, u):
    return x[..., 1:] * 0.0 + u  # one derivative for two states: broadcast silently before


def _rhs_scalar(x, u):
    return (x * x).sum()


def _rhs_transposed(x, u):
    return nc.namespace(x).stack([x[..., 1], u[..., 0] - x[..., 0]], axis=0)


def _rhs_math_sin(x, u):
    q, v = nc.unstack(x)
    return nc.stack([v, -math.sin(q) + u[..., 0]], like=x)  # a float on numpy, not on torch


def _rhs_np_sin(x, u):
    q, v = x[..., 0], x[..., 1]
    return nc.namespace(x).stack([v, -np.sin(q) + u[..., 0]], axis=-1)


def _rhs_float(x, u):
    return np.array([float(x[..., 1]), float(u[..., 0])])


def _simulate(**kw):
    args = dict(plant=ARM, controller=PD, x0=[0.0, 0.0], steps=3)
    args.update(kw)
    return nc.simulate(args.pop("plant"), args.pop("controller"), args.pop("x0"), **args)


def _op(**kw):
    return nc.operating_point(ARM, PD, **kw)


OP = nc.operating_point(ARM, PD, reference=[0.3])

# (id, call, exception type, regular expression the message must match: names the argument)
CASES = [
    # --- plants check their functions once at construction (silently wrong before) -----------
    ("rhs one state of two", lambda: _plant(rhs=_rhs_drops_a_state), ValueError,
     r"rhs: expected the time derivative of shape \(2,\).*received shape \(1,\)"),
    ("rhs scalar", lambda: _plant(rhs=_rhs_scalar), ValueError, r"rhs: .*shape \(\).*scalar"),
    ("rhs transposed (n, B)", lambda: _plant(rhs=_rhs_transposed), ValueError,
     r"rhs: expected .*shape \(3, 2\).*received shape \(2, 3\) \(transposed"),
    ("rhs math.sin on torch", lambda: _plant(rhs=_rhs_math_sin), TypeError,
     r"rhs: expected a function of numpy arrays and torch tensors.*neuroctl\.namespace\(x\)"),
    ("rhs np.sin on torch", lambda: _plant(rhs=_rhs_np_sin), TypeError,
     r"rhs: .*torch.*neuroctl\.namespace"),
    ("rhs float() of a batch", lambda: _plant(rhs=_rhs_float), TypeError,
     r"rhs: .*runs on one numpy state but raised .*on a state of shape \(3, 2\)"),
    ("update wrong shape", lambda: _plant(rhs=None, update=lambda x, u: x[..., :1]), ValueError,
     r"update: expected the next state of shape \(2,\)"),
    ("observe wrong size", lambda: _plant(observe=lambda x: x, outputs=3), ValueError,
     r"observe: expected the observation of shape \(3,\).*received shape \(2,\)"),
    ("post_step wrong shape", lambda: _plant(post_step=lambda x: x[..., 0]), ValueError,
     r"post_step: expected the projected state of shape \(2,\)"),
    ("equilibrium wrong shape",
     lambda: _plant(equilibrium=lambda r: (np.zeros(3), np.zeros(1))), ValueError,
     r"equilibrium: expected a state of shape \(2,\).*received shapes \(3,\)"),
    ("rhs not callable", lambda: _plant(rhs=3.0), TypeError, r"rhs: expected a callable"),
    ("PlantEnv wrong-shape rhs", lambda: _env_with(_rhs_drops_a_state), ValueError,
     r"rhs: expected the time derivative of shape \(2,\)"),
    ("PlantEnv transposed rhs", lambda: _env_with(_rhs_transposed), ValueError,
     r"rhs: .*transposed"),
    ("states negative", lambda: _plant(states=-1), ValueError, r"states: expected a non-neg"),
    ("states not names", lambda: _plant(states=[1, 2]), TypeError, r"states: expected a list"),
    ("inputs repeated", lambda: _plant(inputs=["f", "f"]), ValueError, r"inputs: names must"),
    ("dt zero", lambda: _plant(dt=0.0), ValueError, r"dt: expected a positive finite"),
    ("dt nan", lambda: _plant(dt=math.nan), ValueError, r"dt: expected a positive finite"),
    ("dt string", lambda: _plant(dt="0.01"), ValueError, r"dt: expected a positive finite"),
    ("rhs and update", lambda: _plant(update=lambda x, u: x), ValueError,
     r"expected exactly one of rhs= .* and update="),
    ("integrator", lambda: _plant(integrator="rk5"), ValueError, r"integrator: expected one of"),
    ("input bounds order", lambda: _plant(input_lower=1.0, input_upper=0.0), ValueError,
     r"input_lower <= input_upper"),
    ("input_lower nan", lambda: _plant(input_lower=math.nan), ValueError,
     r"input_lower: expected numbers"),
    ("nominal_reference shape",
     lambda: _plant(observe=lambda x, r: x, outputs=2, references=1, nominal_reference=[1, 2]),
     ValueError, r"nominal_reference: expected shape \(1,\).*received shape \(2,\)"),
    ("nominal_reference nan",
     lambda: _plant(observe=lambda x, r: x, outputs=2, references=1, nominal_reference=math.nan),
     ValueError, r"nominal_reference: expected finite"),
    ("observe without r", lambda: _plant(observe=lambda x: x, outputs=2, references=1),
     ValueError, r"references were given, so observe must take \(x, r\)"),
    ("batch_shape", lambda: _plant(batch_shape=(0,)), ValueError, r"batch_shape: expected"),
    ("Plant unknown keyword", lambda: _plant(sample_time=0.1), TypeError, r"sample_time"),
    ("Plant.equilibrium r shape", lambda: ARM.equilibrium([1.0, 2.0]), ValueError,
     r"r: expected shape \(1,\) for \['target'\], received shape \(2,\)"),
    # --- simulate -----------------------------------------------------------------------------
    ("simulate x0 nan", lambda: _simulate(x0=[math.nan, 0.0]), ValueError,
     r"x0: expected finite numbers"),
    ("simulate x0 inf in a batch", lambda: _simulate(x0=[[0.0, 0.0], [0.0, math.inf]]),
     ValueError, r"x0: expected finite numbers.*index \(1, 1\)"),
    ("simulate reference nan", lambda: _simulate(reference=[math.nan]), ValueError,
     r"reference: expected finite numbers"),
    ("simulate x0 size", lambda: _simulate(x0=[0.0, 0.0, 0.0]), ValueError,
     r"x0: expected shape \(\.\.\., 2\).*received \(3,\)"),
    ("simulate x0 scalar", lambda: _simulate(x0=0.0), ValueError, r"x0: expected shape"),
    ("simulate x0 text", lambda: _simulate(x0="up"), TypeError, r"x0: expected numbers"),
    ("simulate reference shape", lambda: _simulate(x0=np.zeros((4, 2)), reference=[0.1, 0.2]),
     ValueError, r"reference: expected a shape broadcastable to \(4, 1\).*received \(2,\)"),
    ("simulate reference on a plant without", lambda: _simulate(
        plant=_plant(), controller=None, reference=[1.0]), ValueError,
     r"reference: expected None \(plant 'plant' has no references\)"),
    ("simulate steps negative", lambda: _simulate(steps=-5), ValueError,
     r"steps: expected a non-negative int"),
    ("simulate steps float", lambda: _simulate(steps=1.5), ValueError, r"steps: expected"),
    ("simulate steps bool", lambda: _simulate(steps=True), ValueError, r"steps: expected"),
    ("simulate controller not callable", lambda: _simulate(controller=3), TypeError,
     r"controller: expected an nn.Module, a callable"),
    ("simulate network inputs", lambda: _simulate(controller=nc.mlp(3, 1)), ValueError,
     r"controller: expected a network with 4 inputs.*received one with 3"),
    ("simulate network outputs", lambda: _simulate(controller=nc.mlp(4, 2)), ValueError,
     r"controller: expected a network with 1 outputs.*received one with 2"),
    ("simulate callable outputs", lambda: _simulate(controller=lambda y: y), ValueError,
     r"controller: expected outputs of shape \(\.\.\., 1\).*received shape \(4,\)"),
    ("simulate disturbance not callable", lambda: _simulate(disturbance=[0.0]), TypeError,
     r"disturbance: expected a callable"),
    ("simulate disturbance on a plant without", lambda: _simulate(
        disturbance=lambda k, x: torch.zeros(1)), ValueError,
     r"disturbance: expected .* None \(plant 'arm' has no disturbance"),
    ("simulate differentiable", lambda: _simulate(differentiable="yes"), TypeError,
     r"differentiable: expected a bool"),
    ("simulate plant", lambda: _simulate(plant="arm"), TypeError, r"plant: expected a neuroctl"),
    ("simulate unknown keyword", lambda: _simulate(dt=0.1), TypeError, r"'dt'"),
    ("Trajectory.plot max_traces", lambda: _simulate().plot(max_traces=0), ValueError,
     r"max_traces: expected a positive int"),
    ("Trajectory.state name", lambda: _simulate().state("theta_dot"), ValueError,
     r"name: expected one of \['theta', 'omega'\]"),
    # --- local_gain ---------------------------------------------------------------------------
    ("local_gain nan", lambda: nc.local_gain(NET, [math.nan, 0, 0, 0]), ValueError,
     r"x: expected finite numbers"),
    ("local_gain inf in a batch", lambda: nc.local_gain(NET, np.array([[0, 0, 0, 0], [0, np.inf,
     0, 0]])), ValueError, r"x: expected finite numbers.*index \(1, 1\)"),
    ("local_gain tensor nan", lambda: nc.local_gain(NET, torch.full((2, 4), math.nan)),
     ValueError, r"x: expected finite"),
    ("local_gain size", lambda: nc.local_gain(NET, [0.0, 0.0]), ValueError,
     r"x: expected shape \(4,\) or \(B, 4\).*received \(2,\)"),
    ("local_gain 3-D", lambda: nc.local_gain(NET, np.zeros((2, 2, 4))), ValueError,
     r"x: expected shape \(n,\) or \(B, n\)"),
    ("local_gain empty", lambda: nc.local_gain(NET, np.zeros((0, 4))), ValueError, r"x: expected"),
    ("local_gain text", lambda: nc.local_gain(NET, "zero"), TypeError, r"x: expected numbers"),
    ("local_gain norm", lambda: nc.local_gain(NET, np.zeros(4), norm=3), ValueError,
     r"norm: expected 1, 2 or inf"),
    ("local_gain kink_tol", lambda: nc.local_gain(NET, np.zeros(4), kink_tol=-1.0), ValueError,
     r"kink_tol: expected a non-negative finite"),
    ("local_gain validity_tol", lambda: nc.local_gain(NET, np.zeros(4), validity_tol=0.0),
     ValueError, r"validity_tol: expected a positive"),
    ("local_gain max_kink_neurons", lambda: nc.local_gain(NET, np.zeros(4), max_kink_neurons=0),
     ValueError, r"max_kink_neurons: expected an int >= 1"),
    ("local_gain preactivations", lambda: nc.local_gain(NET, np.zeros(4), preactivations="no"),
     TypeError, r"preactivations: expected a bool"),
    ("local_gain not a network", lambda: nc.local_gain(np.eye(4), np.zeros(4)), TypeError,
     r"local_gain: expected a torch.nn.Module"),
    ("local_gain unknown keyword", lambda: nc.local_gain(NET, np.zeros(4), radius=1), TypeError,
     r"'radius'"),
    # --- plant_jacobians, operating_point, linearize, analyze, lqr -----------------------------
    ("plant_jacobians x", lambda: nc.plant_jacobians(ARM, [0, 0, 0], [0]), ValueError,
     r"x: expected shape \(2,\) for \['theta', 'omega'\], received shape \(3,\)"),
    ("plant_jacobians u nan", lambda: nc.plant_jacobians(ARM, [0, 0], [math.nan]), ValueError,
     r"u: expected finite numbers"),
    ("plant_jacobians r", lambda: nc.plant_jacobians(ARM, [0, 0], [0], r=[1, 2]), ValueError,
     r"r: expected shape \(1,\)"),
    ("plant_jacobians continuous", lambda: nc.plant_jacobians(ARM, [0, 0], [0], continuous="y"),
     TypeError, r"continuous: expected True, False or None"),
    ("operating_point reference shape", lambda: _op(reference=[0.1, 0.2]), ValueError,
     r"reference: expected shape \(1,\) for \['target'\], received shape \(2,\)"),
    ("operating_point reference nan", lambda: _op(reference=[math.nan]), ValueError,
     r"reference: expected finite"),
    ("operating_point reference inf", lambda: _op(reference=math.inf), ValueError,
     r"reference: expected finite"),
    ("operating_point disturbance", lambda: _op(disturbance=[0.1]), ValueError,
     r"disturbance: expected shape \(0,\)"),
    ("operating_point guess shape", lambda: _op(guess=[0.0]), ValueError,
     r"guess: expected shape \(2,\)"),
    ("operating_point guess nan", lambda: _op(guess=[math.nan, 0]), ValueError,
     r"guess: expected finite"),
    ("operating_point tol", lambda: _op(tol=0.0), ValueError, r"tol: expected a positive"),
    ("operating_point tol nan", lambda: _op(tol=math.nan), ValueError, r"tol: expected"),
    ("operating_point invariant", lambda: _op(invariant=np.ones(3)), ValueError,
     r"invariant: expected directions of shape \(2, k\)"),
    ("operating_point invariant zero", lambda: _op(invariant=np.zeros(2)), ValueError,
     r"invariant: expected finite, non-zero"),
    ("operating_point controller int", lambda: nc.operating_point(ARM, 3), TypeError,
     r"controller: expected"),
    ("operating_point network size", lambda: nc.operating_point(ARM, nc.mlp(3, 1)), ValueError,
     r"controller: expected a network with 4 inputs"),
    ("operating_point plant", lambda: nc.operating_point(None, PD), TypeError,
     r"plant: expected a neuroctl.Plant"),
    ("operating_point unknown keyword", lambda: _op(target=0.2), TypeError, r"'target'"),
    ("OperatingPoint.at x", lambda: nc.OperatingPoint.at(ARM, PD, [0.0, math.nan]), ValueError,
     r"x: expected finite numbers for \['theta', 'omega'\]"),
    ("OperatingPoint.at size", lambda: nc.OperatingPoint.at(ARM, PD, [0.0]), ValueError,
     r"x: expected shape \(2,\)"),
    ("linearize op type", lambda: nc.linearize(ARM, PD, op=(0, 0)), TypeError,
     r"op: expected an OperatingPoint"),
    ("linearize op and reference", lambda: nc.linearize(ARM, PD, OP, reference=[0.5]),
     ValueError, r"reference: expected None when op= is given"),
    ("linearize op of another plant", lambda: nc.linearize(_plant(), None, OP), ValueError,
     r"op: expected an operating point of plant 'plant' \(sizes .* \(2, 0, 0, 2\)\), received "
     r"one with sizes \(2, 1, 0, 4\)"),
    ("linearize network outputs", lambda: nc.linearize(ARM, nc.mlp(4, 2)), ValueError,
     r"controller: expected a network with 1 outputs"),
    ("linearize norm", lambda: nc.linearize(ARM, PD, norm="l3"), ValueError, r"norm: expected"),
    ("linearize kink_tol nan", lambda: nc.linearize(ARM, PD, kink_tol=math.nan), ValueError,
     r"kink_tol: expected"),
    ("analyze marginal_tol", lambda: nc.analyze(ARM, PD, marginal_tol=-1.0), ValueError,
     r"marginal_tol: expected a non-negative"),
    ("analyze step_input", lambda: nc.analyze(ARM, PD, step_input="force"), ValueError,
     r"step_input: expected one of"),
    ("analyze step_output type", lambda: nc.analyze(ARM, PD, step_output=0), TypeError,
     r"step_output: expected a signal name"),
    ("analyze invariant", lambda: nc.analyze(ARM, PD, invariant=np.ones((3, 1))), ValueError,
     r"invariant: expected directions of shape \(2, k\)"),
    ("analyze controller text", lambda: nc.analyze(ARM, "pd"), TypeError, r"controller: expected"),
    ("analyze unknown keyword", lambda: nc.analyze(ARM, PD, verbose=True), TypeError,
     r"'verbose'"),
    ("lqr Q shape", lambda: nc.lqr(ARM, OP, np.eye(3), [[1.0]]), ValueError,
     r"Q, R: expected shapes \(2, 2\) and \(1, 1\)"),
    ("lqr Q nan", lambda: nc.lqr(ARM, OP, np.full((2, 2), math.nan), [[1.0]]), ValueError,
     r"Q, R: expected finite weights"),
    ("lqr op state", lambda: nc.lqr(ARM, ([0, 0, 0], [0]), np.eye(2), [[1.0]]), ValueError,
     r"op\[0\] \(the state\): expected shape \(2,\)"),
    ("lqr on", lambda: nc.lqr(ARM, OP, np.eye(2), [[1.0]], on="input"), ValueError,
     r"on: expected 'auto', 'observation' or 'state'"),
    # --- controllers, arrays, pwl, pretrained -------------------------------------------------
    ("mlp activation", lambda: nc.mlp(4, 1, activation="relus"), ValueError,
     r"activation: expected one of"),
    ("mlp n_in", lambda: nc.mlp(0, 1), ValueError, r"n_in: expected a positive int"),
    ("mlp hidden", lambda: nc.mlp(4, 1, hidden=(-1,)), ValueError, r"hidden: expected positive"),
    ("mlp unknown keyword", lambda: nc.mlp(4, 1, hiden=(3,)), TypeError, r"'hiden'"),
    ("affine_layer nan", lambda: nc.affine_layer([math.nan], [0.0]), ValueError,
     r"affine_layer: expected finite scale and offset"),
    ("affine_layer shapes", lambda: nc.affine_layer([1, 2], [0, 1, 2]), ValueError,
     r"scale, offset: expected shapes that broadcast.*\(2,\) and \(3,\)"),
    ("linear_controller nan", lambda: nc.linear_controller([[math.nan, 1.0]]), ValueError,
     r"gain: expected finite numbers"),
    ("linear_controller 3-D", lambda: nc.linear_controller(np.zeros((2, 2, 2))), ValueError,
     r"gain: expected a matrix of shape \(m, p\), received shape \(2, 2, 2\)"),
    ("linear_controller offset", lambda: nc.linear_controller([[1, 2]], offset=[1, 2, 3]),
     ValueError, r"offset: expected a scalar or shape \(1,\), received shape \(3,\)"),
    ("linear_controller offset inf", lambda: nc.linear_controller([[1, 2]], offset=math.inf),
     ValueError, r"offset: expected finite"),
    ("unstack scalar", lambda: nc.unstack(np.float64(1.0)), ValueError,
     r"x: expected an array of shape \(\.\.\., n\)"),
    ("stack ragged", lambda: nc.stack([np.zeros(3), np.zeros(2)], like=np.zeros(3)), ValueError,
     r"parts: expected components of one batch shape.*\[\(3,\), \(2,\)\]"),
    ("relu_net_from_pwl knots", lambda: nc.relu_net_from_pwl([0, 2, 1], [0, 1, 2]), ValueError,
     r"knots: expected finite, strictly increasing"),
    ("relu_net_from_pwl values", lambda: nc.relu_net_from_pwl([0, 1, 2], [0, 1]), ValueError,
     r"values: expected shape \(3,\)"),
    ("pwl_from_relu_net interval", lambda: nc.pwl_from_relu_net(NET, 1.0, 0.0), ValueError,
     r"lo, hi: expected finite numbers with lo < hi|scalar input"),
    ("pwl_from_relu_net nan", lambda: nc.pwl_from_relu_net(
        nc.relu_net_from_pwl([0, 1], [0, 1]), math.nan, 1.0), ValueError, r"lo, hi: expected"),
    ("pretrained env", lambda: nc.pretrained("neuroctl/Nope-v0"), ValueError,
     r"pretrained: expected one of"),
    ("string_stability neither", lambda: nc.string_stability(lambda g, v, vl: g), ValueError,
     r"expected gap= or speed="),
    ("string_stability gap nan", lambda: nc.string_stability(lambda g, v, vl: g, gap=math.nan),
     ValueError, r"gap: expected a positive finite"),
    # --- environments -------------------------------------------------------------------------
    ("Arm reset option misspelt", lambda: gym.make("neuroctl/Arm-v0").reset(
        options={"angel": 3}), ValueError,
     r"options: unknown key\(s\) \['angel'\]; expected some of \['angle', 'target', 'velocity'\]"),
    ("Arm2Link reset option misspelt", lambda: gym.make("neuroctl/Arm2Link-v0").reset(
        options={"targets": [0, 0]}), ValueError, r"options: unknown key\(s\) \['targets'\]"),
    ("Arm vector reset option misspelt", lambda: gym.make_vec(
        "neuroctl/Arm-v0", num_envs=2, vectorization_mode="vector_entry_point").reset(
        options={"angel": 3}), ValueError, r"options: unknown key\(s\) \['angel'\]"),
    ("box_sampler reset option misspelt", lambda: _env_with(_rhs_ok).reset(
        options={"sate": [0, 0]}), ValueError, r"expected some of \['reference', 'state'\]"),
    ("Arm reset options not a dict", lambda: gym.make("neuroctl/Arm-v0").reset(options=[1]),
     TypeError, r"options: expected a dict or None, received list"),
    ("Arm reset option nan", lambda: gym.make("neuroctl/Arm-v0").reset(
        options={"angle": math.nan}), ValueError, r"options\['angle'\]: expected finite"),
    ("Arm2Link reset option shape", lambda: gym.make("neuroctl/Arm2Link-v0").reset(
        options={"angle": [1, 2, 3]}), ValueError, r"options\['angle'\]: expected shape"),
    ("vector reset_mask ints", lambda: gym.make_vec(
        "neuroctl/Arm-v0", num_envs=2, vectorization_mode="vector_entry_point").reset(
        options={"reset_mask": [1, 0]}), ValueError, r"options\['reset_mask'\]: expected a bool"),
    ("Arm step before reset", lambda: gym.make("neuroctl/Arm-v0").unwrapped.step([0.0]),
     RuntimeError, r"step: expected a call of reset\(\) before the first step\(\)"),
    ("Arm action shape", lambda: _stepped("neuroctl/Arm-v0", [0.0, 1.0]), ValueError,
     r"action: expected shape \(1,\)"),
    ("Arm action nan", lambda: _stepped("neuroctl/Arm-v0", [math.nan]), ValueError,
     r"action: expected finite"),
    ("Arm unknown keyword", lambda: gym.make("neuroctl/Arm-v0", mas=2.0), TypeError,
     r"unknown keyword\(s\) \['mas'\]"),
    ("ArmParams dt", lambda: ArmParams(dt=-0.1), ValueError, r"dt: expected a number > 0"),
    ("Arm2LinkParams max_speed", lambda: Arm2LinkParams(max_speed=0.0), ValueError,
     r"max_speed: expected .*> 0"),
    ("Arm2LinkParams max_speed nan", lambda: Arm2LinkParams(max_speed=(1.0, math.nan)),
     ValueError, r"max_speed: expected .*> 0.*nan"),
    ("RingRoad one vehicle", lambda: gym.make("neuroctl/RingRoad-v0", n_vehicles=1), ValueError,
     r"n_vehicles: expected an int >= 2"),
    ("RingRoad one vehicle, no AV", lambda: gym.make(
        "neuroctl/RingRoad-v0", n_vehicles=1, n_av=0), ValueError,
     r"n_vehicles: expected an int >= 2"),
    ("RingRoad unknown keyword", lambda: gym.make("neuroctl/RingRoad-v0", n_vehicle=3),
     TypeError, r"unknown keyword\(s\) \['n_vehicle'\]"),
    ("PlantEnv model", lambda: PlantEnv(ARM), TypeError, r"model: expected an EnvModel"),
    ("PlantVectorEnv num_envs", lambda: PlantVectorEnv(
        EnvModel(_plant(), lambda x, u, r: x[..., 0], box_sampler([0, 0], [1, 1])), 0),
     ValueError, r"num_envs: expected a positive int"),
    ("EnvModel sampler shape", lambda: PlantEnv(
        EnvModel(_plant(), lambda x, u, r: x[..., 0], box_sampler([0], [1]))), ValueError,
     r"model.sample\(rng, 2, None\): expected shapes \(2, 2\)"),
]


def _stepped(env_id, action):
    env = gym.make(env_id)
    env.reset(seed=0)
    return env.step(action)


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg  # one line
    # a value error says what was expected (Python's own keyword errors name the keyword)
    assert "expected" in msg or "unexpected keyword" in msg or "must" in msg


def test_there_are_more_cases_than_the_issue_tried():
    assert len(CASES) >= 85
    assert len({c[0] for c in CASES}) == len(CASES)


# ------------------------------------------------------------------ what the checks must allow
def test_plant_probe_accepts_valid_plants_of_every_kind():
    # the README's plant, a discrete update with a disturbance, a numpy-or-torch branch on the
    # type, a plant bound to a batch of parameters: all construct, and step as before
    assert _plant().step(np.array([1.0, 0.0]), np.array([0.5])).shape == (2,)

    def update(x, u, w):
        return x + u + w

    p = nc.Plant(states=1, inputs=1, disturbances=1, dt=1.0, update=update)
    np.testing.assert_array_equal(p.step(np.ones(1), np.ones(1), np.ones(1)), [3.0])
    k = np.array([1.0, 2.0, 3.0])

    def scaled(x, u):
        gains = torch.as_tensor(k, dtype=x.dtype) if torch.is_tensor(x) else k
        return x * gains[:, None] + u

    bound = nc.Plant(states=1, inputs=1, dt=1.0, update=scaled, batch_shape=(3,))
    np.testing.assert_array_equal(bound.step(np.ones((3, 1)), np.zeros((3, 1)))[:, 0], k)
    with pytest.raises(ValueError, match=r"x0: expected shape \(3, 1\).*bound to the batch"):
        nc.simulate(bound, None, np.ones((2, 1)), 1)


def test_plant_probe_uses_the_rest_state_where_zero_is_outside_the_domain():
    # dynamics undefined at the zero state (a gap divides) construct when the rest state is given
    def rhs(x, u):
        return nc.stack([u[..., 0] - 1.0 / x[..., 0]], like=x)

    p = nc.Plant(states=1, inputs=1, dt=0.1, rhs=rhs,
                 equilibrium=lambda r: (np.array([2.0]), np.array([0.5])))
    np.testing.assert_allclose(p.rhs(np.array([2.0]), np.array([0.5])), [0.0], atol=0)


def test_local_gain_at_a_finite_point_is_still_exact():
    # the check refuses NaN only; a finite point gets the exact map K y + c == net(y)
    y = np.array([0.3, -0.2, 0.1, 0.9])
    g = nc.local_gain(NET, y)
    with torch.no_grad():
        direct = copy.deepcopy(NET).double()(torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(g.K @ y + g.c, direct, rtol=1e-12, atol=1e-12)
