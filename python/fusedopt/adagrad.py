"""Adagrad (torch.optim.Adagrad)."""

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
from .rules import FLAG, NONNEGATIVE, hyper_table

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    __doc__ = f"""Adagrad: per-coordinate learning rates from the sum of squared gradients
    (Duchi, Hazan & Singer, 2011).

    The rule of ``torch.optim.Adagrad``, for step t with gradient g_t::

        sum_0 = initial_accumulator_value
        if maximize: g_t = -g_t
        clr = lr / (1 + (t - 1) * lr_decay)
        if weight_decay != 0: g_t = g_t + weight_decay * p
        sum_t = sum_(t-1) + g_t^2
        p = p - clr * g_t / (sqrt(sum_t) + eps)

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step, as above (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        initial_accumulator_value: starting value of ``sum`` (default 0).
        eps: added to the denominator, after the square root (default 1e-10).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step`` and ``sum``, both created with the optimizer (as in
    PyTorch), ``sum`` filled with ``initial_accumulator_value``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Adagrad([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # the first step moves each entry by lr
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "adagrad"
    state_names = ("sum",)
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        lr_decay=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        initial_accumulator_value=NONNEGATIVE,
        eps=NONNEGATIVE,
        maximize=FLAG,
    )
    init_hyperparameters = ("initial_accumulator_value",)
    reference_step = staticmethod(reference.adagrad)
    eager_state = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
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

    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("step", "sum")

    def _initial_value(self, name: str, group: Mapping[str, Any]) -> float:
        return float(group["initial_accumulator_value"]) if name == "sum" else 0.0
