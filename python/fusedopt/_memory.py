"""Allocation of state arrays that do not collide with the parameter in the cache.

Large NumPy arrays come straight from ``mmap`` and all start at the same offset within
a 4 KiB page (16 bytes past its start). A step that streams a parameter, its grad and
three state arrays that all share their low 12 address bits suffers "4K aliasing": the
CPU's load/store disambiguation sees false conflicts between the streams, and a
bandwidth-bound kernel loses a third of its speed. State arrays are therefore placed at
distinct, cache-line-aligned offsets within a page, one per state slot.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["SPREAD_MIN_BYTES", "spread_full_like"]

PAGE = 4096
#: Arrays smaller than this come from malloc's pools at scattered offsets already.
SPREAD_MIN_BYTES = 1 << 16
_STRIDE = 9 * 64  # cache-line multiple, coprime-ish with the page: slots 0..6 all differ


def spread_full_like(
    param: np.ndarray, value: float, slot: int, dtype: DTypeLike | None = None
) -> np.ndarray:
    """A new array like ``param`` (shape, C or Fortran order; its dtype, or ``dtype``) filled
    with ``value``.

    Large arrays start at page offset ``(slot + 1) * 576 mod 4096`` bytes, so that the
    state arrays of one parameter, the parameter and its grad (malloc's offset 16) all
    start at different offsets within a page.
    """
    dt = param.dtype if dtype is None else np.dtype(dtype)
    nbytes = param.size * dt.itemsize
    if nbytes < SPREAD_MIN_BYTES:
        return np.full_like(param, value, dtype=dt)
    offset = ((slot + 1) * _STRIDE) % PAGE
    raw = np.empty(nbytes + PAGE, np.uint8)
    start = (offset - raw.ctypes.data) % PAGE
    order: Literal["C", "F"] = (
        "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"
    )
    out = raw[start : start + nbytes].view(dt).reshape(param.shape, order=order)
    out[...] = value
    return out
