"""LARS: layer-wise adaptive rate scaling (optax.lars)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import reference
from .optimizer import BACKEND_DOC, CLIP_DOC, PARAMS_DOC, Optimizer, Params, StateDType
from .rules import FLAG, NONNEGATIVE, hyper_table

__all__ = ["LARS"]


class LARS(Optimizer):
    __doc__ = f"""LARS: layer-wise adaptive rate scaling (You et al., 2017).

    The rule of ``optax.lars`` (weight decay, a trust ratio per parameter array, the
    learning rate, then momentum on the scaled update), for gradient g::

        u = g + weight_decay * p
        ratio = trust_coefficient * ||p|| / (||u|| + eps)   (1 when either norm is 0)
        u = -lr * ratio * u
        if momentum != 0:
            trace = u + momentum * trace
            u = u + momentum * trace if nesterov else trace
        p = p + u

    As in optax the trace holds the scaled, negated update (a change of lr reaches it
    gradually). The two norms of each array are one reduction pass inside the same
    native call as the update, accumulated in float64 over fixed blocks: the same bits
    on any number of threads.

    Args:
        {PARAMS_DOC}
        lr: learning rate (optax's ``learning_rate``, which has no default; 1e-3 here,
            as torch.optim's classes).
        weight_decay: added to the gradient before the trust ratio (default 0).
        trust_coefficient: the ratio's multiplier (default 1e-3).
        eps: added to the update's norm (default 0).
        momentum: decay of the trace (default 0.9; 0 keeps no state).
        nesterov: Nesterov momentum (default False).
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``trace`` (optax's), with momentum only.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.array([3.0, 4.0])
        >>> opt = fo.LARS([w], lr=1.0, trust_coefficient=0.1, momentum=0.0)
        >>> opt.step([np.array([0.0, 2.0])])   # moves by lr * 0.1 * ||w|| = 0.5 along -g
        >>> w
        array([3. , 3.5])
    """

    kernel = "lars"
    state_names = ("trace",)
    scalar_names = ()
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        trust_coefficient=NONNEGATIVE,
        eps=NONNEGATIVE,
        momentum=NONNEGATIVE,
        nesterov=FLAG,
    )
    reference_step = staticmethod(reference.lars)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        eps: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = False,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)

    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("trace",) if group["momentum"] != 0 else ()
