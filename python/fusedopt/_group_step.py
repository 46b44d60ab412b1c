"""The base of optimizers whose step couples tensors through sums (Prodigy's d over every
group, hypergradient descent's learning rate per group).

The fused kernel does the whole step in one native call (its sums pass, the combine of
the sums into the group values, the update; ``cpp/include/fusedopt/kernel.hpp``), and
writes the new group values (``group["lr"]``, ``group["d"]``, ...) back to the param
groups. The NumPy reference of such an algorithm takes every parameter at once, so the
``backend="numpy"`` step here calls ``reference_group_step(groups, grads, states)``
instead of the base class's per-tensor ``reference_step`` (the base class's
``_reference_update`` hook), with the same checks, clip and non-finite guard. The group
values the kernel reads (``extra_hyperparameters``) are checked at every step of both
backends, before anything is written (the base class's ``_check_step``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .optimizer import Optimizer

__all__ = ["GroupStepOptimizer"]


def _no_per_tensor_step(*args: Any, **kwargs: Any) -> None:
    raise TypeError("this algorithm steps every parameter at once: use reference_group_step")


class GroupStepOptimizer(Optimizer):
    """An optimizer whose fused kernel declares group values (see the module docstring)."""

    #: The NumPy reference: ``reference_group_step(groups, grads, states)`` steps every
    #: parameter in place and updates the groups' values.
    reference_group_step: ClassVar[Callable[..., None]]
    reference_step = staticmethod(_no_per_tensor_step)

    def _reference_update(self, groups: list[dict[str, Any]], checked: list[Any]) -> None:
        type(self).reference_group_step(groups, checked, self._state)
