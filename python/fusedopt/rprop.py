"""Rprop (torch.optim.Rprop)."""

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
from .rules import FLAG, NONNEGATIVE, Rule, hyper_table

__all__ = ["Rprop"]

#: (etaminus, etaplus): 0 < etaminus < 1 < etaplus, as torch.optim.Rprop checks.
ETAS = Rule(
    width=2,
    elements=(
        Rule(low=0.0, high=1.0, low_open=True, high_open=True),
        Rule(low=1.0, low_open=True),
    ),
)
#: (step_size_min, step_size_max): two finite numbers >= 0.
STEP_SIZES = Rule(low=0.0, width=2)


class Rprop(Optimizer):
    __doc__ = f"""Rprop: resilient backpropagation (Riedmiller & Braun, 1993, "A Direct
    Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm").

    The rule of ``torch.optim.Rprop``, element by element, for step t with gradient g_t;
    ``step_size`` starts full of ``lr`` and ``prev`` at 0::

        if maximize: g_t = -g_t
        if   g_t * prev > 0: step_size = min(step_size * etaplus,  step_size_max)
        elif g_t * prev < 0: step_size = max(step_size * etaminus, step_size_min)
                             g_t = 0                (the sign flipped: no move this step)
        p = p - sign(g_t) * step_size
        prev = g_t

    Only the sign of the gradient is used. As torch, sign(NaN) = 0: a NaN gradient entry
    leaves its parameter in place (and is kept in ``prev``). ``lr`` sets the initial step
    size only; changing it later has no effect on a parameter that has stepped.

    Args:
        {PARAMS_DOC}
        lr: learning rate: the initial step size (default 1e-2).
        etas: (etaminus, etaplus), the factors that shrink and grow the step size,
            0 < etaminus < 1 < etaplus (default (0.5, 1.2)).
        step_sizes: (step_size_min, step_size_max), the bounds of the step size
            (default (1e-6, 50)).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, ``prev`` and ``step_size``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Rprop([w], lr=0.1)
        >>> opt.step([np.array([1.0, -4.0])])   # each entry moves by lr against the sign
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "rprop"
    state_names = ("prev", "step_size")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        etas=ETAS,
        step_sizes=STEP_SIZES,
        maximize=FLAG,
    )
    init_hyperparameters = ("lr",)
    reference_step = staticmethod(reference.rprop)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
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
        # as torch: step_size starts full of the group's lr when the state is created
        return float(group["lr"]) if name == "step_size" else 0.0
