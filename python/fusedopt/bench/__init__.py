"""The benchmark engine behind ``fusedopt bench``, ``benchmarks/`` and BENCHMARKS.md.

For every optimizer (discovered from ``fusedopt.__all__``) on every case (one tensor of
2^k elements, 1000 tensors of 256, a 160-tensor CNN-like model, a 1-element tensor),
dtype and thread count, it times one step of

* the fused kernel (``backend="fused"``),
* the NumPy reference (``backend="numpy"``; single-threaded, measured once),
* ``torch.optim`` when PyTorch is installed, on ``torch.from_numpy`` views of the same
  arrays: ``fused=True`` where PyTorch has a fused CPU kernel, else ``foreach=False``,

and, in the same run, the trivial *traffic* kernel of ``fusedopt._core`` with the same
read/write pattern over the same tensors, through the same parallel loop. Each step's
bytes are ``numel * itemsize * (reads + writes)``; an optimizer with ``s`` element-wise
state arrays reads ``2 + s`` arrays (param, grad, state) and writes ``1 + s``, so
SGD is 2R1W, SGD with momentum 3R2W, Adam 4R3W, Adam with amsgrad 5R4W. Results are
reported as time per step, GB/s, % of the traffic kernel (at 2^25 elements: the bus
limit) and speed-ups over the NumPy reference and PyTorch.

Every timed optimizer is checked afterwards: from the state it reached, one more step
must agree with the other implementation (the fused kernel and PyTorch with the NumPy
reference, the reference with the fused kernel; see :func:`verify`).

Example::

    >>> from fusedopt import bench
    >>> report = bench.run_benchmarks(optimizers=["adam"], cases=[bench.size_case(10)],
    ...                               dtypes=["float32"], threads=[1])  # doctest: +SKIP
    >>> print(bench.format_table(report))  # doctest: +SKIP

From the command line: ``fusedopt bench --json out.json --markdown table.md`` (or
``python -m fusedopt.bench``).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

import fusedopt
from fusedopt import _core
from fusedopt._memory import spread_full_like
from fusedopt._optional import optional_module

__all__ = [
    "BACKENDS",
    "BENCH_DESCRIPTION",
    "BENCH_HELP",
    "DEFAULT_SIZES",
    "BenchCheckError",
    "Case",
    "FusedRunner",
    "Pattern",
    "Report",
    "Result",
    "TorchRunner",
    "Variant",
    "add_bench_arguments",
    "apart",
    "default_cases",
    "format_comparison",
    "format_markdown",
    "format_table",
    "machine_info",
    "main",
    "make_arrays",
    "many_case",
    "measure",
    "model_case",
    "overhead_case",
    "run_bench_cli",
    "run_benchmarks",
    "size_case",
    "step_traffic_arrays",
    "sweep_seconds",
    "torch_module",
    "traffic_arrays",
    "traffic_pattern",
    "traffic_seconds",
    "variants",
    "verify",
    "write_markdown",
]

#: What can be timed: the fused kernels, the NumPy reference, torch.optim.
BACKENDS = ("fused", "numpy", "torch")
#: Exponents of the single-tensor sizes of a default run: 2^10 ... 2^25 elements.
DEFAULT_SIZES = (10, 13, 16, 19, 22, 25)
#: Variants timed besides each optimizer's defaults (they change the read/write pattern).
EXTRA_VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "SGD": [("sgd-momentum", {"momentum": 0.9})],
    "Adam": [("adam-amsgrad", {"amsgrad": True})],
}


class BenchCheckError(AssertionError):
    """A timed optimizer's step disagreed with the other implementation."""


# --------------------------------------------------------------------------- what to run
@dataclass(frozen=True)
class Variant:
    """An optimizer configuration: a readable id, the class and its keyword arguments."""

    id: str
    cls: type[fusedopt.Optimizer]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def make(self, params: list[np.ndarray], backend: str) -> fusedopt.Optimizer:
        """A new optimizer of this configuration over ``params``."""
        return self.cls(params, backend=backend, **self.kwargs)


def _optimizer_classes() -> list[type[fusedopt.Optimizer]]:
    out = []
    for name in fusedopt.__all__:
        obj = getattr(fusedopt, name, None)
        if isinstance(obj, type) and issubclass(obj, fusedopt.Optimizer):
            if obj is not fusedopt.Optimizer:
                out.append(obj)
    return out


