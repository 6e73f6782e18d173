"""The ``neuroctl`` command: argument parsing, validation and dispatch.

Subcommands
-----------
``demo``      the main job on built-in defaults (ring road and arm, stability, one verification
              query), prints the tables and writes an HTML report (:func:`neuroctl.demo.run`).
``report``    writes the same report without printing the tables.
``simulate``  runs an env in closed loop with a controller and prints its metrics.
``analyze``   stability of the closed loop at the env's operating point (poles, margins, ...).
``verify``    proves (or refutes with a counterexample) a bound on a ReLU controller's command
              over a box of observations; with ``--closed-loop`` a property of the plant with
              the controller in closed loop (safe box, time window, goal), for the continuous
              plant or its discrete map (:func:`neuroctl.verify.check_closed_loop`).
``train``     trains a controller (PPO, SAC or differentiable simulation) and analyzes it.

A controller is a built-in name (``neuroctl simulate ENV --controller list`` lists them) or a saved
network read by :func:`neuroctl.load`: a ``.pt`` state dict with its ``.json`` architecture beside
it (as written by ``neuroctl.train``), a Stable-Baselines3 ``.zip``, an ``.onnx`` or an ``.nnet``
file.

Exit codes
----------
0   success; the property holds; the closed loop is stable
1   the property is violated; the closed loop is unstable
2   usage or input error (unknown env, missing or corrupt file, size mismatch, bad option): one
    line on stderr naming the option, what was expected and what was received
3   undecided: verification timed out ("unknown"); stability marginal or depends on the region
4   internal error (a bug: rerun with ``--debug`` for the traceback and please report it)
130 interrupted (Ctrl-C)
141 the reader of the output went away (``neuroctl ... | head``): the rest is dropped quietly

JSON
----
With ``--json`` the result is one JSON document on stdout; an error is ``{"error": {"type":
"usage" | "internal" | "interrupted", "message": ...}, "exit_code": N}`` on stdout (the one-line
message also goes to stderr). Numbers are JSON numbers; the non-finite floats, which JSON lacks,
are the strings ``"inf"``, ``"-inf"`` and ``"nan"``; a complex number is the pair ``[re, im]``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_parser import JSON_CONVENTION, ParseError, build_parser, option_message  # noqa: F401
from ._cli_rules import check_options
from ._json import jsonable

__all__ = [
    "EXIT_FAIL",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "load_network",
    "main",
]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141

_VERDICT_EXIT = {"stable": EXIT_OK, "unstable": EXIT_FAIL}
_STATUS_EXIT = {"holds": EXIT_OK, "violated": EXIT_FAIL}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


class _Listing(Exception):
    """Not an error: a listing requested by the user (printed, exit 0)."""

    def __init__(self, text: str, data: dict) -> None:
        super().__init__(text)
        self.data = data


def load_network(path):
    """:func:`neuroctl.load` (kept under its former name)."""
    from .files import load

    return load(path)


# --- output --------------------------------------------------------------------------------


def _print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout, under neuroctl's one convention (:mod:`neuroctl._json`:
    non-finite floats as strings, complex numbers as pairs, results by their ``to_dict()``)."""
    print(json.dumps(jsonable(obj), indent=2, allow_nan=False))


# --- commands ----------------------------------------------------------------------------------


def _env_and_controller(args, command: str, *, max_episode_steps: int | None = None):
    from .episodes import controller_listing, load_controller, make_env, require_boxes

    env = make_env(
        args.env, args.env_kwarg, max_episode_steps=max_episode_steps, kwargs_label="-e/--env-kwarg"
    )
    require_boxes(env, command)
    if args.controller == "list":
        raise _Listing(*controller_listing(env))
    return env, load_controller(args.controller, env)


def cmd_simulate(args) -> int:
    from .episodes import simulate_episodes

    # --steps is honoured: the env's time limit is set to it (longer or shorter)
    env, ctrl = _env_and_controller(args, "simulate", max_episode_steps=args.steps)
    result = simulate_episodes(
        env, ctrl, episodes=args.episodes, seed=args.seed, progress=args.progress
    )
    env.close()
    if args.json:
        _print_json(result)
    else:
        print(result.report())
    return EXIT_OK


