"""ReLU networks approximate a smooth function well, but its derivatives poorly.

A ReLU network is piecewise affine: its first derivative is a staircase and its second derivative
is zero almost everywhere (with Dirac spikes at the breakpoints). A network with a smooth activation
(tanh) of the same size, fitted the same way, approximates the function *and* its derivatives.

Steps: fit both networks to f(x) = sin(2x) + 0.3 x² on [-pi, pi] (float64, Adam then L-BFGS, same
seed, same data); differentiate them with autograd; compare f, f', f'' with the closed forms
f' = 2 cos(2x) + 0.6 x, f'' = -4 sin(2x) + 0.6 by the relative RMS error on a fine grid.

Run: ``python examples/derivative_approximation.py --out DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import neuroctl  # noqa: E402


@dataclass
class Args:
    out: str = ""  # output folder for the figure (default: a new temporary folder)
    hidden: int = 32  # width of each of the two hidden layers
    n_train: int = 256  # training points, evenly spaced
    adam_steps: int = 1500
    lbfgs_steps: int = 300
    seed: int = 0


def f(x):
    return torch.sin(2 * x) + 0.3 * x**2


def df(x):
    return 2 * torch.cos(2 * x) + 0.6 * x


def d2f(x):
    return -4 * torch.sin(2 * x) + 0.6


def fit(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: Args) -> None:
    """Least-squares fit of ``net`` to ``(x, y)``: Adam, then L-BFGS to polish."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(args.adam_steps):
        opt.zero_grad()
        loss = torch.mean((net(x) - y) ** 2)
        loss.backward()
        opt.step()
    lbfgs = torch.optim.LBFGS(
        net.parameters(),
        max_iter=args.lbfgs_steps,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )

    def closure():
        lbfgs.zero_grad()
        loss = torch.mean((net(x) - y) ** 2)
        loss.backward()
        return loss

    lbfgs.step(closure)


def derivatives(net: torch.nn.Module, x: torch.Tensor):
    """Network value, first and second derivative by autograd, each of shape (N,)."""
    x = x.clone().requires_grad_(True)
    y = net(x)
    (dy,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy.sum(), x, allow_unused=True)
    d2y = torch.zeros_like(x) if d2y is None else d2y  # a ReLU net's f'' is 0 a.e.
    return y.detach()[:, 0], dy.detach()[:, 0], d2y.detach()[:, 0]


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((a - b) ** 2) / torch.mean(b**2)))


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="derivative_approximation_"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. data: the smooth target on [-pi, pi]
    x_train = torch.linspace(-np.pi, np.pi, args.n_train, dtype=torch.float64)[:, None]
    y_train = f(x_train)
    x_test = torch.linspace(-np.pi, np.pi, 4001, dtype=torch.float64)[:, None]
    exact = [g(x_test)[:, 0] for g in (f, df, d2f)]

    # 2. two networks of the same size, fitted the same way
    results, curves = {}, {}
    for activation in ("relu", "tanh"):
        torch.manual_seed(args.seed)
        net = neuroctl.mlp(
            1,
            1,
            hidden=(args.hidden, args.hidden),
            activation=activation,
            dtype=torch.float64,
            seed=args.seed,
        )
        fit(net, x_train, y_train, args)
        curves[activation] = derivatives(net, x_test)
        errors = [rel_rms(a, e) for a, e in zip(curves[activation], exact)]
        results[activation] = dict(zip(("f", "df", "d2f"), errors))

    # 3. the numbers
    print(f"relative RMS error on {len(x_test)} points in [-pi, pi], 2x{args.hidden} networks")
    print(f"{'activation':>10} {'f':>10} {'df':>10} {'d2f':>10}")
    for activation, e in results.items():
        print(f"{activation:>10} {e['f']:10.2e} {e['df']:10.2e} {e['d2f']:10.2e}")

    # 4. the figure: f, f', f'' of both networks against the closed forms
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(7, 7))
    xs = x_test[:, 0].numpy()
    for ax, k, label in zip(axes, range(3), ("f", "f'", "f''")):
        ax.plot(xs, exact[k].numpy(), "k", lw=2.5, label="closed form")
        for activation, style in (("relu", "C3"), ("tanh", "C0--")):
            ax.plot(xs, curves[activation][k].numpy(), style, lw=1, label=activation)
        ax.set_ylabel(label)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("x")
    fig.suptitle("ReLU: good f, staircase f', zero f''; tanh: all three")
    fig.tight_layout()
    figure = out / "derivative_approximation.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print(f"figure: {figure}")
    return {"errors": results, "figure": str(figure)}


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
