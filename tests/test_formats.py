"""Network file loaders (.nnet, NNV .mat, ONNX) against onnxruntime, closed forms and each other.

Synthetic files (written here with onnx.helper / scipy.io.savemat / text) pin each operator and
activation against onnxruntime or numpy's closed form; the ARCH-COMP files (read from
``../shared/data/archcomp``, skipped when absent) check the variants the field uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.io import savemat
from torch import nn

from benchmarks.data import missing_reason, shared_data
from neuroctl.verify import load_mat, load_nnet, load_onnx
from tests._ulp import assert_ulp_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ARCH = shared_data("archcomp")
needs_archcomp = pytest.mark.skipif(not ARCH.is_dir(), reason=missing_reason("archcomp"))
U32 = 2.0**-24  # unit roundoff of float32


# ------------------------------------------------------------------------------------ helpers
def _float32_error_bound(net: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """A worst-case bound on |float32 evaluation - exact evaluation| of ``net`` at ``x``.

    Standard rounding-error analysis of a dot product of length n: |fl(w.h) - w.h| <=
    gamma_n (|w|.|h| + |b|), gamma_n = n u / (1 - n u); errors already in h pass through |W|
    (an activation is 1-Lipschitz) and the activation adds a few ulps of its output (its
    float32 implementation; 8 u with an absolute floor of 8 u for results near 0).
    """
    h = torch.as_tensor(x, dtype=torch.float64)
    err = torch.zeros_like(h)
    for layer in net:
        if isinstance(layer, nn.Linear):
            W, b = layer.weight.detach(), layer.bias.detach()
            n = W.shape[1] + 1
            gamma = n * U32 / (1 - n * U32)
            err = err @ W.abs().T + gamma * (h.abs() @ W.abs().T + b.abs())
            h = layer(h)
        else:
            h = layer(h)
            err = err + 8 * U32 * (h.abs() + 1)
    return err.detach().numpy()


def _session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run_ort(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for a batch of flat inputs, one call per row (fixed batch 1 graphs)."""
    sess = _session(path)
    init = {t.name for t in onnx.load(str(path)).graph.initializer}
    (inp,) = [i for i in sess.get_inputs() if i.name not in init]
    shape = [1] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
    rows = [sess.run(None, {inp.name: xi.reshape(shape)})[0].reshape(-1) for xi in x]
    return np.array(rows)


def _assert_matches_onnxruntime(path, n_in: int, *, scale=2.0, n=64, seed=0):
    x = np.random.default_rng(seed).uniform(-scale, scale, (n, n_in)).astype(np.float32)
    net = load_onnx(path)
    with torch.no_grad():
        y = net(torch.as_tensor(x, dtype=torch.float64)).numpy()
    ref = _run_ort(path, x)
    bound = _float32_error_bound(net, x.astype(np.float64))
    assert y.shape == ref.shape
    excess = np.abs(y - ref) - bound
    assert np.all(excess <= 0), f"{path}: beyond the float32 error bound by {excess.max():.3g}"
    return net


def _model(nodes, inits, in_shape, out_shape, path, *, opset=13):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _rand(rng, *shape):
    return rng.normal(0, 0.7, shape).astype(np.float32)


# ------------------------------------------------------------------ ONNX, synthetic operators
def test_onnx_normalising_sub_div_then_dense_conv_sigmoid(tmp_path):
    # NNV-style graph: input (N, 1, 1, 4), a leading Sub of the mean, Div by the range, a Conv
    # whose 1x4 kernel covers the whole input (a dense layer), then 1x1 convolutions
    rng = np.random.default_rng(1)
    inits = {
        "mean": np.array([0.5, -1.0, 2.0, 0.0]).reshape(1, 1, 1, 4),
        "range": np.array([2.0, 4.0, 0.5, 1.0]).reshape(1, 1, 1, 4),
        "W1": _rand(rng, 6, 1, 1, 4),
        "B1": _rand(rng, 6),
        "W2": _rand(rng, 3, 6, 1, 1),
        "B2": _rand(rng, 3),
    }
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Div", ["s", "range"], ["d"]),
        helper.make_node("Conv", ["d", "W1", "B1"], ["c1"], kernel_shape=[1, 4]),
        helper.make_node("Sigmoid", ["c1"], ["a1"]),
        helper.make_node("Conv", ["a1", "W2", "B2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Flatten", ["c2"], ["y"], axis=1),
    ]
    path = _model(nodes, inits, [1, 1, 1, 4], [1, 3], tmp_path / "conv.onnx")
    net = _assert_matches_onnxruntime(path, 4)
    assert [type(m) for m in net] == [nn.Linear, nn.Sigmoid, nn.Linear]


