"""Training diagnostics: dead ReLU units and optimizer revival spikes.

Dead units
    :func:`dead_units` runs a network on a batch of states (rollout states or a dataset) and
    reports, per activation layer, the fraction of units that are never active (a ReLU unit
    whose pre-activation is ``<= 0`` on every state).

Revival spikes
    A ReLU unit that is dead for ``N`` optimizer steps receives gradients that are exactly 0, so
    RMSprop's second moment decays as ``alpha**N``. The first non-zero gradient ``g`` after the
    unit revives then gets a step of about ``lr / sqrt(1 - alpha)`` whatever ``|g|`` is (10 x lr
    at ``alpha = 0.99``; about 3 x lr with Adam's defaults, whose first moment decays too).
    :class:`RevivalMonitor` is an optimizer hook (plain PyTorch) that detects these steps, warns
    with :class:`RevivalSpikeWarning`, and optionally mitigates them: ``"reset"`` re-initialises
    the moments of revived entries as at a fresh start (the step becomes ``lr``, as any first
    step), ``"clip"`` scales the update of each unit by ``1 / max(1, rms(g / sqrt(v_hat)))``,
    StableAdamW's update clipping (arXiv 2304.13013) applied per unit. :class:`RevivalCallback`
    attaches the monitor to a Stable-Baselines3 model and logs dead-unit fractions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._json import json_dict
from ..layers import PiecewiseLinear, describe, kind_of

__all__ = [
    "DeadUnits",
    "dead_units",
    "RevivalEvent",
    "RevivalMonitor",
    "RevivalSpikeWarning",
    "RevivalCallback",
]


# --------------------------------------------------------------------------- dead units
@dataclass
class DeadUnits:
    """Dead-unit report of a network over a batch of states.

    Attributes
    ----------
    layers : list of str
        Names of the activation layers (module names in the network).
    fractions : list of float
        Fraction of the layer's units never active over the batch, per layer.
    dead : list of ndarray of int
        Indices of the dead units, per layer.
    widths : list of int
        Number of units per layer.
    n_states : int
        Number of states in the batch.
    """

    layers: list[str]
    fractions: list[float]
    dead: list[np.ndarray]
    widths: list[int]
    n_states: int

    @property
    def total_fraction(self) -> float:
        """Fraction of all hidden units that are dead."""
        total = sum(self.widths)
        return float(sum(len(d) for d in self.dead) / total) if total else 0.0

    @json_dict
    def to_dict(self) -> dict:
        return {
            "layers": list(self.layers),
            "fractions": [float(f) for f in self.fractions],
            "dead": [d.tolist() for d in self.dead],
            "widths": list(self.widths),
            "n_states": self.n_states,
            "total_fraction": self.total_fraction,
        }

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{name}: {len(d)}/{w} ({f:.0%})"
            for name, d, w, f in zip(self.layers, self.dead, self.widths, self.fractions)
        )
        return f"DeadUnits(over {self.n_states} states; {rows})"

    def plot(self, *, ax=None):
        """Bar chart of the dead fraction per layer. Returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3))
        else:
            fig = ax.figure
        ax.bar(range(len(self.layers)), self.fractions)
        ax.set_xticks(range(len(self.layers)), self.layers)
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction of units dead")
        ax.set_title(f"dead units over {self.n_states} states")
        fig.tight_layout()
        return fig


def _active_fn(module: nn.Module):
    """``is_active(z)`` of a piecewise-linear activation of the registry: ``z`` strictly inside
    its pass-through piece (slope 1, intercept 0: ``z > 0`` for ReLU, LeakyReLU and PReLU, the
    linear zone of Hardtanh and ReLU6); None for the other layers."""
    if kind_of(module) != "piecewise_linear":
        return None
    _, desc = describe(module, analysis="dead_units", kinds=("piecewise_linear",))
    assert isinstance(desc, PiecewiseLinear)
    through = [
        p
        for p, (s, c) in enumerate(zip(desc.slopes, desc.intercepts, strict=True))
        if bool(np.all(np.asarray(s) == 1.0)) and float(c) == 0.0
    ]
    if not through:
        return None
    edges = [-math.inf, *map(float, desc.breaks), math.inf]
    lo, hi = edges[through[-1]], edges[through[-1] + 1]
    return lambda z: (z > lo) & (z < hi)


