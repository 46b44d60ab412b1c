"""Gradient accumulation: ``MultiSteps`` (optax.MultiSteps on a fusedopt optimizer).

>>> import numpy as np, fusedopt as fo
>>> w = np.zeros(2)
>>> acc = fo.MultiSteps(fo.SGD([w], lr=1.0), every_k_steps=2)
>>> acc.step([np.array([1.0, 2.0])])      # accumulated: no step yet
False
>>> acc.step([np.array([3.0, 0.0])])      # steps with the mean, [2, 1]
True
>>> w
array([-2., -1.])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .low_precision import is_half
from .optimizer import Optimizer, ParamGroup

__all__ = ["MultiSteps"]


class MultiSteps:
    """Accumulates the mean of ``every_k_steps`` micro-batch grads, then steps.

    ``step(grads)`` adds the micro-batch's grads to a running mean (in place, one fused
    sweep: ``acc += (g - acc) / n``, as ``optax.MultiSteps``) and, on every k-th call,
    steps the inner optimizer with that mean and returns True; the other calls return
    False. Everything the inner optimizer does happens on real steps only: its
    ``max_grad_norm`` clips the mean (not each micro-batch), weight decay and the step
    count advance once per window, and a schedule stepped after each real step sees real
    steps (drive it from ``multi.optimizer``).

    With the inner optimizer's ``skip_nonfinite`` on, a micro-batch with an inf or NaN
    grad spoils its whole window: at the window's end nothing is stepped (the inner
    ``skipped_steps`` counts it), and the next window starts afresh. The check is part of
    the accumulation sweep.

    Args:
        optimizer: the fusedopt optimizer to step with the mean.
        every_k_steps: micro-batches per real step (>= 1; 1 steps every call).

    Attributes:
        optimizer: the inner optimizer.
        every_k_steps: as given.
        mini_step: micro-batches accumulated in the current window (0 .. k-1).
        gradient_step: real steps taken (optax's ``gradient_step``).

    ``state_dict()`` holds the inner optimizer's state dict, the counters and the
    accumulators: a resumed run continues bit-identically, mid-window too.
    """

    optimizer: Optimizer
    every_k_steps: int
    mini_step: int
    gradient_step: int
    _acc: list[np.ndarray]
    _window_bad: bool

    def __init__(self, optimizer: Optimizer, every_k_steps: int) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a fusedopt optimizer, got {type(optimizer).__name__}"
            )
        if isinstance(every_k_steps, bool) or not isinstance(every_k_steps, numbers.Integral):
            raise TypeError(f"every_k_steps must be an int, got {type(every_k_steps).__name__}")
        if every_k_steps < 1:
            raise ValueError(f"every_k_steps must be >= 1, got {every_k_steps}")
        for i, p in enumerate(optimizer._params):
            if is_half(p.dtype):  # a mean of k grads would be rounded k times in half precision
                raise TypeError(
                    f"params[{i}] is {p.dtype}: MultiSteps accumulates float32 and float64 "
                    "parameters' grads (sum half-precision micro-batch grads in float32 "
                    "yourself, or use float32 parameters)"
                )
        self.optimizer = optimizer
        self.every_k_steps = int(every_k_steps)
        self.mini_step = 0
        self.gradient_step = 0
        self._window_bad = False
        self._acc = self._new_accumulators()

    def _new_accumulators(self) -> list[np.ndarray]:
        # laid out as the parameters (the fused sweep walks both in one order)
        return [np.zeros_like(p, order="K") for p in self.optimizer._params]

    @property
    def param_groups(self) -> list[ParamGroup]:
        """The inner optimizer's param groups."""
        return self.optimizer.param_groups

    @property
    def last_grad_norm(self) -> float | None:
        """The inner optimizer's ``last_grad_norm``: the norm of the last window's mean."""
        return self.optimizer.last_grad_norm

    def step(self, grads: Sequence[np.ndarray]) -> bool:
        """Accumulates ``grads`` (one array per parameter); on every k-th call steps the inner
        optimizer with the mean and returns True. Bad grads raise before anything changes."""
        opt = self.optimizer
        with opt.locked():
            if len(self._acc) != len(opt._params):  # a param group was added
                if self.mini_step:
                    raise ValueError("a param group was added in the middle of a window")
                self._acc = self._new_accumulators()
            n = self.mini_step + 1
            if opt.backend == "fused":
                finite = opt._plan.accumulate(self._acc, grads, float(n))
            else:
                checked = opt._plan.checked_grads(grads)
                arrays: list[np.ndarray] = []
                for i, g in enumerate(checked):
                    if g is None:  # as the fused accumulate says it
                        raise TypeError(f"grads[{i}] must be a numpy.ndarray, got NoneType")
                    arrays.append(g)
                finite = opt._plan.all_finite(arrays)
                with np.errstate(all="ignore"):
                    for a, g in zip(self._acc, arrays, strict=True):
                        if n == 1:
                            np.copyto(a, g)
                        else:
                            a += (g - a) / a.dtype.type(n)
            self._window_bad |= not finite
            if n < self.every_k_steps:
                self.mini_step = n
                return False
            self.mini_step = 0
            spoiled, self._window_bad = self._window_bad and opt.skip_nonfinite, False
            if spoiled:
                opt.skipped_steps += 1
                return False
            opt.step(self._acc)
            self.gradient_step += 1
            return True

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict, the counters and copies of the accumulators."""
        with self.optimizer.locked():
            return {
                "optimizer": self.optimizer.state_dict(),
                "every_k_steps": self.every_k_steps,
                "mini_step": self.mini_step,
                "gradient_step": self.gradient_step,
                "window_bad": self._window_bad,
                "accumulators": [a.copy(order="K") for a in self._acc],
            }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict`; every check runs before anything changes."""
        opt = self.optimizer
        with opt.locked():
            if not isinstance(state_dict, Mapping) or "optimizer" not in state_dict:
                raise TypeError("state_dict must be a dict from MultiSteps.state_dict()")
            k = int(state_dict["every_k_steps"])
            if k != self.every_k_steps:
                raise ValueError(
                    f"the state dict accumulates every {k} steps, this MultiSteps every "
                    f"{self.every_k_steps}"
                )
            mini = int(state_dict["mini_step"])
            if not 0 <= mini < k:
                raise ValueError(f"mini_step {mini} is out of range for every_k_steps={k}")
            gradient_step = int(state_dict["gradient_step"])
            accs = list(state_dict["accumulators"])
            if len(accs) != len(opt._params):
                raise ValueError(
                    f"the state dict has {len(accs)} accumulators, the optimizer "
                    f"{len(opt._params)} parameters"
                )
            new = self._new_accumulators()
            for i, (a, saved) in enumerate(zip(new, accs, strict=True)):
                v = np.asarray(saved)
                if v.shape != a.shape or v.dtype != a.dtype:
                    raise ValueError(
                        f"accumulators[{i}] has shape {v.shape} and dtype {v.dtype}, "
                        f"params[{i}] {a.shape} and {a.dtype}"
                    )
                a[...] = v
            opt.load_state_dict(state_dict["optimizer"])  # checks all, then changes
            self._acc = new
            self.mini_step = mini
            self.gradient_step = gradient_step
            self._window_bad = bool(state_dict.get("window_bad", False))

    def __repr__(self) -> str:
        return (
            f"MultiSteps(every_k_steps={self.every_k_steps}, mini_step={self.mini_step}, "
            f"gradient_step={self.gradient_step}, optimizer={type(self.optimizer).__name__})"
        )
