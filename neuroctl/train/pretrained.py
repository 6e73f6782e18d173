"""Small trained policies shipped with neuroctl, so that examples run without training.

Each policy is ``neuroctl/pretrained/<name>.pt`` (a ``state_dict``, loaded with
``torch.load(weights_only=True)``) and ``<name>.json`` (the layers, the training configuration,
the evaluation figures and the exact command that made it). They were made by the project's own
training function with the recipes in :data:`RECIPES` (see :func:`build_pretrained`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from .export import atomic_write_text, load_policy

__all__ = ["pretrained", "available", "pretrained_info", "RECIPES", "build_pretrained"]

_DIR = Path(__file__).resolve().parents[1] / "pretrained"

#: How each shipped policy is made: keyword arguments of :func:`neuroctl.train.train`. Keyed by
#: env id as data: the shipped files (``neuroctl/pretrained/<id>.pt``) are named after it.
RECIPES: dict[str, dict] = {
    "neuroctl/Arm-v0": dict(algo="diffsim", activation="relu", steps=300, seed=0),
    "neuroctl/RingRoad-v0": dict(algo="diffsim", activation="relu", steps=200, seed=0),
    "neuroctl/Arm2Link-v0": dict(algo="diffsim", activation="relu", steps=300, seed=0),
}


def _name(env_id: str) -> str:
    return env_id.split("/")[-1].lower()


def available() -> list[str]:
    """Env ids for which a pretrained policy ships."""
    return sorted(e for e in RECIPES if (_DIR / f"{_name(e)}.pt").exists())


def pretrained(env_id: str) -> nn.Sequential:
    """The shipped trained ReLU policy of an env, from observation to action.

    Parameters
    ----------
    env_id : str
        E.g. ``"neuroctl/Arm-v0"`` or ``"neuroctl/RingRoad-v0"``.

    Returns
    -------
    nn.Sequential
        Plain layers (frozen input normalization, ``Linear``/``ReLU``, output ``Linear``,
        ``Hardtanh`` and frozen output scaling to the action bounds), float32, in eval mode.
        Its ``.json`` (see :func:`pretrained_info`) records how it was trained.
    """
    path = _DIR / f"{_name(env_id)}.pt"
    if env_id not in RECIPES or not path.exists():
        raise ValueError(f"pretrained: expected one of {available()}, received {env_id!r}")
    return load_policy(path)


def pretrained_info(env_id: str) -> dict:
    """The metadata stored with a pretrained policy (command, configuration, evaluation)."""
    path = _DIR / f"{_name(env_id)}.json"
    if not path.exists():
        raise ValueError(f"pretrained_info: expected one of {available()}, received {env_id!r}")
    return json.loads(path.read_text())["metadata"]


def build_pretrained(env_id: str, *, work_dir, dest: Path | None = None) -> Path:
    """Train the recipe of ``env_id`` and copy its exported policy into the package.

    The run is made by :func:`neuroctl.train.train` in ``work_dir``; the policy files are copied
    to ``dest`` (default: the package's ``pretrained`` folder) with the command, the Python call
    and the evaluation summary added to the JSON metadata.
    """
    from .run import train

    recipe = RECIPES[env_id]
    out = Path(work_dir) / _name(env_id)
    result = train(env_id, out_dir=out, progress=False, resume=False, **recipe)
    dest = _DIR if dest is None else Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if result.policy_path is None:
        raise RuntimeError(
            f"build_pretrained: the run of {env_id} in {out} was interrupted before it exported a "
            "policy; nothing was copied (rerun to resume from its checkpoint)"
        )
    target = dest / _name(env_id)
    shutil.copyfile(result.policy_path, target.with_suffix(".pt"))
    spec = json.loads(result.policy_path.with_suffix(".json").read_text())
    call = ", ".join(f"{k}={v!r}" for k, v in recipe.items())
    spec["metadata"]["command"] = result.command.replace(str(out), "OUT_DIR")
    spec["metadata"]["python"] = f"neuroctl.train.train({env_id!r}, {call}, out_dir=OUT_DIR)"
    spec["metadata"]["made_by"] = (
        f"neuroctl.train.pretrained.build_pretrained({env_id!r}, work_dir=...)"
    )
    spec["metadata"]["evaluation"] = {
        k: v for k, v in result.summary.items() if isinstance(v, (int, float, str))
    }
    atomic_write_text(target.with_suffix(".json"), json.dumps(spec, indent=2) + "\n")
    return target.with_suffix(".pt")


if __name__ == "__main__":  # python -m neuroctl.train.pretrained ENV_ID WORK_DIR
    import sys

    import torch

    torch.set_num_threads(1)
    print(build_pretrained(sys.argv[1], work_dir=sys.argv[2]))
