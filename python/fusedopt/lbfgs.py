"""L-BFGS (torch.optim.LBFGS)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _core, reference
from .optimizer import PARAMS_DOC, Optimizer, Params, StateDType, _call_closure, _read_only
from .reference.lbfgs import strong_wolfe
from .rules import NONNEGATIVE, check_choice, check_int, hyper_table

__all__ = ["LBFGS"]

_SCALARS = ("func_evals", "n_iter", "t", "H_diag", "prev_loss")
_RING = ("hist_len", "hist_head")  # internal: where the history lies in its ring buffers


class LBFGS(Optimizer):
    __doc__ = """L-BFGS, with an optional strong-Wolfe line search (torch.optim.LBFGS).

    After minFunc, as torch.

    One ``step(closure)`` runs up to ``max_iter`` iterations; ``closure()`` returns
    ``(loss, grads)`` at the current parameters (grads as for ``step(grads)``)::

        f, g = closure();  if max|g| <= tolerance_grad: return f
        repeat up to max_iter times:
            if first iteration ever: d = -g, H_diag = 1
            else:
                y = g - g_prev, s = t d
                if y.s > 1e-10: push (y, s, 1 / y.s) into the history (oldest out when full),
                                H_diag = y.s / y.y
                d = -H g                      (two-loop recursion over the history, H0 = H_diag I)
            t = min(1, 1 / |g|_1) lr on the very first iteration, else lr
            if g.d > -tolerance_change: stop
            line_search_fn "strong_wolfe": t, f, g from the line search along d; x += t d
            else: x += t d; f, g = closure() (not after the last iteration)
            stop after max_iter iterations, max_eval evaluations, max|g| <= tolerance_grad,
            max|t d| <= tolerance_change or |f - f_prev| < tolerance_change
        return the first f

    Args:
        {PARAMS_DOC}
            One param group only (as torch).
        lr: learning rate, the step length of the iterations after the first (default 1).
        max_iter: iterations per step (default 20).
        max_eval: closure evaluations per step (default None: ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest grad entry is at most this (default 1e-7).
        tolerance_change: stop on smaller changes of the loss or the parameters (default 1e-9).
        history_size: number of (y, s) pairs kept (default 100).
        line_search_fn: None (fixed steps) or ``"strong_wolfe"``.
        backend: ``"fused"`` (default): the parameters and grads as one flat vector, the
            history in two preallocated ring buffers, every dot product one BLAS call
            (``numpy.dot``: OpenBLAS's sdot/ddot) and every vector update in place into
            preallocated buffers: no allocation per iteration. ``"numpy"``: the line-by-line
            port of torch in :func:`fusedopt.reference.lbfgs` (lists of arrays, new arrays
            per iteration). There is no element-wise kernel to fuse here (every iteration is
            a chain of dot products and vector updates that each need the previous one's
            result), so neither runs C++ of fusedopt's own.

    State (of the first parameter, as torch): ``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs``, ``old_stps`` (lists of 1-D arrays, oldest first), ``ro`` (a list),
    ``H_diag``, ``prev_flat_grad``, ``prev_loss``; numbers are 0-d float64 arrays. The
    vectors have the parameters' dtype (their common one, as ``torch.cat``), and dot
    products of float32 vectors are float32, as torch's.

    Unlike the other optimizers, LBFGS takes no ``max_grad_norm``: clipping the grads
    would break the secant pairs the method builds its curvature from.

    Example:
        >>> import numpy as np, fusedopt as fo
        >>> x = np.zeros(2)
        >>> opt = fo.LBFGS([x], line_search_fn="strong_wolfe")
        >>> def closure():   # f(x) = |x - (1, 2)|^2
        ...     return float(((x - [1, 2]) ** 2).sum()), [2 * (x - [1, 2])]
        >>> loss = opt.step(closure)
        >>> np.round(x, 6)
        array([1., 2.])
    """.replace("{PARAMS_DOC}", PARAMS_DOC)

    kernel = None
    half_params = False
    steps_any_array = False
    state_names = ()
    scalar_names = _SCALARS
    hyperparameters = hyper_table(
        lr=NONNEGATIVE, tolerance_grad=NONNEGATIVE, tolerance_change=NONNEGATIVE
    )
    extra_hyperparameters = MappingProxyType(
        {
            "max_iter": check_int(1),
            "max_eval": check_int(1),
            "history_size": check_int(1),
            "line_search_fn": check_choice(None, "strong_wolfe"),
        }
    )

    def __init__(
        self,
        params: Params,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        *,
        backend: str = "fused",
        state_dtype: StateDType = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
    ) -> None:
        check_int(1)(max_iter, "max_iter")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, locals(), backend=backend)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._dtype = np.result_type(*self._params)
        self._numel = sum(p.size for p in self._params)
        self._buffers: dict[str, np.ndarray] = {}

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Refused: LBFGS has one param group (as torch)."""
        raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    # ------------------------------------------------------------------ step
    def _step_impl(self, grads: Any = None, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None and callable(grads) and not isinstance(grads, Sequence):
            grads, closure = None, grads
        if grads is not None:
            raise TypeError("LBFGS.step() takes a closure, not grads: step(closure)")
        if closure is None:
            raise TypeError(
                "LBFGS.step() needs a closure: closure() must return (loss, grads) at the "
                "current parameters"
            )
        if not callable(closure):
            raise TypeError(f"closure must be callable, got {type(closure).__name__}")
        with self._lock:
            group = self.param_groups[0]
            self._check_groups()
            hyper = {
                k: group[k]
                for k in (
                    "lr",
                    "max_iter",
                    "max_eval",
                    "tolerance_grad",
                    "tolerance_change",
                    "history_size",
                    "line_search_fn",
                )
            }
            first_loss, first_grads = self._evaluate(closure)  # refused before any write
            if self._skip_nonfinite and not all(
                g is None or np.isfinite(g).all() for g in first_grads
            ):
                self.skipped_steps += 1
                return first_loss
            saved = [p.copy() for p in self._params]
            saved_state = {k: v.copy() for k, v in self._state[0].items() if v.ndim < 2}
            ring = self._ring_rows_before()  # after the first evaluation, before any write
            try:
                with np.errstate(all="ignore"):
                    if self.backend == "numpy":
                        self._step_reference(closure, first_loss, first_grads, hyper)
                    else:
                        self._step_fused(closure, first_loss, first_grads, hyper)
            except BaseException:
                # a later closure call failed: put the parameters and the state back
                for p, v in zip(self._params, saved, strict=True):
                    np.copyto(p, v)
                self._restore(saved_state, ring)
                raise
            self._touch(None)
            return first_loss

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, list[Any]]:
        loss, grads = _call_closure(closure)
        checked = self._check_grads(grads, self.param_groups)
        float(loss)  # TypeError now if the loss is not a number
        return loss, checked

    def _flat(self, grads: Sequence[np.ndarray | None], out: np.ndarray) -> np.ndarray:
        offset = 0
        for p, g in zip(self._params, grads, strict=True):
            seg = out[offset : offset + p.size]
            if g is None:
                seg[...] = 0
            else:
                seg.reshape(p.shape)[...] = g
            offset += p.size
        return out

    # ---------------------------------------------------- the numpy backend
    def _step_reference(
        self, closure: Callable[[], Any], loss: Any, grads: list[Any], hyper: dict[str, Any]
    ) -> None:
        calls = iter([(loss, grads)])

        def checked_closure() -> tuple[Any, list[Any]]:
            first = next(calls, None)
            return first if first is not None else self._evaluate(closure)

        state = self._torch_state(copy=True)
        if state:
            for name in ("func_evals", "n_iter"):
                state[name] = int(state[name])
            for name in ("t", "H_diag", "prev_loss"):
                if name in state:
                    state[name] = float(state[name])
            if "ro" in state:
                state["ro"] = [self._dtype.type(r) for r in state["ro"]]
                # a history_size lowered since the last step drops the oldest pairs now,
                # as the fused backend's ring does (torch would keep them)
                keep = hyper["history_size"]
                for name in ("old_dirs", "old_stps", "ro"):
                    state[name] = state[name][-keep:]
        reference.lbfgs(self._params, checked_closure, state, **hyper)
        self._state[0] = self._from_torch_state(state, hyper["history_size"])

    # ------------------------------------------------------ the fused backend
    def _buffer(self, name: str, rows: int = 0) -> np.ndarray:
        shape = (rows, self._numel) if rows else (self._numel,)
        b = self._buffers.get(name)
        if b is None or b.shape != shape:
            b = self._buffers[name] = np.empty(shape, self._dtype)
        return b

    def _ensure_ring(self, history_size: int) -> dict[str, np.ndarray]:
        st = self._state[0]
        if "old_dirs" in st and st["old_dirs"].shape[0] == history_size:
            return st
        # first use, or history_size changed between steps: lay the history out anew
        dirs, stps, ro = self._history(st)
        keep = min(len(ro), history_size)  # a smaller history drops its oldest pairs
        st["old_dirs"] = np.empty((history_size, self._numel), self._dtype)
        st["old_stps"] = np.empty((history_size, self._numel), self._dtype)
        st["ro"] = np.zeros(history_size, self._dtype)
        for j in range(keep):
            k = len(ro) - keep + j
            st["old_dirs"][j], st["old_stps"][j], st["ro"][j] = dirs[k], stps[k], ro[k]
        st["hist_len"], st["hist_head"] = np.array(float(keep)), np.array(0.0)
        return st

    def _step_fused(
        self, closure: Callable[[], Any], orig_loss: Any, grads: list[Any], hyper: dict[str, Any]
    ) -> None:
        lr = hyper["lr"]
        max_iter, max_eval = hyper["max_iter"], hyper["max_eval"]
        tolerance_grad, tolerance_change = hyper["tolerance_grad"], hyper["tolerance_change"]
        history_size = hyper["history_size"]
        st = self._state[0]
        n_total = self._numel
        dtype = self._dtype.type
        tmp = self._buffer("tmp")
        if not st:
            st["func_evals"], st["n_iter"] = np.array(0.0), np.array(0.0)
        loss = float(orig_loss)
        current_evals = 1
        st["func_evals"] += 1
        g = self._flat(grads, self._buffer("g"))
        if np.abs(g, out=tmp).max() <= tolerance_grad:
            return
        st = self._ensure_ring(history_size)
        if "d" not in st:
            st["d"] = np.zeros(n_total, self._dtype)
            st["prev_flat_grad"] = np.zeros(n_total, self._dtype)
        d, prev_g = st["d"], st["prev_flat_grad"]
        dirs, stps, ro = st["old_dirs"], st["old_stps"], st["ro"]
        al = np.zeros(history_size, self._dtype)
        t: Any = float(st["t"]) if "t" in st else None
        h_diag: Any = dtype(st["H_diag"]) if "H_diag" in st else dtype(1)
        prev_loss = float(st["prev_loss"]) if "prev_loss" in st else loss

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                np.negative(g, out=d)
                st["hist_len"][...], st["hist_head"][...] = 0, 0
                h_diag = dtype(1)
            else:
                y, s = self._buffer("y"), self._buffer("s")
                np.subtract(g, prev_g, out=y)
                np.multiply(d, t, out=s)
                ys = y.dot(s)
                if ys > 1e-10:
                    k, head = int(st["hist_len"]), int(st["hist_head"])
                    if k == history_size:  # the oldest pair makes room
                        row = head
                        st["hist_head"][...] = (head + 1) % history_size
                    else:
                        row = (head + k) % history_size
                        st["hist_len"][...] = k + 1
                    dirs[row], stps[row] = y, s
                    ro[row] = 1.0 / ys
                    h_diag = ys / y.dot(y)
                # the two-loop recursion, newest to oldest and back, in place in d
                k, head = int(st["hist_len"]), int(st["hist_head"])
                rows = [(head + j) % history_size for j in range(k)]
                # (_core.axpy: q += a * x as np.multiply then np.add would round it, without
                # their temporary: 5 vector transfers per pair as torch's add_, not 7)
                q = np.negative(g, out=d)
                for j in reversed(range(k)):
                    r = rows[j]
                    al[j] = stps[r].dot(q) * ro[r]
                    _core.axpy(-float(al[j]), dirs[r], q)
                q *= h_diag
                for j in range(k):
                    r = rows[j]
                    be = dirs[r].dot(q) * ro[r]
                    _core.axpy(float(al[j] - be), stps[r], q)
            prev_g[...] = g
            prev_loss = loss

            t = min(1.0, 1.0 / np.abs(g).sum()) * lr if st["n_iter"] == 1 else lr
            gtd = g.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if hyper["line_search_fn"] is not None:
                x_init = self._buffer("x_init")
                self._flat(self._params, x_init)

                def obj_func(
                    t: Any, d: np.ndarray, x_init: np.ndarray = x_init
                ) -> tuple[float, np.ndarray]:
                    self._add(t, d, tmp)
                    f, gs = self._evaluate(closure)
                    flat = self._flat(gs, np.empty(n_total, self._dtype))
                    self._set(x_init)
                    return float(f), flat

                loss, g_new, t, ls_func_evals = strong_wolfe(
                    obj_func, t, d, loss, g, gtd, max_ls=max_eval - current_evals
                )
                g[...] = g_new
                self._add(t, d, tmp)
                opt_cond = np.abs(g, out=tmp).max() <= tolerance_grad
            else:
                self._add(t, d, tmp)
                opt_cond = False
                if n_iter != max_iter:
                    f, gs = self._evaluate(closure)
                    loss = float(f)
                    self._flat(gs, g)
                    opt_cond = np.abs(g, out=tmp).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            st["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(np.multiply(d, t, out=tmp)).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        st["t"] = np.array(float(t))
        st["H_diag"] = np.array(float(h_diag))
        st["prev_loss"] = np.array(float(prev_loss))

    def _add(self, t: Any, d: np.ndarray, tmp: np.ndarray) -> None:
        """params += t d (torch's ``_add_grad``), through ``tmp``."""
        np.multiply(d, t, out=tmp)
        offset = 0
        for p in self._params:
            p += tmp[offset : offset + p.size].reshape(p.shape)
            offset += p.size

    def _set(self, flat: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            p[...] = flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size

    # ------------------------------------------------------------- state
    def _ring_rows_before(self) -> tuple[dict[str, np.ndarray], list[tuple[int, Any, Any]]]:
        """What a failed step needs to put the history back: the ring arrays themselves,
        and copies of the rows the step may overwrite (only a full ring loses rows: at
        most ``max_iter`` of them, from its head on)."""
        st = self._state[0]
        arrays = {k: v for k, v in st.items() if v.ndim == 2}
        if "old_dirs" not in st or self.backend == "numpy":
            return arrays, []
        k, cap = int(st["hist_len"]), st["old_dirs"].shape[0]
        if k < cap:
            return arrays, []  # a step appends until the ring is full: hist_len puts it back
        head = int(st["hist_head"])
        rows = [(head + j) % cap for j in range(min(cap, self.param_groups[0]["max_iter"]))]
        return arrays, [(r, st["old_dirs"][r].copy(), st["old_stps"][r].copy()) for r in rows]

    def _restore(
        self,
        saved: dict[str, np.ndarray],
        ring: tuple[dict[str, np.ndarray], list[tuple[int, Any, Any]]],
    ) -> None:
        """Puts the state back as it was before a failed step (the numpy backend works on
        a copy and commits at the end: nothing to undo)."""
        if self.backend == "numpy":
            return
        arrays, rows = ring
        for r, y, s in rows:
            arrays["old_dirs"][r], arrays["old_stps"][r] = y, s
        self._state[0] = {**saved, **arrays}

    @staticmethod
    def _history(st: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], list]:
        if "old_dirs" not in st:
            return [], [], []
        k, head, cap = int(st["hist_len"]), int(st["hist_head"]), st["old_dirs"].shape[0]
        rows = [(head + j) % cap for j in range(k)]
        return (
            [st["old_dirs"][r] for r in rows],
            [st["old_stps"][r] for r in rows],
            [st["ro"][r] for r in rows],
        )

    def _torch_state(self, copy: bool) -> dict[str, Any]:
        """The state in torch's layout: history as lists, oldest first."""
        st = self._state[0]
        if not st:
            return {}

        def c(a: np.ndarray) -> np.ndarray:
            return np.array(a, copy=True) if copy else _read_only(a)

        out: dict[str, Any] = {k: c(v) for k, v in st.items() if k in _SCALARS or v.ndim == 1}
        out.pop("ro", None)
        if "old_dirs" in st:
            dirs, stps, ro = self._history(st)
            out["old_dirs"] = [c(a) for a in dirs]
            out["old_stps"] = [c(a) for a in stps]
            out["ro"] = [np.array(r, copy=True) for r in ro]
        for k in _RING:
            out.pop(k, None)
        return out

    def _from_torch_state(self, state: Mapping[str, Any], history_size: int) -> dict[str, Any]:
        """The internal state (ring buffers) from torch's layout, checked (for loading)."""
        out: dict[str, np.ndarray] = {}
        n_total = self._numel
        for name, value in state.items():
            if name in _SCALARS:
                v = np.asarray(value)
                if v.size != 1 or not (
                    np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)
                ):
                    raise ValueError(f"state of params[0]: {name} must be a single real number")
                out[name] = np.array(float(v.reshape(())), np.float64)
            elif name in ("d", "prev_flat_grad"):
                v = np.asarray(value)
                if v.shape != (n_total,):
                    raise ValueError(
                        f"state of params[0]: {name} has shape {v.shape}, expected ({n_total},)"
                    )
                if v.dtype != self._dtype:
                    raise TypeError(
                        f"state of params[0]: {name} has dtype {v.dtype}, the parameters "
                        f"{self._dtype}"
                    )
                out[name] = np.array(v, copy=True)
            elif name in ("old_dirs", "old_stps", "ro", "al"):
                pass
            else:
                raise ValueError(
                    f"state of params[0] has {name!r}, which LBFGS does not use "
                    "(a state dict of another optimizer?)"
                )
        if any(k in state for k in ("old_dirs", "old_stps", "ro")):
            lists = [state.get(k) for k in ("old_dirs", "old_stps", "ro")]
            if not all(isinstance(v, Sequence | np.ndarray) for v in lists):
                raise TypeError(
                    "state of params[0]: old_dirs, old_stps and ro must be lists (or arrays "
                    "of rows)"
                )
            dirs, stps, ro = (list(v) for v in lists)  # type: ignore[arg-type]
            if not len(dirs) == len(stps) == len(ro):
                raise ValueError(
                    "state of params[0]: old_dirs, old_stps and ro must have the same length"
                )
            for name, vs in (("old_dirs", dirs), ("old_stps", stps)):
                for j, v in enumerate(vs):
                    a = np.asarray(v)
                    if a.shape != (n_total,) or a.dtype != self._dtype:
                        raise ValueError(
                            f"state of params[0]: {name}[{j}] must be a ({n_total},) "
                            f"{self._dtype} array, got {a.shape} {a.dtype}"
                        )
            cap = max(history_size, 1)
            keep = min(len(ro), cap)
            out["old_dirs"] = np.empty((cap, n_total), self._dtype)
            out["old_stps"] = np.empty((cap, n_total), self._dtype)
            out["ro"] = np.zeros(cap, self._dtype)
            for j in range(keep):
                k = len(ro) - keep + j
                out["old_dirs"][j], out["old_stps"][j] = dirs[k], stps[k]
                out["ro"][j] = float(np.asarray(ro[k]).reshape(()))
            out["hist_len"], out["hist_head"] = np.array(float(keep)), np.array(0.0)
        if out and ("func_evals" not in out or "n_iter" not in out):
            raise ValueError("state of params[0]: func_evals and n_iter are required")
        return out

    def _load_entry(self, i: int, entry: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if i != 0:
            raise ValueError(
                f"state_dict has state for params[{i}]; LBFGS keeps its state in params[0]"
            )
        return self._from_torch_state(entry, self.param_groups[0]["history_size"])

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`Optimizer.state_dict`, with the state in torch's layout:
        ``old_dirs`` / ``old_stps`` / ``ro`` are lists, oldest first."""
        with self._lock:
            out = super().state_dict()
            if 0 in out["state"]:
                out["state"][0] = self._torch_state(copy=True)
            return out

    @property
    def state(self) -> Mapping[int, Mapping[str, Any]]:
        """The state of params[0] in torch's layout (read-only views)."""
        st = self._torch_state(copy=False) if self._has_state(0) else {}
        return MappingProxyType({0: MappingProxyType(st)} if st else {})
