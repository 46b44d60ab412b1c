"""Gradient clipping: ``torch.nn.utils``' functions on lists of NumPy grads, fused.

:func:`clip_grad_norm_`, :func:`get_total_norm`, :func:`clip_grads_with_norm_` and
:func:`clip_grad_value_` take a list of grad arrays (or one array) and, like torch's,
write the grads in place (all but :func:`get_total_norm`). Each is one native call: the
norm is one parallel read of every grad, the scale or clamp one parallel read-and-write,
without the GIL. Every norm is accumulated in float64 over fixed blocks and combined in a
fixed order, so it has the same bits on any number of threads.

To clip inside an optimizer's step instead (one read of the grads, no write), give the
optimizer ``max_grad_norm=``: see :class:`fusedopt.Optimizer`.

>>> import numpy as np, fusedopt as fo
>>> grads = [np.array([3.0, 0.0]), np.array([0.0, 4.0])]
>>> fo.clip_grad_norm_(grads, max_norm=1.0)     # returns the norm before clipping
5.0
>>> np.round(grads[0], 6), np.round(grads[1], 6)
(array([0.6, 0. ]), array([0. , 0.8]))

Non-finite grads: a norm that is inf or NaN clips by a factor of 0, as an infinite norm
does in torch; the non-finite grads stay non-finite and every other grad becomes 0 (torch
would turn every grad into NaN when the norm is NaN; a NaN here never spreads to other
arrays). ``error_if_nonfinite=True`` raises instead, before anything is written.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import _core

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

Grads = np.ndarray | Iterable[np.ndarray | None]

#: The term torch adds to the norm before dividing: max_norm / (total_norm + 1e-6).
CLIP_EPS = 1e-6


def clip_coefficient(max_norm: float, norm: float) -> float:
    """``min(max_norm / (norm + 1e-6), 1)`` as torch; 0 when the norm is not finite (the
    fused kernels compute the same, reduce.hpp: clip_coefficient)."""
    if not math.isfinite(norm):
        return 0.0
    return min(max_norm / (norm + CLIP_EPS), 1.0)


def check_max_norm(value: Any, name: str, *, allow_none: bool = False) -> Any:
    """``value`` as a float >= 0 (inf allowed: no clipping), else TypeError / ValueError
    naming ``name``; ``None`` passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError:  # an int beyond float64, as the hyperparameter rules say it
        raise ValueError(f"{name} is too large for a float64: {str(value)[:20]}...") from None
    if not x >= 0.0:  # NaN too
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def _check_norm_type(norm_type: Any) -> float:
    if isinstance(norm_type, str) and norm_type.lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(norm_type, bool | np.bool_) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number or inf, got {type(norm_type).__name__}")
    p = float(norm_type)
    if not p > 0.0:  # 0, negative, -inf and NaN
        raise ValueError(f"norm_type must be > 0 (1, 2, inf or any p > 0), got {p}")
    return p


def _native(g: np.ndarray) -> bool:
    """Whether the fused sweeps take ``g`` (else NumPy handles it, as correctly)."""
    return (
        (g.dtype == np.float32 or g.dtype == np.float64)
        and g.dtype.isnative
        and g.flags.aligned
        and (g.flags.c_contiguous or g.flags.f_contiguous)
    )


class _Grads:
    """Checked grads, split into those the fused sweeps take (with their indices in the
    caller's list, for messages) and the others (float16, strided views: NumPy)."""

    def __init__(self) -> None:
        self.native: list[np.ndarray] = []
        self.names: list[int] = []
        self.others: list[np.ndarray] = []

    def all(self) -> list[np.ndarray]:
        return self.native + self.others


def _grad_list(grads: Any, *, writes: bool) -> _Grads:
    """The grads checked (``None`` entries skipped, as torch skips a missing grad);
    TypeError / ValueError naming ``grads[i]`` before anything is written. Two native grads
    that share memory are refused by the native sweep itself (one sorted pass)."""
    if isinstance(grads, np.ndarray):
        items: list[Any] = [grads]
    elif isinstance(grads, Mapping | str | bytes) or not isinstance(grads, Iterable):
        raise TypeError(
            f"grads must be a numpy.ndarray or a sequence of them, got {type(grads).__name__}"
        )
    else:
        items = list(grads)
    out = _Grads()
    seen: dict[int, int] = {}
    other_names: list[int] = []
    for i, g in enumerate(items):
        if g is None:
            continue
        if not isinstance(g, np.ndarray):
            raise TypeError(f"grads[{i}] must be a numpy.ndarray or None, got {type(g).__name__}")
        if g.dtype.kind != "f":
            raise TypeError(f"grads[{i}] has dtype {g.dtype}; clipping takes floating-point grads")
        if writes and not g.flags.writeable:
            raise ValueError(f"grads[{i}] is read-only")
        if id(g) in seen:  # counted twice in a norm, scaled twice in a clip
            raise ValueError(f"grads[{seen[id(g)]}] and grads[{i}] are the same array")
        seen[id(g)] = i
        if _native(g):
            out.native.append(g)
            out.names.append(i)
        else:
            out.others.append(g)
            other_names.append(i)
    if writes:  # a grad written twice (two views of one array) would be scaled twice
        everything = list(zip(out.names + other_names, out.all(), strict=True))
        for i, g in zip(other_names, out.others, strict=True):
            for j, h in everything:
                if h is not g and np.may_share_memory(g, h):
                    i, j = sorted((i, j))
                    raise ValueError(
                        f"grads[{i}] and grads[{j}] may share memory: each grad must be given once"
                    )
    return out


