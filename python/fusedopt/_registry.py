"""Which optimizers fusedopt offers: the ``Optimizer`` subclasses in ``fusedopt.__all__``.

The command line (its ``--optimizer`` choices) and the benchmark engine (what it times)
both ask this module, so that an optimizer added to the package appears in both without
a list to keep in step. It is read at each call, not cached.
"""

from __future__ import annotations

import fusedopt

__all__ = ["optimizer_classes"]


def optimizer_classes(
    *, any_array: bool = False, fused_kernel: bool = False
) -> dict[str, type[fusedopt.Optimizer]]:
    """The exported optimizer classes by exported name, in the order of ``__all__``.

    ``any_array``: only those that step any array from a dense grad with ``step(grads)``
    (``Optimizer.steps_any_array``: not LBFGS, Muon or SparseAdam), as a training loop
    drives them; ``fused_kernel``: only those stepped by one element-wise kernel (what the
    benchmark engine's traffic model describes).

    >>> import fusedopt._registry as registry
    >>> registry.optimizer_classes()["Adam"] is fusedopt.Adam
    True
    """
    base = fusedopt.Optimizer
    out: dict[str, type[fusedopt.Optimizer]] = {}
    for name in fusedopt.__all__:
        obj = getattr(fusedopt, name, None)
        if not (isinstance(obj, type) and issubclass(obj, base) and obj is not base):
            continue
        if (any_array and not obj.steps_any_array) or (fused_kernel and obj.kernel is None):
            continue
        out[name] = obj
    return out
