"""The bandwidth limit a step is set against: ``_core.traffic`` and ``_core.triad``.

The traffic kernel reads and writes as many arrays per element as an optimizer step
(its :class:`~fusedopt.bench.cases.Pattern`) and does nothing else, through the same
parallel loop: over large arrays its time is the bus limit. The arrays are staggered
within a page (:func:`apart`) or are the step's own (:func:`step_traffic_arrays`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fusedopt import _core
from fusedopt._memory import spread_full_like
from fusedopt.bench.cases import Case, Pattern
from fusedopt.bench.runners import measure

__all__ = [
    "PAGE_STAGGER",
    "apart",
    "step_traffic_arrays",
    "sweep_seconds",
    "traffic_arrays",
    "traffic_seconds",
]


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
