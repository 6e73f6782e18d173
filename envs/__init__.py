"""Gymnasium environments of neuroctl (installed as ``neuroctl.envs``).

Each environment module keeps a frozen ``Params`` dataclass, pure dynamics exposed as a
:class:`neuroctl.Plant`, a thin Gymnasium ``Env`` and a natively batched vector env. The same
plumbing turns a plant of your own into environments: :class:`EnvModel`, :func:`box_sampler`,
:class:`PlantEnv` and :class:`PlantVectorEnv`. :func:`plant_of` finds the plant of any env (its
own, or one registered with :func:`register_plant`, e.g. Gymnasium's ``Pendulum-v1``);
:func:`register_training` registers an env's training task, success criterion and RL
hyperparameters.
"""

from ._common import EnvModel, PlantEnv, PlantVectorEnv, box_sampler
from .registry import plant_of, register_plant, register_training

__all__ = [
    "EnvModel",
    "PlantEnv",
    "PlantVectorEnv",
    "box_sampler",
    "plant_of",
    "register_plant",
    "register_training",
]
