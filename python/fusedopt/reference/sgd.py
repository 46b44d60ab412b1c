"""SGD, as torch.optim.SGD, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["sgd"]


def sgd(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """One SGD step on ``param`` (in place); ``state`` holds ``momentum_buffer`` and ``step``."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        buf = state["momentum_buffer"]
        state["step"] += 1
        if state["step"] == 1:  # the first step takes the gradient as it is, without dampening
            buf[...] = g
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param -= lr * g
