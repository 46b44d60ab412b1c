"""Low precision: float16 / bfloat16 parameters, stochastic rounding, 8-bit optimizer state.

The fused kernels do all of this in registers (``cpp/include/fusedopt/half.hpp`` and
``mixed.hpp``); this module is the NumPy side of the same computation: the dtypes, the
counter-based generator of stochastic rounding, the blockwise int8 codes, and helpers
that tell how many bytes an optimizer's state takes.

* bfloat16 is ``ml_dtypes.bfloat16`` (the NumPy dtype of JAX and TensorFlow), an optional
  extra: ``pip install "fusedopt[half]"``. It is imported only when asked for.
* Stochastic rounding of a float32 value x to a 16-bit format: x rounds away from zero
  with probability (distance to the lower neighbour) / (distance between the
  neighbours), so the rounding is unbiased. The random bits of element ``j`` of parameter
  ``i`` at rounding step ``s`` are ``mix32(j_lo ^ k0 ^ j_hi * 0x9E3779B9) ^ k1`` with
  ``(k0, k1)`` the halves of :func:`rounding_key(seed, s, i) <rounding_key>`: the same bits
  for any number of threads, and after a checkpoint resume.
* int8 state: blocks of :data:`QUANT_BLOCK` elements, each with a float32 absmax ``a``.
  First moments (signed) use the linear code ``q = rint(x * 127 / a)``; second moments
  (``exp_avg_sq``, ``max_exp_avg_sq``, ``exp_inf``: non-negative) a dynamic-range code: ``x / a``
  as a float with 3 mantissa bits and 5 bits of exponent (2^-32 .. 1), like bitsandbytes'
  dynamic map a non-linear code whose steps are 12.5% apart at every scale, but closed-form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import import_optional

if TYPE_CHECKING:
    from .optimizer import Optimizer

__all__ = [
    "EXPONENT_CODED",
    "QUANT_BLOCK",
    "bfloat16",
    "dequantize",
    "half_dtypes",
    "is_half",
    "quantize",
    "round_half",
    "rounding_key",
    "state_nbytes_per_param",
]

#: Elements per block of int8 state, each block with one float32 absmax.
QUANT_BLOCK = 64
#: State names whose int8 code is the non-linear exponent code (non-negative moments).
EXPONENT_CODED = frozenset({"exp_avg_sq", "max_exp_avg_sq", "exp_inf"})
_M64 = (1 << 64) - 1


def bfloat16() -> np.dtype[Any]:
    """The bfloat16 dtype (``ml_dtypes.bfloat16``); ImportError naming the extra without it."""
    ml_dtypes = import_optional("ml_dtypes", "bfloat16 parameters", extra="half")
    return np.dtype(ml_dtypes.bfloat16)


def _bfloat16_if_loaded() -> np.dtype[Any] | None:
    """bfloat16 if ml_dtypes is importable, else None (no error)."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def half_dtypes() -> tuple[np.dtype[Any], ...]:
    """The half-precision parameter dtypes: float16, and bfloat16 when ml_dtypes is installed."""
    bf16 = _bfloat16_if_loaded()
    return (np.dtype(np.float16),) if bf16 is None else (np.dtype(np.float16), bf16)


def is_half(dtype: Any) -> bool:
    """Whether ``dtype`` is float16 or bfloat16."""
    d = np.dtype(dtype)
    if d == np.float16:
        return True
    return d.itemsize == 2 and d.kind == "V" and d.name == "bfloat16"


# ------------------------------------------------------------ stochastic rounding
def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def rounding_key(seed: int, step: int, index: int) -> int:
    """The 64-bit key of stochastic rounding for parameter ``index`` at rounding step ``step``."""
    return _splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (step & _M64)) ^ (index & _M64))


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x21F0AAAD)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x735A2D97)
    return x ^ (x >> np.uint32(15))


