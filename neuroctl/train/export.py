"""Export a trained policy as a plain ``nn.Sequential`` from observation to action.

What acts in the environment is written out layer by layer, so that ``local_gain``, ``analyze``
and ``verify`` see exactly that and nothing else:

* observation normalization (from a ``VecNormalize``): a frozen diagonal ``nn.Linear`` followed by
  ``nn.Hardtanh(-clip_obs, clip_obs)``;
* the actor's hidden layers (``nn.Linear`` and the activation) and its mean head;
* PPO/A2C (Gaussian policy, no squashing): the deterministic action is the mean, then *clipped*
  to the action box by SB3's ``predict``: a frozen affine map to [-1, 1], ``nn.Hardtanh()``, and
  the affine map back (piecewise linear);
* SAC/TD3-style squashing: ``nn.Tanh()`` then the affine rescaling to the box (smooth; reported as
  such in :class:`ExportInfo`).

Saved policies are a ``state_dict`` (``.pt``, loadable with ``torch.load(weights_only=True)``)
and a JSON file describing the layers, written atomically.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._json import json_dict
from ..controllers import affine_layer

__all__ = [
    "ExportInfo",
    "export_policy",
    "actor_network",
    "save_policy",
    "load_policy",
    "atomic_write_bytes",
    "atomic_write_text",
    "sweep_temporary_files",
]

_LAYER_TYPES = {
    "Linear": nn.Linear,
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "ReLU6": nn.ReLU6,
    "Hardtanh": nn.Hardtanh,
    "Tanh": nn.Tanh,
    "Sigmoid": nn.Sigmoid,
    "Softplus": nn.Softplus,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "Identity": nn.Identity,
}


@dataclass
class ExportInfo:
    """How an exported policy was assembled.

    Attributes
    ----------
    algo : str
        Algorithm class name (``"PPO"``, ``"SAC"``, ...).
    squashing : str
        ``"clip"`` (Hardtanh, piecewise linear), ``"tanh"`` (smooth) or ``"none"``.
    piecewise_linear : bool
        True if every layer of the exported network is piecewise affine.
    obs_normalization : bool
        True if a VecNormalize observation normalization is included as layers.
    action_low, action_high : list of float
        Action bounds.
    hidden : list of int
        Hidden widths.
    activation : str
        Hidden activation layer name.
    """

    algo: str
    squashing: str
    piecewise_linear: bool
    obs_normalization: bool
    action_low: list = field(default_factory=list)
    action_high: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    activation: str = ""

    @json_dict
    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        kind = "piecewise linear" if self.piecewise_linear else "smooth (not piecewise linear)"
        return (
            f"ExportInfo({self.algo}, hidden={self.hidden}, activation={self.activation}, "
            f"squashing={self.squashing}, {kind}, obs_normalization={self.obs_normalization})"
        )


_PWL = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.Identity)


def _actor_parts(model) -> tuple[list[nn.Module], nn.Linear, str]:
    """Hidden layers, mean head and squashing kind of an SB3 model's deterministic actor."""
    policy = getattr(model, "policy", None)
    if policy is None:
        raise TypeError(
            f"model: expected a Stable-Baselines3 model, received {type(model).__name__}"
        )
    from gymnasium import spaces

    if not isinstance(model.action_space, spaces.Box):
        raise ValueError(
            f"export_policy: expected a Box action space, received {model.action_space}"
        )
    obs_space = model.observation_space
    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
        raise ValueError(
            f"export_policy: expected a 1-D Box observation space, received {obs_space}"
        )
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy  # DDPG uses it too

    if isinstance(policy, SACPolicy):
        actor = policy.actor
        extractor, hidden, head = actor.features_extractor, actor.latent_pi, actor.mu
        if not isinstance(head, nn.Linear):  # gSDE actor: mu is Sequential(Linear, Hardtanh)
            raise ValueError("export_policy: gSDE SAC actors are not supported")
        squash = "tanh"
    elif isinstance(policy, TD3Policy):
        # TD3 / DDPG: mu = Sequential(Linear, act, ..., Linear, Tanh)
        td3_actor = policy.actor
        mods = list(td3_actor.mu) if isinstance(td3_actor.mu, nn.Sequential) else []
        if not (
            len(mods) >= 2 and isinstance(mods[-1], nn.Tanh) and isinstance(mods[-2], nn.Linear)
        ):
            raise ValueError("export_policy: expected a TD3 actor ending in Linear, Tanh")
        extractor, hidden = td3_actor.features_extractor, nn.Sequential(*mods[:-2])
        head = mods[-2]
        squash = "tanh"
    elif isinstance(policy, ActorCriticPolicy):  # PPO, A2C
        extractor = policy.pi_features_extractor
        hidden, head = policy.mlp_extractor.policy_net, policy.action_net
        squash = "tanh" if policy.squash_output else "clip"
    else:
        raise ValueError(
            f"export_policy: unsupported policy {type(policy).__name__}; supported: PPO, A2C "
            "(ActorCriticPolicy), SAC, TD3 and DDPG"
        )
    from stable_baselines3.common.torch_layers import FlattenExtractor

    if not isinstance(extractor, FlattenExtractor):
        raise ValueError(
            "export_policy: expected SB3's FlattenExtractor, received "
            f"{type(extractor).__name__} (custom features extractors are not exported)"
        )
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"export_policy: expected a Linear mean head, received {type(head).__name__}"
        )
    layers = list(hidden) if isinstance(hidden, nn.Sequential) else [hidden]
    return layers, head, squash


