"""``fusedopt compare-lr``: train with several learning rates and compare them.

With one optimizer (``--optimizer``, default Adam): a verdict per lr and the loss and
accuracy curves. With several (``--optimizers Adam,SGD,Adagrad``): the whole grid, and
final test accuracy against lr, one line per optimizer: how wide each one's good range is.

Each run is a :class:`fusedopt.demo.sweep.RunConfig` trained by
:func:`fusedopt.demo.sweep.run_one` (with its curves): in this process, one after the other,
by default; on a Dask cluster with ``--workers N`` (a local one) or ``--scheduler ADDRESS``
(a running one), the same numbers bit for bit (``fusedopt sweep`` runs the same way).
"""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusedopt._registry import optimizer_classes
from fusedopt.cli.common import (
    Command,
    CommandError,
    UsageError,
    add_model_arguments,
    available_optimizers,
    data_and_model,
    describe_optimizer,
    describe_run,
    figure_path,
    make_optimizer,
    optimizer_name,
    parse_kwargs,
    plotting,
    positive_float,
    positive_int,
    progress_note,
    run_spec,
    save_figure,
    training_threads,
)
from fusedopt.cli.presets import make_schedule
from fusedopt.demo import History, TrainingDiverged
from fusedopt.demo.sweep import (
    CONNECT_TIMEOUT,
    RunConfig,
    dask_client,
    describe_executor,
    history_of,
    run_one,
    run_sweep,
)

__all__ = [
    "COMMAND",
    "DEFAULT_LRS",
    "add_arguments",
    "learning_rates",
    "optimizer_list",
    "run",
]

