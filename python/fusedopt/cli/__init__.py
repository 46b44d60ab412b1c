"""The ``fusedopt`` command line: train, find the learning rate, compare rates, plot schedules.

Every command works on scikit-learn's handwritten digits (no download) and a small NumPy
MLP (:mod:`fusedopt.demo.model`) trained by fusedopt's fused optimizers::

    fusedopt train                      # Adam + cosine schedule, >95% test accuracy in ~1 s
    fusedopt lr-find --out lr_find.png  # the learning-rate range test
    fusedopt compare-lr                 # 1, 0.1, 0.01, 0.001, 0.0001: diverges ... crawls
    fusedopt schedule onecycle --steps 100 --lr 0.1

Also ``python -m fusedopt``. The demo needs ``pip install "fusedopt[demo]"`` (scikit-learn,
matplotlib, tqdm); a command that lacks one says so in one line.

Adding a command: write ``_<name>_arguments(parser)`` and ``_<name>(args) -> int`` and add
a :class:`Command` to :data:`COMMANDS`. Raise :class:`UsageError` for a bad argument
(one line, exit code 2) and :class:`CommandError` for a failure (one line, exit code 1).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

import fusedopt
from fusedopt._optional import DEMO_EXTRA_HINT, MissingDependencyError, pyplot
from fusedopt.cli.bench import BENCH_DESCRIPTION, BENCH_HELP, add_bench_arguments, run_bench_cli
from fusedopt.demo.data import Dataset, iterate_minibatches, load_digits
from fusedopt.demo.model import MLP, History, TrainingDiverged, fit
from fusedopt.lr_finder import lr_find

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
DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001, 0.0001)
#: CLI defaults that differ from the classes' own (torch's) defaults, tuned on the digits.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.1, "momentum": 0.9},
    "Adam": {"lr": 3e-3},
    "AdamW": {"lr": 3e-3},
    "Adagrad": {"lr": 0.05},
    "Adamax": {"lr": 5e-3},
    "NAdam": {"lr": 3e-3},
    "RAdam": {"lr": 1e-2},
    "Lion": {"lr": 1e-3},
}


class UsageError(Exception):
    """A bad command-line argument: reported in one line, exit code 2."""


class CommandError(Exception):
    """A command failed (training diverged, missing dependency...): one line, exit code 1."""


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks; shows the defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help, arguments and implementation."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- optimizers
def available_optimizers() -> dict[str, type]:
    """The optimizer classes ``fusedopt`` exports (subclasses of ``fusedopt.Optimizer``)."""
    base = getattr(fusedopt, "Optimizer", None)
    out: dict[str, type] = {}
    for name in getattr(fusedopt, "__all__", dir(fusedopt)):
        obj = getattr(fusedopt, name, None)
        if isinstance(obj, type) and base is not None and issubclass(obj, base) and obj is not base:
            out[name] = obj
    return out


def _optimizer_name(value: str) -> str:
    """Case-insensitive optimizer name -> the exported spelling (unknown names unchanged)."""
    for name in available_optimizers():
        if name.lower() == value.lower():
            return name
    return value


def _parse_value(text: str) -> Any:
    """A Python literal (``0.9``, ``(0.9, 0.99)``, ``True``, ``[10, 20]``) or the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_kwargs(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["a=1", "b=(0.9, 0.99)"]`` -> ``{"a": 1, "b": (0.9, 0.99)}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"{what} must look like NAME=VALUE, got {item!r}")
        out[key] = _parse_value(value)
    return out


