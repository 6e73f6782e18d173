"""ACAS Xu (VNN-COMP 2021, 186 instances): neuroctl.verify.check against Marabou, in one run.

For each instance of ``acasxu_instances.csv`` both tools get the same per-instance timeout (the
published 116 s by default). Prints solved counts, wrong answers against the consensus verdicts and
total times, and writes each finished instance to a CSV (atomically: tmp file + os.replace), so a
partial run is kept.

    python benchmarks/bench_acasxu.py --timeout 10 --props 1 2 3 4 --networks 1_1 1_7 2_1 3_3

``--bab-workers N`` measures instead the branch and bound of one instance (the first selected) on
1 and N worker processes, side by side, ``--bab-repeats`` pairs:

    python benchmarks/bench_acasxu.py --networks 2_1 --props 3 --bab-workers 2 --bab-repeats 2
"""

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# one BLAS thread per process (set before numpy loads OpenBLAS): a worker is one core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from neuroctl.parallel import map_tasks  # noqa: E402
from neuroctl.verify import check, load_onnx, read_vnnlib  # noqa: E402
from neuroctl.verify.instances import verify_instance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from benchmarks.data import shared_data  # noqa: E402

DATA = shared_data("acasxu")


@dataclass
class Args:
    timeout: float
    limit: int | None
    props: list
    networks: list
    out: str
    no_marabou: bool
    resume: bool
    workers: int
    bab_workers: int | None
    bab_repeats: int


def parse() -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=None, help="seconds (default: published)")
    p.add_argument("--limit", type=int, default=None, help="run only the first N instances")
    p.add_argument("--props", nargs="*", default=None, help="property numbers, e.g. 1 2")
    p.add_argument("--networks", nargs="*", default=None, help="networks, e.g. 1_1 2_1")
    p.add_argument("--out", default="benchmarks/results_acasxu.csv")
    p.add_argument("--no-marabou", action="store_true")
    p.add_argument(
        "--resume", action="store_true", help="keep the instances already in --out, run the rest"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="processes deciding instances in parallel"
    )
    p.add_argument(
        "--bab-workers",
        type=int,
        default=None,
        help="time the branch and bound of the first selected instance on 1 and N processes",
    )
    p.add_argument("--bab-repeats", type=int, default=1, help="pairs of runs of --bab-workers")
    a = p.parse_args()
    if a.bab_workers is not None and a.bab_workers < 2:
        p.error(f"--bab-workers: expected an int >= 2, received {a.bab_workers}")
    if a.bab_repeats < 1:
        p.error(f"--bab-repeats: expected a positive int, received {a.bab_repeats}")
    return Args(
        a.timeout,
        a.limit,
        a.props,
        a.networks,
        a.out,
        a.no_marabou,
        a.resume,
        a.workers,
        a.bab_workers,
        a.bab_repeats,
    )


def ours(onnx_path, vnnlib_path, timeout):
    return verify_instance(onnx_path, vnnlib_path, timeout, seed=0)


def marabou(onnx_path, vnnlib_path, timeout):
    from maraboupy import Marabou, MarabouCore, MarabouUtils

    t0 = time.perf_counter()
    status = "holds"
    for q in read_vnnlib(vnnlib_path):
        left = int(max(1, round(timeout - (time.perf_counter() - t0))))
        net = Marabou.read_onnx(str(onnx_path))
        x = np.asarray(net.inputVars[0]).reshape(-1)
        y = np.asarray(net.outputVars[0]).reshape(-1)
        for i, v in enumerate(x):
            net.setLowerBound(int(v), float(q.lower[i]))
            net.setUpperBound(int(v), float(q.upper[i]))
        polys = q.spec.unsafe
        if len(polys) == 1:
            C, d = polys[0]
            for row, rhs in zip(C, d):
                nz = np.flatnonzero(row)
                net.addInequality([int(y[j]) for j in nz], [float(row[j]) for j in nz], float(rhs))
        else:
            disj = []
            for C, d in polys:
                eqs = []
                for row, rhs in zip(C, d):
                    eq = MarabouUtils.Equation(MarabouCore.Equation.LE)
                    for j in np.flatnonzero(row):
                        eq.addAddend(float(row[j]), int(y[j]))
                    eq.setScalar(float(rhs))
                    eqs.append(eq)
                disj.append(eqs)
            net.addDisjunctionConstraint(disj)
        opts = Marabou.createOptions(timeoutInSeconds=left, verbosity=0)
        code, _, _ = net.solve(options=opts, verbose=False)
        if code == "sat":
            status = "violated"
            break
        if code != "unsat":
            status = "unknown"
            break
    return status, time.perf_counter() - t0


