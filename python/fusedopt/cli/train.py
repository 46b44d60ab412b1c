"""``fusedopt train``: train the digits MLP, report the test accuracy and the step time."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import fusedopt
from fusedopt._optional import import_optional
from fusedopt.bench import format_time, measure
from fusedopt.cli.common import (
    Command,
    CommandError,
    UsageError,
    add_model_arguments,
    add_precision_arguments,
    available_optimizers,
    check_precision,
    data_and_model,
    describe_optimizer,
    describe_precision,
    describe_run,
    fit_on_args,
    make_optimizer,
    optimizer_kwargs,
    parse_kwargs,
    positive_int,
    precision_kwargs,
    progress_note,
    state_bytes_line,
    training_threads,
)
from fusedopt.cli.presets import SCHEDULES, make_schedule
from fusedopt.demo import (
    MLP,
    Dataset,
    History,
    TrainingDiverged,
    iterate_minibatches,
    tqdm_available,
)
from fusedopt.demo.parallel import DataParallel
from fusedopt.distributed import ZeroRedundancyOptimizer, state_nbytes

__all__ = ["COMMAND", "add_arguments", "run", "step_time"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fusedopt train``."""
    add_model_arguments(
        p,
        lr_help="learning rate (peak of the schedule); default: tuned for this demo per "
        "optimizer (Adam 3e-3, SGD 0.1 with momentum 0.9, ...: cli.common.OPTIMIZER_DEFAULTS)",
    )
    p.add_argument(
        "--schedule",
        default="cosine",
        metavar="NAME",
        help=f"lr schedule, stepped every batch: {', '.join(SCHEDULES)}, or a class name of "
        "fusedopt.lr_scheduler (see 'fusedopt schedule --help')",
    )
    p.add_argument(
        "--schedule-arg",
        action="append",
        metavar="NAME=VALUE",
        help="override a schedule argument, repeatable: --schedule-arg gamma=0.5",
    )
    p.add_argument("--epochs", type=positive_int, default=20, help="passes over the training set")
    add_precision_arguments(p)
    p.add_argument(
        "--no-progress", action="store_true", help="one line per epoch instead of a progress bar"
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the MPI ranks (run as: mpirun -n 2 fusedopt train "
        "--distributed): each rank takes a slice of every batch, the optimizer is a "
        "fusedopt.distributed.ZeroRedundancyOptimizer (each rank holds its shard's state); "
        'needs pip install "fusedopt[mpi]"',
    )


def run(args: argparse.Namespace) -> int:
    """Train, then print the accuracy and the step time of both backends."""
    check_precision(args)
    if args.distributed and args.dtype in ("float16", "bfloat16"):
        raise UsageError(
            f"--distributed with --dtype {args.dtype}: the ZeRO optimizer exchanges float32 "
            "and float64 parameters only"
        )
    with training_threads(args) as threads:
        if not args.distributed:
            return _train(args, threads)
        comm = import_optional("mpi4py.MPI", "fusedopt train --distributed", "mpi4py").COMM_WORLD
        rank = comm.Get_rank()
        # rank 0 reports; the others train quietly
        quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
        args.no_progress = args.no_progress or rank != 0
        with quiet:
            return _train(args, threads, comm)


def _train(args: argparse.Namespace, threads: str, comm: Any = None) -> int:
    """One training run; data-parallel over ``comm``'s ranks when it is given."""
    data, model = data_and_model(args)
    opt = make_optimizer(args, model.params, args.lr)
    described = f"optimizer: {describe_optimizer(opt)}"
    precision = describe_precision(opt, model)  # the shards' optimizers are built alike
    trained: MLP | DataParallel = model
    if comm is not None:
        described = (
            f"optimizer: ZeroRedundancyOptimizer({describe_optimizer(opt)}) over "
            f"{comm.Get_size()} MPI ranks, each with its slice of every batch"
        )
        opt = _sharded(args, model, comm)
        trained = DataParallel(model, comm)
    lr = float(opt.param_groups[0]["lr"])
    steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
    total = args.epochs * steps_per_epoch
    user = parse_kwargs(args.schedule_arg, "--schedule-arg")
    sched, sched_desc, _ = make_schedule(args.schedule, opt, lr, total, user)
    print(describe_run(data, model))
    print(described)
    print(precision)
    print(
        f"schedule: {sched_desc}; {args.epochs} epochs x {steps_per_epoch} steps "
        f"of {args.batch_size} images"
    )
    print(threads)
    progress_note(args.no_progress)

    def log_epoch(epoch: int, h: History) -> None:
        if args.no_progress or not tqdm_available():
            print(
                f"epoch {epoch:3d}/{args.epochs}: train loss {h.epoch_losses[-1]:.4f}, "
                f"test accuracy {h.test_accuracy[-1]:.2%}"
            )

    try:
        history = fit_on_args(args, trained, opt, data, sched, desc="train", on_epoch=log_epoch)
    except TrainingDiverged as exc:
        raise CommandError(str(exc)) from exc
    acc = history.test_accuracy[-1]
    n_test = len(data.y_test)
    print(
        f"test accuracy: {acc:.2%} ({round(acc * n_test)}/{n_test}) after {args.epochs} epochs, "
        f"final train loss {history.epoch_losses[-1]:.4g}, {history.seconds:.2f} s"
    )
    what = (
        f"{args.backend} backend"
        if comm is None
        else f"ZeRO: reduce-scatter, {args.backend} step of the shard, all-gather"
    )
    print(
        f"optimizer step: {format_time(history.time_per_step)} in the training loop "
        f"({what}; median of its {history.n_steps} steps)"
    )
    if comm is not None:
        _print_state_per_rank(opt, comm)
        return 0
    print(state_bytes_line(opt))
    alone = _print_backend_comparison(args, model, data)
    if alone is not None and history.time_per_step > 1.25 * alone:
        print(f"(the loop's figure is higher: {_why_slower_in_the_loop(args, model)})")
    return 0


def _sharded(args: argparse.Namespace, model: MLP, comm: Any) -> ZeroRedundancyOptimizer:
    """``--optimizer`` and its options as a ZeroRedundancyOptimizer over ``comm``."""
    cls = available_optimizers()[args.optimizer]
    kwargs = optimizer_kwargs(args.optimizer, args.lr, parse_kwargs(args.opt_arg, "--opt-arg"))
    kwargs.update(precision_kwargs(args))
    try:
        return ZeroRedundancyOptimizer(model.params, cls, comm, backend=args.backend, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--distributed: {exc}") from exc


def _print_state_per_rank(opt: ZeroRedundancyOptimizer, comm: Any) -> None:
    """Every rank's optimizer-state bytes and parameter count (a collective)."""
    rank = comm.Get_rank()
    per_rank = comm.allgather((state_nbytes(opt), sum(1 for q in opt.owner if q == rank)))
    whole = sum(b for b, _ in per_rank)
    print("optimizer state per rank:")
    for q, (nbytes, nparams) in enumerate(per_rank):
        share = nbytes / whole if whole else 0.0
        print(
            f"  rank {q}: {nbytes:,} bytes ({share:.0%} of one process's {whole:,}), "
            f"{nparams} of {len(opt.owner)} parameter arrays"
        )


def _why_slower_in_the_loop(args: argparse.Namespace, model: MLP) -> str:
    """Why a step in the training loop takes longer than the same step timed alone."""
    cache = (
        "its arrays were pushed out of the CPU's caches by NumPy's forward and backward "
        "passes (and by any other process)"
    )
    parallel = fusedopt.build_info().get("parallel_min_elements", 0)
    if args.backend == "fused" and fusedopt.get_num_threads() > 1 and model.n_params >= parallel:
        return (
            f"there each step also wakes fusedopt's threads, idle during those passes, and "
            f"{cache}; timed back to back, neither happens"
        )
    return f"there each step starts after {cache}; timed back to back, they stay in cache"


def step_time(
    cls: type,
    kwargs: Mapping[str, Any],
    params: Sequence[np.ndarray],
    grads: Sequence[Any],
    backend: str,
) -> float:
    """Seconds per ``step`` of ``cls`` on copies of ``params``, back to back, timed as
    ``fusedopt bench`` times (:func:`fusedopt.bench.measure`: median of 5 repeats)."""
    opt = cls([p.copy() for p in params], backend=backend, **kwargs)
    seconds, _ = measure(opt.step, grads, repeats=5, min_time=0.01)
    return seconds


def _print_backend_comparison(args: argparse.Namespace, model: MLP, data: Dataset) -> float | None:
    """Time one step of both backends on the trained model's parameters and a real batch;
    returns the time of ``args.backend``'s (None if a backend cannot run)."""
    cls = available_optimizers()[args.optimizer]
    kwargs = optimizer_kwargs(args.optimizer, args.lr, parse_kwargs(args.opt_arg, "--opt-arg"))
    kwargs.update(precision_kwargs(args))
    Xb, yb = next(iterate_minibatches(data.X_train, data.y_train, args.batch_size))
    _, grads = model.loss_and_grads(Xb, yb)
    try:
        fused = step_time(cls, kwargs, model.params, grads, "fused")
        ref = step_time(cls, kwargs, model.params, grads, "numpy")
    except (TypeError, ValueError, RuntimeError):  # pragma: no cover - a backend missing
        return None
    verdict = f"{ref / fused:.1f}x faster" if ref >= fused else f"{fused / ref:.1f}x slower"
    print(
        f"same step timed alone (median of 5 runs, as fusedopt bench times): fused "
        f"{format_time(fused)}, NumPy reference {format_time(ref)}: fused is {verdict}"
    )
    return fused if args.backend == "fused" else ref


COMMAND = Command(
    "train",
    "train the MLP on the digits and report test accuracy and step time",
    "Train a NumPy MLP on scikit-learn's handwritten digits (1797 8x8 images, a\n"
    "stratified 80/20 split) with a fused optimizer, and report the held-out accuracy\n"
    "and the time of one optimizer step (fused kernel vs the NumPy reference).\n\n"
    "examples:\n  fusedopt train --optimizer SGD --lr 0.05 --schedule onecycle --epochs 10\n"
    "  fusedopt train --dtype bfloat16 --stochastic-rounding   # bfloat16 parameters\n"
    "  fusedopt train --state-dtype int8              # 8-bit Adam moments\n"
    "  mpirun -n 2 fusedopt train --distributed      # data-parallel, ZeRO-sharded state",
    add_arguments,
    run,
)
