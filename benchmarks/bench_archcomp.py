"""ARCH-COMP AINNCS closed-loop benchmarks: neuroctl's verdicts against the published ones.

For each problem of ``../shared/data/archcomp`` (see ``benchmarks/archcomp``): first a
falsification by simulation (the centre, the corners and random initial states, the continuous
plant integrated by scipy's ``solve_ivp`` at rtol 1e-10 / atol 1e-12 between the samples), then,
where neuroctl has it, ``neuroctl.verify.check_closed_loop`` on the same problem within
``--timeout`` seconds. Prints one row per benchmark: neuroctl's verdict, what it is about
(semantics), time, the published verdict and whether they agree.

    python benchmarks/bench_archcomp.py --timeout 60
    python benchmarks/bench_archcomp.py --only tora_sigmoid --only docking --timeout 10
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from benchmarks.archcomp import BENCHMARKS, DATA, load, search_counterexample, vcas  # noqa: E402
from benchmarks.data import missing_reason  # noqa: E402
from neuroctl.parallel import map_tasks  # noqa: E402


@dataclass
class Args:
    only: list = field(default_factory=list)
    """run only these benchmarks (repeat the option; default: all)"""
    timeout: float = 60.0
    """seconds for check_closed_loop on each benchmark"""
    samples: int = 256
    """random initial states simulated by the falsification step (besides centre and corners)"""
    seed: int = 0
    """seed of the random initial states"""
    simulate_only: bool = False
    """skip check_closed_loop (falsification by simulation only)"""
    workers: int = 1
    """processes running benchmarks side by side (neuroctl.parallel.map_tasks)"""


def parse(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"one of {', '.join(BENCHMARKS)}",
    )
    p.add_argument("--timeout", type=float, default=Args.timeout, metavar="S")
    p.add_argument("--samples", type=int, default=Args.samples)
    p.add_argument("--seed", type=int, default=Args.seed)
    p.add_argument("--simulate-only", action="store_true")
    p.add_argument("--workers", type=int, default=Args.workers, metavar="N")
    a = p.parse_args(argv)
    unknown = [n for n in a.only if n not in BENCHMARKS]
    if unknown:
        p.error(f"--only: expected names among {', '.join(BENCHMARKS)}, received {unknown}")
    return Args(a.only, a.timeout, a.samples, a.seed, a.simulate_only, a.workers)


def checker():
    """``check_closed_loop`` where this neuroctl has it, else None (imported lazily)."""
    try:
        from neuroctl.verify import check_closed_loop
    except ImportError:
        return None
    return check_closed_loop


@dataclass
class Row:
    name: str
    verdict: str
    semantics: str
    seconds: float
    published: str
    detail: str

    @property
    def agreement(self) -> str:
        expected = {"verified": "holds", "falsified": "violated"}.get(self.published)
        if expected is None:
            return "-"
        if self.verdict == expected:
            return "yes"
        return "WRONG" if self.verdict in ("holds", "violated") else "undecided"


def run_one(name: str, args: Args, check) -> Row:
    bench = BENCHMARKS[name]
    published = bench.published or "none"
    t0 = time.perf_counter()
    # 1. falsification by simulation of the continuous plant (or the discrete map)
    x0, rho, n = search_counterexample(bench, samples=args.samples, seed=args.seed)
    sim_semantics = "discrete" if bench.update is not None else "continuous"
    if rho < 0:
        return Row(
            name,
            "violated",
            f"{sim_semantics} (simulation)",
            time.perf_counter() - t0,
            published,
            f"x0 = {x0.round(6).tolist()}, robustness {rho:.3g}",
        )
    detail = f"{n} simulations, least robustness {rho:.3g}"
    # 2. the decision procedure
    if bench.verifiable and (args.simulate_only or check is None):
        why = "--simulate-only" if args.simulate_only else "no check_closed_loop in neuroctl"
        return Row(name, "unknown", "-", time.perf_counter() - t0, published, f"{detail}; {why}")
    if not bench.verifiable:  # VCAS: nine networks switched by argmax, its own procedure
        r = vcas.verify(bench, timeout=args.timeout)
        return Row(
            name,
            r.status,
            r.semantics,
            time.perf_counter() - t0,
            published,
            f"{detail}; branch and bound on h: {r.intervals} intervals {r.reason}",
        )
    plant, controller, lo, hi, spec, steps = load(name)
    try:
        r = check(plant, controller, lo, hi, spec, steps=steps, timeout=args.timeout)
    except Exception as err:  # noqa: BLE001 - a benchmark row reports the failure and moves on
        return Row(
            name, "error", "-", time.perf_counter() - t0, published, f"{type(err).__name__}: {err}"
        )
    notes = "; ".join(r.notes)
    return Row(
        name,
        r.status,
        r.semantics,
        time.perf_counter() - t0,
        published,
        f"{detail}; {notes}" if notes else detail,
    )


def _run_one(name: str, args: Args) -> Row:
    torch.set_num_threads(1)
    return run_one(name, args, None if args.simulate_only else checker())


def main(argv=None) -> list[Row]:
    args = parse(argv)
    if not DATA.is_dir():
        print(missing_reason("archcomp"))
        return []
    torch.set_num_threads(1)
    names = args.only or list(BENCHMARKS)
    t_wall = time.perf_counter()
    rows = map_tasks(_run_one, [(name, args) for name in names], workers=args.workers)
    t_wall = time.perf_counter() - t_wall
    header = f"{'benchmark':30s} {'neuroctl':9s} {'semantics':24s} {'time':>7s}  "
    header += f"{'published':9s}  agree"
    print(header)
    for row in rows:
        print(
            f"{row.name:30s} {row.verdict:9s} {row.semantics:24s} {row.seconds:6.1f}s  "
            f"{row.published:9s}  {row.agreement:5s}  {row.detail}",
            flush=True,
        )
    tally = [r.agreement for r in rows]
    print(
        f"\nagree {tally.count('yes')}, wrong {tally.count('WRONG')}, undecided "
        f"{tally.count('undecided')}, no published verdict {tally.count('-')}; total "
        f"{sum(r.seconds for r in rows):.1f} s; wall time on {args.workers} worker(s) "
        f"{t_wall:.1f} s"
    )
    return rows


if __name__ == "__main__":
    main()
