"""A schedule's learning rates as a NumPy array, without an optimizer or a loop.

:func:`curve` builds the schedule on a private stand-in optimizer and replays it with
:meth:`LRScheduler.lr_at <fusedopt.lr_scheduler.LRScheduler.lr_at>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _int,
    _is_int,
    _per_group,
    _StandInOptimizer,
)

__all__ = ["curve"]


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
