"""Schedule-Free SGD and AdamW (Defazio et al. 2024), as the ``schedulefree`` package (1.4.1).

No learning-rate schedule: the iterate the gradient is taken at, y, interpolates between
a plain SGD / Adam sequence z and its running average x, and x is what to evaluate.
As the package does, only z (and AdamW's second moment) is stored: in train mode the
parameters hold y, and :meth:`~_ScheduleFree.eval` / :meth:`~_ScheduleFree.train` move
them to x and back (one fused sweep over all parameters).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _core, reference
from .optimizer import BACKEND_DOC, CLIP_DOC, PARAMS_DOC, Optimizer, ParamGroup, Params, StateDType
from .reference.schedulefree import lerp, schedulefree_counters
from .rules import ANY_REAL, BETAS, NONNEGATIVE, Checker, Rule, check_int, hyper_table

__all__ = ["AdamWScheduleFree", "SGDScheduleFree"]


def _check_bool(value: Any, where: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{where} must be a bool, got {type(value).__name__}")


def _check_real(value: Any, where: str) -> None:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a real number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"invalid {where}: {value}; it must be a finite number")


#: (0, 1), both ends excluded: eval() divides by it (x = y + (1 - 1/beta) (z - y)).
_OPEN_UNIT = Rule(low=0.0, high=1.0, low_open=True, high_open=True)
#: AdamWScheduleFree's betas: beta1 in (0, 1) (eval() divides by it), beta2 in [0, 1).
_SF_BETAS = Rule(
    low=0.0, high=1.0, high_open=True, width=2, elements=(_OPEN_UNIT, BETAS.element(1))
)
#: The group keys the package keeps beside the hyperparameters (the step count ``k``,
#: ``lr_max``, ``weight_sum``: read by the kernel; ``scheduled_lr``, ``train_mode``).
_EXTRA: Mapping[str, Checker] = MappingProxyType(
    {"scheduled_lr": _check_real, "train_mode": _check_bool}
)
#: Keys the kernel reads as numbers (their real rules apply) that must also be ints.
_INTS: Mapping[str, Checker] = MappingProxyType({"warmup_steps": check_int(0), "k": check_int(0)})
_COUNTERS = dict(k=0, lr_max=-1.0, weight_sum=0.0, scheduled_lr=0.0, train_mode=False)
#: The rules both kernels read after their own (the schedule and the group counters).
_SHARED_RULES = dict(
    warmup_steps=NONNEGATIVE,
    r=ANY_REAL,
    weight_lr_power=ANY_REAL,
    k=NONNEGATIVE,
    lr_max=ANY_REAL,
    weight_sum=NONNEGATIVE,
)

_SHARED_DOC = """\
weight_decay: L2 penalty added to the gradient, taken at y (default 0).
        warmup_steps: linear warmup of the learning rate over this many steps
            (an int, default 0).
        r: the average weights steps by ``(k + 1)**r`` (default 0).
        weight_lr_power: ... and by ``lr_max**weight_lr_power`` (default 2)."""

_MODE_DOC = """\
Call ``opt.train()`` before training and ``opt.eval()`` before evaluating or saving
    (as with the package): the optimizer starts in eval mode, and a step in eval mode
    raises ``RuntimeError`` (nothing changes). ``eval()`` sets every stepped parameter to
    x, ``train()`` back to y; ``param_groups[i]["train_mode"]`` says which.

    Group keys besides the hyperparameters, as the package keeps them: ``k`` (steps
    taken), ``lr_max``, ``weight_sum``, ``scheduled_lr`` (the last step's warmed-up
    lr) and ``train_mode``; ``state_dict()`` holds them (and the mode)."""


class _ScheduleFree(Optimizer):
    """What SGDScheduleFree and AdamWScheduleFree share: the group-level counters, the
    train / eval swap, and the first step's copy of the parameter into z."""

    half_params = False

    extra_hyperparameters = _EXTRA
    scalar_names = ()

    def _beta(self, group: Mapping[str, Any]) -> float:
        """The interpolation constant of y between z and x (momentum, or betas[0])."""
        raise NotImplementedError

    # ------------------------------------------------------------ train / eval
    def train(self) -> None:
        """Train mode: every stepped parameter of a group in eval mode goes from x to y
        (``p = lerp(p, z, 1 - beta)``); steps are allowed."""
        self._swap(True)

    def eval(self) -> None:
        """Eval mode: every stepped parameter of a group in train mode goes from y to x
        (``p = lerp(p, z, 1 - 1/beta)``), the point to evaluate and to save."""
        self._swap(False)

    def _swap(self, to_train: bool) -> None:
        with self._lock:
            self._check_groups()  # a bad momentum / betas is refused before any write
            by_weight: dict[float, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            switch = []
            i = 0
            for group in self.param_groups:
                n = len(group["params"])
                if bool(group["train_mode"]) != to_train:
                    switch.append(group)
                    beta = float(self._beta(group))
                    w = 1 - beta if to_train else 1 - 1 / beta
                    ps, zs = by_weight.setdefault(w, ([], []))
                    for j, p in enumerate(group["params"]):
                        st = self._state[i + j]
                        if self._touched[i + j] and "z" in st:
                            ps.append(p)
                            zs.append(st["z"])
                i += n
            for w, (ps, zs) in by_weight.items():
                if not ps:
                    continue
                if self.backend == "fused":
                    _core.lerp_arrays(ps, zs, w)
                else:
                    with np.errstate(all="ignore"):
                        for p, z in zip(ps, zs, strict=True):
                            lerp(p, z, w)
            for group in switch:
                group["train_mode"] = to_train

    def _check_extra(self, group: Mapping[str, Any], where: str) -> None:
        super()._check_extra(group, where)
        for name, check in _INTS.items():
            if name in group:  # a missing one: the real rules name it
                check(group[name], f"{where}{name}")

    def _check_train_mode(self) -> None:
        for gi, group in enumerate(self.param_groups):
            if "train_mode" not in group:
                raise ValueError(f"param_groups[{gi}]: train_mode is missing")
            _check_bool(group["train_mode"], f"param_groups[{gi}]: train_mode")
            if not group["train_mode"]:
                raise RuntimeError(
                    f"{type(self).__name__}: param_groups[{gi}] is not in train mode when step "
                    "is called; call opt.train() before training and opt.eval() before "
                    "evaluating (nothing was changed)"
                )

    # -------------------------------------------------------------------- step
    def _step_impl(self, grads: Any = None, closure: Callable[[], Any] | None = None) -> Any:
        self._check_train_mode()  # before the closure runs, as the package
        return super()._step_impl(grads, closure)

    def _counters(self) -> list[tuple[float, float, float, float]]:
        """Every group's (scheduled_lr, lr_max, weight_sum, ckp1) for this step."""
        out = []
        for gi, g in enumerate(self.param_groups):
            # the real rules first (as everywhere else), then the ints and the bookkeeping keys
            self._rules.check(g, f"param_groups[{gi}]: ")
            self._check_extra(g, f"param_groups[{gi}]: ")
            try:
                out.append(
                    schedulefree_counters(
                        float(g["lr"]),
                        int(g["warmup_steps"]),
                        float(g["r"]),
                        float(g["weight_lr_power"]),
                        int(g["k"]),
                        float(g["lr_max"]),
                        float(g["weight_sum"]),
                    )
                )
            except (ArithmeticError, TypeError, ValueError, KeyError) as e:
                self._check_groups()  # names a hyperparameter that breaks its rule
                raise ValueError(
                    f"param_groups[{gi}]: the average's weight (k + 1)**r * "
                    f"lr_max**weight_lr_power cannot be computed with r={g['r']}, "
                    f"weight_lr_power={g['weight_lr_power']}, k={g['k']}, lr={g['lr']} ({e})"
                ) from e
        return out

    def _update(self, grads: Sequence[np.ndarray | None]) -> None:
        with self._lock:
            self._check_train_mode()
            counters = self._counters()
            if not self._all_touched:
                self._start(grads)
            skipped = self.skipped_steps
            super()._update(grads)
            if self.skipped_steps != skipped:  # the non-finite guard skipped the step
                return
            for g, (lr, lr_max, weight_sum, _) in zip(self.param_groups, counters, strict=True):
                g["scheduled_lr"] = lr
                g["lr_max"] = lr_max
                g["weight_sum"] = weight_sum
                g["k"] = int(g["k"]) + 1

    def _start(self, grads: Sequence[np.ndarray | None]) -> None:
        """z = a copy of the parameter (y) at its first step, as the package's clone."""
        checked = self._plan.checked_grads(grads, self.param_groups)  # refuse bad input first
        in_use = [self._state_in_use(g) for g in self.param_groups]
        if in_use != self._state_built_for:
            self._build_state(in_use)
        for i, g in enumerate(checked):
            if g is not None and not self._touched[i]:
                st = self._state[i]
                np.copyto(st["z"], self._params[i])
                for name in self.state_names:
                    if name != "z":
                        st[name].fill(0)

    # ------------------------------------------------------------ groups, state
    def add_param_group(self, param_group: ParamGroup) -> None:
        """Adds a param group; unless it says otherwise, it takes the optimizer's current
        mode (the package's new group would start in eval mode, and eval() would then skip it)."""
        with self._lock:
            super().add_param_group(param_group)
            if not (isinstance(param_group, Mapping) and "train_mode" in param_group):
                self.param_groups[-1]["train_mode"] = bool(self.param_groups[0]["train_mode"])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`Optimizer.load_state_dict`; the state of a parameter must hold every
        array (z without which y cannot be moved to x), or nothing."""
        with self._lock:
            ours = (
                isinstance(state_dict, Mapping)
                and state_dict.get("optimizer", type(self).__name__) == type(self).__name__
            )  # another class's dict: the base class refuses it
            saved = state_dict.get("state") if ours else None
            if isinstance(saved, Mapping):
                for key, entry in saved.items():
                    if isinstance(entry, Mapping) and entry:
                        missing = [n for n in self.state_names if n not in entry]
                        if missing:
                            raise ValueError(
                                f"state of params[{key}] in state_dict lacks {missing}: "
                                f"{type(self).__name__} keeps {list(self.state_names)}"
                            )
            super().load_state_dict(state_dict)


class SGDScheduleFree(_ScheduleFree):
    __doc__ = f"""Schedule-Free SGD (Defazio et al. 2024, "The Road Less Scheduled").

    The rule of ``schedulefree.SGDScheduleFree`` (1.4.1), per group at step k (from 0),
    the parameter p holding y, the state z (a copy of p at its first step)::

        lr_k = lr * min(1, (k + 1) / warmup_steps)      (lr when warmup_steps = 0)
        lr_max = max(lr_max, lr_k)
        weight = (k + 1)**r * lr_max**weight_lr_power;  weight_sum += weight
        c = weight / weight_sum                          (0 if weight_sum is 0)
        g = grad + weight_decay * y
        y = lerp(y, z, c) + lr_k * (momentum * (1 - c) - 1) * g
        z = z - lr_k * g

    x, the average to evaluate, is ``lerp(y, z, 1 - 1/momentum)``: :meth:`eval` puts it
    in the parameters, :meth:`train` puts y back.

    {_MODE_DOC}

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1.0).
        momentum: interpolation between z and x, in (0, 1) (default 0.9).
        {_SHARED_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``z``. Unlike the package, the grads are not written, and there
    is no ``foreach`` argument (every step is one fused kernel).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.SGDScheduleFree([w], lr=0.1)
        >>> opt.train()
        >>> opt.step([np.array([1.0, -4.0])])   # the first step: y = z = x = -lr * g
        >>> opt.step([np.array([2.0, 2.0])])
        >>> np.round(w, 6)                       # y
        array([-0.21,  0.29])
        >>> opt.eval()                           # x, the average of z = -0.1, 0.4 and -0.3, 0.2
        >>> np.round(w, 6)
        array([-0.2,  0.3])
    """

    kernel = "sgd_schedulefree"
    state_names = ("z",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        momentum=_OPEN_UNIT,
        weight_decay=NONNEGATIVE,
        **_SHARED_RULES,
    )
    reference_step = staticmethod(reference.sgd_schedulefree)

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        _INTS["warmup_steps"](warmup_steps, "warmup_steps")
        super().__init__(params, {**locals(), **_COUNTERS}, backend=backend)

    def _beta(self, group: Mapping[str, Any]) -> float:
        return float(group["momentum"])


class AdamWScheduleFree(_ScheduleFree):
    __doc__ = f"""Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled").

    The rule of ``schedulefree.AdamWScheduleFree`` (1.4.1), per group at step k (from
    0), the parameter p holding y, the state z (a copy of p at its first step) and v::

        lr_k, c: as SGDScheduleFree's
        v = beta2 * v + (1 - beta2) * grad**2
        g = grad / (sqrt(v / (1 - beta2**(k + 1))) + eps) + weight_decay * y
        y = lerp(y, z, c) + lr_k * (beta1 * (1 - c) - 1) * g
        z = z - lr_k * g

    x, the average to evaluate, is ``lerp(y, z, 1 - 1/beta1)``: :meth:`eval` puts it in
    the parameters, :meth:`train` puts y back.

    {_MODE_DOC}

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 0.0025).
        betas: (beta1, beta2): beta1 interpolates between z and x, in (0, 1); beta2 the
            second moment's decay, in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        {_SHARED_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``z`` and ``exp_avg_sq``. Unlike the package, the grads are not
    written, and there is no ``foreach`` argument (every step is one fused kernel).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.zeros(2)
        >>> opt = fo.AdamWScheduleFree([w], lr=0.1)
        >>> opt.train()
        >>> opt.step([np.array([1.0, -4.0])])   # the first step: y = z = -lr * g / |g|
        >>> np.round(w, 6)
        array([-0.1,  0.1])
    """

    kernel = "adamw_schedulefree"
    state_names = ("z", "exp_avg_sq")
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        betas=_SF_BETAS,
        eps=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        **_SHARED_RULES,
    )
    reference_step = staticmethod(reference.adamw_schedulefree)

    def __init__(
        self,
        params: Params,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        _INTS["warmup_steps"](warmup_steps, "warmup_steps")
        super().__init__(params, {**locals(), **_COUNTERS}, backend=backend)

    def _beta(self, group: Mapping[str, Any]) -> float:
        return float(group["betas"][0])