#: The learning rates compared by default: diverges ... crawls.
DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001, 0.0001)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt compare-lr``."""
    add_model_arguments(p, lr_help=None)
    # --optimizer's default is applied in run(), so that giving it with --optimizers is an error
    single = next(a for a in p._actions if a.dest == "optimizer")
    single.help = f"{single.help} (default: {single.default}; or use --optimizers)"
    p.set_defaults(optimizer=None, default_optimizer=single.default)
    p.add_argument(
        "--optimizers",
        default=None,
        metavar="A,B,...",
        help="compare several optimizers (comma-separated names, case-insensitive) over "
        "the same rates: final test accuracy against lr, one line each; replaces --optimizer",
    )
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--lrs",
        type=positive_float,
        nargs="+",
        default=None,
        metavar="LR",
        help="learning rates to compare (default: 1 0.1 0.01 0.001 0.0001)",
    )
    rates.add_argument(
        "--lr-range",
        type=positive_float,
        nargs=3,
        default=None,
        metavar=("LO", "HI", "N"),
        help="N learning rates spaced evenly in log from LO to HI (N an integer >= 2)",
    )
    p.add_argument("--epochs", type=positive_int, default=10, help="passes per run")
    p.add_argument(
        "--schedule",
        default="constant",
        metavar="NAME",
        help="lr schedule for every run (constant isolates the rate's effect)",
    )
    p.add_argument("--schedule-arg", action="append", metavar="NAME=VALUE", help="as in train")
    p.add_argument("--out", default="compare_lr.png", metavar="PNG", help="where to write the plot")
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train the runs on a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: one after the other in this process)",
    )
    where.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="train the runs on a local Dask cluster of N workers",
    )


def learning_rates(args: argparse.Namespace) -> list[float]:
    """The rates to compare: ``--lrs``, ``--lr-range LO HI N`` (geometric) or the default."""
    if args.lr_range is not None:
        lo, hi, n = args.lr_range
        if n != int(n) or n < 2:
            raise UsageError(f"--lr-range: N must be an integer >= 2, got {n:g}")
        if not hi > lo:
            raise UsageError(f"--lr-range: HI ({hi:g}) must be greater than LO ({lo:g})")
        return [float(v) for v in np.geomspace(hi, lo, int(n))]
    lrs = list(args.lrs) if args.lrs is not None else list(DEFAULT_LRS)
    if len(set(lrs)) != len(lrs):
        raise UsageError(f"--lrs: a learning rate is given twice ({' '.join(map(str, lrs))})")
    return lrs


def optimizer_list(text: str | None) -> list[str] | None:
    """``--optimizers``: the exported names, in order; None when not given."""
    if text is None:
        return None
    known = available_optimizers()
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise UsageError(f"--optimizers: an empty name in {text!r} (use A,B,C)")
    out = [optimizer_name(n) for n in names]
    unknown = [n for n, o in zip(names, out, strict=True) if o not in known]
    others = {n.lower(): n for n in optimizer_classes()}
    if unknown and unknown[0].lower() in others:
        raise UsageError(
            f"--optimizers: {others[unknown[0].lower()]} cannot be trained by the command "
            "line's loop (its steps_any_array is False)"
        )
    if unknown:
        raise UsageError(
            f"--optimizers: unknown optimizer {unknown[0]!r} (choose from {', '.join(known)})"
        )
    twice = sorted({o for o in out if out.count(o) > 1})
    if twice:
        raise UsageError(f"--optimizers: {twice[0]} is given twice")
    return out


@dataclass
class _Run:
    lr: float
    history: History
    diverged: TrainingDiverged | None
    verdict: str = ""
    optimizer: str = ""

    @property
    def accuracy(self) -> float:
        """Final test accuracy (NaN for a diverged run)."""
        if self.diverged is not None or not self.history.test_accuracy:
            return math.nan
        return float(self.history.test_accuracy[-1])


def _verdicts(runs: list[_Run]) -> None:
    """Label each run: diverged / best / trains well / too slow / too high (unstable)."""
    ok = [r for r in runs if r.diverged is None]
    if not ok:
        for r in runs:
            r.verdict = "diverged"
        return
    best = max(ok, key=lambda r: (r.history.test_accuracy[-1], -r.history.epoch_losses[-1]))
    best_acc = best.history.test_accuracy[-1]
    for r in runs:
        if r.diverged is not None:
            r.verdict = f"diverged (epoch {r.diverged.epoch}, loss={r.diverged.loss:.3g})"
        elif r is best:
            r.verdict = "best"
        elif r.history.test_accuracy[-1] >= best_acc - 0.02:
            r.verdict = "trains well"
        elif r.lr < best.lr:
            r.verdict = "too slow: crawls"
        else:
            r.verdict = "too high: unstable"


def _smooth(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average."""
    out = np.empty(len(values))
    avg = 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _plot_compare(plt: Any, runs: list[_Run], steps_per_epoch: int, title: str, out: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    first = max(r.history.step_losses[0] for r in runs)
    top = 3 * first
    for k, r in enumerate(runs):
        color = f"C{k % 10}"
        h = r.history
        x = np.arange(1, len(h.step_losses) + 1) / steps_per_epoch
        y = np.minimum(_smooth(h.step_losses), top)
        label = f"lr={r.lr:g}" + (" (diverged)" if r.diverged is not None else "")
        ax_loss.plot(x, y, color=color, lw=1.6, label=label)
        if r.diverged is not None:
            ax_loss.plot(
                x[-1], top if not np.isfinite(y[-1]) else y[-1], "x", color=color, ms=10, mew=2
            )
        if h.test_accuracy:
            ep = np.arange(1, len(h.test_accuracy) + 1)
            ax_acc.plot(ep, 100 * np.asarray(h.test_accuracy), "o-", color=color, ms=3, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylim(top=top)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (smoothed)")
    ax_loss.set_title("training loss")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("held-out accuracy")
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(plt, fig, out)


def run(args: argparse.Namespace) -> int:
    """Train once per lr, print a verdict per lr and plot the curves."""
    with training_threads(args):
        return _compare(args)


def _compare(args: argparse.Namespace) -> int:
    names = optimizer_list(args.optimizers)
    if names is not None and args.optimizer is not None:
        raise UsageError("give --optimizer or --optimizers, not both")
    lrs = learning_rates(args)
    if names is not None:
        return _compare_many(args, names, lrs)
    if args.optimizer is None:
        args.optimizer = args.default_optimizer
    plt = None if args.no_plot else plotting()
    out = None if args.no_plot else figure_path(args.out, "--out")
    user = parse_kwargs(args.schedule_arg, "--schedule-arg")
    progress_note(args.no_progress)
    data, model = data_and_model(args)
    opt = make_optimizer(args, model.params, lrs[0])
    steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
    _, sched_desc, _ = make_schedule(
        args.schedule, opt, lrs[0], args.epochs * steps_per_epoch, user
    )
    print(describe_run(data, model))
    opt_desc = describe_optimizer(opt, with_lr=False)
    print(f"optimizer: {opt_desc}; schedule: {sched_desc}; {args.epochs} epochs per lr")
    configs = run_spec(args, [args.optimizer], lrs, [args.schedule], user).configs()
    runs = _run_all(args, configs, lambda c: f"lr={c.lr:g}")
    _verdicts(runs)
    print()
    print(f"{'lr':>8}  {'outcome':<32} {'train loss':>10} {'test loss':>10} {'test acc':>9}")
    for r in runs:
        h = r.history
        if r.diverged is not None:
            print(f"{r.lr:>8g}  {r.verdict:<32} {'-':>10} {'-':>10} {'-':>9}")
        else:
            print(
                f"{r.lr:>8g}  {r.verdict:<32} {h.epoch_losses[-1]:>10.4f} "
                f"{h.test_loss[-1]:>10.4f} {h.test_accuracy[-1]:>9.2%}"
            )
    if plt is not None and out is not None:
        name = opt_desc.split("(")[0]
        title = f"{name} on the digits MLP, {args.epochs} epochs, {sched_desc} schedule"
        _plot_compare(plt, runs, steps_per_epoch, title, out)
    return 0


def _as_run(record: dict[str, Any]) -> _Run:
    """A result of ``run_one(..., curves=True)`` as a row of the comparison."""
    cfg = record["config"]
    history = history_of(record)
    diverged = None
    if record["diverged"]:
        at = record["diverged_at"]
        diverged = TrainingDiverged(
            at["epoch"], at["step"], at["loss"], cfg["lr"], at["lr"], history
        )
    return _Run(cfg["lr"], history, diverged, optimizer=cfg["optimizer"])


def _run_all(
    args: argparse.Namespace,
    configs: list[RunConfig],
    desc: Callable[[RunConfig], str],
    on_run: Callable[[_Run, int], None] | None = None,
) -> list[_Run]:
    """Train ``configs``: in this process, in order, with a progress bar each (labelled
    ``desc(config)``), or on Dask (``--scheduler``/``--workers``) as they finish. Calls
    ``on_run(run, k)`` after the k-th finished run; returns the runs in the given order."""
    done: dict[str, _Run] = {}

    def finished(record: dict[str, Any]) -> None:
        run_ = _as_run(record)
        done[record["key"]] = run_
        if on_run is not None:
            on_run(run_, len(done))

    if args.scheduler is None and args.workers is None:
        for cfg in configs:  # threads: as --blas-threads set them (training_threads)
            finished(run_one(cfg, curves=True, progress=not args.no_progress, desc=desc(cfg),
                             threads=None))  # fmt: skip
    else:
        try:
            with dask_client(args.scheduler, args.workers, timeout=CONNECT_TIMEOUT) as client:
                print(f"training {len(configs)} runs {describe_executor(client)}", flush=True)
                run_sweep(configs, None, client, curves=True,
                          on_result=lambda record, k, n: finished(record))  # fmt: skip
        except ConnectionError as exc:
            raise CommandError(str(exc)) from exc
    return [done[cfg.key] for cfg in configs]


def _good_range(runs: list[_Run], within: float = 0.02) -> tuple[float, float, int] | None:
    """(lowest, highest lr, count) of the runs within ``within`` of the best accuracy."""
    ok = [r for r in runs if math.isfinite(r.accuracy)]
    if not ok:
        return None
    best = max(r.accuracy for r in ok)
    good = [r.lr for r in ok if r.accuracy >= best - within]
    return min(good), max(good), len(good)


def _compare_many(args: argparse.Namespace, names: list[str], lrs: list[float]) -> int:
    """Train every optimizer at every lr; a table and accuracy vs lr, a line each."""
    plt = None if args.no_plot else plotting()
    out = None if args.no_plot else figure_path(args.out, "--out")
    user = parse_kwargs(args.schedule_arg, "--schedule-arg")
    descs = []
    for name in names:  # every optimizer and schedule builds before any training
        probe = argparse.Namespace(**{**vars(args), "optimizer": name})
        probe_opt = make_optimizer(probe, [np.zeros(2)], lrs[0])
        descs.append(describe_optimizer(probe_opt, False))
        make_schedule(args.schedule, probe_opt, lrs[0], args.epochs, user)
    progress_note(args.no_progress)
    print(describe_run(*data_and_model(args)))
    sched = args.schedule + "".join(f" {a}" for a in args.schedule_arg or ())
    head = (
        f"{len(names)} optimizers x {len(lrs)} learning rates, {args.epochs} epochs each, "
        f"schedule {sched}: {', '.join(descs)}"
    )
    print(textwrap.fill(head, width=100, subsequent_indent="  ", break_on_hyphens=False))
    col = max(len(n) for n in names)
    total = len(names) * len(lrs)

    def report(run_: _Run, k: int) -> None:
        if run_.diverged is not None:
            what = f"diverged (epoch {run_.diverged.epoch}, loss={run_.diverged.loss:.3g})"
        else:
            what = f"test acc {run_.accuracy:6.2%}, train loss {run_.history.epoch_losses[-1]:.4f}"
        print(
            f"[{k:>{len(str(total))}}/{total}] {run_.optimizer:<{col}}  lr={run_.lr:<8.3g} {what}",
            flush=True,
        )

    configs = run_spec(args, names, lrs, [args.schedule], user).configs()
    runs = _run_all(args, configs, lambda c: f"{c.optimizer} lr={c.lr:g}", report)
    grid: dict[str, list[_Run]] = {}
    for run_ in runs:
        grid.setdefault(run_.optimizer, []).append(run_)
    print()
    widths = [max(8, len(n)) for n in names]
    print("final test accuracy ('diverged': the loss exploded)")
    print(f"{'lr':>9}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True)))
    for i, lr in enumerate(lrs):
        cells = []
        for name, w in zip(names, widths, strict=True):
            r = grid[name][i]
            cells.append(f"{'diverged' if r.diverged is not None else f'{r.accuracy:.2%}':>{w}}")
        print(f"{lr:>9.3g}  " + "  ".join(cells))
    print()
    for name in names:
        good = _good_range(grid[name])
        n_div = sum(r.diverged is not None for r in grid[name])
        if good is None:
            print(f"{name}: every run diverged")
            continue
        lo, hi, count = good
        best = max(grid[name], key=lambda r: r.accuracy if math.isfinite(r.accuracy) else -1.0)
        span = f"{lo:.3g} .. {hi:.3g}" if lo != hi else f"{lo:.3g} only"
        print(
            f"{name}: best {best.accuracy:.2%} at lr={best.lr:.3g}; within 2 points of it: "
            f"{count}/{len(lrs)} rates ({span}); diverged: {n_div}"
        )
    if plt is not None and out is not None:
        title = f"final test accuracy vs lr: digits MLP, {args.epochs} epochs, {sched} lr"
        _plot_accuracy_vs_lr(plt, grid, lrs, title, out)
    return 0


def _plot_accuracy_vs_lr(
    plt: Any, grid: dict[str, list[_Run]], lrs: list[float], title: str, out: Path
) -> None:
    """Final test accuracy against lr (log axis), a line per optimizer; diverged runs an
    x near the bottom (a row per optimizer, in its colour) joined by a dashed line."""
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    any_diverged = False
    for k, (name, runs) in enumerate(grid.items()):
        color = f"C{k % 10}"
        x = np.array([r.lr for r in runs])
        acc = np.array([100 * r.accuracy for r in runs])
        div = np.array([r.diverged is not None for r in runs])
        floor = 1.5 + 1.5 * (k % 6)  # an optimizer's diverged runs: an x on its own row
        order = np.argsort(x)
        x, acc, div = x[order], acc[order], div[order]
        if div.any():
            any_diverged = True
            # the cliff: a dashed line from a trained run to its diverged neighbour
            y = np.where(div, floor, acc)
            for i in np.flatnonzero(div[:-1] != div[1:]):
                ax.plot(x[i : i + 2], y[i : i + 2], "--", color=color, lw=1, alpha=0.6)
            ax.plot(x[div], np.full(int(div.sum()), floor), "x", color=color, ms=9, mew=2,
                    clip_on=False)  # fmt: skip
        ax.plot(x[~div], acc[~div], "o-", color=color, lw=1.8, ms=4, label=name)
    if any_diverged:
        ax.plot([], [], "x", color="0.3", ms=9, mew=2, label="diverged")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlim(min(lrs) / 1.5, max(lrs) * 1.5)
    ax.axhline(10, color="0.6", lw=0.8, ls=":")
    ax.text(min(lrs) / 1.4, 11, "chance", color="0.5", fontsize=8)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    save_figure(plt, fig, out)


COMMAND = Command(
    "compare-lr",
    "train with several learning rates and compare: diverges, trains, crawls",
    "Train the same model (same init, same batches) with each learning rate and show\n"
    "what it does: a table of final loss and accuracy with a verdict per rate, and a\n"
    "PNG of the loss and accuracy curves. With --optimizers A,B,C: every optimizer at\n"
    "every rate, a table, and a PNG of final test accuracy against lr, a line each.\n"
    "The runs train one after the other here, or on Dask with --workers N (a local\n"
    "cluster) or --scheduler tcp://HOST:PORT (a running one): the same numbers.\n\n"
    "examples:\n  fusedopt compare-lr --lrs 0.1 0.01 0.001\n"
    "  fusedopt compare-lr --optimizers Adam,SGD,Adagrad --lr-range 1e-4 10 11",
    add_arguments,
    run,
)
