"""Muon (torch.optim.Muon)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from . import reference
from ._memory import spread_full_like
from .optimizer import BACKEND_DOC, CLIP_DOC, PARAMS_DOC, Optimizer, ParamGroup, Params, StateDType
from .reference.muon import adjust_lr, round_bfloat16
from .rules import FLAG, NONNEGATIVE, Rule, check_choice, check_int, hyper_table

__all__ = ["Muon"]


class Muon(Optimizer):
    """Muon: momentum orthogonalized by Newton–Schulz (Jordan et al. 2024; torch.optim.Muon).

    For each 2-D parameter p (A rows, B columns) with gradient g::

        buf = lerp(buf, g, 1 - momentum)              (buf = momentum buf + (1 - momentum) g)
        U = lerp(g, buf, momentum) if nesterov else buf
        X = U / max(||U||_F, eps)                     (U^T when A > B, transposed back after)
        repeat ns_steps times:                        ((a, b, c) = ns_coefficients)
            G = X X^T;  X = a X + (b G + c G G) X
        p = p (1 - lr weight_decay) - lr' X
        lr' = lr sqrt(max(1, A / B))                 (adjust_lr_fn None or "original")
            = lr 0.2 sqrt(max(A, B))                 ("match_rms_adamw")

    Args:
        {PARAMS_DOC}
            Only 2-D arrays (ValueError otherwise): optimize biases and embeddings with
            another optimizer, as torch's documentation says.
        lr: learning rate (default 1e-3).
        weight_decay: decoupled weight decay (default 0.1).
        momentum: momentum factor (default 0.95).
        nesterov: use the Nesterov form of the momentum (default True).
        ns_coefficients: (a, b, c) of the quintic iteration (default (3.4445, -4.775, 2.0315)).
        eps: lower bound of the norm the iterate is divided by (default 1e-7; > 0).
        ns_steps: Newton–Schulz iterations, 0 to 99 (default 5).
        adjust_lr_fn: None / "original" or "match_rms_adamw" (see above).
        ns_dtype: ``"float32"`` (default): the iteration in float32; ``"bfloat16"``: the
            iterate and every product rounded to bfloat16 where torch rounds them (torch
            always runs it in bfloat16; this matches torch to bfloat16 tolerance).
        {BACKEND_DOC}
            The fused backend runs the iteration as NumPy matrix products into
            preallocated buffers (``out=``; ``X X^T`` as a BLAS syrk): ``numpy.matmul`` is
            the sgemm of the BLAS numpy links (OpenBLAS in the wheels), multi-threaded and
            tuned per CPU, which no kernel of ours would beat, and it adds no dependency.
            The element-wise parts (momentum, Nesterov, decay, the update) are in-place
            NumPy operations; they are a few passes over the matrix against the
            ``ns_steps * (4 A^2 B + 2 A^3)`` flops of the products.
        {CLIP_DOC}

    State per parameter: ``momentum_buffer``.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> W = np.zeros((2, 2), np.float32)
        >>> opt = fo.Muon([W], lr=0.1, nesterov=False, momentum=0.0)
        >>> opt.step([np.array([[3.0, 0.0], [0.0, 4.0]], np.float32)])
        >>> bool(np.all(np.diag(W) < 0))   # the orthogonalized step: both entries close to -lr
        True
    """

    __doc__ = (
        __doc__.replace("{PARAMS_DOC}", PARAMS_DOC)
        .replace("{BACKEND_DOC}", BACKEND_DOC)
        .replace("{CLIP_DOC}", CLIP_DOC)
    )

    kernel = None
    half_state = False
    steps_any_array = False
    state_names = ("momentum_buffer",)
    scalar_names = ()
    hyperparameters = hyper_table(
        lr=NONNEGATIVE,
        weight_decay=NONNEGATIVE,
        momentum=NONNEGATIVE,
        nesterov=FLAG,
        ns_coefficients=Rule(width=3),
        eps=Rule(low=0.0, low_open=True),
    )
    extra_hyperparameters = MappingProxyType(
        {
            "ns_steps": check_int(0, 100),
            "adjust_lr_fn": check_choice(None, "original", "match_rms_adamw"),
            "ns_dtype": check_choice("float32", "bfloat16"),
        }
    )

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: str = "float32",
        backend: str = "fused",
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        self._ns_buffers: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        super().__init__(params, locals(), backend=backend)

    def _make_group(self, group: Any, index: int, first_param: int) -> ParamGroup:
        out = super()._make_group(group, index, first_param)
        for k, p in enumerate(out["params"]):
            if p.ndim != 2:
                raise ValueError(
                    f"params[{first_param + k}] has {p.ndim} dimension(s); "
                    "Muon optimizes 2-D parameters only"
                )
        return out

    # ------------------------------------------------------------------ step
    def _custom_step(self, grads: list[Any], scale: float) -> None:
        i = 0
        for group in self.param_groups:
            hyper = {k: group[k] for k in (*self.hyperparameters, *self.extra_hyperparameters)}
            for p in group["params"]:
                g = grads[i]
                if g is not None:
                    if scale != 1.0:
                        g = g * g.dtype.type(scale)
                    st = self._state[i]
                    if "momentum_buffer" not in st:
                        st["momentum_buffer"] = spread_full_like(p, 0.0, 0)
                    if self.backend == "numpy":
                        reference.muon(p, g, st, **hyper)
                    else:
                        self._step_one(p, g, st["momentum_buffer"], hyper)
                i += 1

    def _buffers(self, p: np.ndarray) -> dict[str, np.ndarray]:
        rows, cols = p.shape
        m, n = min(rows, cols), max(rows, cols)
        key = (m, n)
        b = self._ns_buffers.get(key)
        if b is None:
            f32 = np.float32
            b = self._ns_buffers[key] = {
                "x": np.empty((m, n), f32),
                "x2": np.empty((m, n), f32),
                "gram": np.empty((m, m), f32),
                "gram2": np.empty((m, m), f32),
            }
        return b

    def _step_one(
        self, p: np.ndarray, g: np.ndarray, buf: np.ndarray, hyper: Mapping[str, Any]
    ) -> None:
        """One parameter's step into preallocated buffers (the same operations as
        :func:`fusedopt.reference.muon`, without temporaries)."""
        dt = p.dtype.type
        momentum = hyper["momentum"]
        bufs = self._buffers(p)
        x, x2, gram, gram2 = bufs["x"], bufs["x2"], bufs["gram"], bufs["gram2"]
        transposed = p.shape[0] > p.shape[1]
        tmp = x2 if p.dtype == np.float32 else np.empty(p.shape, p.dtype)
        tmp = tmp.T if transposed and tmp is x2 else tmp.reshape(p.shape)
        # buf = lerp(buf, g, 1 - momentum), as torch's lerp
        w = dt(1 - momentum)
        np.subtract(g, buf, out=tmp)
        if abs(w) < 0.5:
            tmp *= w
            buf += tmp
        else:
            tmp *= 1 - w
            np.subtract(g, tmp, out=buf)
        xv = x.T if transposed else x
        if hyper["nesterov"]:  # U = lerp(g, buf, momentum)
            w = dt(momentum)
            np.subtract(buf, g, out=tmp)
            if abs(w) < 0.5:
                tmp *= w
                np.add(g, tmp, out=xv, casting="same_kind")
            else:
                tmp *= 1 - w
                np.subtract(buf, tmp, out=xv, casting="same_kind")
        else:
            np.copyto(xv, buf, casting="same_kind")
        bf16 = hyper["ns_dtype"] == "bfloat16"
        if bf16:
            round_bfloat16(x)
        a, b, c = (np.float32(v) for v in hyper["ns_coefficients"])
        flat = x.reshape(-1)
        norm = np.float32(np.sqrt(np.dot(flat.astype(np.float64), flat.astype(np.float64))))
        eps = np.float32(hyper["eps"])
        if bf16:
            norm = round_bfloat16(np.array([norm]))[0]
            eps = round_bfloat16(np.array([eps]))[0]
        np.divide(x, max(norm, eps), out=x)
        if bf16:
            round_bfloat16(x)
        for _ in range(hyper["ns_steps"]):
            np.matmul(x, x.T, out=gram)
            if bf16:
                round_bfloat16(gram)
            np.matmul(gram, gram, out=gram2)
            gram2 *= c
            gram *= b
            gram2 += gram
            if bf16:
                round_bfloat16(gram2)
            np.matmul(gram2, x, out=x2)
            x *= a
            x2 += x
            if bf16:
                round_bfloat16(x2)
            x, x2 = x2, x
        ortho = x.T if transposed else x
        adjusted = adjust_lr(hyper["lr"], hyper["adjust_lr_fn"], p.shape)
        p *= dt(1 - hyper["lr"] * hyper["weight_decay"])
        if p.dtype == np.float32:
            ortho *= dt(-adjusted)
            p += ortho
        else:
            p += dt(-adjusted) * ortho.astype(p.dtype)
        if x is not bufs["x"]:  # keep the names of the preallocated buffers stable
            bufs["x"], bufs["x2"] = x, x2
