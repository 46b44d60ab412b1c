"""Adagrad, as torch.optim.Adagrad, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["adagrad"]


def adagrad(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step on ``param``, in place; ``state`` holds ``step`` and ``sum``.

    ``sum`` starts at ``initial_accumulator_value`` (the optimizer fills it at construction).
    """
    g = -grad if maximize else grad
    state["step"] += 1
    t = float(state["step"])
    if weight_decay != 0:
        g = g + weight_decay * param
    clr = lr / (1 + (t - 1) * lr_decay)  # the decayed learning rate
    s = state["sum"]
    s += g * g
    param -= clr * (g / (np.sqrt(s) + eps))
