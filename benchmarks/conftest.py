"""pytest-benchmark suite of fusedopt: run with ``python -m pytest benchmarks``.

Not part of the test run (``testpaths = ["tests"]``). The default grid finishes in a few
minutes on 2 cores; ``--bench-full`` (or ``FUSEDOPT_BENCH_FULL=1``) runs every size from
2^10 to 2^25, both dtypes, and every optimizer on the special cases.

Each optimizer benchmark puts the fused kernel (1 and all threads), the NumPy reference
and ``torch.optim`` (when installed) in one group, checks the timed optimizer against
the other implementation afterwards (:func:`fusedopt.bench.verify`), and records its
bytes per step. At the end, a summary gives every benchmark's GB/s and % of the
bandwidth of the trivial kernel with the same read/write pattern, measured in the same
run. Records: ``--benchmark-json``, ``--benchmark-save`` / ``--benchmark-compare``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import fusedopt
from fusedopt import bench

DEFAULT_SIZES = (12, 20)
FULL_SIZES = bench.DEFAULT_SIZES
DEFAULT_DTYPES = ("float32",)
FULL_DTYPES = ("float32", "float64")
#: The optimizers run on the special cases (1000x256, the model, 1 element) by default.
DEFAULT_CASE_OPTIMIZERS = ("adam",)
ALL_THREADS = fusedopt.get_num_threads()
THREADS = sorted({1, ALL_THREADS})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-full",
        action="store_true",
        default=os.environ.get("FUSEDOPT_BENCH_FULL", "") not in ("", "0"),
        help="fusedopt: the full grid (2^10..2^25, float32 and float64, every optimizer on "
        "every case); also FUSEDOPT_BENCH_FULL=1",
    )


def _id(case: bench.Case) -> str:
    """The case's name as a test id that ``-k`` accepts: 2^20 -> 2pow20."""
    return case.name.replace("^", "pow")


@dataclass(frozen=True)
class Spec:
    """One benchmark: an optimizer variant on a case and dtype, with one implementation."""

    variant: bench.Variant
    case: bench.Case
    dtype: str
    impl: str  # "numpy", "fused" or "torch"
    threads: int

    @property
    def group(self) -> str:
        return f"{self.variant.id} {self.case.name} {self.dtype}"

    @property
    def id(self) -> str:
        t = "" if self.impl == "numpy" else f"-{self.threads}t"
        return f"{self.variant.id}-{_id(self.case)}-{self.dtype}-{self.impl}{t}"


@dataclass(frozen=True)
class BandwidthSpec:
    """One bandwidth kernel: traffic with a pattern, or the triad, on a size and dtype."""

    pattern: bench.Pattern | None  # None: the triad
    case: bench.Case
    dtype: str
    threads: int

    @property
    def id(self) -> str:
        kernel = f"traffic-{self.pattern}" if self.pattern else "triad"
        return f"{kernel}-{_id(self.case)}-{self.dtype}-{self.threads}t"


#: Below this many elements a fused step runs on one thread whatever the setting.
PARALLEL_MIN = int(fusedopt.build_info().get("parallel_min_elements", 0))


def _impls(case: bench.Case, full: bool) -> Iterator[tuple[str, int]]:
    """numpy, then fused and torch at each thread count; the default grid skips the
    multi-thread runs of steps too small to be split (they would time the same thing)."""
    yield "numpy", 1
    threads = THREADS if full or case.numel >= PARALLEL_MIN else [1]
    for impl in ("fused", "torch"):
        for n in threads:
            yield impl, n


