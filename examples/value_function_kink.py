"""A borrowing constraint puts a kink in a consumption-savings problem; a ReLU net finds it.

Model (Deaton 1991, "Saving and liquidity constraints"). A consumer with cash on hand x chooses
consumption c and end-of-period assets a' = x - c >= 0 (the borrowing limit: no debt), with CRRA
utility u(c) = c^(1-sigma)/(1-sigma), discount beta, gross interest R and i.i.d. income y':
V(x) = max_{0 <= c <= x} u(c) + beta E V(R (x - c) + y'). The value V is C^1 (envelope theorem,
V' = u'(c)); the kink is in the consumption rule c(x): below x0 the limit binds and c = x (slope
1), above it the Euler equation u'(c) = beta R E u'(c(R a' + y')) holds and the slope drops to
about 0.46. We compute c(x) by time iteration on the Euler equation with the endogenous grid
method (Carroll 2006; the fixed point of the Bellman operator's first-order condition, iterated to
1e-12); x0 is the cash on hand at which the optimal a' reaches the limit 0.

Steps: solve the model; fit c(x) on [x_lo, x_hi] with a ReLU and a tanh network of the same size
(one hidden layer, float64, same seed, same data, Adam then L-BFGS); read the ReLU net's exact
breakpoints with ``neuroctl.pwl_from_relu_net``; compare the errors near the kink and elsewhere.

Run: ``python examples/value_function_kink.py --out DIR``
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
    beta: float = 0.95  # discount factor
    interest: float = 1.02  # gross interest rate R
    sigma: float = 2.0  # relative risk aversion
    income_low: float = 0.7  # income y' is income_low or income_high with probability 1/2
    income_high: float = 1.3
    x_lo: float = 0.3  # cash-on-hand range of the fit
    x_hi: float = 3.0
    hidden: int = 32  # width of the hidden layer
    n_train: int = 400
    adam_steps: int = 2000
    lbfgs_steps: int = 500
    near: float = 0.05  # half-width of the window around the kink for the "near" error
    seed: int = 0


def solve_consumption(args: Args, n_grid: int = 400, tol: float = 1e-12):
    """Consumption rule by the endogenous grid method.

    Returns
    -------
    x, c : ndarray, shape (n_grid + 1,)
        Cash-on-hand knots and consumption there; ``c(x)`` is their linear interpolant, with
        ``c = x`` on ``[0, x[1]]`` where the limit binds. ``x[1]`` is the kink x0.
    """
    income = np.array([args.income_low, args.income_high])
    # end-of-period assets a' >= 0, denser near the limit
    a_next = 10.0 * args.x_hi * np.linspace(0.0, 1.0, n_grid) ** 2
    x = c = np.array([0.0, 100.0 * args.x_hi])  # initial guess: consume everything, c = x
    for _ in range(5000):
        c_next = np.interp(args.interest * a_next[:, None] + income, x, c)
        expected_mu = np.mean(c_next**-args.sigma, axis=1)
        c_new = (args.beta * args.interest * expected_mu) ** (-1.0 / args.sigma)
        x_new = np.concatenate([[0.0], c_new + a_next])
        c_new = np.concatenate([[0.0], c_new])
        change = np.max(np.abs(np.interp(x_new, x, c) - c_new))
        x, c = x_new, c_new
        if change < tol:
            return x, c
    raise RuntimeError(f"the endogenous grid method did not converge (last change {change:.2e})")


def fit(net, x, y, args: Args) -> None:
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


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="value_function_kink_"))
    out.mkdir(parents=True, exist_ok=True)
    # 1. the model's consumption rule and its kink
    knots_x, knots_c = solve_consumption(args)
    x_bar = float(knots_x[1])
    if not args.x_lo < x_bar < args.x_hi:
        raise ValueError(
            f"the kink x_bar = {x_bar:.4g} must lie inside [x_lo, x_hi] = "
            f"[{args.x_lo}, {args.x_hi}]; change the parameters"
        )

    def consumption(x):
        return np.interp(x, knots_x, knots_c)

    # 2. data: c(x) on an even grid, inputs scaled to [-1, 1] by a frozen first layer
    x_train = np.linspace(args.x_lo, args.x_hi, args.n_train)
    y_train = consumption(x_train)
    scale = 2.0 / (args.x_hi - args.x_lo)
    offset = -1.0 - scale * args.x_lo
    xt = torch.as_tensor(x_train)[:, None]
    yt = torch.as_tensor(y_train)[:, None]

    # 3. ReLU and tanh networks of the same size, fitted the same way
    nets = {}
    for activation in ("relu", "tanh"):
        net = neuroctl.mlp(
            1,
            1,
            hidden=(args.hidden,),
            activation=activation,
            input_scale=[scale],
            input_offset=[offset],
            dtype=torch.float64,
            seed=args.seed,
        )
        fit(net, xt, yt, args)
        nets[activation] = net

    # 4. errors near the kink and elsewhere, on a fine grid
    x_test = np.linspace(args.x_lo, args.x_hi, 20001)
    exact = consumption(x_test)
    near = np.abs(x_test - x_bar) <= args.near
    errors = {}
    for activation, net in nets.items():
        with torch.no_grad():
            err = np.abs(net(torch.as_tensor(x_test)[:, None])[:, 0].numpy() - exact)
        errors[activation] = {"near_kink": float(err[near].max()), "away": float(err[~near].max())}

    # 5. the ReLU net's exact breakpoints
    pwl = neuroctl.pwl_from_relu_net(nets["relu"], args.x_lo, args.x_hi, simplify=True)
    breakpoints = pwl.knots
    inner = breakpoints[(breakpoints > args.x_lo) & (breakpoints < args.x_hi)]
    nearest = float(inner[np.argmin(np.abs(inner - x_bar))])

    print(f"kink of c(x) at x0 = {x_bar:.5f} (the borrowing limit binds below)")
    print(
        f"ReLU net: {len(inner)} breakpoints in ({args.x_lo}, {args.x_hi}); nearest to the kink "
        f"at {nearest:.5f} (distance {abs(nearest - x_bar):.2e})"
    )
    print(f"max |error| of c(x), networks with {args.hidden} hidden units:")
    print(f"{'activation':>10} {'|x-x0|<=' + str(args.near):>16} {'elsewhere':>12}")
    for activation, e in errors.items():
        print(f"{activation:>10} {e['near_kink']:16.2e} {e['away']:12.2e}")

    # 6. the figure
    fig, (ax, ax_err) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    ax.plot(x_test, exact, "k", lw=2.5, label="model c(x) (EGM)")
    for activation, style in (("relu", "C3"), ("tanh", "C0--")):
        with torch.no_grad():
            y = nets[activation](torch.as_tensor(x_test)[:, None])[:, 0].numpy()
        ax.plot(x_test, y, style, lw=1, label=activation)
        ax_err.semilogy(x_test, np.abs(y - exact) + 1e-16, style, lw=1, label=activation)
    for a in (ax, ax_err):
        a.axvline(x_bar, color="gray", lw=0.8, ls=":")
    ax.plot(inner, np.interp(inner, x_test, exact), "C3|", ms=10, label="ReLU breakpoints")
    ax.set_ylabel("consumption c(x)")
    ax.legend(fontsize=8)
    ax_err.set_ylabel("|error|")
    ax_err.set_xlabel("cash on hand x")
    ax_err.legend(fontsize=8)
    fig.suptitle(f"the borrowing limit binds below x0 = {x_bar:.3f}: c = x")
    fig.tight_layout()
    figure = out / "value_function_kink.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    print(f"figure: {figure}")
    return {
        "x_bar": x_bar,
        "breakpoints": inner.tolist(),
        "nearest_breakpoint": nearest,
        "errors": errors,
        "figure": str(figure),
    }


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    main(parse_args())
