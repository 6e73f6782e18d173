"""ACAS Xu: loaders against onnxruntime and .nnet, and verdicts against the VNN-COMP consensus."""

import csv

import numpy as np
import pytest
import torch

from benchmarks.data import missing_reason, shared_data
from neuroctl.verify import check, load_nnet, load_onnx, read_vnnlib

DATA = shared_data("acasxu")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=missing_reason("acasxu"))


def _onnx(name):
    return DATA / "onnx" / f"ACASXU_run2a_{name}_batch_2000.onnx"


def _verdicts():
    with open(DATA / "acasxu_vnncomp2021_verdicts.csv") as f:
        return {(r["network"], r["property"]): r["consensus_verdict"] for r in csv.DictReader(f)}


def test_load_onnx_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    net = load_onnx(_onnx("1_1"))
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (200, 5)).astype(np.float32)
    sess = ort.InferenceSession(str(_onnx("1_1")))
    ref = np.array([sess.run(None, {"input": xi.reshape(1, 1, 1, 5)})[0][0] for xi in x])
    with torch.no_grad():
        y = net(torch.as_tensor(x, dtype=torch.float64)).numpy()
    # onnxruntime computes in float32: agreement to float32 precision of outputs of size ~0.3
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["1_1", "2_1"])
def test_nnet_and_onnx_are_the_same_network(name):
    nnet = DATA / "nnet" / f"ACASXU_run2a_{name}_batch_2000.nnet"
    raw, phys, onx = load_nnet(nnet, normalize=False), load_nnet(nnet), load_onnx(_onnx(name))
    # the ONNX weights are the .nnet decimals rounded to float32
    for a, b in zip(raw, onx):
        if isinstance(a, torch.nn.Linear):
            np.testing.assert_array_equal(
                a.weight.detach().float().numpy(), b.weight.detach().numpy()
            )
    lo = np.array([0.0, -3.141593, -3.141593, 100.0, 0.0])
    hi = np.array([60760.0, 3.141593, 3.141593, 1200.0, 1200.0])
    mean = np.array([1.9791091e04, 0.0, 0.0, 650.0, 600.0])
    rng_ = np.array([60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0])
    xp = np.random.default_rng(1).uniform(lo, hi, (1000, 5))
    xn = torch.as_tensor((xp - mean) / rng_)
    with torch.no_grad():
        y_raw, y_onnx = raw(xn).numpy(), onx(xn).numpy()
        y_phys = phys(torch.as_tensor(xp)).numpy()
    # normalisation built into load_nnet reproduces the .nnet formulas
    np.testing.assert_allclose(y_phys, y_raw * 373.94992 + 7.5188840201005975, rtol=0, atol=1e-9)
    # float32 rounding of the weights (relative 6e-8) bounds the difference
    np.testing.assert_allclose(y_onnx, y_raw, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "network, prop, timeout",
    [
        ("2_1", "prop_2", 20),
        ("1_1", "prop_1", 30),
        ("1_7", "prop_3", 20),
        # left "unknown" at 60 s by splitting on the largest gradient x width alone
        ("1_4", "prop_1", 30),
        # left "unknown" at 116 s by the bound look-ahead alone (it keeps halving the two
        # narrow dimensions); decided by the gradient search of branching="auto"
        ("4_9", "prop_3", 20),
        # left "unknown" at 116 s by one search per unsafe polytope, "bound" then "gradient";
        # decided by the polytopes searched together, the two rules interleaved
        ("1_1", "prop_5", 40),
    ],
)
def test_verdicts_match_the_vnncomp_consensus(network, prop, timeout):
    torch.set_num_threads(1)
    expected = _verdicts()[(network, prop)]
    net = load_onnx(_onnx(network))
    (query,) = read_vnnlib(DATA / "vnnlib" / f"{prop}.vnnlib")
    r = check(net, query.lower, query.upper, query.spec, timeout=timeout, seed=0)
    assert r.status == expected
    if r.status == "violated":
        x = r.counterexample
        assert np.all(x >= query.lower) and np.all(x <= query.upper)
        with torch.no_grad():
            y = net(torch.as_tensor(x)).numpy()
        assert query.spec.margin(y) <= 0
    else:
        assert r.margin > 0
