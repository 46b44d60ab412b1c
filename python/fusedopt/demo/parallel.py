"""Data-parallel training of the demo MLP over MPI ranks (``fusedopt train --distributed``).

:class:`DataParallel` wraps a model so that :func:`fusedopt.demo.fit` trains it
data-parallel without a change: every rank draws the same batches (same seed), computes
the loss and grads of its own slice of each batch, and hands those grads to a
:class:`fusedopt.distributed.ZeroRedundancyOptimizer`, which averages them over the ranks.
The slices are weighted so that the average is the whole batch's mean grad even when the
batch does not split evenly, and the loss returned is the whole batch's (the same on
every rank, so every rank makes the same divergence decision).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DataParallel"]


class DataParallel:
    """``model`` trained by every rank of ``comm`` on its slice of each batch.

    Args:
        model: anything with ``params``, ``loss_and_grads(X, y)`` (mean loss and mean
            grads), ``loss`` and ``accuracy`` (the demo's :class:`~fusedopt.demo.MLP`).
        comm: an mpi4py intra-communicator.

    Its ``loss_and_grads(X, y)`` returns the loss of the whole batch and this rank's
    grads scaled by ``n_rank * size / n``: their mean over the ranks (what the ZeRO
    optimizer steps with) is the whole batch's mean grad.
    """

    def __init__(self, model: Any, comm: Any) -> None:
        self.model = model
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.params = model.params

    def loss_and_grads(
        self, X: NDArray[np.floating], y: NDArray[np.integer]
    ) -> tuple[float, list[NDArray[np.floating]]]:
        """Loss of the whole batch, and this rank's weighted grads of its slice."""
        n = X.shape[0]
        lo, hi = n * self.rank // self.size, n * (self.rank + 1) // self.size
        if hi > lo:
            loss, grads = self.model.loss_and_grads(X[lo:hi], y[lo:hi])
        else:  # a batch smaller than the number of ranks: this rank has no rows
            loss, grads = 0.0, [np.zeros_like(p) for p in self.params]
        weight = (hi - lo) * self.size / n
        if weight != 1.0:
            grads = [g * g.dtype.type(weight) for g in grads]
        total = self.comm.allreduce(loss * (hi - lo) / n)
        return float(total), grads

    def loss(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        return float(self.model.loss(X, y))

    def accuracy(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        return float(self.model.accuracy(X, y))

    @property
    def n_params(self) -> int:
        return int(self.model.n_params)
