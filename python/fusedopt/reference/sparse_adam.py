"""SparseAdam, as torch.optim.SparseAdam (torch.optim._functional.sparse_adam), for one
NumPy parameter and a row-sparse grad."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["coalesce_rows", "sparse_adam"]


def coalesce_rows(indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique, values)``: the sorted distinct row indices and, for each, the sum of its
    rows in the order they were given (``torch.Tensor.coalesce()`` of a sparse grad)."""
    unique, inverse = np.unique(np.asarray(indices), return_inverse=True)
    values = np.zeros((len(unique), *rows.shape[1:]), rows.dtype)
    np.add.at(values, inverse.reshape(-1), rows)  # in the given order, repeats accumulate
    return unique.astype(np.int64), values


def sparse_adam(
    param: np.ndarray,
    grad: Any,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    maximize: bool,
) -> None:
    """One SparseAdam step on ``param``, in place, from ``grad`` (a
    :class:`fusedopt.RowGrad`: ``indices`` and ``rows``); only the touched rows of the
    parameter and of ``state`` (``step``, ``exp_avg``, ``exp_avg_sq``) change, and
    ``step`` counts every call (torch counts a step also for an empty grad).

    Written as torch writes it, one rounding per operation in the parameter's dtype::

        g = coalesce(grad)  (negated when maximizing)
        u1 = (g - m) * (1 - beta1);          m[rows] = m + u1
        u2 = (g * g - v) * (1 - beta2);      v[rows] = v + u2
        p[rows] += -lr * sqrt(1 - beta2^t) / (1 - beta1^t) * ((u1 + m) / (sqrt(u2 + v) + eps))
    """
    state["step"] += 1
    rows, g = coalesce_rows(grad.indices, grad.rows)
    if maximize:
        g = -g
    if g.size == 0:  # torch skips the update of an empty grad (its step still counts)
        return
    beta1, beta2 = betas
    t = float(state["step"])
    dt = param.dtype.type
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m_old, v_old = m[rows], v[rows]
    u1 = (g - m_old) * dt(1 - beta1)
    u2 = (g * g - v_old) * dt(1 - beta2)
    m[rows] = m_old + u1
    v[rows] = v_old + u2
    numer = u1 + m_old
    denom = np.sqrt(u2 + v_old) + dt(eps)
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    param[rows] = param[rows] + dt(-step_size) * (numer / denom)
