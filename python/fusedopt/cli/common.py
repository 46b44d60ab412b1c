"""What the ``fusedopt`` commands share, written once.

* errors and the parser: :class:`UsageError` (exit code 2) and :class:`CommandError` (exit
  code 1), each reported in one line; :class:`Command`, one entry of the command table;
* argument types and ``NAME=VALUE`` parsing;
* optimizers: discovery (:func:`available_optimizers`), the demo's defaults, building and
  describing one;
* output files: :func:`output_path` and :func:`figure_path` check a path before any work
  runs, :func:`save_figure` writes a plot (matplotlib on a file-only backend);
* the digits model: the options of ``train``, ``lr-find`` and ``compare-lr``, the data and
  the MLP they build, NumPy's BLAS threads while they train;
* low precision (``train``'s ``--dtype``, ``--state-dtype``, ``--stochastic-rounding``):
  :func:`add_precision_arguments`, checked by :func:`check_precision`, handed to the
  optimizer by :func:`precision_kwargs` and described by :func:`describe_precision`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

import fusedopt
from fusedopt._optional import DEMO_EXTRA_HINT, import_optional, pyplot
from fusedopt._registry import optimizer_classes
from fusedopt.demo import (
    MLP,
    Dataset,
    History,
    blas_threads,
    fit,
    limit_blas_threads,
    load_digits,
    tqdm_available,
)
from fusedopt.demo.model import Trainable
from fusedopt.demo.sweep import SweepSpec
from fusedopt.low_precision import is_half, state_nbytes_per_param

__all__ = [
    "DTYPES",
    "OPTIMIZER_DEFAULTS",
    "STATE_DTYPES",
    "Command",
    "CommandError",
    "Formatter",
    "Parser",
    "UsageError",
    "add_model_arguments",
    "add_precision_arguments",
    "available_optimizers",
    "check_precision",
    "data_and_model",
    "describe_optimizer",
    "describe_precision",
    "describe_run",
    "dtype_of",
    "figure_path",
    "fit_on_args",
    "make_optimizer",
    "non_negative_int",
    "optimizer_kwargs",
    "optimizer_name",
    "output_path",
    "parse_kwargs",
    "parse_value",
    "plotting",
    "positive_float",
    "positive_int",
    "precision_kwargs",
    "progress_note",
    "save_figure",
    "state_bytes_line",
    "training_threads",
]

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
    "LAMB": {"lr": 1e-2},
    # LARS moves each array by lr * trust_coefficient (1e-3) of its norm per step
    "LARS": {"lr": 5.0},
    "ASGD": {"lr": 0.1},
    # Rprop is a full-batch method: on mini-batches the signs of successive grads are
    # noise, and step sizes growing to torch's 50 make the digits MLP diverge
    "Rprop": {"lr": 1e-3, "step_sizes": (1e-6, 1e-2)},
    # SGDHD keeps its small initial lr (1e-3) and lets the hypergradient raise it: with
    # hypergrad_lr=1e-6 it barely moves in 900 steps (80% on the digits), with 1e-3 and
    # SGD's momentum here it reaches ~98% (Baydin et al. 2018 use beta=1e-3 for SGD-HD)
    "SGDHD": {"momentum": 0.9, "hypergrad_lr": 1e-3},
}


#: ``--dtype``: the parameters' dtype (bfloat16 is ``ml_dtypes.bfloat16``, extra ``[half]``).
DTYPES = ("float32", "float64", "float16", "bfloat16")
#: ``--state-dtype``: the parameter's own dtype, float32, or blockwise int8.
STATE_DTYPES = ("param", "float32", "int8")


class UsageError(Exception):
    """A bad command-line argument: reported in one line, exit code 2."""


class CommandError(Exception):
    """A command failed (training diverged, missing dependency...): one line, exit code 1."""


# --------------------------------------------------------------------------- parser
class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks; shows the defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # A flag (store_true, store_false: no value) has no default worth showing: the
        # "True" of --no-check's store_false is its destination's, not the flag's.
        flag = action.nargs == 0
        shown = action.default not in (None, False, argparse.SUPPRESS) and not flag
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help, arguments and implementation.

    ``run`` raises :class:`UsageError` for a bad argument and :class:`CommandError` for a
    failure; :func:`fusedopt.cli.main` reports either in one line.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _number(text: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Any:
    """``convert(text)`` as an argparse type: ArgumentTypeError "expected {what}" unless ``ok``."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(
            f"expected {what}, got {text if convert is float else value}"
        )
    return value


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    return int(_number(text, int, lambda v: v >= 1, "a positive integer"))