def _specs(
    variants: list[bench.Variant], cases: list[bench.Case], dtypes: tuple[str, ...], full: bool
) -> list:
    return [
        pytest.param(spec, id=spec.id)
        for case in cases
        for dtype in dtypes
        for variant in variants
        for impl, n in _impls(case, full)
        for spec in [Spec(variant, case, dtype, impl, n)]
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    full = metafunc.config.getoption("--bench-full")
    sizes = FULL_SIZES if full else DEFAULT_SIZES
    dtypes = FULL_DTYPES if full else DEFAULT_DTYPES
    if "opt_spec" in metafunc.fixturenames:
        cases = [bench.size_case(k) for k in sizes]
        metafunc.parametrize("opt_spec", _specs(bench.variants(), cases, dtypes, full))
    if "case_spec" in metafunc.fixturenames:
        chosen = bench.variants(None if full else DEFAULT_CASE_OPTIMIZERS)
        cases = [bench.many_case(), bench.model_case(), bench.overhead_case()]
        metafunc.parametrize("case_spec", _specs(chosen, cases, dtypes, full))
    if "bw_spec" in metafunc.fixturenames:
        patterns = sorted({bench.traffic_pattern(v) for v in bench.variants()}, key=str)
        specs = [
            BandwidthSpec(pattern, bench.size_case(k), dtype, n)
            for k in sizes
            for dtype in dtypes
            for pattern in [*patterns, None]
            for n in THREADS
        ]
        metafunc.parametrize("bw_spec", [pytest.param(s, id=s.id) for s in specs])


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def torch_mod() -> Any | None:
    """``torch``, or None when PyTorch is not installed."""
    return bench.torch_module()


@pytest.fixture
def threads(torch_mod: Any | None) -> Iterator[Callable[[int], None]]:
    """Sets fusedopt's (and torch's) thread count for one benchmark; restores it after."""
    before = fusedopt.get_num_threads()
    torch_before = torch_mod.get_num_threads() if torch_mod is not None else None

    def set_threads(n: int) -> None:
        fusedopt.set_num_threads(n)
        if torch_mod is not None:
            torch_mod.set_num_threads(n)

    yield set_threads
    fusedopt.set_num_threads(before)
    if torch_mod is not None:
        torch_mod.set_num_threads(torch_before)


class _ArrayCache:
    """The random arrays of the last (case, dtype): consecutive benchmarks share them.

    Every benchmark of a group steps the same parameter arrays (reset to their initial
    values on each call), as ``fusedopt bench`` does: where the allocator put a copy
    would otherwise favour or hurt one implementation (cache-set conflicts)."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.initial: list[np.ndarray] = []
        self.value: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def __call__(self, case: bench.Case, dtype: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.key != (case.name, dtype) or self.value is None:
            self.value = None  # free the previous arrays first
            self.initial, grads = bench.make_arrays(case, dtype)
            self.value = ([p.copy() for p in self.initial], grads)
            self.key = (case.name, dtype)
        for p, p0 in zip(self.value[0], self.initial, strict=True):
            p[...] = p0
        return self.value


@pytest.fixture(scope="session")
def arrays() -> _ArrayCache:
    """``arrays(case, dtype)``: the parameters and grads of a case (cached)."""
    return _ArrayCache()


@dataclass
class _Entry:
    group: str
    name: str
    nbytes: int
    limit_s: float | None
    fixture: Any


_ENTRIES: list[_Entry] = []
_LIMITS: dict[tuple[str, str, str, int], float] = {}


@pytest.fixture(scope="session")
def limit() -> Callable[[bench.Pattern, bench.Case, str, int], float]:
    """Seconds per sweep of the traffic kernel with a pattern on a case (cached per run)."""

    def measure(pattern: bench.Pattern, case: bench.Case, dtype: str, n: int) -> float:
        key = (str(pattern), case.name, dtype, n)
        if key not in _LIMITS:
            fusedopt.set_num_threads(n)
            _LIMITS[key] = bench.traffic_seconds(pattern, case, dtype)
        return _LIMITS[key]

    return measure


@pytest.fixture
def record() -> Callable[..., None]:
    """Records a benchmark for the end-of-run summary (GB/s, % of the traffic kernel)."""

    def add(group: str, name: str, nbytes: int, limit_s: float | None, fixture: Any) -> None:
        _ENTRIES.append(_Entry(group, name, nbytes, limit_s, fixture))

    return add


@pytest.fixture
def step_bench(
    benchmark: Any,
    arrays: _ArrayCache,
    threads: Callable[[int], None],
    torch_mod: Any | None,
    limit: Callable[..., float],
    record: Callable[..., None],
) -> Callable[[Spec], None]:
    """Runs one optimizer benchmark: times a step, then checks it (``verify``)."""

    def run(spec: Spec) -> None:
        if spec.impl == "torch" and torch_mod is None:
            pytest.skip("PyTorch is not installed")
        params, grads = arrays(spec.case, spec.dtype)
        threads(spec.threads)
        runner: bench.FusedRunner | bench.TorchRunner
        if spec.impl == "torch":
            try:
                runner = bench.TorchRunner(spec.variant, params, grads, torch_mod, copy=False)
            except LookupError as exc:
                pytest.skip(str(exc))
            params, grads = arrays(spec.case, spec.dtype)  # undo the trial step
        else:
            runner = bench.FusedRunner(spec.variant, params, grads, spec.impl, copy=False)
        pattern = bench.traffic_pattern(spec.variant)
        nbytes = pattern.bytes(spec.case.numel, np.dtype(spec.dtype).itemsize)
        benchmark.group = spec.group
        benchmark.extra_info.update(
            optimizer=spec.variant.id,
            case=spec.case.name,
            numel=spec.case.numel,
            n_tensors=spec.case.n_tensors,
            dtype=spec.dtype,
            impl=runner.impl,
            threads=spec.threads,
            pattern=str(pattern),
            bytes_per_step=nbytes,
        )
        fn, args = runner.timed()
        fn(*args)  # creates the state outside the timing
        benchmark(fn, *args)
        bench.verify(runner)  # the correctness check: one more step vs the other backend
        limit_s = limit(pattern, spec.case, spec.dtype, spec.threads)
        benchmark.extra_info["traffic_kernel_s"] = limit_s
        label = spec.impl if spec.impl == runner.impl else f"{spec.impl} ({runner.impl})"
        record(spec.group, f"{label} {spec.threads}t", nbytes, limit_s, benchmark)

    return run


# --------------------------------------------------------------------------- summary
def _median(fixture: Any) -> float | None:
    stats = getattr(getattr(fixture, "stats", None), "stats", None)
    return getattr(stats, "median", None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = [(e, _median(e.fixture)) for e in _ENTRIES]
    rows = [(e, m) for e, m in rows if m]
    if not rows:
        return
    tr = terminalreporter
    tr.section("fusedopt: bandwidth and % of the traffic kernel (median per step)")
    tr.write_line(f"{'group':<32} {'impl':<24} {'time':>10} {'GB/s':>7} {'% limit':>8}")
    for e, m in sorted(rows, key=lambda r: r[0].group):
        gbs = e.nbytes / m / 1e9
        pct = f"{100 * e.limit_s / m:.0f}%" if e.limit_s and e.nbytes else "-"
        tr.write_line(f"{e.group:<32} {e.name:<24} {m * 1e6:>8.1f}µs {gbs:>7.1f} {pct:>8}")
