"""Optimizer revival spikes with RMSprop, and two mitigations that remove them.

A small ReLU layer is trained with RMSprop (alpha = 0.99). For the first ``dead_steps`` steps
an input keeps one unit's pre-activation negative: its gradient is exactly 0 and RMSprop's
second moment decays as alpha**N. When the inputs change, the unit revives and its first step is
about lr / sqrt(1 - alpha) = 10 x lr, whatever the size of its gradient, while the healthy units
step by about lr. ``RevivalMonitor`` detects it; ``mitigation="reset"`` (moments re-initialised as
at a first step) and ``mitigation="clip"`` (StableAdamW's update clipping, per unit) remove it.

Run: ``python examples/revival_spike.py`` (add ``--plot`` to save revival_spike.png).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from neuroctl.train import RevivalMonitor, RevivalSpikeWarning


@dataclass
class Args:
    lr: float = 1e-3
    alpha: float = 0.99
    dead_steps: int = 1000
    width: int = 8
    seed: int = 0


def run(args: Args, mitigation: str | None) -> dict:
    """Train through a dead spell of unit 0; return revived and healthy steps (in lr)."""
    gen = torch.Generator().manual_seed(args.seed)
    # inputs [x0, x1, x2]: the target depends on x0, x1; unit 0 reads only x2, the others x0, x1
    layer = nn.Linear(3, args.width)
    head = nn.Linear(args.width, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(args.width, 3, generator=gen) + 0.5)
        layer.weight[:, 2] = 0.0
        layer.weight[0] = torch.tensor([0.0, 0.0, 1.0])
        layer.bias.zero_()
        head.weight.copy_(torch.randn(1, args.width, generator=gen))
        head.weight[0, 0] = 0.1
    net = nn.Sequential(layer, nn.ReLU(), head)
    opt = torch.optim.RMSprop(net.parameters(), lr=args.lr, alpha=args.alpha)
    monitor = RevivalMonitor(opt, module=net, mitigation=mitigation, warn=True)
    healthy_steps = []
    caught = []
    for k in range(args.dead_steps + 1):
        x = torch.rand(64, 3, generator=gen) + 0.1  # all inputs > 0: every unit is active
        if k < args.dead_steps:
            x[:, 2] = -x[:, 2]  # x2 < 0: unit 0 is dead, the others are unaffected
        target = torch.sin(3 * x[:, :2].sum(dim=1, keepdim=True))
        before = layer.weight.detach().clone()
        opt.zero_grad()
        nn.functional.mse_loss(net(x), target).backward()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always", RevivalSpikeWarning)
            opt.step()
        caught += [m for m in w if issubclass(m.category, RevivalSpikeWarning)]
        if k == args.dead_steps:
            healthy_steps = (layer.weight.detach() - before)[1:].abs().amax(dim=1) / args.lr
    monitor.remove()
    revived = [e for e in monitor.events if e.param == "0.weight" and e.unit == 0]
    return {
        "mitigation": mitigation,
        "revived_step_over_lr": revived[-1].step_ratio if revived else 0.0,
        "dead_steps": revived[-1].dead_steps if revived else 0,
        "healthy_step_over_lr_max": float(healthy_steps.max()),
        "warnings": len(caught),
        "monitor": monitor,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    args = Args()
    closed_form = 1.0 / (1.0 - args.alpha) ** 0.5
    print(
        f"RMSprop lr={args.lr}, alpha={args.alpha}: closed form lr/sqrt(1-alpha) = "
        f"{closed_form:.2f} x lr"
    )
    results = [run(args, m) for m in (None, "reset", "clip")]
    for r in results:
        print(
            f"mitigation={str(r['mitigation']):5s}  revived unit step = "
            f"{r['revived_step_over_lr']:5.2f} x lr after {r['dead_steps']} dead steps; "
            f"healthy units <= {r['healthy_step_over_lr_max']:.2f} x lr; "
            f"warnings: {r['warnings']}"
        )
    if "--plot" in argv:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        names = [str(r["mitigation"]) for r in results]
        ax.bar(names, [r["revived_step_over_lr"] for r in results], label="revived unit")
        ax.axhline(closed_form, color="k", ls="--", lw=0.8, label="lr/sqrt(1-alpha)")
        ax.set_ylabel("first step after revival / lr")
        ax.legend()
        fig.tight_layout()
        fig.savefig("revival_spike.png")
        plt.close(fig)
    return results


if __name__ == "__main__":
    main()
