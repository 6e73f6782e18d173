"""Training neural controllers: RL (Stable-Baselines3), differentiable simulation, diagnostics.

Stable-Baselines3 is an optional extra (``pip install 'neuroctl[rl]'``), imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .diagnostics import (
    DeadUnits,
    RevivalCallback,
    RevivalEvent,
    RevivalMonitor,
    RevivalSpikeWarning,
    dead_units,
    has_dead_unit_layers,
)
from .pretrained import pretrained

if TYPE_CHECKING:  # the lazy names of _LAZY below, declared for type checkers and IDEs
    # ("import x as x" marks an explicit re-export)
    from .diffsim import train_diffsim as train_diffsim
    from .export import actor_network as actor_network
    from .export import export_policy as export_policy
    from .result import TrainResult as TrainResult
    from .rl import evaluate_policy as evaluate_policy
    from .rl import train_rl as train_rl
    from .run import train as train
    from .seeds import SeedsResult as SeedsResult
    from .seeds import train_seeds as train_seeds
    from .tasks import arm_success_rate as arm_success_rate

_LAZY = {
    "export_policy": ".export",
    "actor_network": ".export",
    "train_rl": ".rl",
    "TrainResult": ".result",
    "train_diffsim": ".diffsim",
    "train": ".run",
    "evaluate_policy": ".rl",
    "arm_success_rate": ".tasks",
    "train_seeds": ".seeds",
    "SeedsResult": ".seeds",
}

__all__ = [
    "DeadUnits",
    "RevivalCallback",
    "RevivalEvent",
    "RevivalMonitor",
    "RevivalSpikeWarning",
    "dead_units",
    "has_dead_unit_layers",
    "pretrained",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuroctl.train' has no attribute {name!r}")