def actor_network(model) -> nn.Sequential:
    """The actor's hidden layers and mean head (no squashing, no clip) as an ``nn.Sequential``.

    It shares its parameters with the model (no copy): use it to inspect the network during
    training (e.g. :func:`~neuroctl.train.dead_units`).
    """
    layers, head, _ = _actor_parts(model)
    return nn.Sequential(*layers, head)


def _bounds_layers(low: np.ndarray, high: np.ndarray, squash: str) -> list[nn.Module]:
    center, half = (high + low) / 2.0, (high - low) / 2.0
    identity = np.allclose(center, 0.0) and np.allclose(half, 1.0)
    if squash == "tanh":
        out: list[nn.Module] = [nn.Tanh()]
        if not identity:
            out.append(affine_layer(half, center))
        return out
    # clip to [low, high] = affine to [-1, 1], Hardtanh, affine back
    if identity:
        return [nn.Hardtanh()]
    return [affine_layer(1.0 / half, -center / half), nn.Hardtanh(), affine_layer(half, center)]


def export_policy(model, *, vec_normalize=None, with_info: bool = False):
    """The deterministic actor of a Stable-Baselines3 model as a plain ``nn.Sequential``.

    The result maps observations ``(..., p)`` to the action that ``model.predict(obs,
    deterministic=True)`` returns, shape ``(..., m)``, in float32 (the model's dtype), as
    standard layers only (see the module docstring). It is a copy: later training does not
    change it.

    Parameters
    ----------
    model : stable_baselines3 PPO, A2C, SAC, TD3 or DDPG
        A model with a 1-D Box observation space, a Box action space and an MLP policy.
    vec_normalize : stable_baselines3.common.vec_env.VecNormalize, optional
        If the model was trained behind ``VecNormalize``, its observation normalization (mean,
        variance, clip) becomes the first layers.
    with_info : bool
        Also return an :class:`ExportInfo` (squashing kind, piecewise linearity, bounds).

    Returns
    -------
    nn.Sequential or (nn.Sequential, ExportInfo)
    """
    layers, head, squash = _actor_parts(model)
    seq: list[nn.Module] = []
    if vec_normalize is not None and getattr(vec_normalize, "norm_obs", False):
        rms = vec_normalize.obs_rms
        std = np.sqrt(rms.var + vec_normalize.epsilon)
        seq.append(affine_layer(1.0 / std, -rms.mean / std))
        seq.append(nn.Hardtanh(-vec_normalize.clip_obs, vec_normalize.clip_obs))
    seq += [copy.deepcopy(m).cpu() for m in layers]
    seq.append(copy.deepcopy(head).cpu())
    low = np.asarray(model.action_space.low, dtype=np.float64)
    high = np.asarray(model.action_space.high, dtype=np.float64)
    if squash == "clip" and not (np.isfinite(low).all() and np.isfinite(high).all()):
        tail: list[nn.Module] = []
    else:
        tail = _bounds_layers(low, high, squash)
    net = nn.Sequential(*seq, *tail).float().eval()
    if not with_info:
        return net
    act = next((type(m).__name__ for m in layers if not isinstance(m, nn.Linear)), "")
    info = ExportInfo(
        algo=type(model).__name__,
        squashing=squash if tail else "none",
        piecewise_linear=all(isinstance(m, _PWL) for m in net),
        obs_normalization=vec_normalize is not None,
        action_low=low.tolist(),
        action_high=high.tolist(),
        hidden=[m.out_features for m in layers if isinstance(m, nn.Linear)],
        activation=act,
    )
    return net, info


