"""Weight averaging: ``torch.optim.swa_utils`` on NumPy arrays.

:class:`AveragedParams` keeps running averages of a list of parameter arrays, as
``torch.optim.swa_utils.AveragedModel`` keeps those of a module's parameters: Stochastic
Weight Averaging (SWA, an equal-weight running mean, the default) or an exponential
moving average (EMA), or any averaging function of yours. :class:`SWALR` anneals each
param group's lr to a fixed SWA lr, value for value as PyTorch's.

>>> import numpy as np, fusedopt as fo
>>> w = np.zeros(3)
>>> opt = fo.SGD([w], lr=0.5)
>>> swa = fo.swa_utils.AveragedParams([w])
>>> for _ in range(4):
...     opt.step([np.ones(3)])
...     swa.update_parameters([w])
>>> swa.params[0]                   # the mean of -0.5, -1, -1.5, -2
array([-1.25, -1.25, -1.25])

The built-in averages are fused: one native call updates every float32 / float64 array,
in parallel and without the GIL (``get_ema_multi_avg_fn``, ``get_swa_multi_avg_fn`` and
the default); other floating dtypes (float16, bfloat16) are averaged with NumPy.

Differences from PyTorch (deliberate):

* Arrays instead of a module: ``AveragedParams(params)`` takes the list of arrays and
  ``update_parameters(params)`` the list of their current values, in the same order;
  a different count, shape or dtype is an error (PyTorch zips the parameters silently).
  ``use_buffers`` and ``update_bn`` have no meaning without a module and are left out;
  there is no ``device``.
* ``n_averaged`` is a Python int (PyTorch: a 0-d int64 tensor); the averaging functions
  receive it as an int.
* Passing both ``avg_fn`` and ``multi_avg_fn`` is a ``ValueError`` (PyTorch: AssertionError).
* ``SWALR``: ``anneal_epochs`` that is not an int is a ``TypeError`` (PyTorch: ValueError),
  and ``swa_lr`` must be finite and >= 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from . import _core
from .lr_scheduler.base import (
    LRScheduler,
    _check_last_epoch,
    _check_optimizer,
    _int,
    _Optimizer,
    _per_group,
)

__all__ = [
    "SWALR",
    "AveragedParams",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]

#: ``avg_fn(averaged_param, current_param, num_averaged) -> new average`` (one array).
AvgFn = Callable[[np.ndarray, np.ndarray, int], Any]
#: ``multi_avg_fn(averaged_params, current_params, num_averaged)``: updates in place.
MultiAvgFn = Callable[[list[np.ndarray], list[np.ndarray], int], None]

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------- checks


def _is_float_array(a: np.ndarray) -> bool:
    """float16/32/64 and ml_dtypes' bfloat16: the dtypes a parameter may have."""
    return a.dtype.kind == "f" or a.dtype.name == "bfloat16"


def _check_decay(decay: Any) -> float:
    if not isinstance(decay, numbers.Real) or isinstance(decay, bool | np.bool_):
        raise TypeError(f"decay must be a real number, got {type(decay).__name__}")
    d = float(decay)
    if not 0.0 <= d <= 1.0:  # NaN fails too
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )
    return d


def _check_pairs(averages: Sequence[np.ndarray], currents: Any) -> list[np.ndarray]:
    """The current arrays, checked against their averages (count, type, shape, dtype, and
    no current array sharing memory with an average); raises before anything is written."""
    if isinstance(currents, np.ndarray):
        raise TypeError("params must be a sequence of arrays, got a single numpy.ndarray")
    if isinstance(currents, Mapping | str) or not isinstance(currents, Sequence | Iterator):
        raise TypeError(f"params must be a sequence of arrays, got {type(currents).__name__}")
    cur = list(currents)
    if len(cur) != len(averages):
        raise ValueError(f"got {len(cur)} params, but {len(averages)} are averaged")
    for i, (a, c) in enumerate(zip(averages, cur, strict=True)):
        if not isinstance(c, np.ndarray):
            raise TypeError(f"params[{i}] must be a numpy.ndarray, got {type(c).__name__}")
        if c.shape != a.shape:
            raise ValueError(f"params[{i}] has shape {c.shape}, its average {a.shape}")
        if c.dtype != a.dtype:
            raise TypeError(f"params[{i}] has dtype {c.dtype}, its average {a.dtype}")
    _check_no_overlap(averages, cur)
    return cur


