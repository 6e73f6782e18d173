"""Certified regions of attraction (neuroctl.verify.region_of_attraction) against simulation and
closed forms."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from _examples import load_example
from torch import nn

from neuroctl import Plant
from neuroctl.verify import RegionOfAttraction, region_of_attraction
from neuroctl.verify.roa import closed_loop_rollout

roa_example = load_example("region_of_attraction")


def _sample_in_set(res: RegionOfAttraction, count: int, seed: int = 0) -> np.ndarray:
    """Uniform samples of the ellipsoid {V <= level} (x* + sqrt(c) L⁻ᵀ b, b in the unit ball)."""
    rng = np.random.default_rng(seed)
    n = res.x_star.size
    d = rng.normal(size=(count, n))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    b = d * rng.uniform(size=(count, 1)) ** (1 / n)
    L = np.linalg.cholesky(res.P)
    x = res.x_star + math.sqrt(res.level) * np.linalg.solve(L.T, b.T).T
    assert np.all(res.V(x) <= res.level * (1 + 1e-9))
    x = x[res.contains(x)]  # rejection: the cut set {V <= c} ∩ box
    if len(x) < count:
        x = np.concatenate([x, _sample_in_set(res, 2 * (count - len(x)) + 100, seed + 1)])
    return x[:count]


@pytest.fixture(scope="module")
def pendulum():
    plant, ctrl, ref, box, _ = roa_example.cases(0.6)["pendulum"]
    res = region_of_attraction(plant, ctrl, box=box, reference=ref, timeout=30)
    return plant, ctrl, ref, box, res


@pytest.fixture(scope="module")
def arm_fitted():
    plant, ctrl, ref, box, _ = roa_example.cases(0.6)["arm"]
    res = region_of_attraction(plant, ctrl, box=box, reference=ref, timeout=30, lyapunov="fitted",
                               samples=5000)
    return plant, ctrl, ref, box, res


@pytest.mark.parametrize("case", ["pendulum", "arm_fitted"])
def test_states_of_the_certified_set_converge_and_never_leave_it(case, request):
    """10^4 initial states in {V <= c}: every trajectory stays in the set, V falls at every step
    and the state converges to x* (plant.step, the semantics of the certificate)."""
    plant, ctrl, ref, box, res = request.getfixturevalue(case)
    assert res.certified and res.level > res.near_level > 0
    x0 = _sample_in_set(res, 10_000)
    xs = closed_loop_rollout(plant, ctrl, x0, 1500, reference=ref)
    v = res.V(xs)
    assert np.all(v <= res.level * (1 + 1e-9))
    assert np.all(res.contains(xs[:, 1:]) | (v[:, 1:] < 1e-20))
    assert np.all((np.diff(v, axis=1) < 0) | (v[:, 1:] < 1e-20))
    assert np.all(np.linalg.norm(xs[:, -1] - res.x_star, axis=1) < 1e-6)
    assert np.all(xs >= box[0]) and np.all(xs <= box[1])


def test_decrease_condition_holds_on_1e5_samples(arm_fitted):
    plant, ctrl, ref, box, res = arm_fitted
    x0 = _sample_in_set(res, 100_000, seed=1)
    xs = closed_loop_rollout(plant, ctrl, x0, 1, reference=ref)
    v0, v1 = res.V(xs[:, 0]), res.V(xs[:, 1])
    assert np.all(v1 < v0)


def test_a_destabilising_controller_gets_no_certificate(pendulum):
    plant, ctrl, ref, box, _ = pendulum
    flipped = nn.Sequential(*[nn.Linear(l.in_features, l.out_features).double() if isinstance(
        l, nn.Linear) else l for l in ctrl])
    with torch.no_grad():
        for new, old in zip(flipped, ctrl):
            if isinstance(new, nn.Linear):
                new.weight[:] = old.weight
                new.bias[:] = old.bias
        flipped[0].weight.mul_(-1.0)  # positive feedback: z = +K y
        flipped[0].bias[:] = torch.tensor([3.0, 3.0], dtype=torch.float64)
    res = region_of_attraction(plant, flipped, box=box, timeout=10)
    assert not res.certified and res.level == 0.0 and res.volume == 0.0
    assert res.limited_by.startswith("unstable")


def _linear_plant(a, b, lo=-np.inf, hi=np.inf):
    A, B = np.asarray(a, float), np.asarray(b, float)

    def update(x, u):
        return x @ torch.as_tensor(A.T) + u @ torch.as_tensor(B.T) if torch.is_tensor(x) else (
            x @ A.T + u @ B.T)

    return Plant(states=A.shape[0], inputs=B.shape[1], dt=0.1, update=update, input_lower=lo,
                 input_upper=hi, name="linear")


def _gain(K):
    layer = nn.Linear(K.shape[1], K.shape[0]).double()
    with torch.no_grad():
        layer.weight[:] = torch.as_tensor(-K)
        layer.bias.zero_()
    return layer


def test_unsaturated_linear_loop_certifies_the_largest_ellipsoid_of_the_box():
    """A linear loop is globally attractive: the certified level is the box's (closed form
    min_i room_i² / (P⁻¹)_ii), and P solves AᵀPA − P = −I (scipy's own solver)."""
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    K = np.array([[3.0, 2.5]])
    plant = _linear_plant(A, B)
    box = np.array([[-1.0, -2.0], [1.0, 2.0]])
    res = region_of_attraction(plant, _gain(K), box=box, timeout=30, intersect_box=False)
    Acl = A - B @ K
    P = scipy.linalg.solve_discrete_lyapunov(Acl.T, np.eye(2))
    np.testing.assert_allclose(res.P, P, rtol=1e-9)
    c_box = np.min(np.array([1.0, 2.0]) ** 2 / np.diag(np.linalg.inv(P)))
    assert res.limited_by == "box"
    np.testing.assert_allclose(res.level, c_box, rtol=1e-8)
    np.testing.assert_allclose(res.volume, math.pi * c_box / math.sqrt(np.linalg.det(P)),
                               rtol=1e-8)


def test_saturated_scalar_loop_stays_inside_its_exact_region_of_attraction():
    """x+ = a x + b sat(−k x), |u| <= 1, a > 1: the region of attraction is exactly
    |x| < b / (a − 1); the certified interval lies inside it and reaches 90% of it."""
    a, b, k = 1.2, 0.5, 1.0
    plant = _linear_plant([[a]], [[b]], -1.0, 1.0)
    exact = b / (a - 1.0)
    res = region_of_attraction(plant, _gain(np.array([[k]])), box=[[-2 * exact], [2 * exact]],
                               timeout=30, min_width=1e-4)
    reach = math.sqrt(res.level / res.P[0, 0])
    assert 0.9 * exact <= reach < exact


def test_rate_gives_the_contraction_of_the_lyapunov_equation_of_a_scaled_loop(pendulum):
    """P of rate="auto" satisfies Aᵀ P A = rate² (P − I) (scipy's solver on A / rate), and its
    certificate is confirmed by simulation like the plain one."""
    plant, ctrl, ref, box, plain = pendulum
    res = region_of_attraction(plant, ctrl, box=box, reference=ref, timeout=30, rate="auto")
    rate = (1 + max(abs(np.linalg.eigvals(res.A)))) / 2
    P = scipy.linalg.solve_discrete_lyapunov(res.A.T / rate, np.eye(2))
    np.testing.assert_allclose(res.P, P, rtol=1e-9)
    x0 = _sample_in_set(res, 2000, seed=3)
    xs = closed_loop_rollout(plant, ctrl, x0, 1500, reference=ref)
    assert np.all(res.V(xs) <= res.level * (1 + 1e-9))
    assert np.all(np.linalg.norm(xs[:, -1] - res.x_star, axis=1) < 1e-6)


def test_result_prints_and_serialises(pendulum):
    *_, res = pendulum
    d = json.loads(json.dumps(res.to_dict()))
    assert d["level"] == res.level and d["certified"] is True
    assert len(d["assumptions"]) >= 3 and "forward" in " ".join(d["assumptions"])
    text = repr(res)
    assert "certified" in text and "theta" in text and f"{res.level:.6g}" in text
    fig = res.plot(n_traj=4, steps=50)
    assert len(fig.axes) == 1


def test_a_result_without_its_plant_says_why_it_cannot_plot(pendulum):
    *_, res = pendulum
    bare = dataclasses.replace(res, _plant=None)
    with pytest.raises(ValueError, match="no plant to simulate"):
        bare.plot(n_traj=2, steps=5)
    assert json.loads(json.dumps(bare.to_dict()))["level"] == res.level


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": [[0.0, 0.0]]}, "box: expected finite"),
        ({"box": [[1.0, 1.0], [2.0, 2.0]]}, "strictly inside"),
        ({"box": [[-1, -1], [1, 1]], "semantics": "continuous"}, "semantics"),
        ({"box": [[-1, -1], [1, 1]], "lyapunov": "neural"}, "lyapunov"),
        ({"box": [[-1, -1], [1, 1]], "timeout": -1}, "timeout"),
        ({"box": [[-1, -1], [1, 1]], "Q": -np.eye(2)}, "Q: expected"),
        ({"box": [[-1, -1], [1, 1]], "rate": 1.5}, "rate: expected"),
        ({"box": [[-1, -1], [1, 1]], "domain": [[0.0, 0.0]]}, "domain: expected finite"),
        ({"box": [[-1, -1], [1, 1]], "domain": [[-0.5, -2], [2, 2]]},
         "domain: expected a box containing"),
        ({"box": [[-1, -1], [1, 1]], "entry_steps": -1}, "entry_steps: expected an int >= 0"),
        ({"box": [[-1, -1], [1, 1]], "entry_generators": 0}, "entry_generators: expected"),
        ({"box": [[-1, -1], [1, 1]], "entry_min_width": 2.0}, "entry_min_width: expected"),
        ({"box": [[-1, -1], [1, 1]], "entry_timeout": float("nan")}, "entry_timeout: expected"),
    ],
)
def test_bad_arguments_are_named(pendulum, kwargs, message):
    plant, ctrl, *_ = pendulum
    with pytest.raises(ValueError, match=message):
        region_of_attraction(plant, ctrl, **kwargs)
    with pytest.raises(TypeError):
        region_of_attraction(plant, ctrl, box=[[-1, -1], [1, 1]], tolerance=1)


