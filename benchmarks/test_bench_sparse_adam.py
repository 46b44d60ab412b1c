"""SparseAdam on an embedding (10^5 x 64 float32, 4096 touched rows with repeats):
fusedopt's fused step, its NumPy reference and torch.optim.SparseAdam in one group.
Each checks its result afterwards. The full-size run (10^6 rows) with ratios:
``benchmarks/sparse_adam_speed.py``.

    python -m pytest benchmarks/test_bench_sparse_adam.py
    python -m pytest benchmarks/test_bench_sparse_adam.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sparse_adam_speed import check, fusedopt_step, make_case, torch_step

ROWS, DIM, TOUCHED = 100_000, 64, 4096


@pytest.fixture(scope="module")
def case():
    return make_case(ROWS, DIM, TOUCHED)


@pytest.mark.benchmark(group="sparse-adam 1e5x64")
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_fusedopt(benchmark, case, backend):
    emb, grad = case
    benchmark(fusedopt_step(emb, grad, backend))
    check(emb, grad)


@pytest.mark.benchmark(group="sparse-adam 1e5x64")
def test_torch(benchmark, case):
    pytest.importorskip("torch")
    emb, grad = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = torch_step(emb, grad)
        benchmark(step)
    assert np.isfinite(emb).all()
