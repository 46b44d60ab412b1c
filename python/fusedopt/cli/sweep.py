"""``fusedopt sweep``: a learning-rate search, each run independent, on a Dask cluster.

Optimizers x learning rates x schedules, the rates given (``--lrs``) or drawn log-uniformly
from a range (``--lr-range LOW,HIGH --samples N --seed S``), each run training the digits
MLP from scratch (:func:`fusedopt.demo.sweep.run_one`). By default the runs go to an
embedded local Dask cluster (nothing to start); ``--scheduler tcp://HOST:PORT`` uses a
running one, ``--serial`` no Dask at all (the same numbers, bit for bit). Results are
appended to a JSON Lines file as they arrive (``--results``), and a rerun with the same
file skips the runs already in it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusedopt.cli.common import (
    Command,
    CommandError,
    UsageError,
    available_optimizers,
    output_path,
    parse_kwargs,
    positive_int,
    run_spec,
)
from fusedopt.cli.compare_lr import optimizer_list
from fusedopt.cli.presets import SCHEDULES, make_schedule
from fusedopt.demo.sweep import (
    CONNECT_TIMEOUT,
    ResultsFileError,
    RunConfig,
    SweepSpec,
    dask_client,
    default_workers,
    describe_executor,
    format_result,
    log_uniform,
    run_sweep,
)

__all__ = [
    "COMMAND",
    "DEFAULT_LRS",
    "add_arguments",
    "make_spec",
    "run",
    "schedule_list",
    "validate",
]

#: The learning rates of the default grid.
DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001, 0.0001)


def _float_list(text: str, option: str) -> list[float]:
    """``"1e-3,1e-2"`` -> ``[0.001, 0.01]``: positive finite numbers, each once."""
    parts = [p.strip() for p in text.split(",")]
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise UsageError(f"{option}: expected comma-separated numbers, got {p!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise UsageError(f"{option}: a learning rate must be a positive number, got {p}")
        out.append(v)
    if len(set(out)) != len(out):
        raise UsageError(f"{option}: a learning rate is given twice ({text})")
    return out


def schedule_list(text: str) -> list[str]:
    """``--schedules``: names of :data:`SCHEDULES` (or fusedopt.lr_scheduler classes)."""
    from fusedopt.cli.presets import resolve_schedule

    names = [p.strip() for p in text.split(",")]
    if not all(names):
        raise UsageError(f"--schedules: an empty name in {text!r} (use A,B)")
    for n in names:
        try:
            resolve_schedule(n)
        except UsageError as exc:
            raise UsageError(f"--schedules: {exc}") from None
    if len({n.lower() for n in names}) != len(names):
        raise UsageError(f"--schedules: a schedule is given twice ({text})")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt sweep``."""
    names = ", ".join(available_optimizers())
    p.add_argument(
        "--optimizers",
        default="Adam,SGD",
        metavar="A,B,...",
        help=f"optimizers to sweep, comma-separated, case-insensitive ({names})",
    )
    p.add_argument(
        "--lrs",
        default=None,
        metavar="LR,LR,...",
        help="learning rates of a grid search (default: 1,0.1,0.01,0.001,0.0001)",
    )
    p.add_argument(
        "--lr-range",
        default=None,
        metavar="LOW,HIGH",
        help="a random search instead: --samples rates drawn log-uniformly from LOW..HIGH",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="how many rates --lr-range draws (default 8), shared by every optimizer",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the rates drawn and of every run's split, init and batch order",
    )
    p.add_argument(
        "--schedules",
        default="constant",
        metavar="A,B",
        help=f"lr schedules, comma-separated: {', '.join(SCHEDULES)}",
    )
    p.add_argument("--epochs", type=positive_int, default=5, help="passes per run")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per step")
    p.add_argument(
        "--hidden", type=positive_int, nargs="+", default=[256], metavar="N", help="hidden widths"
    )
    p.add_argument(
        "--n-train", type=positive_int, default=None, metavar="N", help="use N training images"
    )
    p.add_argument("--backend", choices=("fused", "numpy"), default="fused", help="kernels")
    p.add_argument(
        "--opt-arg",
        action="append",
        metavar="NAME=VALUE",
        help="extra argument of every optimizer, repeatable (SGD has momentum=0.9 here)",
    )
    p.add_argument(
        "--results",
        default="sweep_results.jsonl",
        metavar="PATH",
        help="JSON Lines file the results are appended to; runs already in it are skipped",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster)",
    )
    where.add_argument(
        "--serial", action="store_true", help="no Dask: every run in this process, in order"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"workers of the local Dask cluster (default: {default_workers()}, "
        "one per core, at most 2)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="a line per finished run instead of a progress bar",
    )


