"""The bandwidth kernels of ``fusedopt._core``, through the optimizers' parallel loop:
the traffic kernel with each optimizer's read/write pattern, and the STREAM triad."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, bench


def test_bandwidth(
    bw_spec: Any,
    benchmark: Any,
    threads: Callable[[int], None],
    record: Callable[..., None],
) -> None:
    spec = bw_spec
    dt = np.dtype(spec.dtype)
    n = spec.case.numel
    threads(spec.threads)
    benchmark.group = f"bandwidth {spec.case.name} {spec.dtype}"
    # several sweeps per call on small arrays, so that the call's cost does not dominate
    repeat = max(1, (1 << 18) // n)
    rng = np.random.default_rng(1)

    def array(k: int) -> np.ndarray:  # random values, k-th page offset (bench.apart)
        a = bench.apart(n, dt, k)
        a[:] = rng.standard_normal(n)
        return a

    if spec.pattern is None:
        a, b, c = array(0), array(1), array(2)
        nbytes = 3 * n * dt.itemsize * repeat
        name = f"triad 2R1W {spec.threads}t"
        benchmark(_core.triad, a, b, c, 3.0, repeat)
        np.testing.assert_array_equal(a, b + dt.type(3.0) * c)
    else:
        inplace = [array(k) for k in range(spec.pattern.writes)]
        readonly = [array(spec.pattern.writes + k) for k in range(spec.pattern.readonly)]
        nbytes = spec.pattern.bytes(n, dt.itemsize) * repeat
        name = f"traffic {spec.pattern} {spec.threads}t"
        benchmark(_core.traffic, inplace, readonly, 0.5, repeat)
        before = [x.copy() for x in inplace]
        _core.traffic(inplace, readonly, 0.5)
        x = np.zeros(n, dt)
        for r in readonly:
            x = x + r
        for got, old in zip(inplace, before, strict=True):
            np.testing.assert_array_equal(got, old * dt.type(0.5) + x)
    assert fusedopt.get_num_threads() == spec.threads
    benchmark.extra_info.update(
        kernel=name, sweeps_per_call=repeat, bytes_per_call=nbytes, threads=spec.threads
    )
    record(benchmark.group, name, nbytes, None, benchmark)


@pytest.mark.benchmark(group="overhead")
def test_traffic_call_overhead(benchmark: Any) -> None:
    """The fixed cost of one call into the extension with a 1-element work list."""
    a, g = np.zeros(1, np.float32), np.ones(1, np.float32)
    benchmark(_core.traffic, [a], [g], 0.5)
    assert np.isfinite(a).all()
