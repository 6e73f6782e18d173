"""What belongs to a Gymnasium environment: its plant (:func:`plant_of`, :func:`register_plant`)
and its training facts (:func:`register_training`, :func:`training_task`, :func:`rl_hyperparams`).

neuroctl's own environments carry their plant (``env.unwrapped.plant``). Environments that do
not (Gymnasium's ``Pendulum-v1``, or one of your own) are looked up here, by env id or by env
class, in a table of plant factories ``factory(env) -> Plant`` given as callables or as string
entry points ``"module:function"`` (imported on first use, like Gymnasium's env entry points).

Training facts are registered per env id the same way: the diffsim task factory and the success
criterion as entry points in :data:`TRAINING_FACTS`, the RL hyperparameters as data in
:mod:`neuroctl.envs.hyperparams`. :mod:`neuroctl.train` looks them up here and knows no env id.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from neuroctl.plant import Plant

__all__ = [
    "plant_of",
    "register_plant",
    "PLANT_FACTORIES",
    "register_training",
    "training_task",
    "training_evaluate",
    "rl_hyperparams",
    "TRAINING_FACTS",
]

#: env id or env class -> plant factory ``factory(env) -> Plant`` (or its "module:function")
PLANT_FACTORIES: dict[str | type, str | Callable] = {
    "Pendulum-v1": "neuroctl.envs.pendulum:plant_of_env",
}


def register_plant(key: str | type, factory: str | Callable) -> None:
    """Register the plant factory of an environment.

    Parameters
    ----------
    key : str or type
        A Gymnasium env id (``"Pendulum-v1"``, ``"my_pkg:MyEnv-v0"`` as given to ``gym.make``,
        matched against ``env.spec.id``) or the env class (matched against
        ``type(env.unwrapped)`` and its base classes).
    factory : callable or str
        ``factory(env) -> Plant``, called with the (wrapped) env, or its ``"module:function"``.
    """
    if not isinstance(key, (str, type)):
        raise TypeError(f"key: expected an env id (str) or an env class, received {key!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError(
            f"factory: expected a callable factory(env) -> Plant or a 'module:function' string, "
            f"received {factory!r}"
        )
    PLANT_FACTORIES[key] = factory


def _load(factory: str | Callable) -> Callable:
    if callable(factory):
        return factory
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


def plant_of(env) -> Plant:
    """The :class:`neuroctl.Plant` of a Gymnasium environment.

    Parameters
    ----------
    env : gymnasium.Env or str
        An environment (wrapped or not) or an env id (then ``gymnasium.make(env)``).

    Returns
    -------
    Plant
        ``env.unwrapped.plant`` when the env carries one; otherwise the registered factory of its
        id (``env.spec.id``) or of its class, applied to the env.

    Raises
    ------
    LookupError
        No plant is known for the env: the message names it and how to register one.
    """
    import gymnasium as gym

    if isinstance(env, str):
        env = gym.make(env)
    if not isinstance(env, gym.Env):
        raise TypeError(f"env: expected a gymnasium.Env or an env id, received {env!r}")
    base = env.unwrapped
    own = getattr(base, "plant", None)
    if isinstance(own, Plant):
        return own
    spec_id = env.spec.id if env.spec is not None else None
    if spec_id is not None and spec_id in PLANT_FACTORIES:
        return _load(PLANT_FACTORIES[spec_id])(env)
    for cls in type(base).__mro__:
        if cls in PLANT_FACTORIES:
            return _load(PLANT_FACTORIES[cls])(env)
    keys = sorted(str(k) if isinstance(k, str) else k.__qualname__ for k in PLANT_FACTORIES)
    raise LookupError(
        f"env {spec_id or type(base).__name__!r} ({type(base).__module__}."
        f"{type(base).__qualname__}) carries no plant (env.unwrapped.plant) and none is "
        f"registered for it (registered: {keys}); register one with "
        f"neuroctl.envs.register_plant({spec_id or type(base).__name__!r}, factory), "
        "factory(env) -> neuroctl.Plant"
    )


#: env id -> ``{"task": factory, "evaluate": criterion}`` (callables or "module:function"):
#: ``factory(env_id, env_kwargs, **options) -> neuroctl.train.tasks.DiffsimTask`` and
#: ``criterion(policy, env_id, *, seed, env_kwargs) -> dict`` of metrics with at least
#: ``success`` (bool: the criterion is met), ``score`` (the number it thresholds, for learning
#: curves) and ``criterion`` (in words).
TRAINING_FACTS: dict[str, dict[str, str | Callable]] = {
    "neuroctl/Arm-v0": {
        "task": "neuroctl.train.tasks:plant_env_task",
        "evaluate": "neuroctl.train.tasks:reach_success_rate",
    },
    "neuroctl/Arm2Link-v0": {
        "task": "neuroctl.train.tasks:plant_env_task",
        "evaluate": "neuroctl.train.tasks:two_link_success_rate",
    },
    "neuroctl/RingRoad-v0": {
        "task": "neuroctl.envs.ring_road.task:make_task",
        "evaluate": "neuroctl.envs.ring_road.task:ring_criterion",
    },
}


def _env_key(env_id) -> str:
    """The registry key of an env id: ``"pkg.mod:Env-v0"`` (as given to ``gym.make``) is
    registered by Gymnasium as ``"Env-v0"`` (its ``env.spec.id``)."""
    if not isinstance(env_id, str) or not env_id:
        raise TypeError(f"env_id: expected a Gymnasium env id (str), received {env_id!r}")
    return env_id.rpartition(":")[2]


def _check_entry(name: str, value, what: str) -> None:
    if not (callable(value) or (isinstance(value, str) and ":" in value)):
        raise TypeError(
            f"{name}: expected a callable {what} or a 'module:function' string, received {value!r}"
        )


def register_training(
    env_id: str,
    *,
    task: str | Callable | None = None,
    evaluate: str | Callable | None = None,
    hyperparams: dict[str, dict] | None = None,
) -> None:
    """Register the training facts of an environment (entries given replace earlier ones).

    Parameters
    ----------
    env_id : str
        A Gymnasium env id: ``"MyEnv-v0"`` or ``"my_pkg:MyEnv-v0"`` (the same entry).
    task : callable or str, optional
        Diffsim task factory ``task(env_id, env_kwargs, **options) -> DiffsimTask``
        (:class:`neuroctl.train.tasks.DiffsimTask`), or its ``"module:function"``. Without one,
        :func:`~neuroctl.train.train_diffsim` uses the generic task of envs built on
        :class:`neuroctl.envs.PlantEnv` (minus the env's reward over an episode).
    evaluate : callable or str, optional
        Success criterion ``evaluate(policy, env_id, *, seed, env_kwargs) -> dict`` of metrics,
        or its ``"module:function"``: the dict holds ``success`` (bool), ``score`` (the number
        the criterion thresholds) and ``criterion`` (in words), plus any other figures. Checked
        during RL training (:func:`~neuroctl.train.train_rl`, ``eval_every``) and in the diffsim
        summary, where the task brings no ``evaluate`` of its own.
    hyperparams : dict, optional
        ``{algo: SB3 keyword arguments}`` merged over
        :data:`neuroctl.envs.hyperparams.DEFAULT_HYPERPARAMS` by
        :func:`~neuroctl.train.train_rl` (``algo`` in ``"ppo"``, ``"sac"``, ``"td3"``).
    """
    from .hyperparams import DEFAULT_HYPERPARAMS, ENV_HYPERPARAMS

    key = _env_key(env_id)
    if task is not None:
        _check_entry("task", task, "task(env_id, env_kwargs, **options) -> DiffsimTask")
    if evaluate is not None:
        _check_entry("evaluate", evaluate, "evaluate(policy, env_id, *, seed, env_kwargs) -> dict")
    if hyperparams is not None:
        if not isinstance(hyperparams, dict) or not all(
            a in DEFAULT_HYPERPARAMS and isinstance(h, dict) for a, h in hyperparams.items()
        ):
            raise TypeError(
                f"hyperparams: expected {{algo: dict of SB3 keyword arguments}} with algo in "
                f"{sorted(DEFAULT_HYPERPARAMS)}, received {hyperparams!r}"
            )
    facts = TRAINING_FACTS.setdefault(key, {})
    if task is not None:
        facts["task"] = task
    if evaluate is not None:
        facts["evaluate"] = evaluate
    if hyperparams is not None:
        ENV_HYPERPARAMS.setdefault(key, {}).update({a: dict(h) for a, h in hyperparams.items()})


def training_task(env_id: str) -> Callable | None:
    """The registered diffsim task factory of an env id (None: none registered)."""
    entry = TRAINING_FACTS.get(_env_key(env_id), {}).get("task")
    return None if entry is None else _load(entry)


def training_evaluate(env_id: str) -> Callable | None:
    """The registered success criterion of an env id (None: none registered)."""
    entry = TRAINING_FACTS.get(_env_key(env_id), {}).get("evaluate")
    return None if entry is None else _load(entry)


def rl_hyperparams(env_id: str, algo: str) -> dict:
    """SB3 keyword arguments of ``algo`` on an env: the env's registered entry over the defaults.

    Parameters
    ----------
    env_id : str
    algo : {"ppo", "sac", "td3"}

    Returns
    -------
    dict
        A fresh dict: :data:`~neuroctl.envs.hyperparams.DEFAULT_HYPERPARAMS` ``[algo]`` updated
        with :data:`~neuroctl.envs.hyperparams.ENV_HYPERPARAMS` ``[env][algo]`` where registered
        (an env without an entry gets the defaults).
    """
    from .hyperparams import DEFAULT_HYPERPARAMS, ENV_HYPERPARAMS

    if algo not in DEFAULT_HYPERPARAMS:
        raise ValueError(f"algo: expected one of {sorted(DEFAULT_HYPERPARAMS)}, received {algo!r}")
    own = ENV_HYPERPARAMS.get(_env_key(env_id), {}).get(algo, {})
    return {**DEFAULT_HYPERPARAMS[algo], **own}
