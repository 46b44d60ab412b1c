"""L-BFGS, as torch.optim.LBFGS: a line-by-line port on flat NumPy vectors.

The whole step of :class:`fusedopt.LBFGS` with ``backend="numpy"``: the two-loop
recursion, the history update, the first step ``t = min(1, 1 / |g|_1) * lr``, the
optional strong-Wolfe line search (``_cubic_interpolate`` and the zoom phase) and the
termination tests of ``torch/optim/lbfgs.py``, in the same order and with the same
scalar types (dot products of float32 vectors are float32 scalars, as torch's 0-d
tensors are). The state is torch's: ``old_dirs`` / ``old_stps`` are lists of 1-D arrays
(oldest first) and ``ro`` a list of scalars; the fused class keeps them in ring buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["cubic_interpolate", "flat_grad", "lbfgs", "strong_wolfe", "two_loop"]

#: ``closure()`` of the reference: ``(loss, grads)`` with one array (or None) per parameter.
Closure = Callable[[], tuple[Any, Sequence[np.ndarray | None]]]


def flat_grad(params: Sequence[np.ndarray], grads: Sequence[np.ndarray | None]) -> np.ndarray:
    """The grads as one vector (torch's ``_gather_flat_grad``; None counts as zeros)."""
    dtype = np.result_type(*params)
    return np.concatenate(
        [
            np.zeros(p.size, dtype) if g is None else np.asarray(g, dtype).reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ]
    )


def _add_grad(params: Sequence[np.ndarray], step_size: Any, update: np.ndarray) -> None:
    offset = 0
    for p in params:
        p += (step_size * update[offset : offset + p.size]).reshape(p.shape).astype(p.dtype)
        offset += p.size


def cubic_interpolate(
    x1: Any,
    f1: Any,
    g1: Any,
    x2: Any,
    f2: Any,
    g2: Any,
    bounds: tuple[Any, Any] | None = None,
) -> Any:
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), within bounds
    (torch's ``_cubic_interpolate``, from minFunc's ``polyinterp``)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(
    obj_func: Callable[[Any, np.ndarray], tuple[float, np.ndarray]],
    t: Any,
    d: np.ndarray,
    f: float,
    g: np.ndarray,
    gtd: Any,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, np.ndarray, Any, int]:
    """Line search for a step ``t`` along ``d`` meeting the strong Wolfe conditions
    (torch's ``_strong_wolfe``); ``obj_func(t, d)`` is ``(loss, flat grad)`` at ``x + t d``.

    Returns ``(f_new, g_new, t, number of evaluations)``.
    """
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[Any] = []
    bracket_f: list[Any] = []
    bracket_g: list[np.ndarray] = []
    bracket_gtd: list[Any] = []
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step)
        )
        # next step
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    # reached the maximum number of iterations?
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom phase: refine the bracket until a point meets the criteria
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )
        # an interpolation close to the boundary: move 0.1 of the bracket away from it
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not met, or not lower than the lowest point
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # Wolfe conditions met
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old high becomes the new low
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # the new point becomes the new low
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def two_loop(
    flat_grad: np.ndarray,
    old_dirs: Sequence[np.ndarray],
    old_stps: Sequence[np.ndarray],
    ro: Sequence[Any],
    H_diag: Any,
) -> np.ndarray:
    """The L-BFGS direction ``-H g``: the two-loop recursion over the history (oldest first),
    with the initial inverse Hessian ``H_diag * I``."""
    num_old = len(old_dirs)
    al: list[Any] = [None] * num_old
    q = -flat_grad
    for i in range(num_old - 1, -1, -1):
        al[i] = old_stps[i].dot(q) * ro[i]
        q -= al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(num_old):
        be_i = old_dirs[i].dot(r) * ro[i]
        r += (al[i] - be_i) * old_stps[i]
    return r


def lbfgs(
    params: Sequence[np.ndarray],
    closure: Closure,
    state: dict[str, Any],
    *,
    lr: float,
    max_iter: int,
    max_eval: int,
    tolerance_grad: float,
    tolerance_change: float,
    history_size: int,
    line_search_fn: str | None,
) -> Any:
    """One ``LBFGS.step(closure)``: up to ``max_iter`` iterations, updating ``params`` in
    place and ``state`` (torch's keys: ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``,
    ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``). Returns the loss
    of the first evaluation (torch's ``orig_loss``)."""
    state.setdefault("func_evals", 0)
    state.setdefault("n_iter", 0)

    orig_loss, grads = closure()
    loss = float(orig_loss)
    current_evals = 1
    state["func_evals"] += 1
    g = flat_grad(params, grads)
    opt_cond = np.abs(g).max() <= tolerance_grad
    if opt_cond:
        return orig_loss

    d = state.get("d")
    t = state.get("t")
    old_dirs = state.get("old_dirs")
    old_stps = state.get("old_stps")
    ro = state.get("ro")
    H_diag = state.get("H_diag")
    prev_flat_grad = state.get("prev_flat_grad")
    prev_loss = state.get("prev_loss")

    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        state["n_iter"] += 1

        # the descent direction
        if state["n_iter"] == 1:
            d = -g
            old_dirs, old_stps, ro = [], [], []
            H_diag = 1
        else:
            assert old_dirs is not None and old_stps is not None and ro is not None
            assert d is not None and t is not None and prev_flat_grad is not None
            y = g - prev_flat_grad
            s = d * t
            ys = y.dot(s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:  # shift the history by one
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                H_diag = ys / y.dot(y)
            d = two_loop(g, old_dirs, old_stps, ro, H_diag)

        prev_flat_grad = g.copy()
        prev_loss = loss

        # the step length
        t = min(1.0, 1.0 / np.abs(g).sum()) * lr if state["n_iter"] == 1 else lr
        gtd = g.dot(d)
        if gtd > -tolerance_change:
            break

        ls_func_evals = 0
        if line_search_fn is not None:
            x_init = [p.copy() for p in params]

            def obj_func(
                t: Any, d: np.ndarray, x_init: list[np.ndarray] = x_init
            ) -> tuple[float, np.ndarray]:
                _add_grad(params, t, d)
                f, gs = closure()
                out = float(f), flat_grad(params, gs)
                for p, x in zip(params, x_init, strict=True):
                    p[...] = x
                return out

            loss, g, t, ls_func_evals = strong_wolfe(
                obj_func, t, d, loss, g, gtd, max_ls=max_eval - current_evals
            )
            _add_grad(params, t, d)
            opt_cond = np.abs(g).max() <= tolerance_grad
        else:
            _add_grad(params, t, d)
            if n_iter != max_iter:  # no evaluation after the last iteration
                f, gs = closure()
                loss = float(f)
                g = flat_grad(params, gs)
                opt_cond = np.abs(g).max() <= tolerance_grad
                ls_func_evals = 1

        current_evals += ls_func_evals
        state["func_evals"] += ls_func_evals

        # the termination tests
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if np.abs(d * t).max() <= tolerance_change:  # lack of progress
            break
        if abs(loss - prev_loss) < tolerance_change:
            break

    state.update(
        d=d,
        t=t,
        old_dirs=old_dirs,
        old_stps=old_stps,
        ro=ro,
        H_diag=H_diag,
        prev_flat_grad=prev_flat_grad,
        prev_loss=prev_loss,
    )
    return orig_loss
