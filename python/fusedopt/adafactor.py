"""Adafactor (torch.optim.Adafactor)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _core, reference
from .optimizer import (
    BACKEND_DOC,
    CLIP_DOC,
    MAXIMIZE_DOC,
    PARAMS_DOC,
    Optimizer,
    Params,
    StateDType,
)
from .rules import FLAG, NONNEGATIVE, Rule, hyper_table

__all__ = ["Adafactor"]


def check_eps(value: Any, where: str) -> None:
    """``eps`` is a pair ``(eps1, eps2)``: eps1 None or a finite number >= 0, eps2 a finite
    number >= 0 (torch's checks, with fusedopt's messages)."""
    ordered = isinstance(value, tuple | list) or (isinstance(value, np.ndarray) and value.ndim == 1)
    if not ordered or len(value) != 2:
        raise TypeError(f"{where} must be a pair (eps1, eps2), got {value!r}")
    for j, x in enumerate(value):
        if (j == 0 and x is None) or (type(x) is float and 0.0 <= x < math.inf):
            continue  # the common cases, without the ABC check below
        what = "None or a finite number >= 0" if j == 0 else "a finite number >= 0"
        if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
            raise TypeError(f"{where}[{j}] must be {what}, got {type(x).__name__}")
        if not (math.isfinite(float(x)) and float(x) >= 0):
            raise ValueError(f"invalid {where}[{j}]: {x!r}; it must be {what}")


def state_shapes(shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The shape of each array state of a parameter of ``shape`` (torch's): ``row_var`` is
    the shape with its last dim 1, ``col_var`` with its last-but-one dim 1; ``variance``
    (0 or 1 dims) is the shape itself."""
    if len(shape) < 2:
        return {"variance": shape}
    return {"row_var": (*shape[:-1], 1), "col_var": (*shape[:-2], 1, shape[-1])}


