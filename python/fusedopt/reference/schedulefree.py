"""SGDScheduleFree and AdamWScheduleFree, as the ``schedulefree`` package (1.4.1), for
one NumPy parameter.

The package's memory-efficient form: in train mode the parameter holds y, the state is
z (and AdamW's exp_avg_sq); x is never stored. The group-level bookkeeping (``k``,
``lr_max``, ``weight_sum``) is read as it was before the step; the optimizer class
writes its new values into the group after the step (:func:`schedulefree_counters`).
Every element-wise operation rounds in the parameter's dtype, as torch's do.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adamw_schedulefree", "lerp", "schedulefree_counters", "sgd_schedulefree"]


def schedulefree_counters(
    lr: float,
    warmup_steps: int,
    r: float,
    weight_lr_power: float,
    k: int,
    lr_max: float,
    weight_sum: float,
) -> tuple[float, float, float, float]:
    """One step's group-level values, the package's expressions in Python floats:
    ``(scheduled_lr, new lr_max, new weight_sum, ckp1)``.

    >>> schedulefree_counters(1.0, 0, 0.0, 2.0, 0, -1.0, 0.0)
    (1.0, 1.0, 1.0, 1.0)
    """
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr = lr * sched
    lr_max = max(lr, lr_max)
    weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    weight_sum = weight_sum + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0  # the package's ZeroDivisionError
    return lr, lr_max, weight_sum, ckp1


def lerp(a: np.ndarray, b: np.ndarray, weight: float) -> None:
    """``a = torch.lerp(a, b, weight)`` in place: ``a + w * (b - a)`` for ``|w| < 0.5``,
    else ``b - (b - a) * (1 - w)``, with ``w`` rounded to ``a``'s dtype first."""
    t = a.dtype.type
    w = t(weight)
    if abs(w) < t(0.5):
        a[...] = a + w * (b - a)
    else:
        a[...] = b - (b - a) * (t(1) - w)


def _average_and_step(
    y: np.ndarray, z: np.ndarray, g: np.ndarray, ckp1: float, y_coef: float, lr: float
) -> None:
    """y = lerp(y, z, ckp1); y += y_coef * g; z -= lr * g (the package's last three ops)."""
    t = y.dtype.type
    lerp(y, z, ckp1)
    y += t(y_coef) * g
    z += t(-lr) * g


def sgd_schedulefree(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    warmup_steps: int,
    r: float,
    weight_lr_power: float,
    k: int,
    lr_max: float,
    weight_sum: float,
) -> None:
    """One SGDScheduleFree step on ``param`` (y, in place); ``state`` holds ``z``."""
    lr_t, _, _, ckp1 = schedulefree_counters(
        lr, int(warmup_steps), r, weight_lr_power, int(k), lr_max, weight_sum
    )
    t = param.dtype.type
    g = grad
    if weight_decay != 0:
        g = g + t(weight_decay) * param  # the decay at y
    _average_and_step(param, state["z"], g, ckp1, lr_t * (momentum * (1 - ckp1) - 1), lr_t)


def adamw_schedulefree(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    warmup_steps: int,
    r: float,
    weight_lr_power: float,
    k: int,
    lr_max: float,
    weight_sum: float,
) -> None:
    """One AdamWScheduleFree step on ``param`` (y, in place); ``state`` holds ``z`` and
    ``exp_avg_sq``."""
    beta1, beta2 = betas
    lr_t, _, _, ckp1 = schedulefree_counters(
        lr, int(warmup_steps), r, weight_lr_power, int(k), lr_max, weight_sum
    )
    bias_correction2 = 1 - beta2 ** (int(k) + 1)
    t = param.dtype.type
    v = state["exp_avg_sq"]
    v *= t(beta2)
    v += t(1 - beta2) * grad * grad
    # the package divides by bias_correction2; the kernel multiplies by its reciprocal
    g = grad / (np.sqrt(v * t(1 / bias_correction2)) + t(eps))
    if weight_decay != 0:
        g = g + t(weight_decay) * param  # the decay at y
    _average_and_step(param, state["z"], g, ckp1, lr_t * (beta1 * (1 - ckp1) - 1), lr_t)
