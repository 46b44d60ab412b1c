"""Adafactor, as torch.optim.Adafactor (its single-tensor loop), for one NumPy parameter."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["adafactor"]


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start.lerp_(end, weight)`` in place, in the arrays' dtype, with torch's two forms
    (exact at weight 0 and at weight 1)."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


def adafactor(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    beta2_decay: float,
    eps: tuple[float | None, float],
    d: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adafactor step on ``param``, in place, computed in the parameter's dtype.

    ``state`` holds ``step`` and, for a parameter of 2 or more dims, ``row_var`` (its shape
    with the last dim 1) and ``col_var`` (its shape with the last-but-one dim 1), the
    factored second moment over the last two dims; for 0 or 1 dims, ``variance`` (its
    shape). ``eps[0]`` None means the machine epsilon of the parameter's dtype.
    This reference builds the full-size estimate ``row_var @ col_var`` as torch does.
    """
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = float(np.finfo(param.dtype).eps)
    g = -grad if maximize else grad
    dt = param.dtype.type
    state["step"] += 1
    t = float(state["step"])
    if param.size == 0:  # nothing to update (torch divides by zero here)
        return
    one_minus_beta2_t = t**beta2_decay
    rho_t = min(lr, 1 / t**0.5)
    # RMS(param) before the weight decay
    rms = math.sqrt(float(np.sum(np.square(param, dtype=np.float64)))) / param.size**0.5
    alpha = max(eps2, rms) * rho_t
    if weight_decay != 0:
        param *= dt(1 - lr * weight_decay)
    if param.ndim > 1:
        row_var, col_var = state["row_var"], state["col_var"]
        g2 = np.square(g, dtype=np.float64)  # the means of g^2 in float64, rounded once
        _lerp(row_var, np.mean(g2, axis=-1, keepdims=True).astype(dt), one_minus_beta2_t)
        _lerp(col_var, np.mean(g2, axis=-2, keepdims=True).astype(dt), one_minus_beta2_t)
        row_mean = np.mean(row_var, axis=-2, keepdims=True, dtype=np.float64).astype(dt)
        var_estimate = (row_var * col_var) / np.maximum(row_mean, dt(eps1))  # the outer product
    else:
        variance = state["variance"]
        _lerp(variance, g * g, one_minus_beta2_t)
        var_estimate = variance.copy()
    var_estimate = np.maximum(var_estimate, dt(eps1 * eps1))  # eps1 squared: sqrt follows
    update = (dt(1) / np.sqrt(var_estimate)) * g
    u_rms = math.sqrt(float(np.sum(np.square(update, dtype=np.float64)))) / (update.size**0.5 * d)
    denom = max(1.0, u_rms)
    param += dt(-alpha / denom) * update
