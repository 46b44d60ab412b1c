"""Adamax (torch.optim.Adamax)."""

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
from .rules import BETAS, FLAG, NONNEGATIVE, hyper_table

__all__ = ["Adamax"]


class Adamax(Optimizer):
    __doc__ = f"""Adamax: Adam with the infinity norm in place of the second moment
    (Kingma & Ba, 2015, section 7.1).

    The rule of ``torch.optim.Adamax``, for step t with gradient g_t (eps inside the max)::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p
        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        u_t = max(beta2 * u_(t-1), |g_t| + eps)
        p = p - lr / (1 - beta1^t) * m_t / u_t

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 2e-3).
        betas: coefficients of the running average of the gradient and of the decay of
            its infinity norm, each in [0, 1) (default (0.9, 0.999)).
        eps: added to |g| inside the maximum (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``exp_avg`` (m) and ``exp_inf`` (u).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Adamax([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # the first step moves each entry by about lr
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "adamax"
    int8_state = True
    state_names = ("exp_avg", "exp_inf")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.adamax)

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
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

    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("step", "exp_avg", "exp_inf")