def make_spec(args: argparse.Namespace) -> SweepSpec:
    """The grid the options describe (every optimizer name resolved, rates parsed)."""
    names = optimizer_list(args.optimizers)
    assert names is not None
    if args.lrs is not None and args.lr_range is not None:
        raise UsageError("give --lrs or --lr-range, not both")
    if args.samples is not None and args.lr_range is None:
        raise UsageError("--samples needs --lr-range LOW,HIGH")
    if "lr" in parse_kwargs(args.opt_arg, "--opt-arg"):
        raise UsageError("--opt-arg lr=...: give the rates with --lrs or --lr-range")
    schedules = schedule_list(args.schedules)
    if args.lr_range is None:
        lrs = _float_list(args.lrs, "--lrs") if args.lrs is not None else list(DEFAULT_LRS)
        return run_spec(args, names, lrs, schedules)
    bounds = _float_list(args.lr_range, "--lr-range")
    if len(bounds) != 2:
        raise UsageError(f"--lr-range: expected LOW,HIGH, got {args.lr_range!r}")
    low, high = bounds
    if not high > low:
        raise UsageError(f"--lr-range: HIGH ({high:g}) must be greater than LOW ({low:g})")
    samples = 8 if args.samples is None else args.samples
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    return run_spec(args, names, log_uniform(low, high, samples, args.seed), schedules)


def validate(configs: Sequence[RunConfig]) -> None:
    """Build every optimizer x schedule once on a dummy array, before any run starts:
    a bad ``--opt-arg`` or schedule is a :class:`UsageError` now, not a failed run."""

    classes = available_optimizers()
    seen = set()
    for cfg in configs:
        if (cfg.optimizer, cfg.schedule) in seen:
            continue
        seen.add((cfg.optimizer, cfg.schedule))
        try:
            opt = classes[cfg.optimizer](
                [np.zeros(2)], backend=cfg.backend, lr=cfg.lr, **dict(cfg.options)
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"cannot build {cfg.optimizer}: {exc}") from exc
        make_schedule(cfg.schedule, opt, cfg.lr, 100, {})


def _runs(n: int) -> str:
    """``"1 run"``, ``"2 runs"``."""
    return f"{n} run{'s' if n != 1 else ''}"


