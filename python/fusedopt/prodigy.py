"""Prodigy (prodigyopt.Prodigy 1.1.2): Adam whose step size estimates itself."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from . import reference
from ._group_step import GroupStepOptimizer
from .optimizer import BACKEND_DOC, CLIP_DOC, PARAMS_DOC, Params, StateDType
from .rules import BETAS, FLAG, NONNEGATIVE, Checker, Rule, check_int, hyper_table

__all__ = ["Prodigy"]


def _check_real(
    low: float, *, low_open: bool = False, allow_none: bool = False, allow_inf: bool = False
) -> Checker:
    """A real number (never a bool) >= low (> low with low_open); finite unless allow_inf
    (+inf then allowed); None when allow_none."""
    what = f"a {'' if allow_inf else 'finite '}number {'>' if low_open else '>='} {low:g}"
    if low == -math.inf:
        what = "a finite number"

    def check(value: Any, where: str) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            none = " or None" if allow_none else ""
            raise TypeError(f"{where} must be {what}{none}, got {type(value).__name__}")
        x = float(value)
        ok = (math.isfinite(x) or (allow_inf and x == math.inf)) and (
            x > low if low_open else x >= low
        )
        if not ok:
            raise ValueError(f"{where} must be {what}, got {value!r}")

    return check


def _check_beta3(value: Any, where: str) -> None:
    _check_real(0.0, allow_none=True)(value, where)
    if value is not None and not float(value) < 1.0:
        raise ValueError(f"{where} must be None or a finite number in [0, 1), got {value!r}")


class Prodigy(GroupStepOptimizer):
    __doc__ = f"""Prodigy: Adam whose step size d estimates itself (Mishchenko & Defazio, 2023).

    The step of ``prodigyopt.Prodigy`` 1.1.2, for step k (0, 1, ...) with gradients g,
    over every tensor of every group at once. As the package, group 0 holds the global
    numbers (betas, beta3, d, d_max, d_numerator, d_coef, growth_rate,
    use_bias_correction, decouple), ``lr`` is the largest of the groups' lrs (the others
    must equal it or be 0), and each group has its own eps, weight_decay, d0,
    safeguard_warmup and k::

        beta3 = sqrt(beta2) if beta3 is None
        dlr = d * lr * (sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1)) if use_bias_correction else 1)
        for every tensor with a grad of a group with lr > 0:
            if not decouple: g = g + weight_decay * p
            num += (d / d0) * dlr * <g, p0 - p>            (p0: the parameter at its first step)
            m = beta1 m + d (1 - beta1) g;   v = beta2 v + d^2 (1 - beta2) g^2
            s = beta3 s + (d / d0) * (d if safeguard_warmup else dlr) * g
            den += sum |s|
        if den == 0: stop here (no update; k and step unchanged)
        d_numerator = beta3 d_numerator + num;   d_hat = d_coef d_numerator / den
        if d == d0: d = max(d, d_hat)
        d_max = max(d_max, d_hat);   d = min(d_max, d * growth_rate);   k = k + 1
        for every tensor with a grad (the new d, the old dlr):
            if decouple: p = p - weight_decay * dlr * p
            p = p - dlr * m / (sqrt(v) + d eps)     (beta1 == 0: p - dlr d g / (sqrt(v) + d eps))

    The fused step is one native call: a pass that updates m, v and s and sums
    ``<g, p0 - p>`` and ``|s|`` per tensor (float64, the same bits on any number of
    threads), the combine into d (in tensor order, as the package adds them), and the
    update pass.

    Args:
        {PARAMS_DOC}
        lr: multiplies the estimated step size (default 1.0; leave it at 1 unless unstable).
        betas: coefficients of the running averages of the gradient and its square
            (default (0.9, 0.999)).
        beta3: coefficient of the running sums that estimate d (default None: sqrt(beta2)).
        eps: added to the denominator, times d (default 1e-8).
        weight_decay: weight decay (default 0).
        decouple: AdamW-style decoupled weight decay (default True); False adds the L2
            penalty to the gradient.
        use_bias_correction: Adam's bias correction in dlr (default False).
        safeguard_warmup: leave lr out of the denominator of the estimate of d (default False).
        d0: the initial estimate of d (default 1e-6).
        d_coef: multiplies the estimate of d (default 1.0).
        growth_rate: the most d may grow by in one step (default inf: unbounded).
        {BACKEND_DOC}
        {CLIP_DOC}

    Each param group holds, as the package keeps them: ``d``, ``d_max``,
    ``d_numerator``, ``k`` (from the start) and ``d_denom``, ``d_hat`` (after the first
    step that moves). The package's ``fsdp_in_use`` (sharded torch parameters) and
    ``slice_p`` (statistics on every p-th entry only, an approximation) have no meaning
    here and are left out.

    Non-finite grads: d couples every tensor (as in prodigyopt), so an inf or NaN in one
    grad makes d, and with it every parameter, non-finite; ``skip_nonfinite=True`` skips
    such a step as a whole.

    State per parameter: ``step``, ``s``, ``p0`` (a copy of the parameter at its first
    step), ``exp_avg_sq`` and, when beta1 > 0, ``exp_avg``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.Prodigy([w])
        >>> opt.step([np.array([1.0, -4.0])])   # d0 (1 - beta1) / sqrt(1 - beta2) per entry
        >>> np.round(w / 1e-6, 3)
        array([-3.162,  3.162])
        >>> opt.param_groups[0]["k"], opt.param_groups[0]["d"] >= 1e-6
        (1, True)
    """

    kernel = "prodigy"
    half_state = False
    state_names = ("s", "p0", "exp_avg", "exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=BETAS,
        eps=Rule(low=0.0, low_open=True),
        weight_decay=NONNEGATIVE,
        decouple=FLAG,
        use_bias_correction=FLAG,
        safeguard_warmup=FLAG,
        d0=Rule(low=0.0, low_open=True),
        d_coef=Rule(),
    )
    extra_hyperparameters = MappingProxyType(
        {
            "beta3": _check_beta3,
            "growth_rate": _check_real(0.0, low_open=True, allow_inf=True),
            "d": _check_real(0.0, low_open=True),
            "d_max": _check_real(0.0, low_open=True),
            "d_numerator": _check_real(-math.inf),
            "k": check_int(0),
        }
    )
    reference_group_step = staticmethod(reference.prodigy)

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        # the package's group values, as its defaults start them
        d, d_max, d_numerator, k = d0, d0, 0.0, 0
        super().__init__(params, locals(), backend=backend)

    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        # exp_avg with beta1 > 0 only: the first group's betas decide, as in the package
        beta1 = self.param_groups[0]["betas"][0] if self.param_groups else group["betas"][0]
        keys = ("s", "p0", "exp_avg_sq", "step")
        return ("exp_avg", *keys) if beta1 > 0 else keys

    def _build_state(self, in_use: list[tuple[str, ...]]) -> None:
        fresh = [i for i, st in enumerate(self._state) if "p0" not in st]
        super()._build_state(in_use)
        for i in fresh:  # p0 starts as a copy of the parameter, not a constant
            if "p0" in self._state[i]:
                np.copyto(self._state[i]["p0"], self._params[i])

    def _check_step(self, groups: Sequence[Mapping[str, Any]]) -> None:
        super()._check_step(groups)
        lrs = [g.get("lr") for g in groups]
        if all(isinstance(x, numbers.Real) for x in lrs):
            top = max(lrs)  # type: ignore[type-var]
            for gi, x in enumerate(lrs):
                if x not in (top, 0.0):
                    raise ValueError(
                        f"param_groups[{gi}]: lr is {x!r}; Prodigy steps every group with the "
                        f"largest lr ({top!r}): each group's lr must be that or 0"
                    )
