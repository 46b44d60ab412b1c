"""The base class of the schedules and the argument checks they share.

:class:`LRScheduler` does PyTorch's bookkeeping (``initial_lr``, ``base_lrs``,
``last_epoch``, the constructor's first step, ``state_dict``) and fusedopt's
:meth:`~LRScheduler.lr_at`; the schedules implement a closed form and, when chainable,
PyTorch's recursive form (see :mod:`fusedopt.lr_scheduler`).
"""

from __future__ import annotations

import copy
import math
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["LRScheduler"]


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
    # what lr_at replays from: (state dict, groups, defaults); None after a load
    _start: tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]] | None

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
        if self._start is None:
            self._snapshot_loaded()
        assert self._start is not None
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
        self._start = None  # lr_at replays the loaded schedule (_snapshot_loaded)

    def _snapshot_loaded(self) -> None:
        """After a load, :meth:`lr_at` replays the loaded schedule from its own start: a
        stand-in copy restarted from ``base_lrs`` (the arguments are the loaded ones)."""
        groups = [
            {k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups
        ]
        # ChainedScheduler has no base_lrs of its own: its children start from initial_lr
        bases = getattr(self, "base_lrs", None) or [g["initial_lr"] for g in groups]
        if len(groups) != len(bases):
            self._check_groups()  # a schedule built for other groups: says so
        for g, base in zip(groups, bases, strict=True):
            g["lr"] = g["initial_lr"] = base
        defaults = dict(getattr(self.optimizer, "defaults", {}))
        stand_in = _StandInOptimizer(groups, defaults)
        clone = copy.deepcopy(self, {id(self.optimizer): stand_in})
        clone.last_epoch = -1
        clone._initial_step()
        self._start = (copy.deepcopy(clone.state_dict()), copy.deepcopy(groups), defaults)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={getattr(self, 'last_epoch', None)})"
