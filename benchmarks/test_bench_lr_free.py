"""Prodigy, AdamHD and SGDHD (issue "LR-free and learned rates"): the fused steps against
fused Adam / SGD on one tensor, and against their reference packages (prodigyopt, the
authors' hypergradient code ported to torch in ``lr_free_speed.py``) on 1000 tensors of
256 elements.

Groups (float32; fusedopt at its default thread count):

* ``lr-free 2^k``: fused Adam, Prodigy, AdamHD, SGD and SGDHD on one tensor of 2^12 and
  2^20 elements (2^25 with ``--bench-full``).
* ``lr-free 1000x256``: fused Prodigy / AdamHD / SGDHD and each reference (skipped
  without torch; Prodigy's without prodigyopt).

Each fused benchmark checks its result against the NumPy reference backend afterwards.
The goals' paired ratios come from ``benchmarks/lr_free_speed.py``.

    python -m pytest benchmarks/test_bench_lr_free.py
    python -m pytest benchmarks/test_bench_lr_free.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from lr_free_speed import AuthorsAdamHD, AuthorsSGDHD, make_arrays

import fusedopt as fo

KINDS: dict[str, tuple[type[fo.Optimizer], dict[str, Any]]] = {
    "Adam": (fo.Adam, {"lr": 1e-3}),
    "Prodigy": (fo.Prodigy, {}),
    "AdamHD": (fo.AdamHD, {"lr": 1e-3, "hypergrad_lr": 1e-13}),
    "SGD": (fo.SGD, {"lr": 1e-3}),
    "SGDHD": (fo.SGDHD, {"lr": 1e-3, "hypergrad_lr": 1e-13}),
}


def _sizes(request: pytest.FixtureRequest) -> tuple[int, ...]:
    return (12, 20, 25) if request.config.getoption("--bench-full", False) else (12, 20)


@pytest.fixture(params=(12, 20, 25), ids=lambda k: f"2^{k}")
def size_log2(request: pytest.FixtureRequest) -> int:
    if request.param not in _sizes(request):
        pytest.skip("2^25 with --bench-full")
    return int(request.param)


def _check_against_reference(
    cls: type[fo.Optimizer], kwargs: dict, start: list, grads: list, mine: list, steps: int
) -> None:
    other = [p.copy() for p in start]
    ref = cls(other, backend="numpy", **kwargs)
    for _ in range(steps):
        ref.step(grads)
    for a, b in zip(mine, other, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_lr_free_big(benchmark, kind: str, size_log2: int) -> None:
    benchmark.group = f"lr-free 2^{size_log2}"
    cls, kwargs = KINDS[kind]
    start, grads = make_arrays(1, 1 << size_log2)
    mine = [p.copy() for p in start]
    opt = cls(mine, **kwargs)
    calls = []

    def step() -> None:
        calls.append(1)
        opt.step(grads)

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    if size_log2 <= 20:  # the reference backend at 2^25 would take minutes
        _check_against_reference(cls, kwargs, start, grads, mine, len(calls))


@pytest.mark.parametrize("kind", ["Prodigy", "AdamHD", "SGDHD"])
@pytest.mark.parametrize("side", ["fusedopt", "reference"])
def test_lr_free_small(benchmark, kind: str, side: str) -> None:
    benchmark.group = "lr-free 1000x256"
    torch = pytest.importorskip("torch")
    start, grads = make_arrays(1000, 256)
    cls, kwargs = KINDS[kind]
    kwargs = (
        {**kwargs, "hypergrad_lr": 1e-8 if kind == "AdamHD" else 1e-6}
        if kind != "Prodigy"
        else kwargs
    )
    if side == "fusedopt":
        mine = [p.copy() for p in start]
        opt = cls(mine, **kwargs)
        calls = []

        def step() -> None:
            calls.append(1)
            opt.step(grads)

        benchmark.pedantic(step, rounds=5, iterations=3, warmup_rounds=1)
        _check_against_reference(cls, kwargs, start, grads, mine, len(calls))
        return
    tensors = [torch.from_numpy(p.copy()) for p in start]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.from_numpy(g.copy())
    if kind == "Prodigy":
        prodigyopt = pytest.importorskip("prodigyopt")
        ref: Any = prodigyopt.Prodigy(tensors)
    elif kind == "AdamHD":
        ref = AuthorsAdamHD(torch, tensors, 1e-3, 1e-8)
    else:
        ref = AuthorsSGDHD(torch, tensors, 1e-3, 1e-6)
    benchmark.pedantic(ref.step, rounds=5, iterations=1, warmup_rounds=1)
    assert all(np.isfinite(t.numpy()).all() for t in tensors)
