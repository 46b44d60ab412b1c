"""LARS, as optax.lars, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

from .lamb import trust_ratio

__all__ = ["lars"]


def lars(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    weight_decay: float,
    trust_coefficient: float,
    eps: float,
    momentum: float,
    nesterov: bool,
) -> None:
    """One LARS step on ``param``, in place (optax: add_decayed_weights,
    scale_by_trust_ratio, scale_by_learning_rate, trace); ``state`` holds ``trace`` when
    momentum is not 0."""
    dtype = param.dtype.type
    u = grad + weight_decay * param
    u = u * dtype(trust_ratio(param, u, trust_coefficient, eps)) * dtype(-lr)
    if momentum != 0:
        trace = state["trace"]
        trace[...] = u + momentum * trace
        u = u + momentum * trace if nesterov else trace.copy()
    param += u