def variants(names: Iterable[str] | None = None) -> list[Variant]:
    """The optimizer configurations to time: each exported optimizer with its defaults,
    plus :data:`EXTRA_VARIANTS`.

    ``names`` (case-insensitive) keeps a class with all its variants (``"adam"``) or one
    variant (``"adam-amsgrad"``); ValueError for an unknown name.
    """
    every: list[Variant] = []
    for cls in _optimizer_classes():
        every.append(Variant(cls.__name__.lower(), cls, {}))
        every.extend(Variant(vid, cls, kw) for vid, kw in EXTRA_VARIANTS.get(cls.__name__, []))
    if names is None:
        return every
    wanted = [n.strip().lower() for n in names if n.strip()]
    known = {v.id for v in every}
    for n in wanted:
        if n not in known:
            raise ValueError(f"unknown optimizer {n!r}; choose from {', '.join(sorted(known))}")
    return [v for v in every if v.id in wanted or v.cls.__name__.lower() in wanted]


@dataclass(frozen=True)
class Pattern:
    """An optimizer step's memory traffic: arrays read and written per element."""

    reads: int
    writes: int

    @property
    def readonly(self) -> int:
        """Arrays only read (the grad)."""
        return self.reads - self.writes

    def bytes(self, numel: int, itemsize: int) -> int:
        """Bytes one step moves over ``numel`` elements of ``itemsize`` bytes."""
        return numel * itemsize * (self.reads + self.writes)

    def __str__(self) -> str:
        return f"{self.reads}R{self.writes}W"


def traffic_pattern(variant: Variant) -> Pattern:
    """The read/write pattern of ``variant``, from the state arrays it keeps.

    A step reads the param, the grad and ``s`` state arrays and writes the param and the
    ``s`` state arrays back: ``(2 + s)R(1 + s)W``.
    """
    p = np.zeros(8)
    opt = variant.make([p], "fused")
    opt.step([np.full(8, 0.5)])
    n_state = sum(1 for v in opt.state[0].values() if np.shape(v) == p.shape) if opt.state else 0
    return Pattern(2 + n_state, 1 + n_state)


@dataclass(frozen=True)
class Case:
    """A set of parameter shapes, stepped together."""

    name: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def n_tensors(self) -> int:
        """Number of parameter tensors."""
        return len(self.shapes)

    @property
    def numel(self) -> int:
        """Total number of elements."""
        return sum(math.prod(s) for s in self.shapes)


def size_case(exponent: int) -> Case:
    """One tensor of ``2**exponent`` elements."""
    return Case(f"2^{exponent}", ((1 << exponent,),))


def many_case(count: int = 1000, size: int = 256) -> Case:
    """``count`` tensors of ``size`` elements (a step dominated by per-tensor overhead)."""
    return Case(f"{count}x{size}", ((size,),) * count)


def model_case() -> Case:
    """A 160-tensor CNN-like model of 11.18 M parameters.

    39 blocks of a 3x3 convolution (weight and bias) and a batch norm (weight and bias)
    -- 14 blocks of 64 channels, 14 of 128, 9 of 256, 2 of 512 -- then a 256-unit
    hidden layer and a 10-class output layer (weight and bias each): 117 small vectors
    and 43 large tensors, as in a ResNet-18.
    """
    shapes: list[tuple[int, ...]] = []
    cin = 3
    for channels, blocks in ((64, 14), (128, 14), (256, 9), (512, 2)):
        for _ in range(blocks):
            shapes += [(channels, cin, 3, 3), (channels,), (channels,), (channels,)]
            cin = channels
    shapes += [(256, cin), (256,), (10, 256), (10,)]
    return Case("model-160", tuple(shapes))


def overhead_case() -> Case:
    """One 1-element tensor: the cost of a step that does no work."""
    return Case("1-element", ((1,),))


def default_cases(sizes: Sequence[int] = DEFAULT_SIZES) -> list[Case]:
    """The single-tensor sizes, then 1000x256, the 160-tensor model and the 1-element case."""
    return [*(size_case(k) for k in sizes), many_case(), model_case(), overhead_case()]


