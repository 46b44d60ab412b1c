"""ASGD, as torch.optim.ASGD, for one NumPy parameter."""

from __future__ import annotations

import numpy as np

__all__ = ["asgd"]


def asgd(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    lambd: float,
    alpha: float,
    t0: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One ASGD step on ``param``, in place.

    ``state`` holds ``step``, ``eta`` (starts at lr), ``mu`` (starts at 1) and ``ax``.
    """
    g = -grad if maximize else grad
    state["step"] += 1
    t = float(state["step"])
    eta, mu = float(state["eta"]), float(state["mu"])  # this step's: updated at the end
    if weight_decay != 0:
        g = g + weight_decay * param
    param *= 1 - lambd * eta  # the decay term
    param += -eta * g
    ax = state["ax"]
    if mu != 1:
        ax += (param - ax) * mu
    else:
        ax[...] = param
    # np.float64's power gives inf where Python's ** would raise OverflowError
    state["eta"][...] = lr / np.float64(1 + lambd * lr * t) ** alpha
    state["mu"][...] = 1 / max(1, t - t0)