def _optimizer_kwargs(name: str, lr: float | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for optimizer ``name``: CLI defaults, then ``--opt-arg``, then ``--lr``."""
    kwargs = dict(OPTIMIZER_DEFAULTS.get(name, {}))
    kwargs.update(extra)
    if lr is not None:
        kwargs["lr"] = lr
    if "lr" not in kwargs:
        cls = available_optimizers()[name]
        default = inspect.signature(cls).parameters.get("lr")
        kwargs["lr"] = default.default if default is not None else 1e-3
    return kwargs


def _make_optimizer(args: argparse.Namespace, params: list[np.ndarray], lr: float | None) -> Any:
    kwargs = _optimizer_kwargs(args.optimizer, lr, _parse_kwargs(args.opt_arg, "--opt-arg"))
    cls = available_optimizers()[args.optimizer]
    try:
        return cls(params, backend=args.backend, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot build {args.optimizer}: {exc}") from exc


def _describe_optimizer(opt: Any, with_lr: bool = True) -> str:
    """``Adam(lr=0.003, backend=fused)``: the class and the arguments that differ from defaults."""
    g = opt.param_groups[0]
    cls = type(opt)
    sig = inspect.signature(cls).parameters
    shown = [f"lr={g['lr']:g}"] if with_lr else []
    for key, value in g.items():
        if key in ("params", "lr") or key not in sig:
            continue
        if sig[key].default is not inspect.Parameter.empty and sig[key].default == value:
            continue
        shown.append(f"{key}={value}")
    shown.append(f"backend={opt.backend}")
    return f"{cls.__name__}({', '.join(shown)})"


# --------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule of :mod:`fusedopt.lr_scheduler` (class or helper), defaults sized to the run.

    ``defaults(lr, total_steps)`` gives the constructor arguments (user arguments
    override them); ``per_epoch`` schedules are stepped once per epoch with the loss.
    """

    cls: str
    defaults: Callable[[float, int], dict[str, Any]]
    summary: str
    per_epoch: bool = False


SCHEDULES: dict[str, ScheduleSpec | None] = {
    "constant": None,
    "cosine": ScheduleSpec(
        "CosineAnnealingLR", lambda lr, n: {"T_max": n}, "cosine from lr to 0 over the run"
    ),
    "warmup-cosine": ScheduleSpec(
        "warmup_cosine",
        lambda lr, n: {"warmup_steps": max(1, n // 20), "total_steps": n},
        "linear warm-up over 5% of the run, then cosine to 0",
    ),
    "warmup-linear": ScheduleSpec(
        "warmup_linear",
        lambda lr, n: {"warmup_steps": max(1, n // 20), "total_steps": n},
        "linear warm-up over 5% of the run, then linear decay to 0",
    ),
    "onecycle": ScheduleSpec(
        "OneCycleLR",
        lambda lr, n: {"max_lr": lr, "total_steps": n},
        "warm up to lr over 30%, then anneal (cosine) to lr/1e4",
    ),
    "step": ScheduleSpec(
        "StepLR",
        lambda lr, n: {"step_size": max(1, n // 3), "gamma": 0.1},
        "x0.1 at 1/3 and 2/3 of the run",
    ),
    "multistep": ScheduleSpec(
        "MultiStepLR",
        lambda lr, n: {"milestones": [n // 2, 3 * n // 4], "gamma": 0.1},
        "x0.1 at 50% and 75% of the run",
    ),
    "exponential": ScheduleSpec(
        "ExponentialLR",
        lambda lr, n: {"gamma": 0.01 ** (1 / max(n, 1))},
        "exponential decay to lr/100 at the end",
    ),
    "linear": ScheduleSpec(
        "LinearLR",
        lambda lr, n: {"start_factor": 1.0, "end_factor": 0.01, "total_iters": n},
        "linear decay to lr/100 at the end",
    ),
    "polynomial": ScheduleSpec(
        "PolynomialLR",
        lambda lr, n: {"total_iters": n, "power": 2.0},
        "(1 - t/n)^2 decay to 0",
    ),
    "constant-factor": ScheduleSpec(
        "ConstantLR", lambda lr, n: {}, "lr/3 for 5 steps, then lr (torch's defaults)"
    ),
    "cosine-restarts": ScheduleSpec(
        "CosineAnnealingWarmRestarts",
        lambda lr, n: {"T_0": max(1, n // 7), "T_mult": 2},
        "cosine with warm restarts, periods n/7, 2n/7, 4n/7",
    ),
    "cyclic": ScheduleSpec(
        "CyclicLR",
        lambda lr, n: {"base_lr": lr / 10, "max_lr": lr, "step_size_up": max(1, n // 8)},
        "triangle between lr/10 and lr, 4 cycles",
    ),
    "plateau": ScheduleSpec(
        "ReduceLROnPlateau",
        lambda lr, n: {"factor": 0.1, "patience": 2},
        "x0.1 when the epoch loss stops improving for 2 epochs",
        per_epoch=True,
    ),
}


def _lr_scheduler_module() -> Any:
    try:
        from fusedopt import lr_scheduler
    except ImportError as exc:  # pragma: no cover - the module ships with fusedopt
        raise CommandError(f"fusedopt.lr_scheduler is not available: {exc}") from exc
    return lr_scheduler


def _schedule_factories() -> dict[str, Callable[..., Any]]:
    """The public schedule classes and helpers of ``fusedopt.lr_scheduler``, by name."""
    module = _lr_scheduler_module()
    out: dict[str, Callable[..., Any]] = {}
    for n in getattr(module, "__all__", dir(module)):
        obj = getattr(module, n, None)
        if callable(obj) and not n.startswith("_") and n not in ("LRScheduler", "curve"):
            out[n] = obj
    return out


def _resolve_schedule(name: str) -> tuple[ScheduleSpec | None, Callable[..., Any] | None]:
    """``name`` -> (spec with defaults or None, class or function of fusedopt.lr_scheduler).

    ``name`` is an alias of :data:`SCHEDULES` (``-`` or ``_``) or the name of a class or
    helper of ``fusedopt.lr_scheduler``, case-insensitive; ``constant`` gives ``(None, None)``.
    """
    key = name.lower().replace("_", "-")
    if key in ("constant", "none"):
        return None, None
    factories = _schedule_factories()
    spec = SCHEDULES.get(key)
    target = spec.cls if spec is not None else name
    factory = next(
        (f for n, f in factories.items() if n.lower() == target.lower().replace("-", "_")), None
    )
    if factory is None:
        names = ", ".join([*SCHEDULES, *factories])
        raise UsageError(f"unknown schedule {name!r} (choose from {names})")
    if spec is None:  # a class name that has an alias: use the alias's defaults
        spec = next(
            (s for s in SCHEDULES.values() if s is not None and s.cls.lower() == target.lower()),
            None,
        )
    return spec, factory


def _make_schedule(
    name: str, optimizer: Any, lr: float, total_steps: int, user: Mapping[str, Any]
) -> tuple[Any, str, bool]:
    """Build schedule ``name`` for ``optimizer``: (scheduler or None, description, per_epoch)."""
    spec, factory = _resolve_schedule(name)
    if factory is None:
        if user:
            raise UsageError("the constant schedule takes no arguments")
        return None, "constant", False
    kwargs = spec.defaults(lr, total_steps) if spec is not None else {}
    kwargs.update(user)
    fname = getattr(factory, "__name__", str(factory))
    try:
        sched = factory(optimizer, **kwargs)
    except (TypeError, ValueError) as exc:
        hint = " (give arguments as NAME=VALUE)" if "missing" in str(exc) else ""
        raise UsageError(f"cannot build schedule {fname}: {exc}{hint}") from exc
    shown = ", ".join(f"{k}={_fmt_value(v)}" for k, v in kwargs.items())
    per_epoch = spec.per_epoch if spec is not None else "plateau" in fname.lower()
    return sched, f"{fname}({shown})", per_epoch


def _fmt_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


# --------------------------------------------------------------------------- shared helpers
def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    return pyplot("plotting", extra="demo", backend="Agg")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _add_model_arguments(p: argparse.ArgumentParser, *, lr_help: str | None) -> None:
    """Options shared by train, lr-find and compare-lr."""
    names = list(available_optimizers())
    p.add_argument(
        "--optimizer",
        type=_optimizer_name,
        choices=names,
        default="Adam" if "Adam" in names else (names[0] if names else None),
        metavar="NAME",
        help=f"optimizer, one of {', '.join(names)} (case-insensitive)",
    )
    if lr_help is not None:
        p.add_argument("--lr", type=_positive_float, default=None, help=lr_help)
    p.add_argument(
        "--opt-arg",
        action="append",
        metavar="NAME=VALUE",
        help="extra optimizer argument, repeatable: --opt-arg weight_decay=1e-4 "
        "--opt-arg 'betas=(0.9, 0.99)' (SGD defaults to momentum=0.9 here)",
    )
    p.add_argument(
        "--backend",
        choices=("fused", "numpy"),
        default="fused",
        help="fused C++ kernels or the NumPy reference",
    )
    p.add_argument("--batch-size", type=_positive_int, default=32, help="images per step")
    p.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        default=[256],
        metavar="N",
        help="hidden layer widths of the MLP",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, init and batch order")
    p.add_argument(
        "--n-train",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use only N training images (quick runs)",
    )


def _data_and_model(args: argparse.Namespace) -> tuple[Dataset, MLP]:
    data = load_digits(seed=args.seed, n_train=args.n_train)
    model = MLP((data.n_features, *args.hidden, data.n_classes), seed=args.seed)
    return data, model


def _describe_run(data: Dataset, model: MLP) -> str:
    arch = "-".join(str(s) for s in model.sizes)
    return (
        f"MLP {arch} ({model.n_params:,} params) on the digits: "
        f"{len(data.y_train)} train / {len(data.y_test)} test images"
    )


def _time_per_step(
    cls: type,
    kwargs: Mapping[str, Any],
    params: Sequence[np.ndarray],
    grads: Sequence[Any],
    backend: str,
) -> float:
    """Best-of-5 mean wall time of one ``step`` on copies of ``params`` (seconds)."""
    copies = [p.copy() for p in params]
    opt = cls(copies, backend=backend, **kwargs)
    opt.step(grads)
    number = 50
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(number):
            opt.step(grads)
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _progress_note(quiet: bool) -> None:
    from fusedopt.demo.progress import tqdm_available

    if not quiet and not tqdm_available():
        print(f"(no progress bar: tqdm is not installed; {DEMO_EXTRA_HINT})")


# --------------------------------------------------------------------------- train
def _train_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(
        p,
        lr_help="learning rate (peak of the schedule); default: tuned for this demo per "
        "optimizer (Adam 3e-3, SGD 0.1 with momentum 0.9, ...: cli.OPTIMIZER_DEFAULTS)",
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
    p.add_argument("--epochs", type=_positive_int, default=20, help="passes over the training set")
    p.add_argument(
        "--no-progress", action="store_true", help="one line per epoch instead of a progress bar"
    )


def _train(args: argparse.Namespace) -> int:
    data, model = _data_and_model(args)
    opt = _make_optimizer(args, model.params, args.lr)
    lr = float(opt.param_groups[0]["lr"])
    steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
    total = args.epochs * steps_per_epoch
    user = _parse_kwargs(args.schedule_arg, "--schedule-arg")
    sched, sched_desc, _ = _make_schedule(args.schedule, opt, lr, total, user)
    print(_describe_run(data, model))
    print(f"optimizer: {_describe_optimizer(opt)}")
    print(
        f"schedule: {sched_desc}; {args.epochs} epochs x {steps_per_epoch} steps "
        f"of {args.batch_size} images"
    )
    _progress_note(args.no_progress)

    def log_epoch(epoch: int, h: History) -> None:
        if args.no_progress or not _tqdm_ok():
            print(
                f"epoch {epoch:3d}/{args.epochs}: train loss {h.epoch_losses[-1]:.4f}, "
                f"test accuracy {h.test_accuracy[-1]:.2%}"
            )

    try:
        history = fit(
            model,
            opt,
            data.X_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            scheduler=sched,
            X_test=data.X_test,
            y_test=data.y_test,
            seed=args.seed,
            progress=not args.no_progress,
            desc="train",
            on_epoch=log_epoch,
        )
    except TrainingDiverged as exc:
        raise CommandError(str(exc)) from exc
    acc = history.test_accuracy[-1]
    n_test = len(data.y_test)
    print(
        f"test accuracy: {acc:.2%} ({round(acc * n_test)}/{n_test}) after {args.epochs} epochs, "
        f"final train loss {history.epoch_losses[-1]:.4g}, {history.seconds:.2f} s"
    )
    print(
        f"optimizer step: {_fmt_time(history.time_per_step)} per step "
        f"({args.backend} backend, median of the {history.n_steps} steps of the training)"
    )
    _print_backend_comparison(args, model, data)
    return 0


def _tqdm_ok() -> bool:
    from fusedopt.demo.progress import tqdm_available

    return tqdm_available()


def _print_backend_comparison(args: argparse.Namespace, model: MLP, data: Dataset) -> None:
    """Time one step of both backends on the trained model's parameters and a real batch."""
    cls = available_optimizers()[args.optimizer]
    kwargs = _optimizer_kwargs(args.optimizer, args.lr, _parse_kwargs(args.opt_arg, "--opt-arg"))
    Xb, yb = next(iterate_minibatches(data.X_train, data.y_train, args.batch_size))
    _, grads = model.loss_and_grads(Xb, yb)
    try:
        fused = _time_per_step(cls, kwargs, model.params, grads, "fused")
        ref = _time_per_step(cls, kwargs, model.params, grads, "numpy")
    except (TypeError, ValueError, RuntimeError):  # pragma: no cover - a backend missing
        return
    print(
        f"same step timed alone (best of 5 x 50): fused {_fmt_time(fused)}, "
        f"NumPy reference {_fmt_time(ref)}: fused is {ref / fused:.1f}x faster"
    )


# --------------------------------------------------------------------------- lr-find
def _lr_find_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p, lr_help=None)
    p.add_argument("--start-lr", type=_positive_float, default=1e-6, help="first lr of the ramp")
    p.add_argument("--end-lr", type=_positive_float, default=10.0, help="last lr of the ramp")
    p.add_argument("--num-iter", type=_positive_int, default=100, help="steps of the ramp")
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


def _lr_find(args: argparse.Namespace) -> int:
    if args.end_lr <= args.start_lr:
        raise UsageError(f"--end-lr ({args.end_lr:g}) must be greater than --start-lr")
    if not 0 <= args.smooth < 1:
        raise UsageError(f"--smooth must be in [0, 1), got {args.smooth}")
    if not args.diverge_th > 1:
        raise UsageError(f"--diverge-th must be greater than 1, got {args.diverge_th}")
    if args.num_iter < 2:
        raise UsageError(f"--num-iter must be at least 2, got {args.num_iter}")
    plt = None if args.no_plot else _pyplot()
    data, model = _data_and_model(args)
    opt = _make_optimizer(args, model.params, None)
    rng = np.random.default_rng(args.seed)

    class Batches:
        """Re-iterable shuffled minibatches (the finder restarts it each epoch)."""

        def __iter__(self) -> Any:
            return iterate_minibatches(data.X_train, data.y_train, args.batch_size, rng)

    print(_describe_run(data, model))
    print(
        f"range test: {_describe_optimizer(opt, with_lr=False)}, lr {args.start_lr:g} -> "
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
    print(f"stopped after {len(result.lrs)} steps: {result.stop_reason}")
    try:
        steep = result.suggestion("steepest")
        low = result.suggestion("minimum")
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"suggested lr: {steep:.2g} (steepest descent of the smoothed loss over log(lr))")
    print(f"minimum / 10: {low:.2g} (lowest smoothed loss at lr={low * 10:.2g}, divided by 10)")
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        result.plot(ax=ax)
        ax.set_title(f"lr range test: {args.optimizer} on the digits MLP")
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
        plt.close(fig)
        print(f"wrote {args.out}")
    print(f"next: fusedopt train --optimizer {args.optimizer} --lr {steep:.2g}")
    return 0


# --------------------------------------------------------------------------- compare-lr
def _compare_lr_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p, lr_help=None)
    p.add_argument(
        "--lrs",
        type=_positive_float,
        nargs="+",
        default=list(DEFAULT_LRS),
        metavar="LR",
        help="learning rates to compare",
    )
    p.add_argument("--epochs", type=_positive_int, default=10, help="passes per run")
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


def _plot_compare(plt: Any, runs: list[_Run], steps_per_epoch: int, title: str, out: str) -> None:
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
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _compare_lr(args: argparse.Namespace) -> int:
    plt = None if args.no_plot else _pyplot()
    user = _parse_kwargs(args.schedule_arg, "--schedule-arg")
    runs: list[_Run] = []
    data = None
    sched_desc = "constant"
    opt_desc = ""
    _progress_note(args.no_progress)
    for lr in args.lrs:
        data, model = _data_and_model(args)
        opt = _make_optimizer(args, model.params, lr)
        steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
        sched, sched_desc, _ = _make_schedule(
            args.schedule, opt, lr, args.epochs * steps_per_epoch, user
        )
        if not runs:
            print(_describe_run(data, model))
            opt_desc = _describe_optimizer(opt, with_lr=False)
            print(f"optimizer: {opt_desc}; schedule: {sched_desc}; {args.epochs} epochs per lr")
        try:
            history = fit(
                model,
                opt,
                data.X_train,
                data.y_train,
                epochs=args.epochs,
                batch_size=args.batch_size,
                scheduler=sched,
                X_test=data.X_test,
                y_test=data.y_test,
                seed=args.seed,
                progress=not args.no_progress,
                desc=f"lr={lr:g}",
            )
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
    if plt is not None:
        assert data is not None
        steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
        name = opt_desc.split("(")[0]
        title = f"{name} on the digits MLP, {args.epochs} epochs, {sched_desc} schedule"
        _plot_compare(plt, runs, steps_per_epoch, title, args.out)
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- schedule
def _schedule_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--steps", type=_positive_int, default=100, help="number of steps to show")
    p.add_argument("--lr", type=_positive_float, default=0.1, help="the optimizer's base lr")
    p.add_argument("--rows", type=_positive_int, default=21, help="rows of the printed table")
    p.add_argument("--plot", default=None, metavar="PNG", help="also write the curve as a PNG")


def _schedule_curve(sched: Any, opt: Any, steps: int, per_epoch: bool) -> np.ndarray:
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


def _schedule(args: argparse.Namespace) -> int:
    if "SGD" not in available_optimizers():  # pragma: no cover - SGD ships with fusedopt
        raise CommandError("fusedopt.SGD is not available")
    user = _parse_kwargs(args.args, "a schedule argument")
    opt = fusedopt.SGD([np.zeros(1, np.float64)], lr=args.lr, momentum=0.9)
    sched, desc, per_epoch = _make_schedule(args.name, opt, args.lr, args.steps, user)
    if sched is None:
        lrs = np.full(args.steps, args.lr)
    else:
        try:
            lrs = _schedule_curve(sched, opt, args.steps, per_epoch)
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
        plt = _pyplot()
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


# --------------------------------------------------------------------------- table and main
#: The subcommands, in the order ``--help`` lists them. Append to add one (e.g. ``bench``).
COMMANDS: list[Command] = [
    Command(
        "train",
        "train the MLP on the digits and report test accuracy and step time",
        "Train a NumPy MLP on scikit-learn's handwritten digits (1797 8x8 images, a\n"
        "stratified 80/20 split) with a fused optimizer, and report the held-out accuracy\n"
        "and the time of one optimizer step (fused kernel vs the NumPy reference).\n\n"
        "example:\n  fusedopt train --optimizer SGD --lr 0.05 --schedule onecycle --epochs 10",
        _train_arguments,
        _train,
    ),
    Command(
        "lr-find",
        "run the learning-rate range test and plot loss vs lr",
        "The learning-rate range test (Smith 2017): ramp the lr exponentially from\n"
        "--start-lr to --end-lr while training, stop when the loss explodes, suggest the lr\n"
        "of the steepest descent of the smoothed loss, and plot loss vs lr. The model and\n"
        "optimizer are restored afterwards (fusedopt.lr_finder.lr_find).",
        _lr_find_arguments,
        _lr_find,
    ),
    Command(
        "compare-lr",
        "train with several learning rates and compare: diverges, trains, crawls",
        "Train the same model (same init, same batches) with each learning rate and show\n"
        "what it does: a table of final loss and accuracy with a verdict per rate, and a\n"
        "PNG of the loss and accuracy curves.",
        _compare_lr_arguments,
        _compare_lr,
    ),
    Command(
        "schedule",
        "print (or plot) the lr curve of a schedule",
        "Print the learning rate a schedule of fusedopt.lr_scheduler gives at each step,\n"
        "as a table with a bar per row, and optionally plot it.",
        _schedule_arguments,
        _schedule,
    ),
    Command("bench", BENCH_HELP, BENCH_DESCRIPTION, add_bench_arguments, run_bench_cli),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``fusedopt`` argument parser, one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(
        prog=PROG,
        description="fusedopt: PyTorch-style optimizers for NumPy, each step one fused C++ "
        "kernel.\nThe demo commands train a NumPy MLP on scikit-learn's handwritten digits\n"
        f"(needs: {DEMO_EXTRA_HINT}). Start with: fusedopt train",
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {getattr(fusedopt, '__version__', '?')}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS:
        p = sub.add_parser(
            cmd.name, help=cmd.help, description=cmd.description, formatter_class=_Formatter
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
    return 2  # not reached: _Parser.error exits
