"""Rprop, as torch.optim.Rprop, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["rprop"]


def _sign(x: np.ndarray) -> np.ndarray:
    """-1, 0 or 1 in x's dtype, and 0 for NaN, as ``torch.sign`` (``numpy.sign`` gives NaN)."""
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


def rprop(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    etas: tuple[float, float],
    step_sizes: tuple[float, float],
    maximize: bool,
) -> None:
    """One Rprop step on ``param``, in place.

    ``state`` holds ``step``, ``prev`` and ``step_size`` (which starts full of lr).
    """
    dt = param.dtype.type
    etaminus, etaplus = dt(etas[0]), dt(etas[1])
    step_size_min, step_size_max = dt(step_sizes[0]), dt(step_sizes[1])
    g = -grad if maximize else grad
    state["step"] += 1
    prev, step_size = state["prev"], state["step_size"]
    prod = g * prev
    factor = np.where(prod > 0, etaplus, np.where(prod < 0, etaminus, dt(1)))
    step_size *= factor
    # torch's clamp: min(max(x, min), max); a NaN stays NaN (as numpy's maximum/minimum)
    np.minimum(np.maximum(step_size, step_size_min), step_size_max, out=step_size)
    g = np.where(factor == etaminus, dt(0), g)  # the sign flipped: no move this step
    param -= _sign(g) * step_size
    prev[...] = g
