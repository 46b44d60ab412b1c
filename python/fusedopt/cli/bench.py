"""``fusedopt bench``: time every optimizer against the NumPy reference, PyTorch and the bus.

The options choose what :func:`fusedopt.bench.run_benchmarks` runs; the figures are
printed as a Markdown table and optionally written as JSON (``--json``) and into
BENCHMARKS.md (``--markdown``). ``python -m fusedopt.bench`` runs this command too.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

import fusedopt
from fusedopt.bench import (
    BACKENDS,
    DEFAULT_SIZES,
    MARK_END,
    MARK_START,
    BenchCheckError,
    Case,
    format_comparison,
    format_markdown,
    format_table,
    many_case,
    model_case,
    overhead_case,
    run_benchmarks,
    size_case,
    variants,
    write_markdown,
)
from fusedopt.cli.common import Command, CommandError, UsageError, output_path

__all__ = ["CASE_KINDS", "COMMAND", "add_arguments", "run"]


def _int_list(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 10,14,20-25, got {text!r}"
        ) from None
    return out


def _sizes(text: str) -> list[int]:
    sizes = _int_list(text)
    for k in sizes:
        if not 0 <= k <= 30:
            raise argparse.ArgumentTypeError(f"size exponents must be in [0, 30], got {k}")
    return sizes


def _threads(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if part.strip() == "all":
            out.append(fusedopt.get_num_threads())
        else:
            out += _int_list(part)
    if any(n < 1 for n in out):
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1, got {text!r}")
    return sorted(set(out))


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        for t in items:
            if t not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown value {t!r}; choose from {', '.join(allowed)}"
                )
        return items

    return parse


def _optimizer_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        variants(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


CASE_KINDS = ("sizes", "many", "model", "overhead")
_DESCRIPTION = (
    "Time one step of every optimizer (fused kernel at 1 and all threads, the NumPy\n"
    "reference, torch.optim when PyTorch is installed) on one tensor of 2^k elements,\n"
    "1000 tensors of 256, a 160-tensor CNN-like model and a 1-element tensor; report\n"
    "µs/step, GB/s, % of a trivial kernel with the same read/write pattern (the bus\n"
    "limit at large sizes) and the speed-ups. Each timed optimizer is checked against\n"
    "the other implementation. Run it on an otherwise idle machine.\n\n"
    "examples:\n  fusedopt bench --quick\n"
    "  fusedopt bench --json bench.json --markdown BENCHMARKS-table.md"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``fusedopt bench`` to ``parser``."""
    parser.add_argument(
        "--optimizers",
        type=_optimizer_names,
        default=None,
        metavar="NAMES",
        help="comma-separated optimizers or variants (adam, adam-amsgrad, sgd-momentum, ...); "
        "default: all",
    )
    parser.add_argument(
        "--cases",
        type=_choices(CASE_KINDS),
        default=list(CASE_KINDS),
        metavar="KINDS",
        help="which cases: sizes (one tensor of 2^k), many (1000x256), model (160 tensors, "
        "11.2 M), overhead (1 element)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        metavar="EXPONENTS",
        help="single-tensor sizes as exponents of 2, e.g. 10,16,20-25 "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; --quick: 10,16,20)",
    )
    parser.add_argument(
        "--dtypes",
        type=_choices(("float32", "float64")),
        default=None,
        metavar="DTYPES",
        help="float32,float64 (default both; --quick: float32)",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="COUNTS",
        help="thread counts, e.g. 1,2 or 1,all (all = fusedopt.get_num_threads(), which "
        "honours OMP_NUM_THREADS); default 1,all",
    )
    parser.add_argument(
        "--backends",
        type=_choices(BACKENDS),
        default=list(BACKENDS),
        metavar="BACKENDS",
        help="fused, numpy, torch (torch is skipped when PyTorch is not installed)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats, median (default 5; --quick: 3)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds each repeat lasts at least (default 0.02; --quick: 0.005)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: other defaults for the four options above",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random arrays")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="write the tables with the machine and the command; in a file that has the "
        f"lines {MARK_START} and {MARK_END} (BENCHMARKS.md), only that section is replaced",
    )
    parser.add_argument(
        "--compare",
        metavar="OLD.json",
        help="also print the fused step times against those of an earlier --json run",
    )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the check of each timed optimizer against the other implementation",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``fusedopt bench`` from parsed :func:`add_arguments` options."""
    quick = args.quick

    def pick(given: Any, default: Any, quick_default: Any) -> Any:
        return given if given is not None else quick_default if quick else default

    sizes: list[int] = pick(args.sizes, list(DEFAULT_SIZES), [10, 16, 20])
    dtypes: list[str] = pick(args.dtypes, ["float32", "float64"], ["float32"])
    repeats: int = pick(args.repeats, 5, 3)
    min_time: float = pick(args.min_time, 0.02, 0.005)
    if repeats < 1 or min_time < 0:
        raise UsageError("--repeats must be >= 1, --min-time >= 0")
    # Every file is checked before the run (minutes), not found wanting after it.
    json_out = output_path(args.json, "--json") if args.json else None
    markdown_out = output_path(args.markdown, "--markdown") if args.markdown else None
    old = _read_json(args.compare, "--compare") if args.compare else None
    cases: list[Case] = []
    if "sizes" in args.cases:
        cases += [size_case(k) for k in sizes]
    if "many" in args.cases:
        cases.append(many_case())
    if "model" in args.cases:
        cases.append(model_case())
    if "overhead" in args.cases:
        cases.append(overhead_case())
    try:
        report = run_benchmarks(
            args.optimizers,
            cases,
            dtypes,
            args.threads,
            args.backends,
            repeats=repeats,
            min_time=min_time,
            check=args.check,
            progress=args.progress,
            seed=args.seed,
        )
    except BenchCheckError as exc:
        raise CommandError(f"check failed: {exc}") from exc
    report.meta["command"] = _command_line()
    print(format_table(report))
    load = report.meta.get("loadavg_start")
    if load and load[0] > 0.5:
        print(
            f"\nwarning: the load average was {load[0]:.1f} at the start: other processes were "
            "running, so these timings (above all the multi-thread ones) are unreliable",
            file=sys.stderr,
        )
    if "torch" in args.backends and report.meta.get("torch") is None:
        print("\n(PyTorch is not installed: no torch column)")
    try:
        if json_out is not None:
            with open(json_out, "w", encoding="utf-8") as f:
                json.dump(report.to_json(), f, indent=1)
        if markdown_out is not None:
            write_markdown(str(markdown_out), format_markdown(report, report.meta["command"]))
    except OSError as exc:
        raise CommandError(f"cannot write {exc.filename}: {exc.strerror or exc}") from exc
    if old is not None:
        print("\n" + format_comparison(old, report.to_json()))
    return 0


def _read_json(path: str, option: str) -> dict[str, Any]:
    """The JSON of an earlier ``--json`` run; :class:`UsageError` if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"{option} {path}: not a JSON file ({exc})") from exc
    if not isinstance(data, dict) or "results" not in data:
        raise UsageError(f"{option} {path}: not the JSON of 'fusedopt bench --json'")
    return data


def _command_line() -> str:
    """The command that is running, as one would type it again."""
    path = os.path.normpath(sys.argv[0])
    prog = os.path.basename(path)
    if path.endswith(os.path.join("bench", "__main__.py")):
        prog = "python -m fusedopt.bench"
    elif prog == "__main__.py":
        prog = "python -m fusedopt"
    return " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


COMMAND = Command(
    "bench",
    "time every optimizer: µs/step, GB/s, %% of the bus limit, vs NumPy and PyTorch",
    _DESCRIPTION,
    add_arguments,
    run,
)
