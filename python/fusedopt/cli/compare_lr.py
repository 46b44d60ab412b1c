"""``fusedopt compare-lr``: train with several learning rates and compare them."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusedopt.cli.common import (
    Command,
    add_model_arguments,
    data_and_model,
    describe_optimizer,
    describe_run,
    figure_path,
    fit_on_args,
    make_optimizer,
    parse_kwargs,
    plotting,
    positive_float,
    positive_int,
    progress_note,
    save_figure,
    training_threads,
)
from fusedopt.cli.presets import make_schedule
from fusedopt.demo import History, TrainingDiverged

__all__ = ["COMMAND", "DEFAULT_LRS", "add_arguments", "run"]

#: The learning rates compared by default: diverges ... crawls.
DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001, 0.0001)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt compare-lr``."""
    add_model_arguments(p, lr_help=None)
    p.add_argument(
        "--lrs",
        type=positive_float,
        nargs="+",
        default=list(DEFAULT_LRS),
        metavar="LR",
        help="learning rates to compare",
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


@dataclass
class _Run:
    lr: float
    history: History
    diverged: TrainingDiverged | None
    verdict: str = ""


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
    plt = None if args.no_plot else plotting()
    out = None if args.no_plot else figure_path(args.out, "--out")
    user = parse_kwargs(args.schedule_arg, "--schedule-arg")
    runs: list[_Run] = []
    data = None
    sched_desc = "constant"
    opt_desc = ""
    progress_note(args.no_progress)
    for lr in args.lrs:
        data, model = data_and_model(args)
        opt = make_optimizer(args, model.params, lr)
        steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
        sched, sched_desc, _ = make_schedule(
            args.schedule, opt, lr, args.epochs * steps_per_epoch, user
        )
        if not runs:
            print(describe_run(data, model))
            opt_desc = describe_optimizer(opt, with_lr=False)
            print(f"optimizer: {opt_desc}; schedule: {sched_desc}; {args.epochs} epochs per lr")
        try:
            history = fit_on_args(args, model, opt, data, sched, desc=f"lr={lr:g}")
            runs.append(_Run(lr, history, None))
        except TrainingDiverged as exc:
            runs.append(_Run(lr, exc.history, exc))
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
        assert data is not None
        steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
        name = opt_desc.split("(")[0]
        title = f"{name} on the digits MLP, {args.epochs} epochs, {sched_desc} schedule"
        _plot_compare(plt, runs, steps_per_epoch, title, out)
    return 0


COMMAND = Command(
    "compare-lr",
    "train with several learning rates and compare: diverges, trains, crawls",
    "Train the same model (same init, same batches) with each learning rate and show\n"
    "what it does: a table of final loss and accuracy with a verdict per rate, and a\n"
    "PNG of the loss and accuracy curves.",
    add_arguments,
    run,
)
