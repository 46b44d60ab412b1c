"""Adamax, as torch.optim.Adamax, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["adamax"]


def adamax(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adamax step on ``param``, in place.

    ``state`` holds ``step``, ``exp_avg`` and ``exp_inf``.
    """
    beta1, beta2 = betas
    g = -grad if maximize else grad
    state["step"] += 1
    t = float(state["step"])
    if weight_decay != 0:
        g = g + weight_decay * param
    m, u = state["exp_avg"], state["exp_inf"]
    m += (1 - beta1) * (g - m)
    u *= beta2
    np.maximum(u, np.abs(g) + eps, out=u)  # eps inside the maximum
    param -= (lr / (1 - beta1**t)) * (m / u)
