"""LBFGS (issue "every torch.optim optimizer"): the fused backend, the reference port and
torch.optim.LBFGS on the logistic regression of ``lbfgs_speed.py``, one group per size.

Each benchmark times one ``step`` of 5 iterations after a warm-up step (the history
filled), then checks the result: the fused backend against the reference port (the same
bits), torch's trajectory against fusedopt's. The goal's ratio (>= 3x torch per
iteration, 10^6 features) comes from ``benchmarks/lbfgs_speed.py``.

    python -m pytest benchmarks/test_bench_lbfgs.py
    python -m pytest benchmarks/test_bench_lbfgs.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

import numpy as np
import pytest
from lbfgs_speed import make_problem, numpy_closure

import fusedopt as fo

SIZES = (10_000, 1_000_000)
KW = {"max_iter": 5, "history_size": 10, "tolerance_grad": 0.0, "tolerance_change": 0.0}


def _run_fusedopt(n, backend, steps):
    x, y = make_problem(n, 16)
    w = np.zeros(n, np.float32)
    opt = fo.LBFGS([w], backend=backend, **KW)
    closure = numpy_closure(w, x, y, 1e-4)
    for _ in range(steps):
        opt.step(closure)
    return w, opt, closure


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_lbfgs_fusedopt(benchmark, n, backend):
    benchmark.group = f"lbfgs {n}"
    w, opt, closure = _run_fusedopt(n, backend, 1)
    calls = []

    def step():
        calls.append(1)
        opt.step(closure)

    benchmark.pedantic(step, rounds=3, iterations=1)
    other, _, _ = _run_fusedopt(n, "numpy" if backend == "fused" else "fused", 1 + len(calls))
    np.testing.assert_array_equal(w, other)


@pytest.mark.parametrize("n", SIZES)
def test_lbfgs_torch(benchmark, n):
    torch = pytest.importorskip("torch")
    benchmark.group = f"lbfgs {n}"
    x, y = make_problem(n, 16)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    w = torch.nn.Parameter(torch.zeros(n))
    opt = torch.optim.LBFGS([w], **KW)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-ty * (tx @ w)).mean() + 0.5e-4 * (w @ w)
        loss.backward()
        return loss

    calls = []

    def step():
        calls.append(1)
        opt.step(closure)

    step()
    benchmark.pedantic(step, rounds=3, iterations=1)
    mine, _, _ = _run_fusedopt(n, "fused", len(calls))
    np.testing.assert_allclose(w.detach().numpy(), mine, rtol=1e-2, atol=1e-3)