def non_negative_int(text: str) -> int:
    """An argparse type: an int >= 0."""
    return int(_number(text, int, lambda v: v >= 0, "an integer >= 0"))


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0."""
    return float(_number(text, float, lambda v: math.isfinite(v) and v > 0, "a positive number"))


def parse_value(text: str) -> Any:
    """A Python literal (``0.9``, ``(0.9, 0.99)``, ``True``, ``[10, 20]``) or the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_kwargs(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["a=1", "b=(0.9, 0.99)"]`` -> ``{"a": 1, "b": (0.9, 0.99)}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"{what} must look like NAME=VALUE, got {item!r}")
        out[key] = parse_value(value)
    return out


# --------------------------------------------------------------------------- optimizers
def available_optimizers() -> dict[str, type]:
    """The optimizer classes ``fusedopt`` exports (subclasses of ``fusedopt.Optimizer``)."""
    return dict(optimizer_classes(any_array=True))


def optimizer_name(value: str) -> str:
    """Case-insensitive optimizer name -> the exported spelling (unknown names unchanged)."""
    for name in available_optimizers():
        if name.lower() == value.lower():
            return name
    return value


def optimizer_kwargs(name: str, lr: float | None, extra: Mapping[str, Any]) -> dict[str, Any]:
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


def make_optimizer(args: argparse.Namespace, params: list[np.ndarray], lr: float | None) -> Any:
    """The optimizer ``--optimizer`` names, built from the options over ``params``."""
    kwargs = optimizer_kwargs(args.optimizer, lr, parse_kwargs(args.opt_arg, "--opt-arg"))
    kwargs.update(precision_kwargs(args))
    cls = available_optimizers()[args.optimizer]
    try:
        return cls(params, backend=args.backend, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot build {args.optimizer}: {exc}") from exc


def describe_optimizer(opt: Any, with_lr: bool = True) -> str:
    """``Adam(lr=0.003, backend=fused)``: the class and the arguments that differ from defaults.

    The lr shown is the one the optimizer was built with (a schedule keeps it as
    ``initial_lr``), not the schedule's value at step 0.
    """
    g = opt.param_groups[0]
    cls = type(opt)
    sig = inspect.signature(cls).parameters
    shown = [f"lr={g.get('initial_lr', g['lr']):g}"] if with_lr else []
    for key, value in g.items():
        if key in ("params", "lr", "initial_lr") or key not in sig:
            continue
        if sig[key].default is not inspect.Parameter.empty and sig[key].default == value:
            continue
        shown.append(f"{key}={value}")
    shown.append(f"backend={opt.backend}")
    return f"{cls.__name__}({', '.join(shown)})"


# --------------------------------------------------------------------------- output files
def output_path(text: str, option: str) -> Path:
    """``text`` as a file to write, checked before any work runs.

    Raises :class:`UsageError` (one line, exit code 2) when the directory does not exist
    or cannot be written, or when ``text`` names a directory.
    """
    path = Path(text).expanduser()
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{option} {text}: the directory {str(parent)!r} {what}")
    if path.is_dir():
        raise UsageError(f"{option} {text}: is a directory, not a file")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {text}: cannot write into {str(parent)!r}")
    return path


def plotting() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    return pyplot("plotting", extra="demo", backend="Agg")


def figure_path(text: str, option: str) -> Path:
    """``text`` as the file a plot goes to, checked before any work runs (needs matplotlib).

    Without an extension it gets ``.png``, as matplotlib's ``savefig`` would add (so
    ``--plot out`` writes and reports ``out.png``); an extension must be a format
    matplotlib writes (png, pdf, svg, ...). Then as :func:`output_path`.
    """
    path = Path(text).expanduser()
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    else:
        formats = _figure_formats()
        if path.suffix[1:].lower() not in formats:
            raise UsageError(
                f"{option} {text}: matplotlib cannot write {path.suffix!r} files "
                f"(use one of {', '.join(sorted(formats))})"
            )
    return output_path(str(path), option)


def _figure_formats() -> set[str]:
    """The file extensions matplotlib saves figures in (png, pdf, svg, ...)."""
    bases = import_optional("matplotlib.backend_bases", "plotting", "matplotlib", extra="demo")
    return set(bases.FigureCanvasBase.get_supported_filetypes())


def save_figure(plt: Any, fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` (checked by :func:`figure_path`), close it, say so.

    Raises :class:`CommandError` (one line) if writing fails all the same (disk full...).
    """
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    print(f"wrote {path}")


# --------------------------------------------------------------------------- the digits model
def add_model_arguments(p: argparse.ArgumentParser, *, lr_help: str | None) -> None:
    """Options shared by train, lr-find and compare-lr."""
    names = list(available_optimizers())
    p.add_argument(
        "--optimizer",
        type=optimizer_name,
        choices=names,
        default="Adam" if "Adam" in names else (names[0] if names else None),
        metavar="NAME",
        help=f"optimizer, one of {', '.join(names)} (case-insensitive)",
    )
    if lr_help is not None:
        p.add_argument("--lr", type=positive_float, default=None, help=lr_help)
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
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per step")
    p.add_argument(
        "--hidden",
        type=positive_int,
        nargs="+",
        default=[256],
        metavar="N",
        help="hidden layer widths of the MLP",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split, init and batch order (and of --stochastic-rounding)",
    )
    p.add_argument(
        "--n-train",
        type=positive_int,
        default=None,
        metavar="N",
        help="use only N training images (quick runs)",
    )
    p.add_argument(
        "--blas-threads",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="threads of NumPy's BLAS while training, 0 for NumPy's own count: the MLP's "
        "small matrix products gain nothing from more, whose idle threads spin on the cores "
        "fusedopt's threads need",
    )


def data_and_model(args: argparse.Namespace) -> tuple[Dataset, MLP]:
    """The digits (``--seed``, ``--n-train``) and a fresh MLP (``--hidden``, and ``--dtype``
    where the command has it) for them."""
    data = load_digits(seed=args.seed, n_train=args.n_train)
    dtype = getattr(args, "dtype", "float32")
    model = MLP((data.n_features, *args.hidden, data.n_classes), dtype=dtype, seed=args.seed)
    return data, model


# --------------------------------------------------------------------------- low precision
def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--dtype``, ``--state-dtype`` and ``--stochastic-rounding`` (``fusedopt train``)."""
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="dtype of the MLP's parameters and grads; with float16 / bfloat16 the forward and "
        "backward passes compute in float32 and the optimizer steps the half-precision "
        'parameters (bfloat16 is ml_dtypes.bfloat16: pip install "fusedopt[half]")',
    )
    p.add_argument(
        "--state-dtype",
        choices=STATE_DTYPES,
        default=None,
        help="dtype of the optimizer's state: 'param' (the parameters' own dtype, as torch "
        "keeps it), 'float32', or 'int8' (blockwise-quantized moments: the Adam family, SGD "
        "with momentum, Lion); default: the library's (the parameters' dtype, float32 for "
        "float16 / bfloat16 parameters)",
    )
    p.add_argument(
        "--stochastic-rounding",
        action="store_true",
        help="round the float16 / bfloat16 parameter writes stochastically (unbiased), from a "
        "generator keyed by --seed; default: round to nearest",
    )


def check_precision(args: argparse.Namespace) -> None:
    """The precision options against each other and ``--optimizer``, before any work runs
    (:class:`UsageError`, one line, for a bad combination)."""
    dtype = getattr(args, "dtype", "float32")
    state = getattr(args, "state_dtype", None)
    half = dtype in ("float16", "bfloat16")
    if getattr(args, "stochastic_rounding", False):
        if not half:
            raise UsageError(
                f"--stochastic-rounding rounds float16 / bfloat16 parameter writes; with "
                f"--dtype {dtype} the parameters round to nearest (use --dtype bfloat16 or "
                "float16)"
            )
        if not 0 <= args.seed < 2**64:
            raise UsageError(f"--stochastic-rounding needs a --seed in [0, 2**64), got {args.seed}")
    if state == "float32" and dtype == "float64":
        raise UsageError(
            "--state-dtype float32 is for float32, float16 or bfloat16 parameters; float64 "
            "parameters keep float64 state (--state-dtype param) or int8"
        )
    cls = available_optimizers().get(args.optimizer)
    if cls is None:
        return
    if half and not getattr(cls, "half_params", True):
        raise UsageError(
            f"--dtype {dtype}: {args.optimizer} takes float32 and float64 parameters only"
        )
    if state == "int8" and not getattr(cls, "int8_state", False):
        offered = sorted(
            n for n, c in available_optimizers().items() if getattr(c, "int8_state", False)
        )
        raise UsageError(
            f"--state-dtype int8: {args.optimizer} has no int8 state (offered by "
            f"{', '.join(offered)})"
        )
    if state == "param" and half and not getattr(cls, "half_state", True):
        raise UsageError(
            f"--state-dtype param: {args.optimizer} keeps the state of {dtype} parameters in "
            "float32"
        )


def precision_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The optimizer arguments of the precision options: ``state_dtype`` (when given),
    ``stochastic_rounding`` and ``seed`` (when rounding stochastically); ``{}`` for a
    command without them."""
    out: dict[str, Any] = {}
    state = getattr(args, "state_dtype", None)
    if state == "param":
        out["state_dtype"] = dtype_of(getattr(args, "dtype", "float32"))
    elif state is not None:
        out["state_dtype"] = state
    if getattr(args, "stochastic_rounding", False):
        out["stochastic_rounding"] = True
        out["seed"] = int(args.seed)
    return out


def dtype_of(name: str) -> np.dtype[Any]:
    """The NumPy dtype ``--dtype name`` stands for (bfloat16: ``ml_dtypes.bfloat16``)."""
    if name == "bfloat16":
        from fusedopt.low_precision import bfloat16

        return bfloat16()
    return np.dtype(name)


def describe_precision(opt: Any, model: MLP) -> str:
    """``precision: bfloat16 parameters (forward and backward in float32, ...), float32 state
    (default), stochastic rounding of the parameter writes (seed 0)``: the parameters' and
    the state's dtypes and, for half-precision parameters, the rounding of their writes."""
    dtype = model.dtype
    params = f"{dtype.name} parameters"
    if model.compute_dtype != dtype:
        compute = model.compute_dtype.name
        params += f" (forward and backward in {compute}, grads cast to {dtype.name})"
    sd = getattr(opt, "state_dtype", None)
    if sd is None:
        state = f"{np.dtype(np.float32).name if is_half(dtype) else dtype.name} state (default)"
    elif sd == "int8":
        state = "int8 state (blockwise, 64 elements per float32 scale)"
    else:
        state = f"{np.dtype(sd).name} state"
    line = f"precision: {params}, {state}"
    if getattr(opt, "stochastic_rounding", False):
        line += f", stochastic rounding of the parameter writes (seed {opt.seed})"
    elif is_half(dtype):
        line += ", parameter writes rounded to nearest"
    return line


def state_bytes_line(opt: Any) -> str:
    """``optimizer state: 8.00 bytes per parameter (153,680 bytes)`` after some step."""
    per = state_nbytes_per_param(opt)
    total = sum(a.nbytes for st in opt.state.values() for a in st.values())
    return f"optimizer state: {per:.2f} bytes per parameter ({total:,} bytes)"


def fit_on_args(
    args: argparse.Namespace,
    model: Trainable,
    opt: Any,
    data: Dataset,
    scheduler: Any,
    *,
    desc: str,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """``fusedopt.demo.fit`` with the training options every command shares (``--epochs``,
    ``--batch-size``, ``--seed``, ``--no-progress``), evaluated on the held-out digits."""
    return fit(
        model,
        opt,
        data.X_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        scheduler=scheduler,
        X_test=data.X_test,
        y_test=data.y_test,
        seed=args.seed,
        progress=not args.no_progress,
        desc=desc,
        on_epoch=on_epoch,
    )


def run_spec(
    args: argparse.Namespace,
    names: Sequence[str],
    lrs: Sequence[float],
    schedules: Sequence[str],
    schedule_options: Mapping[str, Any] | None = None,
) -> SweepSpec:
    """The runs ``names`` x ``schedules`` x ``lrs`` (optimizer-major) with the training
    options every command shares (``--epochs``, ``--batch-size``, ``--hidden``, ``--seed``,
    ``--n-train``, ``--backend``) and each optimizer's command-line defaults, then
    ``--opt-arg`` (compare-lr and sweep train through :mod:`fusedopt.demo.sweep`)."""
    extra = parse_kwargs(args.opt_arg, "--opt-arg")
    options = {}
    for name in names:
        kw = optimizer_kwargs(name, None, extra)
        del kw["lr"]  # the runs' rates are the grid's
        options[name] = kw
    return SweepSpec(
        list(names),
        list(lrs),
        schedules=tuple(schedules),
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden=tuple(args.hidden),
        seed=args.seed,
        n_train=args.n_train,
        backend=args.backend,
        options=options,
        schedule_options=dict(schedule_options or {}),
    )


def describe_run(data: Dataset, model: MLP) -> str:
    """``MLP 64-256-10 (19,210 params) on the digits: 1437 train / 360 test images``."""
    arch = "-".join(str(s) for s in model.sizes)
    return (
        f"MLP {arch} ({model.n_params:,} params) on the digits: "
        f"{len(data.y_train)} train / {len(data.y_test)} test images"
    )


@contextlib.contextmanager
def training_threads(args: argparse.Namespace) -> Iterator[str]:
    """Run the block with NumPy's BLAS limited to ``--blas-threads`` (threadpoolctl).

    Yields a line that says which thread counts are in force, e.g. ``"threads: fusedopt
    2, NumPy's BLAS 1 (--blas-threads)"``.
    """
    limit = args.blas_threads or None
    with limit_blas_threads(limit) as limited:
        count = blas_threads()
        if limited:
            blas = f"NumPy's BLAS {count} (--blas-threads)"
        elif limit is not None:
            blas = f"NumPy's BLAS not limited: threadpoolctl is not installed ({DEMO_EXTRA_HINT})"
        else:
            blas = f"NumPy's BLAS {count if count else 'as NumPy chose'} (--blas-threads 0)"
        yield f"threads: fusedopt {fusedopt.get_num_threads()}, {blas}"


def progress_note(quiet: bool) -> None:
    """Say why there is no progress bar when tqdm is missing."""
    if not quiet and not tqdm_available():
        print(f"(no progress bar: tqdm is not installed; {DEMO_EXTRA_HINT})")
