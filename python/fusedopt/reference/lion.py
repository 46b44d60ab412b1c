"""Lion (Chen et al., 2023), for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["lion"]


def lion(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Lion step on ``param``, in place; ``state`` holds ``exp_avg``.

    ``numpy.sign`` gives sign(0) = 0 and sign(NaN) = NaN.
    """
    beta1, beta2 = betas
    g = -grad if maximize else grad
    m = state["exp_avg"]
    update = np.sign(beta1 * m + (1 - beta1) * g)
    if weight_decay != 0:  # decoupled: the decay uses the parameter before this step
        update += weight_decay * param
    param -= lr * update
    m *= beta2
    m += (1 - beta2) * g
