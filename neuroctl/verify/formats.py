"""Network file formats of the field: ``.nnet`` (text, Julian 2016), NNV ``.mat`` and ONNX.

Every loader returns a float64 ``nn.Sequential`` of ``nn.Linear`` layers and elementwise
activations (``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Hardtanh``, ``nn.LeakyReLU``), so that
every analysis in :mod:`neuroctl.verify` sees exactly the loaded function and reads it through the
one layer registry. An activation on the output layer is kept. ONNX support is an optional extra
(``pip install onnx``), imported on first use; ``.mat`` files are read with ``scipy.io.loadmat``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["load_nnet", "load_mat", "load_onnx", "SUPPORTED_ONNX_OPS", "MAT_ACTIVATIONS"]

#: ONNX operators understood by :func:`load_onnx`.
SUPPORTED_ONNX_OPS = (
    "Gemm",
    "MatMul",
    "Conv",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "LeakyRelu",
    "Tanh",
    "Sigmoid",
    "Clip",
    "Flatten",
    "Reshape",
    "Identity",
    "Unsqueeze",
    "Squeeze",
    "Transpose",
    "Dropout",
    "Constant",
)

#: Activation names of NNV ``.mat`` files (MATLAB's names and NNV's) and the layer each builds.
MAT_ACTIVATIONS: dict[str, Callable[[], nn.Module] | None] = {
    "relu": nn.ReLU,
    "poslin": nn.ReLU,
    "tanh": nn.Tanh,
    "tansig": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "logsig": nn.Sigmoid,
    "satlin": lambda: nn.Hardtanh(0.0, 1.0),
    "satlins": lambda: nn.Hardtanh(-1.0, 1.0),
    "purelin": None,
    "linear": None,
    "identity": None,
}


def _linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))
    return layer


# ----------------------------------------------------------------------------------------- .nnet
def load_nnet(path, *, normalize: bool = True) -> nn.Sequential:
    """Read a ``.nnet`` file into an ``nn.Sequential`` (float64).

    Hidden layers are ReLU, the output layer is affine (the format has no activation field).
    Two variants in use are read: the layer-size line with ``nLayers + 1`` sizes, and the one
    with ``nLayers + 2`` that lists the output size again (ARCH-COMP's airplane and double
    pendulum files). Normalization lines that hold a single ``0`` each (files written without
    normalization) mean no normalization.

    Parameters
    ----------
    path : str or Path
        ``.nnet`` text file: ``//`` header lines; ``nLayers,nIn,nOut,maxSize``; layer sizes; an
        unused flag; input minima; input maxima; means (inputs and one output); ranges (inputs and
        one output); then per layer the weight rows and one bias per line.
    normalize : bool, keyword-only
        If True (default) the network takes *physical* inputs: they are clipped to
        ``[min, max]`` (exactly, as ``min + relu(x - min) - relu(x - max)``), normalized as
        ``(x - mean) / range``, and the output is de-normalized as ``y * range_out + mean_out``.
        If False the network is the raw one, on normalized inputs and outputs. A file without
        normalization gives the raw network either way.

    Returns
    -------
    nn.Sequential
        Maps inputs of shape ``(..., n_in)`` to outputs of shape ``(..., n_out)``.
    """
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("//")]

    def row(i):
        if i >= len(lines):
            raise ValueError(f"load_nnet: {path} ends after {len(lines)} data lines; expected more")
        return [float(v) for v in lines[i].rstrip(",").split(",") if v.strip() != ""]

    n_layers, n_in, n_out, _ = (int(v) for v in row(0))
    sizes = [int(v) for v in row(1)]
    if len(sizes) == n_layers + 2 and sizes[-1] == sizes[-2]:
        sizes = sizes[:-1]  # the variant that lists the output layer again
    if len(sizes) != n_layers + 1 or sizes[0] != n_in or sizes[-1] != n_out:
        raise ValueError(
            f"load_nnet: expected {n_layers + 1} layer sizes starting with {n_in} and ending with "
            f"{n_out}, received {sizes} in {path}"
        )
    mins, maxs, means, ranges = (np.array(row(i)) for i in (3, 4, 5, 6))
    pos = 7
    layers: list[nn.Module] = []
    for k in range(n_layers):
        rows, cols = sizes[k + 1], sizes[k]
        weight_rows = [row(pos + i) for i in range(rows)]
        if any(len(r) < cols for r in weight_rows):
            raise ValueError(
                f"load_nnet: layer {k} of {path}: expected {rows} weight rows of {cols} values, "
                f"received rows of lengths {[len(r) for r in weight_rows]}"
            )
        weight = np.array([r[:cols] for r in weight_rows])
        pos += rows
        bias = np.array([row(pos + i)[0] for i in range(rows)])
        pos += rows
        if k > 0:
            layers.append(nn.ReLU())
        layers.append(_linear(weight, bias))
    if pos != len(lines):
        raise ValueError(
            f"load_nnet: {path} has {len(lines) - pos} data lines after the last layer; "
            "expected none (wrong layer sizes?)"
        )
    unnormalized = all(v.size == 1 and v[0] == 0.0 for v in (mins, maxs, means, ranges))
    if normalize and not unnormalized:
        if not (mins.size == maxs.size == n_in and means.size == ranges.size == n_in + 1):
            raise ValueError(
                f"load_nnet: expected {n_in} input minima and maxima and {n_in + 1} means and "
                f"ranges, received {mins.size}, {maxs.size}, {means.size}, {ranges.size} in {path}"
            )
        eye = np.eye(n_in)
        # clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi), then (x - mean) / range
        pre = [
            _linear(np.vstack([eye, eye]), -np.concatenate([mins, maxs])),
            nn.ReLU(),
            _linear(
                np.hstack([eye, -eye]) / ranges[:n_in, None], (mins - means[:n_in]) / ranges[:n_in]
            ),
        ]
        post: list[nn.Module] = [_linear(np.eye(n_out) * ranges[n_in], np.full(n_out, means[n_in]))]
        layers = pre + layers + post
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------ .mat
def _cells(value) -> list:
    """The entries of a MATLAB cell array (any orientation) or of a char/str array, in order."""
    value = np.asarray(value)
    return [value.ravel()[i] for i in range(value.size)]


def _name(entry) -> str:
    while isinstance(entry, np.ndarray) and entry.dtype == object and entry.size == 1:
        entry = entry.ravel()[0]
    if isinstance(entry, np.ndarray):
        entry = "".join(str(v) for v in entry.ravel())
    return str(entry).strip().lower()


def load_mat(path) -> nn.Sequential:
    """Read an NNV ``.mat`` network (cell arrays ``W``, ``b`` and ``act_fcns``) (float64).

    Layer ``k`` computes ``act_k(W{k} @ v + b{k})``. ``act_fcns`` (or ``act``) holds one name per
    layer: relu/poslin, tanh/tansig, sigmoid/logsig, satlin (clip to [0, 1]), satlins (clip to
    [-1, 1]), purelin/linear/identity (none); see :data:`MAT_ACTIVATIONS`. An activation on the
    output layer is kept.

    Parameters
    ----------
    path : str or Path
        MATLAB v5 ``.mat`` file (``scipy.io.loadmat`` reads it; v7.3/HDF5 files are refused
        with an error saying so).

    Returns
    -------
    nn.Sequential
        Maps inputs of shape ``(..., n_in)`` to outputs of shape ``(..., n_out)``.
    """
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
        raise ValueError(
            f"load_mat: {path} is a MATLAB v7.3 (HDF5) file; expected a v5 file "
            "(save it with save(..., '-v7'))"
        ) from err
    keys = sorted(k for k in data if not k.startswith("__"))
    act_key = "act_fcns" if "act_fcns" in data else "act" if "act" in data else None
    if "W" not in data or "b" not in data or act_key is None:
        raise ValueError(
            f"load_mat: expected variables 'W', 'b' and 'act_fcns' (or 'act') in {path}, "
            f"received {keys}"
        )
    weights, biases = _cells(data["W"]), _cells(data["b"])
    acts = [_name(a) for a in _cells(data[act_key])]
    if not len(weights) == len(biases) == len(acts):
        raise ValueError(
            f"load_mat: expected as many biases and activations as weight matrices in {path}, "
            f"received {len(weights)} W, {len(biases)} b, {len(acts)} {act_key}"
        )
    unknown = sorted({a for a in acts if a not in MAT_ACTIVATIONS})
    if unknown:
        raise NotImplementedError(
            f"load_mat: unsupported activation(s) {unknown} in {path}; supported: "
            f"{', '.join(MAT_ACTIVATIONS)}"
        )
    layers: list[nn.Module] = []
    width = None
    for k, (w, b, act) in enumerate(zip(weights, biases, acts)):
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if b.size != w.shape[0] or (width is not None and w.shape[1] != width):
            raise ValueError(
                f"load_mat: layer {k} of {path}: expected W of shape (n_out, {width or 'n_in'}) "
                f"and b of n_out entries, received W {w.shape} and b of {b.size}"
            )
        width = w.shape[0]
        layers.append(_linear(w, b))
        make_activation = MAT_ACTIVATIONS[act]
        if make_activation is not None:
            layers.append(make_activation())
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------- ONNX
def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_onnx needs the optional dependency 'onnx': pip install onnx "
            "(or pip install 'neuroctl[onnx]')"
        ) from err
    return onnx, numpy_helper


class _Chain:
    """The running value of an ONNX chain: ``A @ v + c``, ``v`` the input of the pending layer.

    ``shape`` is the value's shape without the batch axis; the value is kept flat in C order.
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        n = int(np.prod(shape))
        self.A, self.c = np.eye(n), np.zeros(n)
        self.layers: list[nn.Module] = []

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def broadcast(self, const: np.ndarray, node) -> np.ndarray:
        """``const`` broadcast to the value's shape (with its batch axis), flattened."""
        full = (1, *self.shape)
        try:
            if np.broadcast_shapes(const.shape, full) != full:
                raise ValueError
        except ValueError:
            raise NotImplementedError(
                f"load_onnx: {node.op_type} node {node.name!r}: the constant of shape "
                f"{const.shape} does not broadcast to the value's shape {full}"
            ) from None
        return np.broadcast_to(const, full).reshape(-1)

    def linear_map(self, M: np.ndarray, bias, shape: tuple[int, ...]):
        self.A, self.c = M @ self.A, M @ self.c + bias
        self.shape = shape

    def activation(self, module: nn.Module):
        self.layers += [_linear(self.A, self.c), module]
        self.A, self.c = np.eye(self.size), np.zeros(self.size)

    def finish(self) -> nn.Sequential:
        n = self.size
        identity = self.A.shape == (n, n) and np.array_equal(self.A, np.eye(n))
        if not (self.layers and identity and not self.c.any()):
            self.layers.append(_linear(self.A, self.c))
        return nn.Sequential(*self.layers)