def _inspected_layers(net: nn.Module, hidden_only: bool) -> list[tuple[str, nn.Module, Callable]]:
    """The ``(name, module, is_active)`` of every layer :func:`dead_units` inspects."""
    modules = list(net.named_modules())
    last_linear = max(
        (
            i
            for i, (_, m) in enumerate(modules)
            if isinstance(m, nn.Linear) and m.weight.requires_grad
        ),
        default=len(modules),
    )
    layers = []
    for i, (name, mod) in enumerate(modules):
        fn = _active_fn(mod)
        if fn is not None and not (hidden_only and i > last_linear):
            layers.append((name, mod, fn))
    return layers


def has_dead_unit_layers(net: nn.Module, *, hidden_only: bool = False) -> bool:
    """True if ``net`` has a layer :func:`dead_units` inspects (ReLU, ReLU6, LeakyReLU, PReLU,
    Hardtanh).

    Smooth networks (tanh, sigmoid, ...) have none: their units cannot die in this sense.
    ``hidden_only`` as in :func:`dead_units`.
    """
    return bool(_inspected_layers(net, hidden_only))


def dead_units(net: nn.Module, states, *, hidden_only: bool = False) -> DeadUnits:
    """Fraction of piecewise-linear units never active over a batch of states, per layer.

    A ReLU unit is active on a state when its pre-activation is ``> 0`` (its gradient is then
    non-zero); a unit is *dead* over the batch when it is active on none of the states. Layers
    counted: the piecewise-linear activations of :mod:`neuroctl.layers` with a pass-through
    piece: ``nn.ReLU``, ``nn.ReLU6``, ``nn.LeakyReLU`` and ``nn.PReLU`` (active side) and
    ``nn.Hardtanh`` (linear zone).

    Parameters
    ----------
    net : nn.Module
        The network; it is called as ``net(states)``.
    states : array_like or Tensor, shape (B, p)
        Inputs of the network (e.g. observations visited in rollouts).
    hidden_only : bool
        Skip activation layers after the last trainable ``nn.Linear`` (an output clip such as the
        ``Hardtanh`` of an exported policy, between frozen scaling layers); a dead output clip
        means an always saturated action.

    Returns
    -------
    DeadUnits
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net: expected a torch.nn.Module, received {type(net).__name__}")
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    x = torch.as_tensor(np.asarray(states) if not torch.is_tensor(states) else states)
    x = x.to(dtype)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f"states: expected a non-empty batch of shape (B, p), received {tuple(x.shape)}"
        )
    records: dict[str, torch.Tensor] = {}
    hooks = []
    for name, mod, fn in _inspected_layers(net, hidden_only):

        def hook(m, inputs, output, name=name, fn=fn):
            z = inputs[0].reshape(-1, inputs[0].shape[-1])
            active = fn(z).any(dim=0)
            records[name] = records[name] | active if name in records else active

        hooks.append(mod.register_forward_hook(hook))
    if not hooks:
        raise ValueError(
            "dead_units: the network has no ReLU/ReLU6/LeakyReLU/Hardtanh layer to inspect"
        )
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    layers, fractions, dead, widths = [], [], [], []
    for name, active in records.items():
        d = torch.nonzero(~active).flatten().numpy()
        layers.append(name)
        dead.append(d)
        widths.append(int(active.numel()))
        fractions.append(len(d) / active.numel())
    return DeadUnits(layers, fractions, dead, widths, int(x.shape[0]))


# ------------------------------------------------------------------------ revival spikes
class RevivalSpikeWarning(UserWarning):
    """A unit revived after a long dead spell took a step much larger than the learning rate."""


@dataclass(frozen=True)
class RevivalEvent:
    """One revived unit at one optimizer step.

    Attributes
    ----------
    step : int
        Optimizer step (counted by the monitor, from 1).
    param : str
        Parameter name.
    unit : int
        Unit index (row of a weight matrix, entry of a bias).
    dead_steps : int
        Consecutive steps with exactly zero gradient before this one.
    step_ratio : float
        Largest ``|update| / lr`` over the unit's entries at this step.
    mitigated : str or None
        The mitigation applied (``"reset"``, ``"clip"``) or None.
    """

    step: int
    param: str
    unit: int
    dead_steps: int
    step_ratio: float
    mitigated: str | None = None


@dataclass
class _Pending:
    before: torch.Tensor
    revived: torch.Tensor
    dead_for: torch.Tensor
    grad: torch.Tensor


_SECOND_MOMENT = {"RMSprop": "square_avg", "Adam": "exp_avg_sq", "AdamW": "exp_avg_sq"}


class RevivalMonitor:
    """Optimizer hook that detects (and optionally mitigates) revival spikes.

    Attach it to any ``torch.optim`` optimizer; it registers step pre/post hooks. For each
    parameter entry it counts the consecutive steps with an exactly-zero gradient; an entry whose
    gradient becomes non-zero after at least ``min_dead_steps`` such steps is *revived*. The step
    it then takes, relative to the learning rate, is recorded per unit (row of a weight matrix)
    in :attr:`events`, and a :class:`RevivalSpikeWarning` is issued when it exceeds
    ``threshold``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        RMSprop, Adam or AdamW (the mitigations need their second moment); detection alone works
        with any optimizer that has an ``lr``.
    module : nn.Module, optional
        Used only to name the parameters in the events.
    min_dead_steps : int
        Dead spell (in steps) after which a non-zero gradient counts as a revival.
    threshold : float
        Warn when a revived unit's step exceeds ``threshold * lr``.
    mitigation : {None, "reset", "clip"}
        ``"reset"``: before the step, set the moments of revived entries so that the optimizer
        sees them as at its first step (``m_hat = g``, ``v_hat = g**2``): the step is ``lr``.
        ``"clip"``: after the step, scale each unit's update by ``1 / max(1, rms(g/sqrt(v_hat)))``
        (StableAdamW's update clipping, per unit).
    warn : bool
        Issue :class:`RevivalSpikeWarning` (default True).

    Examples
    --------
    >>> monitor = RevivalMonitor(optimizer, module=net, mitigation="reset")  # doctest: +SKIP
    >>> ...  # train as usual; monitor.events lists the revived units
    >>> monitor.remove()  # doctest: +SKIP
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        module: nn.Module | None = None,
        min_dead_steps: int = 20,
        threshold: float = 3.0,
        mitigation: str | None = None,
        warn: bool = True,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer, received {type(optimizer).__name__}"
            )
        if mitigation not in (None, "reset", "clip"):
            raise ValueError(
                f"mitigation: expected None, 'reset' or 'clip', received {mitigation!r}"
            )
        if mitigation is not None and type(optimizer).__name__ not in _SECOND_MOMENT:
            raise ValueError(
                f"mitigation {mitigation!r}: expected an optimizer among {sorted(_SECOND_MOMENT)}, "
                f"received {type(optimizer).__name__}"
            )
        if not (isinstance(min_dead_steps, int) and min_dead_steps >= 1):
            raise ValueError(f"min_dead_steps: expected an int >= 1, received {min_dead_steps!r}")
        if not threshold > 0:
            raise ValueError(f"threshold: expected a positive number, received {threshold!r}")
        self.optimizer = optimizer
        self.min_dead_steps = min_dead_steps
        self.threshold = float(threshold)
        self.mitigation = mitigation
        self.warn = warn
        self.events: list[RevivalEvent] = []
        self.n_steps = 0
        names = {}
        if module is not None:
            names = {id(p): n for n, p in module.named_parameters()}
        self._names = {}
        i = 0
        for group in optimizer.param_groups:
            for p in group["params"]:
                self._names[id(p)] = names.get(id(p), f"param{i}")
                i += 1
        self._dead_for: dict[int, torch.Tensor] = {}
        self._pending: dict[int, _Pending] = {}
        self._handles = [
            optimizer.register_step_pre_hook(self._pre),
            optimizer.register_step_post_hook(self._post),
        ]

    # ------------------------------------------------------------------ hooks
    def _pre(self, optimizer, args, kwargs) -> None:
        self._pending.clear()
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.detach()
                zero = g == 0
                dead_for = self._dead_for.get(id(p))
                if dead_for is None:
                    dead_for = torch.zeros(g.shape, dtype=torch.long, device=g.device)
                revived = (~zero) & (dead_for >= self.min_dead_steps)
                self._pending[id(p)] = _Pending(
                    before=p.detach().clone(),
                    revived=revived,
                    dead_for=dead_for.clone(),
                    grad=g.clone(),
                )
                self._dead_for[id(p)] = torch.where(zero, dead_for + 1, torch.zeros_like(dead_for))
                if self.mitigation == "reset" and revived.any():
                    self._reset_moments(optimizer, group, p, g, revived)

    def _reset_moments(self, optimizer, group, p, g, revived) -> None:
        state = optimizer.state.get(p)
        if not state:
            return  # first step ever: nothing decayed yet
        kind = type(optimizer).__name__
        if kind == "RMSprop":
            # square_avg' = alpha s + (1 - alpha) g^2 = g^2  <=>  s = g^2
            s = state["square_avg"]
            s[revived] = (g * g)[revived]
            if group.get("centered") and "grad_avg" in state:
                state["grad_avg"][revived] = 0.0
            if group.get("momentum", 0) > 0 and "momentum_buffer" in state:
                state["momentum_buffer"][revived] = 0.0
        else:  # Adam / AdamW: make m_hat = g and v_hat = g^2 after the update
            beta1, beta2 = group["betas"]
            t = float(state["step"]) + 1.0
            c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t
            m_pre = g * (c1 - (1.0 - beta1)) / beta1
            v_pre = (g * g) * (c2 - (1.0 - beta2)) / beta2
            state["exp_avg"][revived] = m_pre[revived]
            state["exp_avg_sq"][revived] = v_pre[revived]
            if group.get("amsgrad") and "max_exp_avg_sq" in state:
                state["max_exp_avg_sq"][revived] = 0.0

    def _v_hat(self, optimizer, group, p):
        state = optimizer.state.get(p)
        kind = type(optimizer).__name__
        if kind == "RMSprop":
            return state["square_avg"]
        beta2 = group["betas"][1]
        return state["exp_avg_sq"] / (1.0 - beta2 ** float(state["step"]))

    def _post(self, optimizer, args, kwargs) -> None:
        self.n_steps += 1
        fired: list[RevivalEvent] = []
        for group in optimizer.param_groups:
            lr = float(group["lr"])
            for p in group["params"]:
                pend = self._pending.get(id(p))
                if pend is None:
                    continue
                with torch.no_grad():
                    delta = p.detach() - pend.before
                    if self.mitigation == "clip":
                        v_hat = self._v_hat(optimizer, group, p)
                        ratio2 = pend.grad**2 / (v_hat + group.get("eps", 1e-8) ** 2)
                        rows = ratio2.reshape(ratio2.shape[0], -1) if ratio2.ndim else ratio2
                        rms = rows.mean(dim=-1).sqrt() if ratio2.ndim > 1 else ratio2.sqrt()
                        scale = 1.0 / torch.clamp(rms, min=1.0)
                        if ratio2.ndim > 1:
                            scale = scale.reshape(-1, *([1] * (ratio2.ndim - 1)))
                        delta = delta * scale
                        p.copy_(pend.before + delta)
                if not pend.revived.any():
                    continue
                step = (delta.abs() / lr) if lr > 0 else delta.abs()
                rev = pend.revived
                if rev.ndim == 0:
                    rev, step, dead = rev.reshape(1), step.reshape(1), pend.dead_for.reshape(1)
                else:
                    dead = pend.dead_for
                rows_rev = rev.reshape(rev.shape[0], -1).any(dim=1)
                step_rows = torch.where(rev, step, torch.zeros_like(step))
                step_rows = step_rows.reshape(rev.shape[0], -1).amax(dim=1)
                dead_rows = torch.where(rev, dead, torch.zeros_like(dead))
                dead_rows = dead_rows.reshape(rev.shape[0], -1).amax(dim=1)
                for unit in torch.nonzero(rows_rev).flatten().tolist():
                    ev = RevivalEvent(
                        step=self.n_steps,
                        param=self._names.get(id(p), "param"),
                        unit=int(unit),
                        dead_steps=int(dead_rows[unit]),
                        step_ratio=float(step_rows[unit]),
                        mitigated=self.mitigation,
                    )
                    self.events.append(ev)
                    if ev.step_ratio > self.threshold:
                        fired.append(ev)
        self._pending.clear()
        if fired and self.warn:
            worst = max(fired, key=lambda e: e.step_ratio)
            warnings.warn(
                f"optimizer revival spike: {len(fired)} unit(s) revived after a dead spell took a "
                f"step above {self.threshold:g} x lr (worst: {worst.param}[{worst.unit}], dead "
                f"{worst.dead_steps} steps, step {worst.step_ratio:.2f} x lr). Mitigations: "
                "RevivalMonitor(..., mitigation='reset' or 'clip'), AMSGrad, a larger eps.",
                RevivalSpikeWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ results
    def spikes(self, threshold: float | None = None) -> list[RevivalEvent]:
        """The recorded events whose step exceeds ``threshold * lr`` (default: the monitor's)."""
        thr = self.threshold if threshold is None else threshold
        return [e for e in self.events if e.step_ratio > thr]

    @property
    def max_step_ratio(self) -> float:
        """Largest ``|update| / lr`` of a revived unit so far (0 if none)."""
        return max((e.step_ratio for e in self.events), default=0.0)

    def remove(self) -> None:
        """Detach the hooks from the optimizer."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @json_dict
    def to_dict(self) -> dict:
        return {
            "n_steps": self.n_steps,
            "min_dead_steps": self.min_dead_steps,
            "threshold": self.threshold,
            "mitigation": self.mitigation,
            "events": [e.__dict__ for e in self.events],
        }

    def __repr__(self) -> str:
        return (
            f"RevivalMonitor({type(self.optimizer).__name__}, steps={self.n_steps}, "
            f"revived={len(self.events)}, spikes={len(self.spikes())}, "
            f"max step={self.max_step_ratio:.2f} x lr, mitigation={self.mitigation})"
        )

    def plot(self, *, ax=None):
        """Step of each revived unit (in units of lr) against its dead spell."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3))
        else:
            fig = ax.figure
        ax.scatter([e.dead_steps for e in self.events], [e.step_ratio for e in self.events], s=12)
        ax.axhline(self.threshold, color="k", lw=0.8, ls="--")
        ax.set_xlabel("dead for [optimizer steps]")
        ax.set_ylabel("step of revived unit / lr")
        fig.tight_layout()
        return fig


def spike_closed_form(alpha: float) -> float:
    """RMSprop's step after a long dead spell, in units of lr: ``1 / sqrt(1 - alpha)``."""
    return 1.0 / math.sqrt(1.0 - alpha)


# ----------------------------------------------------------------------- SB3 callback
def _policy_optimizers(model) -> list[tuple[str, torch.optim.Optimizer, nn.Module]]:
    """The optimizers of an SB3 model's policy with the module each one trains.

    Off-policy actor-critics (SAC, TD3) keep one optimizer on ``policy.actor`` and one on
    ``policy.critic``; on-policy ones (PPO, A2C) a single one on ``policy``.
    """
    pol = model.policy
    out = []
    for name in ("actor", "critic"):
        module = getattr(pol, name, None)
        optimizer = getattr(module, "optimizer", None)
        if isinstance(module, nn.Module) and isinstance(optimizer, torch.optim.Optimizer):
            out.append((name, optimizer, module))
    if not out and isinstance(getattr(pol, "optimizer", None), torch.optim.Optimizer):
        out.append(("policy", pol.optimizer, pol))
    return out


def RevivalCallback(
    *,
    min_dead_steps: int = 20,
    threshold: float = 3.0,
    mitigation=None,
    warn: bool = True,
    log_dead_units: bool = True,
):
    """A Stable-Baselines3 callback that attaches :class:`RevivalMonitor` to the model's optimizers.

    It logs, under ``diagnostics/``, the number of revived units and of spikes, the largest
    revival step (in lr) and, after each PPO rollout, the fraction of dead units of the actor over
    the rollout's observations.

    Parameters
    ----------
    min_dead_steps, threshold, mitigation, warn
        Passed to :class:`RevivalMonitor`.
    log_dead_units : bool
        Log the dead-unit fraction of the actor network on the rollout observations.

    Returns
    -------
    stable_baselines3.common.callbacks.BaseCallback
        The callback (its ``monitors`` attribute maps optimizer names to monitors).
    """
    try:
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as exc:  # pragma: no cover - optional extra
        raise ImportError(
            "RevivalCallback needs Stable-Baselines3: pip install 'neuroctl[rl]'"
        ) from exc

    class _RevivalCallback(BaseCallback):
        def __init__(self):
            super().__init__()
            self.monitors: dict[str, RevivalMonitor] = {}

        def _on_training_start(self) -> None:
            for name, opt, module in _policy_optimizers(self.model):
                if name not in self.monitors or not self.monitors[name]._handles:
                    self.monitors[name] = RevivalMonitor(
                        opt,
                        module=module,
                        min_dead_steps=min_dead_steps,
                        threshold=threshold,
                        mitigation=mitigation,
                        warn=warn,
                    )

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            for name, mon in self.monitors.items():
                self.logger.record(f"diagnostics/{name}_revived", len(mon.events))
                self.logger.record(f"diagnostics/{name}_spikes", len(mon.spikes()))
                self.logger.record(f"diagnostics/{name}_max_revival_step", mon.max_step_ratio)
            from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

            if log_dead_units and isinstance(self.model, OnPolicyAlgorithm):
                from .export import actor_network

                obs = self.model.rollout_buffer.observations
                obs = obs.reshape(-1, obs.shape[-1])
                try:
                    net = actor_network(self.model)
                except (TypeError, ValueError):
                    return
                if not has_dead_unit_layers(net):
                    return
                rep = dead_units(net, obs)
                self.logger.record("diagnostics/dead_unit_fraction", rep.total_fraction)

        def _on_training_end(self) -> None:
            for mon in self.monitors.values():
                mon.remove()

    return _RevivalCallback()
