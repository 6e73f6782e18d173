"""The ``neuroctl`` command's parser: every option, its help, and the checks of its value.

Values are checked while parsing (argparse ``type=`` functions): counts are integers in a
range, numbers finite, seeds in numpy's range, timeouts positive, paths probed for writing
(nothing is left behind), the activation a key of :data:`neuroctl.ACTIVATIONS`; ``-e KEY=VALUE``
pairs are gathered in a dict (each key once). An error is raised as :class:`ParseError`,
reported by :func:`neuroctl.cli.main` as one line (exit 2). A message of the library names its
arguments; :func:`option_message` names the options that give them instead.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import tempfile
from pathlib import Path
from typing import NoReturn

__all__ = ["JSON_CONVENTION", "MAX_SEED", "ParseError", "build_parser", "option_message"]

MAX_STEPS = 10_000_000
MAX_EPISODES = 100_000
MAX_TRAIN_STEPS = 1_000_000_000
MAX_SEED = 2**32 - 1
PLOT_SUFFIXES = (".png", ".pdf", ".svg")

JSON_CONVENTION = (
    'JSON: numbers are JSON numbers; inf, -inf and nan are the strings "inf", "-inf", '
    '"nan"; complex numbers are [re, im] pairs; an error is {"error": {...}, '
    '"exit_code": N}.'
)


# --- values checked while parsing (argparse type= functions) --------------------------------


def _int_in(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{lo}, {hi}], received {text!r}"
            ) from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{lo}, {hi}], received {value}"
            )
        return value

    parse.__name__ = "integer"
    return parse


_count = _int_in(1, MAX_STEPS)
_episodes = _int_in(1, MAX_EPISODES)
_train_steps = _int_in(1, MAX_TRAIN_STEPS)
_seed = _int_in(0, MAX_SEED)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, received {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, received {text}")
    return value


def _bound(text: str) -> float:
    """A side of a box: a number, ``inf`` or ``-inf`` (unconstrained), never ``nan``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, inf or -inf, received {text!r}"
        ) from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number, inf or -inf, received {text}")
    return value


def _time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a finite time >= 0 in seconds, received {text!r}"
        ) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite time >= 0 in seconds, received {text}")
    return value


def _nonnegative(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, received {text}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a finite number of seconds > 0, received {text!r}"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"expected a finite number of seconds > 0, received {text}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text}")
    return value


def _writable_file(text: str) -> Path:
    """A path where a figure can be written (probed now; nothing is left behind)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in {', '.join(PLOT_SUFFIXES)}, received the directory "
            f"{text!r} (give e.g. {str(path / 'poles.png')!r})"
        )
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in {', '.join(PLOT_SUFFIXES)}, received {text!r}"
        )
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a file in an existing folder, received {text!r} ({parent} is not a folder)"
        )
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a writable file, received {text!r} ({exc.strerror or exc})"
        ) from None
    if not existed:
        path.unlink()
    return path


def _writable_dir(text: str) -> Path:
    """A folder that exists or can be created (probed now; nothing is left behind)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder, received the file {text!r}")
    absolute = path.absolute()
    ancestor = next((p for p in [absolute, *absolute.parents] if p.exists()), None)
    if ancestor is None or not ancestor.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a folder that can be created, received {text!r} ({ancestor} is not a folder)"
        )
    try:
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".neuroctl-probe-"))
        if absolute != ancestor:  # can the folder itself be made there?
            absolute.mkdir(parents=True)
            for p in [absolute, *absolute.parents]:
                if p == ancestor:
                    break
                p.rmdir()
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a writable folder, received {text!r} ({exc.strerror or exc})"
        ) from None
    return path


def _existing_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file, received the directory {text!r}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"expected an existing file, received {text!r} (not found)"
        )
    return path


def _activation(text: str) -> str:
    """A hidden activation: a key of :data:`neuroctl.ACTIVATIONS` (imported here, on use: it
    brings torch)."""
    from .controllers import ACTIVATIONS

    if text not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(sorted(ACTIVATIONS))}, received {text!r}"
        )
    return text


