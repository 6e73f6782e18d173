"""neuroctl: neural controllers in closed loop.

Environments, exact local gains of networks, stability analysis through python-control,
verification of ReLU networks, and training. Importing ``neuroctl`` registers the Gymnasium
environment ids (``neuroctl/Arm-v0``, ...) with string entry points, without importing env code.
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import TYPE_CHECKING

from ._array import namespace, stack, unstack
from .plant import INTEGRATORS, Plant, euler, rk4, semi_implicit_euler

if TYPE_CHECKING:  # the lazy names of _LAZY below, declared for type checkers and IDEs
    # ("import x as x" marks an explicit re-export)
    from . import linearize as linearize
    from .analysis import StabilityReport as StabilityReport
    from .analysis import analyze as analyze
    from .car_following import string_stability as string_stability
    from .controllers import ACTIVATIONS as ACTIVATIONS
    from .controllers import affine_layer as affine_layer
    from .controllers import linear_controller as linear_controller
    from .controllers import mlp as mlp
    from .files import load as load
    from .gains import LocalGain as LocalGain
    from .gains import local_gain as local_gain
    from .jacobians import plant_jacobians as plant_jacobians
    from .layers import UnsupportedLayer as UnsupportedLayer
    from .loops import Linearization as Linearization
    from .nlsys import from_nlsys as from_nlsys
    from .operating import OperatingPoint as OperatingPoint
    from .operating import OperatingPointError as OperatingPointError
    from .operating import operating_point as operating_point
    from .pwl import pwl_from_relu_net as pwl_from_relu_net
    from .pwl import relu_net_from_pwl as relu_net_from_pwl
    from .simulate import Trajectory as Trajectory
    from .simulate import simulate as simulate
    from .sweep import sweep as sweep
    from .synthesis import lqr as lqr
    from .train.pretrained import pretrained as pretrained

__version__ = "0.1.0"

# Public names implemented in heavier modules, imported on first use (PEP 562) so that
# ``import neuroctl`` stays light (no torch: ``neuroctl --help`` answers in well under a
# second). name -> module (relative to this package).
_LAZY = {
    # networks and controllers, closed-loop simulation (torch)
    "ACTIVATIONS": ".controllers",
    "affine_layer": ".controllers",
    "linear_controller": ".controllers",
    "mlp": ".controllers",
    "Trajectory": ".simulate",
    "simulate": ".simulate",
    # grids of runs as one table, over any concurrent.futures.Executor
    "sweep": ".sweep",
    # controllers from files (.pt + .json, SB3 .zip, .onnx, .nnet)
    "load": ".files",
    # linearization and stability analysis
    "local_gain": ".gains",
    "LocalGain": ".gains",
    "plant_jacobians": ".jacobians",
    "operating_point": ".operating",
    "from_nlsys": ".nlsys",
    "OperatingPoint": ".operating",
    "OperatingPointError": ".operating",
    "UnsupportedLayer": ".layers",
    "linearize": ".linearize",
    "Linearization": ".loops",
    "lqr": ".synthesis",
    "analyze": ".analysis",
    "StabilityReport": ".analysis",
    "string_stability": ".car_following",
    # piecewise-linear functions <-> ReLU networks
    "relu_net_from_pwl": ".pwl",
    "pwl_from_relu_net": ".pwl",
    # pretrained policies shipped with the package
    "pretrained": ".train.pretrained",
}

__all__ = [
    "INTEGRATORS",
    "Plant",
    "euler",
    "namespace",
    "rk4",
    "semi_implicit_euler",
    "stack",
    "unstack",
    *_LAZY,
]


class _Package(_types.ModuleType):
    """The package module: a public function is never hidden by its submodule of the same name.

    Importing ``neuroctl.simulate`` (the module) binds the package attribute ``simulate`` to it;
    the lazy function of that name must win, as it did when it was imported eagerly.
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTION_OVER_MODULE and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_FUNCTION_OVER_MODULE = ("simulate", "sweep")
# ``neuroctl.linearize`` is the module, which calls its function of the same name when called: so
# ``neuroctl.linearize(...)`` and ``import neuroctl.linearize as module`` both work, in any order.
_CALLABLE_MODULES = ("linearize",)
_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name in _CALLABLE_MODULES else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuroctl' has no attribute {name!r}")


def _register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    specs = {
        # id: (entry point, vector entry point, max_episode_steps)
        "neuroctl/Arm-v0": ("neuroctl.envs.arm:ArmEnv", "neuroctl.envs.arm:ArmVectorEnv", 150),
        "neuroctl/Arm2Link-v0": (
            "neuroctl.envs.arm2link:Arm2LinkEnv",
            "neuroctl.envs.arm2link:Arm2LinkVectorEnv",
            150,
        ),
        "neuroctl/RingRoad-v0": (
            "neuroctl.envs.ring_road.env:RingRoadEnv",
            "neuroctl.envs.ring_road.env:RingRoadVectorEnv",
            3000,
        ),
    }
    # the ring road checks the order of reset, step and render itself and is checked by
    # gymnasium's check_env in the tests: without those two wrappers one step costs ~5% less
    lean = {"neuroctl/RingRoad-v0"}
    for env_id, (entry, vec_entry, horizon) in specs.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point=entry,
                vector_entry_point=vec_entry,
                max_episode_steps=horizon,
                order_enforce=env_id not in lean,
                disable_env_checker=env_id in lean,
            )


_register_envs()
