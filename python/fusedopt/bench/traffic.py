"""The bandwidth limit a step is set against: ``_core.traffic`` and ``_core.triad``.

The traffic kernel reads and writes as many arrays per element as an optimizer step
(its :class:`~fusedopt.bench.cases.Pattern`) and does nothing else, through the same
parallel loop: over large arrays its time is the bus limit. The arrays are staggered
within a page (:func:`apart`) or are the step's own (:func:`step_traffic_arrays`).

A low-precision step moves arrays of several widths (a bfloat16 param and grad with
float32 state; int8 states with a float32 scale per block of 64): ``_core.traffic_mixed``
streams such a set of arrays, each described by a :class:`Stream`, in one pass
(:func:`step_streams` gives a step's, :func:`mixed_traffic_seconds` times them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from fusedopt import _core
from fusedopt._memory import spread_full_like
from fusedopt.bench.cases import Case, Pattern
from fusedopt.bench.runners import measure

__all__ = [
    "PAGE_STAGGER",
    "QUANT_BLOCK",
    "Stream",
    "apart",
    "mixed_bytes",
    "mixed_traffic_arrays",
    "mixed_traffic_seconds",
    "step_streams",
    "step_traffic_arrays",
    "sweep_seconds",
    "traffic_arrays",
    "traffic_seconds",
]


#: Bytes between the page offsets of the arrays of a bandwidth kernel (see :func:`apart`).
PAGE_STAGGER = 384
#: Elements per block of a per-block array of ``_core.traffic_mixed`` (an int8 state's
#: float32 scales): that of the int8 optimizer state (``fusedopt.low_precision``).
QUANT_BLOCK = 64


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


# ------------------------------------------------------------------ mixed widths
@dataclass(frozen=True)
class Stream:
    """One array of a mixed-width traffic sweep (``_core.traffic_mixed``): its dtype,
    whether the sweep writes it back (read and written) or only reads it, and whether it
    holds one element per :data:`QUANT_BLOCK` elements (a block scale) instead of one per
    element."""

    dtype: np.dtype[Any]
    written: bool
    per_block: bool = False

    def size(self, numel: int) -> int:
        """Elements of the array for a tensor of ``numel`` elements."""
        return -(-numel // QUANT_BLOCK) if self.per_block else numel

    def nbytes(self, numel: int) -> int:
        """Bytes one sweep moves over this array: its size, twice if it is written."""
        return self.size(numel) * np.dtype(self.dtype).itemsize * (2 if self.written else 1)

    def __str__(self) -> str:
        kind = "rw" if self.written else "r"
        return f"{np.dtype(self.dtype).name}{'/64' if self.per_block else ''} {kind}"


def step_streams(
    param_dtype: DTypeLike,
    state_dtype: DTypeLike | None = None,
    n_state: int = 2,
) -> tuple[Stream, ...]:
    """The arrays an optimizer step with ``n_state`` element-wise state arrays moves: the
    param (read and written), each state (``state_dtype``: None for float32 with a half
    param and the param's dtype otherwise, as the optimizers default; ``"int8"`` for
    int8 codes, each with its float32 block scales, both read and written), the grad
    (the param's dtype, read).

    Adam (two moments) on bfloat16 params with float32 state: 2 + 2 + 2 * 8 + 2 = 22 bytes
    per element; on float32 params with int8 state: 8 + 2 * 2 + 2 * 8 / 64 + 4 = 16.25.
    """
    param: np.dtype[Any] = np.dtype(param_dtype)
    state: np.dtype[Any] = np.dtype(state_dtype)  # "int8": the int8 codes
    if state_dtype is None:
        state = np.dtype(np.float32) if param.itemsize == 2 else param
    streams = [Stream(param, True)]
    for _ in range(n_state):
        streams.append(Stream(state, True))
        if state == np.int8:
            streams.append(Stream(np.dtype(np.float32), True, per_block=True))
    streams.append(Stream(param, False))
    return tuple(streams)


def mixed_bytes(streams: Sequence[Stream], numel: int) -> int:
    """Bytes one ``_core.traffic_mixed`` sweep of ``streams`` moves over ``numel`` elements."""
    return sum(s.nbytes(numel) for s in streams)


def mixed_traffic_arrays(
    streams: Sequence[Stream], numel: int, *, staggered: bool = True
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The ``inplace`` and ``readonly`` arguments of ``_core.traffic_mixed`` for ``streams``
    over one tensor of ``numel`` elements, filled with ones; each large array (64 KiB and
    more) starts at another offset in a page (:func:`apart`) when ``staggered``. The
    first stream must be a written per-element one (it sets the tensor's size)."""
    if not streams or not streams[0].written or streams[0].per_block:
        raise ValueError("the first stream must be a written per-element array (the param)")
    inplace: list[np.ndarray] = []
    readonly: list[np.ndarray] = []
    for k, s in enumerate(streams):
        dt = np.dtype(s.dtype)
        n = s.size(numel)
        if staggered and n * dt.itemsize >= 1 << 16:
            a = apart(n, dt, k)
        else:
            a = np.ones(n, dt)
        (inplace if s.written else readonly).append(a)
    return inplace, readonly


def mixed_traffic_seconds(
    streams: Sequence[Stream],
    numel: int,
    *,
    repeats: int = 5,
    min_time: float = 0.02,
    staggered: bool = True,
) -> float:
    """Seconds per ``_core.traffic_mixed`` sweep of ``streams`` over ``numel`` elements at
    the current thread setting: the bus limit of a step that moves those arrays."""
    inplace, readonly = mixed_traffic_arrays(streams, numel, staggered=staggered)
    return sweep_seconds(_core.traffic_mixed, inplace, readonly, repeats=repeats, min_time=min_time)