class _KeyValues(argparse.Action):
    """``-e KEY=VALUE`` (repeatable) gathered in a dict: VALUE is a Python literal or else a plain
    string; each KEY once."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        pairs = dict(getattr(namespace, self.dest, None) or {})
        key, sep, text = str(values).partition("=")
        if not sep or not key.isidentifier():
            raise argparse.ArgumentError(self, f"expected KEY=VALUE, received {values!r}")
        if key in pairs:
            raise argparse.ArgumentError(self, f"expected each KEY once, received {key!r} twice")
        try:
            pairs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pairs[key] = text  # a plain string
        setattr(namespace, self.dest, pairs)


# --- the options' names in the library's messages ------------------------------------------


# how the library names an argument -> the option of the command line that gives it
_OPTION_NAMES = {
    "env_kwargs": "-e/--env-kwarg",
    "reference": "--target",
    "out_dir": "--out",
    "lower": "--lower",
    "upper": "--upper",
    "max_abs": "--max-abs",
    "output_lower": "--output-lower",
    "output_upper": "--output-upper",
    "vnnlib": "--vnnlib",
    "initial_lower": "--initial-lower",
    "initial_upper": "--initial-upper",
    "steps": "--steps",
    "safe_lower": "--safe-lower",
    "safe_upper": "--safe-upper",
    "window": "--window",
    "goal_lower": "--goal-lower",
    "goal_upper": "--goal-upper",
    "at_time": "--at",
    "eventually_window": "--eventually",
    "semantics": "--semantics",
}
_NAME = "|".join(sorted(map(re.escape, _OPTION_NAMES), key=len, reverse=True))
# names joined as the library joins them: "lower/upper", "lower and upper", "at_time, ..."
_NAMES = rf"(?:{_NAME})(?:(?:/|, | and )(?:{_NAME}))*"
_LEADING_NAMES = re.compile(rf"^{_NAMES}(?=[:= ])")
# later in the message, names stand between spaces and punctuation (not inside a path)
_NAMES_IN_TEXT = re.compile(rf"(?<=[\s(,]){_NAMES}(?=[\s,):=]|$)")
_ONE_NAME = re.compile(rf"(?<!\w)(?:{_NAME})(?!\w)")


def option_message(message: str) -> str:
    """A library message that starts with the names of its arguments, with the option names of
    the command line instead (there and wherever the message names them again): what
    :func:`neuroctl.cli.main` reports for an input error the library raised."""
    if not _LEADING_NAMES.match(message):
        return message

    def options(match: re.Match) -> str:
        return _ONE_NAME.sub(lambda m: _OPTION_NAMES[m.group(0)], match.group(0))

    message = _LEADING_NAMES.sub(options, message)
    return _NAMES_IN_TEXT.sub(options, message)


# --- the parser --------------------------------------------------------------------------------


_NEGATIVE_NUMBER = re.compile(
    r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE
)


class ParseError(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are raised (one line, exit 2, JSON when asked).

    Every negative number is a value, not an option: ``--lower -1e-3`` and ``--target -inf``
    (argparse alone takes only ``-1`` and ``-0.5`` for numbers).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise ParseError(self.prog, message)


def _parallel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="local worker processes for independent pieces of work (default: one process)",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the pieces on a Ray cluster: 'auto' joins the one running on this machine, "
        "ray://HOST:10001 a remote one, 'local' starts one here with --workers CPUs "
        '(pip install "neuroctl[dist]")',
    )


def _add_env_options(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    # optional: env and controller may be left out (verify --instances names its own networks)
    p.add_argument(
        "env",
        nargs="?" if optional else None,
        help="environment id: neuroctl/Arm-v0, Arm2Link-v0, RingRoad-v0 (the prefix is "
        "optional), any id registered with Gymnasium, or module:Env-v0",
    )
    p.add_argument(
        "-c",
        "--controller",
        required=not optional,
        help="built-in name ('list' shows them) or a network file (.pt with its .json, .zip, "
        ".onnx, .nnet)",
    )
    p.add_argument(
        "-e",
        "--env-kwarg",
        action=_KeyValues,
        metavar="KEY=VALUE",
        help="keyword for gymnasium.make, e.g. -e ring_length=230 -e n_av=0 (repeatable; VALUE "
        "is a Python literal or a plain string)",
    )
    p.add_argument(
        "--seed", type=_seed, default=0, help=f"seed in [0, {MAX_SEED}] (default %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )


def _closed_loop_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "closed loop",
        "with --closed-loop: a property of the plant with the controller in closed loop, from "
        "every state of the initial box (neuroctl.verify.check_closed_loop). Boxes are over the "
        "plant's states, 1 value (for all) or n_states values; inf/-inf leave a side open.",
    )
    g.add_argument(
        "--closed-loop",
        action="store_true",
        help="decide a closed-loop property instead of a bound on the command",
    )
    for side in ("lower", "upper"):
        g.add_argument(
            f"--initial-{side}",
            type=_finite,
            nargs="+",
            default=None,
            help=f"{side} corner of the initial box of states (required)",
        )
    g.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="horizon in control periods (required); the horizon is STEPS * dt seconds",
    )
    for side in ("lower", "upper"):
        g.add_argument(
            f"--safe-{side}",
            type=_bound,
            nargs="+",
            default=None,
            help=f"{side} side of the safe box: always inside it (between samples too for a "
            "continuous plant)",
        )
    g.add_argument(
        "--window",
        type=_time,
        nargs=2,
        default=None,
        metavar=("T0", "T1"),
        help="safe only for t in [T0, T1] seconds (default the whole horizon)",
    )
    for side in ("lower", "upper"):
        g.add_argument(
            f"--goal-{side}",
            type=_bound,
            nargs="+",
            default=None,
            help=f"{side} side of the goal box (with --at or --eventually)",
        )
    g.add_argument(
        "--at", type=_time, default=None, metavar="T", help="in the goal box at time T seconds"
    )
    g.add_argument(
        "--eventually",
        type=_time,
        nargs=2,
        default=None,
        metavar=("T0", "T1"),
        help="in the goal box at some sampling instant of [T0, T1] seconds",
    )
    g.add_argument(
        "--semantics",
        choices=("continuous", "discrete"),
        default=None,
        help="continuous: the plant's ODE with the command held over each period (default for "
        "a plant with rhs); discrete: the plant's map (default, and the only choice, for a "
        "plant defined by an update)",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="neuroctl",
        description="Neural controllers in closed loop: simulate, analyze, verify, train.",
        epilog="exit codes: 0 holds/stable/ok, 1 violated/unstable, 2 usage or input error, "
        "3 unknown/undecided, 4 internal error, 130 interrupted, 141 output pipe closed. "
        + JSON_CONVENTION,
    )
    parser.add_argument("--version", action="version", version=f"neuroctl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def report_options(p, *, json_option: bool):
        p.add_argument(
            "--out",
            type=_writable_dir,
            default="neuroctl-report",
            help="report folder: new, or holding an earlier report (default %(default)s)",
        )
        p.add_argument("--quick", action="store_true", help="shorter simulations (for tests)")
        if json_option:
            p.add_argument("--json", action="store_true", help="print JSON instead of tables")
        _progress_option(p)

    p = sub.add_parser(
        "demo",
        help="the main job: ring road and arm, stability, verification, HTML report",
        description="The main job on built-in defaults; prints the tables, writes the report.",
        epilog=JSON_CONVENTION,
    )
    report_options(p, json_option=True)
    p.set_defaults(func="demo")

    p = sub.add_parser(
        "report",
        help="write the demo's HTML report without printing tables",
        description="The demo's HTML report, without printing its tables.",
    )
    report_options(p, json_option=False)
    p.set_defaults(func="report", json=False)

    p = sub.add_parser(
        "simulate",
        help="run an env in closed loop and print its metrics",
        description="Closed-loop episodes of an env with a controller, and their metrics.",
        epilog=JSON_CONVENTION,
    )
    _add_env_options(p)
    p.add_argument(
        "--steps",
        type=_count,
        default=None,
        help=f"steps per episode, 1..{MAX_STEPS} (default: the env's time limit); the time "
        "limit is set to STEPS, longer or shorter; an episode that terminates stops earlier",
    )
    p.add_argument(
        "--episodes",
        type=_episodes,
        default=1,
        help=f"episodes, 1..{MAX_EPISODES}, seeds SEED..SEED+EPISODES-1 (default 1)",
    )
    _progress_option(p)
    p.set_defaults(func="simulate")

    p = sub.add_parser(
        "analyze",
        help="stability of the closed loop at the operating point",
        description="Poles, damping, step response, margins and validity radius of the closed "
        "loop linearized at the env's operating point, per activation region.",
        epilog=JSON_CONVENTION,
    )
    _add_env_options(p)
    p.add_argument(
        "--target",
        type=_finite,
        nargs="+",
        default=None,
        help="reference for the operating point (e.g. the arm's target angle, rad): finite "
        "numbers, one per reference of the plant",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        type=_writable_file,
        default=None,
        help=f"save the pole map and step responses to FILE ({', '.join(PLOT_SUFFIXES)})",
    )
    p.set_defaults(func="analyze")

    p = sub.add_parser(
        "verify",
        help="prove a bound on the controller's command over a box",
        description="Prove that a ReLU controller's command stays within bounds for every "
        "observation of a box, or find a counterexample. Bounds are non-strict: a command "
        "exactly at the bound holds. Without --lower/--upper the env's observation box is used "
        "where it is finite. What is proved is a property of the network's map alone (every "
        "observation of the box, no plant dynamics involved); closed-loop properties of the plant "
        "with the controller, in continuous time (the ODE under zero-order hold) or for the "
        "plant's discrete map, are decided by neuroctl.verify.check_closed_loop.",
        epilog=JSON_CONVENTION,
    )
    _add_env_options(p, optional=True)
    p.add_argument(
        "--instances",
        type=_existing_file,
        default=None,
        metavar="FILE.csv",
        help="decide every instance of a VNN-COMP instances.csv (onnx,vnnlib,timeout per row) "
        "instead of one controller; no env or --controller then",
    )
    _parallel_options(p)
    p.add_argument(
        "--lower",
        type=_finite,
        nargs="+",
        default=None,
        help="lower corner of the observation box, 1 or n_obs finite values (default: the env's "
        "box)",
    )
    p.add_argument(
        "--upper",
        type=_finite,
        nargs="+",
        default=None,
        help="upper corner of the observation box, 1 or n_obs finite values (default: the env's "
        "box)",
    )
    p.add_argument(
        "--max-abs",
        type=_nonnegative,
        nargs="+",
        default=None,
        help="property |u_i| <= MAX_ABS (finite, >= 0; one value or one per command)",
    )
    p.add_argument(
        "--output-lower",
        type=_finite,
        nargs="+",
        default=None,
        help="property u >= OUTPUT_LOWER (finite)",
    )
    p.add_argument(
        "--output-upper",
        type=_finite,
        nargs="+",
        default=None,
        help="property u <= OUTPUT_UPPER (finite, >= OUTPUT_LOWER)",
    )
    p.add_argument(
        "--vnnlib",
        type=_existing_file,
        default=None,
        help="box and property from a VNN-LIB file instead (excludes the options above)",
    )
    p.add_argument(
        "--timeout",
        type=_positive,
        default=60.0,
        help="seconds, finite and > 0; on expiry the answer is 'unknown' (default 60)",
    )
    p.add_argument(
        "--roa",
        action="store_true",
        help="certify a region of attraction of the closed loop (plant's discrete map) instead: "
        "a level set of a quadratic Lyapunov function inside the STATE box given by --lower/"
        "--upper (required then; 1 or n_states values); exit 0 certified, 3 none",
    )
    _closed_loop_options(p)
    p.set_defaults(func="verify")

    p = sub.add_parser(
        "train",
        help="train a controller and analyze the exported policy",
        description="Train a controller, export it as a plain nn.Sequential and analyze it.",
        epilog=JSON_CONVENTION,
    )
    p.add_argument("env", help="environment id (as for simulate)")
    p.add_argument(
        "--algo",
        choices=("ppo", "sac", "td3", "diffsim"),
        default="ppo",
        help="PPO, SAC or TD3 (Stable-Baselines3), or differentiable simulation (default ppo)",
    )
    p.add_argument(
        "--activation", type=_activation, default="relu", help="hidden activation (default relu)"
    )
    p.add_argument(
        "--steps",
        type=_train_steps,
        default=None,
        help=f"env steps (RL) or gradient steps (diffsim), 1..{MAX_TRAIN_STEPS} (default 100000 "
        "env steps, 300 gradient steps); with a registered success criterion, RL stops at the "
        "first check that meets it",
    )
    seed = p.add_mutually_exclusive_group()
    seed.add_argument(
        "--seed", type=_seed, default=0, help=f"seed in [0, {MAX_SEED}] (default %(default)s)"
    )
    seed.add_argument(
        "--seeds",
        type=_seed,
        nargs="+",
        metavar="SEED",
        help="train once per seed (runs in OUT/seed<k>) and report success over the seeds, "
        "with learning curves in OUT/report/index.html",
    )
    p.add_argument(
        "--no-stop",
        dest="stop_at_criterion",
        action="store_false",
        help="RL: train for all --steps even after the success criterion is met",
    )
    p.add_argument(
        "--out", type=_writable_dir, required=True, help="run folder (checkpoints, logs, policy)"
    )
    p.add_argument(
        "-e",
        "--env-kwarg",
        action=_KeyValues,
        metavar="KEY=VALUE",
        help="keyword for gymnasium.make (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _parallel_options(p)
    _progress_option(p)
    p.set_defaults(func="train")
    return parser
