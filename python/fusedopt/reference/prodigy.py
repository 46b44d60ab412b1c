"""Prodigy, as ``prodigyopt`` 1.1.2's ``Prodigy.step``, over every NumPy parameter at once.

Prodigy's step size ``d`` is one number for all param groups, estimated from sums over
every tensor, so this reference takes the whole optimizer: the param groups (dicts with
``"params"``, updated in place as the package updates them: ``d``, ``d_max``,
``d_numerator``, ``d_denom``, ``d_hat``, ``k``), the grads and the states, both flat in
the order of the groups' params.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["prodigy"]


def prodigy(
    groups: Sequence[dict[str, Any]],
    grads: Sequence[np.ndarray | None],
    states: Sequence[dict[str, np.ndarray]],
) -> None:
    """One Prodigy step of every parameter with a grad, in place (``None`` skips one).

    Each state holds ``step``, ``s``, ``p0``, ``exp_avg_sq`` and, when beta1 > 0,
    ``exp_avg``. As the package: group 0 holds the global numbers (betas, beta3, d,
    d_max, d_numerator, d_coef, growth_rate, use_bias_correction, decouple), lr is the
    largest of the groups' lrs, and each group has its own eps, weight_decay, d0,
    safeguard_warmup and k.
    """
    g0 = groups[0]
    beta1, beta2 = g0["betas"]
    beta3 = math.sqrt(beta2) if g0["beta3"] is None else g0["beta3"]
    k = g0["k"]
    d, d_max, d_coef = g0["d"], g0["d_max"], g0["d_coef"]
    lr = max(g["lr"] for g in groups)
    if g0["use_bias_correction"]:
        bias_correction = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))
    else:
        bias_correction = 1.0
    dlr = d * lr * bias_correction
    decouple = g0["decouple"]
    d_numerator = g0["d_numerator"] * beta3
    delta_numerator = 0.0
    d_denom = 0.0

    # First pass: the moments, s, and the sums that estimate d (groups with lr > 0).
    stepped: list[tuple[dict[str, Any], np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    i = 0
    for group in groups:
        decay, d0 = group["weight_decay"], group["d0"]
        for p in group["params"]:
            grad, state = grads[i], states[i]
            i += 1
            if grad is None:
                continue
            if decay != 0 and not decouple:  # coupled weight decay
                grad = grad + decay * p
            stepped.append((group, p, grad, state))
            if group["lr"] > 0.0:
                diff = (state["p0"] - p).ravel().astype(np.float64)
                delta_numerator += (d / d0) * dlr * float(grad.ravel().astype(np.float64) @ diff)
                if beta1 > 0:
                    m = state["exp_avg"]
                    m *= beta1
                    m += (d * (1 - beta1)) * grad
                v = state["exp_avg_sq"]
                v *= beta2
                v += (d * d * (1 - beta2)) * (grad * grad)
                s = state["s"]
                s *= beta3
                s += ((d / d0) * d if group["safeguard_warmup"] else (d / d0) * dlr) * grad
                d_denom += float(np.abs(s).sum(dtype=np.float64))

    if d_denom == 0:  # no progress (no grad, or all zero): no update, as the package
        return
    d_hat = d
    if lr > 0.0:
        d_numerator = d_numerator + delta_numerator
        d_hat = d_coef * d_numerator / d_denom
        if d == groups[-1]["d0"]:  # the package compares with the last group's d0
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * g0["growth_rate"])
    for group in groups:
        group["d_numerator"] = d_numerator
        group["d_denom"] = d_denom
        group["d"] = d
        group["d_max"] = d_max
        group["d_hat"] = d_hat
        group["k"] = group["k"] + 1

    # Second pass: the update, with the new d and the dlr of the old one.
    for group, p, grad, state in stepped:
        state["step"] += 1
        denom = np.sqrt(state["exp_avg_sq"]) + d * group["eps"]
        decay = group["weight_decay"]
        if decay != 0 and decouple:
            p += (-decay * dlr) * p
        if beta1 > 0:
            p += -dlr * (state["exp_avg"] / denom)
        else:
            p += (-dlr * d) * (grad / denom)
