"""RMSprop (torch.optim.RMSprop)."""

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
from .rules import FLAG, NONNEGATIVE, UNIT_INTERVAL, hyper_table

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    __doc__ = f"""RMSprop: divide the gradient by a running average of its magnitude
    (Hinton, Lecture 6e of "Neural Networks for Machine Learning"; centered: Graves, 2013).

    The rule of ``torch.optim.RMSprop``, for step t with gradient g_t (no bias correction)::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p
        v_t = alpha * v_(t-1) + (1 - alpha) * g_t^2
        if centered:
            m_t = alpha * m_(t-1) + (1 - alpha) * g_t
            avg = sqrt(v_t - m_t^2) + eps
        else:
            avg = sqrt(v_t) + eps
        if momentum > 0:
            b_t = momentum * b_(t-1) + g_t / avg
            p = p - lr * b_t
        else:
            p = p - lr * g_t / avg

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the running averages, in [0, 1] (default 0.99).
        eps: added to the denominator, after the square root (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance instead of its
            second moment.
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``square_avg`` (v), with momentum ``momentum_buffer``
    (b) and, when centered, ``grad_avg`` (m).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.RMSprop([w], lr=0.01)
        >>> opt.step([np.array([1.0, -4.0])])   # g / sqrt(0.01 g^2) = 10 sign(g)
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "rmsprop"
    state_names = ("square_avg", "momentum_buffer", "grad_avg")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        alpha=UNIT_INTERVAL,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        momentum=NONNEGATIVE,
        centered=FLAG,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.rmsprop)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
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
        keys: tuple[str, ...] = ("step", "square_avg")
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        if group["centered"]:
            keys += ("grad_avg",)
        return keys
