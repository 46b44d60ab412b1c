"""LAMB, as optax.lamb, for one NumPy parameter."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["lamb", "norm", "trust_ratio"]


def norm(x: np.ndarray) -> float:
    """The L2 norm of ``x``, accumulated in float64."""
    return math.sqrt(float(np.sum(np.square(x, dtype=np.float64))))


def trust_ratio(p: np.ndarray, u: np.ndarray, coefficient: float = 1.0, eps: float = 0.0) -> float:
    """optax's scale_by_trust_ratio: coefficient * ||p|| / (||u|| + eps), 1 if a norm is 0."""
    p_norm, u_norm = norm(p), norm(u)
    return 1.0 if p_norm == 0 or u_norm == 0 else coefficient * p_norm / (u_norm + eps)


def lamb(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    eps_root: float,
    weight_decay: float,
) -> None:
    """One LAMB step on ``param``, in place (optax: scale_by_adam, add_decayed_weights,
    scale_by_trust_ratio, scale_by_learning_rate); ``state`` holds ``step``,
    ``exp_avg`` and ``exp_avg_sq``."""
    beta1, beta2 = betas
    state["step"] += 1
    t = float(state["step"])
    dtype = param.dtype.type
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = (1 - beta1) * grad + beta1 * m
    v[...] = (1 - beta2) * (grad * grad) + beta2 * v
    m_hat = m / dtype(1 - beta1**t)
    v_hat = v / dtype(1 - beta2**t)
    u = m_hat / (np.sqrt(v_hat + eps_root) + eps) + weight_decay * param
    param -= dtype(lr * trust_ratio(param, u)) * u
