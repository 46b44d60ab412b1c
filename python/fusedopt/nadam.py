"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam)."""

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

__all__ = ["NAdam"]


class NAdam(Optimizer):
    __doc__ = f"""NAdam: Adam with Nesterov momentum (Dozat, 2016).

    The rule of ``torch.optim.NAdam``, for step t with gradient g_t::

        if maximize: g_t = -g_t
        if weight_decay != 0:
            if decoupled_weight_decay: p = p * (1 - lr * weight_decay)
            else:                      g_t = g_t + weight_decay * p
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
        mu_(t+1) = beta1 * (1 - 0.5 * 0.96^((t + 1) * momentum_decay))
        mu_product_t = mu_product_(t-1) * mu_t                (mu_product_0 = 1)
        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        v_t = beta2 * v_(t-1) + (1 - beta2) * g_t^2
        denom = sqrt(v_t / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - mu_product_t) * g_t / denom
              - lr * mu_(t+1) / (1 - mu_product_t * mu_(t+1)) * m_t / denom

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 2e-3).
        betas: coefficients of the running averages of the gradient and its square
            (default (0.9, 0.999)).
        eps: added to the denominator, after the bias correction (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        momentum_decay: the decay of the momentum schedule mu_t (default 4e-3).
        decoupled_weight_decay: decay the parameter directly (as AdamW) instead of
            adding an L2 penalty to the gradient (NAdamW; default False).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``mu_product`` (float64 scalars), ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.NAdam([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])
        >>> np.round(w, 4)
        array([-0.1056,  0.1056])
    """

    kernel = "nadam"
    int8_state = True
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step", "mu_product")
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        momentum_decay=NONNEGATIVE,
        decoupled_weight_decay=FLAG,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.nadam)

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
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
        return 1.0 if name == "mu_product" else 0.0
