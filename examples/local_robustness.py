"""Local robustness of one input of a ReLU network: region radius and certified radius.

Loads ACAS Xu network 1_1 (from the shared data folder beside the clone, if present; otherwise a
small random 5-50-50-5 ReLU network), picks an input, and reports in the ℓ∞ and ℓ2 norms:

- the radius of the largest ball inside the input's activation region (the network *is* an affine
  map there), and
- the certified radius within which the advisory (the minimal output) cannot change, from the
  exact affine map inside the region and CROWN bounds beyond it,

then checks both by sampling the balls.

Run: ``python examples/local_robustness.py --out DIR`` (saves local_robustness.png in DIR).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuroctl import mlp
from neuroctl.verify.robustness import certify_local

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "acasxu" / "onnx"


@dataclass
class Args:
    out: str = "."
    network: str = str(DATA / "ACASXU_run2a_1_1_batch_2000.onnx")
    point: list = field(default_factory=lambda: [0.1, 0.05, -0.2, 0.3, 0.2])
    samples: int = 20000
    seed: int = 0


def load(args: Args):
    path = Path(args.network)
    if path.is_file():
        from neuroctl.verify.formats import load_onnx

        return load_onnx(path).to(torch.float64), path.name
    return mlp(5, 5, (50, 50), seed=args.seed, dtype=torch.float64), "random 5-50-50-5 ReLU net"


def sample_ball(rng, x, r, norm, n):
    if math.isinf(norm):
        return x + r * rng.uniform(-1.0, 1.0, (n, x.size))
    g = rng.normal(size=(n, x.size))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return x + r * (rng.uniform(0.0, 1.0, n) ** (1.0 / x.size))[:, None] * g


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net, name = load(args)
    x = np.asarray(args.point, dtype=float)
    rng = np.random.default_rng(args.seed)
    with torch.no_grad():
        y = net(torch.as_tensor(x[None])).numpy()[0]
    print(f"network: {name}; x = {x}; outputs {np.round(y, 4)}; advisory argmin = {y.argmin()}")
    certs = {}
    for norm in (math.inf, 2):
        cert = certify_local(net, x, norm=norm, decision="argmin")
        pts = sample_ball(rng, x, cert.certified_radius * (1 - 1e-9), norm, args.samples)
        with torch.no_grad():
            changed = int((net(torch.as_tensor(pts)).numpy().argmin(axis=1) != cert.decision).sum())
        # beyond the certified radius: how often does sampling find a change (at 2x, 10x)?
        found = {}
        for k in (2, 10):
            far = sample_ball(rng, x, k * cert.certified_radius, norm, args.samples)
            with torch.no_grad():
                found[k] = int((net(torch.as_tensor(far)).numpy().argmin(1) != cert.decision).sum())
        label = "inf" if math.isinf(norm) else "2"
        print(
            f"l{label}: region radius {cert.region_radius:.4g}, certified radius "
            f"{cert.certified_radius:.4g} ({cert.certified_radius / cert.region_radius:.1f}x "
            f"the region, by {cert.certified_by}, {cert.bound_calls} CROWN calls, "
            f"{cert.time:.2f} s); {changed}/{args.samples} samples inside changed the advisory; "
            f"at 2x / 10x the radius: {found[2]} / {found[10]} changed"
        )
        certs[label] = {"certificate": cert, "changed_inside": changed, "changed_beyond": found}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, c in zip(axes, certs.values()):
        c["certificate"].plot(net, ax=ax)
    fig.tight_layout()
    figure = out / "local_robustness.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    print(f"saved {figure} ({time.perf_counter() - t0:.2f} s)")
    return {"net": net, "name": name, "x": x, "results": certs, "figure": str(figure)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for the figure")
    main(Args(out=parser.parse_args().out))
