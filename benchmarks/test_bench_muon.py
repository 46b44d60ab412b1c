"""Muon (issue "every torch.optim optimizer"): the fused step, its matrix products alone
(the yardstick of the goal "<= 1.2x"), the reference backend and bfloat16 emulation in
one group per shape; torch's Muon (bfloat16 products: seconds per step on CPUs without
bfloat16 units) only with ``--bench-full``.

Each fusedopt benchmark checks its result against the reference backend afterwards.
The goal's paired ratio comes from ``benchmarks/muon_speed.py``.

    python -m pytest benchmarks/test_bench_muon.py
    python -m pytest benchmarks/test_bench_muon.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

import numpy as np
import pytest
from muon_speed import products

import fusedopt as fo

SHAPES = ((256, 256), (1024, 1024), (1024, 4096))


def _ids(shape):
    return f"{shape[0]}x{shape[1]}"


def _muon(shape, backend, ns_dtype):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    return w, g, fo.Muon([w], lr=1e-3, backend=backend, ns_dtype=ns_dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_muon_products(benchmark, shape):
    benchmark.group = f"muon {_ids(shape)}"
    benchmark.pedantic(products(shape), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
@pytest.mark.parametrize(
    "backend,ns_dtype", [("fused", "float32"), ("fused", "bfloat16"), ("numpy", "float32")]
)
def test_muon_fusedopt(benchmark, shape, backend, ns_dtype):
    benchmark.group = f"muon {_ids(shape)}"
    w, g, opt = _muon(shape, backend, ns_dtype)
    calls = []

    def step():
        calls.append(1)
        opt.step([g])

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    steps = len(calls)
    other_w, _, other = _muon(shape, "numpy" if backend == "fused" else "fused", ns_dtype)
    for _ in range(steps):
        other.step([g])
    np.testing.assert_allclose(w, other_w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_muon_torch(benchmark, shape, request):
    torch = pytest.importorskip("torch")
    if not request.config.getoption("--bench-full") and shape != SHAPES[0]:
        pytest.skip("torch's bfloat16 Muon on large shapes: --bench-full")
    benchmark.group = f"muon {_ids(shape)}"
    rng = np.random.default_rng(1)
    w = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)))
    w.grad = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    opt = torch.optim.Muon([w], lr=1e-3)
    benchmark.pedantic(opt.step, rounds=1, iterations=1)
    assert torch.isfinite(w).all()
