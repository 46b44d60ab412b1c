"""Warm-up recipes beyond PyTorch: linear warm-up, then cosine, linear or no decay.

:func:`warmup_cosine`, :func:`warmup_linear` and :func:`warmup_constant` build a
:class:`WarmupDecayLR`, the values of ``transformers``' schedules of the same names.
:func:`warmup_stable_decay` builds a :class:`WarmupStableDecayLR` (WSD: warm-up, a long
constant stretch, then a short cooldown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _check_last_epoch,
    _check_optimizer,
    _int,
    _Optimizer,
    _per_group,
    _real,
)

__all__ = [
    "WarmupDecayLR",
    "WarmupStableDecayLR",
    "warmup_constant",
    "warmup_cosine",
    "warmup_linear",
    "warmup_stable_decay",
]


# --------------------------------------------------------------------------- warm-up


def _check_min_below_peak(optimizer: _Optimizer, min_lrs: Sequence[float]) -> None:
    """ValueError if a group's ``min_lr`` exceeds its peak lr (its ``initial_lr``)."""
    for i, g in enumerate(optimizer.param_groups):
        peak = g.get("initial_lr", g["lr"])
        if min_lrs[i] > peak:
            raise ValueError(f"min_lr ({min_lrs[i]}) exceeds the lr of group {i} ({peak})")


def _warmup_lrs(base_lrs: Sequence[float], start_factor: float, t: int, w: int) -> list[float]:
    """The linear warm-up at step ``t < w``: from ``start_factor * base`` to ``base``."""
    return [b * (start_factor + (1.0 - start_factor) * t / w) for b in base_lrs]


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
        _check_min_below_peak(optimizer, self.min_lrs)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        w = self.warmup_steps
        if t < w:
            return _warmup_lrs(self.base_lrs, self.start_factor, t, w)
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


# --------------------------------------------------------------------------- WSD

DecayShape = Literal["1-sqrt", "linear", "cosine"]
_DECAY_SHAPES = ("1-sqrt", "linear", "cosine")


class WarmupStableDecayLR(LRScheduler):
    """Warm-up, stable, decay (WSD): linear warm-up, the peak lr, then a short cooldown.

    The schedule of Hu et al. 2024 (MiniCPM) and Hägele et al. 2024 ("Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations"), not in PyTorch. With
    ``W = warmup_steps``, ``T = total_steps``, ``D = decay_steps``, ``s = start_factor``
    and, in the cooldown, ``p = min(t - (T - D), D) / D`` (0 at its first step, 1 at
    ``T``)::

        t < W:                      lr_t = base_lr * (s + (1 - s) * t / W)
        W <= t < T - D:             lr_t = base_lr
        t >= T - D, "1-sqrt":       lr_t = min_lr + (base_lr - min_lr) * (1 - sqrt(p))
        t >= T - D, "linear":       lr_t = min_lr + (base_lr - min_lr) * (1 - p)
        t >= T - D, "cosine":       lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2

    The lr is ``min_lr`` at ``T`` and stays there. ``"1-sqrt"`` is the cooldown Hägele et
    al. found best: it leaves the peak quickly, then lingers near ``min_lr``. The stable
    stretch can be continued and cooled down from any checkpoint, which is WSD's point.
    Closed form (not chainable).

    Args:
        optimizer: the optimizer; each group's lr is its peak ``base_lr``.
        warmup_steps: steps of the warm-up, an int >= 0.
        total_steps: the step where the cooldown ends, an int >= ``warmup_steps +
            decay_steps``.
        decay_steps: steps of the cooldown, an int >= 1.
        decay_shape: ``"1-sqrt"`` (default), ``"linear"`` or ``"cosine"``.
        min_lr: the lr at and after ``total_steps``, a float or one per group, in
            [0, base_lr]. Default: 0.
        start_factor: the warm-up starts at ``start_factor * base_lr``, in [0, 1]. Default: 0.
        last_epoch: -1 to start.
    """

    _state_keys = (
        "warmup_steps",
        "total_steps",
        "decay_steps",
        "decay_shape",
        "min_lrs",
        "start_factor",
    )

    def __init__(
        self,
        optimizer: _Optimizer,
        warmup_steps: int,
        total_steps: int,
        decay_steps: int,
        decay_shape: DecayShape = "1-sqrt",
        min_lr: float | Sequence[float] = 0.0,
        start_factor: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        self.decay_steps = _int("decay_steps", decay_steps, 1)
        self.total_steps = _int("total_steps", total_steps, 1)
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps + decay_steps ({self.warmup_steps} + {self.decay_steps}) must "
                f"be <= total_steps ({self.total_steps})"
            )
        if not isinstance(decay_shape, str) or decay_shape not in _DECAY_SHAPES:
            raise ValueError(
                f"decay_shape must be '1-sqrt', 'linear' or 'cosine', got {decay_shape!r}"
            )
        self.decay_shape = decay_shape
        self.min_lrs = _per_group("min_lr", min_lr, n, 0.0)
        self.start_factor = _real("start_factor", start_factor, 0.0, 1.0)
        last_epoch = _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        _check_min_below_peak(optimizer, self.min_lrs)
        super().__init__(optimizer, last_epoch)

    def _closed_lr(self, t: int) -> list[float]:
        w = self.warmup_steps
        if t < w:
            return _warmup_lrs(self.base_lrs, self.start_factor, t, w)
        start = self.total_steps - self.decay_steps
        if t < start:
            return list(self.base_lrs)
        p = min(t - start, self.decay_steps) / self.decay_steps
        if self.decay_shape == "1-sqrt":
            f = 1.0 - math.sqrt(p)
        elif self.decay_shape == "linear":
            f = 1.0 - p
        else:
            f = (1.0 + math.cos(math.pi * p)) / 2
        return [m + (b - m) * f for b, m in zip(self.base_lrs, self.min_lrs, strict=True)]


def warmup_stable_decay(
    optimizer: _Optimizer,
    warmup_steps: int,
    total_steps: int,
    decay_steps: int,
    decay_shape: DecayShape = "1-sqrt",
    min_lr: float | Sequence[float] = 0.0,
    start_factor: float = 0.0,
    last_epoch: int = -1,
) -> WarmupStableDecayLR:
    """Warm-up, stable, decay (WSD): linear warm-up over ``warmup_steps``, the peak lr,
    then a cooldown over the last ``decay_steps`` before ``total_steps`` to ``min_lr``.

    With ``p`` the fraction of the cooldown done, ``"1-sqrt"`` (Hägele et al. 2024) gives
    ``lr_t = min_lr + (base_lr - min_lr) * (1 - sqrt(p))``; ``"linear"`` and ``"cosine"``
    the usual shapes. See :class:`WarmupStableDecayLR`.

    >>> import numpy as np, fusedopt as fo
    >>> opt = fo.AdamW([np.zeros(2)], lr=1e-3)
    >>> sched = fo.lr_scheduler.warmup_stable_decay(opt, 10, total_steps=100, decay_steps=20)
    >>> fo.lr_scheduler.curve(
    ...     fo.lr_scheduler.warmup_stable_decay, [0, 5, 10, 79, 80, 85, 100],
    ...     warmup_steps=10, total_steps=100, decay_steps=20,
    ... ).round(4).tolist()
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    return WarmupStableDecayLR(
        optimizer,
        warmup_steps,
        total_steps,
        decay_steps,
        decay_shape,
        min_lr,
        start_factor,
        last_epoch,
    )
