"""``fusedopt lr-find``: the learning-rate range test on the digits MLP, with a plot."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from fusedopt.cli.common import (
    Command,
    CommandError,
    UsageError,
    add_model_arguments,
    data_and_model,
    describe_optimizer,
    describe_run,
    figure_path,
    make_optimizer,
    plotting,
    positive_float,
    positive_int,
    save_figure,
    training_threads,
)
from fusedopt.demo import iterate_minibatches
from fusedopt.lr_finder import lr_find

__all__ = ["COMMAND", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt lr-find``."""
    add_model_arguments(p, lr_help=None)
    p.add_argument("--start-lr", type=positive_float, default=1e-6, help="first lr of the ramp")
    p.add_argument("--end-lr", type=positive_float, default=10.0, help="last lr of the ramp")
    p.add_argument("--num-iter", type=positive_int, default=100, help="steps of the ramp")
    p.add_argument(
        "--step-mode", choices=("exp", "linear"), default="exp", help="exponential or linear ramp"
    )
    p.add_argument(
        "--smooth", type=float, default=0.98, help="beta of the loss moving average, in [0, 1)"
    )
    p.add_argument(
        "--diverge-th",
        type=float,
        default=5.0,
        help="stop once the smoothed loss exceeds this many times the best",
    )
    p.add_argument("--out", default="lr_find.png", metavar="PNG", help="where to write the plot")
    p.add_argument("--no-plot", action="store_true", help="print the suggestion only")


def run(args: argparse.Namespace) -> int:
    """Run the range test, print the suggestions and plot loss vs lr."""
    with training_threads(args):
        return _lr_find(args)


def _lr_find(args: argparse.Namespace) -> int:
    if args.end_lr <= args.start_lr:
        raise UsageError(f"--end-lr ({args.end_lr:g}) must be greater than --start-lr")
    if not 0 <= args.smooth < 1:
        raise UsageError(f"--smooth must be in [0, 1), got {args.smooth}")
    if not args.diverge_th > 1:
        raise UsageError(f"--diverge-th must be greater than 1, got {args.diverge_th}")
    if args.num_iter < 2:
        raise UsageError(f"--num-iter must be at least 2, got {args.num_iter}")
    plt = None if args.no_plot else plotting()
    out = None if args.no_plot else figure_path(args.out, "--out")
    data, model = data_and_model(args)
    opt = make_optimizer(args, model.params, None)
    rng = np.random.default_rng(args.seed)

    class Batches:
        """Re-iterable shuffled minibatches (the finder restarts it each epoch)."""

        def __iter__(self) -> Any:
            return iterate_minibatches(data.X_train, data.y_train, args.batch_size, rng)

    print(describe_run(data, model))
    print(
        f"range test: {describe_optimizer(opt, with_lr=False)}, lr {args.start_lr:g} -> "
        f"{args.end_lr:g} ({args.step_mode}, {args.num_iter} steps of {args.batch_size})"
    )
    result = lr_find(
        opt,
        lambda batch: model.loss_and_grads(*batch),
        Batches(),
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_iter=args.num_iter,
        step_mode=args.step_mode,
        smooth=args.smooth,
        diverge_th=args.diverge_th,
    )
    try:
        valley = result.valley()
    except ValueError as exc:
        raise CommandError(f"stopped after {len(result.lrs)} steps: {exc}") from exc
    print(result.summary())
    if plt is not None and out is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        result.plot(ax=ax)
        title = f"lr range test: {args.optimizer} on the digits MLP"
        ax.set_title(title + ("" if valley.clear else " (no clear descent)"))
        fig.tight_layout()
        save_figure(plt, fig, out)
    if valley.clear:
        print(f"next: fusedopt train --optimizer {args.optimizer} --lr {valley.lr:.2g}")
    else:
        print(
            "next: check the curve (the plot), then widen the range (--start-lr, --end-lr) "
            "or run more steps (--num-iter)"
        )
    return 0


COMMAND = Command(
    "lr-find",
    "run the learning-rate range test and plot loss vs lr",
    "The learning-rate range test (Smith 2017): ramp the lr exponentially from\n"
    "--start-lr to --end-lr while training, stop when the loss explodes, suggest the lr\n"
    "of the steepest point of the longest descent of the smoothed loss (fastai's\n"
    "'valley'; says so when the curve shows no clear descent), and plot loss vs lr.\n"
    "The model and optimizer are restored afterwards (fusedopt.lr_finder.lr_find).",
    add_arguments,
    run,
)