def _extent(a: np.ndarray) -> tuple[int, int]:
    """The bytes [lo, hi) the array's elements may occupy (numpy's byte_bounds)."""
    lo = hi = a.__array_interface__["data"][0]
    for n, st in zip(a.shape, a.strides, strict=True):
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


def _check_no_overlap(averages: Sequence[np.ndarray], currents: Sequence[np.ndarray]) -> None:
    """ValueError if an average shares memory with any other array of the call (one
    sorted sweep over the arrays' byte extents, as numpy.may_share_memory bounds them)."""
    spans = [(*_extent(a), i, True) for i, a in enumerate(averages) if a.size]
    spans += [(*_extent(c), i, False) for i, c in enumerate(currents) if c.size]
    spans.sort()
    reach_written: tuple[int, int, int, bool] | None = None
    reach_any: tuple[int, int, int, bool] | None = None
    for s in spans:
        other = None
        if reach_written is not None and s[0] < reach_written[1]:
            other = reach_written
        elif s[3] and reach_any is not None and s[0] < reach_any[1]:
            other = reach_any
        if other is not None:
            avg, second = (other, s) if other[3] else (s, other)
            if second[2] == avg[2]:
                what = "that parameter"
            else:
                what = ("the average of " if second[3] else "") + f"params[{second[2]}]"
            raise ValueError(
                f"the average of params[{avg[2]}] shares memory with {what}: "
                "each average must be an array of its own"
            )
        if s[3] and (reach_written is None or s[1] > reach_written[1]):
            reach_written = s
        if reach_any is None or s[1] > reach_any[1]:
            reach_any = s


def _native_pair(a: np.ndarray, c: np.ndarray) -> np.ndarray | None:
    """``c`` laid out as ``a`` if the native sweep can update ``a`` from it, else None."""
    if a.dtype not in _NATIVE or not a.flags.writeable or not a.flags.aligned:
        return None
    if a.flags.c_contiguous:
        return c if c.flags.c_contiguous and c.flags.aligned else np.ascontiguousarray(c)
    if a.flags.f_contiguous:
        return c if c.flags.f_contiguous and c.flags.aligned else np.asfortranarray(c)
    return None


def _fused(
    averages: Sequence[np.ndarray],
    currents: Sequence[np.ndarray],
    native: Callable[[list[np.ndarray], list[np.ndarray], float], None],
    fallback: Callable[[np.ndarray, np.ndarray], None],
    value: float,
) -> None:
    """Update every average: one native call for the float32/float64 contiguous ones,
    ``fallback(avg, cur)`` (NumPy, in place) for the rest. Checks everything first."""
    currents = _check_pairs(averages, currents)
    for i, a in enumerate(averages):
        if not isinstance(a, np.ndarray) or not _is_float_array(a):
            raise TypeError(f"the average of params[{i}] must be a floating-point numpy.ndarray")
        if not a.flags.writeable:
            raise ValueError(f"the average of params[{i}] is read-only")
    fast_a: list[np.ndarray] = []
    fast_c: list[np.ndarray] = []
    slow: list[tuple[np.ndarray, np.ndarray]] = []
    for a, c in zip(averages, currents, strict=True):
        c2 = _native_pair(a, c)
        if c2 is None:
            slow.append((a, c))
        else:
            fast_a.append(a)
            fast_c.append(c2)
    if fast_a:
        native(fast_a, fast_c, value)
    with np.errstate(all="ignore"):
        for a, c in slow:
            fallback(a, c)


def _lerp_numpy(a: np.ndarray, c: np.ndarray, weight: float) -> None:
    """torch.lerp's formula in the array's dtype (float16 / bfloat16 compute in float32,
    as torch's opmath does), written back into ``a``."""
    wide = np.float32 if a.dtype.itemsize < 4 else a.dtype.type
    x, y, w = a.astype(wide), c.astype(wide), wide(weight)
    out = x + w * (y - x) if abs(w) < 0.5 else y - (y - x) * (wide(1) - w)
    np.copyto(a, out, casting="unsafe")


