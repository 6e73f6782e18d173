"""Gymnasium environments of neuroctl (installed as ``neuroctl.envs``).

Each environment module keeps a frozen ``Params`` dataclass, pure dynamics exposed as a
:class:`neuroctl.Plant`, a thin Gymnasium ``Env`` and a natively batched vector env.
"""
