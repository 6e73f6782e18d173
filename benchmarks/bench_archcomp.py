"""ARCH-COMP AINNCS closed-loop benchmarks: neuroctl's verdict against the published one.

For each benchmark of ``benchmarks/archcomp`` (plant, controller, initial box, property,
horizon, published verdict) runs :func:`neuroctl.verify.check_closed_loop` and prints the
verdict, what it is about (continuous: the ODE with the command held; discrete: the plant's map),
the time and the agreement: "yes" when a published "verified" is proved for the continuous
plant (or a plant given by its map only) or a published "falsified" comes with a replayed
counterexample, "WRONG" for the opposite answer, "no" when undecided. Writes one CSV row per
benchmark.

    python benchmarks/bench_archcomp.py --timeout 60 --only Docking
"""

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

from archcomp import BENCHMARKS

from neuroctl.verify import check_closed_loop


@dataclass
class Args:
    timeout: float = 60.0
    """seconds per benchmark"""
    only: tuple = ()
    """names (prefixes) of the benchmarks to run; empty: all"""
    seed: int = 0
    """seed of the search for counterexamples"""
    out: str = "benchmarks/results_archcomp.csv"
    """CSV of the results"""


def parse() -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=Args.timeout, help="seconds per benchmark")
    p.add_argument("--only", nargs="*", default=(), help="benchmark names (prefixes)")
    p.add_argument("--seed", type=int, default=Args.seed)
    p.add_argument("--out", default=Args.out)
    a = p.parse_args()
    return Args(a.timeout, tuple(a.only), a.seed, a.out)


def agreement(bench, res) -> str:
    """ "yes", "WRONG", "no" (undecided) or "-" (no published verdict)."""
    if bench.published is None:
        return "-"
    continuous_plant = bench.plant.is_continuous and bench.semantics != "discrete"
    if bench.published == "verified":
        if res.status == "holds":
            return "yes" if res.semantics == "continuous" or not continuous_plant else "no"
        return "WRONG" if res.status == "violated" else "no"
    if res.status == "violated":
        return "yes" if res.counterexample.replay().violated else "no"
    return "WRONG" if res.status == "holds" else "no"


def main(args: Args) -> None:
    rows = []
    print(
        f"{'benchmark':34s} {'published':>10s} {'verdict':>8s} {'semantics':>10s} "
        f"{'time [s]':>9s} {'agree':>6s}"
    )
    for build in BENCHMARKS:
        bench = build()
        if args.only and not any(bench.name.startswith(o) for o in args.only):
            continue
        t0 = time.perf_counter()
        res = check_closed_loop(
            bench.plant,
            bench.controller,
            bench.x_lower,
            bench.x_upper,
            bench.spec,
            steps=bench.steps,
            timeout=args.timeout,
            reference=bench.reference,
            semantics=bench.semantics,
            seed=args.seed,
            **bench.options,
        )
        wall = time.perf_counter() - t0
        agree = agreement(bench, res)
        print(
            f"{bench.name:34s} {bench.published or '-':>10s} {res.status:>8s} "
            f"{res.semantics:>10s} {wall:9.2f} {agree:>6s}"
        )
        for note in res.notes[:2]:
            print(f"    {note}")
        rows.append(
            {
                "benchmark": bench.name,
                "published": bench.published or "",
                "verdict": res.status,
                "semantics": res.semantics,
                "time_s": f"{wall:.3f}",
                "agree": agree,
                "boxes_proved": res.stats["boxes_proved"],
                "boxes_split": res.stats["boxes_split"],
                "notes": " | ".join(res.notes),
            }
        )
    if not rows:
        print("no benchmark selected (benchmarks/archcomp lists none, or --only matched none)")
        return
    wrong = sum(r["agree"] == "WRONG" for r in rows)
    agreed = sum(r["agree"] == "yes" for r in rows)
    print(f"{agreed} of {len(rows)} published verdicts reproduced, {wrong} wrong")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main(parse())