def test_cut_set_of_a_linear_loop_matches_brute_force():
    """{V <= c} ∩ box certified for a linear loop reaching past the box's faces: on a dense grid of
    the cut set, F maps every state into the box and V decreases (brute force), and the level
    is at least the ellipsoid-in-box level of intersect_box=False."""
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    plant = _linear_plant(A, B)
    box = np.array([[-1.0, -2.0], [1.0, 2.0]])
    res = region_of_attraction(plant, _gain(np.array([[3.0, 2.5]])), box=box, timeout=30,
                               intersect_box=True)
    assert res.intersect_box and res.level >= res.box_level
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 301), np.linspace(-2, 2, 301)), -1).reshape(-1, 2)
    g = g[res.contains(g)]
    nxt = g @ (A - B @ np.array([[3.0, 2.5]])).T
    assert np.all((nxt >= box[0]) & (nxt <= box[1]))
    assert np.all((res.V(nxt) < res.V(g)) | (res.V(g) == 0))


@pytest.fixture(scope="module", params=[("pendulum", {}), ("arm", {"rate": "auto"})],
                ids=["pendulum", "arm"])
def learned(request):
    """The learned V of the pendulum (plain Lyapunov equation) and of the arm (bench_roa's
    options), with bench_roa's budget: each round's proof gets a share of the wall-clock
    timeout, which a loaded machine can exhaust (the call ends when its rounds do, ~15 s)."""
    name, options = request.param
    plant, ctrl, ref, box, _ = roa_example.cases(1.0)[name]
    res = region_of_attraction(plant, ctrl, box=box, reference=ref, timeout=240,
                               lyapunov="learned", **options)
    return plant, ctrl, ref, box, res


