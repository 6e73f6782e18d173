"""Network file formats: ``.nnet`` (text, Julian 2016) and ONNX, loaded as plain ``nn.Sequential``.

Both loaders return float64 ``nn.Sequential`` networks made of ``nn.Linear`` and ``nn.ReLU`` only,
so that every analysis in :mod:`neuroctl.verify` sees exactly the loaded function. ONNX support is
an optional extra (``pip install onnx``), imported on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["load_nnet", "load_onnx", "SUPPORTED_ONNX_OPS"]

#: ONNX operators understood by :func:`load_onnx`.
SUPPORTED_ONNX_OPS = ("Gemm", "MatMul", "Add", "Sub", "Relu", "Flatten", "Reshape", "Constant")


def _linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))
    return layer


def load_nnet(path, *, normalize: bool = True) -> nn.Sequential:
    """Read a ``.nnet`` file into an ``nn.Sequential`` (float64).

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
        If False the network is the raw one, on normalized inputs and outputs.

    Returns
    -------
    nn.Sequential
        Maps inputs of shape ``(..., n_in)`` to outputs of shape ``(..., n_out)``.
    """
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("//")]

    def row(i):
        return [float(v) for v in lines[i].rstrip(",").split(",") if v.strip() != ""]

    n_layers, n_in, n_out, _ = (int(v) for v in row(0))
    sizes = [int(v) for v in row(1)]
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
        weight = np.array([row(pos + i)[:cols] for i in range(rows)])
        pos += rows
        bias = np.array([row(pos + i)[0] for i in range(rows)])
        pos += rows
        if k > 0:
            layers.append(nn.ReLU())
        layers.append(_linear(weight, bias))
    if normalize:
        eye = np.eye(n_in)
        # clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi), then (x - mean) / range
        pre = [
            _linear(np.vstack([eye, eye]), -np.concatenate([mins, maxs])),
            nn.ReLU(),
            _linear(
                np.hstack([eye, -eye]) / ranges[:n_in, None], (mins - means[:n_in]) / ranges[:n_in]
            ),
        ]
        post = [_linear(np.eye(n_out) * ranges[n_in], np.full(n_out, means[n_in]))]
        layers = pre + layers + post
    return nn.Sequential(*layers)


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


def load_onnx(path) -> nn.Sequential:
    """Read a feed-forward ONNX model into an ``nn.Sequential`` (float64).

    Supported operators: Gemm, MatMul, Add, Sub (with a constant), Relu, Flatten, Reshape of the
    trivial kind (to a flat feature vector), Constant. The graph must be a chain from its single
    input to its single output. Any other operator raises ``NotImplementedError`` naming it.

    Parameters
    ----------
    path : str or Path
        ONNX file.

    Returns
    -------
    nn.Sequential
        Maps inputs of shape ``(..., n_in)`` (the flattened ONNX input) to ``(..., n_out)``.
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
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    n_in = int(np.prod([d for d in dims[1:] if d > 0])) if len(dims) > 1 else int(dims[0])
    current = inputs[0].name
    width = n_in
    # affine map accumulated since the last ReLU: value = A @ features + c
    A, c = np.eye(width), np.zeros(width)
    layers: list[nn.Module] = []

    def other(node):
        names = [n for n in node.input if n != current]
        if len(names) != 1 or names[0] not in consts or current not in node.input:
            raise NotImplementedError(
                f"load_onnx: {node.op_type} node {node.name!r} must combine the running value with "
                f"one constant; received inputs {list(node.input)}"
            )
        return consts[names[0]], list(node.input).index(current)

    for node in graph.node:
        op = node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"]).astype(np.float64)
            continue
        if op not in SUPPORTED_ONNX_OPS:
            raise NotImplementedError(
                f"load_onnx: unsupported ONNX operator {op!r} (node {node.name!r}); supported: "
                f"{', '.join(SUPPORTED_ONNX_OPS)}"
            )
        if current not in node.input:
            raise NotImplementedError(
                f"load_onnx: node {node.name!r} ({op}) does not continue the chain from "
                f"{current!r}; only sequential graphs are supported"
            )
        if op in ("Flatten", "Reshape"):
            if op == "Reshape":
                shape = consts.get(node.input[1])
                if shape is None or int(np.prod([s for s in shape if s > 0])) not in (
                    1,
                    A.shape[0],
                ):
                    raise NotImplementedError(
                        f"load_onnx: only trivial Reshape (to a flat vector) is supported, "
                        f"received target shape {shape}"
                    )
        elif op in ("Add", "Sub"):
            const, pos = other(node)
            const = np.broadcast_to(const.reshape(-1), (A.shape[0],))
            if op == "Add":
                c = c + const
            elif pos == 0:  # current - const
                c = c - const
            else:  # const - current
                A, c = -A, const - c
        elif op == "MatMul":
            const, pos = other(node)
            if pos != 0:
                raise NotImplementedError("load_onnx: MatMul with the constant on the left")
            A, c = const.T @ A, const.T @ c
        elif op == "Gemm":
            if current != node.input[0]:
                raise NotImplementedError("load_onnx: Gemm with the running value as B")
            W = consts[node.input[1]]
            W = W.T if attrs.get("transB", 0) else W  # now (in, out)
            if attrs.get("transA", 0):
                raise NotImplementedError("load_onnx: Gemm with transA=1")
            alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
            bias = consts[node.input[2]].reshape(-1) if len(node.input) > 2 else 0.0
            A, c = alpha * W.T @ A, alpha * W.T @ c + beta * np.broadcast_to(bias, W.shape[1])
        elif op == "Relu":
            layers += [_linear(A, c), nn.ReLU()]
            width = A.shape[0]
            A, c = np.eye(width), np.zeros(width)
        current = node.output[0]
    if current != graph.output[0].name:
        raise NotImplementedError(
            f"load_onnx: the chain ends at {current!r}, not at the graph output "
            f"{graph.output[0].name!r}"
        )
    layers.append(_linear(A, c))
    return nn.Sequential(*layers)
