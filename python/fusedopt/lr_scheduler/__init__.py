"""Learning-rate schedules: ``torch.optim.lr_scheduler``'s classes, step for step.

Every class of PyTorch's module is here with the same name, arguments, defaults and values,
and works on any fusedopt optimizer (either backend) or any object with ``param_groups``:

>>> import numpy as np, fusedopt as fo
>>> W = np.zeros(3)
>>> opt = fo.SGD([W], lr=0.1)
>>> sched = fo.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> for _ in range(4):
...     opt.step([np.ones(3)])
...     sched.step()
>>> sched.get_last_lr()
[0.025]

As in PyTorch, constructing a scheduler performs its first step: it writes ``initial_lr``
(and the schedule's value at step 0) into every param group, ``last_epoch`` becomes 0 and
``base_lrs`` holds the ``initial_lr`` of each group.

Closed forms, and when they are not used
----------------------------------------
PyTorch computes most schedules recursively: each step multiplies the group's *current*
lr by a ratio. That is what lets ``ChainedScheduler`` multiply schedules, and what makes a
user's own change to ``group["lr"]`` carry on; but it also accumulates rounding. Here the
*chainable* schedules (``StepLR``, ``MultiStepLR``, ``ConstantLR``, ``LinearLR``,
``ExponentialLR``, ``PolynomialLR``, ``CosineAnnealingLR``) use the closed form
``lr_t = f(t, base_lr)`` whenever the group's lr is still where the closed form put it at the
previous step (to 1e-12 relative), and PyTorch's recursive formula otherwise (chained with
another schedule, or lr changed by hand). So a schedule alone never drifts, and a composed
or hand-edited one behaves as PyTorch's does. ``LambdaLR``, ``CosineAnnealingWarmRestarts``,
``CyclicLR``, ``OneCycleLR`` and :class:`WarmupDecayLR` are pure closed forms, as in PyTorch
(they ignore the group's current lr); ``MultiplicativeLR`` is recursive by definition.

Beyond PyTorch
--------------
* :func:`warmup_cosine`, :func:`warmup_linear`, :func:`warmup_constant` (all
  :class:`WarmupDecayLR`): linear warm-up then cosine / linear / no decay.
* :meth:`LRScheduler.lr_at` and :func:`curve`: a schedule's values at any steps as a NumPy
  array, computed on a private stand-in optimizer (the real one is never touched).
* ``ReduceLROnPlateau``'s ``threshold_mode="rel"`` is right for negative metrics.

Differences from PyTorch (all deliberate)
-----------------------------------------
* Arguments PyTorch accepts but cannot honour are errors: ``ConstantLR(factor=0)``,
  ``total_iters``/``step_size``/``T_max`` of 0, a negative ``gamma``, unsorted
  ``SequentialLR`` milestones, an unknown ``CyclicLR.scale_mode``, a ``OneCycleLR`` phase of
  zero length (PyTorch divides by zero). Wrong types are ``TypeError``, bad values
  ``ValueError``; a missing ``initial_lr`` when resuming is ``ValueError`` (PyTorch: KeyError).
* ``step(epoch)`` is not deprecated: it jumps to ``epoch`` with the closed form, as PyTorch's
  deprecated path does, without a warning. PyTorch's warnings about calling ``step`` in the
  wrong order need a wrapped ``optimizer.step``; fusedopt never wraps the optimizer.
* ``CosineAnnealingWarmRestarts.step(epoch)`` finds the restart with exact arithmetic, where
  PyTorch's ``math.log`` can land one cycle off on a restart boundary.
* ``ReduceLROnPlateau`` with ``threshold_mode="rel"`` compares against ``|best|``
  (PyTorch issues 47513 and 38622).
* Composites nested in ``SequentialLR`` restart their children at a milestone (PyTorch
  raises ``NotImplementedError`` there).
* ``OneCycleLR`` raises past ``total_steps`` before changing anything (PyTorch has already
  advanced ``last_epoch``).
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, SupportsFloat

import numpy as np
import numpy.typing as npt

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "WarmupDecayLR",
    "curve",
    "warmup_constant",
    "warmup_cosine",
    "warmup_linear",
]


class _Optimizer(Protocol):
    """What a schedule needs of an optimizer: ``param_groups`` (and ``defaults``)."""

    param_groups: list[dict[str, Any]]


# --------------------------------------------------------------------------- checks


def _check_optimizer(optimizer: Any) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not groups:
        raise TypeError(
            f"optimizer must have a non-empty list of param_groups, got {type(optimizer).__name__}"
        )
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "lr" not in g:
            raise TypeError(f"optimizer.param_groups[{i}] must be a dict with an 'lr'")
        if not _is_real(g["lr"]):
            raise TypeError(f"optimizer.param_groups[{i}]['lr'] must be a real number")


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (TypeError if not an int, ValueError if smaller)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _real(
    name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False
) -> float:
    """``value`` as a finite float in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        left = "(" if lo_open else "["
        raise ValueError(f"{name} must be finite and in {left}{lo}, {hi}], got {value}")
    return v


