"""Lion: evolved sign momentum (Chen et al., 2023)."""

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

__all__ = ["Lion"]


class Lion(Optimizer):
    __doc__ = f"""Lion: EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of
    Optimization Algorithms", Algorithm 2).

    For step t with gradient g_t::

        if maximize: g_t = -g_t
        c_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        p_t = p_(t-1) - lr * (sign(c_t) + weight_decay * p_(t-1))
        m_t = beta2 * m_(t-1) + (1 - beta2) * g_t

    Weight decay is decoupled, where the paper puts it: added to the signed update and
    scaled by lr, using the parameter before the step (the same as
    ``p = p * (1 - lr * weight_decay)`` first). The update has the same size lr in every
    entry, so Lion wants a smaller lr (3-10x) and a larger weight_decay than AdamW.
    sign(0) = 0, and a NaN gradient entry gives a NaN (as ``numpy.sign``).

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-4).
        betas: the interpolation factor of the update (beta1) and the decay of the
            momentum (beta2) (default (0.9, 0.99)).
        weight_decay: decoupled weight decay coefficient (default 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``exp_avg`` (the momentum m; Lion keeps no step count).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(3)
        >>> opt = fo.Lion([w], lr=0.1)
        >>> opt.step([np.array([2.0, 0.0, -1e-9])])   # every entry moves by lr, or not at all
        >>> w
        array([-0.1,  0. ,  0.1])
    """

    kernel = "lion"
    int8_state = True
    state_names = ("exp_avg",)
    scalar_names = ()
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        weight_decay=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.lion)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
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