def _sample_in_cut_set(res: RegionOfAttraction, box, count: int, seed: int) -> np.ndarray:
    """Uniform samples of the certified set by rejection from the box."""
    rng = np.random.default_rng(seed)
    kept = []
    while sum(len(k) for k in kept) < count:
        x = rng.uniform(box[0], box[1], size=(20 * count, box.shape[1]))
        kept.append(x[res.contains(x)])
    return np.concatenate(kept)[:count]


def test_learned_certificate_is_larger_and_its_states_converge_inside_it(learned):
    """The learned V's set (pendulum, arm): larger than the quadratic one of the same call;
    10^4 of its states stay in it and converge (plant.step); V falls on 10^5 of its states
    outside the quadratic certificate's set (inside that set the quadratic V proves the rest)."""
    plant, ctrl, ref, box, res = learned
    assert res.certified and res.lyapunov == "learned"
    assert res.compared["learned"]["volume"] > res.compared["quadratic"]["volume"] > 0
    json.dumps(res.to_dict())
    x0 = _sample_in_cut_set(res, box, 10_000, seed=0)
    xs = closed_loop_rollout(plant, ctrl, x0, 1500, reference=ref)
    assert np.all(res.contains(xs.reshape(-1, 2)) |
                  (np.linalg.norm(xs.reshape(-1, 2) - res.x_star, axis=1) < 1e-9))
    assert np.all(np.linalg.norm(xs[:, -1] - res.x_star, axis=1) < 1e-6)
    x0 = _sample_in_cut_set(res, box, 100_000, seed=1)
    e = x0 - res.x_star
    outside = np.einsum("bi,ij,bj->b", e, res.near_P, e) > res.near_level
    x1 = closed_loop_rollout(plant, ctrl, x0[outside], 1, reference=ref)[:, 1]
    assert outside.sum() > 10_000 and np.all(res.V(x1) < res.V(x0[outside]))


