"""Adadelta, as torch.optim.Adadelta, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["adadelta"]


def adadelta(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adadelta step on ``param``, in place.

    ``state`` holds ``step``, ``square_avg`` and ``acc_delta``.
    """
    g = -grad if maximize else grad
    state["step"] += 1
    if weight_decay != 0:
        g = g + weight_decay * param
    v, u = state["square_avg"], state["acc_delta"]
    v *= rho
    v += (1 - rho) * (g * g)
    delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g  # eps inside both square roots
    u *= rho
    u += (1 - rho) * (delta * delta)
    param -= lr * delta
