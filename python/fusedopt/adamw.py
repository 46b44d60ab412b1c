"""AdamW: Adam with decoupled weight decay (torch.optim.AdamW)."""

from __future__ import annotations

from .adam import ADAM_ARGS_DOC, Adam
from .optimizer import BACKEND_DOC, CLIP_DOC, MAXIMIZE_DOC, PARAMS_DOC, Params, StateDType

__all__ = ["AdamW"]


class AdamW(Adam):
    __doc__ = f"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    The rule of ``torch.optim.AdamW``: the parameter decays before the Adam update,
    and the decay does not pass through the moments::

        if maximize: g_t = -g_t
        p = p * (1 - lr * weight_decay)
        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        v_t = beta2 * v_(t-1) + (1 - beta2) * g_t^2
        if amsgrad: v_max = max(v_max, v_t); use v_max for v_t below
        p = p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-3).
        {ADAM_ARGS_DOC}
        weight_decay: decoupled weight decay coefficient (default 1e-2).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: as :class:`Adam`. This is ``Adam(..., decoupled_weight_decay=True)``
    (the group key is ``True``), as in torch.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
            backend=backend,
            max_grad_norm=max_grad_norm,
            track_grad_norm=track_grad_norm,
            state_dtype=state_dtype,
            stochastic_rounding=stochastic_rounding,
            seed=seed,
        )
