"""Low precision (issue 18): Adam on bfloat16 / float16 parameters and with int8 state,
against float32 Adam, the traffic kernel with each step's arrays and torch's fused
bfloat16 Adam.

Group ``low-precision adam <case>`` (one tensor of 2^12 and 2^20 elements; 2^10 ... 2^25
with ``--bench-full``; 1 and all threads, torch set alike):

* ``f32``, ``bf16``, ``bf16-sr`` (``stochastic_rounding=True``), ``f16``, ``bf16-state``
  (bfloat16 state, as torch keeps it) and ``int8`` (float32 params, ``state_dtype="int8"``):
  fusedopt's fused Adam (lr 1e-3);
* ``traffic-f32``, ``traffic-bf16``, ``traffic-int8``: ``_core.traffic_mixed`` with the
  arrays of the float32, bfloat16 (float32 state) and int8-state steps
  (``bench.step_streams``: 28, 22 and 16.25 bytes per element);
* ``torch-bf16``: ``torch.optim.Adam(fused=True)`` on bfloat16 CPU tensors (skipped
  without PyTorch).

The summary's "% limit" is the traffic kernel with the step's own arrays over the step's
time. Every benchmark checks its result afterwards: one more fused step against the
NumPy backend from the state reached (the parameters within 1 ulp, int8 codes within 1),
torch's step against fusedopt's bfloat16-state Adam, the traffic kernel's sweep against
NumPy. Skipped without ``ml_dtypes``. The goals, as ratios from one interleaved run:
``benchmarks/low_precision_speed.py``.

    python -m pytest benchmarks/test_bench_low_precision.py
    python -m pytest benchmarks/test_bench_low_precision.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ml_dtypes")

from low_precision_speed import TorchAdam, check_torch, ulps

import fusedopt as fo
from fusedopt import _core, bench
from fusedopt import low_precision as lp

DEFAULT_SIZES = (12, 20)
THREADS = sorted({1, fo.get_num_threads()})
PARALLEL_MIN = int(fo.build_info().get("parallel_min_elements", 0))
BF16 = lp.bfloat16()
#: kind: (param dtype, Adam's keyword arguments); None for the traffic and torch kinds
ADAM_KINDS: dict[str, tuple[np.dtype[Any], dict[str, Any]]] = {
    "f32": (np.dtype(np.float32), {}),
    "bf16": (BF16, {}),
    "bf16-sr": (BF16, {"stochastic_rounding": True, "seed": 7}),
    "f16": (np.dtype(np.float16), {}),
    "bf16-state": (BF16, {"state_dtype": BF16}),
    "int8": (np.dtype(np.float32), {"state_dtype": "int8"}),
}
#: kind: the step whose arrays it moves (param dtype, state dtype)
TRAFFIC_KINDS: dict[str, tuple[np.dtype[Any], Any]] = {
    "traffic-f32": (np.dtype(np.float32), None),
    "traffic-bf16": (BF16, None),
    "traffic-int8": (np.dtype(np.float32), "int8"),
}
KINDS = (*ADAM_KINDS, *TRAFFIC_KINDS, "torch-bf16")


@dataclass(frozen=True)
class LowSpec:
    """One benchmark: a kind on a case, at a thread count."""

    kind: str
    case: bench.Case
    threads: int

    @property
    def group(self) -> str:
        return f"low-precision adam {self.case.name}"

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.case.name.replace('^', 'pow')}-{self.threads}t"

    def streams(self) -> tuple[bench.Stream, ...]:
        """The arrays the kind's step moves."""
        if self.kind in ADAM_KINDS:
            dtype, kwargs = ADAM_KINDS[self.kind]
            return bench.step_streams(dtype, kwargs.get("state_dtype"))
        if self.kind in TRAFFIC_KINDS:
            return bench.step_streams(*TRAFFIC_KINDS[self.kind])
        return bench.step_streams(BF16, BF16)  # torch: bfloat16 state


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "low_spec" not in metafunc.fixturenames:
        return
    full = metafunc.config.getoption("--bench-full")
    sizes = [bench.size_case(k) for k in (bench.DEFAULT_SIZES if full else DEFAULT_SIZES)]
    specs = [
        LowSpec(kind, case, n)
        for case in sizes
        for kind in KINDS
        for n in (THREADS if full or case.numel >= PARALLEL_MIN else [1])
    ]
    metafunc.parametrize("low_spec", [pytest.param(s, id=s.id) for s in specs])


def _random(n: int, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    p = rng.standard_normal(n, dtype=np.float32).astype(dtype)
    g = (rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)).astype(dtype)
    return p, g


