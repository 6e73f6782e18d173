"""Batched closed-loop rollouts of a :class:`~neuroctl.plant.Plant` with a controller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._array import Array
from ._json import json_dict
from .plant import Plant

__all__ = ["simulate", "Trajectory", "controller_dtype", "check_controller", "linear_io"]


def controller_dtype(controller: Any, default: torch.dtype = torch.float64) -> torch.dtype:
    """The floating dtype of a controller's parameters (``default`` if it has none)."""
    if isinstance(controller, torch.nn.Module):
        for p in controller.parameters():
            if p.is_floating_point():
                return p.dtype
        for b in controller.buffers():
            if b.is_floating_point():
                return b.dtype
    return default


def linear_io(net: torch.nn.Module) -> tuple[int | None, int | None]:
    """Input size of the first ``nn.Linear`` of ``net`` and output size of its last one.

    ``(None, None)`` for a network without ``nn.Linear`` layers (or with layers before the
    first one that may change the size, such as convolutions).
    """
    linears = [mod for mod in net.modules() if isinstance(mod, torch.nn.Linear)]
    if not linears:
        return None, None
    first = next(mod for mod in net.modules() if isinstance(mod, (torch.nn.Linear, _RESHAPING)))
    return (linears[0].in_features if first is linears[0] else None), linears[-1].out_features


_RESHAPING = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Bilinear, torch.nn.Embedding)


def check_controller(plant: Plant, controller) -> None:
    """Refuse a controller that is not callable, or a network whose sizes do not fit ``plant``.

    Raises
    ------
    TypeError
        For something that is neither None, an ``nn.Module`` nor a callable.
    ValueError
        For a network whose first ``nn.Linear`` does not take the plant's ``p`` observations or
        whose last one does not give its ``m`` inputs (sizes named, expected and received).
    """
    if controller is None:
        return
    if not callable(controller):
        raise TypeError(
            "controller: expected an nn.Module, a callable on observations or None, received "
            f"{type(controller).__name__}"
        )
    if not isinstance(controller, torch.nn.Module):
        return
    n_in, n_out = linear_io(controller)
    if n_in is not None and n_in != plant.n_outputs:
        raise ValueError(
            f"controller: expected a network with {plant.n_outputs} inputs (the observations "
            f"{list(plant.output_names)} of plant {plant.name!r}), received one with {n_in}"
        )
    if n_out is not None and n_out != plant.n_inputs:
        raise ValueError(
            f"controller: expected a network with {plant.n_inputs} outputs (the inputs "
            f"{list(plant.input_names)} of plant {plant.name!r}), received one with {n_out}"
        )


def _as_float64(value, what: str, names: str, size: int) -> torch.Tensor:
    """``value`` as a finite float64 tensor, or an error naming ``what``."""
    try:
        t = (
            value.to(torch.float64)
            if torch.is_tensor(value)
            else torch.as_tensor(np.asarray(value, dtype=float), dtype=torch.float64)
        )
    except (TypeError, ValueError):
        raise TypeError(
            f"{what}: expected numbers of shape (..., {size}) for {names}, received {value!r}"
        ) from None
    if not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise ValueError(
            f"{what}: expected finite numbers, received a non-finite entry at index {tuple(bad)}"
            f" (of shape {tuple(t.shape)})"
        )
    return t


def _check_disturbance(w, plant: Plant, batch: tuple) -> None:
    want = (*batch, plant.n_disturbances)
    shape = getattr(w, "shape", None)
    shape = None if shape is None else tuple(shape)
    if plant.n_disturbances == 0:
        if w is not None:
            raise ValueError(
                f"disturbance: expected disturbance(k, x) to return None (plant {plant.name!r} "
                f"has no disturbance inputs), received {type(w).__name__}"
            )
        return
    if shape is None or shape[-1:] != want[-1:] or len(shape) > len(want):
        raise ValueError(
            f"disturbance: expected disturbance(k, x) to return shape {want} for "
            f"{list(plant.disturbance_names)}, received "
            f"{shape if shape is not None else type(w).__name__}"
        )