def _norm_sums(grads: _Grads, p: float) -> float:
    """sum |g|^p over every grad (max |g| for p = inf), in float64: the fused sweep for the
    arrays it takes, NumPy for the others (float16, strided views, ...)."""
    total = float(_core.norm_sums(grads.native, p, grads.names)[0]) if grads.native else 0.0
    for g in grads.others:
        total = _combine(total, _numpy_sum(g, p), p)
    return total


def _numpy_sum(g: np.ndarray, p: float) -> float:
    a = np.abs(np.asarray(g, dtype=np.float64))
    if math.isinf(p):
        return float(np.max(a)) if a.size else 0.0
    if p == 2.0:
        return float(np.sum(a * a))
    return float(np.sum(a if p == 1.0 else a**p))


def _combine(a: float, b: float, p: float) -> float:
    if math.isinf(p):
        return a if (a > b or a != a) else b
    return a + b


def _root(total: float, p: float) -> float:
    if math.isinf(p) or p == 1.0:
        return total
    return math.sqrt(total) if p == 2.0 else total ** (1.0 / p)


def reference_total_norm(grads: list[np.ndarray]) -> float:
    """The global L2 norm of ``grads`` in NumPy (``max_grad_norm`` with ``backend="numpy"``)."""
    return math.sqrt(sum(_numpy_sum(g, 2.0) for g in grads))


def get_total_norm(grads: Grads, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """The norm of all ``grads`` together, as if concatenated (``torch.nn.utils.get_total_norm``).

    Args:
        grads: an array or a sequence of arrays (``None`` entries are skipped).
        norm_type: p of the p-norm: 2 (default), 1, ``inf`` (max |g|) or any p > 0.
        error_if_nonfinite: raise ``RuntimeError`` when the norm is inf or NaN.

    Returns:
        The norm, a float (0.0 for no grads), computed in float64; the same bits on any
        number of threads.
    """
    p = _check_norm_type(norm_type)
    return _total_norm(_grad_list(grads, writes=False), p, error_if_nonfinite)


def _total_norm(grads: _Grads, p: float, error_if_nonfinite: bool) -> float:
    norm = _root(_norm_sums(grads, p), p)
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(
            f"the total norm of order {p} of the grads is {norm}, so they cannot be clipped; "
            "pass error_if_nonfinite=False to clip anyway (non-finite grads stay non-finite, "
            "the others become 0)"
        )
    return norm


def clip_grads_with_norm_(grads: Grads, max_norm: float, total_norm: float) -> None:
    """Scales ``grads`` in place by ``min(max_norm / (total_norm + 1e-6), 1)``
    (``torch.nn.utils.clip_grads_with_norm_``), given their norm from :func:`get_total_norm`."""
    max_norm = check_max_norm(max_norm, "max_norm")
    value = np.asarray(total_norm) if isinstance(total_norm, np.ndarray | np.generic) else None
    real = isinstance(total_norm, numbers.Real) and not isinstance(total_norm, bool | np.bool_)
    if value is not None and value.size == 1 and value.dtype.kind in "fiu":
        norm = float(value.reshape(()))
    elif real:
        norm = float(total_norm)
    else:
        raise TypeError(f"total_norm must be a single real number, got {type(total_norm).__name__}")
    _scale(_grad_list(grads, writes=True), clip_coefficient(max_norm, norm))


def clip_grad_norm_(
    grads: Grads,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Clips the grads in place so that their total norm is at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_``): each is multiplied by
    ``min(max_norm / (total_norm + 1e-6), 1)``. Returns the norm before clipping.

    Args:
        grads: an array or a sequence of arrays, written in place (``None`` skipped).
        max_norm: the largest norm the grads keep (>= 0).
        norm_type: 2 (default), 1, ``inf`` or any p > 0.
        error_if_nonfinite: raise ``RuntimeError`` (and write nothing) when the norm is
            inf or NaN.
    """
    max_norm = check_max_norm(max_norm, "max_norm")
    p = _check_norm_type(norm_type)
    checked = _grad_list(grads, writes=True)
    norm = _total_norm(checked, p, error_if_nonfinite)
    _scale(checked, clip_coefficient(max_norm, norm))
    return norm


def clip_grad_value_(grads: Grads, clip_value: float) -> None:
    """Clamps every grad element to ``[-clip_value, clip_value]`` in place
    (``torch.nn.utils.clip_grad_value_``); NaN stays NaN."""
    v = check_max_norm(clip_value, "clip_value")
    checked = _grad_list(grads, writes=True)
    if checked.native:  # first: it refuses native grads that share memory, writing nothing
        _core.clamp_grads(checked.native, -v, v, checked.names)
    with np.errstate(all="ignore"):  # np.seterr(all="raise") must not stop it half-way
        for g in checked.others:
            t = g.dtype.type
            np.clip(g, t(-v), t(v), out=g)


def _scale(grads: _Grads, coef: float) -> None:
    if coef == 1.0:  # torch multiplies by 1.0: the same values
        return
    if grads.native:  # first: it refuses native grads that share memory, writing nothing
        _core.scale_grads(grads.native, coef, grads.names)
    with np.errstate(all="ignore"):  # inf * 0 is NaN, silently (np.seterr must not stop it)
        for g in grads.others:
            g *= g.dtype.type(coef)
