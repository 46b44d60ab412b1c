"""NAdam, as torch.optim.NAdam, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["nadam"]


def nadam(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One NAdam step on ``param``, in place.

    ``state`` holds ``step``, ``mu_product`` (float64 scalars), ``exp_avg`` and ``exp_avg_sq``.
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
    # the momentum schedule: mu_t for this step, mu_(t+1) for the Nesterov look-ahead
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    state["mu_product"] *= mu
    mu_product = float(state["mu_product"])
    mu_product_next = mu_product * mu_next
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * (g * g)
    bias_correction2 = 1 - beta2**t
    denom = np.sqrt(v / bias_correction2) + eps  # eps after the bias correction, as Adam
    param -= (lr * (1 - mu) / (1 - mu_product)) * (g / denom)
    param -= (lr * mu_next / (1 - mu_product_next)) * (m / denom)
