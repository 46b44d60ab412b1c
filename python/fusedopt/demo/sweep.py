"""Learning-rate sweeps of the digits MLP: independent runs, serial or on a Dask cluster.

A sweep is a list of :class:`RunConfig` (an optimizer, a learning rate, a schedule and the
training options), each trained from scratch by :func:`run_one`: the same seed gives the
same split, initialization and batch order, so runs differ only by their configuration
and a run's numbers depend on nothing else (BLAS and fusedopt run on one thread inside a
run, ``threads=1``). Hence a sweep farmed out to many processes gives, bit for bit, the
numbers of the same sweep run serially.

* :class:`SweepSpec` builds the configurations: a grid of optimizers x learning rates x
  schedules, the rates given (:meth:`SweepSpec.grid`) or drawn log-uniformly from a range
  with a seed (:func:`log_uniform`, :meth:`SweepSpec.random`).
* :func:`run_one` trains one configuration and returns a plain dict (picklable, JSON-ready);
  it is a module-level function, so Dask workers import it by name.
* :func:`run_sweep` runs configurations serially in this process (``client=None``, the
  oracle), on a Dask cluster (a ``distributed.Client``: ``client.submit`` and
  ``distributed.as_completed``) or on a ``concurrent.futures`` executor. Each result is
  appended to a JSON Lines file as it arrives (flushed and fsynced), and a rerun with
  the same file skips the configurations already there. A worker that dies mid-sweep
  loses no run: the scheduler resubmits its tasks to the other workers.
* :func:`dask_client` opens a client on an embedded local cluster or on a running
  scheduler (Dask is optional: ``pip install "fusedopt[dask]"``).

>>> from fusedopt.demo.sweep import SweepSpec, run_sweep
>>> spec = SweepSpec(["Adam", "SGD"], lrs=[1e-3, 1e-2], epochs=2, n_train=200, hidden=(32,))
>>> result = run_sweep(spec.configs(), "sweep_results.jsonl")  # doctest: +SKIP
>>> best = max(result.results, key=lambda r: r["test_accuracy"] or 0.0)  # doctest: +SKIP

The results file holds one JSON object a line (:func:`run_one`'s, without curves)::

    {"key": "Adam lr=0.001 schedule=constant epochs=2 ...", "config": {...},
     "test_accuracy": 0.9, "train_loss": 0.31, "test_loss": 0.35, "diverged": false,
     "diverged_at": null, "seconds": 0.41, "worker": "tcp://127.0.0.1:40123"}

Non-finite numbers (the loss of a diverged run) are written as the strings ``"nan"``,
``"inf"`` and ``"-inf"`` (JSON has no such numbers).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fusedopt
from fusedopt._optional import import_optional
from fusedopt._registry import optimizer_classes
from fusedopt.demo.data import Dataset, load_digits
from fusedopt.demo.model import MLP, History, TrainingDiverged, fit
from fusedopt.demo.progress import progress_bar, tqdm_available
from fusedopt.demo.threads import limit_blas_threads

__all__ = [
    "CONNECT_TIMEOUT",
    "ResultsFileError",
    "RunConfig",
    "SweepResult",
    "SweepSpec",
    "build_run",
    "dask_client",
    "default_workers",
    "describe_executor",
    "format_result",
    "history_of",
    "log_uniform",
    "read_results",
    "run_one",
    "run_sweep",
]

#: Seconds to wait for a Dask scheduler (and its first worker) before giving up.
CONNECT_TIMEOUT = 5.0


def _items(options: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> tuple:
    """Keyword arguments as a sorted tuple of ``(name, value)`` pairs (a frozen field)."""
    if options is None:
        return ()
    pairs = options.items() if isinstance(options, Mapping) else options
    return tuple(sorted((str(k), v) for k, v in pairs))


@dataclass(frozen=True)
class RunConfig:
    """One training run of the digits MLP: what :func:`run_one` needs, and its identity.

    Attributes:
        optimizer: an optimizer class exported by ``fusedopt`` (``"Adam"``, ``"SGD"``...).
        lr: the learning rate (the peak of the schedule).
        schedule: a schedule alias of :data:`fusedopt.lr_scheduler.presets.SCHEDULES`
            (``"constant"``, ``"cosine"``...) or a class name of ``fusedopt.lr_scheduler``,
            sized to the run's steps.
        epochs: passes over the training images.
        batch_size: images per optimizer step.
        hidden: hidden layer widths of the MLP.
        seed: seed of the split, the initialization and the batch order.
        n_train: use only the first ``n_train`` training images (None: all 1437).
        backend: ``"fused"`` (C++ kernels) or ``"numpy"`` (the reference).
        options: the optimizer's other keyword arguments, as sorted ``(name, value)``
            pairs (a mapping is accepted and sorted).
        schedule_options: arguments overriding the schedule preset's, likewise.
    """

    optimizer: str
    lr: float
    schedule: str = "constant"
    epochs: int = 5
    batch_size: int = 32
    hidden: tuple[int, ...] = (256,)
    seed: int = 0
    n_train: int | None = None
    backend: str = "fused"
    options: tuple[tuple[str, Any], ...] = field(default=())
    schedule_options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        # normalized, so that equal runs have equal keys (np.float64(0.1) is 0.1)
        lr = float(self.lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(
                f"epochs and batch_size must be at least 1, got {self.epochs}, {self.batch_size}"
            )
        set_ = object.__setattr__
        set_(self, "lr", lr)
        set_(self, "epochs", int(self.epochs))
        set_(self, "batch_size", int(self.batch_size))
        set_(self, "hidden", tuple(int(h) for h in self.hidden))
        set_(self, "seed", int(self.seed))
        set_(self, "n_train", None if self.n_train is None else int(self.n_train))
        set_(self, "options", _items(self.options))
        set_(self, "schedule_options", _items(self.schedule_options))

    @property
    def key(self) -> str:
        """The run's identity in a results file: every field, readable, e.g.
        ``"Adam lr=0.001 schedule=cosine epochs=5 batch_size=32 hidden=256 seed=0
        n_train=all backend=fused"`` (``repr`` of the lr: exact)."""
        parts = [
            self.optimizer,
            f"lr={self.lr!r}",
            f"schedule={self.schedule}",
            f"epochs={self.epochs}",
            f"batch_size={self.batch_size}",
            f"hidden={'-'.join(map(str, self.hidden))}",
            f"seed={self.seed}",
            f"n_train={'all' if self.n_train is None else self.n_train}",
            f"backend={self.backend}",
        ]
        parts += [f"opt.{k}={v!r}" for k, v in self.options]
        parts += [f"schedule.{k}={v!r}" for k, v in self.schedule_options]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (options as dicts, tuples as lists)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["options"] = dict(self.options)
        d["schedule_options"] = dict(self.schedule_options)
        return d


