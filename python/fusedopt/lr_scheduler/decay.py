"""torch's decaying schedules: the lambda family and the chainable ones.

``LambdaLR`` and ``MultiplicativeLR`` scale the lr by a user function; ``StepLR``,
``MultiStepLR``, ``ConstantLR``, ``LinearLR``, ``ExponentialLR``, ``PolynomialLR`` and
``CosineAnnealingLR`` are chainable: closed form while alone, PyTorch's recursive form
when composed or edited by hand (see :mod:`fusedopt.lr_scheduler`).
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _callable_state,
    _check_optimizer,
    _int,
    _Optimizer,
    _plain,
    _real,
)

__all__ = [
    "ConstantLR",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "PolynomialLR",
    "StepLR",
]


# --------------------------------------------------------------------------- lambda family


def _lambdas(name: str, lr_lambda: Any, n: int) -> list[Callable[[int], float]]:
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
        fns = list(lr_lambda)
    else:
        fns = [lr_lambda] * n
    for i, fn in enumerate(fns):
        if not callable(fn):  # torch's words, with the group's index when a list was given
            where = f"{name}[{i}]" if isinstance(lr_lambda, (list, tuple)) else name
            raise TypeError(f"{where} should be a function, but got {type(fn).__name__}")
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
