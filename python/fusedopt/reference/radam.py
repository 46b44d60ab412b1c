"""RAdam, as torch.optim.RAdam, for one NumPy parameter."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["radam"]


def radam(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One RAdam step on ``param``, in place.

    ``state`` holds ``step`` (a float64 scalar), ``exp_avg`` and ``exp_avg_sq``.
    """
    beta1, beta2 = betas
    g = -grad if maximize else grad
    state["step"] += 1
    t = float(state["step"])
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * (g * g)
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    # the length of the approximated simple moving average, and its limit
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
    if rho_t > 5:  # the variance is tractable: rectified adaptive step
        rect = math.sqrt(
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
        step_size = lr * rect * math.sqrt(bias_correction2) / bias_correction1
        param -= step_size * (m / (np.sqrt(v) + eps))  # eps before the bias correction
    else:  # the first steps: plain bias-corrected momentum
        param -= (lr / bias_correction1) * m
