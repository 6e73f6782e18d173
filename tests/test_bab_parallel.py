"""check() on workers: the verdicts, counterexamples and bounds of the sequential run.

Verdicts against the VNN-COMP consensus (ACAS Xu) and against brute force with a Lipschitz bound
(random small networks); a worker killed mid-task never turns a verdict into a wrong one.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.data import missing_reason, shared_data
from neuroctl.verify import Spec, bab_bounding, check, load_onnx, read_vnnlib

DATA = shared_data("acasxu")
needs_acasxu = pytest.mark.skipif(not DATA.is_dir(), reason=missing_reason("acasxu"))
#: (network, property, consensus verdict): one found by splitting, two proofs
ACAS = [("1_2", "prop_2", "violated"), ("1_1", "prop_1", "holds"), ("1_1", "prop_4", "holds")]


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 16 boxes, and a record of the tasks of each map, so that every batch is spread."""
    monkeypatch.setattr(bab_bounding, "PIECE_BOXES", 16)
    sizes = []
    real = bab_bounding.map_tasks

    def recording(fn, args, **kw):
        args = list(args)
        sizes.append(len(args))
        return real(fn, args, **kw)

    monkeypatch.setattr(bab_bounding, "map_tasks", recording)
    return sizes


def _acas(network, prop):
    torch.set_num_threads(1)
    net = load_onnx(DATA / "onnx" / f"ACASXU_run2a_{network}_batch_2000.onnx")
    (q,) = read_vnnlib(DATA / "vnnlib" / f"{prop}.vnnlib")
    return net, q.lower, q.upper, q.spec


# samples=0: the branch and bound decides; batch_size=64: rounds of several pieces
OPTS = {"samples": 0, "batch_size": 64, "timeout": 120}


def _same_answer(a, b):
    assert a.status == b.status
    assert a.lower_bound == b.lower_bound and a.margin == b.margin
    if a.counterexample is None:
        assert b.counterexample is None
    else:
        np.testing.assert_array_equal(a.counterexample, b.counterexample)
    for k in ("boxes", "splits", "branch_estimates", "max_depth"):
        assert a.stats[k] == b.stats[k], k
    assert a.stats["lost_pieces"] == b.stats["lost_pieces"] == 0


def _assert_verdict(r, net, lo, hi, spec, expected):
    assert r.status == expected
    if expected == "violated":  # the counterexample replayed by the torch network
        x = r.counterexample
        assert np.all(x >= lo) and np.all(x <= hi)
        with torch.no_grad():
            y = net.double()(torch.as_tensor(x)).numpy()
        assert spec.margin(y) <= 0
    else:
        assert r.margin > 0


@needs_acasxu
@pytest.mark.parametrize("network, prop, expected", ACAS)
def test_acasxu_on_a_process_pool_gives_the_sequential_answer(
    network, prop, expected, small_pieces
):
    problem = _acas(network, prop)
    seq = check(*problem, **OPTS)
    _assert_verdict(seq, *problem, expected)
    with ProcessPoolExecutor(max_workers=2) as ex:
        _same_answer(check(*problem, **OPTS, executor=ex), seq)
    assert max(small_pieces) > 1
    _same_answer(check(*problem, **OPTS, workers=2), seq)


def _random_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 1)
    )


def _brute_force(net, lo, hi, n=401):
    """Grid maximum and a sound upper bound of the true maximum (grid + Lipschitz constant)."""
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1)
    with torch.no_grad():
        y = net.double()(torch.as_tensor(g.reshape(-1, 2))).numpy()[:, 0]
    lip = np.prod([np.linalg.norm(m.weight.detach().double().numpy(), 2) for m in net[::2]])
    half_diag = np.hypot(*((hi - lo) / (n - 1))) / 2
    return y.max(), y.max() + lip * half_diag


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_networks_on_workers_match_brute_force_and_the_sequential_run(seed, small_pieces):
    net = _random_net(seed)
    lo, hi = np.array([-1.0, -2.0]), np.array([1.5, 1.0])
    grid_max, true_max_bound = _brute_force(net, lo, hi)
    with ProcessPoolExecutor(max_workers=2) as ex:
        for thr, expected in ((grid_max - 0.01, "violated"), (true_max_bound + 0.01, "holds")):
            spec = Spec.output_range(1, upper=[thr])
            seq = check(net, lo, hi, spec, **OPTS)
            _assert_verdict(seq, net, lo, hi, spec, expected)
            _same_answer(check(net, lo, hi, spec, **OPTS, executor=ex), seq)


def _dies_once(marker, real):
    def piece(*args):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return real(*args)

    return piece


def _always_dies(*args):
    os._exit(1)


@needs_acasxu
@pytest.mark.parametrize("piece", ["_bound_piece", "_bound_max"])
def test_a_worker_killed_once_is_retried_and_the_answer_unchanged(piece, tmp_path, monkeypatch):
    problem = _acas("1_2", "prop_2")
    seq = check(*problem, **OPTS)
    marker = str(tmp_path / "died")
    monkeypatch.setattr(bab_bounding, piece, _dies_once(marker, getattr(bab_bounding, piece)))
    res = check(*problem, **OPTS, workers=2)
    assert os.path.exists(marker)
    _same_answer(res, seq)


@needs_acasxu
def test_bounding_lost_on_every_attempt_is_unknown_never_holds(monkeypatch):
    problem = _acas("1_1", "prop_1")
    assert check(*problem, **OPTS).status == "holds"
    monkeypatch.setattr(bab_bounding, "_bound_piece", _always_dies)
    r = check(*problem, **OPTS, workers=2)
    assert r.status == "unknown" and r.lower_bound == -np.inf and r.stats["lost_pieces"] == 1


@needs_acasxu
def test_split_estimates_lost_on_every_attempt_change_the_split_not_the_verdict(monkeypatch):
    problem = _acas("1_2", "prop_2")
    monkeypatch.setattr(bab_bounding, "_bound_max", _always_dies)
    r = check(*problem, **OPTS, workers=2)
    assert r.stats["lost_pieces"] > 0
    _assert_verdict(r, *problem, "violated")


def test_bad_executor_or_workers_name_the_argument():
    net = _random_net(0)
    spec = Spec.output_range(1, upper=[100.0])
    lo, hi = np.zeros(2), np.ones(2)
    with pytest.raises(ValueError, match="workers: expected a positive int, received 0"):
        check(net, lo, hi, spec, workers=0)
    with pytest.raises(TypeError, match="executor: expected a concurrent.futures.Executor"):
        check(net, lo, hi, spec, executor="ray")


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "neuroctl[dist]")')
    from neuroctl.parallel import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayExecutor()
    finally:
        ray.shutdown()


@needs_acasxu
def test_acasxu_on_ray_gives_the_sequential_answer(ray_executor, small_pieces):
    for network, prop, expected in ACAS[:2]:
        problem = _acas(network, prop)
        seq = check(*problem, **OPTS)
        _assert_verdict(seq, *problem, expected)
        _same_answer(check(*problem, **OPTS, executor=ray_executor), seq)


def test_random_network_on_ray_matches_brute_force_and_the_sequential_run(ray_executor):
    net = _random_net(3)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    grid_max, true_max_bound = _brute_force(net, lo, hi)
    for thr, expected in ((grid_max - 0.01, "violated"), (true_max_bound + 0.01, "holds")):
        spec = Spec.output_range(1, upper=[thr])
        seq = check(net, lo, hi, spec, **OPTS)
        _assert_verdict(seq, net, lo, hi, spec, expected)
        _same_answer(check(net, lo, hi, spec, **OPTS, executor=ray_executor), seq)