def cmd_analyze(args) -> int:
    from .episodes import require_static, stability_report

    env, ctrl = _env_and_controller(args, "analyze")
    require_static(ctrl, "analyze")
    report = stability_report(env, ctrl.module, reference=args.target)
    env.close()
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = report.plot()
        try:
            fig.savefig(args.plot, dpi=90)
        except OSError as exc:
            raise UsageError(f"--plot: cannot write {args.plot} ({exc.strerror or exc})") from None
        finally:
            plt.close(fig)
    if args.json:
        out = {"env": env.spec.id, "controller": ctrl.name, **report.to_dict()}
        if args.plot:
            out["plot"] = str(Path(args.plot).resolve())
        _print_json(out)
    else:
        print(f"{env.spec.id} with {ctrl.name} ({ctrl.description})")
        print(repr(report))
        if args.plot:
            print(f"plot: {Path(args.plot).resolve()}")
    return _VERDICT_EXIT.get(report.verdict, EXIT_UNKNOWN)


def _executor(args):
    """The executor of ``--workers N`` / ``--ray ADDRESS`` as a context that shuts it down at
    its end (``None`` inside: this process)."""
    from contextlib import nullcontext

    from .parallel import make_executor

    try:
        executor = make_executor(workers=args.workers, ray=args.ray)
    except ImportError as exc:
        raise UsageError(f"--ray {args.ray}: {exc}") from None
    return nullcontext() if executor is None else executor


def _verify_instances(args) -> int:
    from .verify.instances import verify_instances

    with _executor(args) as executor:
        try:
            rows = verify_instances(args.instances, executor=executor, workers=args.workers)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(f"--instances {args.instances}: {exc}") from None
    if args.json:
        _print_json(rows)
    else:
        from .report import Table

        print(Table.from_rows(rows).to_text())
    statuses = {r["status"] for r in rows}
    if "violated" in statuses:
        return EXIT_FAIL
    return EXIT_UNKNOWN if "unknown" in statuses else EXIT_OK


def _env_and_network(args):
    """The env, the controller and its network (a static one: verification needs a map)."""
    from .episodes import require_static

    env, ctrl = _env_and_controller(args, "verify")
    if ctrl.module is None:
        raise UsageError(f"--controller: expected a network, received {ctrl.name!r} (no network)")
    require_static(ctrl, "verify")
    return env, ctrl


def _print_result(args, env, ctrl, res, title: str, extra: dict | None = None) -> None:
    """The result as JSON (with the env and the controller), or a title and its summary."""
    if args.json:
        _print_json({"env": env.spec.id, "controller": ctrl.name, **(extra or {}), **res.to_dict()})
    else:
        print(f"{env.spec.id} with {ctrl.name}{title}")
        for line in res.summary():
            print(f"  {line}")


def _verify_roa(args) -> int:
    """``verify --roa``: :func:`neuroctl.verify.region_of_attraction` on the env's plant."""
    from .episodes import InputError, require_plant
    from .verify_env import region_of_attraction_box

    env, ctrl = _env_and_network(args)
    plant = require_plant(env, "verify")
    try:
        res = region_of_attraction_box(
            plant, ctrl.module, args.lower, args.upper, timeout=args.timeout
        )
    except InputError:
        raise
    except ValueError as exc:
        raise UsageError(f"--roa: {exc}") from None
    env.close()
    _print_result(args, env, ctrl, res, f": region of attraction, {res.semantics} semantics")
    return EXIT_OK if res.certified else EXIT_UNKNOWN


def _verify_closed_loop(args) -> int:
    """``verify --closed-loop``: a property of the plant and the controller in closed loop."""
    from .episodes import require_plant
    from .verify_env import closed_loop_query

    env, ctrl = _env_and_network(args)
    plant = require_plant(env, "verify --closed-loop")
    query = closed_loop_query(
        plant,
        args.initial_lower,
        args.initial_upper,
        steps=args.steps,
        safe_lower=args.safe_lower,
        safe_upper=args.safe_upper,
        window=args.window,
        goal_lower=args.goal_lower,
        goal_upper=args.goal_upper,
        at_time=args.at,
        eventually_window=args.eventually,
        semantics=args.semantics,
    )
    res = query.check(ctrl.module, timeout=args.timeout, seed=args.seed)
    env.close()
    _print_result(
        args, env, ctrl, res, f" in closed loop: {res.status}", extra={"mode": "closed-loop"}
    )
    if res.counterexample is not None and not args.json:
        print("  --json for the whole counterexample trajectory")
    return _STATUS_EXIT.get(res.status, EXIT_UNKNOWN)


