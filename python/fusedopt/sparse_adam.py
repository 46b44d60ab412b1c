"""SparseAdam (torch.optim.SparseAdam) and its row-sparse grads (:class:`RowGrad`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core, reference
from ._memory import spread_full_like
from .optimizer import (
    BACKEND_DOC,
    CLIP_DOC,
    MAXIMIZE_DOC,
    PARAMS_DOC,
    Optimizer,
    ParamGroup,
    Params,
    StateDType,
)
from .reference.sparse_adam import coalesce_rows
from .rules import BETAS, FLAG, NONNEGATIVE, hyper_table

__all__ = ["RowGrad", "SparseAdam"]

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


class RowGrad:
    """A row-sparse gradient: ``rows[k]`` is the gradient of row ``indices[k]`` of a
    parameter, every other row's gradient is zero (torch's sparse COO grad of an
    ``nn.Embedding(sparse=True)``: one sparse dimension, the rest dense).

    Repeated indices are summed, as ``torch.Tensor.coalesce()`` sums them.

    Args:
        indices: a 1-D array-like of integers, each in ``[0, param.shape[0])``.
        rows: an array of shape ``(len(indices),) + param.shape[1:]`` and the parameter's
            dtype. Neither is copied nor ever written.

    >>> import numpy as np, fusedopt as fo
    >>> g = fo.RowGrad([2, 0, 2], np.ones((3, 2), np.float32))
    >>> g.to_dense(4)
    array([[1., 1.],
           [0., 0.],
           [2., 2.],
           [0., 0.]], dtype=float32)
    """

    __slots__ = ("_indices", "_rows")

    def __init__(self, indices: npt.ArrayLike, rows: npt.ArrayLike) -> None:
        idx = np.asarray(indices)
        if idx.size == 0 and idx.dtype.kind == "f":  # [] reads as float64
            idx = idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"RowGrad indices must be integers, got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"RowGrad indices must be 1-D, got shape {idx.shape}")
        r = np.asarray(rows)
        if r.ndim < 1 or r.shape[0] != idx.shape[0]:
            raise ValueError(
                f"RowGrad rows must have one row per index: {idx.shape[0]} indices, "
                f"rows of shape {r.shape}"
            )
        self._indices = idx
        self._rows = r

    @property
    def indices(self) -> np.ndarray:
        """The row indices (1-D, integer)."""
        return self._indices

    @property
    def rows(self) -> np.ndarray:
        """The rows: ``rows[k]`` belongs to row ``indices[k]``."""
        return self._rows

    def to_dense(self, n_rows: int) -> np.ndarray:
        """The dense gradient of a parameter with ``n_rows`` rows (repeats summed)."""
        if not isinstance(n_rows, numbers.Integral) or n_rows < 0:
            raise ValueError(f"n_rows must be an int >= 0, got {n_rows!r}")
        out = np.zeros((int(n_rows), *self._rows.shape[1:]), self._rows.dtype)
        np.add.at(out, self._indices, self._rows)
        return out

    def __repr__(self) -> str:
        shape, dtype = self._rows.shape[1:], self._rows.dtype
        return f"RowGrad({len(self._indices)} rows of shape {shape}, {dtype})"


class _Coalesced:
    """A checked, coalesced RowGrad: strictly increasing int64 ``indices`` and ``values``."""

    __slots__ = ("indices", "values")

    def __init__(self, indices: np.ndarray, values: np.ndarray) -> None:
        self.indices = indices
        self.values = values


class SparseAdam(Optimizer):
    __doc__ = f"""SparseAdam: Adam on the rows a row-sparse grad touches (torch.optim.SparseAdam).

    Each grad is a :class:`RowGrad`; rows that it does not touch keep their parameter
    values and their moments (a "masked" Adam: unlike Adam, the moments of untouched rows
    do not decay). For a parameter with grad rows ``g`` at rows ``R`` (coalesced: repeated
    indices summed), at its t-th step::

        if maximize: g = -g
        m[R] = m[R] + (1 - beta1) * (g - m[R])
        v[R] = v[R] + (1 - beta2) * (g^2 - v[R])
        p[R] = p[R] - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m[R] / (sqrt(v[R]) + eps)

    computed operation for operation as torch's ``_functional.sparse_adam`` (eps is added
    to ``sqrt(v)`` before the bias correction of the step size). ``t`` counts every step
    with a grad, an empty one (no indices) included, as torch counts it.

    Args:
        {PARAMS_DOC}
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square
            (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}
            The norm of a RowGrad is that of its coalesced rows (what
            ``torch.nn.utils.clip_grad_norm_`` computes for a sparse grad).

    Grads: ``step(grads)`` takes one :class:`RowGrad` (or None: skipped) per parameter;
    a dense array is a ``TypeError`` (use :class:`Adam`). Parameters need at least one
    dimension and must be C-contiguous (rows are updated in place).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (the parameter's shape).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> emb = np.zeros((1000, 4), np.float32)
        >>> opt = fo.SparseAdam([emb], lr=0.1)
        >>> opt.step([fo.RowGrad([3, 7], np.ones((2, 4), np.float32))])
        >>> np.round(emb[3], 4), emb[0]   # only rows 3 and 7 move, by about lr
        (array([-0.1, -0.1, -0.1, -0.1], dtype=float32), array([0., 0., 0., 0.], dtype=float32))
    """

    kernel = None
    half_params = False
    steps_any_array = False
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step",)
    hyperparameters = hyper_table(lr=NONNEGATIVE, betas=BETAS, eps=NONNEGATIVE, maximize=FLAG)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
        *,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)

    # ------------------------------------------------------------------ checks
    def _check_grads(self, grads: Any, groups: list[ParamGroup]) -> list[Any]:
        """Every RowGrad checked against its parameter and coalesced (None kept), and
        every group's hyperparameters checked; nothing is written."""
        self._check_groups()
        if isinstance(grads, np.ndarray | RowGrad):
            raise TypeError(
                "grads must be a sequence with one RowGrad (or None) per parameter, "
                f"got a single {type(grads).__name__}"
            )
        if isinstance(grads, Mapping | str) or not isinstance(grads, Sequence | Iterator):
            raise TypeError(f"grads must be a sequence of RowGrads, got {type(grads).__name__}")
        grads = list(grads)
        if len(grads) != len(self._params):
            raise ValueError(
                f"expected {len(self._params)} grads (one per parameter), got {len(grads)}"
            )
        out: list[_Coalesced | None] = []
        for i, (p, g) in enumerate(zip(self._params, grads, strict=True)):
            if g is None:
                out.append(None)
                continue
            out.append(self._check_one(i, p, g))
        return out

    def _check_one(self, i: int, p: np.ndarray, g: Any) -> _Coalesced:
        where = f"grads[{i}]"
        if isinstance(g, np.ndarray):
            raise TypeError(
                f"{where} is a dense numpy.ndarray: SparseAdam takes row-sparse grads; pass a "
                "fusedopt.RowGrad(indices, rows) (or use Adam for dense grads)"
            )
        if not isinstance(g, RowGrad):
            raise TypeError(f"{where} must be a fusedopt.RowGrad or None, got {type(g).__name__}")
        if p.ndim == 0:
            raise ValueError(
                f"params[{i}] is 0-d: SparseAdam updates rows of arrays of 1+ dimensions"
            )
        if not p.flags.c_contiguous:
            raise ValueError(
                f"params[{i}] must be C-contiguous for SparseAdam (its rows are updated in place)"
            )
        idx, rows = g.indices, g.rows
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{where}.indices must be integers, got dtype {idx.dtype}")
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0:
                raise ValueError(
                    f"{where}.indices holds {lo}: indices must be >= 0 (no negative indexing)"
                )
            if hi >= p.shape[0]:
                raise ValueError(
                    f"{where}.indices holds {hi}, but params[{i}] has {p.shape[0]} rows"
                )
        want = (idx.shape[0], *p.shape[1:])
        if rows.shape != want:
            raise ValueError(
                f"{where}.rows has shape {rows.shape}; params[{i}] of shape {p.shape} "
                f"with {idx.shape[0]} indices needs {want}"
            )
        if rows.dtype != p.dtype:
            raise TypeError(f"{where}.rows has dtype {rows.dtype}, params[{i}] {p.dtype}")
        for other, what in [(p, f"params[{i}]")] + [
            (a, f"the {name} of params[{i}]") for name, a in self._state[i].items() if a.ndim
        ]:
            if np.may_share_memory(rows, other):
                raise ValueError(f"{where}.rows shares memory with {what}")
        if self.backend == "fused" and p.dtype in _NATIVE:
            u, values = _core.coalesce_rows(
                idx.astype(np.int64, copy=False), np.ascontiguousarray(rows), p.shape[0], where
            )
        else:
            u, values = coalesce_rows(idx, rows)
        return _Coalesced(u, values)

    def _norm_arrays(self, checked: list[Any]) -> list[np.ndarray]:
        return [g.values for g in checked if g is not None]

    # -------------------------------------------------------------------- step
    def _custom_step(self, grads: list[Any], scale: float) -> None:
        i = 0
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            maximize = bool(group["maximize"])
            for p in group["params"]:
                g = grads[i]
                if g is not None:
                    st = self._state[i]
                    for slot, name in enumerate(self.state_names):
                        if name not in st:
                            st[name] = spread_full_like(p, 0.0, slot)
                    if "step" not in st:
                        st["step"] = np.array(0.0)
                    if self.backend == "fused" and p.dtype in _NATIVE:
                        st["step"] += 1
                        if g.values.size:
                            t = float(st["step"])
                            step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                            _core.sparse_adam_rows(
                                p,
                                st["exp_avg"],
                                st["exp_avg_sq"],
                                g.indices,
                                g.values,
                                step_size,
                                beta1,
                                beta2,
                                eps,
                                scale,
                                maximize,
                                f"params[{i}]",
                            )
                    else:
                        values = g.values if scale == 1.0 else g.values * p.dtype.type(scale)
                        reference.sparse_adam(
                            p,
                            RowGrad(g.indices, values),
                            st,
                            lr=lr,
                            betas=(beta1, beta2),
                            eps=eps,
                            maximize=maximize,
                        )
                i += 1