def test_onnx_general_convolution_with_padding_and_stride(tmp_path):
    # not a dense layer: a 3x3 kernel, stride 2, padding 1, two groups, on a 4x5x5 input
    rng = np.random.default_rng(2)
    inits = {"W": _rand(rng, 6, 2, 3, 3), "B": _rand(rng, 6)}
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "W", "B"],
            ["c"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 0, 1, 2],
            group=2,
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["y"]),
    ]
    path = _model(nodes, inits, [1, 4, 5, 5], [1, 6 * 3 * 4], tmp_path / "conv2.onnx")
    _assert_matches_onnxruntime(path, 100)


def test_onnx_tanh_mul_add_gemm_and_output_relu_kept(tmp_path):
    rng = np.random.default_rng(3)
    inits = {
        "k": np.array([1.5, -2.0, 0.25]),
        "W1": _rand(rng, 8, 3),
        "B1": _rand(rng, 8),
        "W2": _rand(rng, 8, 2),
        "B2": _rand(rng, 2),
    }
    nodes = [
        helper.make_node("Mul", ["k", "x"], ["m"]),  # constant first
        helper.make_node("Gemm", ["m", "W1", "B1"], ["g1"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Tanh", ["g1"], ["t1"]),
        helper.make_node("MatMul", ["t1", "W2"], ["g2"]),
        helper.make_node("Add", ["B2", "g2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["y"]),
    ]
    path = _model(nodes, inits, [1, 3], [1, 2], tmp_path / "tanh.onnx")
    net = _assert_matches_onnxruntime(path, 3)
    assert isinstance(net[-1], nn.ReLU), "the ReLU on the output layer is part of the network"
    with torch.no_grad():
        y = net(torch.as_tensor(np.random.default_rng(0).normal(0, 3, (500, 3))))
    assert float(y.min()) == 0.0  # clipped outputs really occur (the test exercises the ReLU)


def test_onnx_shape_glue_and_clip_leaky_relu(tmp_path):
    rng = np.random.default_rng(4)
    inits = {
        "shape": np.array([1, 2, 3]),
        "axes": np.array([1]),
        "W": _rand(rng, 6, 4),
        "B": _rand(rng, 4),
        "lo": np.array(-0.3),
        "hi": np.array(0.4),
    }
    inits_int = {k: inits.pop(k) for k in ("shape", "axes")}
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),  # (1, 6) -> (1, 2, 3)
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # (1, 3, 2)
        helper.make_node("Identity", ["t"], ["i"]),
        helper.make_node("Unsqueeze", ["i", "axes"], ["u"]),  # (1, 1, 3, 2)
        helper.make_node("Squeeze", ["u", "axes"], ["s"]),  # (1, 3, 2)
        helper.make_node("Flatten", ["s"], ["f"]),  # (1, 6)
        helper.make_node("MatMul", ["f", "W"], ["m"]),
        helper.make_node("Add", ["m", "B"], ["a"]),
        helper.make_node("LeakyRelu", ["a"], ["l"], alpha=0.1),
        helper.make_node("Clip", ["l", "lo", "hi"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
        + [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in inits_int.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "glue.onnx"
    onnx.save(model, str(path))
    net = _assert_matches_onnxruntime(path, 6)
    assert isinstance(net[-1], nn.Hardtanh)


def test_onnx_unsupported_operators_are_all_named(tmp_path):
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Exp", ["r"], ["y"]),
    ]
    path = _model(nodes, {}, [1, 3], [1, 3], tmp_path / "bad.onnx")
    with pytest.raises(NotImplementedError, match=r"\['Exp', 'Softmax'\].*supported: Gemm"):
        load_onnx(path)


def test_onnx_non_affine_division_is_refused(tmp_path):
    nodes = [helper.make_node("Div", ["k", "x"], ["y"])]
    path = _model(nodes, {"k": np.ones(3)}, [1, 3], [1, 3], tmp_path / "div.onnx")
    with pytest.raises(NotImplementedError, match="divides a constant by the running value"):
        load_onnx(path)


# ------------------------------------------------------------------------ .mat, synthetic
@pytest.mark.parametrize(
    "name, fn",
    [
        ("relu", lambda v: np.maximum(v, 0)),
        ("poslin", lambda v: np.maximum(v, 0)),
        ("tanh", np.tanh),
        ("tansig", np.tanh),
        ("sigmoid", lambda v: 1 / (1 + np.exp(-v))),
        ("logsig", lambda v: 1 / (1 + np.exp(-v))),
        ("satlin", lambda v: np.clip(v, 0, 1)),
        ("satlins", lambda v: np.clip(v, -1, 1)),
        ("purelin", lambda v: v),
        ("linear", lambda v: v),
    ],
)
def test_load_mat_activations_match_their_closed_form(tmp_path, name, fn):
    rng = np.random.default_rng(5)
    W = [rng.normal(size=(5, 3)), rng.normal(size=(2, 5))]
    b = [rng.normal(size=(5, 1)), rng.normal(size=(2, 1))]
    cells = np.empty((1, 2), dtype=object)
    wcell, bcell = cells.copy(), cells.copy()
    wcell[0, 0], wcell[0, 1], bcell[0, 0], bcell[0, 1] = W[0], W[1], b[0], b[1]
    # NNV writes act_fcns as a padded char matrix; the output layer keeps its activation too
    acts = np.array([name.ljust(8), name.ljust(8)])
    path = tmp_path / "net.mat"
    savemat(path, {"W": wcell, "b": bcell, "act_fcns": acts})
    x = rng.normal(0, 2, (100, 3))
    h = fn(x @ W[0].T + b[0].T)
    expected = fn(h @ W[1].T + b[1].T)
    with torch.no_grad():
        y = load_mat(path)(torch.as_tensor(x)).numpy()
    # a few ulps of the result are not the right scale where a dot product cancels: the
    # standard forward error bound of a float64 dot product of length k is
    # k eps sum |w_i x_i| (Higham, Accuracy and Stability, 3.1), here through two layers whose
    # activations are 1-Lipschitz, plus a few ulps per activation evaluation
    eps = np.finfo(np.float64).eps
    err1 = 4 * eps * (np.abs(x) @ np.abs(W[0]).T + np.abs(b[0]).T) + 4 * eps * np.abs(h)
    err2 = np.abs(err1) @ np.abs(W[1]).T + 6 * eps * (np.abs(h) @ np.abs(W[1]).T + np.abs(b[1]).T)
    tol = err2 + 4 * eps * np.abs(expected)
    assert np.all(np.abs(y - expected) <= tol), f"{name}: {np.max(np.abs(y - expected) / tol)}"


def test_load_mat_reads_column_cells_and_the_act_key(tmp_path):
    rng = np.random.default_rng(6)
    W = [rng.normal(size=(4, 2)), rng.normal(size=(1, 4))]
    b = [rng.normal(size=(4, 1)), rng.normal(size=(1, 1))]
    wcell, bcell, acell = (np.empty((2, 1), dtype=object) for _ in range(3))
    for k in range(2):
        wcell[k, 0], bcell[k, 0] = W[k], b[k]
    acell[0, 0], acell[1, 0] = np.array(["relu"]), np.array(["tanh"])
    path = tmp_path / "nav.mat"
    savemat(path, {"W": wcell, "b": bcell, "act": acell.T})
    x = rng.normal(size=(50, 2))
    expected = np.tanh(np.maximum(x @ W[0].T + b[0].T, 0) @ W[1].T + b[1].T)
    with torch.no_grad():
        y = load_mat(path)(torch.as_tensor(x)).numpy()
    assert_ulp_close(y, expected, maxulp=64)


def test_load_mat_names_each_unknown_activation_and_bad_shapes(tmp_path):
    wcell, bcell = np.empty((1, 2), dtype=object), np.empty((1, 2), dtype=object)
    wcell[0, 0], wcell[0, 1] = np.ones((3, 2)), np.ones((1, 3))
    bcell[0, 0], bcell[0, 1] = np.ones((3, 1)), np.ones((1, 1))
    path = tmp_path / "bad.mat"
    savemat(path, {"W": wcell, "b": bcell, "act_fcns": np.array(["softmax", "elliotsig"])})
    with pytest.raises(NotImplementedError, match=r"\['elliotsig', 'softmax'\]"):
        load_mat(path)
    bcell[0, 1] = np.ones((2, 1))
    savemat(path, {"W": wcell, "b": bcell, "act_fcns": np.array(["relu", "linear"])})
    with pytest.raises(ValueError, match=r"layer 1 .* received W \(1, 3\) and b of 2"):
        load_mat(path)
    savemat(path, {"weights": wcell})
    with pytest.raises(ValueError, match=r"expected variables 'W', 'b'.*received \['weights'\]"):
        load_mat(path)


# ------------------------------------------------------------------------ .nnet, synthetic
def _write_nnet(path, W, b, sizes_line, norm_lines):
    lines = ["// synthetic", f"{len(W)},{W[0].shape[1]},{W[-1].shape[0]},5", sizes_line, "0"]
    lines += norm_lines
    for w, bb in zip(W, b):
        lines += [", ".join(f"{v:.17g}" for v in r) + "," for r in w]
        lines += [f"{v:.17g}," for v in bb]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nnet_variant_that_repeats_the_output_size_and_has_no_normalization(tmp_path):
    rng = np.random.default_rng(7)
    W = [rng.normal(size=(5, 3)), rng.normal(size=(4, 5)), rng.normal(size=(2, 4))]
    b = [rng.normal(size=5), rng.normal(size=4), rng.normal(size=2)]
    path = _write_nnet(tmp_path / "a.nnet", W, b, "3, 5, 4, 2, 2", ["0", "0", "0", "0"])
    x = rng.normal(size=(40, 3))
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    expected = relu(relu(x @ W[0].T + b[0]) @ W[1].T + b[1]) @ W[2].T + b[2]
    for normalize in (True, False):  # no normalization in the file: the raw network either way
        with torch.no_grad():
            y = load_nnet(path, normalize=normalize)(torch.as_tensor(x)).numpy()
        assert_ulp_close(y, expected, maxulp=64)


def test_nnet_normalization_clips_and_scales_physical_inputs(tmp_path):
    rng = np.random.default_rng(8)
    W, b = (
        [rng.normal(size=(3, 2)), rng.normal(size=(1, 3))],
        [rng.normal(size=3), rng.normal(size=1)],
    )
    norm = ["-1,0,", "1,10,", "0.5,5,2,", "2,10,3,"]
    path = _write_nnet(tmp_path / "n.nnet", W, b, "2,3,1,", norm)
    x = rng.uniform([-3, -5], [3, 15], (60, 2))
    xc = np.clip(x, [-1, 0], [1, 10])
    xn = (xc - [0.5, 5]) / [2, 10]
    expected = (np.maximum(xn @ W[0].T + b[0], 0) @ W[1].T + b[1]) * 3 + 2
    with torch.no_grad():
        y = load_nnet(path)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


def test_nnet_wrong_sizes_are_reported(tmp_path):
    rng = np.random.default_rng(9)
    W, b = (
        [rng.normal(size=(3, 2)), rng.normal(size=(1, 3))],
        [rng.normal(size=3), rng.normal(size=1)],
    )
    path = _write_nnet(tmp_path / "w.nnet", W, b, "2,4,1,", ["0", "0", "0", "0"])
    with pytest.raises(
        ValueError, match=r"layer 0 .*w\.nnet: expected 4 weight rows of 2 values, received .*1\]"
    ):
        load_nnet(path)
    path = _write_nnet(tmp_path / "s.nnet", W, b, "2,3,1,1,1", ["0", "0", "0", "0"])
    with pytest.raises(ValueError, match=r"expected 3 layer sizes .* received \[2, 3, 1, 1, 1\]"):
        load_nnet(path)


# ------------------------------------------------------------------- the ARCH-COMP files
def _archcomp_files(suffix):
    if not ARCH.is_dir():
        return [pytest.param(None, marks=needs_archcomp)]
    return [pytest.param(p, id=str(p.relative_to(ARCH))) for p in sorted(ARCH.rglob(f"*{suffix}"))]


@needs_archcomp
@pytest.mark.parametrize("path", _archcomp_files(".onnx"))
def test_every_archcomp_onnx_matches_onnxruntime(path):
    net = load_onnx(path)
    _assert_matches_onnxruntime(path, net[0].in_features, n=32)


#: controller files of the set that no loader reads, and why
NOT_LOADED = {
    "Tora_Heterogeneous/nn_tora_relu_tanh.txt": "a text format of one tool (its .mat is loaded)",
    "Tora_Heterogeneous/nn_tora_sigmoid.txt": "a text format of one tool (its .mat is loaded)",
}


@needs_archcomp
def test_every_archcomp_controller_file_loads():
    loaders = {".onnx": load_onnx, ".nnet": load_nnet, ".mat": load_mat}
    failed = {}
    files = sorted(p for p in ARCH.rglob("*") if p.suffix in (*loaders, ".txt"))
    files = [p for p in files if p.suffix != ".txt" or p.stem.startswith("nn_")]
    for p in files:
        rel = str(p.relative_to(ARCH))
        if p.suffix not in loaders:
            failed[rel] = "no loader"
            continue
        net = loaders[p.suffix](p)
        with torch.no_grad():
            y = net(torch.zeros(1, net[0].in_features, dtype=torch.float64))
        assert torch.isfinite(y).all(), rel
    assert sorted(failed) == sorted(NOT_LOADED)
    assert len(files) >= 40  # 9 VCAS networks in three formats, 13 others


def _linears(net):
    return [m for m in net if isinstance(m, nn.Linear)]


@needs_archcomp
@pytest.mark.parametrize(
    "stem",
    [
        "Airplane/controller_airplane",
        "Double_Pendulum/controller_double_pendulum_less_robust",
        "Double_Pendulum/controller_double_pendulum_more_robust",
    ],
)
def test_nnet_mat_and_onnx_of_one_controller_agree(stem):
    nnet, mat, onx = (
        f(ARCH / f"{stem}.{s}")
        for f, s in ((load_nnet, "nnet"), (load_mat, "mat"), (load_onnx, "onnx"))
    )
    assert [type(m) for m in nnet] == [type(m) for m in mat] == [type(m) for m in onx]
    for a, m, o in zip(_linears(nnet), _linears(mat), _linears(onx)):
        # .nnet and .mat hold the same 5-decimal weights; the ONNX has float32 weights whose
        # rounding to 5 decimals gives them
        assert_ulp_close(a.weight, m.weight, maxulp=1)
        assert_ulp_close(a.bias, m.bias, maxulp=1)
        np.testing.assert_array_equal(np.round(o.weight.detach().numpy(), 5), m.weight.detach())
        np.testing.assert_array_equal(np.round(o.bias.detach().numpy(), 5), m.bias.detach())


@needs_archcomp
@pytest.mark.parametrize("k", range(1, 10))
def test_vcas_mat_is_the_raw_nnet_and_the_onnx_its_float32_copy(k):
    name = f"VertCAS_noResp_pra0{k}_v9_20HU_200"
    raw = load_nnet(ARCH / "VCAS" / "nnet_networks" / f"{name}.nnet", normalize=False)
    mat = load_mat(ARCH / "VCAS" / "nnv_networks" / f"{name}.mat")
    onx = load_onnx(ARCH / "VCAS" / "onnx_networks" / f"{name}.onnx")
    for a, m, o in zip(_linears(raw), _linears(mat), _linears(onx), strict=True):
        assert_ulp_close(a.weight, m.weight, maxulp=1)
        np.testing.assert_array_equal(
            m.weight.detach().float().numpy(), o.weight.detach().float().numpy()
        )


@needs_archcomp
@pytest.mark.parametrize(
    "stem",
    [
        "Attitude-Control/model",
        "QUAD/model",
        "Docking/model",
        "NAV/networks/nn-nav-point",
        "NAV/networks/nn-nav-set",
    ],
)
def test_mat_and_onnx_compute_the_same_function(stem):
    mat, onx = load_mat(ARCH / f"{stem}.mat"), load_onnx(ARCH / f"{stem}.onnx")
    n = mat[0].in_features
    x = torch.as_tensor(np.random.default_rng(10).uniform(-3, 3, (200, n)))
    with torch.no_grad():
        # the ONNX weights are the .mat's (float32 values); the docking ONNX composes the .mat's
        # input scaling and output selection into its dense layers: a few float64 roundings
        assert_ulp_close(onx(x), mat(x), maxulp=4096, what=stem)
