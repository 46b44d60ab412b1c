"""``fusedopt schedule``: print (or plot) the lr curve of a schedule."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import fusedopt
from fusedopt.cli.common import (
    Command,
    CommandError,
    UsageError,
    available_optimizers,
    parse_kwargs,
    plotting,
    positive_float,
    positive_int,
)
from fusedopt.cli.presets import SCHEDULES, make_schedule

__all__ = ["COMMAND", "add_arguments", "run", "schedule_curve"]


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
    p.add_argument("--plot", default=None, metavar="PNG", help="also write the curve as a PNG")


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


def run(args: argparse.Namespace) -> int:
    """Print the schedule's lr at each step as a table (and plot it with ``--plot``)."""
    if "SGD" not in available_optimizers():  # pragma: no cover - SGD ships with fusedopt
        raise CommandError("fusedopt.SGD is not available")
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
    note = " (fed a loss that never improves)" if per_epoch else ""
    print(f"{desc}, base lr {args.lr:g}, {args.steps} steps{note}")
    rows = min(args.rows, args.steps)
    idx = np.unique(np.round(np.linspace(0, args.steps - 1, rows)).astype(int))
    top = float(lrs.max()) if lrs.max() > 0 else 1.0
    width = 40
    print(f"{'step':>7}  {'lr':>11}")
    for i in idx:
        bar = "#" * round(width * lrs[i] / top)
        print(f"{i:>7}  {lrs[i]:>11.4e}  {bar}")
    print(
        f"min {lrs.min():.4g} at step {int(lrs.argmin())}, max {lrs.max():.4g} at step "
        f"{int(lrs.argmax())}, last {lrs[-1]:.4g}"
    )
    if args.plot:
        plt = plotting()
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.plot(np.arange(args.steps), lrs, lw=1.8)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_title(desc if len(desc) < 70 else desc.split("(")[0])
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        plt.close(fig)
        print(f"wrote {args.plot}")
    return 0


COMMAND = Command(
    "schedule",
    "print (or plot) the lr curve of a schedule",
    "Print the learning rate a schedule of fusedopt.lr_scheduler gives at each step,\n"
    "as a table with a bar per row, and optionally plot it.",
    add_arguments,
    run,
)
