"""SGDHD and AdamHD: learning rates that learn themselves by hypergradient descent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import reference
from ._group_step import GroupStepOptimizer
from .optimizer import BACKEND_DOC, CLIP_DOC, MAXIMIZE_DOC, PARAMS_DOC, Params, StateDType
from .rules import BETAS, FLAG, NONNEGATIVE, Rule, hyper_table

__all__ = ["SGDHD", "AdamHD"]

#: The adapted learning rate may cross 0 (the hypergradient decides; the authors' code
#: checks nothing): any finite number.
_ADAPTED_LR = Rule()

HD_DOC = """\
hypergrad_lr: the learning rate of the learning rate (default {default})."""

GROUP_DOC = """\
The hypergradient ``h`` of a param group is summed over that group's tensors (float64,
    the same bits on any number of threads): it is the derivative of the loss with respect
    to that group's own rate, the paper's rule for one rate per group (the authors' SGDHD
    allows one group, where it is the global dot product). It is computed before the update,
    which steps with the new rate; the new rate is ``group["lr"]``, where schedules and
    users see it (a schedule that sets lr sets the starting point of the adaptation)."""


class SGDHD(GroupStepOptimizer):
    __doc__ = f"""SGD with hypergradient descent of the learning rate (Baydin et al., 2018).

    The step of the authors' ``hypergrad.SGDHD``, for step t with gradients g::

        if maximize: g = -g
        if weight_decay != 0: g = g + weight_decay * p
        h = <g, d_(t-1)> over the group's tensors   (d_0 = 0: no change at the first step)
        lr = lr + hypergrad_lr * h
        if momentum != 0:
            b = g at t = 1, else momentum * b + (1 - dampening) * g
            d_t = g + momentum * b if nesterov else b
        else: d_t = g
        p = p - lr * d_t

    {GROUP_DOC}

    Args:
        {PARAMS_DOC}
        lr: the initial learning rate (default 1e-3); it then adapts.
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        {HD_DOC.format(default="1e-6")}
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    Non-finite grads: the hypergradient couples the group's tensors (as in the authors'
    code), so an inf or NaN in one grad makes the rate, and with it every parameter of the
    group, non-finite; ``skip_nonfinite=True`` skips such a step as a whole.

    State per parameter: ``step``; ``grad_prev`` (the previous direction) without momentum
    or with nesterov; ``momentum_buffer`` with momentum (without nesterov it is also the
    previous direction, kept once).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.SGDHD([w], lr=0.1, hypergrad_lr=0.01)
        >>> opt.step([np.array([1.0, 2.0])]); opt.step([np.array([1.0, 2.0])])
        >>> round(opt.param_groups[0]["lr"], 6)   # 0.1 + 0.01 * <g, g_prev> = 0.1 + 0.01 * 5
        0.15
    """

    kernel = "sgd_hd"
    half_state = False
    state_names = ("momentum_buffer", "grad_prev")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=_ADAPTED_LR,
        momentum=NONNEGATIVE,
        dampening=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        nesterov=FLAG.requiring(("momentum", ">", 0.0), ("dampening", "==", 0.0)),
        hypergrad_lr=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_group_step = staticmethod(reference.sgd_hd)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        hypergrad_lr: float = 1e-6,
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
        if group["momentum"] == 0:
            return ("grad_prev", "step")
        if group["nesterov"]:
            return ("momentum_buffer", "grad_prev", "step")
        return ("momentum_buffer", "step")


class AdamHD(GroupStepOptimizer):
    __doc__ = f"""Adam with hypergradient descent of the learning rate (Baydin et al., 2018).

    The step of the authors' ``hypergrad.AdamHD``, for step t with gradients g::

        if maximize: g = -g
        if weight_decay != 0: g = g + weight_decay * p
        if t > 1:   (u: the previous direction)
            h = <g, m / (sqrt(v) + eps)> * sqrt(1 - beta2^(t-1)) / (1 - beta1^(t-1))
            lr = lr + hypergrad_lr * h              (for each tensor of the group, in turn)
        m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
        p = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    Note eps is added to sqrt(v) before the bias correction, as the authors' code (not as
    torch.optim.Adam). {GROUP_DOC} The authors' loop changes lr between the tensors of a
    group (each tensor steps with the rate after its own hypergradient); here every tensor
    of the group steps with the rate after all of them (the same for one tensor).

    Args:
        {PARAMS_DOC}
        lr: the initial learning rate (default 1e-3); it then adapts.
        betas: coefficients of the running averages (default (0.9, 0.999)).
        eps: added to sqrt(v) (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        {HD_DOC.format(default="1e-8")}
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    Non-finite grads: the hypergradient couples the group's tensors (as in the authors'
    code), so an inf or NaN in one grad makes the rate, and with it every parameter of the
    group, non-finite; ``skip_nonfinite=True`` skips such a step as a whole.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.AdamHD([w], lr=0.1, hypergrad_lr=0.01)
        >>> opt.step([np.array([1.0, -4.0])]); opt.step([np.array([1.0, -4.0])])
        >>> opt.param_groups[0]["lr"] > 0.1   # the grads agree: the rate grows
        True
    """

    kernel = "adam_hd"
    half_state = False
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=_ADAPTED_LR,
        betas=BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        hypergrad_lr=NONNEGATIVE,
        maximize=FLAG,
    )
    reference_group_step = staticmethod(reference.adam_hd)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        hypergrad_lr: float = 1e-8,
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
