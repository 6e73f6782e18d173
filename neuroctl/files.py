"""Reading controllers from files: ``neuroctl.load(path)``.

Supported: a ``.pt`` state dict with its ``.json`` architecture beside it (as
``neuroctl.train`` writes, :func:`neuroctl.train.export.load_policy`), a Stable-Baselines3
``.zip`` (PPO, SAC, TD3, A2C; with the ``VecNormalize`` statistics saved beside it folded in), an
``.onnx`` model and an ``.nnet`` network. Every reader returns a plain ``torch.nn.Sequential``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SUFFIXES", "LoadError", "load"]

SUFFIXES = (".pt", ".json", ".zip", ".onnx", ".nnet")
"""File suffixes :func:`load` reads."""


class LoadError(ValueError):
    """A file that cannot be read as a controller: missing, a folder, unsupported or corrupt.

    The message names the file, what was expected and what was found.
    """


def load(path: str | Path):
    """Load a saved network (``.pt``+``.json``, SB3 ``.zip``, ``.onnx``, ``.nnet``).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; for ``.pt``/``.json`` the other half of the pair must lie beside it. An SB3
        ``.zip`` is a pickle: load files you trust.

    Returns
    -------
    torch.nn.Sequential
        The network, from the observation (shape ``(..., n_obs)``) to the command (shape
        ``(..., n_act)``), in the units of the env it was trained on.

    Raises
    ------
    LoadError
        Missing file, unsupported suffix, or a file that cannot be read as that format.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path: expected a str or pathlib.Path, received {type(path).__name__}")
    path = Path(path)
    suffix = path.suffix.lower()
    supported = ".pt (with its .json), .json, .zip (Stable-Baselines3), .onnx, .nnet"
    if path.is_dir():
        raise LoadError(
            f"controller file {path}: expected a file ({supported}), received a directory"
        )
    if suffix not in SUFFIXES:
        raise LoadError(f"controller file {path}: expected one of {supported}, received {suffix!r}")
    if not path.exists():
        raise LoadError(f"controller file {path}: not found")
    if not path.is_file():
        raise LoadError(f"controller file {path}: expected a regular file, received another kind")
    try:
        if suffix in (".pt", ".json"):
            from neuroctl.train.export import load_policy

            if not path.with_suffix(".json").is_file():
                raise LoadError(
                    f"controller file {path}: expected the architecture in "
                    f"{path.with_suffix('.json').name} beside it (as neuroctl.train writes), "
                    "received no such file"
                )
            if not path.with_suffix(".pt").is_file():
                raise LoadError(
                    f"controller file {path}: expected the weights in "
                    f"{path.with_suffix('.pt').name} beside it, received no such file"
                )
            return load_policy(path)
        if suffix == ".zip":
            return _load_sb3(path)
        if suffix == ".onnx":
            from neuroctl.verify import load_onnx

            return load_onnx(path)
        from neuroctl.verify import load_nnet

        return load_nnet(path)
    except LoadError:
        raise
    except ImportError as exc:
        raise LoadError(f"controller file {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse is an input error
        kind = {
            ".pt": "a neuroctl policy",
            ".json": "a neuroctl policy",
            ".zip": "an SB3 model",
            ".onnx": "an ONNX model",
            ".nnet": "an .nnet network",
        }[suffix]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"controller file {path}: expected {kind}, could not read it ({reason})"
        ) from None


def _load_sb3(path: Path):
    try:
        import stable_baselines3 as sb3
    except ImportError:
        raise LoadError(
            f"controller file {path}: reading SB3 models needs stable-baselines3 "
            "(pip install 'neuroctl[rl]')"
        ) from None
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive")
    from neuroctl.train import export_policy

    errors = []
    for algo in ("PPO", "SAC", "TD3", "A2C"):
        try:
            model = getattr(sb3, algo).load(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - try the next algorithm
            errors.append(f"{algo}: {type(exc).__name__}")
            continue
        return export_policy(model, vec_normalize=_load_vec_normalize(path))
    raise ValueError("not a PPO/SAC/TD3/A2C model (" + "; ".join(errors) + ")")


def _load_vec_normalize(model_path: Path):
    """The ``VecNormalize`` statistics saved beside an SB3 model, or None.

    A model trained behind ``VecNormalize`` acts on normalized observations: without them its
    export is not the policy that acted. ``neuroctl train`` saves them as
    ``vecnormalize.pkl`` beside ``checkpoint.zip`` (a pickle, like the SB3 zip itself: load
    files you trust).
    """
    import pickle

    from stable_baselines3.common.vec_env import VecNormalize

    from neuroctl.train.rl import VECNORMALIZE_FILE

    stats = model_path.with_name(VECNORMALIZE_FILE)
    if not stats.is_file():
        return None
    with open(stats, "rb") as f:
        vec_normalize = pickle.load(f)
    if not isinstance(vec_normalize, VecNormalize):
        raise ValueError(
            f"{stats}: expected pickled VecNormalize statistics, "
            f"received {type(vec_normalize).__name__}"
        )
    return vec_normalize
