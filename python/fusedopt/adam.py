"""Adam (torch.optim.Adam)."""

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

__all__ = ["Adam"]

ADAM_ARGS_DOC = """\
betas: coefficients of the running averages of the gradient and its square (default (0.9, 0.999)).
        eps: added to the denominator, after the bias correction (default 1e-8).
        amsgrad: use the maximum of all second moments so far (AMSGrad)."""


class Adam(Optimizer):
    __doc__ = f"""Adam: adaptive moment estimation (Kingma & Ba, 2015).

    The rule of ``torch.optim.Adam``, for step t with gradient g_t::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p      (L2, coupled)
                           (decoupled_weight_decay: p = p * (1 - lr * weight_decay))
        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        v_t = beta2 * v_(t-1) + (1 - beta2) * g_t^2
        if amsgrad: v_max = max(v_max, v_t); use v_max for v_t below
        p = p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-3).
        {ADAM_ARGS_DOC}
        weight_decay: L2 penalty added to the gradient (default 0).
        {MAXIMIZE_DOC}
        decoupled_weight_decay: decay the parameter directly, as :class:`AdamW` does,
            instead of adding the L2 penalty to the gradient (default False; as in torch).
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``; with amsgrad ``max_exp_avg_sq``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Adam([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # the first step moves each entry by about lr
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "adam"
    int8_state = True
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        amsgrad=FLAG,
        maximize=FLAG,
        decoupled_weight_decay=FLAG,
    )
    reference_step = staticmethod(reference.adam)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)

    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        keys = ("exp_avg", "exp_avg_sq", "step")
        return (*keys, "max_exp_avg_sq") if group["amsgrad"] else keys