def _per_group(
    name: str, value: Any, n: int, lo: float = -math.inf, hi: float = math.inf
) -> list[float]:
    """A scalar or a list with one value per param group, as a list of floats."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one value per param group ({n}), got {len(value)}")
        return [_real(f"{name}[{i}]", v, lo, hi) for i, v in enumerate(value)]
    return [_real(name, value, lo, hi)] * n


def _check_last_epoch(optimizer: _Optimizer, last_epoch: Any, keys: Sequence[str]) -> int:
    """Validate ``last_epoch``; resuming (>= 0) needs ``keys`` in every group."""
    last_epoch = _int("last_epoch", last_epoch, -1)
    if last_epoch >= 0:
        for i, g in enumerate(optimizer.param_groups):
            for key in keys:
                if key not in g:
                    raise ValueError(
                        f"last_epoch={last_epoch} resumes a schedule, but param_groups[{i}] "
                        f"has no {key!r}: load the optimizer's state_dict first"
                    )
    return last_epoch


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays (as after ``numpy.load``) back to Python values."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _on_curve(lr: float, expected: float) -> bool:
    return bool(lr == expected or abs(lr - expected) <= 1e-12 * abs(expected))


def _callable_state(fn: Any) -> dict[str, Any] | None:
    """As PyTorch: a callable object's ``__dict__`` is saved, a function is not."""
    if isinstance(fn, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return None
    d = getattr(fn, "__dict__", None)
    return dict(d) if isinstance(d, dict) else None


class _StandInOptimizer:
    """A private optimizer-like object that :meth:`LRScheduler.lr_at` schedules instead."""

    def __init__(self, groups: list[dict[str, Any]], defaults: Mapping[str, Any]) -> None:
        self.param_groups = groups
        self.defaults = dict(defaults)

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""


# --------------------------------------------------------------------------- base


class LRScheduler:
    """Base class of the schedules: the bookkeeping PyTorch's ``LRScheduler`` does.

    Args:
        optimizer: a fusedopt optimizer (anything with ``param_groups``, a list of dicts
            holding ``"lr"``).
        last_epoch: index of the last step taken; -1 (default) starts the schedule. A value
            >= 0 resumes one and needs ``initial_lr`` in every group (load the optimizer's
            state_dict first); the constructor's own step then moves to ``last_epoch + 1``.

    Attributes:
        optimizer: the optimizer whose ``param_groups`` are written.
        base_lrs: ``initial_lr`` of each group (the lr the schedule scales).
        last_epoch: the step the current lr belongs to (0 right after construction).

    A subclass written for PyTorch works: override :meth:`get_lr` to return the lrs for step
    ``self.last_epoch`` (from ``self.base_lrs`` or each group's current lr). The built-in
    schedules implement ``_closed_lr(t)`` (the closed form, from ``base_lrs``) and, when
    chainable, ``_chain_lr(t, initial)`` (PyTorch's recursive form, from each group's lr).
    """

    _chainable: ClassVar[bool] = False
    _has_closed_form: ClassVar[bool] = True
    _state_keys: ClassVar[tuple[str, ...]] = ()

    optimizer: Any
    base_lrs: list[float]
    last_epoch: int
    _last_lr: list[float]

    def __init__(self, optimizer: _Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        self.base_lrs = self._initial_base_lrs()
        self.last_epoch = last_epoch
        self._initial_step()
        self._snapshot()

    # -- the step ------------------------------------------------------------------------

    def _initial_base_lrs(self) -> list[float]:
        return [float(g["initial_lr"]) for g in self.optimizer.param_groups]

    def _initial_step(self) -> None:
        t = self.last_epoch + 1
        self._apply(t, self._lrs(t, initial=True))

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one step and write the new lr into every group.

        Call it after ``optimizer.step``. ``epoch`` (optional) jumps to that step instead,
        with the closed form where there is one (PyTorch's deprecated ``step(epoch)``).
        """
        if epoch is None:
            t = self.last_epoch + 1
            lrs = self._lrs(t, initial=False)
        else:
            t = _int("epoch", epoch, 0)
            lrs = self._jump_lrs(t)
        self._apply(t, lrs)

    def _jump_lrs(self, t: int) -> list[float]:
        self._check_groups()
        if self._has_closed_form:
            return self._closed_lr(t)
        return self._chain_lr(t, False)

    def _lrs(self, t: int, initial: bool) -> list[float]:
        groups = self._check_groups()
        if not self._chainable:
            return self._closed_lr(t)
        chained = self._chain_lr(t, initial)
        if initial or t < 1 or not self._has_closed_form:
            return chained
        prev, cur = self._closed_lr(t - 1), self._closed_lr(t)
        return [
            c if _on_curve(g["lr"], p) else r
            for g, p, c, r in zip(groups, prev, cur, chained, strict=True)
        ]

    def _check_groups(self) -> list[dict[str, Any]]:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but this schedule was built for "
                f"{len(self.base_lrs)}; build a new schedule after add_param_group"
            )
        return groups

    def _apply(self, t: int, lrs: list[float]) -> None:
        self.last_epoch = t
        for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            g["lr"] = lr
        self._after_lr(t)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _after_lr(self, t: int) -> None:
        """Hook for the schedules that also write momentum."""

    def get_lr(self) -> list[float]:
        """The lr of each group at step ``self.last_epoch``: PyTorch's extension point.

        Override it in a subclass; the built-in schedules do not use it (read the current lr
        with :meth:`get_last_lr`).
        """
        raise NotImplementedError(
            f"{type(self).__name__}.get_lr is for subclasses to override; "
            "use get_last_lr() for the current lr"
        )

    def _closed_lr(self, t: int) -> list[float]:
        # A user subclass's get_lr, evaluated at step t.
        saved, self.last_epoch = self.last_epoch, t
        try:
            return list(self.get_lr())
        finally:
            self.last_epoch = saved

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        raise NotImplementedError

    def _restart(self) -> None:
        """Go to step 0 with the closed form (SequentialLR's hand-over at a milestone)."""
        self._apply(0, self._jump_lrs(0))

    def _undo(self) -> None:
        """Forget the constructor's step (SequentialLR re-does it for the first schedule)."""
        self.last_epoch -= 1

    # -- inspection ------------------------------------------------------------------------

    def get_last_lr(self) -> list[float]:
        """The lr of each param group, as written by the last step (a new list)."""
        return list(self._last_lr)

    def lr_at(self, steps: int | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The lr of every group after ``steps`` calls to :meth:`step` since construction.

        Step 0 is the lr right after construction (the lr of the first optimizer step).
        The schedule is replayed from its start on a private stand-in optimizer: neither
        this scheduler nor its optimizer changes.

        Args:
            steps: a non-negative int, or a 1-D array-like of them (any order).

        Returns:
            float64 array of shape ``(n_groups,)`` for an int, ``(len(steps), n_groups)``
            otherwise.

        >>> import numpy as np, fusedopt as fo
        >>> opt = fo.SGD([np.zeros(2)], lr=0.1)
        >>> fo.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5).lr_at([0, 1, 2, 5])[:, 0]
        array([0.1  , 0.1  , 0.05 , 0.025])
        """
        t = np.asarray(steps)
        if t.size == 0:
            t = t.astype(np.intp)
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
            raise TypeError(f"steps must be integers, got dtype {t.dtype}")
        if t.ndim > 1:
            raise ValueError(f"steps must be an int or a 1-D array, got shape {t.shape}")
        if t.size and t.min() < 0:
            raise ValueError(f"steps must be >= 0, got {int(t.min())}")
        table = self._replay(int(t.max()) if t.size else 0)
        return table[t]

    def _snapshot(self) -> None:
        """Remember the state right after construction, for :meth:`lr_at`."""
        groups = [
            {k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups
        ]
        defaults = dict(getattr(self.optimizer, "defaults", {}))
        self._start = (copy.deepcopy(self.state_dict()), groups, defaults)

    def _replay(self, n: int) -> npt.NDArray[np.float64]:
        state, groups, defaults = self._start
        stand_in = _StandInOptimizer([{**g, "params": []} for g in groups], defaults)
        clone = copy.deepcopy(self, {id(self.optimizer): stand_in})
        clone.load_state_dict(copy.deepcopy(state))
        out = np.empty((n + 1, len(groups)))
        out[0] = [g["lr"] for g in stand_in.param_groups]
        for k in range(1, n + 1):
            clone.step()
            out[k] = [g["lr"] for g in stand_in.param_groups]
        return out

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state: plain numbers, strings, lists and dicts (no optimizer).

        Keys are PyTorch's attribute names (``last_epoch``, ``base_lrs``, ``_last_lr`` and
        the arguments).
        """
        keys = ("last_epoch", "base_lrs", "_last_lr", *self._state_keys)
        return {k: copy.deepcopy(_plain(getattr(self, k))) for k in keys}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (extra keys, e.g. PyTorch's, are ignored).

        Load the optimizer's state too: the schedule continues from each group's lr.
        """
        keys = ("last_epoch", "base_lrs", "_last_lr", *self._state_keys)
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict is missing {missing}")
        for k in keys:
            setattr(self, k, copy.deepcopy(_plain(state_dict[k])))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={getattr(self, 'last_epoch', None)})"


# --------------------------------------------------------------------------- lambda family


def _lambdas(name: str, lr_lambda: Any, n: int) -> list[Callable[[int], float]]:
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
        fns = list(lr_lambda)
    else:
        fns = [lr_lambda] * n
    for i, fn in enumerate(fns):
        if not callable(fn):
            raise TypeError(f"{name}[{i}] must be callable, got {type(fn).__name__}")
    return fns


class _LambdaScheduler(LRScheduler):
    """state_dict handling of ``lr_lambdas`` (callable objects' ``__dict__`` only)."""

    lr_lambdas: list[Callable[[int], float]]

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`LRScheduler.state_dict`; ``lr_lambdas`` holds, per group, ``None`` for
        a function or lambda and the ``__dict__`` of a callable object."""
        sd = super().state_dict()
        sd["lr_lambdas"] = [copy.deepcopy(_callable_state(fn)) for fn in self.lr_lambdas]
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`LRScheduler.load_state_dict`, updating callable objects' ``__dict__``."""
        super().load_state_dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, state_dict.get("lr_lambdas", ()), strict=False):
            if saved is not None:
                fn.__dict__.update(copy.deepcopy(saved))


class LambdaLR(_LambdaScheduler):
    """Sets each group's lr to its initial lr times a function of the step.

    ``lr_t = base_lr * lr_lambda(t)``, closed form (not chainable), as in PyTorch.

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the step ``t`` (int) returning a factor, or a list with one
            such function per param group.
        last_epoch: -1 to start (see :class:`LRScheduler`).

    >>> import numpy as np, fusedopt as fo
    >>> opt = fo.SGD([np.zeros(2)], lr=0.1)
    >>> sched = fo.lr_scheduler.LambdaLR(opt, lambda t: 0.95**t)
    """

    def __init__(
        self,
        optimizer: _Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.lr_lambdas = _lambdas("lr_lambda", lr_lambda, len(optimizer.param_groups))
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        return [b * fn(t) for b, fn in zip(self.base_lrs, self.lr_lambdas, strict=True)]


class MultiplicativeLR(_LambdaScheduler):
    """Multiplies each group's lr by a function of the step, at every step but the first.

    ``lr_t = lr_{t-1} * lr_lambda(t)`` for ``t >= 1``; ``lr_0`` is the group's lr. Recursive
    by definition, so it composes with other schedules and with hand-set lrs.

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the step returning a factor, or one per param group.
        last_epoch: -1 to start.
    """

    _chainable = True
    _has_closed_form = False

    def __init__(
        self,
        optimizer: _Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.lr_lambdas = _lambdas("lr_lambda", lr_lambda, len(optimizer.param_groups))
        super().__init__(optimizer, last_epoch)

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        if initial:
            return [g["lr"] for g in groups]
        return [g["lr"] * fn(t) for g, fn in zip(groups, self.lr_lambdas, strict=True)]


# --------------------------------------------------------------------------- chainable


class StepLR(LRScheduler):
    """Decays the lr by ``gamma`` every ``step_size`` steps.

    ``lr_t = base_lr * gamma ** (t // step_size)``. Chainable (see the module docstring).

    Args:
        optimizer: the optimizer.
        step_size: period of the decay, an int >= 1.
        gamma: the factor, >= 0. Default: 0.1.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("step_size", "gamma")

    def __init__(
        self, optimizer: _Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = _int("step_size", step_size, 1)
        self.gamma = _real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        return [b * self.gamma ** (t // self.step_size) for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        if t == 0 or t % self.step_size != 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]


class MultiStepLR(LRScheduler):
    """Decays the lr by ``gamma`` at each milestone; a milestone given k times decays by
    ``gamma ** k``.

    ``lr_t = base_lr * gamma ** (number of milestones <= t)``. Chainable.

    Args:
        optimizer: the optimizer.
        milestones: steps (ints >= 0), in any order, repeats compounding.
        gamma: the factor, >= 0. Default: 0.1.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("milestones", "gamma")

    def __init__(
        self,
        optimizer: _Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError("milestones must be an iterable of ints")
        ms = [_int(f"milestones[{i}]", m, 0) for i, m in enumerate(milestones)]
        self.milestones: Counter[int] = Counter(ms)
        self.gamma = _real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        k = bisect_right(sorted(self.milestones.elements()), t)
        return [b * self.gamma**k for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        if t not in self.milestones:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma ** self.milestones[t] for g in groups]

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`LRScheduler.state_dict`; ``milestones`` is a sorted list with repeats."""
        sd = super().state_dict()
        sd["milestones"] = sorted(self.milestones.elements())
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`LRScheduler.load_state_dict` (``milestones``: a list or a Counter)."""
        super().load_state_dict(state_dict)
        ms = state_dict["milestones"]
        if isinstance(ms, Mapping):
            self.milestones = Counter({int(k): int(v) for k, v in _plain(dict(ms)).items()})
        else:
            self.milestones = Counter(int(m) for m in _plain(list(ms)))


class ConstantLR(LRScheduler):
    """Multiplies the lr by ``factor`` for the first ``total_iters`` steps.

    ``lr_t = base_lr * (factor if t < total_iters else 1)``. Chainable.

    Args:
        optimizer: the optimizer.
        factor: in (0, 1] (PyTorch accepts 0 and then divides by it). Default: 1/3.
        total_iters: steps at the reduced lr, an int >= 1. Default: 5.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("factor", "total_iters")

    def __init__(
        self,
        optimizer: _Optimizer,
        factor: float = 1.0 / 3,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.factor = _real("factor", factor, 0.0, 1.0, lo_open=True)
        self.total_iters = _int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        f = self.factor if t < self.total_iters else 1.0
        return [b * f for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        if t == 0:
            return [g["lr"] * self.factor for g in groups]
        if t != self.total_iters:
            return [g["lr"] for g in groups]
        return [g["lr"] * (1.0 / self.factor) for g in groups]


class LinearLR(LRScheduler):
    """Scales the lr by a factor going linearly from ``start_factor`` to ``end_factor``.

    ``lr_t = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters)
    / total_iters)``. Chainable.

    Args:
        optimizer: the optimizer.
        start_factor: in (0, 1]. Default: 1/3.
        end_factor: in [0, 1]. Default: 1.
        total_iters: steps of the ramp, an int >= 1. Default: 5.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        optimizer: _Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.start_factor = _real("start_factor", start_factor, 0.0, 1.0, lo_open=True)
        self.end_factor = _real("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return [b * (s + (e - s) * min(n, t) / n) for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return [g["lr"] * s for g in groups]
        if initial or t > n:
            return [g["lr"] for g in groups]
        return [g["lr"] * (1.0 + (e - s) / (n * s + (t - 1) * (e - s))) for g in groups]


class ExponentialLR(LRScheduler):
    """Decays the lr by ``gamma`` every step.

    ``lr_t = base_lr * gamma ** t``. Chainable.

    Args:
        optimizer: the optimizer.
        gamma: the factor, >= 0.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("gamma",)

    def __init__(self, optimizer: _Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        return [b * self.gamma**t for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        if initial:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]


class PolynomialLR(LRScheduler):
    """Decays the lr polynomially to 0 over ``total_iters`` steps.

    ``lr_t = base_lr * (1 - min(t, total_iters) / total_iters) ** power``. Chainable.

    Args:
        optimizer: the optimizer.
        total_iters: steps of the decay, an int >= 1. Default: 5.
        power: the exponent, >= 0. Default: 1.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("total_iters", "power")

    def __init__(
        self,
        optimizer: _Optimizer,
        total_iters: int = 5,
        power: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_iters = _int("total_iters", total_iters, 1)
        self.power = _real("power", power, 0.0)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        n = self.total_iters
        return [b * (1.0 - min(n, t) / n) ** self.power for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        n = self.total_iters
        if initial or t > n:
            return [g["lr"] for g in groups]
        f = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [g["lr"] * f for g in groups]


class CosineAnnealingLR(LRScheduler):
    """Anneals the lr along a cosine from ``base_lr`` to ``eta_min`` in ``T_max`` steps.

    ``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` (SGDR without
    restarts; past ``T_max`` the cosine goes on, back up, as PyTorch's does). Chainable:
    composed, it follows PyTorch's recursion ``lr_t = eta_min + (lr_{t-1} - eta_min) *
    (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))``.

    Args:
        optimizer: the optimizer.
        T_max: half-period, an int >= 1.
        eta_min: the lowest lr, >= 0. Default: 0.
        last_epoch: -1 to start.
    """

    _chainable = True
    _state_keys = ("T_max", "eta_min")

    def __init__(
        self, optimizer: _Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = _int("T_max", T_max, 1)
        self.eta_min = _real("eta_min", eta_min, 0.0)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        m = self.eta_min
        c = 1 + math.cos(math.pi * t / self.T_max)
        return [m + (b - m) * c / 2 for b in self.base_lrs]

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        m, n = self.eta_min, self.T_max
        if initial:
            return [g["lr"] for g in groups]
        if (t - 1 - n) % (2 * n) == 0:
            up = (1 - math.cos(math.pi / n)) / 2
            return [g["lr"] + (b - m) * up for g, b in zip(groups, self.base_lrs, strict=True)]
        r = (1 + math.cos(math.pi * t / n)) / (1 + math.cos(math.pi * (t - 1) / n))
        return [r * (g["lr"] - m) + m for g in groups]


# --------------------------------------------------------------------------- restarts


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR), the period growing ``T_mult``-fold.

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``, where ``T_i``
    is the current period (``T_0``, ``T_0 * T_mult``, ...) and ``T_cur`` the steps since the
    last restart. ``step()`` adds 1 to ``T_cur``; ``step(epoch)`` accepts a fractional
    epoch (``epoch + i / iters_per_epoch``) and places it exactly (PyTorch uses ``math.log``,
    which can land one cycle off on a restart boundary). Closed form in ``T_cur``.

    Args:
        optimizer: the optimizer.
        T_0: steps until the first restart, an int >= 1.
        T_mult: growth of the period after each restart, an int >= 1. Default: 1.
        eta_min: the lowest lr, >= 0. Default: 0.
        last_epoch: -1 to start.
    """

    _state_keys = ("T_0", "T_i", "T_mult", "eta_min", "T_cur")

    def __init__(
        self,
        optimizer: _Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_0 = _int("T_0", T_0, 1)
        self.T_i: float = self.T_0
        self.T_mult = _int("T_mult", T_mult, 1)
        self.eta_min = _real("eta_min", eta_min, 0.0)
        self.T_cur: float = _int("last_epoch", last_epoch, -1)
        super().__init__(optimizer, last_epoch)

    def _initial_step(self) -> None:
        self.step()

    def _closed_lr(self, t: int) -> list[float]:
        m = self.eta_min
        c = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [m + (b - m) * c / 2 for b in self.base_lrs]

    def _position(self, epoch: float) -> tuple[float, float]:
        """``(T_cur, T_i)`` at ``epoch``, restart boundaries found with exact sums."""
        if epoch < self.T_0:
            return epoch, self.T_0
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        start, period = 0, self.T_0
        while epoch >= start + period:
            start += period
            period *= self.T_mult
        return epoch - start, period

    def step(self, epoch: float | None = None) -> None:
        """Advance by one step, or go to ``epoch`` (a float >= 0, fractions allowed)."""
        self._check_groups()
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            last = self.last_epoch + 1
            t_cur, t_i = self.T_cur + 1, self.T_i
            if t_cur >= t_i:
                t_cur, t_i = t_cur % t_i, t_i * self.T_mult
        else:
            if not _is_real(epoch):
                raise TypeError(f"epoch must be a real number, got {type(epoch).__name__}")
            if not epoch >= 0 or not math.isfinite(epoch):
                raise ValueError(f"epoch must be finite and >= 0, got {epoch}")
            t_cur, t_i = self._position(epoch)
            last = math.floor(epoch)
        self.T_cur, self.T_i = t_cur, t_i
        self._apply(last, self._closed_lr(last))

    def _restart(self) -> None:
        self.step(0)


# --------------------------------------------------------------------------- cyclic


def _momentum_key(optimizer: _Optimizer) -> str:
    """``betas`` (Adam family: cycle beta1) or ``momentum`` (SGD, RMSprop)."""
    defaults = getattr(optimizer, "defaults", {})
    if "betas" in defaults:
        return "betas"
    if "momentum" in defaults:
        return "momentum"
    raise ValueError(
        "cycle_momentum=True needs an optimizer with 'momentum' or 'betas' "
        "(SGD, RMSprop, Adam family); pass cycle_momentum=False"
    )


def _write_momentum(group: dict[str, Any], use_beta1: bool, value: float) -> None:
    if use_beta1:
        group["betas"] = (value, *tuple(group["betas"])[1:])
    else:
        group["momentum"] = value


class CyclicLR(LRScheduler):
    """Cycles the lr between ``base_lr`` and ``max_lr`` (cyclical learning rates, CLR).

    With ``cycle = floor(1 + t / (up + down))``, ``x = 1 + t / (up + down) - cycle`` and the
    triangle ``h = x / r`` if ``x <= r`` else ``(x - 1) / (r - 1)`` (``r = up / (up + down)``):
    ``lr_t = base_lr + (max_lr - base_lr) * h * scale_fn(cycle or t)``, where ``scale_fn`` is
    1 (``"triangular"``), ``1 / 2 ** (cycle - 1)`` (``"triangular2"``) or ``gamma ** t``
    (``"exp_range"``). With ``cycle_momentum``, momentum (or ``betas[0]``) runs the other
    way: ``max_momentum - (max_momentum - base_momentum) * h * scale_fn(...)``. Closed form.

    Args:
        optimizer: the optimizer.
        base_lr: lower bound, a float or one per group (written to the groups at start).
        max_lr: upper bound, a float or one per group.
        step_size_up: steps of the rising half, > 0. Default: 2000.
        step_size_down: steps of the falling half, >= 0. Default: ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``; ignored with ``scale_fn``.
        gamma: base of ``"exp_range"``. Default: 1.
        scale_fn: a custom scaling function of one argument; overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is given.
        cycle_momentum: cycle ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family).
            Other optimizers raise ``ValueError`` unless this is False. Default: True.
        base_momentum: lower momentum bound (at the lr's peak). Default: 0.8.
        max_momentum: upper momentum bound (at ``base_lr``). Default: 0.9.
        last_epoch: -1 to start.
    """

    _state_keys = (
        "max_lrs",
        "total_size",
        "step_ratio",
        "mode",
        "gamma",
        "scale_mode",
        "cycle_momentum",
        "use_beta1",
        "base_momentums",
        "max_momentums",
    )

    def __init__(
        self,
        optimizer: _Optimizer,
        base_lr: float | Sequence[float],
        max_lr: float | Sequence[float],
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: Literal["cycle", "iterations"] = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.8,
        max_momentum: float | Sequence[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        last_epoch = _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        base_lrs = _per_group("base_lr", base_lr, n, 0.0)
        self.max_lrs = _per_group("max_lr", max_lr, n, 0.0)
        up = _real("step_size_up", step_size_up, 0.0, lo_open=True)
        down = up if step_size_down is None else _real("step_size_down", step_size_down, 0.0)
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(
                f"mode must be 'triangular', 'triangular2' or 'exp_range' (or give scale_fn), "
                f"got {mode!r}"
            )
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable, got {type(scale_fn).__name__}")
        self.mode = mode
        self.gamma = _real("gamma", gamma)
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_mode()
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        self.base_momentums: list[float] = []
        self.max_momentums: list[float] = []
        if self.cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            self.base_momentums = _per_group("base_momentum", base_momentum, n, 0.0)
            self.max_momentums = _per_group("max_momentum", max_momentum, n, 0.0)
        # All checks passed: now write the groups.
        self._cyclic_base_lrs = base_lrs
        if last_epoch == -1:
            for lr, g in zip(base_lrs, optimizer.param_groups, strict=True):
                g["lr"] = lr
            if self.cycle_momentum:
                for g, hi, lo in zip(
                    optimizer.param_groups, self.max_momentums, self.base_momentums, strict=True
                ):
                    _write_momentum(g, self.use_beta1, hi)
                    g["max_momentum"] = hi
                    g["base_momentum"] = lo
        super().__init__(optimizer, last_epoch)

    def _initial_base_lrs(self) -> list[float]:
        return list(self._cyclic_base_lrs)

    def _init_scale_mode(self) -> None:
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x: float) -> float:
        """The amplitude's scale at ``x`` (the cycle number or the step, see scale_mode)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def _triangle(self, t: int) -> tuple[float, float]:
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        if x <= self.step_ratio:
            h = x / self.step_ratio
        else:
            h = (x - 1) / (self.step_ratio - 1)
        return h, self.scale_fn(cycle if self.scale_mode == "cycle" else t)

    def _closed_lr(self, t: int) -> list[float]:
        h, s = self._triangle(t)
        return [b + (m - b) * h * s for b, m in zip(self.base_lrs, self.max_lrs, strict=True)]

    def _after_lr(self, t: int) -> None:
        if not self.cycle_momentum:
            return
        h, s = self._triangle(t)
        for g, lo, hi in zip(
            self.optimizer.param_groups, self.base_momentums, self.max_momentums, strict=True
        ):
            _write_momentum(g, self.use_beta1, hi - (hi - lo) * h * s)

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`LRScheduler.state_dict`; a custom ``scale_fn`` is saved as PyTorch does
        (a callable object's ``__dict__``; a function as ``None``)."""
        sd = super().state_dict()
        fn = self._scale_fn_custom
        sd["_scale_fn_custom"] = None if fn is None else copy.deepcopy(_callable_state(fn))
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`LRScheduler.load_state_dict`."""
        super().load_state_dict(state_dict)
        saved = state_dict.get("_scale_fn_custom")
        if saved is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(copy.deepcopy(saved))
        self._init_scale_mode()


_ONECYCLE_KEYS = ("initial_lr", "max_lr", "min_lr")


class OneCycleLR(LRScheduler):
    """The 1cycle policy: lr up from ``max_lr / div_factor`` to ``max_lr``, then down to
    ``max_lr / div_factor / final_div_factor``; momentum the other way.

    Phases (``T = total_steps``, ``p = pct_start``), each annealed with
    ``anneal(a, b, x) = b + (a - b) * (1 + cos(pi x)) / 2`` (``"cos"``) or
    ``a + (b - a) * x`` (``"linear"``), ``x`` the fraction of the phase done:

    * two phases (default, fastai): ``initial -> max`` until step ``p T - 1``, then
      ``max -> min`` until ``T - 1``;
    * ``three_phase``: ``initial -> max`` until ``p T - 1``, ``max -> initial`` until
      ``2 p T - 2``, ``initial -> min`` until ``T - 1``.

    Momentum (``momentum`` or ``betas[0]``) goes ``max_momentum -> base_momentum`` while the
    lr rises and back while it falls (constant in the third phase). As in PyTorch the groups
    receive ``initial_lr``, ``max_lr``, ``min_lr`` (and ``max_momentum``,
    ``base_momentum``), which the schedule reads; stepping past ``total_steps`` raises
    ``ValueError``. Closed form.

    Args:
        optimizer: the optimizer.
        max_lr: peak lr, a float or one per group.
        total_steps: length of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: with ``steps_per_epoch``, ``total_steps = epochs * steps_per_epoch``.
        steps_per_epoch: see ``epochs``.
        pct_start: fraction of the cycle spent raising the lr, in [0, 1]. Default: 0.3.
        anneal_strategy: ``"cos"`` or ``"linear"``. Default: ``"cos"``.
        cycle_momentum: cycle momentum / beta1 (SGD, RMSprop, Adam family). Default: True.
        base_momentum: momentum at the lr's peak. Default: 0.85.
        max_momentum: momentum at the ends. Default: 0.95.
        div_factor: ``initial_lr = max_lr / div_factor``. Default: 25.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``. Default: 1e4.
        three_phase: the paper's three phases instead of fastai's two. Default: False.
        last_epoch: -1 to start.
    """

    _state_keys = (
        "total_steps",
        "_schedule_phases",
        "_anneal_func_type",
        "cycle_momentum",
        "use_beta1",
    )

    def __init__(
        self,
        optimizer: _Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if total_steps is not None:
            self.total_steps = _int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _int("epochs", epochs, 1) * _int(
                "steps_per_epoch", steps_per_epoch, 1
            )
        else:
            raise ValueError("give total_steps, or both epochs and steps_per_epoch")
        pct = _real("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group("max_lr", max_lr, n, 0.0)
        div = _real("div_factor", div_factor, 0.0, lo_open=True)
        final_div = _real("final_div_factor", final_div_factor, 0.0, lo_open=True)
        total = self.total_steps
        if three_phase:
            ends = [float(pct * total) - 1, float(2 * pct * total) - 2, total - 1]
            self._schedule_phases = [
                self._phase(ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                self._phase(ends[1], "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                self._phase(ends[2], "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            ends = [float(pct * total) - 1, total - 1]
            self._schedule_phases = [
                self._phase(ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                self._phase(ends[1], "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if any(b == a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)):
            raise ValueError(
                f"pct_start={pct_start} with total_steps={total} gives a phase of zero length"
            )
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        keys: tuple[str, ...] = _ONECYCLE_KEYS
        if self.cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            max_ms = _per_group("max_momentum", max_momentum, n, 0.0)
            base_ms = _per_group("base_momentum", base_momentum, n, 0.0)
            keys = (*keys, "max_momentum", "base_momentum")
        last_epoch = _check_last_epoch(optimizer, last_epoch, keys)
        # All checks passed: now write the groups.
        if last_epoch == -1:
            for g, m in zip(optimizer.param_groups, max_lrs, strict=True):
                g["initial_lr"] = m / div
                g["max_lr"] = m
                g["min_lr"] = g["initial_lr"] / final_div
            if self.cycle_momentum:
                for g, hi, lo in zip(optimizer.param_groups, max_ms, base_ms, strict=True):
                    _write_momentum(g, self.use_beta1, hi)
                    g["max_momentum"] = hi
                    g["base_momentum"] = lo
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _phase(end: float, lr0: str, lr1: str, m0: str, m1: str) -> dict[str, Any]:
        return {
            "end_step": end,
            "start_lr": lr0,
            "end_lr": lr1,
            "start_momentum": m0,
            "end_momentum": m1,
        }

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _where(self, t: int) -> tuple[dict[str, Any], float]:
        """The phase of step ``t`` and the fraction of it done."""
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {t} times, past total_steps={self.total_steps}")
        start = 0.0
        phases = self._schedule_phases
        for i, phase in enumerate(phases):
            end = phase["end_step"]
            if t <= end or i == len(phases) - 1:
                return phase, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def _closed_lr(self, t: int) -> list[float]:
        phase, pct = self._where(t)
        groups = self.optimizer.param_groups
        return [self._anneal(g[phase["start_lr"]], g[phase["end_lr"]], pct) for g in groups]

    def _after_lr(self, t: int) -> None:
        if not self.cycle_momentum:
            return
        phase, pct = self._where(t)
        for g in self.optimizer.param_groups:
            m = self._anneal(g[phase["start_momentum"]], g[phase["end_momentum"]], pct)
            _write_momentum(g, self.use_beta1, m)


# --------------------------------------------------------------------------- warm-up


class WarmupDecayLR(LRScheduler):
    """Linear warm-up, then cosine, linear or no decay (not in PyTorch).

    With ``W = warmup_steps``, ``T = total_steps``, ``s = start_factor`` and
    ``p = min(t - W, T - W) / (T - W)``::

        t < W:                 lr_t = base_lr * (s + (1 - s) * t / W)
        t >= W, "cos":         lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2
        t >= W, "linear":      lr_t = min_lr + (base_lr - min_lr) * (1 - p)
        t >= W, "constant":    lr_t = base_lr

    The lr stays at ``min_lr`` after ``T``. With ``start_factor=0`` (default) the first step
    has lr 0, as in ``transformers.get_cosine_schedule_with_warmup`` /
    ``get_linear_schedule_with_warmup``, whose values these are within ``total_steps``.
    Closed form (not chainable). Usually built with :func:`warmup_cosine`,
    :func:`warmup_linear` or :func:`warmup_constant`.

    Args:
        optimizer: the optimizer; each group's lr is its peak ``base_lr``.
        warmup_steps: steps of the warm-up, an int >= 0.
        total_steps: the step where the decay ends (> ``warmup_steps``); not used by
            ``"constant"``.
        decay: ``"cos"``, ``"linear"`` or ``"constant"``. Default: ``"cos"``.
        min_lr: the lr at and after ``total_steps``, a float or one per group, in
            [0, base_lr]. Default: 0.
        start_factor: the warm-up starts at ``start_factor * base_lr``, in [0, 1]. Default: 0.
        last_epoch: -1 to start.
    """

    _state_keys = ("warmup_steps", "total_steps", "decay", "min_lrs", "start_factor")

    def __init__(
        self,
        optimizer: _Optimizer,
        warmup_steps: int,
        total_steps: int | None = None,
        decay: Literal["cos", "linear", "constant"] = "cos",
        min_lr: float | Sequence[float] = 0.0,
        start_factor: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        if decay not in ("cos", "linear", "constant"):
            raise ValueError(f"decay must be 'cos', 'linear' or 'constant', got {decay!r}")
        self.decay = decay
        self.total_steps: int | None = None
        if decay != "constant":
            if total_steps is None:
                raise ValueError(f"decay={decay!r} needs total_steps")
            self.total_steps = _int("total_steps", total_steps, self.warmup_steps + 1)
        elif total_steps is not None:
            self.total_steps = _int("total_steps", total_steps, self.warmup_steps)
        self.min_lrs = _per_group("min_lr", min_lr, n, 0.0)
        if decay == "constant" and any(self.min_lrs):
            raise ValueError("min_lr is not used with decay='constant'; leave it at 0")
        self.start_factor = _real("start_factor", start_factor, 0.0, 1.0)
        last_epoch = _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        for i, g in enumerate(optimizer.param_groups):
            peak = g.get("initial_lr", g["lr"])
            if self.min_lrs[i] > peak:
                raise ValueError(f"min_lr ({self.min_lrs[i]}) exceeds the lr of group {i} ({peak})")
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        w, s = self.warmup_steps, self.start_factor
        if t < w:
            return [b * (s + (1.0 - s) * t / w) for b in self.base_lrs]
        if self.decay == "constant":
            return list(self.base_lrs)
        assert self.total_steps is not None
        span = self.total_steps - w
        p = min(t - w, span) / span
        if self.decay == "cos":
            c = 1 + math.cos(math.pi * p)
            return [m + (b - m) * c / 2 for b, m in zip(self.base_lrs, self.min_lrs, strict=True)]
        return [m + (b - m) * (1 - p) for b, m in zip(self.base_lrs, self.min_lrs, strict=True)]


def warmup_cosine(
    optimizer: _Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr: float | Sequence[float] = 0.0,
    start_factor: float = 0.0,
    last_epoch: int = -1,
) -> WarmupDecayLR:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr`` at
    ``total_steps``: ``lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi p)) / 2``.

    See :class:`WarmupDecayLR`.

    >>> import numpy as np, fusedopt as fo
    >>> opt = fo.AdamW([np.zeros(2)], lr=3e-4)
    >>> sched = fo.lr_scheduler.warmup_cosine(opt, warmup_steps=100, total_steps=1000)
    """
    return WarmupDecayLR(
        optimizer, warmup_steps, total_steps, "cos", min_lr, start_factor, last_epoch
    )


def warmup_linear(
    optimizer: _Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr: float | Sequence[float] = 0.0,
    start_factor: float = 0.0,
    last_epoch: int = -1,
) -> WarmupDecayLR:
    """Linear warm-up over ``warmup_steps``, then linear decay to ``min_lr`` at
    ``total_steps``: ``lr_t = min_lr + (base_lr - min_lr) * (1 - p)``.

    See :class:`WarmupDecayLR`.
    """
    return WarmupDecayLR(
        optimizer, warmup_steps, total_steps, "linear", min_lr, start_factor, last_epoch
    )


def warmup_constant(
    optimizer: _Optimizer, warmup_steps: int, start_factor: float = 0.0, last_epoch: int = -1
) -> WarmupDecayLR:
    """Linear warm-up over ``warmup_steps``, then the group's lr for good.

    See :class:`WarmupDecayLR`.
    """
    return WarmupDecayLR(optimizer, warmup_steps, None, "constant", 0.0, start_factor, last_epoch)


# --------------------------------------------------------------------------- composites


def _check_children(kind: str, optimizer: Any, schedulers: Any) -> list[LRScheduler]:
    if not isinstance(schedulers, Sequence) or isinstance(schedulers, (str, bytes)):
        raise TypeError(f"{kind}: schedulers must be a list of schedules")
    if len(schedulers) < 1:
        raise ValueError(f"{kind} expects at least one scheduler, got none")
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise TypeError(f"{kind}: schedulers[{i}] is a {type(s).__name__}, not a schedule")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(
                f"{kind} does not support ReduceLROnPlateau (schedulers[{i}]): its step "
                "needs a metric"
            )
        if s.optimizer is not optimizer:
            raise ValueError(f"{kind}: schedulers[{i}] belongs to another optimizer")
    return list(schedulers)


class SequentialLR(LRScheduler):
    """Runs schedules one after the other, handing over at the milestones.

    Schedule ``i`` runs for ``milestones[i-1] <= t < milestones[i]``; at a milestone the next
    one starts from its own step 0 (closed form, from ``base_lrs``), as in PyTorch. At
    construction every group's lr is reset to ``initial_lr`` and only the first schedule's
    initial step is kept.

    Args:
        optimizer: the optimizer all ``schedulers`` belong to.
        schedulers: the schedules, in order (not ``ReduceLROnPlateau``).
        milestones: ``len(schedulers) - 1`` strictly increasing steps (ints >= 1).
        last_epoch: -1 to start.

    >>> import numpy as np, fusedopt as fo
    >>> opt = fo.SGD([np.zeros(2)], lr=0.1)
    >>> warm = fo.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    >>> cos = fo.lr_scheduler.CosineAnnealingLR(opt, T_max=95)
    >>> sched = fo.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[5])
    """

    def __init__(
        self,
        optimizer: _Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        children = _check_children("SequentialLR", optimizer, schedulers)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError("milestones must be a list of ints")
        ms = [_int(f"milestones[{i}]", m, 1) for i, m in enumerate(milestones)]
        if len(ms) != len(children) - 1:
            raise ValueError(
                f"SequentialLR needs one milestone fewer than schedulers: got {len(children)} "
                f"schedulers and {len(ms)} milestones"
            )
        if any(b <= a for a, b in itertools.pairwise(ms)):
            raise ValueError(f"milestones must be strictly increasing, got {ms}")
        last_epoch = _int("last_epoch", last_epoch, -1)
        for i, g in enumerate(optimizer.param_groups):
            if "initial_lr" not in g:
                raise ValueError(f"param_groups[{i}] has no 'initial_lr'")
        self._schedulers = children
        self._milestones = ms
        self.optimizer = optimizer
        self.last_epoch = last_epoch + 1
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        for s in children:
            s._undo()
        first = children[bisect_right(ms, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()
        self._snapshot()

    def _undo(self) -> None:
        for s in self._schedulers:
            s._undo()

    def _initial_step(self) -> None:
        self._restart()

    def _restart(self) -> None:
        for g, b in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = b
        self.last_epoch = 0
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._restart()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:  # type: ignore[override]
        """Step the schedule in charge (or start the next one at its milestone)."""
        t = self.last_epoch + 1
        i = bisect_right(self._milestones, t)
        s = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == t:
            s._restart()
        else:
            s.step()
        self.last_epoch = t
        self._last_lr = s.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """``last_epoch``, ``_milestones``, ``_last_lr``, ``base_lrs`` and ``_schedulers``
        (the children's state dicts)."""
        return {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "_milestones": list(self._milestones),
            "_last_lr": list(self._last_lr),
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore this schedule and its children."""
        sd = _plain(dict(state_dict))
        children = sd["_schedulers"]
        if len(children) != len(self._schedulers):
            raise ValueError(
                f"state_dict has {len(children)} schedulers, this one {len(self._schedulers)}"
            )
        self.last_epoch = int(sd["last_epoch"])
        self._milestones = [int(m) for m in sd["_milestones"]]
        self._last_lr = list(sd["_last_lr"])
        self.base_lrs = list(sd.get("base_lrs", self.base_lrs))
        for s, child in zip(self._schedulers, children, strict=True):
            s.load_state_dict(child)


class ChainedScheduler(LRScheduler):
    """Steps several schedules together: their factors multiply.

    Each ``step()`` calls ``step()`` of every schedule in order; since the chainable
    schedules scale the current lr, the result is the product of their factors, e.g.
    ``ConstantLR`` + ``ExponentialLR`` gives ``base_lr * factor(t) * gamma ** t``.

    Args:
        schedulers: the schedules (not ``ReduceLROnPlateau``), all of one optimizer.
        optimizer: that optimizer (default: the first schedule's).
    """

    def __init__(
        self, schedulers: Sequence[LRScheduler], optimizer: _Optimizer | None = None
    ) -> None:
        if not isinstance(schedulers, Sequence) or isinstance(schedulers, (str, bytes)):
            raise TypeError("ChainedScheduler: schedulers must be a list of schedules")
        if not schedulers:
            raise ValueError("ChainedScheduler expects at least one scheduler, got none")
        if optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        _check_optimizer(optimizer)
        self._schedulers = _check_children("ChainedScheduler", optimizer, schedulers)
        self.optimizer = optimizer
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self._snapshot()

    def _undo(self) -> None:
        for s in self._schedulers:
            s._undo()

    def _initial_step(self) -> None:
        self._restart()

    def _restart(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        for s in self._schedulers:
            s.last_epoch = -1
            s._initial_step()
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:  # type: ignore[override]
        """Step every schedule, in order."""
        for s in self._schedulers:
            s.step()
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """``_last_lr`` and ``_schedulers`` (the children's state dicts)."""
        return {
            "_last_lr": list(self._last_lr),
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the children's states."""
        sd = _plain(dict(state_dict))
        children = sd["_schedulers"]
        if len(children) != len(self._schedulers):
            raise ValueError(
                f"state_dict has {len(children)} schedulers, this one {len(self._schedulers)}"
            )
        self._last_lr = list(sd["_last_lr"])
        for s, child in zip(self._schedulers, children, strict=True):
            s.load_state_dict(child)

    def __repr__(self) -> str:
        return f"ChainedScheduler({', '.join(repr(s) for s in self._schedulers)})"


# --------------------------------------------------------------------------- plateau


class ReduceLROnPlateau(LRScheduler):
    """Reduces the lr by ``factor`` when a metric has stopped improving.

    ``step(metric)``: the metric is better than ``best`` when (``mode="min"``)
    ``metric < best - threshold * |best|`` (``"rel"``) or ``metric < best - threshold``
    (``"abs"``); ``"max"`` mirrors it. After more than ``patience`` steps without
    improvement (not counting ``cooldown`` steps after a reduction), each group gets
    ``lr = max(lr * factor, min_lr)``, unless that changes it by no more than ``eps``.

    Unlike PyTorch, ``"rel"`` compares against ``|best|``: PyTorch's ``best * (1 -
    threshold)`` is *above* a negative best, so it takes a worse metric for an improvement
    (PyTorch issues 47513, 38622). For ``best >= 0`` both agree exactly.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` or ``"max"``. Default: ``"min"``.
        factor: ``new_lr = lr * factor``, in [0, 1). Default: 0.1.
        patience: steps without improvement tolerated, an int >= 0. Default: 10.
        threshold: the least significant improvement, >= 0. Default: 1e-4.
        threshold_mode: ``"rel"`` or ``"abs"``. Default: ``"rel"``.
        cooldown: steps to wait after a reduction, an int >= 0. Default: 0.
        min_lr: lower bound, a float or one per group, >= 0. Default: 0.
        eps: smallest change applied, >= 0. Default: 1e-8.
    """

    def __init__(
        self,
        optimizer: _Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if _is_real(factor) and factor >= 1.0:
            raise ValueError(f"factor must be < 1.0, got {factor}")
        self.factor = _real("factor", factor, 0.0, 1.0)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.patience = _int("patience", patience, 0)
        self.cooldown = _int("cooldown", cooldown, 0)
        self.threshold = _real("threshold", threshold, 0.0)
        self.eps = _real("eps", eps, 0.0)
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr: float | None = None
        else:
            self.default_min_lr = _real("min_lr", min_lr, 0.0)
        self.min_lrs = _per_group("min_lr", min_lr, n, 0.0)
        self.optimizer = optimizer
        self.mode = mode
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        """Whether the schedule is waiting after a reduction."""
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves significantly on ``best`` (see the class doc)."""
        thr = self.threshold
        if self.mode == "min":
            if math.isinf(best) or self.threshold_mode == "abs":
                return a < (best if math.isinf(best) else best - thr)
            return a < best * ((1.0 - thr) if best >= 0 else (1.0 + thr))
        if math.isinf(best) or self.threshold_mode == "abs":
            return a > (best if math.isinf(best) else best + thr)
        return a > best * ((thr + 1.0) if best >= 0 else (1.0 - thr))

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record ``metrics`` (a number) and reduce the lr if it has plateaued."""
        current = float(metrics)
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ValueError(
                    f"the optimizer has {len(self.optimizer.param_groups)} param groups but "
                    f"min_lr has {len(self.min_lrs)} values: set min_lrs"
                )
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        self.last_epoch = self.last_epoch + 1 if epoch is None else _int("epoch", epoch, 0)
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(self.optimizer.param_groups, self.min_lrs, strict=True):
                old = float(g["lr"])
                new = max(old * self.factor, lo)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def lr_at(self, steps: int | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Not available: the schedule depends on the metrics."""
        raise TypeError("ReduceLROnPlateau has no curve: its lr depends on the metrics")

    _plateau_keys = (
        "factor",
        "min_lrs",
        "default_min_lr",
        "patience",
        "cooldown",
        "eps",
        "last_epoch",
        "_last_lr",
        "best",
        "num_bad_epochs",
        "cooldown_counter",
        "mode",
        "threshold",
        "threshold_mode",
        "mode_worse",
    )

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's keys: the arguments, ``best``, ``num_bad_epochs``, ``cooldown_counter``,
        ``last_epoch``, ``_last_lr``, ``mode_worse``."""
        return {k: copy.deepcopy(_plain(getattr(self, k))) for k in self._plateau_keys}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`."""
        missing = [k for k in self._plateau_keys if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict is missing {missing}")
        for k in self._plateau_keys:
            setattr(self, k, copy.deepcopy(_plain(state_dict[k])))
        self.mode_worse = math.inf if self.mode == "min" else -math.inf


# --------------------------------------------------------------------------- curve


def curve(
    schedule: Callable[..., LRScheduler],
    steps: int | npt.ArrayLike,
    *,
    lr: float | Sequence[float] = 1.0,
    **kwargs: Any,
) -> npt.NDArray[np.float64]:
    """A schedule's lr over a range of steps, without an optimizer or a loop.

    The schedule is built on a private stand-in optimizer (one param group per ``lr``,
    with ``momentum`` so that momentum cycling works) and replayed with
    :meth:`LRScheduler.lr_at`.

    Args:
        schedule: a schedule class (given ``kwargs``) or any callable taking the optimizer
            and returning a schedule, e.g. ``functools.partial(warmup_cosine,
            warmup_steps=10, total_steps=100)``.
        steps: an int ``n`` (steps ``0 .. n-1``) or an array-like of steps.
        lr: the optimizer's lr; a list gives one param group per value.
        **kwargs: passed to ``schedule``.

    Returns:
        float64 array of shape ``(len(steps),)`` for a scalar ``lr``, or
        ``(len(steps), len(lr))``.

    >>> import fusedopt as fo
    >>> fo.lr_scheduler.curve(fo.lr_scheduler.StepLR, 5, lr=0.1, step_size=2)
    array([0.1  , 0.1  , 0.01 , 0.01 , 0.001])
    """
    scalar = not isinstance(lr, (list, tuple))
    lrs = _per_group("lr", lr, 1 if scalar else len(lr), 0.0)  # type: ignore[arg-type]
    if not lrs:
        raise ValueError("lr must hold at least one value")
    if _is_int(steps):
        n = _int("steps", steps, 0)
        steps = np.arange(n)
    groups = [{"params": [], "lr": v, "momentum": 0.0} for v in lrs]
    stand_in = _StandInOptimizer(groups, {"lr": lrs[0], "momentum": 0.0})
    sched = schedule(stand_in, **kwargs)
    if not isinstance(sched, LRScheduler):
        raise TypeError(f"schedule must return a schedule, got {type(sched).__name__}")
    out = sched.lr_at(steps)
    return out[..., 0] if scalar else out
