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
``CyclicLR``, ``OneCycleLR``, :class:`WarmupDecayLR` and :class:`WarmupStableDecayLR` are pure
closed forms, as in PyTorch (they ignore the group's current lr); ``MultiplicativeLR`` is
recursive by definition.

Beyond PyTorch
--------------
* :func:`warmup_cosine`, :func:`warmup_linear`, :func:`warmup_constant` (all
  :class:`WarmupDecayLR`): linear warm-up then cosine / linear / no decay.
* :func:`warmup_stable_decay` (:class:`WarmupStableDecayLR`, WSD): linear warm-up, the peak
  lr, then a "1-sqrt", linear or cosine cooldown over the last ``decay_steps``.
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

from fusedopt.lr_scheduler.base import LRScheduler
from fusedopt.lr_scheduler.composite import ChainedScheduler, SequentialLR
from fusedopt.lr_scheduler.curves import curve
from fusedopt.lr_scheduler.cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from fusedopt.lr_scheduler.decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from fusedopt.lr_scheduler.plateau import ReduceLROnPlateau
from fusedopt.lr_scheduler.recipes import (
    WarmupDecayLR,
    WarmupStableDecayLR,
    warmup_constant,
    warmup_cosine,
    warmup_linear,
    warmup_stable_decay,
)

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
    "WarmupStableDecayLR",
    "curve",
    "warmup_constant",
    "warmup_cosine",
    "warmup_linear",
    "warmup_stable_decay",
]

# Every public name reports the module users import it from (as torch's classes do):
# reprs, docs and pickles say ``fusedopt.lr_scheduler.StepLR``, not the file that
# defines it, so a schedule pickled before the package was split still loads.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
