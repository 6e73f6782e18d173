"""The ``neuroctl`` command's rules between options: which options go together, and that the
seeds of ``train --seeds`` differ (about the command line alone; the values are checked by the
parser, :mod:`neuroctl._cli_parser`, and by the library). A broken rule is raised as
:class:`~neuroctl._cli_parser.ParseError`, reported by :func:`neuroctl.cli.main` as one line
(exit 2).
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from ._cli_parser import ParseError

__all__ = ["check_options"]

_CLOSED_LOOP_OPTIONS = (
    "initial_lower",
    "initial_upper",
    "steps",
    "safe_lower",
    "safe_upper",
    "window",
    "goal_lower",
    "goal_upper",
    "at",
    "eventually",
    "semantics",
)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _check_verify(args: argparse.Namespace) -> None:
    """``verify`` asks one question: a bound on the command over a box (the default),
    ``--closed-loop``, ``--roa`` or ``--instances``; each takes its own options and no other's.
    The values themselves are checked by the library (:mod:`neuroctl.verify_env`)."""

    def fail(message: str) -> NoReturn:
        raise ParseError("neuroctl verify", message)

    def need_env_and_controller(mode: str) -> None:
        if args.env is None or args.controller is None:
            fail(
                f"env, -c/--controller: expected an environment id and a controller {mode}, "
                f"received env={args.env!r}, controller={args.controller!r}"
            )

    if args.closed_loop and args.roa:
        fail("--roa: not allowed with --closed-loop (one question per command), received both")
    if args.closed_loop:
        for dest in ("instances", "vnnlib", "max_abs", "output_lower", "output_upper", "lower",
                     "upper", "workers", "ray"):  # fmt: skip
            value = getattr(args, dest)
            if value is not None:
                fail(
                    f"{_flag(dest)}: not allowed with --closed-loop (the closed-loop property is "
                    f"given by --safe-*/--goal-* over the plant's states), received {_shown(value)}"
                )
        need_env_and_controller("with --closed-loop")
        for dest in ("initial_lower", "initial_upper", "steps"):
            if getattr(args, dest) is None:
                fail(f"{_flag(dest)}: required with --closed-loop, received none")
        return
    for dest in _CLOSED_LOOP_OPTIONS:
        value = getattr(args, dest)
        if value is not None:
            fail(
                f"{_flag(dest)}: a closed-loop option, only with --closed-loop, received "
                f"{_shown(value)}"
            )
    if args.instances is not None:
        for flag, value in (
            ("env", args.env),
            ("--controller", args.controller),
            ("--vnnlib", args.vnnlib),
            ("--max-abs", args.max_abs),
            ("--output-lower", args.output_lower),
            ("--output-upper", args.output_upper),
            ("--lower", args.lower),
            ("--upper", args.upper),
        ):
            if value is not None:
                fail(
                    f"{flag}: not allowed with --instances (each row of the file names its "
                    f"network and property), received {value}"
                )
        return
    if args.roa:
        for dest in ("vnnlib", "max_abs", "output_lower", "output_upper", "workers", "ray"):
            value = getattr(args, dest)
            if value is not None:
                fail(f"{_flag(dest)}: not allowed with --roa, received {value}")
        need_env_and_controller("with --roa")
        return
    for flag, value in (("--workers", args.workers), ("--ray", args.ray)):
        if value is not None:
            fail(
                f"{flag}: used with --instances only (one network's branch and bound runs in "
                f"this process), received {value}"
            )
    need_env_and_controller("(or --instances FILE.csv)")


def _check_train(args: argparse.Namespace) -> None:
    """``--no-stop`` is for RL; ``--workers``/``--ray`` spread ``--seeds``, whose seeds differ."""

    def fail(message: str) -> NoReturn:
        raise ParseError("neuroctl train", message)

    if args.algo == "diffsim" and not args.stop_at_criterion:
        fail("--no-stop: applies to --algo ppo and sac only, received --algo diffsim")
    if args.seeds is None:
        for flag, value in (("--workers", args.workers), ("--ray", args.ray)):
            if value is not None:
                fail(f"{flag}: applies to --seeds (runs in parallel), received {value}")
    elif len(set(args.seeds)) != len(args.seeds):
        fail(f"--seeds: expected distinct seeds, received {args.seeds}")


def check_options(args: argparse.Namespace) -> None:
    """The rules between the options of the parsed command (raises :class:`ParseError`)."""
    command = getattr(args, "command", None)
    if command == "verify":
        _check_verify(args)
    elif command == "train":
        _check_train(args)