def cmd_verify(args) -> int:
    from .verify_env import verify_env

    # which options go with which question was checked with the parsing (neuroctl._cli_rules)
    if args.closed_loop:
        return _verify_closed_loop(args)
    if args.instances is not None:
        return _verify_instances(args)
    if args.roa:
        return _verify_roa(args)
    env, ctrl = _env_and_network(args)
    res = verify_env(
        env,
        ctrl.module,
        lower=args.lower,
        upper=args.upper,
        max_abs=args.max_abs,
        output_lower=args.output_lower,
        output_upper=args.output_upper,
        vnnlib=args.vnnlib,
        timeout=args.timeout,
        seed=args.seed,
    )
    env.close()
    _print_result(args, env, ctrl, res, f": {res.status}")
    return _STATUS_EXIT.get(res.status, EXIT_UNKNOWN)


def cmd_train(args) -> int:
    from .episodes import make_env, resolve_env_id

    env_id = resolve_env_id(args.env)
    env_kwargs = args.env_kwarg or {}
    make_env(env_id, env_kwargs, kwargs_label="-e/--env-kwarg").close()  # bad keywords: found here
    options: dict = {"activation": args.activation, "steps": args.steps, "out_dir": args.out}
    options["progress"] = sys.stderr.isatty() if args.progress is None else args.progress
    if env_kwargs:
        options["env_kwargs"] = env_kwargs
    if args.algo != "diffsim":
        options["stop_at_criterion"] = args.stop_at_criterion
    # the module:Env-v0 form is kept: the run's summary writes the command that reproduces it
    run_env = args.env if ":" in args.env else env_id
    if args.seeds is not None:
        return _train_seeds(args, run_env, options)
    from .train import train

    result = train(run_env, algo=args.algo, seed=args.seed, **options)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.report(analysis=True))
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _train_seeds(args, env_id: str, options: dict) -> int:
    from .train import train_seeds

    with _executor(args) as executor:
        workers = None if executor is not None else args.workers
        result = train_seeds(
            env_id, args.seeds, algo=args.algo, workers=workers, executor=executor, **options
        )
    page = result.write_report()
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.report())
        print(f"report with the learning curves written to {page}")
    return EXIT_OK


def _run_demo(args, *, print_tables: bool) -> int:
    from . import demo

    result = demo.run(args.out, quick=args.quick, progress=args.progress)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.report(tables=print_tables))
    return EXIT_OK


def cmd_demo(args) -> int:
    return _run_demo(args, print_tables=True)


def cmd_report(args) -> int:
    return _run_demo(args, print_tables=False)


# --- the entry point ---------------------------------------------------------------------------


def _fail(command: str, kind: str, message: str, code: int, as_json: bool) -> int:
    """One line on stderr; with ``--json`` also the error as JSON on stdout."""
    line = f"{command}: {'error' if kind == 'usage' else kind}: {message}"
    kind = {"internal error": "internal"}.get(kind, kind)
    print(line, file=sys.stderr)
    if as_json:
        print(
            json.dumps(
                {
                    "error": {"type": kind, "message": message, "command": command},
                    "exit_code": code,
                },
                indent=2,
            )
        )
    return code


def _quiet_stdout() -> None:
    """After a closed pipe: send what is still buffered to /dev/null (no error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuroctl`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    debug = "--debug" in argv
    command = "neuroctl"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
            check_options(args)
        except ParseError as exc:
            return _fail(exc.prog, "usage", str(exc), EXIT_USAGE, as_json)
        except SystemExit as exc:  # --help, --version
            return int(exc.code or 0)
        if args.command is None:
            commands = "demo, report, simulate, analyze, verify, train"
            message = f"expected a command ({commands}; neuroctl --help), received none"
            return _fail("neuroctl", "usage", message, EXIT_USAGE, as_json)
        command = f"neuroctl {args.command}"
        as_json = bool(getattr(args, "json", False))
        try:
            return int(globals()[f"cmd_{args.func}"](args))
        except _Listing as listing:
            if as_json:
                _print_json(listing.data)
            else:
                print(listing)
            return EXIT_OK
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        return _fail(command, "interrupted", "interrupted", EXIT_INTERRUPTED, as_json)
    except Exception as exc:  # noqa: BLE001 - sorted into input errors and bugs
        from .episodes import InputError
        from .files import LoadError

        if isinstance(exc, (UsageError, InputError, LoadError)):
            return _fail(command, "usage", option_message(str(exc)), EXIT_USAGE, as_json)
        if debug:
            raise
        return _fail(
            command,
            "internal error",
            f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            EXIT_INTERNAL,
            as_json,
        )


if __name__ == "__main__":
    sys.exit(main())
