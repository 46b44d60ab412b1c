"""The ``fusedopt`` command line: train, find the learning rate, compare rates, plot schedules.

Every command works on scikit-learn's handwritten digits (no download) and a small NumPy
MLP (:mod:`fusedopt.demo`) trained by fusedopt's fused optimizers::

    fusedopt train                      # Adam + cosine schedule, >95% test accuracy in ~1 s
    fusedopt lr-find --out lr_find.png  # the learning-rate range test
    fusedopt compare-lr                 # 1, 0.1, 0.01, 0.001, 0.0001: diverges ... crawls
    fusedopt schedule onecycle --steps 100 --lr 0.1
    fusedopt bench --quick              # time every optimizer (fusedopt.bench)
    fusedopt sweep --lrs 1e-3,1e-2      # optimizers x rates x schedules on Dask

Also ``python -m fusedopt``. The demo needs ``pip install "fusedopt[demo]"`` (scikit-learn,
matplotlib, tqdm, threadpoolctl); a command that lacks one says so in one line.

One module per command (:mod:`~fusedopt.cli.train`, :mod:`~fusedopt.cli.lr_find`,
:mod:`~fusedopt.cli.compare_lr`, :mod:`~fusedopt.cli.schedule`, :mod:`~fusedopt.cli.bench`,
:mod:`~fusedopt.cli.sweep`), each with ``add_arguments(parser)``, ``run(args) -> int``
and a :class:`Command`; what they share is in :mod:`~fusedopt.cli.common` and the
schedule presets in :mod:`~fusedopt.cli.presets`. Adding a command: write such a module
and add its ``COMMAND`` to :data:`COMMANDS`. Raise :class:`UsageError` for a bad argument
(one line, exit code 2) and :class:`CommandError` for a failure (one line, exit code 1).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import fusedopt
from fusedopt._optional import DEMO_EXTRA_HINT, MissingDependencyError
from fusedopt.cli import bench, compare_lr, lr_find, schedule, sweep, train
from fusedopt.cli.common import (
    Command,
    CommandError,
    Formatter,
    Parser,
    UsageError,
    available_optimizers,
)
from fusedopt.cli.presets import SCHEDULES, ScheduleSpec

__all__ = [
    "COMMANDS",
    "SCHEDULES",
    "Command",
    "CommandError",
    "ScheduleSpec",
    "UsageError",
    "available_optimizers",
    "build_parser",
    "main",
]

PROG = "fusedopt"

#: The subcommands, in the order ``--help`` lists them. Append to add one.
COMMANDS: list[Command] = [
    train.COMMAND,
    lr_find.COMMAND,
    compare_lr.COMMAND,
    schedule.COMMAND,
    bench.COMMAND,
    sweep.COMMAND,
]


def build_parser() -> Parser:
    """The ``fusedopt`` argument parser, one subparser per entry of :data:`COMMANDS`."""
    parser = Parser(
        prog=PROG,
        description="fusedopt: PyTorch-style optimizers for NumPy, each step one fused C++ "
        "kernel.\nThe demo commands train a NumPy MLP on scikit-learn's handwritten digits\n"
        f"(needs: {DEMO_EXTRA_HINT}). Start with: fusedopt train",
        formatter_class=Formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {getattr(fusedopt, '__version__', '?')}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for cmd in COMMANDS:
        p = sub.add_parser(
            cmd.name, help=cmd.help, description=cmd.description, formatter_class=Formatter
        )
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run, _parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fusedopt`` command line; returns the exit code (0 ok, 1 failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    prog = args._parser.prog
    try:
        return int(args._run(args))
    except UsageError as exc:
        args._parser.error(str(exc))  # exits with code 2
    except (CommandError, MissingDependencyError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fusedopt ... | head`: stop quietly (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 2  # not reached: Parser.error exits
