"""Adadelta (torch.optim.Adadelta)."""

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

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    __doc__ = f"""Adadelta: an adaptive step from running averages of squared gradients and
    squared updates (Zeiler, 2012).

    The rule of ``torch.optim.Adadelta``, for step t with gradient g_t (eps inside both
    square roots)::

        if maximize: g_t = -g_t
        if weight_decay != 0: g_t = g_t + weight_decay * p
        v_t = rho * v_(t-1) + (1 - rho) * g_t^2
        delta_t = sqrt(u_(t-1) + eps) / sqrt(v_t + eps) * g_t
        u_t = rho * u_(t-1) + (1 - rho) * delta_t^2
        p = p - lr * delta_t

    Args:
        {PARAMS_DOC}
        lr: coefficient that scales delta before it is applied (default 1.0).
        rho: smoothing constant of the running averages, in [0, 1] (default 0.9).
        eps: added inside both square roots (default 1e-6).
        weight_decay: L2 penalty added to the gradient (default 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``square_avg`` (v) and ``acc_delta`` (u).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Adadelta([w])
        >>> opt.step([np.array([1.0, -4.0])])   # about sqrt(eps / (1 - rho)) sign(g)
        >>> np.round(w, 6)
        array([-0.003162,  0.003162])
    """

    kernel = "adadelta"
    state_names = ("square_avg", "acc_delta")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        rho=UNIT_INTERVAL,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_step = staticmethod(reference.adadelta)

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
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
        return ("step", "square_avg", "acc_delta")