def _lerp(averages: Sequence[np.ndarray], currents: Sequence[np.ndarray], weight: float) -> None:
    _fused(averages, currents, _core.lerp_arrays, lambda a, c: _lerp_numpy(a, c, weight), weight)


def _mean(averages: Sequence[np.ndarray], currents: Sequence[np.ndarray], count: int) -> None:
    def numpy_mean(a: np.ndarray, c: np.ndarray) -> None:
        np.copyto(a, a + (c - a) / a.dtype.type(count), casting="unsafe")

    _fused(averages, currents, _core.mean_arrays, numpy_mean, float(count))


# --------------------------------------------------------------- averaging functions


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    """The exponential moving average of a list of arrays, in place, fused.

    ``W_ema = decay * W_ema + (1 - decay) * W``, computed as torch's
    ``_foreach_lerp_(ema, current, 1 - decay)``: one native call for every array.

    Args:
        decay: in [0, 1] (default 0.999).
    """
    d = _check_decay(decay)

    def ema_update(
        ema_param_list: list[np.ndarray], current_param_list: list[np.ndarray], _: int
    ) -> None:
        _lerp(ema_param_list, current_param_list, 1 - d)

    return ema_update


def get_swa_multi_avg_fn() -> MultiAvgFn:
    """The running mean (SWA) of a list of arrays, in place, fused: with ``n`` arrays
    already averaged, ``W_swa = lerp(W_swa, W, 1 / (n + 1))`` (torch's multi-tensor form)."""

    def swa_update(
        averaged_param_list: list[np.ndarray],
        current_param_list: list[np.ndarray],
        num_averaged: int,
    ) -> None:
        _lerp(averaged_param_list, current_param_list, 1 / (int(num_averaged) + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """The exponential moving average of one array: returns
    ``decay * ema_param + (1 - decay) * current_param`` (a new array).

    Args:
        decay: in [0, 1] (default 0.999).
    """
    d = _check_decay(decay)

    def ema_update(ema_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> Any:
        return d * ema_param + (1 - d) * current_param

    return ema_update


def get_swa_avg_fn() -> AvgFn:
    """The running mean (SWA) of one array: returns
    ``averaged_param + (current_param - averaged_param) / (num_averaged + 1)``."""

    def swa_update(averaged_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> Any:
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


# --------------------------------------------------------------------- the averages


class AveragedParams:
    """Running averages of a list of arrays (``torch.optim.swa_utils.AveragedModel``).

    ``AveragedParams(params)`` keeps a copy of every array (as AveragedModel deep-copies
    the module). Each ``update_parameters(params)`` then takes the parameters' current
    values, in the same order::

        if n_averaged == 0:       average = params                       (a copy)
        elif avg_fn:              average = avg_fn(average, params[i], n_averaged), each i
        elif multi_avg_fn:        multi_avg_fn(averages, params, n_averaged)   (in place,
                                  once per dtype, as torch calls it per device and dtype)
        else:                     average = average + (params[i] - average) / (n_averaged + 1)
        n_averaged += 1

    The default running mean (SWA) is computed as torch computes it on the CPU, one
    rounding per operation, for every array in one fused native call.

    Args:
        params: the arrays to average (floating dtypes), in a sequence.
        avg_fn: ``avg_fn(averaged_param, current_param, num_averaged)`` returning the new
            average of one array, e.g. :func:`get_ema_avg_fn`. Default None.
        multi_avg_fn: ``multi_avg_fn(averaged_params, current_params, num_averaged)``
            updating the averages in place, e.g. :func:`get_ema_multi_avg_fn` (fused).
            Default None. At most one of ``avg_fn`` and ``multi_avg_fn``.

    Attributes:
        params: the averaged arrays (a new list of the live arrays; write them if you like).
        n_averaged: how many updates have been averaged (an int).

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.array([0.0, 4.0])
        >>> ema = fo.swa_utils.AveragedParams(
        ...     [w], multi_avg_fn=fo.swa_utils.get_ema_multi_avg_fn(0.5))
        >>> ema.update_parameters([w]); w += 2; ema.update_parameters([w])
        >>> ema.params[0], ema.n_averaged
        (array([1., 5.]), 2)
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        avg_fn: AvgFn | None = None,
        multi_avg_fn: MultiAvgFn | None = None,
    ) -> None:
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
        for name, fn in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if isinstance(params, np.ndarray):
            raise TypeError(
                "params must be a sequence of arrays, got a single numpy.ndarray; "
                "wrap it in a list: [array]"
            )
        if isinstance(params, Mapping | str) or not isinstance(params, Sequence | Iterator):
            raise TypeError(f"params must be a sequence of arrays, got {type(params).__name__}")
        ps = list(params)
        for i, p in enumerate(ps):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}] must be a numpy.ndarray, got {type(p).__name__}")
            if not _is_float_array(p):
                raise TypeError(
                    f"params[{i}] has dtype {p.dtype}; only floating dtypes are averaged"
                )
        self._averages = [p.copy(order="K") for p in ps]
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.n_averaged = 0

    @property
    def params(self) -> list[np.ndarray]:
        """The averaged arrays (the live arrays, in a new list)."""
        return list(self._averages)

    def update_parameters(self, params: Sequence[np.ndarray]) -> None:
        """Average in the current values of ``params`` (same count, order, shapes, dtypes).

        Everything is checked before any average changes; ``avg_fn`` is called for every
        array before any is written.
        """
        avgs = self._averages
        cur = _check_pairs(avgs, params)
        n = self.n_averaged
        if n == 0:
            for a, c in zip(avgs, cur, strict=True):
                np.copyto(a, c)
        elif self.avg_fn is not None:
            results = [self.avg_fn(a, c, n) for a, c in zip(avgs, cur, strict=True)]
            for i, (a, r) in enumerate(zip(avgs, results, strict=True)):
                r = np.asarray(r)
                try:
                    fits = np.broadcast_shapes(r.shape, a.shape) == a.shape
                except ValueError:
                    fits = False
                if not fits:
                    raise ValueError(
                        f"avg_fn returned shape {r.shape} for params[{i}], whose shape is {a.shape}"
                    )
                if not np.can_cast(r.dtype, a.dtype, casting="same_kind"):
                    raise TypeError(
                        f"avg_fn returned dtype {r.dtype} for params[{i}], whose dtype is {a.dtype}"
                    )
                results[i] = r
            for a, r in zip(avgs, results, strict=True):
                np.copyto(a, r, casting="same_kind")
        elif self.multi_avg_fn is not None:
            by_dtype: dict[np.dtype[Any], tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for a, c in zip(avgs, cur, strict=True):
                la, lc = by_dtype.setdefault(a.dtype, ([], []))
                la.append(a)
                lc.append(c)
            for la, lc in by_dtype.values():
                self.multi_avg_fn(la, lc, n)
        else:
            _mean(avgs, cur, n + 1)
        self.n_averaged = n + 1

    def state_dict(self) -> dict[str, Any]:
        """``{"params": [copies of the averages], "n_averaged": int}`` (the averaging
        functions are not saved, as in PyTorch)."""
        return {
            "params": [a.copy(order="K") for a in self._averages],
            "n_averaged": self.n_averaged,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`: same count, shapes and dtypes; checked before any
        average changes."""
        if not isinstance(state_dict, Mapping) or not {"params", "n_averaged"} <= set(state_dict):
            raise TypeError('state_dict must be a dict with "params" and "n_averaged"')
        saved = state_dict["params"]
        if isinstance(saved, np.ndarray) and saved.dtype != object:
            saved = list(saved)  # as after numpy.savez: one stacked array
        saved = [np.asarray(s) for s in saved]
        if len(saved) != len(self._averages):
            raise ValueError(
                f"state_dict holds {len(saved)} averages, this AveragedParams {len(self._averages)}"
            )
        for i, (a, s) in enumerate(zip(self._averages, saved, strict=True)):
            if s.shape != a.shape:
                raise ValueError(
                    f'state_dict["params"][{i}] has shape {s.shape}, the average {a.shape}'
                )
            if s.dtype != a.dtype:
                raise TypeError(
                    f'state_dict["params"][{i}] has dtype {s.dtype}, the average {a.dtype}'
                )
        n = np.asarray(state_dict["n_averaged"])
        if n.shape != () or not np.issubdtype(n.dtype, np.integer) or int(n) < 0:
            raise ValueError(
                f'state_dict["n_averaged"] must be an int >= 0, got {state_dict["n_averaged"]!r}'
            )
        for a, s in zip(self._averages, saved, strict=True):
            np.copyto(a, s)
        self.n_averaged = int(n)

    def __repr__(self) -> str:
        return f"AveragedParams({len(self._averages)} arrays, n_averaged={self.n_averaged})"


# ---------------------------------------------------------------------------- SWALR


def _linear_anneal(t: float) -> float:
    return t


def _cosine_anneal(t: float) -> float:
    return (1 - math.cos(math.pi * t)) / 2


def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
    if alpha == 1:
        return swa_lr
    return (lr - alpha * swa_lr) / (1 - alpha)


class SWALR(LRScheduler):
    """Anneals each param group's lr to ``swa_lr`` in ``anneal_epochs`` steps, then holds
    it (``torch.optim.swa_utils.SWALR``, value for value).

    Like PyTorch's, it works from each group's *current* lr: at its k-th step (k = 0 at
    construction, ``E = max(1, anneal_epochs)``; k = max(1, k) when anneal_epochs is 0)::

        alpha(s)   = s                          ("linear")
                   = (1 - cos(pi * s)) / 2      ("cos")
        a_prev     = alpha(clip((k - 1) / E, 0, 1));   a = alpha(clip(k / E, 0, 1))
        lr_start   = swa_lr if a_prev == 1 else (lr - a_prev * swa_lr) / (1 - a_prev)
        lr         = swa_lr * a + lr_start * (1 - a)

    so that alone it goes from the lr it found to ``swa_lr``, and after another schedule
    it starts from wherever that one left the lr. ``swa_lr`` is written into every group
    as ``group["swa_lr"]``.

    Args:
        optimizer: the optimizer.
        swa_lr: the final lr: one value, or a list with one per param group (finite, >= 0).
        anneal_epochs: steps of the annealing phase, an int >= 0 (default 10).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        last_epoch: -1 to start.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> opt = fo.SGD([np.zeros(2)], lr=1.0)
        >>> sched = fo.swa_utils.SWALR(opt, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
        >>> [round(sched.get_last_lr()[0], 6)] + [sched.step() or round(sched.get_last_lr()[0], 6)
        ...                                        for _ in range(3)]
        [1.0, 0.75, 0.5, 0.5]
    """

    _chainable = True
    _has_closed_form = False
    _state_keys = ("anneal_epochs", "_anneal_strategy", "_step_count")

    def __init__(
        self,
        optimizer: _Optimizer,
        swa_lr: float | Sequence[float],
        anneal_epochs: int = 10,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        last_epoch: int = -1,
    ) -> None:
        # every check before the groups are written
        _check_optimizer(optimizer)
        swa_lrs = _per_group("swa_lr", swa_lr, len(optimizer.param_groups), 0.0)
        if not isinstance(anneal_strategy, str):
            raise TypeError(
                f"anneal_strategy must be 'cos' or 'linear', got {type(anneal_strategy).__name__}"
            )
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self.anneal_epochs = _int("anneal_epochs", anneal_epochs, 0)
        _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        self._anneal_strategy: str = anneal_strategy
        self._step_count = 0  # PyTorch's: the calls to step(), the constructor's included
        for v, group in zip(swa_lrs, optimizer.param_groups, strict=True):
            group["swa_lr"] = v
        super().__init__(optimizer, last_epoch)

    def anneal_func(self, t: float) -> float:
        """The annealing function of ``anneal_strategy`` at ``t`` in [0, 1]."""
        return _cosine_anneal(t) if self._anneal_strategy == "cos" else _linear_anneal(t)

    def _chain_lr(self, t: int, initial: bool) -> list[float]:
        groups = self.optimizer.param_groups
        for i, g in enumerate(groups):
            if "swa_lr" not in g:
                raise ValueError(
                    f"optimizer.param_groups[{i}] has no 'swa_lr' (set by SWALR's constructor)"
                )
        step = self._step_count  # PyTorch's self._step_count - 1, read after its increment
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [_get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        cur_t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(cur_t)
        return [
            g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, prev_lrs, strict=True)
        ]

    def _after_lr(self, t: int) -> None:
        self._step_count += 1
