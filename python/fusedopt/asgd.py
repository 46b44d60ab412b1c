"""ASGD (torch.optim.ASGD)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import reference
from .optimizer import (
    BACKEND_DOC,
    CLIP_DOC,
    MAXIMIZE_DOC,
    PARAMS_DOC,
    Optimizer,
    Params,
    StateDType,
)
from .rules import ANY_REAL, FLAG, NONNEGATIVE, hyper_table

__all__ = ["ASGD"]


class ASGD(Optimizer):
    __doc__ = f"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky, 1992,
    "Acceleration of stochastic approximation by averaging").

    The rule of ``torch.optim.ASGD``, for step t with gradient g_t; eta and mu are
    per-parameter scalars that start at ``lr`` and 1::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p
        p = p * (1 - lambd * eta) - eta * g_t          (eta: from the previous step)
        if mu == 1: ax = p
        else:       ax = ax + mu * (p - ax)            (the running average of p)
        eta = lr / (1 + lambd * lr * t)^alpha
        mu = 1 / max(1, t - t0)

    ``ax``, the average, is state to read (``opt.state[i]["ax"]``); the parameters
    themselves follow plain SGD with a decaying rate. Averaging starts at step t0 (until
    then ``ax`` is a copy of the parameter).

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power of the decay of eta (default 0.75).
        t0: the step at which averaging starts (default 1e6).
        weight_decay: L2 penalty added to the gradient (default 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``eta`` and ``mu`` (float64 scalars) and ``ax``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.ASGD([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # the first step is p - lr * g
        >>> np.round(w, 6)
        array([-0.1,  0.4])
    """

    kernel = "asgd"
    state_names = ("ax",)
    scalar_names = ("step", "eta", "mu")
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        lambd=NONNEGATIVE,
        alpha=NONNEGATIVE,
        t0=ANY_REAL,
        weight_decay=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.asgd)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)

    def _initial_value(self, name: str, group: Mapping[str, Any]) -> float:
        # as torch: eta starts at the group's lr when the state is created, mu at 1
        return {"eta": float(group["lr"]), "mu": 1.0}.get(name, 0.0)