def log_uniform(low: float, high: float, n: int, seed: int = 0) -> list[float]:
    """``n`` learning rates drawn log-uniformly from ``[low, high)`` with ``seed``, sorted
    from high to low: ``exp(U(log low, log high))`` (the same seed gives the same rates).

    Raises:
        ValueError: ``low``/``high`` not positive and finite, ``high <= low``, or ``n < 1``.
    """
    if not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (low, high)):
        raise ValueError(f"the lr range must be two positive numbers, got {low!r}, {high!r}")
    if not high > low:
        raise ValueError(f"the lr range's high end ({high:g}) must exceed its low end ({low:g})")
    if int(n) != n or n < 1:
        raise ValueError(f"the number of samples must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    draws = np.exp(rng.uniform(math.log(low), math.log(high), int(n)))
    # exp(log(x)) may round a hair outside the range: clip back into it
    return sorted((float(min(max(v, low), high)) for v in draws), reverse=True)


@dataclass(frozen=True)
class SweepSpec:
    """A grid of optimizers x learning rates x schedules, the other options shared.

    Attributes:
        optimizers: optimizer names, in order.
        lrs: the learning rates, used with every optimizer and schedule.
        schedules: schedule names (see :class:`RunConfig`).
        epochs, batch_size, hidden, seed, n_train, backend: as :class:`RunConfig`.
        options: per optimizer name, its keyword arguments besides ``lr`` (e.g. the
            command line's ``{"SGD": {"momentum": 0.9}}``); missing names get none.
        schedule_options: arguments overriding every schedule preset's.
    """

    optimizers: Sequence[str]
    lrs: Sequence[float]
    schedules: Sequence[str] = ("constant",)
    epochs: int = 5
    batch_size: int = 32
    hidden: tuple[int, ...] = (256,)
    seed: int = 0
    n_train: int | None = None
    backend: str = "fused"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    schedule_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def random(
        cls, optimizers: Sequence[str], low: float, high: float, samples: int, **kw: Any
    ) -> SweepSpec:
        """A random search: ``samples`` rates drawn by :func:`log_uniform` (seeded with
        ``seed``, default 0), shared by every optimizer and schedule."""
        lrs = log_uniform(low, high, samples, kw.get("seed", 0))
        return cls(optimizers, lrs, **kw)

    @classmethod
    def grid(cls, optimizers: Sequence[str], lrs: Sequence[float], **kw: Any) -> SweepSpec:
        """A grid search over the given rates (the constructor, named)."""
        return cls(optimizers, lrs, **kw)

    def configs(self) -> list[RunConfig]:
        """Every run, optimizer-major: for each optimizer, each schedule, each lr."""
        return [
            RunConfig(
                optimizer=name,
                lr=lr,
                schedule=sched,
                epochs=self.epochs,
                batch_size=self.batch_size,
                hidden=tuple(self.hidden),
                seed=self.seed,
                n_train=self.n_train,
                backend=self.backend,
                options=_items(self.options.get(name)),
                schedule_options=_items(self.schedule_options),
            )
            for name in self.optimizers
            for sched in self.schedules
            for lr in self.lrs
        ]


# --------------------------------------------------------------------------- one run
@functools.lru_cache(maxsize=4)
def _digits(seed: int, n_train: int | None) -> Dataset:
    """The split digits, loaded once per process (a worker runs many configurations)."""
    return load_digits(seed=seed, n_train=n_train)


def build_run(config: RunConfig, data: Dataset | None = None) -> tuple[Dataset, MLP, Any, Any]:
    """The data, a fresh MLP, its optimizer and schedule for ``config``, as ``fusedopt
    train`` builds them (the command line's schedule presets, sized to the run's steps).

    Raises:
        KeyError: ``config.optimizer`` is not an optimizer the training loop can drive.
        ValueError: an unknown schedule.
        TypeError, ValueError: the optimizer or schedule rejects its arguments.
    """
    from fusedopt.lr_scheduler.presets import preset_arguments

    if data is None:
        data = _digits(config.seed, config.n_train)
    classes = dict(optimizer_classes(any_array=True))
    if config.optimizer not in classes:
        raise KeyError(f"unknown optimizer {config.optimizer!r} (choose from {', '.join(classes)})")
    model = MLP((data.n_features, *config.hidden, data.n_classes), seed=config.seed)
    kwargs = dict(config.options)
    kwargs["lr"] = config.lr
    opt = classes[config.optimizer](model.params, backend=config.backend, **kwargs)
    total = config.epochs * math.ceil(len(data.y_train) / config.batch_size)
    _, factory, arguments = preset_arguments(
        config.schedule, config.lr, total, dict(config.schedule_options)
    )
    sched = None if factory is None else factory(opt, **arguments)
    return data, model, opt, sched


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """fusedopt's and BLAS's threads set to ``n`` in the block (None: left as they are)."""
    if n is None:
        yield
        return
    before = fusedopt.get_num_threads()
    fusedopt.set_num_threads(n)
    try:
        with limit_blas_threads(n):
            yield
    finally:
        fusedopt.set_num_threads(before)


def _worker_name() -> str:
    """The Dask worker's address when running in one, else this process's id."""
    dist = sys.modules.get("distributed")
    if dist is not None:
        with contextlib.suppress(ValueError, AttributeError):
            return str(dist.get_worker().address)
    return f"pid {os.getpid()}"


def run_one(
    config: RunConfig,
    *,
    curves: bool = False,
    progress: bool = False,
    desc: str | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Train ``config`` from scratch and return what it reached, as a plain dict.

    Pure and deterministic: the result depends on ``config`` alone (and, with
    ``threads=None``, nothing else either as long as BLAS gives the same bits on its
    thread count), so any process (a Dask worker) computes the same numbers.

    Args:
        config: the run.
        curves: also return the run's :class:`~fusedopt.demo.History` as a dict under
            ``"history"`` (per-step losses and lrs, per-epoch losses and accuracies).
        progress: show fit's progress bar (tqdm), labelled ``desc``.
        desc: the progress bar's label.
        threads: fusedopt's and NumPy's BLAS threads during the run, restored after it
            (None: left as they are).

    Returns:
        ``{"key", "config", "test_accuracy", "train_loss", "test_loss", "diverged",
        "diverged_at", "seconds", "worker"}`` (+ ``"history"``): the final epoch's test
        accuracy, mean training loss and test loss (None when the run diverged);
        ``diverged_at`` ``{"epoch", "step", "loss", "lr"}`` of a diverged run (the loss
        may be inf or nan); the wall time; where it ran (a Dask worker's address or
        ``"pid N"``).
    """
    start = time.perf_counter()
    with _threads(threads):
        data, model, opt, sched = build_run(config)
        diverged: TrainingDiverged | None = None
        try:
            history = fit(
                model,
                opt,
                data.X_train,
                data.y_train,
                epochs=config.epochs,
                batch_size=config.batch_size,
                scheduler=sched,
                X_test=data.X_test,
                y_test=data.y_test,
                seed=config.seed,
                progress=progress,
                desc=desc,
            )
        except TrainingDiverged as exc:
            diverged, history = exc, exc.history
    out: dict[str, Any] = {
        "key": config.key,
        "config": config.to_dict(),
        "test_accuracy": None if diverged else float(history.test_accuracy[-1]),
        "train_loss": None if diverged else float(history.epoch_losses[-1]),
        "test_loss": None if diverged else float(history.test_loss[-1]),
        "diverged": diverged is not None,
        "diverged_at": None
        if diverged is None
        else {
            "epoch": diverged.epoch,
            "step": diverged.step,
            "loss": float(diverged.loss),
            "lr": float(diverged.current_lr),
        },
        "seconds": time.perf_counter() - start,
        "worker": _worker_name(),
    }
    if curves:
        out["history"] = asdict(history)
    return out


def history_of(result: Mapping[str, Any]) -> History:
    """The :class:`~fusedopt.demo.History` of a result of ``run_one(..., curves=True)``."""
    return History(**result["history"])


# --------------------------------------------------------------------------- the results file
class ResultsFileError(ValueError):
    """The results file is not a sweep's JSON Lines file (a line other than the last is
    not a JSON object with a ``"key"``)."""


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as the strings "nan", "inf", "-inf" (JSON-safe)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def read_results(path: str | os.PathLike[str], *, repair: bool = False) -> list[dict[str, Any]]:
    """The records of a results file, in file order (a missing file: none).

    A last line that is cut short (a writer killed mid-line) is ignored, and with
    ``repair`` cut off the file, so that the next record starts on a line of its own;
    its run counts as not done.

    Raises:
        ResultsFileError: another line is not a JSON object with a ``"key"``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    lines = raw.split(b"\n")
    offset = 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 or (i == len(lines) - 2 and not lines[-1])
        end = offset + len(line) + 1
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                    raise ValueError("not a record")
            except ValueError:
                if not last:
                    raise ResultsFileError(
                        f"{path}: line {i + 1} is not a sweep result (a JSON object with a "
                        "'key'); is this a sweep's results file?"
                    ) from None
                if repair:  # a torn last line: cut it off, its run will run again
                    with path.open("r+b") as f:
                        f.truncate(offset)
                break
            records.append(rec)
            if repair and i == len(lines) - 1:  # complete record, newline lost
                with path.open("ab") as f:
                    f.write(b"\n")
        offset = end
    return records


def _append(f: Any, record: Mapping[str, Any]) -> None:
    """One record as one line, flushed and fsynced: a crash loses at most this line."""
    f.write(json.dumps(_finite(dict(record)), allow_nan=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        results: one record per distinct configuration, in the order given (those found
            in the results file included).
        ran: how many runs this call trained.
        skipped: how many were already in the results file.
        path: the results file (None when none was written).
    """

    results: list[dict[str, Any]]
    ran: int
    skipped: int
    path: Path | None


def format_result(record: Mapping[str, Any]) -> str:
    """One line: ``Adam lr=0.001 cosine: test acc 95.83%, train loss 0.1234 (1.2 s, worker)``."""
    cfg = record["config"]
    head = f"{cfg['optimizer']} lr={cfg['lr']:.3g} {cfg['schedule']}"
    if record["diverged"]:
        at = record.get("diverged_at") or {}
        what = f"diverged (epoch {at.get('epoch', '?')}, loss={float(at.get('loss', 'nan')):.3g})"
    else:
        what = f"test acc {record['test_accuracy']:.2%}, train loss {record['train_loss']:.4f}"
    return f"{head}: {what} ({record['seconds']:.1f} s, {record['worker']})"


def _is_dask(client: Any) -> bool:
    return type(client).__module__.split(".")[0] == "distributed"


def _results(
    todo: list[RunConfig], client: Any, kwargs: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """The results of ``todo`` as they finish: in order in this process (``client`` None),
    else submitted all at once to a Dask client or a ``concurrent.futures`` executor."""
    if client is None:
        for cfg in todo:
            yield run_one(cfg, **kwargs)
        return
    if _is_dask(client):
        distributed = import_optional("distributed", "a sweep on Dask", extra="dask")
        # pure=False: a rerun trains again instead of reusing a result the cluster kept
        futures = [client.submit(run_one, cfg, pure=False, **kwargs) for cfg in todo]
        for fut in distributed.as_completed(futures):
            yield fut.result()
            fut.release()
        return
    import concurrent.futures as cf

    pending = [client.submit(run_one, cfg, **kwargs) for cfg in todo]
    for fut in cf.as_completed(pending):
        yield fut.result()


def run_sweep(
    configs: Iterable[RunConfig],
    results_path: str | os.PathLike[str] | None = None,
    client: Any = None,
    *,
    progress: bool = False,
    on_result: Callable[[dict[str, Any], int, int], None] | None = None,
    curves: bool = False,
    threads: int | None = 1,
) -> SweepResult:
    """Train every configuration not already in ``results_path``; collect all results.

    Args:
        configs: the runs (a configuration given twice runs once).
        results_path: a JSON Lines file: the runs whose key it holds are skipped, and each
            new result is appended to it (flushed and fsynced) as soon as it arrives.
            None: no file, every run runs.
        client: None to train serially in this process (the oracle: same numbers, bit for
            bit, as any other way), a ``distributed.Client`` (runs submitted at once and
            collected with ``distributed.as_completed``; a worker that dies loses no run,
            the scheduler resubmits its tasks), or a ``concurrent.futures`` executor.
        progress: a progress bar over the runs to do (tqdm), or, without tqdm, a line per
            finished run (:func:`format_result`).
        on_result: called as ``on_result(record, done, total)`` after each finished run
            (after it is written), ``done`` counting this call's runs.
        curves: keep each run's per-step history (``run_one(curves=True)``); it is not
            written to the file.
        threads: fusedopt's and BLAS's threads in each run (:func:`run_one`).

    Returns:
        A :class:`SweepResult`.

    Raises:
        ResultsFileError: ``results_path`` is not a sweep's results file.
    """
    unique: dict[str, RunConfig] = {}
    for cfg in configs:
        unique.setdefault(cfg.key, cfg)
    path = None if results_path is None else Path(results_path)
    done: dict[str, dict[str, Any]] = {}
    if path is not None:
        for rec in read_results(path, repair=True):
            if rec["key"] in unique:
                done[rec["key"]] = rec
    todo = [cfg for key, cfg in unique.items() if key not in done]
    kwargs: dict[str, Any] = {"curves": curves, "threads": threads}
    fresh: dict[str, dict[str, Any]] = {}
    show_lines = progress and not tqdm_available()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(path.open("a", encoding="utf-8")) if path and todo else None
        bar = stack.enter_context(
            progress_bar(
                total=len(todo), desc="sweep", disable=not (progress and todo) or show_lines
            )
        )
        for k, rec in enumerate(_results(todo, client, kwargs), 1):
            if out is not None:
                _append(out, {key: v for key, v in rec.items() if key != "history"})
            fresh[rec["key"]] = rec
            bar.update(1)
            if show_lines:
                print(f"[{k}/{len(todo)}] {format_result(rec)}", flush=True)
            if on_result is not None:
                on_result(rec, k, len(todo))
    results = [fresh.get(key) or done[key] for key in unique]
    return SweepResult(results, ran=len(fresh), skipped=len(done), path=path)


# --------------------------------------------------------------------------- Dask
def default_workers() -> int:
    """Workers of the embedded local cluster: one per core, at most 2 (each worker runs
    one training at a time on one thread)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, 2))


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None, *, timeout: float = CONNECT_TIMEOUT
) -> Iterator[Any]:
    """A ``distributed.Client`` for the block, closed after it.

    Args:
        scheduler: the address of a running scheduler (``tcp://HOST:PORT``); None starts
            an embedded ``LocalCluster(processes=True, threads_per_worker=1)``, closed
            with the client (its HTTP server on a free port: no clash with another).
        workers: the local cluster's workers (default :func:`default_workers`).
        timeout: seconds to wait for the scheduler and its first worker.

    Raises:
        MissingDependencyError: Dask's distributed is not installed.
        ConnectionError: the scheduler cannot be reached, or no worker joins it, within
            ``timeout`` (a one-line message).
    """
    distributed = import_optional("distributed", "a sweep on Dask", extra="dask")
    if scheduler is None:
        n = workers or default_workers()
        with (
            distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=timeout)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address...
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s: {why}"
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception as exc:
            raise ConnectionError(
                f"the Dask scheduler at {scheduler} has no worker (none joined within "
                f"{timeout:g} s): start one with 'dask worker {scheduler}'"
            ) from exc
        yield client
    finally:
        client.close()


def describe_executor(client: Any) -> str:
    """``"serially in this process"``, ``"on 2 Dask workers (tcp://...)"``..."""
    if client is None:
        return "serially in this process"
    if _is_dask(client):
        n = len(client.nthreads())
        return f"on {n} Dask worker{'s' if n != 1 else ''} (scheduler {client.scheduler.address})"
    return f"on {type(client).__name__}"
