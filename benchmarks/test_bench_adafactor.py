"""Adafactor (pytest-benchmark): fusedopt's fused step, torch.optim.Adafactor and the
NumPy reference in one group per shape (float32; fused and torch at 1 and all threads).

Each benchmark steps its own copy of the same parameter with the same grad, then checks
its result: a fresh step of the fused backend against the NumPy reference (and torch's
against the fused one) from the same start. The issue's goal (4096x4096 >= 2x torch) as a
ratio from one interleaved run: ``benchmarks/adafactor_speed.py``.

    python -m pytest benchmarks/test_bench_adafactor.py
    python -m pytest benchmarks/test_bench_adafactor.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from adafactor_speed import assert_steps_agree, fused_step, problem, torch_step

import fusedopt as fo

ALL_THREADS = fo.get_num_threads()
THREADS = sorted({1, ALL_THREADS})
SHAPES = [(1024, 1024), (4096, 4096)]
IMPLS = [("fused", n) for n in THREADS] + [("torch", n) for n in THREADS] + [("numpy", 1)]


def _check(torch: Any | None, shape: tuple[int, ...], impl: str) -> None:
    """One step from the same start: fused against the reference, torch against fused."""
    p0, g = problem(shape, seed=1)
    fused, other = p0.copy(), p0.copy()
    fused_step(fused, g)()
    if impl == "torch":
        torch_step(torch, other, g)()
        assert_steps_agree(p0, fused, other)  # torch sums in float32
    else:
        fused_step(other, g, "numpy")()
        np.testing.assert_allclose(fused, other, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("impl", "n"), IMPLS, ids=[f"{i}-{n}t" for i, n in IMPLS])
def test_adafactor(
    benchmark: Any,
    threads: Callable[[int], None],
    torch_mod: Any | None,
    shape: tuple[int, ...],
    impl: str,
    n: int,
) -> None:
    if impl == "torch" and torch_mod is None:
        pytest.skip("PyTorch is not installed")
    threads(n)
    benchmark.group = f"adafactor {'x'.join(map(str, shape))} float32"
    benchmark.extra_info.update(impl=impl, threads=n, numel=int(np.prod(shape)))
    p0, g = problem(shape)
    step = torch_step(torch_mod, p0, g) if impl == "torch" else fused_step(p0, g, impl)
    step()  # the state, outside the timing
    benchmark(step)
    _check(torch_mod, shape, impl)