def _conv_matrix(weight: np.ndarray, shape, attrs, node) -> tuple[np.ndarray, tuple[int, ...]]:
    """The matrix of a Conv (without bias) on a flat input of shape ``shape`` (C, spatial...)."""
    import torch.nn.functional as F

    spatial = len(shape) - 1
    if spatial not in (1, 2) or weight.ndim != spatial + 2:
        raise NotImplementedError(
            f"load_onnx: Conv node {node.name!r}: expected a 1-D or 2-D convolution, received an "
            f"input of shape {shape} and a kernel of shape {weight.shape}"
        )
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        raise NotImplementedError(
            f"load_onnx: Conv node {node.name!r}: auto_pad={attrs['auto_pad']!r} is not supported "
            "(explicit pads are)"
        )
    pads = list(attrs.get("pads", [0] * (2 * spatial)))
    torch_pad = []
    for d in reversed(range(spatial)):  # F.pad wants (last_begin, last_end, ...)
        torch_pad += [pads[d], pads[d + spatial]]
    n = int(np.prod(shape))
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    eye = F.pad(eye, torch_pad)
    conv = F.conv1d if spatial == 1 else F.conv2d
    out = conv(
        eye,
        torch.as_tensor(weight, dtype=torch.float64),
        stride=list(attrs.get("strides", [1] * spatial)),
        dilation=list(attrs.get("dilations", [1] * spatial)),
        groups=int(attrs.get("group", 1)),
    )
    return out.reshape(n, -1).T.numpy(), tuple(out.shape[1:])


