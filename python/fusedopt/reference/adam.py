"""Adam and AdamW, as torch.optim.Adam / AdamW, for one NumPy parameter."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["adam"]


def adam(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam step on ``param``, in place; AdamW's with ``decoupled_weight_decay=True``.

    ``state`` holds ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
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
    if amsgrad:  # the maximum of the raw (not bias-corrected) second moment
        np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        v = state["max_exp_avg_sq"]
    denom = np.sqrt(v) / math.sqrt(bias_correction2) + eps  # eps after the bias correction
    param -= (lr / bias_correction1) * (m / denom)