def random_bits(key: int, n: int) -> np.ndarray:
    """The 32 random bits of elements 0..n-1 under ``key`` (uint32 array)."""
    k0, k1 = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
    j = np.arange(n, dtype=np.uint64)
    lo = (j & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (j >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        return _mix32(lo ^ k0 ^ (hi * np.uint32(0x9E3779B9))) ^ k1


def round_half(x: np.ndarray, dtype: Any, key: int | None = None) -> np.ndarray:
    """float32 ``x`` rounded to the half dtype ``dtype``: to nearest even (``key`` None), or
    stochastically with the random bits of ``key`` (element by element, in C order)."""
    dtype = np.dtype(dtype)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if key is None:
        return x.astype(dtype)
    flat = x.reshape(-1)
    r = random_bits(key, flat.size)
    mag = flat.view(np.uint32) & np.uint32(0x7FFFFFFF)
    e = (mag >> np.uint32(23)).astype(np.int64) - 127
    # k: how many low bits of x the format drops
    if dtype == np.float16:
        k = np.where(e >= -14, 13, np.clip(-1 - e, 13, 23)).astype(np.uint32)
    else:
        k = np.full(flat.shape, 16, np.uint32)
    mask = (np.uint32(1) << k) - np.uint32(1)
    frac = mag & mask
    # toward zero: the dropped bits cleared, exactly representable in the format
    toward_zero = (flat.view(np.uint32) & ~mask).view(np.float32).astype(dtype)
    up = (frac != 0) & ((r & mask) >= (mask - frac + np.uint32(1)))
    away = np.nextafter(toward_zero, np.copysign(np.inf, flat).astype(dtype))
    out = np.where(up, away, toward_zero)
    if dtype == np.float16:  # below 2^-24 / 2: round to 2^-24 with probability |x| / 2^-24
        tiny = e < -24
        if tiny.any():
            p = np.abs(flat[tiny]) * np.float32(16777216.0)
            u = (r[tiny] >> np.uint32(8)).astype(np.float32) * np.float32(5.9604644775390625e-8)
            smallest = np.copysign(np.float32(2.0**-24), flat[tiny]).astype(dtype)
            out[tiny] = np.where(u < p, smallest, np.copysign(0.0, flat[tiny]).astype(dtype))
    nan = np.isnan(flat)
    if nan.any():
        out[nan] = flat[nan].astype(dtype)
    return out.reshape(x.shape)


# ------------------------------------------------------------------- int8 state
def _blocks(x: np.ndarray) -> tuple[np.ndarray, int]:
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n = flat.size
    padded = np.zeros(-(-n // QUANT_BLOCK) * QUANT_BLOCK, np.float32)
    padded[:n] = flat
    return padded.reshape(-1, QUANT_BLOCK), n


def quantize(x: np.ndarray, exponent: bool) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise int8 codes of ``x`` (float32, in memory order) and the float32 absmax of
    each block: the linear code, or the exponent code when ``exponent`` (``x >= 0``)."""
    blocks, n = _blocks(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        absmax = np.max(np.abs(blocks), axis=1)
        if exponent:
            inv = np.where(absmax > 0, np.float32(1.0) / absmax, np.float32(0.0)).astype(np.float32)
            y = (blocks * inv[:, None]).astype(np.float32)
            b = y.view(np.uint32) & np.uint32(0x7FFFFFFF)
            rounded = b + np.uint32(0x7FFFF) + ((b >> np.uint32(20)) & np.uint32(1))
            q = (rounded >> np.uint32(20)).astype(np.int64) - 761
            codes = np.clip(q, 0, 255).astype(np.uint8).view(np.int8)  # a NaN: 255
        else:
            inv = np.where(absmax > 0, np.float32(127.0) / absmax, np.float32(0.0)).astype(
                np.float32
            )
            q = np.clip(np.rint(blocks * inv[:, None]), -127, 127)
            codes = np.where(np.isnan(q), -127, q).astype(np.int8)  # NaN: -127, as the kernels
    return codes.reshape(-1)[:n], absmax.astype(np.float32)


def dequantize(codes: np.ndarray, absmax: np.ndarray, exponent: bool) -> np.ndarray:
    """float32 values (flat, in memory order) of blockwise int8 ``codes`` with ``absmax``."""
    flat = np.ascontiguousarray(codes).reshape(-1)
    n = flat.size
    scale = np.repeat(np.asarray(absmax, np.float32), QUANT_BLOCK)[:n]
    with np.errstate(invalid="ignore", over="ignore"):
        if exponent:
            q = flat.view(np.uint8).astype(np.uint32)
            y = ((q + np.uint32(761)) << np.uint32(20)).view(np.float32)
            return np.where(q == 0, np.float32(0.0), y) * scale
        return flat.astype(np.float32) * (scale / np.float32(127.0))


# ------------------------------------------------------------------ accounting
def state_nbytes_per_param(opt: Optimizer) -> float:
    """Bytes of optimizer state (arrays and scalars, int8 scales included) per element of
    the parameters that have state."""
    nbytes = 0
    numel = 0
    for i, st in opt.state.items():
        nbytes += sum(a.nbytes for a in st.values())
        numel += opt._params[i].size
    return nbytes / numel if numel else math.nan


def state_nbytes(arrays: Iterable[np.ndarray]) -> int:
    """Total bytes of ``arrays``."""
    return sum(a.nbytes for a in arrays)