def load_onnx(path) -> nn.Sequential:
    """Read a feed-forward ONNX model into an ``nn.Sequential`` (float64).

    The graph must be a chain from its single input to its single output. Supported operators
    (:data:`SUPPORTED_ONNX_OPS`): Gemm, MatMul, Conv (any convolution is a linear map; a kernel
    that covers the whole input, or a 1x1 kernel on a 1x1 image, is the usual dense layer), Add /
    Sub / Mul / Div with a constant (e.g. a leading normalising ``Sub``), Relu, LeakyRelu, Tanh,
    Sigmoid, Clip, and the shape glue Flatten / Reshape / Identity / Unsqueeze / Squeeze /
    Transpose / Dropout (inference: identity) / Constant. The first axis is the batch axis.
    Consecutive affine operators are composed into one ``nn.Linear``; an activation on the output
    is kept. Any other operator raises ``NotImplementedError`` naming it (and every other
    unsupported operator of the graph).

    Parameters
    ----------
    path : str or Path
        ONNX file.

    Returns
    -------
    nn.Sequential
        Maps inputs of shape ``(..., n_in)`` (the ONNX input without its batch axis, flattened in
        C order) to ``(..., n_out)``.
    """
    onnx, numpy_helper = _import_onnx()
    model = onnx.load(str(path))
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"load_onnx: expected one graph input and one output, received "
            f"{[i.name for i in inputs]} and {[o.name for o in graph.output]}"
        )
    unsupported = sorted({n.op_type for n in graph.node} - set(SUPPORTED_ONNX_OPS))
    if unsupported:
        where = [f"{n.op_type} ({n.name!r})" for n in graph.node if n.op_type in unsupported]
        raise NotImplementedError(
            f"load_onnx: unsupported ONNX operator(s) {unsupported} in {path}: nodes "
            f"{', '.join(where[:10])}; supported: {', '.join(SUPPORTED_ONNX_OPS)}"
        )
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    shape: tuple[int, ...] | None
    if len(dims) < 2:
        shape = (int(dims[0]),) if dims and dims[0] > 0 else None
    else:
        shape = tuple(int(d) for d in dims[1:])
    if shape is None or any(d <= 0 for d in shape):
        raise ValueError(
            f"load_onnx: expected an input of fixed feature shape (batch, ...), received dims "
            f"{dims} for {inputs[0].name!r}"
        )
    chain = _Chain(shape)
    current = inputs[0].name

    def attributes(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def other(node):
        names = [n for n in node.input if n != current and n != ""]
        if len(names) != 1 or names[0] not in consts or list(node.input).count(current) != 1:
            raise NotImplementedError(
                f"load_onnx: {node.op_type} node {node.name!r} must combine the running value with "
                f"one constant; received inputs {list(node.input)}"
            )
        return consts[names[0]], list(node.input).index(current)

    def axes_of(node, attrs):
        if "axes" in attrs:
            return [int(a) for a in attrs["axes"]]
        if len(node.input) > 1 and node.input[1] in consts:
            return [int(a) for a in consts[node.input[1]].reshape(-1)]
        return None

    def new_shape(node, full: tuple[int, ...]) -> tuple[int, ...]:
        if not full or full[0] != 1:
            raise NotImplementedError(
                f"load_onnx: {node.op_type} node {node.name!r} moves the batch axis (result shape "
                f"{full} with the batch axis first); only reshapes of the features are supported"
            )
        return tuple(full[1:])

    for node in graph.node:
        op = node.op_type
        attrs = attributes(node)
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"]).astype(np.float64)
            continue
        if current not in node.input:
            raise NotImplementedError(
                f"load_onnx: node {node.name!r} ({op}) does not continue the chain from "
                f"{current!r}; only sequential graphs are supported"
            )
        full = (1, *chain.shape)
        if op in ("Identity", "Dropout"):
            pass
        elif op == "Flatten":
            axis = int(attrs.get("axis", 1))
            axis = axis + len(full) if axis < 0 else axis
            if axis != 1:
                raise NotImplementedError(
                    f"load_onnx: Flatten node {node.name!r} with axis={axis}; expected axis 1"
                )
            chain.shape = (chain.size,)
        elif op == "Reshape":
            target = consts.get(node.input[1])
            if target is None:
                raise NotImplementedError(
                    f"load_onnx: Reshape node {node.name!r}: expected a constant target shape, "
                    f"received the computed value {node.input[1]!r}"
                )
            target = [int(t) for t in target.reshape(-1)]
            target = [full[i] if t == 0 else t for i, t in enumerate(target)]
            if -1 in target:
                known = int(np.prod([t for t in target if t != -1]))
                target[target.index(-1)] = int(np.prod(full)) // known
            if int(np.prod(target)) != int(np.prod(full)):
                raise ValueError(
                    f"load_onnx: Reshape node {node.name!r}: target shape {target} does not hold "
                    f"the {int(np.prod(full))} values of shape {full}"
                )
            chain.shape = new_shape(node, tuple(target))
        elif op == "Unsqueeze":
            axes = axes_of(node, attrs)
            out_rank = len(full) + len(axes)
            result = list(full)
            for a in sorted(a + out_rank if a < 0 else a for a in axes):
                result.insert(a, 1)
            chain.shape = new_shape(node, tuple(result))
        elif op == "Squeeze":
            axes = axes_of(node, attrs)
            if axes is None:
                axes = [i for i, d in enumerate(full) if d == 1 and i > 0]
            axes = {a + len(full) if a < 0 else a for a in axes}
            if 0 in axes:
                raise NotImplementedError(
                    f"load_onnx: Squeeze node {node.name!r} removes the batch axis"
                )
            chain.shape = tuple(d for i, d in enumerate(full) if i not in axes)[1:]
        elif op == "Transpose":
            perm = [int(p) for p in attrs.get("perm", reversed(range(len(full))))]
            if perm[0] != 0:
                raise NotImplementedError(
                    f"load_onnx: Transpose node {node.name!r} moves the batch axis (perm {perm})"
                )
            index = np.arange(chain.size).reshape(chain.shape)
            index = index.transpose([p - 1 for p in perm[1:]])
            chain.linear_map(np.eye(chain.size)[index.reshape(-1)], 0.0, index.shape)
        elif op in ("Add", "Sub", "Mul", "Div"):
            const, pos = other(node)
            k = chain.broadcast(const, node)
            if op == "Add":
                chain.c = chain.c + k
            elif op == "Sub" and pos == 0:  # value - const
                chain.c = chain.c - k
            elif op == "Sub":  # const - value
                chain.A, chain.c = -chain.A, k - chain.c
            elif op == "Mul":
                chain.A, chain.c = k[:, None] * chain.A, k * chain.c
            elif pos == 0:  # value / const
                if np.any(k == 0):
                    raise ValueError(f"load_onnx: Div node {node.name!r} divides by zero")
                chain.A, chain.c = chain.A / k[:, None], chain.c / k
            else:
                raise NotImplementedError(
                    f"load_onnx: Div node {node.name!r} divides a constant by the running value "
                    "(not an affine map)"
                )
        elif op == "MatMul":
            const, pos = other(node)
            if pos != 0 or const.ndim != 2 or len(chain.shape) != 1:
                raise NotImplementedError(
                    f"load_onnx: MatMul node {node.name!r}: expected value (batch, n) @ constant "
                    f"(n, m); received value shape {full} at position {pos} and constant "
                    f"{const.shape}"
                )
            chain.linear_map(const.T, 0.0, (const.shape[1],))
        elif op == "Gemm":
            if current != node.input[0] or attrs.get("transA", 0):
                raise NotImplementedError(
                    f"load_onnx: Gemm node {node.name!r}: expected the running value as A "
                    "without transA"
                )
            W = consts[node.input[1]]
            W = W.T if attrs.get("transB", 0) else W  # now (in, out)
            alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
            bias = consts[node.input[2]].reshape(-1) if len(node.input) > 2 else np.zeros(1)
            bias = beta * np.broadcast_to(bias, W.shape[1])
            chain.linear_map(alpha * W.T, bias, (W.shape[1],))
        elif op == "Conv":
            if node.input[0] != current or node.input[1] not in consts:
                raise NotImplementedError(
                    f"load_onnx: Conv node {node.name!r}: expected the running value and a "
                    "constant kernel"
                )
            M, out_shape = _conv_matrix(consts[node.input[1]], chain.shape, attrs, node)
            bias = np.zeros(out_shape[0])
            if len(node.input) > 2 and node.input[2]:
                bias = consts[node.input[2]].reshape(-1)
            per_position = int(np.prod(out_shape[1:]))
            chain.linear_map(M, np.repeat(bias, per_position), out_shape)
        elif op == "Relu":
            chain.activation(nn.ReLU())
        elif op == "LeakyRelu":
            chain.activation(nn.LeakyReLU(float(attrs.get("alpha", 0.01))))
        elif op == "Tanh":
            chain.activation(nn.Tanh())
        elif op == "Sigmoid":
            chain.activation(nn.Sigmoid())
        elif op == "Clip":
            lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
            for i, name in ((1, "min"), (2, "max")):
                if len(node.input) > i and node.input[i]:
                    if node.input[i] not in consts:
                        raise NotImplementedError(
                            f"load_onnx: Clip node {node.name!r}: its {name} is not a constant"
                        )
                    value = float(consts[node.input[i]].reshape(-1)[0])
                    lo, hi = (value, hi) if i == 1 else (lo, value)
            chain.activation(nn.Hardtanh(float(lo), float(hi)))
        current = node.output[0]
    if current != graph.output[0].name:
        raise NotImplementedError(
            f"load_onnx: the chain ends at {current!r}, not at the graph output "
            f"{graph.output[0].name!r}"
        )
    return chain.finish()
