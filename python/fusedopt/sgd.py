"""Stochastic gradient descent with momentum (torch.optim.SGD)."""

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

__all__ = ["SGD"]


class SGD(Optimizer):
    __doc__ = f"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    The rule of ``torch.optim.SGD``, for step t with gradient g_t::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p
        if momentum != 0:
            b_t = g_t                                  if t == 1 (no dampening)
                  momentum * b_(t-1) + (1 - dampening) * g_t  otherwise
            g_t = g_t + momentum * b_t  if nesterov  else  b_t
        p = p - lr * g_t

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter (with momentum): ``momentum_buffer`` and ``step``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.ones(3, np.float32)
        >>> opt = fo.SGD([w], lr=0.1, momentum=0.9)
        >>> opt.step([np.full(3, 2.0, np.float32)])
        >>> w
        array([0.8, 0.8, 0.8], dtype=float32)
    """

    kernel = "sgd"
    int8_state = True
    state_names = ("momentum_buffer",)
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        momentum=NONNEGATIVE,
        dampening=ANY_REAL,
        weight_decay=NONNEGATIVE,
        nesterov=FLAG.requiring(("momentum", ">", 0), ("dampening", "==", 0)),
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.sgd)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
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
        return ("momentum_buffer", "step") if group["momentum"] != 0 else ()
