"""Gradient clipping (issue 13): ``clip_grad_norm_`` against a read-and-write sweep of the
grads, and Adam with ``max_grad_norm`` against Adam without it and against torch.

Groups (float32; fusedopt at 1 and all threads, torch set alike):

* ``clip_grad_norm_ <case>``: ``fo.clip_grad_norm_`` clipping at every call
  (``clip_speed.ActiveClip``), with a ``max_norm`` above the norm (no clip: the read pass
  only), ``fo.get_total_norm``, and the traffic kernel's read and write of the grads
  (``_core.traffic([g], [], 1.0)``, the yardstick of "within 10%"); one tensor of 2^12
  and 2^20 elements (2^10 ... 2^25 with ``--bench-full``).
* ``adam-clip <case>``: fusedopt's Adam without and with ``max_grad_norm=1.0``
  (every step clips), ``torch.nn.utils.clip_grad_norm_(params, 1.0)`` + torch's fused
  Adam, and torch's fused Adam alone; the same sizes, 1000 tensors of 256 elements and
  the 160-tensor model (``fusedopt.bench.model_case``). Torch is skipped when absent.

Each benchmark checks its result afterwards (the fused step against the NumPy reference,
torch's clip + Adam against fusedopt's from a fresh start, the norms against NumPy's,
every clipping call clipped). The summary's "% limit" is the traffic kernel with the
case's read/write pattern (1R1W for the clip group, Adam's 4R3W for the Adam group) over
its time. The goals of the issue, as ratios from one interleaved run:
``benchmarks/clip_speed.py``.

    python -m pytest benchmarks/test_bench_clip.py
    python -m pytest benchmarks/test_bench_clip.py --benchmark-disable   # a smoke test
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from clip_speed import MAX_NORM, NO_CLIP, ActiveClip, TorchStep, check_against_torch

import fusedopt as fo
from fusedopt import _core, bench

DEFAULT_SIZES = (12, 20)
ALL_THREADS = fo.get_num_threads()
THREADS = sorted({1, ALL_THREADS})
PARALLEL_MIN = int(fo.build_info().get("parallel_min_elements", 0))
CLIP_KINDS = ("clip", "no-clip", "norm", "traffic-1R1W")
ADAM_KINDS = ("fused", "fused-clip", "torch", "torch-clip")
#: The read/write pattern each kind's "% limit" is taken against.
RW = bench.Pattern(1, 1)
ADAM = bench.Pattern(4, 3)


@dataclass(frozen=True)
class ClipSpec:
    """One benchmark: a kind (CLIP_KINDS or ADAM_KINDS) on a case, at a thread count."""

    kind: str
    case: bench.Case
    threads: int

    @property
    def adam(self) -> bool:
        return self.kind in ADAM_KINDS

    @property
    def group(self) -> str:
        what = "adam-clip" if self.adam else "clip_grad_norm_"
        return f"{what} {self.case.name} float32"

    @property
    def id(self) -> str:
        prefix = "adam" if self.adam else "clip"
        return f"{prefix}-{self.kind}-{self.case.name.replace('^', 'pow')}-{self.threads}t"


def _threads(case: bench.Case, full: bool) -> list[int]:
    """Both thread counts, or only 1 for a step too small to be split (default grid)."""
    return THREADS if full or case.numel >= PARALLEL_MIN else [1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "clip_spec" not in metafunc.fixturenames:
        return
    full = metafunc.config.getoption("--bench-full")
    sizes = [bench.size_case(k) for k in (bench.DEFAULT_SIZES if full else DEFAULT_SIZES)]
    specs = [
        ClipSpec(kind, case, n)
        for case in sizes
        for kind in CLIP_KINDS
        for n in _threads(case, full)
    ]
    specs += [
        ClipSpec(kind, case, n)
        for case in [*sizes, bench.many_case(), bench.model_case()]
        for kind in ADAM_KINDS
        for n in _threads(case, full)
    ]
    metafunc.parametrize("clip_spec", [pytest.param(s, id=s.id) for s in specs])


def _flat_norm(grads: list[np.ndarray]) -> float:
    """The L2 norm of all grads, in float64 NumPy."""
    return math.sqrt(sum(float(np.vdot(x, x)) for x in (g.astype(np.float64) for g in grads)))


def _clip_call(kind: str, grads: list[np.ndarray]) -> tuple[Callable[[], Any], Callable[[], None]]:
    """The timed call of a clip-group kind, and the check to run after timing."""
    if kind == "clip":
        clip = ActiveClip(grads)

        def check_clip() -> None:
            assert clip.clipped == clip.calls > 0, "a call did not clip"
            before = [g.copy() for g in grads]
            target = _flat_norm(before) * 0.5
            norm = fo.clip_grad_norm_(grads, target)
            assert norm == pytest.approx(_flat_norm(before), rel=1e-9)
            coef = np.float32(target / (norm + 1e-6))
            for g, g0 in zip(grads, before, strict=True):
                np.testing.assert_array_equal(g, g0 * coef)

        return clip, check_clip
    before = [g.copy() for g in grads]

    def unchanged() -> None:
        for g, g0 in zip(grads, before, strict=True):
            np.testing.assert_array_equal(g, g0)

    if kind == "no-clip":

        def check_noclip() -> None:
            unchanged()
            assert fo.clip_grad_norm_(grads, NO_CLIP) == pytest.approx(_flat_norm(grads), 1e-9)

        return lambda: fo.clip_grad_norm_(grads, NO_CLIP), check_noclip
    if kind == "norm":

        def check_norm() -> None:
            assert fo.get_total_norm(grads) == pytest.approx(_flat_norm(grads), rel=1e-9)

        return lambda: fo.get_total_norm(grads), check_norm
    arrays = grads[0] if len(grads) == 1 else grads  # traffic: g = g * 1.0
    return lambda: _core.traffic([arrays], [], 1.0, 1), unchanged


@pytest.fixture
def clip_bench(
    benchmark: Any,
    arrays: Any,
    threads: Callable[[int], None],
    torch_mod: Any | None,
    limit: Callable[..., float],
    record: Callable[..., None],
) -> Iterator[Callable[[ClipSpec], None]]:
    """Runs one benchmark of this file: times the call, then checks its result."""

    def run(spec: ClipSpec) -> None:
        if spec.kind.startswith("torch") and torch_mod is None:
            pytest.skip("PyTorch is not installed")
        params, grads = arrays(spec.case, "float32")  # shared: not written here
        threads(spec.threads)
        numel = spec.case.numel
        benchmark.group = spec.group
        if spec.kind in ("fused", "fused-clip"):
            kwargs = {"lr": 1e-3} | (
                {"max_grad_norm": MAX_NORM} if spec.kind == "fused-clip" else {}
            )
            variant = bench.Variant(spec.kind, fo.Adam, kwargs)
            runner = bench.FusedRunner(variant, params, grads, "fused", copy=False)
            fn, args = runner.timed()
            fn(*args)  # the state, outside the timing
            check = lambda: bench.verify(runner)  # noqa: E731 -- one more step vs NumPy
            nbytes = 4 * numel * (8 if spec.kind == "fused-clip" else 7)
        elif spec.kind in ("torch", "torch-clip"):
            step = TorchStep(torch_mod, params, grads)  # on copies: torch's clip writes
            fn, args = (step.clip_step if spec.kind == "torch-clip" else step.step), ()
            fn()

            def check() -> None:  # torch's Adam alone is checked by test_bench_cases
                if spec.kind == "torch-clip":
                    threads(1)  # torch's per-tensor loop on 2 busy cores can take seconds
                    check_against_torch(torch_mod, spec.case)

            nbytes = 4 * numel * (10 if spec.kind == "torch-clip" else 7)
        else:
            own = [g.copy() for g in grads]  # clip_grad_norm_ writes its grads
            fn, check = _clip_call(spec.kind, own)
            args = ()
            nbytes = 4 * numel * {"clip": 3, "no-clip": 1, "norm": 1, "traffic-1R1W": 2}[spec.kind]
        pattern = ADAM if spec.adam else RW
        benchmark.extra_info.update(
            kind=spec.kind,
            case=spec.case.name,
            numel=numel,
            n_tensors=spec.case.n_tensors,
            threads=spec.threads,
            bytes_per_call=nbytes,
            limit_pattern=str(pattern),
        )
        benchmark(fn, *args)
        check()
        limit_s = None
        if not getattr(benchmark, "disabled", False):
            limit_s = limit(pattern, spec.case, "float32", spec.threads)
            benchmark.extra_info["traffic_kernel_s"] = limit_s
        record(spec.group, f"{spec.kind} {spec.threads}t", nbytes, limit_s, benchmark)

    yield run


def test_clip(clip_spec: ClipSpec, clip_bench: Callable[[ClipSpec], None]) -> None:
    clip_bench(clip_spec)