def bab_speedup(net_id, prop, onnx_path, vnn_path, timeout, workers, repeats):
    """One instance's check() on 1 and ``workers`` processes, alternating; prints the ratio."""
    net = load_onnx(onnx_path)
    queries = read_vnnlib(vnn_path)
    print(f"branch and bound of {net_id} {prop} ({len(queries)} box(es)), timeout {timeout} s")
    times = {1: [], workers: []}
    answers = {}
    for rep in range(repeats):
        for w in (1, workers):
            t0 = time.perf_counter()
            res = [
                check(net, q.lower, q.upper, q.spec, timeout=timeout, workers=w) for q in queries
            ]
            times[w].append(time.perf_counter() - t0)
            answers.setdefault(w, [(r.status, r.stats["boxes"], r.lower_bound) for r in res])
            print(
                f"  pair {rep + 1}, {w} worker(s): {times[w][-1]:.1f} s, "
                f"{[r.status for r in res]}, {sum(r.stats['boxes'] for r in res)} boxes, "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    same = answers[1] == answers[workers]
    t1, tn = min(times[1]), min(times[workers])
    print(
        f"best of {repeats}: 1 worker {t1:.1f} s, {workers} workers {tn:.1f} s, "
        f"speed-up {t1 / tn:.2f}x; same verdicts, boxes and bounds: {same}"
    )


def write_atomic(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def main():
    args = parse()
    torch.set_num_threads(1)
    with open(DATA / "acasxu_vnncomp2021_verdicts.csv") as f:
        truth = {(r["network"], r["property"]): r["consensus_verdict"] for r in csv.DictReader(f)}
    with open(DATA / "vnnlib" / "acasxu_instances.csv") as f:
        instances = [r for r in csv.reader(f) if r]
    use_marabou = not args.no_marabou
    if use_marabou:
        try:
            import maraboupy  # noqa: F401
        except ImportError:
            print("maraboupy not installed: running neuroctl only")
            use_marabou = False
    rows = []
    if args.resume and Path(args.out).is_file():
        with open(args.out) as f:
            rows = [
                {k: float(v) if k.endswith("time") or k == "timeout" else v for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
        print(f"resuming: {len(rows)} instances already in {args.out}")
    done = {(r["network"], r["property"]) for r in rows}
    todo = []
    for onnx_name, prop_file, published in instances:
        net_id = onnx_name.split("_")[2] + "_" + onnx_name.split("_")[3]
        prop = prop_file.removesuffix(".vnnlib")
        if args.props and prop.split("_")[1] not in args.props:
            continue
        if args.networks and net_id not in args.networks:
            continue
        if args.limit is not None and len(rows) + len(todo) >= args.limit:
            break
        if (net_id, prop) in done:
            continue
        timeout = args.timeout if args.timeout is not None else float(published)
        todo.append((net_id, prop, DATA / "onnx" / onnx_name, DATA / "vnnlib" / prop_file, timeout))
    if args.bab_workers is not None:
        if not todo:
            raise SystemExit("--bab-workers: no instance selected")
        net_id, prop, onnx_path, vnn_path, timeout = todo[0]
        bab_speedup(net_id, prop, onnx_path, vnn_path, timeout, args.bab_workers, args.bab_repeats)
        return
    # neuroctl: the instances side by side on --workers processes (results in this order), a
    # chunk at a time so that each finished chunk is written before the next starts (an
    # interrupted run keeps it; --resume goes on from there)
    chunk = 1 if not args.workers or args.workers == 1 else 2 * args.workers
    t_wall = 0.0
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        t0 = time.perf_counter()
        decided = map_tasks(ours, [(o, v, t) for _, _, o, v, t in part], workers=args.workers)
        t_wall += time.perf_counter() - t0
        _record(part, decided, truth, use_marabou, rows, args.out)
    _summary(rows, todo, args, t_wall, use_marabou)


def _record(part, decided, truth, use_marabou, rows, out):
    """Rows of the decided instances (and Marabou's answers on them), written as they come."""
    for (net_id, prop, onnx_path, vnn_path, timeout), (status, sec) in zip(part, decided):
        expected = truth[(net_id, prop)]
        row = {"network": net_id, "property": prop, "expected": expected, "timeout": timeout}
        row["neuroctl"], row["neuroctl_time"] = status, sec
        if use_marabou:
            try:
                row["marabou"], row["marabou_time"] = marabou(onnx_path, vnn_path, timeout)
            except Exception as exc:  # a peer's failure is recorded, not fatal to the run
                print(f"marabou failed on {net_id} {prop}: {type(exc).__name__}: {exc}")
                row["marabou"], row["marabou_time"] = "error", float("nan")
        rows.append(row)
        write_atomic(out, rows)
        print(
            ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
            flush=True,
        )


def _summary(rows, todo, args, t_wall, use_marabou):
    print(
        f"neuroctl wall time of {len(todo)} instances on {args.workers} worker(s): {t_wall:.1f} s"
    )
    tools = ["neuroctl"] + (["marabou"] if use_marabou else [])
    print(f"\n{len(rows)} instances, timeout {rows[0]['timeout'] if rows else '-'} s")
    for tool in tools:
        solved = [r for r in rows if r[tool] in ("holds", "violated")]
        wrong = [r for r in solved if r[tool] != r["expected"]]
        total = np.nansum([r[f"{tool}_time"] for r in rows])
        med = np.median([r[f"{tool}_time"] for r in solved]) if solved else float("nan")
        print(
            f"{tool:9s}: solved {len(solved)}/{len(rows)}, wrong {len(wrong)}, "
            f"total time {total:.1f} s, median time of solved {med:.2f} s"
        )
    for tool in tools:
        print(f"\n{tool} per property: instances, solved, wrong, total time")
        for prop in sorted({r["property"] for r in rows}, key=lambda p: int(p.split("_")[1])):
            of = [r for r in rows if r["property"] == prop]
            solved = [r for r in of if r[tool] in ("holds", "violated")]
            wrong = [r for r in solved if r[tool] != r["expected"]]
            total = np.nansum([r[f"{tool}_time"] for r in of])
            print(f"  {prop:8s} {len(of):4d} {len(solved):4d} {len(wrong):3d} {total:9.1f} s")
        print(f"{tool}: the slowest ten")
        for r in sorted(rows, key=lambda r: -r[f"{tool}_time"])[:10]:
            print(f"  {r['network']} {r['property']}: {r[tool]} in {r[f'{tool}_time']:.1f} s")
    if use_marabou and rows:
        t_ours = np.nansum([r["neuroctl_time"] for r in rows])
        t_mara = np.nansum([r["marabou_time"] for r in rows])
        print(f"total time ratio marabou/neuroctl: {t_mara / max(t_ours, 1e-9):.2f}")


if __name__ == "__main__":
    main()
