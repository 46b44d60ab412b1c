"""RAdam: rectified Adam (torch.optim.RAdam)."""

from __future__ import annotations

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

__all__ = ["RAdam"]


class RAdam(Optimizer):
    __doc__ = f"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2020).

    The rule of ``torch.optim.RAdam``, for step t with gradient g_t::

        if maximize: g_t = -g_t
        if weight_decay != 0:
            if decoupled_weight_decay: p = p * (1 - lr * weight_decay)
            else:                      g_t = g_t + weight_decay * p
        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        v_t = beta2 * v_(t-1) + (1 - beta2) * g_t^2
        m_hat = m_t / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2^t / (1 - beta2^t)
        if rho_t > 5:
            r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
            l_t = sqrt(1 - beta2^t) / (sqrt(v_t) + eps)
            p = p - lr * m_hat * l_t * r_t
        else:
            p = p - lr * m_hat

    The first steps (rho_t <= 5: the first five with the default betas) are plain
    bias-corrected momentum. Unlike Adam, eps is added before the bias correction of v_t.

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square
            (default (0.9, 0.999)).
        eps: added to the denominator, before the bias correction (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        decoupled_weight_decay: decay the parameter directly (as AdamW) instead of
            adding an L2 penalty to the gradient (default False).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.RAdam([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # first step: lr * the bias-corrected gradient
        >>> np.round(w, 6)
        array([-0.1,  0.4])
    """

    kernel = "radam"
    int8_state = True
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        decoupled_weight_decay=FLAG,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.radam)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
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
