"""The benchmark run: every optimizer variant on every case, dtype and thread count.

:func:`run_benchmarks` times the fused kernel, the NumPy reference and ``torch.optim``
on one shared set of arrays per case, checks each afterwards, and times the traffic
kernel with the same pattern over the same shapes and over the same arrays.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import fusedopt
from fusedopt import _core
from fusedopt.bench.cases import (
    Case,
    Pattern,
    Variant,
    default_cases,
    make_arrays,
    traffic_pattern,
    variants,
)
from fusedopt.bench.report import Report, Result, machine_info
from fusedopt.bench.runners import FusedRunner, Runner, TorchRunner, measure, torch_module, verify
from fusedopt.bench.traffic import apart, step_traffic_arrays, sweep_seconds, traffic_seconds
from fusedopt.demo.progress import progress_bar

__all__ = [
    "BACKENDS",
    "run_benchmarks",
]


#: What can be timed: the fused kernels, the NumPy reference, torch.optim.
BACKENDS = ("fused", "numpy", "torch")


# --------------------------------------------------------------------------- the run
def _set_threads(n: int, torch: Any | None) -> None:
    fusedopt.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def run_benchmarks(
    optimizers: Iterable[str] | None = None,
    cases: Sequence[Case] | None = None,
    dtypes: Sequence[str] = ("float32", "float64"),
    threads: Sequence[int] | None = None,
    backends: Sequence[str] = BACKENDS,
    *,
    repeats: int = 5,
    min_time: float = 0.02,
    check: bool = True,
    progress: bool = True,
    seed: int = 0,
) -> Report:
    """Times every optimizer variant on every case, dtype and thread count.

    Args:
        optimizers: variant ids or class names (see :func:`variants`); default all.
        cases: default :func:`default_cases`.
        dtypes: ``"float32"`` and/or ``"float64"``.
        threads: thread counts; default 1 and ``fusedopt.get_num_threads()`` at the call.
        backends: a subset of :data:`BACKENDS`; "torch" is skipped when PyTorch is absent.
        repeats, min_time: see :func:`measure`.
        check: verify every timed optimizer after timing (:func:`verify`).
        progress: show a progress bar on stderr (tqdm, when installed).
        seed: the random arrays' seed.

    The NumPy reference does not use threads: it is timed once per case, optimizer and
    dtype and compared with the fused kernel at every thread count.
    """
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    chosen = variants(optimizers)
    cases = list(default_cases() if cases is None else cases)
    initial_threads = fusedopt.get_num_threads()
    if threads is None:
        threads = sorted({1, initial_threads})
    torch = torch_module() if "torch" in backends else None
    torch_threads = torch.get_num_threads() if torch is not None else None
    meta = machine_info(torch)
    meta["settings"] = {
        "optimizers": [v.id for v in chosen],
        "cases": [c.name for c in cases],
        "dtypes": list(dtypes),
        "threads": list(threads),
        "backends": [b for b in backends if b != "torch" or torch is not None],
        "repeats": repeats,
        "min_time": min_time,
        "check": check,
        "seed": seed,
    }
    run = _Run(repeats, min_time, check, torch, backends)
    units = list(itertools.product(cases, dtypes, chosen))
    per_unit = ("numpy" in backends) + len(threads) * (
        1 + ("fused" in backends) + (torch is not None)
    )
    try:
        with progress_bar(
            total=len(units) * per_unit, desc="bench", disable=not progress, unit="run"
        ) as bar:
            for case, dtype, variant in units:
                bar.set_description(f"{case.name} {dtype} {variant.id}")
                run.unit(case, dtype, variant, threads, seed, bar)
            run.bandwidth += _bus_figures(
                cases, dtypes, threads, run.patterns.values(), torch, repeats, min_time
            )
    finally:
        fusedopt.set_num_threads(initial_threads)
        if torch is not None:
            torch.set_num_threads(torch_threads)
    if hasattr(os, "getloadavg"):
        meta["loadavg_end"] = list(os.getloadavg())
    return Report(run.results, run.bandwidth, meta)


class _Run:
    """The state of one :func:`run_benchmarks`: settings, results, traffic-kernel cache."""

    def __init__(
        self, repeats: int, min_time: float, check: bool, torch: Any | None, backends: Sequence[str]
    ) -> None:
        self.repeats, self.min_time, self.check = repeats, min_time, check
        self.torch = torch
        self.backends = backends
        self.results: list[Result] = []
        self.bandwidth: list[dict[str, Any]] = []
        self.limits: dict[tuple[str, str, str, int], float] = {}
        self.patterns: dict[str, Pattern] = {}

    def time(self, runner: Runner) -> float:
        """Median seconds per step of ``runner``, then (if checking) :func:`verify`."""
        fn, args = runner.timed()
        seconds, _ = measure(fn, *args, repeats=self.repeats, min_time=self.min_time)
        if self.check:
            verify(runner)
        return seconds

    def limit(self, pattern: Pattern, case: Case, dtype: str, threads: int) -> float:
        """Seconds per sweep of the traffic kernel with ``pattern`` over ``case`` (cached)."""
        key = (str(pattern), case.name, dtype, threads)
        if key not in self.limits:
            seconds = traffic_seconds(
                pattern, case, dtype, repeats=self.repeats, min_time=self.min_time
            )
            self.limits[key] = seconds
            nbytes = pattern.bytes(case.numel, np.dtype(dtype).itemsize)
            self.bandwidth.append(
                {
                    "kernel": f"traffic {pattern}",
                    "case": case.name,
                    "numel": case.numel,
                    "dtype": dtype,
                    "threads": threads,
                    "seconds": seconds,
                    "gbs": nbytes / seconds / 1e9,
                }
            )
        return self.limits[key]

    def limit_on(
        self, pattern: Pattern, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]
    ) -> float:
        """Seconds per sweep of the traffic kernel with ``pattern`` over the step's own
        arrays: ``params`` (changed) and ``grads``, with state arrays placed as the
        optimizers place theirs (:func:`fusedopt._memory.spread_full_like`)."""
        inplace, readonly = step_traffic_arrays(pattern, params, grads)
        return sweep_seconds(
            _core.traffic, inplace, readonly, 0.5, repeats=self.repeats, min_time=self.min_time
        )

    def unit(
        self,
        case: Case,
        dtype: str,
        variant: Variant,
        threads: Sequence[int],
        seed: int,
        bar: Any,
    ) -> None:
        """Times ``variant`` on ``case`` and ``dtype`` with every backend and thread count."""
        if variant.id not in self.patterns:
            self.patterns[variant.id] = traffic_pattern(variant)
        pattern = self.patterns[variant.id]
        initial, grads = make_arrays(case, dtype, seed)
        # Every implementation steps the same arrays (reset in between), so that none is
        # favoured or hurt by where the allocator happened to put its copy.
        params = [p.copy() for p in initial]

        def reset() -> list[np.ndarray]:
            for p, p0 in zip(params, initial, strict=True):
                p[...] = p0
            return params

        numpy_s = None
        if "numpy" in self.backends:
            _set_threads(1, self.torch)
            numpy_s = self.time(FusedRunner(variant, reset(), grads, "numpy", copy=False))
            bar.update()
        for n in threads:
            _set_threads(n, self.torch)
            res = Result(
                case=case.name,
                n_tensors=case.n_tensors,
                numel=case.numel,
                optimizer=variant.id,
                config=dict(variant.kwargs),
                dtype=dtype,
                threads=n,
                pattern=str(pattern),
                bytes_per_step=pattern.bytes(case.numel, np.dtype(dtype).itemsize),
                numpy_s=numpy_s,
            )
            if numpy_s is not None and self.check:
                res.checked.append("numpy")
            if "fused" in self.backends:
                res.fused_s = self.time(FusedRunner(variant, reset(), grads, "fused", copy=False))
                res.checked += ["fused"] if self.check else []
                bar.update()
            if self.torch is not None:
                try:
                    runner = TorchRunner(variant, reset(), grads, self.torch, copy=False)
                except LookupError:
                    pass  # no such optimizer in torch.optim (Lion)
                else:
                    reset()  # undo the trial step
                    res.torch_impl = runner.impl
                    res.torch_s = self.time(runner)
                    res.checked += ["torch"] if self.check else []
                    del runner
                bar.update()
            res.limit_s = self.limit(pattern, case, dtype, n)
            res.limit_same_s = self.limit_on(pattern, params, grads)
            bar.update()
            self.results.append(res)


def _bus_figures(
    cases: Sequence[Case],
    dtypes: Sequence[str],
    threads: Sequence[int],
    patterns: Iterable[Pattern],
    torch: Any | None,
    repeats: int,
    min_time: float,
) -> list[dict[str, Any]]:
    """At the largest single-tensor case: the STREAM triad (the classic bus figure), and
    each traffic pattern on arrays laid out as NumPy allocates them (all at one offset in
    a page), to show what that layout costs against the staggered traffic kernel."""
    single = [c for c in cases if c.n_tensors == 1 and c.numel > 1]
    if not single:
        return []
    case = max(single, key=lambda c: c.numel)
    out = []

    def row(kernel: str, dtype: str, n: int, seconds: float, nbytes: int) -> dict[str, Any]:
        return {
            "kernel": kernel,
            "case": case.name,
            "numel": case.numel,
            "dtype": dtype,
            "threads": n,
            "seconds": seconds,
            "gbs": nbytes / seconds / 1e9,
        }

    for dtype in dtypes:
        dt = np.dtype(dtype)
        a, b, c = (apart(case.numel, dt, k) for k in range(3))
        for n in threads:
            _set_threads(n, torch)
            seconds = sweep_seconds(_core.triad, a, b, c, repeats=repeats, min_time=min_time)
            out.append(row("triad 2R1W", dtype, n, seconds, 3 * case.numel * dt.itemsize))
        del a, b, c
        for pattern in sorted(set(patterns), key=str):
            for n in threads:
                _set_threads(n, torch)
                seconds = traffic_seconds(
                    pattern, case, dtype, repeats=repeats, min_time=min_time, staggered=False
                )
                nbytes = pattern.bytes(case.numel, dt.itemsize)
                out.append(row(f"traffic {pattern}, numpy layout", dtype, n, seconds, nbytes))
    return out