@dataclass
class Trajectory:
    """A batch of closed-loop trajectories.

    Attributes
    ----------
    times : ndarray, shape (T+1,)
        Sample times in seconds.
    states : ndarray, shape (..., T+1, n)
        A torch tensor (attached to the autograd graph) when simulated with
        ``differentiable=True``; the same for ``inputs`` and ``observations``.
    inputs : ndarray, shape (..., T, m)
        Commands after actuator saturation (what acted on the plant).
    observations : ndarray, shape (..., T+1, p)
    state_names, input_names, output_names : tuple of str
    plant : Plant
    """

    times: np.ndarray
    states: Array  # numpy, or torch with differentiable=True
    inputs: Array
    observations: Array
    state_names: tuple[str, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    plant: Plant | None = field(default=None, repr=False)

    def __iter__(self):
        # unpack as ``t, x, u = simulate(...)``
        return iter((self.times, self.states, self.inputs))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch shape of the trajectories."""
        return self.states.shape[:-2]

    def state(self, name: str) -> Array:
        """One state signal by name, shape ``(..., T+1)`` (numpy or torch, as :attr:`states`)."""
        if name not in self.state_names:
            raise ValueError(f"name: expected one of {list(self.state_names)}, received {name!r}")
        return self.states[..., self.state_names.index(name)]

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {
            "times": self.times.tolist(),
            "states": self.states.tolist(),
            "inputs": self.inputs.tolist(),
            "observations": self.observations.tolist(),
            "state_names": list(self.state_names),
            "input_names": list(self.input_names),
            "output_names": list(self.output_names),
        }

    def plot(self, *, ax=None, max_traces: int = 10):
        """Plot states and inputs against time (first ``max_traces`` batch members).

        Returns
        -------
        matplotlib.figure.Figure
        """
        if isinstance(max_traces, bool) or not (
            isinstance(max_traces, (int, np.integer)) and max_traces >= 1
        ):
            raise ValueError(f"max_traces: expected a positive int, received {max_traces!r}")
        import matplotlib.pyplot as plt

        n, m = self.states.shape[-1], self.inputs.shape[-1]
        if ax is None:
            fig, axes = plt.subplots(
                n + m, 1, sharex=True, figsize=(7, 1.6 * (n + m) + 0.6), squeeze=False
            )
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        xs = self.states.reshape(-1, *self.states.shape[-2:])[:max_traces]
        us = self.inputs.reshape(-1, *self.inputs.shape[-2:])[:max_traces]
        for i in range(min(n, len(axes))):
            axes[i].plot(self.times, xs[..., i].T, lw=1)
            axes[i].set_ylabel(self.state_names[i])
        for j in range(min(m, len(axes) - n)):
            axes[n + j].step(self.times[:-1], us[..., j].T, where="post", lw=1)
            axes[n + j].set_ylabel(self.input_names[j])
        axes[-1].set_xlabel("time [s]")
        fig.tight_layout()
        return fig


def simulate(
    plant: Plant,
    controller: Callable | torch.nn.Module | None,
    x0,
    steps: int,
    *,
    reference=None,
    disturbance: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    differentiable: bool = False,
) -> Trajectory:
    """Run ``plant`` in closed loop with ``controller`` for a batch of initial states.

    Parameters
    ----------
    plant : Plant
    controller : nn.Module or callable or None
        Maps observations ``(..., p)`` (a torch tensor in the controller's dtype) to commands
        ``(..., m)``. ``None`` applies zero input.
    x0 : array_like or tensor, shape (..., n)
        Initial states; any leading batch shape. A floating-point torch tensor sets the device
        and dtype of the whole rollout (e.g. a CUDA float32 batch steps on the GPU in float32,
        with no copy to the host inside the step loop); anything else runs in float64 on the
        CPU. The controller's parameters must be on that device.
    steps : int
        Number of steps ``T``.
    reference : array_like, shape (..., n_ref), optional
        Reference for the observation (default: the plant's nominal reference).
    disturbance : callable, optional
        ``disturbance(k, x) -> w`` with ``w`` of shape ``(..., n_w)``, called at every step.
    differentiable : bool
        Keep the autograd graph (for training through the rollout); then the result holds
        tensors instead of numpy arrays.

    Returns
    -------
    Trajectory
    """
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a neuroctl.Plant, received {type(plant).__name__}")
    check_controller(plant, controller)
    if isinstance(steps, bool) or not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps: expected a non-negative int, received {steps!r}")
    if disturbance is not None and not callable(disturbance):
        raise TypeError(
            "disturbance: expected a callable disturbance(k, x) -> w or None, received "
            f"{type(disturbance).__name__}"
        )
    if not isinstance(differentiable, bool):
        raise TypeError(f"differentiable: expected a bool, received {differentiable!r}")
    x = _as_float64(x0, "x0", f"states {list(plant.state_names)}", plant.n_states)
    if torch.is_tensor(x0) and x0.is_floating_point():
        x = x.to(x0.dtype)
    dev, dtype = x.device, x.dtype
    if x.ndim == 0 or x.shape[-1] != plant.n_states:
        raise ValueError(
            f"x0: expected shape (..., {plant.n_states}) for states {list(plant.state_names)}, "
            f"received {tuple(x.shape)}"
        )
    if plant.batch_shape and x.shape[:-1] != plant.batch_shape:
        raise ValueError(
            f"x0: expected shape {(*plant.batch_shape, plant.n_states)} (plant {plant.name!r} "
            f"is bound to the batch shape {plant.batch_shape}), received {tuple(x.shape)}"
        )
    r = None
    if plant.n_references:
        what = f"references {list(plant.reference_names)}"
        r = (
            torch.as_tensor(plant.nominal_reference, dtype=torch.float64)
            if reference is None
            else _as_float64(reference, "reference", what, plant.n_references)
        ).to(device=dev, dtype=dtype)
        want = (*x.shape[:-1], plant.n_references)
        try:
            r = torch.broadcast_to(r, want)
        except RuntimeError:
            raise ValueError(
                f"reference: expected a shape broadcastable to {want} (x0's batch shape, then "
                f"{plant.n_references} {what}), received {tuple(r.shape)}"
            ) from None
    elif reference is not None and np.size(reference) != 0:  # an empty reference is none
        raise ValueError(
            f"reference: expected None (plant {plant.name!r} has no references), received "
            f"{reference!r}"
        )
    ctrl_dtype = controller_dtype(controller)
    states, inputs, observations = [x], [], []
    grad = torch.enable_grad() if differentiable else torch.no_grad()
    with grad:
        y = plant.observe(x, r)
        observations.append(y)
        for k in range(steps):
            if controller is None:
                u = torch.zeros((*x.shape[:-1], plant.n_inputs), dtype=dtype, device=dev)
            else:
                u = controller(y.to(ctrl_dtype))
                if not torch.is_tensor(u):
                    u = torch.as_tensor(np.asarray(u, dtype=float))
                u = u.to(device=dev, dtype=dtype)
                if u.ndim == 0 or u.shape[-1] != plant.n_inputs:
                    raise ValueError(
                        f"controller: expected outputs of shape (..., {plant.n_inputs}) for "
                        f"inputs {list(plant.input_names)}, received shape {tuple(u.shape)}"
                    )
            w = None
            if disturbance is not None:
                w = disturbance(k, x)
                if k == 0:
                    _check_disturbance(w, plant, x.shape[:-1])
            x = plant.step(x, u, w)
            y = plant.observe(x, r)
            states.append(x)
            inputs.append(plant.saturate(u))
            observations.append(y)
    stack = (
        (lambda seq, d: torch.stack(seq, d))
        if differentiable
        else (lambda seq, d: torch.stack(seq, d).detach().cpu().numpy())
    )
    batch_nd = x.ndim - 1
    empty_u = torch.zeros((*x.shape[:-1], 0, plant.n_inputs), dtype=dtype, device=dev)
    return Trajectory(
        times=np.arange(steps + 1) * plant.dt,
        states=stack(states, batch_nd),
        inputs=stack(inputs, batch_nd)
        if inputs
        else (empty_u if differentiable else empty_u.cpu().numpy()),
        observations=stack(observations, batch_nd),
        state_names=plant.state_names,
        input_names=plant.input_names,
        output_names=plant.output_names,
        plant=plant,
    )