def test_sample_is_uniform_in_the_certified_ellipsoid(pendulum):
    """For V uniform in a 2-D ellipsoid {V <= c}, V / c is uniform on [0, 1] (area ∝ level):
    mean 1/2, and a quarter of the samples below c / 4."""
    *_, res = pendulum
    x = res.sample(20_000, seed=2)
    ratio = res.V(x) / res.level
    assert x.shape == (20_000, 2) and np.all(ratio <= 1 + 1e-9)
    assert abs(ratio.mean() - 0.5) < 0.01  # standard error 0.002
    assert abs((ratio < 0.25).mean() - 0.25) < 0.01


def test_a_domain_larger_than_the_box_certifies_past_it_inside_the_exact_region():
    """x+ = a x + b sat(−k x) with region of attraction |x| < b / (a − 1) = 2.5: in the box
    [−1, 1] alone the certified interval stops at the box; with the proof domain [−5, 5] it
    reaches past the box to 90% of the exact region and not beyond, and its volume inside
    the box is the box's."""
    a, b, k = 1.2, 0.5, 1.0
    plant = _linear_plant([[a]], [[b]], -1.0, 1.0)
    exact = b / (a - 1.0)
    kw = dict(box=[[-1.0], [1.0]], timeout=30, min_width=1e-4)
    in_box = region_of_attraction(plant, _gain(np.array([[k]])), **kw)
    res = region_of_attraction(plant, _gain(np.array([[k]])), domain=[[-5.0], [5.0]], **kw)
    assert math.sqrt(in_box.level / in_box.P[0, 0]) <= 1.0
    reach = math.sqrt(res.level / res.P[0, 0])
    assert 0.9 * exact <= reach < exact
    assert res.wider_domain and not in_box.wider_domain
    assert res.volume == 2.0 and in_box.volume < 2.0
    assert "proof domain" in res.assumptions[0]
    x0 = res.sample(10_000)
    assert np.abs(x0).max() > 2.0
    xs = closed_loop_rollout(plant, _gain(np.array([[k]])), x0, 400)
    assert np.all(np.abs(xs[:, -1]) < 1e-6)


