"""Muon, as torch.optim.Muon, for one 2-D NumPy parameter.

Momentum (torch's ``lerp``), optional Nesterov, the quintic Newton–Schulz iteration of
``torch.optim._muon._zeropower_via_newtonschulz``, decoupled weight decay and the
shape-dependent learning-rate adjustment. ``ns_dtype="bfloat16"`` rounds the iterate to
bfloat16 where torch does (torch always runs the iteration on a bfloat16 copy); the
rounding is emulated on float32 arrays (round to nearest, ties to even, of the float32
bits to their top 16), so that no bfloat16 array type is needed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["adjust_lr", "lerp", "muon", "newton_schulz", "round_bfloat16"]


def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """``x`` (float32) rounded to the nearest bfloat16 value, ties to even, in place;
    NaN stays NaN (as torch's ``float -> bfloat16`` conversion). Returns ``x``."""
    assert x.dtype == np.float32 and x.flags.c_contiguous
    bits = x.view(np.uint32)
    nan = np.isnan(x)
    lsb = (bits >> 16) & 1
    bits += np.uint32(0x7FFF) + lsb
    bits &= np.uint32(0xFFFF0000)
    x[nan] = np.nan
    return x


def lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """``torch.lerp(start, end, weight)``: ``start + w (end - start)`` for ``|w| < 0.5``,
    else ``end - (end - start) (1 - w)`` (the weight in the arrays' precision)."""
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (1 - w)


def newton_schulz(
    grad: np.ndarray,
    ns_coefficients: tuple[float, float, float],
    ns_steps: int,
    eps: float,
    ns_dtype: str = "bfloat16",
) -> np.ndarray:
    """The orthogonalized ``grad``: ``ns_steps`` quintic Newton–Schulz iterations in float32::

        X = G / max(||G||_F, eps)         (G transposed first when it has more rows than columns)
        repeat ns_steps times:
            A = X X^T
            B = b A + c A A
            X = a X + B X

    With ``ns_dtype="bfloat16"`` G, the norm, X and every product are rounded to bfloat16
    as torch computes them (a product accumulates in float32 and is rounded once).
    """
    a, b, c = ns_coefficients
    bf16 = ns_dtype == "bfloat16"

    def r(x: np.ndarray) -> np.ndarray:
        return round_bfloat16(np.ascontiguousarray(x, np.float32)) if bf16 else x

    x = r(np.array(grad, np.float32))
    transposed = grad.shape[0] > grad.shape[1]
    if transposed:
        x = np.ascontiguousarray(x.T)
    norm = np.float32(math.sqrt(float(np.sum(x.astype(np.float64) ** 2))))
    if bf16:
        norm = r(np.array([norm], np.float32))[0]
    denom = max(norm, r(np.array([eps], np.float32))[0] if bf16 else np.float32(eps))
    x = r(x / denom)
    for _ in range(ns_steps):
        gram = r(x @ x.T)
        gram_update = r(np.float32(c) * (gram @ gram) + np.float32(b) * gram)
        x = r(np.float32(a) * x + gram_update @ x)
    return np.ascontiguousarray(x.T) if transposed else x


def adjust_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's ``_adjust_lr``: ``lr * sqrt(max(1, A / B))`` ("original", the default) or
    ``lr * 0.2 * sqrt(max(A, B))`` ("match_rms_adamw") for an (A, B) parameter."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


def muon(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    eps: float,
    ns_steps: int,
    adjust_lr_fn: str | None,
    ns_dtype: str,
) -> None:
    """One Muon step on the 2-D ``param``, in place; ``state`` holds ``momentum_buffer``::

    B = lerp(B, g, 1 - momentum)                      (B = momentum B + (1 - momentum) g)
    U = lerp(g, B, momentum) if nesterov else B
    O = newton_schulz(U)
    p = p * (1 - lr weight_decay) - adjust_lr(lr) O
    """
    buf = state["momentum_buffer"]
    buf[...] = lerp(buf, grad, 1 - momentum)
    update = lerp(grad, buf, momentum) if nesterov else buf
    ortho = newton_schulz(update, ns_coefficients, ns_steps, eps, ns_dtype)
    adjusted_lr = adjust_lr(lr, adjust_lr_fn, param.shape)
    param *= param.dtype.type(1 - lr * weight_decay)
    param += param.dtype.type(-adjusted_lr) * ortho.astype(param.dtype)