def _summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The best run of each optimizer, best first; then the optimizers that only diverged."""
    best: dict[str, Mapping[str, Any]] = {}
    count: dict[str, list[int]] = {}
    for r in results:
        name = r["config"]["optimizer"]
        c = count.setdefault(name, [0, 0])
        c[0] += 1
        c[1] += bool(r["diverged"])
        if r["diverged"]:
            continue
        old = best.get(name)
        if old is None or (r["test_accuracy"], -r["train_loss"]) > (
            old["test_accuracy"],
            -old["train_loss"],
        ):
            best[name] = r
    col = max([9, *(len(n) for n in count)])
    lines = [
        "best run per optimizer, by final test accuracy:",
        f"{'optimizer':<{col}}  {'lr':>9}  {'schedule':<14} {'test acc':>8} {'train loss':>10}"
        f"  {'diverged':>8}",
    ]
    order = sorted(best, key=lambda n: -best[n]["test_accuracy"])
    for name in order:
        r = best[name]
        n, d = count[name]
        lines.append(
            f"{name:<{col}}  {r['config']['lr']:>9.3g}  {r['config']['schedule']:<14} "
            f"{r['test_accuracy']:>8.2%} {r['train_loss']:>10.4f}  {f'{d}/{n}':>8}"
        )
    for name in count:
        if name not in best:
            n, d = count[name]
            lines.append(f"{name:<{col}}  {'-':>9}  {'-':<14} {'diverged':>8} {'-':>10}  {d}/{n}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the sweep, print progress and the best run per optimizer."""
    spec = make_spec(args)
    configs = spec.configs()
    path = output_path(args.results, "--results")
    if args.workers is not None and (args.scheduler is not None or args.serial):
        raise UsageError("--workers sizes the local Dask cluster: not with --scheduler/--serial")
    validate(configs)
    n_opt, n_lr, n_sched = len(spec.optimizers), len(spec.lrs), len(spec.schedules)
    how = "random search" if args.lr_range is not None else "grid"
    print(
        f"sweep ({how}): {n_opt} optimizer{'s' * (n_opt != 1)} x {n_lr} learning rate"
        f"{'s' * (n_lr != 1)} x {n_sched} schedule{'s' * (n_sched != 1)} = {len(configs)} runs "
        f"of {spec.epochs} epochs"
    )
    try:
        return _sweep(args, configs, path)
    except ResultsFileError as exc:
        raise CommandError(str(exc)) from exc


def _sweep(args: argparse.Namespace, configs: list[RunConfig], path: Any) -> int:
    from fusedopt.demo.sweep import read_results

    keys = {c.key for c in configs}
    done = {r["key"] for r in read_results(path)} & keys
    if done:
        print(f"skipping {len(done)} of {len(configs)} runs already in {path}")
    todo = len(keys) - len(done)

    def line(rec: dict[str, Any], k: int, total: int) -> None:
        if args.no_progress:
            print(f"[{k:>{len(str(total))}}/{total}] {format_result(rec)}", flush=True)

    if todo == 0 or args.serial:  # run_one limits fusedopt and BLAS to one thread
        if todo:
            print(f"running {_runs(todo)} {describe_executor(None)}", flush=True)
        result = run_sweep(configs, path, None, progress=not args.no_progress, on_result=line)
    else:
        try:
            with dask_client(args.scheduler, args.workers, timeout=CONNECT_TIMEOUT) as client:
                print(f"running {_runs(todo)} {describe_executor(client)}", flush=True)
                result = run_sweep(
                    configs, path, client, progress=not args.no_progress, on_result=line
                )
        except ConnectionError as exc:
            raise CommandError(str(exc)) from exc
    print()
    for text in _summary(result.results):
        print(text)
    print()
    print(
        f"{_runs(len(result.results))}: {result.ran} ran, {result.skipped} skipped "
        f"(already done); results in {path}"
    )
    return 0


COMMAND = Command(
    "sweep",
    "search learning rates x optimizers x schedules, the runs on a Dask cluster",
    "Train the digits MLP once per optimizer x learning rate x schedule, each run\n"
    "independent and seeded, on a Dask cluster: an embedded local one by default\n"
    "(--workers N), a running one with --scheduler tcp://HOST:PORT, or none with\n"
    "--serial (the same numbers, bit for bit). Each result is appended to --results\n"
    "(JSON Lines) as it arrives; a rerun with the same file skips what is done.\n"
    'Dask: pip install "fusedopt[dask]".\n\n'
    "examples:\n  fusedopt sweep --optimizers Adam,SGD --lrs 1e-3,1e-2,1e-1 --schedules cosine\n"
    "  fusedopt sweep --lr-range 1e-4,1 --samples 16 --seed 1 --workers 4\n"
    "  fusedopt sweep --scheduler tcp://10.0.0.5:8786 --results runs.jsonl",
    add_arguments,
    run,
)