def _check_against_numpy(opt: fo.Adam, p: np.ndarray, g: np.ndarray, kind: str) -> None:
    """One more fused step and one NumPy-backend step from a copy of the state reached."""
    dtype, kwargs = ADAM_KINDS[kind]
    q = p.copy()
    ref = fo.Adam([q], lr=1e-3, backend="numpy", **kwargs)
    ref.load_state_dict(opt.state_dict())
    opt.step([g])
    ref.step([g])
    if dtype.itemsize == 2:
        assert ulps(p, q) <= 1, f"{kind}: fused and NumPy params {ulps(p, q)} ulps apart"
    else:
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7, err_msg=kind)
    for key, mine in opt.state[0].items():
        theirs = np.asarray(ref.state[0][key])
        mine = np.asarray(mine)
        assert mine.dtype == theirs.dtype, f"{kind}: state[{key!r}] dtype"
        if mine.dtype == np.int8:
            diff = np.abs(mine.astype(np.int16) - theirs.astype(np.int16))
            assert diff.max(initial=0) <= 1, f"{kind}: int8 codes of {key!r} differ"
        elif mine.ndim and mine.dtype.itemsize == 2:
            assert ulps(mine, theirs) <= 1, f"{kind}: state[{key!r}]"
        else:
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-12, err_msg=key)


def _traffic_call(spec: LowSpec) -> tuple[Callable[[], Any], Callable[[], None]]:
    """The timed sweep and a check of one more sweep against NumPy (unsigned bits)."""
    n = spec.case.numel
    streams = spec.streams()
    inplace, readonly = bench.mixed_traffic_arrays(streams, n)

    def check() -> None:
        bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
        before = [a.view(bits[a.itemsize]).copy() for a in inplace]
        x = readonly[0].view(bits[readonly[0].itemsize]).astype(np.uint32)
        _core.traffic_mixed(inplace, readonly)
        for a, b in zip(inplace, before, strict=True):
            add = x if a.size == n else x[:: bench.traffic.QUANT_BLOCK]
            with np.errstate(over="ignore"):
                np.testing.assert_array_equal(a.view(b.dtype), b + add.astype(b.dtype))

    return lambda: _core.traffic_mixed(inplace, readonly, 1), check


_LIMITS: dict[tuple[str, int, int], float] = {}


@pytest.fixture
def low_bench(
    benchmark: Any,
    threads: Callable[[int], None],
    torch_mod: Any | None,
    record: Callable[..., None],
) -> Iterator[Callable[[LowSpec], None]]:
    """Runs one benchmark of this file: times the call, then checks its result."""

    def run(spec: LowSpec) -> None:
        if spec.kind == "torch-bf16" and torch_mod is None:
            pytest.skip("PyTorch is not installed")
        n = spec.case.numel
        threads(spec.threads)
        benchmark.group = spec.group
        if spec.kind in ADAM_KINDS:
            dtype, kwargs = ADAM_KINDS[spec.kind]
            p, g = _random(n, dtype)
            opt = fo.Adam([p], lr=1e-3, **kwargs)
            opt.step([g])  # the state, outside the timing
            fn: Callable[[], Any] = lambda: opt.step([g])  # noqa: E731
            check = lambda: _check_against_numpy(opt, p, g, spec.kind)  # noqa: E731
        elif spec.kind in TRAFFIC_KINDS:
            fn, check = _traffic_call(spec)
        else:
            theirs = TorchAdam(torch_mod, *_random(n, BF16))
            fn = theirs.step

            def check() -> None:
                threads(1)
                check_torch(torch_mod)

        nbytes = bench.mixed_bytes(spec.streams(), n)
        benchmark.extra_info.update(
            kind=spec.kind,
            case=spec.case.name,
            numel=n,
            threads=spec.threads,
            bytes_per_call=nbytes,
            streams=", ".join(str(s) for s in spec.streams()),
        )
        benchmark(fn)
        check()
        limit_s = None
        if not getattr(benchmark, "disabled", False):
            streams = spec.streams()  # the kernel with the step's own arrays
            key = (", ".join(map(str, streams)), n, spec.threads)
            if key not in _LIMITS:
                fo.set_num_threads(spec.threads)
                _LIMITS[key] = bench.mixed_traffic_seconds(streams, n)
            limit_s = _LIMITS[key]
            benchmark.extra_info["traffic_kernel_s"] = limit_s
        record(spec.group, f"{spec.kind} {spec.threads}t", nbytes, limit_s, benchmark)

    yield run


def test_low_precision(low_spec: LowSpec, low_bench: Callable[[LowSpec], None]) -> None:
    low_bench(low_spec)


def test_state_bytes_per_param() -> None:
    """The optimizer state per parameter of each mode, from the state arrays: 8 bytes for
    float32 moments, 4 for bfloat16 ones, 2 + 2 x 4 / 64 for int8 codes with scales."""
    n = 1 << 16
    want = {"f32": 8, "bf16": 8, "bf16-sr": 8, "f16": 8, "bf16-state": 4, "int8": 2.125}
    for kind, (dtype, kwargs) in ADAM_KINDS.items():
        p, g = _random(n, dtype)
        opt = fo.Adam([p], lr=1e-3, **kwargs)
        opt.step([g])
        # abs: the step count, a scalar per parameter tensor, adds ~8 / n
        assert lp.state_nbytes_per_param(opt) == pytest.approx(want[kind], abs=1e-3), kind
