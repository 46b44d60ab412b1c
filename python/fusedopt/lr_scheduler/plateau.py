"""torch's ``ReduceLROnPlateau``: the lr falls when a metric stops improving."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, SupportsFloat

import numpy as np
import numpy.typing as npt

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _check_optimizer,
    _int,
    _is_real,
    _Optimizer,
    _per_group,
    _plain,
    _real,
)

__all__ = ["ReduceLROnPlateau"]


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
        last_epoch = self.last_epoch + 1 if epoch is None else _int("epoch", epoch, 0)
        # the counters after this step, computed before anything changes
        best, bad, cooldown = self.best, self.num_bad_epochs + 1, self.cooldown_counter
        if self.is_better(current, best):
            best, bad = current, 0
        if cooldown > 0:
            cooldown, bad = cooldown - 1, 0
        reduce = bad > self.patience
        groups = self.optimizer.param_groups
        if reduce and len(groups) != len(self.min_lrs):
            # as torch: only a reduction reads min_lrs, so a param group added since
            # construction is an error at the first reduction, not before
            if self.default_min_lr is None:
                raise ValueError(
                    f"the optimizer has {len(groups)} param groups but min_lr has "
                    f"{len(self.min_lrs)} values (a param group was added?): set min_lrs "
                    "to one value per group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        self.last_epoch, self.best, self.num_bad_epochs = last_epoch, best, bad
        self.cooldown_counter = cooldown
        if reduce:
            for g, lo in zip(groups, self.min_lrs, strict=True):
                old = float(g["lr"])
                new = max(old * self.factor, lo)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in groups]

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
