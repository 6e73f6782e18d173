"""Which plant belongs to a Gymnasium environment: :func:`plant_of` and :func:`register_plant`.

neuroctl's own environments carry their plant (``env.unwrapped.plant``). Environments that do
not (Gymnasium's ``Pendulum-v1``, or one of your own) are looked up here, by env id or by env
class, in a table of plant factories ``factory(env) -> Plant`` given as callables or as string
entry points ``"module:function"`` (imported on first use, like Gymnasium's env entry points).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from neuroctl.plant import Plant

__all__ = ["plant_of", "register_plant", "PLANT_FACTORIES"]

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
