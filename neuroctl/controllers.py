"""Controllers as ``torch.nn`` modules: the ``mlp`` builder and its activation registry.

Every controller maps an observation ``y`` of shape ``(..., p)`` to a command ``u`` of shape
``(..., m)``. Neural controllers are plain ``nn.Sequential`` networks built from standard layers;
input normalization and output scaling are ordinary ``nn.Linear`` layers (diagonal, frozen), so
that every analysis in neuroctl (local gain, bounds, MILP) sees exactly what acts on the plant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "PIECEWISE_LINEAR_ACTIVATIONS",
    "mlp",
    "affine_layer",
    "linear_controller",
    "StatefulController",
]


@runtime_checkable
class StatefulController(Protocol):
    """A controller with internal state (an integrator, a filter): ``reset()`` clears it.

    Stateful controllers are restarted at every episode; they are not a static map from the
    observation to the command, so ``analyze`` and ``verify`` refuse them.
    """

    def reset(self) -> None: ...


#: Activation constructors by name. ``relu`` family entries are piecewise linear.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "hardtanh": nn.Hardtanh,
    "relu6": nn.ReLU6,
    "identity": nn.Identity,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

#: Names of the activations for which a network is exactly piecewise affine.
PIECEWISE_LINEAR_ACTIVATIONS = frozenset({"relu", "leaky_relu", "hardtanh", "relu6", "identity"})


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"activation: expected one of {sorted(ACTIVATIONS)}, received {name!r}"
        ) from None


def affine_layer(scale, offset, *, dtype=torch.float32) -> nn.Linear:
    """A frozen diagonal ``nn.Linear`` computing ``scale * v + offset`` elementwise.

    Parameters
    ----------
    scale, offset : array_like, shape (k,)
        Per-channel scale and offset (broadcast against each other).

    Returns
    -------
    nn.Linear
        ``k -> k`` layer with ``requires_grad=False`` weights.
    """
    scale, offset = np.asarray(scale, float), np.asarray(offset, float)
    if scale.ndim > 1 or offset.ndim > 1 or scale.size * offset.size == 0:
        raise ValueError(
            "scale, offset: expected vectors of shape (k,) (or scalars), received shapes "
            f"{scale.shape} and {offset.shape}"
        )
    try:
        scale, offset = np.broadcast_arrays(scale, offset)
    except ValueError:
        raise ValueError(
            "scale, offset: expected shapes that broadcast to one (k,), received shapes "
            f"{scale.shape} and {offset.shape}"
        ) from None
    scale, offset = np.atleast_1d(scale), np.atleast_1d(offset)
    if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
        raise ValueError(
            f"affine_layer: expected finite scale and offset, received {scale}, {offset}"
        )
    k = scale.shape[0]
    layer = nn.Linear(k, k).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.as_tensor(scale, dtype=dtype)))
        layer.bias.copy_(torch.as_tensor(offset, dtype=dtype))
    layer.requires_grad_(False)
    return layer


def mlp(
    n_in: int,
    n_out: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    *,
    input_scale=None,
    input_offset=None,
    output_scale=None,
    output_offset=None,
    output_activation: str | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
) -> nn.Sequential:
    """A multilayer perceptron as a plain ``nn.Sequential``.

    Parameters
    ----------
    n_in, n_out : int
        Input (observation) and output (command) sizes.
    hidden : sequence of int
        Widths of the hidden layers.
    activation : str
        Hidden activation, a key of :data:`ACTIVATIONS`.
    input_scale, input_offset : array_like, shape (n_in,), optional
        Input normalization ``y_n = input_scale * y + input_offset``, as a first frozen layer.
    output_scale, output_offset : array_like, shape (n_out,), optional
        Output scaling ``u = output_scale * v + output_offset``, as a last frozen layer.
    output_activation : str, optional
        Activation applied before the output scaling (e.g. ``"tanh"`` or ``"hardtanh"`` to
        squash into [-1, 1]).
    dtype : torch.dtype
        Parameter dtype.
    seed : int, optional
        Seed for the weight initialisation (uses a private generator; the global RNG is untouched).

    Returns
    -------
    nn.Sequential
    """
    for what, v in (("n_in", n_in), ("n_out", n_out)):
        if not (isinstance(v, (int, np.integer)) and v > 0):
            raise ValueError(f"{what}: expected a positive int, received {v!r}")
    hidden = tuple(hidden)
    if not all(isinstance(h, (int, np.integer)) and h > 0 for h in hidden):
        raise ValueError(f"hidden: expected positive ints, received {hidden!r}")
    _activation(activation)  # validate early
    if output_activation is not None:
        _activation(output_activation)

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        if input_scale is not None or input_offset is not None:
            layers.append(
                affine_layer(
                    1.0 if input_scale is None else input_scale,
                    np.zeros(n_in) if input_offset is None else input_offset,
                    dtype=dtype,
                )
            )
            if layers[-1].in_features != n_in:
                raise ValueError(
                    f"input_scale/offset: expected size {n_in}, received {layers[-1].in_features}"
                )
        widths = (n_in, *hidden)
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b).to(dtype), _activation(activation)]
        layers.append(nn.Linear(widths[-1], n_out).to(dtype))
        if output_activation is not None:
            layers.append(_activation(output_activation))
        if output_scale is not None or output_offset is not None:
            layers.append(
                affine_layer(
                    1.0 if output_scale is None else output_scale,
                    np.zeros(n_out) if output_offset is None else output_offset,
                    dtype=dtype,
                )
            )
            if layers[-1].out_features != n_out:
                raise ValueError(
                    "output_scale/offset: expected size "
                    f"{n_out}, received {layers[-1].out_features}"
                )
        return nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def linear_controller(gain, offset=None, *, dtype=torch.float64) -> nn.Linear:
    """Linear feedback ``u = gain @ y + offset`` as a frozen ``nn.Linear``.

    Parameters
    ----------
    gain : array_like, shape (m, p)
        Feedback gain on the observation (for state feedback ``u = -K x`` pass ``-K``).
    offset : array_like, shape (m,), optional
        Feed-forward term (default zeros).
    """
    gain = np.atleast_2d(np.asarray(gain, dtype=float))
    if gain.ndim != 2 or gain.size == 0:
        raise ValueError(f"gain: expected a matrix of shape (m, p), received shape {gain.shape}")
    if not np.isfinite(gain).all():
        raise ValueError(f"gain: expected finite numbers, received {gain.tolist()}")
    m, p = gain.shape
    offset = np.zeros(m) if offset is None else np.asarray(offset, float)
    try:
        offset = np.broadcast_to(offset, (m,)).copy()
    except ValueError:
        raise ValueError(
            f"offset: expected a scalar or shape ({m},), received shape {offset.shape}"
        ) from None
    if not np.isfinite(offset).all():
        raise ValueError(f"offset: expected finite numbers, received {offset.tolist()}")
    layer = nn.Linear(p, m).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(gain, dtype=dtype))
        layer.bias.copy_(torch.as_tensor(offset, dtype=dtype))
    layer.requires_grad_(False)
    return layer