def make_arrays(
    case: Case, dtype: np.dtype | str, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random parameters (standard normal) and grads (normal, scale 0.1) for ``case``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    params = [rng.standard_normal(s, dtype=dt) for s in case.shapes]
    grads = [rng.standard_normal(s, dtype=dt) * dt.type(0.1) for s in case.shapes]
    return params, grads


# --------------------------------------------------------------------------- timing
def measure(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    min_time: float = 0.02,
    max_time: float = 10.0,
) -> tuple[float, list[float]]:
    """Median seconds per call of ``fn(*args)`` over ``repeats`` timed repeats.

    Each repeat calls ``fn`` enough times in a row to last at least ``min_time`` seconds
    (calibrated like ``timeit.autorange``, after one warm-up call); the garbage
    collector is off while timing. Fewer repeats (at least one) are taken when they
    would last more than ``max_time`` in all. Returns the median and every repeat's
    per-call time.
    """
    timer = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        fn(*args)
        number = 1
        while True:
            t0 = timer()
            for _ in itertools.repeat(None, number):
                fn(*args)
            elapsed = timer() - t0
            if elapsed >= min_time:
                break
            guess = int(number * min_time / max(elapsed, 1e-9) * 1.2) + 1
            number = min(max(number * 2, guess), number * 100)
        samples = [elapsed / number]
        for _ in range(min(repeats, int(max_time / elapsed)) - 1):
            t0 = timer()
            for _ in itertools.repeat(None, number):
                fn(*args)
            samples.append((timer() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples), samples


# --------------------------------------------------------------------------- runners
def torch_module() -> Any | None:
    """``torch`` if it is installed, else None (PyTorch is never a dependency)."""
    return optional_module("torch")


class FusedRunner:
    """A fusedopt optimizer (``backend`` "fused" or "numpy") over copies of the arrays
    (with ``copy=False``: over the arrays themselves)."""

    def __init__(
        self,
        variant: Variant,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        backend: str,
        *,
        copy: bool = True,
    ) -> None:
        self.variant = variant
        self.backend = backend
        self.params = [p.copy() for p in params] if copy else list(params)
        self.grads = list(grads)
        self.opt = variant.make(self.params, backend)
        self.impl = backend

    def timed(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The callable one step is and its arguments: ``opt.step(grads)``."""
        return self.opt.step, (self.grads,)

    def step(self) -> None:
        """One step."""
        self.opt.step(self.grads)

    def snapshot(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Copies of the parameters and a fusedopt state dict."""
        return [p.copy() for p in self.params], self.opt.state_dict()


class TorchRunner:
    """``torch.optim.<same name>`` over ``torch.from_numpy`` views of copies of the arrays
    (with ``copy=False``: of the arrays themselves, which a trial step then changes).

    Uses ``fused=True`` where PyTorch has a fused CPU kernel for the class, else
    ``foreach=False`` (the single-tensor loop); ``impl`` says which.
    """

    def __init__(
        self,
        variant: Variant,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        torch: Any,
        *,
        copy: bool = True,
    ) -> None:
        self.variant = variant
        self.backend = "torch"
        self.torch = torch
        # torch keeps scalar state (step, NAdam's mu_product) in its default dtype;
        # fusedopt keeps it in float64, as the contract says: compare like with like.
        torch.set_default_dtype(torch.float64)
        cls = getattr(torch.optim, variant.cls.__name__, None)
        if cls is None:
            raise LookupError(f"torch.optim has no {variant.cls.__name__}")
        self.grads = list(grads)
        last: Exception | None = None

        def fresh() -> list[np.ndarray]:
            return [p.copy() for p in params] if copy else list(params)

        for impl, extra in (("fused", {"fused": True}), ("foreach=False", {"foreach": False})):
            self.params = fresh()
            self.tensors = [torch.from_numpy(p) for p in self.params]
            for t, g in zip(self.tensors, self.grads, strict=True):
                t.grad = torch.from_numpy(g)
            try:
                self.opt = cls(self.tensors, **variant.kwargs, **extra)
                self.opt.step()  # a fused kernel that does not exist on CPU fails here
            except (TypeError, RuntimeError, ValueError) as exc:
                last = exc
                continue
            self.impl = impl
            # restart from the initial values so that every backend starts alike
            self.params = fresh()
            self.tensors = [torch.from_numpy(p) for p in self.params]
            for t, g in zip(self.tensors, self.grads, strict=True):
                t.grad = torch.from_numpy(g)
            self.opt = cls(self.tensors, **variant.kwargs, **extra)
            return
        raise LookupError(f"torch.optim.{variant.cls.__name__} failed on CPU: {last}")

    def timed(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``opt.step()`` (the grads are set once, on the tensors)."""
        return self.opt.step, ()

    def step(self) -> None:
        """One step."""
        self.opt.step()

    def snapshot(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Copies of the parameters and torch's state as a fusedopt state dict.

        The state keys are PyTorch's in both libraries; torch's SGD keeps no ``step``,
        which fusedopt's SGD needs only to tell the first step (any value >= 1 says
        "not the first").
        """
        template = self.variant.make([np.zeros(1, p.dtype) for p in self.params], "numpy")
        state: dict[int, dict[str, np.ndarray]] = {}
        for i, t in enumerate(self.tensors):
            st = {}
            for k, v in self.opt.state.get(t, {}).items():
                if v is None:
                    continue
                st[k] = np.array(v.numpy() if hasattr(v, "numpy") else v)
            if st and "step" in template.scalar_names and "step" not in st:
                st["step"] = np.array(1.0)
            if st:
                state[i] = st
        groups = template.state_dict()["param_groups"]
        return [p.copy() for p in self.params], {"state": state, "param_groups": groups}


Runner = FusedRunner | TorchRunner


_CHUNK = 1 << 16  # elements compared at a time: float64 temporaries that stay in cache


def _compare(
    name: str,
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    before: Sequence[np.ndarray] | None = None,
) -> str | None:
    """None if every ``actual[i]`` agrees with ``expected[i]``; else a message.

    Agreement: within 64 ulps of each value plus 64 ulps of the largest value of that
    array (for values near zero). With ``before`` (the values before the step), the
    change ``actual - before`` must also be within 0.1% of ``expected - before``, up
    to the same ulps: a step that is off by a little is caught even where the
    parameters are much larger than the step. NaN agrees with NaN.
    """
    if not expected:
        return None
    eps = float(np.finfo(expected[0].dtype).eps)
    sizes = np.array([x.size for x in expected], dtype=np.int64)
    if [x.size for x in actual] != sizes.tolist():
        return f"{name}: sizes {[x.size for x in actual]}, expected {sizes.tolist()}"
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    a = np.concatenate([np.ravel(x) for x in actual])
    e = np.concatenate([np.ravel(x) for x in expected])
    b = None if before is None else np.concatenate([np.ravel(x) for x in before])
    scale = np.zeros(len(sizes))
    nonempty = sizes > 0
    if e.size:
        with np.errstate(invalid="ignore"):
            scale[nonempty] = np.fmax.reduceat(np.abs(e), offsets[nonempty])
    scale_of = np.repeat(scale.astype(e.dtype), sizes)
    n_bad, worst, worst_at, what = 0, -np.inf, -1, "values"
    for lo in range(0, e.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        ac, ec = a[sl].astype(np.float64), e[sl].astype(np.float64)
        both_nan = np.isnan(ac) & np.isnan(ec)
        slack = 64 * eps * (np.abs(ec) + scale_of[sl])
        excess = np.abs(ac - ec) - slack
        if b is not None:
            bc = b[sl].astype(np.float64)
            d_exp = ec - bc
            step_slack = 64 * eps * (np.abs(bc) + np.abs(d_exp)) + 1e-3 * np.abs(d_exp)
            excess = np.fmax(excess, np.abs((ac - bc) - d_exp) - step_slack)
        with np.errstate(invalid="ignore"):
            bad = ~(excess <= 0) & ~both_nan
        count = int(np.count_nonzero(bad))
        if count:
            n_bad += count
            k = int(np.argmax(np.where(bad, np.nan_to_num(excess, nan=np.inf), -np.inf)))
            if worst_at < 0 or excess[k] > worst:
                worst, worst_at = float(excess[k]), lo + k
    if not n_bad:
        return None
    i = int(np.searchsorted(offsets, worst_at, side="right") - 1)
    j = worst_at - int(offsets[i])
    if b is not None:
        what = "values (or changes in the step)"
    return (
        f"{name}: {n_bad} of {e.size} {what} differ; worst: {name}[{i}].flat[{j}] is "
        f"{float(a[worst_at])!r}, expected {float(e[worst_at])!r}"
    )


def verify(runner: Runner) -> None:
    """Checks the runner's kernel on the state it has reached: one more step must agree
    with the other implementation started from a copy of that state.

    The fused kernel and PyTorch are checked against the NumPy reference; the NumPy
    reference against the fused kernel. The parameters, their change in the step and
    every state array are compared (see :func:`_compare`). Raises
    :class:`BenchCheckError`.
    """
    variant = runner.variant
    before, sd = runner.snapshot()
    other = "fused" if runner.backend == "numpy" else "numpy"
    ref_params = [p.copy() for p in before]
    ref = variant.make(ref_params, other)
    if sd["state"]:
        ref.load_state_dict(sd)
    runner.step()
    ref.step(runner.grads)
    after, sd_after = runner.snapshot()
    problems = [_compare("params", after, ref_params, before)]
    ref_state = ref.state_dict()["state"]
    keys = {k for st in sd_after["state"].values() for k, v in st.items() if np.ndim(v) > 0}
    for key in sorted(keys):
        idx = [
            i for i, st in sd_after["state"].items() if key in st and key in ref_state.get(i, {})
        ]
        problems.append(
            _compare(
                f"state[{key!r}]",
                [sd_after["state"][i][key] for i in idx],
                [ref_state[i][key] for i in idx],
            )
        )
    found = [p for p in problems if p]
    if found:
        impl = runner.backend if runner.impl == runner.backend else f"torch, {runner.impl}"
        what = f"{variant.id} ({impl})"
        raise BenchCheckError(f"{what} disagrees with {other}: " + "; ".join(found))


#: Bytes between the page offsets of the arrays of a bandwidth kernel (see :func:`apart`).
PAGE_STAGGER = 384


def apart(n: int, dtype: np.dtype | str, k: int, fill: float = 1.0) -> np.ndarray:
    """An array of ``n`` elements filled with ``fill`` whose data starts
    ``64 + k * PAGE_STAGGER`` bytes into a 4 KiB page.

    NumPy's large arrays all start at the same offset in a page (16 bytes, after glibc's
    header), so element i of every array of a step has the same low 12 address bits:
    the loads and stores of the streams then compete for the same cache sets and trip
    the CPU's 4K-aliasing check. The bandwidth kernels use arrays k = 0, 1, ... staggered
    by this function, so that they measure the bus, not that collision.
    """
    dt = np.dtype(dtype)
    offset = (64 + k * PAGE_STAGGER) % 4096
    buf = np.empty(n * dt.itemsize + 4096 + offset, np.uint8)
    start = (-buf.ctypes.data) % 4096 + offset
    out = buf[start : start + n * dt.itemsize].view(dt)
    out.fill(fill)
    return out


def traffic_arrays(
    pattern: Pattern, case: Case, dtype: np.dtype | str, *, staggered: bool = True
) -> tuple[list[Any], list[Any]]:
    """The ``inplace`` and ``readonly`` arguments of ``_core.traffic`` with ``pattern``
    over arrays shaped like ``case``'s, filled with ones (a list per role when the case
    has several tensors).

    ``staggered``: each role's large arrays (64 KiB and more, which NumPy places 16 bytes
    into fresh pages) start at another offset in a page (:func:`apart`); else, and for
    small arrays (packed by malloc, as a model's small tensors are), plain ``numpy.ones``.
    """
    dt = np.dtype(dtype)
    flat = [int(math.prod(s)) for s in case.shapes]

    def array(n: int, k: int) -> np.ndarray:
        if staggered and n * dt.itemsize >= 1 << 16:
            return apart(n, dt, k)
        return np.ones(n, dt)

    return _traffic_args([[array(n, k) for n in flat] for k in range(pattern.reads)], pattern)


def step_traffic_arrays(
    pattern: Pattern, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]
) -> tuple[list[Any], list[Any]]:
    """The ``inplace`` and ``readonly`` arguments of ``_core.traffic`` with ``pattern`` over
    a step's own arrays: the parameters and ``writes - 1`` state-like arrays (allocated
    as the optimizers allocate their state) in place, the grads read-only."""
    if any(not p.flags.c_contiguous for p in params):
        raise ValueError("the traffic kernel takes C-contiguous arrays")
    roles: list[list[np.ndarray]] = [list(params)]
    roles += [[spread_full_like(p, 1.0, k) for p in params] for k in range(pattern.writes - 1)]
    roles += [list(grads)] * pattern.readonly
    return _traffic_args([[a.reshape(-1) for a in role] for role in roles], pattern)


def _traffic_args(roles: list[list[np.ndarray]], pattern: Pattern) -> tuple[list[Any], list[Any]]:
    """Roles (one list of arrays each: in-place roles first) as ``_core.traffic``'s
    ``inplace`` and ``readonly``: a bare array for a one-tensor case."""
    packed = [role[0] if len(role) == 1 else role for role in roles]
    return packed[: pattern.writes], packed[pattern.writes :]


def sweep_seconds(
    kernel: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    min_time: float = 0.02,
) -> float:
    """Median seconds of one sweep of a bandwidth kernel (``_core.traffic`` or
    ``_core.triad``), without the cost of the call: the kernel runs ``repeat`` sweeps
    per call (its argument checks once), calibrated to last ``min_time``."""
    repeat = 1
    while True:
        t0 = time.perf_counter()
        kernel(*args, repeat=repeat)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or repeat >= 1 << 24:
            break
        repeat = min(repeat * 100, max(repeat * 2, int(repeat * min_time / max(elapsed, 1e-9))))
    seconds, _ = measure(lambda: kernel(*args, repeat=repeat), repeats=repeats, min_time=min_time)
    return seconds / repeat


def traffic_seconds(
    pattern: Pattern,
    case: Case,
    dtype: np.dtype | str,
    *,
    repeats: int = 5,
    min_time: float = 0.02,
    staggered: bool = True,
) -> float:
    """Seconds per sweep of the traffic kernel with ``pattern`` over ``case``'s tensors at
    the current thread setting: the limit an optimizer step with that pattern can reach
    (with ``staggered=False``: on arrays laid out as NumPy allocates them)."""
    inplace, readonly = traffic_arrays(pattern, case, dtype, staggered=staggered)
    return sweep_seconds(_core.traffic, inplace, readonly, 0.5, repeats=repeats, min_time=min_time)


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """One optimizer on one case, dtype and thread count. Times are seconds per step
    (median), None where that backend was not run."""

    case: str
    n_tensors: int
    numel: int
    optimizer: str
    config: dict[str, Any]
    dtype: str
    threads: int
    pattern: str
    bytes_per_step: int
    fused_s: float | None = None
    numpy_s: float | None = None
    torch_s: float | None = None
    torch_impl: str | None = None
    limit_s: float | None = None
    limit_same_s: float | None = None
    checked: list[str] = field(default_factory=list)

    def gbs(self, seconds: float | None) -> float | None:
        """GB/s (1e9 bytes) of a step taking ``seconds``."""
        return self.bytes_per_step / seconds / 1e9 if seconds else None

    @property
    def fused_gbs(self) -> float | None:
        """GB/s of the fused step."""
        return self.gbs(self.fused_s)

    @property
    def limit_gbs(self) -> float | None:
        """GB/s of the traffic kernel with the same pattern, tensors, dtype and threads."""
        return self.gbs(self.limit_s)

    @property
    def pct_of_limit(self) -> float | None:
        """The fused step's bandwidth in % of the traffic kernel's."""
        if self.fused_s and self.limit_s:
            return 100.0 * self.limit_s / self.fused_s
        return None

    @property
    def pct_of_same(self) -> float | None:
        """The fused step's bandwidth in % of the traffic kernel's over the same arrays."""
        if self.fused_s and self.limit_same_s:
            return 100.0 * self.limit_same_s / self.fused_s
        return None

    @property
    def speedup_numpy(self) -> float | None:
        """NumPy reference time / fused time."""
        return self.numpy_s / self.fused_s if self.fused_s and self.numpy_s else None

    @property
    def speedup_torch(self) -> float | None:
        """PyTorch time / fused time."""
        return self.torch_s / self.fused_s if self.fused_s and self.torch_s else None

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the derived figures, for JSON."""
        d = asdict(self)
        for k in (
            "fused_gbs",
            "limit_gbs",
            "pct_of_limit",
            "pct_of_same",
            "speedup_numpy",
            "speedup_torch",
        ):
            d[k] = getattr(self, k)
        d["numpy_gbs"] = self.gbs(self.numpy_s)
        d["torch_gbs"] = self.gbs(self.torch_s)
        return d


@dataclass
class Report:
    """A benchmark run: its results, the bandwidth kernels' figures and the machine."""

    results: list[Result]
    bandwidth: list[dict[str, Any]]
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"schema", "meta", "bandwidth", "results"}``."""
        return {
            "schema": 1,
            "meta": self.meta,
            "bandwidth": self.bandwidth,
            "results": [r.to_dict() for r in self.results],
        }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch: Any | None = None) -> dict[str, Any]:
    """The machine, the build and the library versions, for the record."""
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fusedopt": fusedopt.__version__,
        "build_info": dict(fusedopt.build_info()),
        "torch": getattr(torch, "__version__", None),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = list(os.getloadavg())
    return info


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
    from fusedopt.demo.progress import progress_bar

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


# --------------------------------------------------------------------------- output
def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    us = seconds * 1e6
    if us < 1:
        return f"{us * 1000:.0f} ns"
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_table(report: Report) -> str:
    """The results as Markdown tables: optimizers, then the bandwidth kernels."""
    head = (
        "| case | optimizer | pattern | dtype | threads | fused / step | GB/s | % of bus "
        "| % same arrays | NumPy / step | vs NumPy | torch / step | vs torch |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in report.results:
        torch_name = _fmt_time(r.torch_s)
        if r.torch_impl and r.torch_impl != "fused":
            torch_name += f" ({r.torch_impl})"
        lines.append(
            f"| {r.case} | {r.optimizer} | {r.pattern} | {r.dtype} | {r.threads} "
            f"| {_fmt_time(r.fused_s)} | {_fmt(r.fused_gbs, '.1f')} "
            f"| {_fmt(r.pct_of_limit, '.0f', '%')} | {_fmt(r.pct_of_same, '.0f', '%')} "
            f"| {_fmt_time(r.numpy_s)} "
            f"| {_fmt(r.speedup_numpy, '.1f', 'x')} | {torch_name} "
            f"| {_fmt(r.speedup_torch, '.2f', 'x')} |"
        )
    if report.bandwidth:
        lines += [
            "",
            "| bandwidth kernel | case | dtype | threads | time | GB/s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {b['kernel']} | {b['case']} | {b['dtype']} | {b['threads']} "
            f"| {_fmt_time(b['seconds'])} | {b['gbs']:.1f} |"
            for b in report.bandwidth
        ]
    return "\n".join(lines)


def _loads(values: Sequence[float] | None) -> str:
    return "-" if not values else ", ".join(f"{v:.2f}" for v in values)


def format_markdown(report: Report, command: str | None = None) -> str:
    """A Markdown section for BENCHMARKS.md: the machine, the command, the tables."""
    m = report.meta
    bi = m.get("build_info", {})
    load = m.get("loadavg_start")
    lines = [
        f"Run of {m.get('date')} on {m.get('cpu')} ({m.get('cpu_count')} logical CPUs), "
        f"{m.get('platform')}.",
        "",
        f"- fusedopt {m.get('fusedopt')} ({bi.get('compiler')}; OpenMP {bi.get('openmp')}; "
        f"SIMD {', '.join(bi.get('simd', []))}), NumPy {m.get('numpy')}, "
        f"PyTorch {m.get('torch') or 'not installed'}, Python {m.get('python')}.",
        f"- Load average (1, 5, 15 min) at start / end: {_loads(load)} / "
        f"{_loads(m.get('loadavg_end'))}.",
        "- Times are medians per step, from Python; GB/s counts each array read or written "
        "once. Every implementation steps the same arrays. % of bus: the fused step's "
        "bandwidth against the traffic kernel with the same read/write pattern over tensors "
        "of the same shapes and threads, on arrays staggered within a page (at 2^25 elements: "
        "the bus limit). % same arrays: against the traffic kernel over the step's own "
        "params and grads (and state-like arrays placed as the optimizers place theirs), so "
        "the layout of the caller's arrays is common to both. Both timed per sweep in this "
        "run, without the cost of a call (for tiny steps they show the fixed overhead).",
    ]
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    return "\n".join([*lines, "", format_table(report), ""])


# --------------------------------------------------------------------------- CLI
def _int_list(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 10,14,20-25, got {text!r}"
        ) from None
    return out


def _sizes(text: str) -> list[int]:
    sizes = _int_list(text)
    for k in sizes:
        if not 0 <= k <= 30:
            raise argparse.ArgumentTypeError(f"size exponents must be in [0, 30], got {k}")
    return sizes


def _threads(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if part.strip() == "all":
            out.append(fusedopt.get_num_threads())
        else:
            out += _int_list(part)
    if any(n < 1 for n in out):
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1, got {text!r}")
    return sorted(set(out))


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        for t in items:
            if t not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown value {t!r}; choose from {', '.join(allowed)}"
                )
        return items

    return parse


def _optimizer_names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        variants(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


CASE_KINDS = ("sizes", "many", "model", "overhead")
#: One line for ``fusedopt --help``.
BENCH_HELP = "time every optimizer: µs/step, GB/s, %% of the bus limit, vs NumPy and PyTorch"
#: The description of ``fusedopt bench --help``.
BENCH_DESCRIPTION = (
    "Time one step of every optimizer (fused kernel at 1 and all threads, the NumPy\n"
    "reference, torch.optim when PyTorch is installed) on one tensor of 2^k elements,\n"
    "1000 tensors of 256, a 160-tensor CNN-like model and a 1-element tensor; report\n"
    "µs/step, GB/s, % of a trivial kernel with the same read/write pattern (the bus\n"
    "limit at large sizes) and the speed-ups. Each timed optimizer is checked against\n"
    "the other implementation. Run it on an otherwise idle machine.\n\n"
    "examples:\n  fusedopt bench --quick\n"
    "  fusedopt bench --json bench.json --markdown BENCHMARKS-table.md"
)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``fusedopt bench`` to ``parser``."""
    parser.add_argument(
        "--optimizers",
        type=_optimizer_names,
        default=None,
        metavar="NAMES",
        help="comma-separated optimizers or variants (adam, adam-amsgrad, sgd-momentum, ...); "
        "default: all",
    )
    parser.add_argument(
        "--cases",
        type=_choices(CASE_KINDS),
        default=list(CASE_KINDS),
        metavar="KINDS",
        help="which cases: sizes (one tensor of 2^k), many (1000x256), model (160 tensors, "
        "11.2 M), overhead (1 element)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        metavar="EXPONENTS",
        help="single-tensor sizes as exponents of 2, e.g. 10,16,20-25 "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; --quick: 10,16,20)",
    )
    parser.add_argument(
        "--dtypes",
        type=_choices(("float32", "float64")),
        default=None,
        metavar="DTYPES",
        help="float32,float64 (default both; --quick: float32)",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="COUNTS",
        help="thread counts, e.g. 1,2 or 1,all (all = fusedopt.get_num_threads(), which "
        "honours OMP_NUM_THREADS); default 1,all",
    )
    parser.add_argument(
        "--backends",
        type=_choices(BACKENDS),
        default=list(BACKENDS),
        metavar="BACKENDS",
        help="fused, numpy, torch (torch is skipped when PyTorch is not installed)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats, median (default 5; --quick: 3)"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds each repeat lasts at least (default 0.02; --quick: 0.005)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: other defaults for the four options above",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random arrays")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="write the tables with the machine and the command; in a file that has the "
        f"lines {MARK_START} and {MARK_END} (BENCHMARKS.md), only that section is replaced",
    )
    parser.add_argument(
        "--compare",
        metavar="OLD.json",
        help="also print the fused step times against those of an earlier --json run",
    )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the check of each timed optimizer against the other implementation",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def run_bench_cli(args: argparse.Namespace) -> int:
    """Runs ``fusedopt bench`` from parsed :func:`add_bench_arguments` options."""
    quick = args.quick

    def pick(given: Any, default: Any, quick_default: Any) -> Any:
        return given if given is not None else quick_default if quick else default

    sizes: list[int] = pick(args.sizes, list(DEFAULT_SIZES), [10, 16, 20])
    dtypes: list[str] = pick(args.dtypes, ["float32", "float64"], ["float32"])
    repeats: int = pick(args.repeats, 5, 3)
    min_time: float = pick(args.min_time, 0.02, 0.005)
    if repeats < 1 or min_time < 0:
        print("fusedopt bench: error: --repeats must be >= 1, --min-time >= 0", file=sys.stderr)
        return 2
    cases: list[Case] = []
    if "sizes" in args.cases:
        cases += [size_case(k) for k in sizes]
    if "many" in args.cases:
        cases.append(many_case())
    if "model" in args.cases:
        cases.append(model_case())
    if "overhead" in args.cases:
        cases.append(overhead_case())
    try:
        report = run_benchmarks(
            args.optimizers,
            cases,
            dtypes,
            args.threads,
            args.backends,
            repeats=repeats,
            min_time=min_time,
            check=args.check,
            progress=args.progress,
            seed=args.seed,
        )
    except BenchCheckError as exc:
        print(f"fusedopt bench: error: check failed: {exc}", file=sys.stderr)
        return 1
    report.meta["command"] = _command_line()
    print(format_table(report))
    load = report.meta.get("loadavg_start")
    if load and load[0] > 0.5:
        print(
            f"\nwarning: the load average was {load[0]:.1f} at the start: other processes were "
            "running, so these timings (above all the multi-thread ones) are unreliable",
            file=sys.stderr,
        )
    if "torch" in args.backends and report.meta.get("torch") is None:
        print("\n(PyTorch is not installed: no torch column)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_json(), f, indent=1)
    if args.markdown:
        write_markdown(args.markdown, format_markdown(report, report.meta["command"]))
    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            print("\n" + format_comparison(json.load(f), report.to_json()))
    return 0


#: BENCHMARKS.md marks the generated section with these lines; --markdown replaces it.
MARK_START = "<!-- fusedopt-bench:start -->"
MARK_END = "<!-- fusedopt-bench:end -->"


def write_markdown(path: str, section: str) -> None:
    """Writes ``section`` to ``path``; if the file exists and holds the lines
    :data:`MARK_START` and :data:`MARK_END`, only what lies between them is replaced."""
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    start, end = old.find(MARK_START), old.find(MARK_END)
    if 0 <= start < end:
        text = old[: start + len(MARK_START)] + "\n" + section + old[end:]
    else:
        text = section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def format_comparison(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A Markdown table of the fused step time of two runs' JSON (``--json``), matched by
    case, optimizer, dtype and threads: old, new and old / new (> 1: faster now)."""

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (r["case"], r["optimizer"], r["dtype"], r["threads"])

    before = {key(r): r for r in old.get("results", [])}
    lines = [
        "| case | optimizer | dtype | threads | before | now | before / now |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in new.get("results", []):
        b = before.get(key(r))
        if b is None or not b.get("fused_s") or not r.get("fused_s"):
            continue
        lines.append(
            f"| {r['case']} | {r['optimizer']} | {r['dtype']} | {r['threads']} "
            f"| {_fmt_time(b['fused_s'])} | {_fmt_time(r['fused_s'])} "
            f"| {b['fused_s'] / r['fused_s']:.2f}x |"
        )
    return "\n".join(lines)


def _command_line() -> str:
    """The command that is running, as one would type it again."""
    prog = os.path.basename(sys.argv[0])
    if prog == "bench.py":
        prog = "python -m fusedopt.bench"
    elif prog == "__main__.py":
        prog = "python -m fusedopt"
    return " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fusedopt.bench [options]``: the same as ``fusedopt bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m fusedopt.bench",
        description=BENCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(parser)
    return run_bench_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