@pytest.fixture(scope="module")
def pendulum_wide():
    """The fitted cut set of the pendulum in the example's wider proof domain."""
    plant, ctrl, ref, box, _ = roa_example.cases(1.0)["pendulum"]
    domain = roa_example.proof_domain("pendulum", box, "wide")
    res = region_of_attraction(plant, ctrl, box=box, domain=domain, reference=ref, timeout=60,
                               lyapunov="fitted", rate="auto", intersect_box=True)
    return plant, ctrl, ref, box, res


def test_a_wider_domain_certificate_reaches_past_the_box_and_its_states_converge(pendulum_wide):
    """The pendulum's fitted cut set in the wider domain: part of it lies outside the box;
    10^4 of its states stay in it and converge; V falls on 10^5 of them (plant.step)."""
    plant, ctrl, ref, box, res = pendulum_wide
    assert res.certified and res.wider_domain
    x0 = res.sample(10_000)
    assert np.mean(np.any((x0 < box[0]) | (x0 > box[1]), axis=1)) > 0.05
    xs = closed_loop_rollout(plant, ctrl, x0, 1500, reference=ref)
    assert np.all(res.contains(xs) | (np.linalg.norm(xs - res.x_star, axis=-1) < 1e-9))
    assert np.all(np.linalg.norm(xs[:, -1] - res.x_star, axis=1) < 1e-6)
    x0 = res.sample(100_000, seed=1)
    x1 = closed_loop_rollout(plant, ctrl, x0, 1, reference=ref)[:, 1]
    assert np.all(res.V(x1) < res.V(x0))


@pytest.fixture(scope="module")
def pendulum_entry():
    """The pendulum's fitted cut set in the wider domain, extended by entry boxes."""
    plant, ctrl, ref, box, _ = roa_example.cases(1.0)["pendulum"]
    domain = roa_example.proof_domain("pendulum", box, "wide")
    res = region_of_attraction(plant, ctrl, box=box, domain=domain, reference=ref, timeout=60,
                               lyapunov="fitted", rate="auto", intersect_box=True,
                               entry_steps=200, entry_grid=16, entry_timeout=20)
    return plant, ctrl, ref, box, domain, res


def test_states_of_entry_boxes_reach_the_invariant_set_at_their_step_and_converge(
        pendulum_entry):
    """10^4 states drawn uniformly from the entry boxes: each lies in the invariant set after
    its box's number of steps, its trajectory in the proof domain until then, and it ends at
    x* (plant.step, the semantics of the proof)."""
    plant, ctrl, ref, box, domain, res = pendulum_entry
    e = res.entry
    assert e is not None and len(e) > 0
    assert np.all(e.lower >= box[0]) and np.all(e.upper <= box[1])
    rng = np.random.default_rng(0)
    vol = np.prod(e.upper - e.lower, axis=1)
    k = rng.choice(len(e), 10_000, p=vol / vol.sum())
    x0 = rng.uniform(e.lower[k], e.upper[k])
    steps = res.entry_step(x0)
    assert np.all((steps >= 0) & (steps <= e.steps[k]))
    xs = closed_loop_rollout(plant, ctrl, x0, max(1500, int(e.steps.max()) + 1), reference=ref)
    at_entry = xs[np.arange(len(x0)), e.steps[k]]
    assert np.all(res.in_invariant_set(at_entry))
    t = np.arange(xs.shape[1])[None, :, None]
    before = t <= e.steps[k][:, None, None]
    assert np.all(((xs >= domain[0]) & (xs <= domain[1])) | ~before)
    assert np.all(np.linalg.norm(xs[:, -1] - res.x_star, axis=1) < 1e-6)


