"""``fusedopt schedule``: print (or plot) the lr curve of a schedule."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import fusedopt
from fusedopt.cli.common import (
    Command,
    UsageError,
    figure_path,
    parse_kwargs,
    plotting,
    positive_float,
    positive_int,
    save_figure,
)
from fusedopt.cli.presets import SCHEDULES, make_schedule

__all__ = [
    "COMMAND",
    "add_arguments",
    "log_scale_wanted",
    "plot_schedule",
    "run",
    "schedule_curve",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt schedule``; the presets in the epilog."""
    lines = [
        f"  {name:<16} {spec.summary if spec else 'no schedule'}"
        for name, spec in SCHEDULES.items()
    ]
    p.epilog = (
        "schedules (sized to --steps; NAME=VALUE arguments override):\n"
        + "\n".join(lines)
        + "\nor any class of fusedopt.lr_scheduler by name, with its own arguments.\n\n"
        "examples:\n  fusedopt schedule onecycle --steps 100\n"
        "  fusedopt schedule StepLR step_size=30 gamma=0.5 --steps 100 --lr 0.1 --plot s.png"
    )
    p.add_argument("name", metavar="NAME", help="a schedule (see below)")
    p.add_argument("args", nargs="*", metavar="NAME=VALUE", help="arguments of the schedule")
    p.add_argument("--steps", type=positive_int, default=100, help="number of steps to show")
    p.add_argument("--lr", type=positive_float, default=0.1, help="the optimizer's base lr")
    p.add_argument("--rows", type=positive_int, default=21, help="rows of the printed table")
    p.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also write the curve as an image (.png added without an extension; .pdf, "
        ".svg, ... as named)",
    )
    p.add_argument(
        "--yscale",
        choices=("auto", "linear", "log"),
        default="auto",
        help="lr axis of the plot and the bars; auto: log when the lr spans more than two "
        "decades and a quarter of the steps lie below 1%% of the peak",
    )


def schedule_curve(sched: Any, opt: Any, steps: int, per_epoch: bool) -> np.ndarray:
    """The lr of group 0 at steps ``0 .. steps-1``.

    A plateau schedule is fed a loss that never improves.
    """
    lrs = np.empty(steps)
    for i in range(steps):
        lrs[i] = float(opt.param_groups[0]["lr"])
        if per_epoch:
            sched.step(1.0)
        else:
            sched.step()
    return lrs


def log_scale_wanted(lrs: np.ndarray) -> bool:
    """Whether an lr curve reads better on a log axis: every lr is positive, they span
    more than two decades, and more than a quarter of the steps lie below 1% of the peak
    (on a linear axis those would be flat on the floor; e.g. an exponential decay from
    0.1 to 1e-8, or a plateau schedule that keeps cutting the lr)."""
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.size < 2 or not np.all(np.isfinite(lrs)) or lrs.min() <= 0:
        return False
    top = float(lrs.max())
    if top <= 100 * float(lrs.min()) * (1 + 1e-9):
        return False
    return float(np.mean(lrs < top / 100)) > 0.25


def plot_schedule(plt: Any, lrs: np.ndarray, title: str, log: bool) -> Any:
    """A figure of the lr at each step (log lr axis with ``log``)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(np.arange(len(lrs)), lrs, lw=1.8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate" + (" (log scale)" if log else ""))
    ax.set_title(title if len(title) < 70 else title.split("(")[0])
    ax.grid(True, which="both" if log else "major", alpha=0.3)
    fig.tight_layout()
    return fig


def _bars(lrs: np.ndarray, log: bool, width: int = 40) -> list[str]:
    """A bar per lr, proportional to the lr (or to its log above the smallest)."""
    if log:
        lo, hi = np.log(lrs.min()), np.log(lrs.max())
        frac = (np.log(lrs) - lo) / (hi - lo) if hi > lo else np.ones_like(lrs)
        return ["#" * (1 + round((width - 1) * f)) for f in frac]
    top = float(lrs.max()) if lrs.max() > 0 else 1.0
    return ["#" * round(width * v / top) for v in lrs]


def run(args: argparse.Namespace) -> int:
    """Print the schedule's lr at each step as a table (and plot it with ``--plot``)."""
    plt = plotting() if args.plot else None
    out = figure_path(args.plot, "--plot") if args.plot else None
    user = parse_kwargs(args.args, "a schedule argument")
    opt = fusedopt.SGD([np.zeros(1, np.float64)], lr=args.lr, momentum=0.9)
    sched, desc, per_epoch = make_schedule(args.name, opt, args.lr, args.steps, user)
    if sched is None:
        lrs = np.full(args.steps, args.lr)
    else:
        try:
            lrs = schedule_curve(sched, opt, args.steps, per_epoch)
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            raise UsageError(f"{desc} cannot run {args.steps} steps: {exc}") from exc
    log = args.yscale == "log" or (args.yscale == "auto" and log_scale_wanted(lrs))
    if log and not lrs.min() > 0:
        raise UsageError("--yscale log needs every lr to be positive")
    note = " (fed a loss that never improves)" if per_epoch else ""
    print(f"{desc}, base lr {args.lr:g}, {args.steps} steps{note}")
    rows = min(args.rows, args.steps)
    idx = np.unique(np.round(np.linspace(0, args.steps - 1, rows)).astype(int))
    bars = _bars(lrs[idx], log)
    print(f"{'step':>7}  {'lr':>11}" + ("  (bars: log scale)" if log else ""))
    for i, bar in zip(idx, bars, strict=True):
        print(f"{i:>7}  {lrs[i]:>11.4e}  {bar}")
    print(
        f"min {lrs.min():.4g} at step {int(lrs.argmin())}, max {lrs.max():.4g} at step "
        f"{int(lrs.argmax())}, last {lrs[-1]:.4g}"
    )
    if plt is not None and out is not None:
        save_figure(plt, plot_schedule(plt, lrs, desc, log), out)
    return 0


COMMAND = Command(
    "schedule",
    "print (or plot) the lr curve of a schedule",
    "Print the learning rate a schedule of fusedopt.lr_scheduler gives at each step,\n"
    "as a table with a bar per row, and optionally plot it.",
    add_arguments,
    run,
)