# ------------------------------------------------------------------------------ files
#: Names of the temporary files of :func:`atomic_write_bytes`: ``.<name>.<8 random>.tmp``.
_TMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

#: Test hook: ``"NAME:K"`` makes the K-th atomic write of a file called NAME in this process
#: stop after its temporary file is written (for ~10 minutes), so that a test can kill the process
#: in the middle of the write.
_SLOW_WRITE_ENV = "NEUROCTL_TEST_SLOW_WRITE"
_WRITES: dict[str, int] = {}


def _test_hook(path: Path) -> None:
    spec = os.environ.get(_SLOW_WRITE_ENV)
    if not spec:
        return
    name, _, k = spec.rpartition(":")
    if name != path.name:
        return
    _WRITES[name] = _WRITES.get(name, 0) + 1
    if str(_WRITES[name]) == k:
        import time

        time.sleep(600)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then replace).

    The temporary file ``.<name>.<random>.tmp`` is removed if anything fails (``finally``); a
    process killed during the write cannot remove it, so the trainers sweep such files when a
    run starts in the folder (:func:`sweep_temporary_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    replaced = False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; written files are ordinary files
        _test_hook(path)
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def sweep_temporary_files(folder) -> list[Path]:
    """Remove the temporary files that killed atomic writes left in ``folder`` (not recursive).

    Only names of the form :func:`atomic_write_bytes` uses (``.<name>.<8 random>.tmp``) are
    removed. Call it when a run starts, before anything writes to the folder; two processes
    writing one run folder at once are not supported.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _TMP_NAME.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to ``path`` atomically (only tensors and plain containers, for
    ``torch.load(weights_only=True)``)."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def _layer_spec(m: nn.Module) -> dict:
    name = type(m).__name__
    if name not in _LAYER_TYPES:
        raise ValueError(
            f"save_policy: unsupported layer {name}; supported: {sorted(_LAYER_TYPES)}"
        )
    spec: dict = {"type": name}
    if isinstance(m, nn.Linear):
        spec.update(in_features=m.in_features, out_features=m.out_features)
        spec["frozen"] = not m.weight.requires_grad
    elif isinstance(m, nn.Hardtanh):
        spec.update(min_val=m.min_val, max_val=m.max_val)
    elif isinstance(m, nn.LeakyReLU):
        spec.update(negative_slope=m.negative_slope)
    return spec


def save_policy(net: nn.Sequential, path, *, metadata: dict | None = None) -> Path:
    """Save a policy as ``<path>.pt`` (state dict) and ``<path>.json`` (layers + metadata).

    Parameters
    ----------
    net : nn.Sequential
        Standard layers only (``Linear`` and activations).
    path : str or Path
        Path without suffix (a ``.pt`` or ``.json`` suffix is replaced).
    metadata : dict, optional
        JSON-serialisable facts stored alongside (e.g. the command that trained it).

    Returns
    -------
    Path
        The ``.pt`` file.
    """
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"net: expected an nn.Sequential, received {type(net).__name__}")
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    spec = {
        "format": "neuroctl.policy/1",
        "dtype": str(dtype).replace("torch.", ""),
        "layers": [_layer_spec(m) for m in net],
        "metadata": metadata or {},
    }
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    pt = atomic_torch_save(state, path.with_suffix(".pt"))
    atomic_write_text(path.with_suffix(".json"), json.dumps(spec, indent=2) + "\n")
    return pt


def load_policy(path) -> nn.Sequential:
    """Load a policy saved by :func:`save_policy` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    spec = json.loads(path.with_suffix(".json").read_text())
    if spec.get("format") != "neuroctl.policy/1":
        raise ValueError(
            f"{path}.json: expected format 'neuroctl.policy/1', received {spec.get('format')!r}"
        )
    dtype = getattr(torch, spec.get("dtype", "float32"))
    layers = []
    for ls in spec["layers"]:
        kind = ls["type"]
        if kind not in _LAYER_TYPES:
            raise ValueError(f"{path}.json: unsupported layer {kind!r}")
        m: nn.Module
        if kind == "Linear":
            m = nn.Linear(ls["in_features"], ls["out_features"]).to(dtype)
            if ls.get("frozen"):
                m.requires_grad_(False)
        elif kind == "Hardtanh":
            m = nn.Hardtanh(ls["min_val"], ls["max_val"])
        elif kind == "LeakyReLU":
            m = nn.LeakyReLU(ls["negative_slope"])
        else:
            m = _LAYER_TYPES[kind]()
        layers.append(m)
    net = nn.Sequential(*layers)
    state = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()