def test_entry_boxes_certify_more_of_the_simulated_basin_and_nothing_outside_it(pendulum_entry):
    """On a 41 x 41 grid of the box simulated to convergence: no certified state fails to
    converge, and the certified region covers more of the converging states than the
    invariant set alone (which holds none of those swinging through the bottom)."""
    plant, ctrl, ref, box, domain, res = pendulum_entry
    G, conv, _ = roa_example.simulated_basin(plant, ctrl, box, res.x_star, grid=41, steps=1500,
                                             reference=ref, domain=domain)
    region, core = res.contains(G), res.in_invariant_set(G)
    assert not np.any(region & ~conv)
    assert np.all(region[core])
    print(f"invariant set {core[conv].mean():.1%}, with entry boxes {region[conv].mean():.1%}")
    assert region[conv].mean() > core[conv].mean() + 0.1
    assert res.volume > np.prod(box[1] - box[0]) * core.mean()
    json.dumps(res.to_dict())


def test_a_box_said_to_lie_in_proved_boxes_has_every_sampled_state_in_one():
    """The chaining lookup of the entry boxes (:class:`_ProvedCells`) against brute force: a
    3 x 3 grid of the unit square, the quarters of its cells proved at random (the others not
    proved), one cell inside the set; every query box said covered has each of 400 sampled
    states in a proved box or in the inside cell, the steps it reports are at least those of the
    boxes holding the samples (a state in S stays in S, so more steps are still true) and one of
    the proved boxes', and a query box of which a sampled state is in no proved box is never
    said covered."""
    from neuroctl.verify.roa_entry import _ProvedCells

    rng = np.random.default_rng(3)
    grid, lo_box, width = 3, np.zeros(2), np.ones(2)
    inside = np.zeros(grid * grid, dtype=bool)
    inside[4] = True  # the centre cell [1/3, 2/3]^2
    cells = _ProvedCells(lo_box, width, grid, inside)
    proved, open_ = [], []
    for c in range(grid * grid):
        if c == 4:
            continue
        i, j = divmod(c, grid)
        for a in range(2):  # the cell's four quarters, each proved with probability 0.8
            for b in range(2):
                quarter = ([(i + a / 2) / 3, (j + b / 2) / 3],
                           [(i + (a + 1) / 2) / 3, (j + (b + 1) / 2) / 3])
                (proved if rng.random() < 0.8 else open_).append(quarter)
    lower, upper = np.array([p[0] for p in proved]), np.array([p[1] for p in proved])
    steps = rng.integers(1, 50, size=len(lower))
    cells.update(lower, upper, steps, np.array([p[0] for p in open_]),
                 np.array([p[1] for p in open_]))
    centre = rng.uniform(-0.1, 1.1, size=(3000, 2))
    half = rng.uniform(0.0, 0.3, size=(3000, 2))
    xl, xu = centre - half, centre + half
    got = cells.steps_to_set(xl, xu)
    said = 0
    for q in range(len(xl)):
        pts = rng.uniform(xl[q], xu[q], size=(400, 2))
        in_box = np.all((pts[:, None] >= lower) & (pts[:, None] <= upper), axis=2)  # (400, k)
        in_inside = np.all((pts >= 1 / 3) & (pts <= 2 / 3), axis=1)
        covered = in_box.any(axis=1) | in_inside
        if got[q] >= 0:
            said += 1
            assert covered.all()
            assert got[q] >= max([0] + [int(steps[k]) for k in np.nonzero(in_box.any(axis=0))[0]])
            assert got[q] in set(steps.tolist()) | {0}
        if not covered.all():
            assert got[q] == -1
    assert said > 300  # the lookup is not trivially "no"