class Adafactor(Optimizer):
    __doc__ = f"""Adafactor: adaptive rates with sublinear memory (Shazeer & Stern, 2018).

    The rule of ``torch.optim.Adafactor``, for step t with gradient g_t, per parameter p;
    a parameter of 2 or more dims is factored over its last two dims (R x C; any leading
    dims are a batch of matrices)::

        if maximize: g_t = -g_t
        beta2_t' = t ** beta2_decay                 (1 - beta2_t: the lerp weight)
        rho_t = min(lr, 1 / sqrt(t))
        alpha = max(eps2, RMS(p)) * rho_t           (RMS(x) = ||x|| / sqrt(numel))
        if weight_decay != 0: p = p * (1 - lr * weight_decay)
        if p.ndim >= 2:
            row_var = lerp(row_var, mean(g_t^2 over the last dim), beta2_t')    (..., R, 1)
            col_var = lerp(col_var, mean(g_t^2 over dim -2), beta2_t')          (..., 1, C)
            v = (row_var * col_var) / max(mean(row_var over dim -2), eps1)      (..., R, C)
        else:
            variance = lerp(variance, g_t^2, beta2_t')
            v = variance
        update = g_t / sqrt(max(v, eps1^2))
        p = p - alpha / max(1, RMS(update) / d) * update

    with ``lerp(a, b, w) = a + w * (b - a)`` and eps1 None meaning the machine epsilon
    of the dtype of the param group's first parameter with a grad (as torch resolves it).

    The fused backend never builds the R x C estimate v (torch materializes it and the
    update): one native call per parameter reads the grad three times and the parameter
    twice (the sums of p^2, of each row and each column of g^2; the sum of update^2; the
    write), all in parallel on fusedopt's threads with the GIL released. Every sum is
    float64 over fixed blocks of rows: the same bits on any number of threads; torch sums
    in the parameter's dtype, so the two agree to rounding, not bit for bit.

    Args:
        {PARAMS_DOC}
        lr: the most the relative step size rho_t may be, and the decoupled weight
            decay's rate (default 1e-2).
        beta2_decay: the exponent of the second moment's decay, <= 0 (default -0.8).
        eps: ``(eps1, eps2)``: eps1 bounds the estimate v from below (None: the
            dtype's machine epsilon), eps2 the parameter scale RMS(p) (default (None, 1e-3)).
        d: the clipping threshold of RMS(update), >= 1 (default 1).
        weight_decay: decoupled weight decay (default 0).
        {MAXIMIZE_DOC}
        {BACKEND_DOC}
        {CLIP_DOC}

    State per parameter: ``step``, and ``row_var`` (the shape, last dim 1) and ``col_var``
    (the shape, last-but-one dim 1) for a parameter of 2 or more dims, ``variance`` (the
    shape) for one of 0 or 1 dims, as torch's.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> w = np.ones((2, 2))
        >>> opt = fo.Adafactor([w])
        >>> opt.step([np.full((2, 2), 0.5)])   # the first step: lr * RMS(w) = 0.01 per entry
        >>> w
        array([[0.99, 0.99],
               [0.99, 0.99]])
    """

    kernel = None
    half_state = False
    state_names = ("row_var", "col_var", "variance")
    scalar_names = ("step",)
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        beta2_decay=Rule(high=0.0),
        d=Rule(low=1.0),
        weight_decay=NONNEGATIVE,
        maximize=FLAG,
    )
    #: eps holds None (eps1), which the native rules cannot state.
    extra_hyperparameters = MappingProxyType({"eps": check_eps})
    reference_step = staticmethod(reference.adafactor)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, locals(), backend=backend)

    # ------------------------------------------------------------------ state
    def _state_shape(self, i: int, name: str) -> tuple[int, ...]:
        shape = tuple(self._params[i].shape)
        shapes = state_shapes(shape)
        if name not in shapes:
            raise ValueError(
                f"state of params[{i}]: {name} is not the state of a parameter of "
                f"{len(shape)} dims (it keeps {' and '.join(shapes)})"
            )
        return shapes[name]

    def _load_entry(self, i: int, entry: Mapping[str, Any]) -> dict[str, np.ndarray]:
        out = super()._load_entry(i, entry)
        needed = {"step", *state_shapes(tuple(self._params[i].shape))}
        if out and set(out) != needed:
            raise ValueError(
                f"state of params[{i}] has {sorted(out)}; a parameter of "
                f"{self._params[i].ndim} dims needs {sorted(needed)}"
            )
        return out

    def _new_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        st = {"step": np.array(0.0)}
        for name, shape in state_shapes(p.shape).items():
            st[name] = np.zeros(shape, p.dtype)
        return st

    # ------------------------------------------------------------------- step
    def _custom_step(self, grads: list[Any], scale: float) -> None:
        work: list[tuple[int, np.ndarray, np.ndarray, dict[str, Any], float]] = []
        i = 0
        for group in self.param_groups:
            eps1 = group["eps"][0]
            for p in group["params"]:
                if grads[i] is not None:
                    if eps1 is None:  # torch: the dtype of the group's first param with a grad
                        eps1 = float(np.finfo(p.dtype).eps)
                    work.append((i, p, grads[i], group, float(eps1)))
                i += 1
        for i, p, g, group, eps1 in work:
            if scale != 1.0:  # the grads as clip_grad_norm_ would leave them (copies)
                g = g * g.dtype.type(scale)
            if not self._state[i]:
                self._state[i] = self._new_state(p)
            st = self._state[i]
            eps2 = float(group["eps"][1])
            if self.backend == "numpy":
                reference.adafactor(
                    p,
                    g,
                    st,
                    lr=group["lr"],
                    beta2_decay=group["beta2_decay"],
                    eps=(eps1, eps2),
                    d=group["d"],
                    weight_decay=group["weight_decay"],
                    maximize=group["maximize"],
                )
                continue
            st["step"] += 1
            if p.size == 0:  # nothing to update (torch divides by zero here)
                continue
            t = float(st["step"])
            lr = float(group["lr"])
            self._fused(p, g, st, t, lr, eps1, eps2, group)

    @staticmethod
    def _fused(
        p: np.ndarray,
        g: np.ndarray,
        st: dict[str, np.ndarray],
        t: float,
        lr: float,
        eps1: float,
        eps2: float,
        group: Mapping[str, Any],
    ) -> None:
        """One native call for ``p`` (a C-ordered copy for a parameter in another layout)."""
        direct = p.flags.c_contiguous and p.flags.aligned
        target = p if direct else np.ascontiguousarray(p)
        if not (g.flags.c_contiguous and g.flags.aligned):
            g = np.ascontiguousarray(g)
        _core.adafactor_step(
            target,
            g,
            st.get("row_var"),
            st.get("col_var"),
            st.get("variance"),
            lr=lr,
            weight_decay=float(group["weight_decay"]),
            eps1=eps1,
            eps2=eps2,
            d=float(group["d"]),
            weight=t ** float(group["beta2_decay"]),
            rho=min(lr, 1 / t**0.5),
            maximize=bool(group["maximize"]),
        )
        if not direct:
            p[...] = target
