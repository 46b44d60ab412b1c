"""SGDHD and AdamHD: hypergradient descent of the learning rate (Baydin et al. 2018), as
the authors' ``hypergrad/sgd_hd.py`` and ``hypergrad/adam_hd.py``, over every NumPy
parameter at once.

The learning rate of each param group learns itself from the hypergradient
``<g_t, d_(t-1)>`` (the grad against the previous update direction) summed over the
group's tensors, before the update, and lives in ``group["lr"]``. These references take
the param groups (updated in place), the grads and the states, both flat in the order of
the groups' params.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["adam_hd", "sgd_hd"]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> in float64."""
    return float(a.ravel().astype(np.float64) @ b.ravel().astype(np.float64))


def _grouped(
    groups: Sequence[dict[str, Any]], grads: Sequence[np.ndarray | None]
) -> list[list[tuple[int, np.ndarray, np.ndarray]]]:
    """Each group's (index, param, grad) of the params with a grad."""
    out: list[list[tuple[int, np.ndarray, np.ndarray]]] = []
    i = 0
    for group in groups:
        mine = []
        for p in group["params"]:
            g = grads[i]
            if g is not None:
                mine.append((i, p, g))
            i += 1
        out.append(mine)
    return out


def sgd_hd(
    groups: Sequence[dict[str, Any]],
    grads: Sequence[np.ndarray | None],
    states: Sequence[dict[str, np.ndarray]],
) -> None:
    """One SGDHD step of every parameter with a grad, in place (``None`` skips one).

    Each state holds ``step`` and the previous direction: ``grad_prev`` (no momentum, or
    nesterov) and/or ``momentum_buffer`` (which is the previous direction with momentum
    and without nesterov).
    """
    for group, items in zip(groups, _grouped(groups, grads), strict=True):
        if not items:
            continue
        wd, momentum, dampening = group["weight_decay"], group["momentum"], group["dampening"]
        eff = []
        h = 0.0
        for i, p, grad in items:
            g = -grad if group["maximize"] else grad
            if wd != 0:
                g = g + wd * p
            state = states[i]
            prev = state.get("grad_prev", state.get("momentum_buffer"))
            if state["step"] > 0 and prev is not None:
                h += _dot(g, prev)
            eff.append((i, p, g))
        group["lr"] = group["lr"] + group["hypergrad_lr"] * h
        lr = group["lr"]
        for i, p, g in eff:
            state = states[i]
            first = state["step"] == 0
            state["step"] += 1
            direction = g
            if momentum != 0:
                buf = state["momentum_buffer"]
                if first:
                    buf[...] = g
                else:
                    buf *= momentum
                    buf += (1 - dampening) * g
                direction = g + momentum * buf if group["nesterov"] else buf
            if "grad_prev" in state:
                state["grad_prev"][...] = direction
            p += -lr * direction


def adam_hd(
    groups: Sequence[dict[str, Any]],
    grads: Sequence[np.ndarray | None],
    states: Sequence[dict[str, np.ndarray]],
) -> None:
    """One AdamHD step of every parameter with a grad, in place (``None`` skips one).

    Each state holds ``step``, ``exp_avg`` and ``exp_avg_sq``. The group's lr takes the
    hypergradient of each of its tensors in turn (as the authors' loop adds them), and
    then every tensor of the group steps with the new lr.
    """
    for group, items in zip(groups, _grouped(groups, grads), strict=True):
        beta1, beta2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        eff = []
        for i, p, grad in items:
            g = -grad if group["maximize"] else grad
            if wd != 0:
                g = g + wd * p
            state = states[i]
            t = float(state["step"]) + 1
            if t > 1:  # the hypergradient: g against the previous direction
                m, v = state["exp_avg"], state["exp_avg_sq"]
                h = (
                    _dot(g, m / (np.sqrt(v) + eps))
                    * math.sqrt(1 - beta2 ** (t - 1))
                    / (1 - beta1 ** (t - 1))
                )
                group["lr"] = group["lr"] + group["hypergrad_lr"] * h
            eff.append((i, p, g))
        for i, p, g in eff:
            state = states[i]
            state["step"] += 1
            t = float(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            p += -step_size * (m / (np.sqrt(v) + eps))
