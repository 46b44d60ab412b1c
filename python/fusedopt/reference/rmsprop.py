"""RMSprop, as torch.optim.RMSprop, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["rmsprop"]


def rmsprop(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step on ``param``, in place.

    ``state`` holds ``step``, ``square_avg``, with momentum ``momentum_buffer`` and,
    when centered, ``grad_avg``.
    """
    g = -grad if maximize else grad
    state["step"] += 1
    if weight_decay != 0:
        g = g + weight_decay * param
    v = state["square_avg"]
    v *= alpha
    v += (1 - alpha) * (g * g)
    if centered:  # subtract the square of the running average of the gradient
        m = state["grad_avg"]
        m += (1 - alpha) * (g - m)
        avg = np.sqrt(v - m * m) + eps
    else:
        avg = np.sqrt(v) + eps  # no bias correction; eps after the square root
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        param -= lr * buf  # lr is applied outside the buffer
    else:
        param -= lr * (g / avg)
