"""torch's composite schedules: ``SequentialLR`` (one after the other) and
``ChainedScheduler`` (all at once, their factors multiplied).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _check_optimizer,
    _int,
    _Optimizer,
    _plain,
)
from fusedopt.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = ["ChainedScheduler", "SequentialLR"]


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
        self._start = None  # lr_at replays the loaded schedule


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
        self._start = None  # lr_at replays the loaded schedule

    def __repr__(self) -> str:
        return f"ChainedScheduler({', '.join(repr(s) for s in self._schedulers)})"
