"""SGDScheduleFree and AdamWScheduleFree on 1000 tensors of 256 float32 (train mode):
the fused step (1 and all threads), the NumPy reference and the ``schedulefree``
package (skipped without it or torch) in one group per class.

Each fusedopt benchmark checks its parameters afterwards against the other backend run
for the same number of steps (the same bits). The goal's paired ratio ("each >= 10x its
reference package's step on 1000x256") comes from ``benchmarks/schedulefree_speed.py``.

    python -m pytest benchmarks/test_bench_schedulefree.py
    python -m pytest benchmarks/test_bench_schedulefree.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

import numpy as np
import pytest
from schedulefree_speed import CLASSES, KWARGS, make_case

import fusedopt as fo

COUNT, SIZE = 1000, 256
ALL_THREADS = fo.get_num_threads()
THREADS = sorted({1, ALL_THREADS})


def _run(name, backend, params, grads, steps):
    ps = [p.copy() for p in params]
    opt = CLASSES[name](ps, backend=backend, **KWARGS[name])
    opt.train()
    for _ in range(steps):
        opt.step(grads)
    return ps


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize(
    "backend,threads", [("fused", n) for n in THREADS] + [("numpy", 1)], ids=str
)
def test_schedulefree_fusedopt(benchmark, name, backend, threads):
    benchmark.group = f"{name} {COUNT}x{SIZE} float32"
    params, grads = make_case(COUNT, SIZE)
    ps = [p.copy() for p in params]
    opt = CLASSES[name](ps, backend=backend, **KWARGS[name])
    opt.train()
    calls = []

    def step():
        calls.append(1)
        opt.step(grads)

    old = fo.get_num_threads()
    fo.set_num_threads(threads)
    try:
        benchmark.pedantic(step, rounds=10, iterations=5, warmup_rounds=1)
    finally:
        fo.set_num_threads(old)
    other = _run(name, "numpy" if backend == "fused" else "fused", params, grads, len(calls))
    for a, b in zip(ps, other, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(CLASSES))
def test_schedulefree_package(benchmark, name):
    torch = pytest.importorskip("torch")
    sf = pytest.importorskip("schedulefree")
    benchmark.group = f"{name} {COUNT}x{SIZE} float32"
    params, grads = make_case(COUNT, SIZE)
    ts = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    for t, g in zip(ts, grads, strict=True):
        t.grad = torch.tensor(g.copy())
    opt = getattr(sf, name)(ts, **KWARGS[name])
    opt.train()
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.pedantic(opt.step, rounds=5, iterations=2, warmup_rounds=1)
    finally:
        torch.set_num_threads(old)
    assert all(torch.isfinite(t).all() for t in ts)
