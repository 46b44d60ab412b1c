"""Timing and checking one optimizer step.

:func:`measure` times any call (median of repeats, each calibrated to a minimum time);
:class:`FusedRunner` steps a fusedopt optimizer (either backend), :class:`TorchRunner`
``torch.optim``'s class of the same name; :func:`verify` checks, from the state a runner
reached, that one more step agrees with the other implementation.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fusedopt._optional import optional_module
from fusedopt.bench.cases import Variant

__all__ = [
    "BenchCheckError",
    "FusedRunner",
    "Runner",
    "TorchRunner",
    "measure",
    "torch_module",
    "verify",
]


class BenchCheckError(AssertionError):
    """A timed optimizer's step disagreed with the other implementation."""


# --------------------------------------------------------------------------- timing
def measure(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    min_time: float = 0.02,
    max_time: float = 10.0,
) -> tuple[float, list[float]]:
    """Median seconds per call of ``fn(*args)`` over ``repeats`` timed repeats.

    Each repeat calls ``fn`` enough times in a row to last at least ``min_time`` seconds
    (calibrated like ``timeit.autorange``, after one warm-up call); the garbage
    collector is off while timing. Fewer repeats (at least one) are taken when they
    would last more than ``max_time`` in all. Returns the median and every repeat's
    per-call time.
    """
    timer = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        fn(*args)
        number = 1
        while True:
            t0 = timer()
            for _ in itertools.repeat(None, number):
                fn(*args)
            elapsed = timer() - t0
            if elapsed >= min_time:
                break
            guess = int(number * min_time / max(elapsed, 1e-9) * 1.2) + 1
            number = min(max(number * 2, guess), number * 100)
        samples = [elapsed / number]
        for _ in range(min(repeats, int(max_time / elapsed)) - 1):
            t0 = timer()
            for _ in itertools.repeat(None, number):
                fn(*args)
            samples.append((timer() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples), samples


# --------------------------------------------------------------------------- runners
def torch_module() -> Any | None:
    """``torch`` if it is installed, else None (PyTorch is never a dependency)."""
    return optional_module("torch")


class FusedRunner:
    """A fusedopt optimizer (``backend`` "fused" or "numpy") over copies of the arrays
    (with ``copy=False``: over the arrays themselves)."""

    def __init__(
        self,
        variant: Variant,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        backend: str,
        *,
        copy: bool = True,
    ) -> None:
        self.variant = variant
        self.backend = backend
        self.params = [p.copy() for p in params] if copy else list(params)
        self.grads = list(grads)
        self.opt = variant.make(self.params, backend)
        self.impl = backend

    def timed(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The callable one step is and its arguments: ``opt.step(grads)``."""
        return self.opt.step, (self.grads,)

    def step(self) -> None:
        """One step."""
        self.opt.step(self.grads)

    def snapshot(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Copies of the parameters and a fusedopt state dict."""
        return [p.copy() for p in self.params], self.opt.state_dict()


class TorchRunner:
    """``torch.optim.<same name>`` over ``torch.from_numpy`` views of copies of the arrays
    (with ``copy=False``: of the arrays themselves, which a trial step then changes).

    Uses ``fused=True`` where PyTorch has a fused CPU kernel for the class, else
    ``foreach=False`` (the single-tensor loop); ``impl`` says which.
    """

    def __init__(
        self,
        variant: Variant,
        params: Sequence[np.ndarray],
        grads: Sequence[np.ndarray],
        torch: Any,
        *,
        copy: bool = True,
    ) -> None:
        self.variant = variant
        self.backend = "torch"
        self.torch = torch
        # torch keeps scalar state (step, NAdam's mu_product) in its default dtype;
        # fusedopt keeps it in float64, as the contract says: compare like with like.
        torch.set_default_dtype(torch.float64)
        cls = getattr(torch.optim, variant.cls.__name__, None)
        if cls is None:
            raise LookupError(f"torch.optim has no {variant.cls.__name__}")
        self.grads = list(grads)
        last: Exception | None = None

        def fresh() -> list[np.ndarray]:
            return [p.copy() for p in params] if copy else list(params)

        for impl, extra in (("fused", {"fused": True}), ("foreach=False", {"foreach": False})):
            self.params = fresh()
            self.tensors = [torch.from_numpy(p) for p in self.params]
            for t, g in zip(self.tensors, self.grads, strict=True):
                t.grad = torch.from_numpy(g)
            try:
                self.opt = cls(self.tensors, **variant.kwargs, **extra)
                self.opt.step()  # a fused kernel that does not exist on CPU fails here
            except (TypeError, RuntimeError, ValueError) as exc:
                last = exc
                continue
            self.impl = impl
            # restart from the initial values so that every backend starts alike
            self.params = fresh()
            self.tensors = [torch.from_numpy(p) for p in self.params]
            for t, g in zip(self.tensors, self.grads, strict=True):
                t.grad = torch.from_numpy(g)
            self.opt = cls(self.tensors, **variant.kwargs, **extra)
            return
        raise LookupError(f"torch.optim.{variant.cls.__name__} failed on CPU: {last}")

    def timed(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``opt.step()`` (the grads are set once, on the tensors)."""
        return self.opt.step, ()

    def step(self) -> None:
        """One step."""
        self.opt.step()

    def snapshot(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Copies of the parameters and torch's state as a fusedopt state dict.

        The state keys are PyTorch's in both libraries; torch's SGD keeps no ``step``,
        which fusedopt's SGD needs only to tell the first step (any value >= 1 says
        "not the first").
        """
        template = self.variant.make([np.zeros(1, p.dtype) for p in self.params], "numpy")
        state: dict[int, dict[str, np.ndarray]] = {}
        for i, t in enumerate(self.tensors):
            st = {}
            for k, v in self.opt.state.get(t, {}).items():
                if v is None:
                    continue
                st[k] = np.array(v.numpy() if hasattr(v, "numpy") else v)
            if st and "step" in template.scalar_names and "step" not in st:
                st["step"] = np.array(1.0)
            if st:
                state[i] = st
        groups = template.state_dict()["param_groups"]
        return [p.copy() for p in self.params], {"state": state, "param_groups": groups}


Runner = FusedRunner | TorchRunner


_CHUNK = 1 << 16  # elements compared at a time: float64 temporaries that stay in cache


def _compare(
    name: str,
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    before: Sequence[np.ndarray] | None = None,
) -> str | None:
    """None if every ``actual[i]`` agrees with ``expected[i]``; else a message.

    Agreement: within 64 ulps of each value plus 64 ulps of the largest value of that
    array (for values near zero). With ``before`` (the values before the step), the
    change ``actual - before`` must also be within 0.1% of ``expected - before``, up
    to the same ulps: a step that is off by a little is caught even where the
    parameters are much larger than the step. NaN agrees with NaN.
    """
    if not expected:
        return None
    eps = float(np.finfo(expected[0].dtype).eps)
    sizes = np.array([x.size for x in expected], dtype=np.int64)
    if [x.size for x in actual] != sizes.tolist():
        return f"{name}: sizes {[x.size for x in actual]}, expected {sizes.tolist()}"
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    a = np.concatenate([np.ravel(x) for x in actual])
    e = np.concatenate([np.ravel(x) for x in expected])
    b = None if before is None else np.concatenate([np.ravel(x) for x in before])
    scale = np.zeros(len(sizes))
    nonempty = sizes > 0
    if e.size:
        with np.errstate(invalid="ignore"):
            scale[nonempty] = np.fmax.reduceat(np.abs(e), offsets[nonempty])
    scale_of = np.repeat(scale.astype(e.dtype), sizes)
    n_bad, worst, worst_at, what = 0, -np.inf, -1, "values"
    for lo in range(0, e.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        ac, ec = a[sl].astype(np.float64), e[sl].astype(np.float64)
        both_nan = np.isnan(ac) & np.isnan(ec)
        slack = 64 * eps * (np.abs(ec) + scale_of[sl])
        excess = np.abs(ac - ec) - slack
        if b is not None:
            bc = b[sl].astype(np.float64)
            d_exp = ec - bc
            step_slack = 64 * eps * (np.abs(bc) + np.abs(d_exp)) + 1e-3 * np.abs(d_exp)
            excess = np.fmax(excess, np.abs((ac - bc) - d_exp) - step_slack)
        with np.errstate(invalid="ignore"):
            bad = ~(excess <= 0) & ~both_nan
        count = int(np.count_nonzero(bad))
        if count:
            n_bad += count
            k = int(np.argmax(np.where(bad, np.nan_to_num(excess, nan=np.inf), -np.inf)))
            if worst_at < 0 or excess[k] > worst:
                worst, worst_at = float(excess[k]), lo + k
    if not n_bad:
        return None
    i = int(np.searchsorted(offsets, worst_at, side="right") - 1)
    j = worst_at - int(offsets[i])
    if b is not None:
        what = "values (or changes in the step)"
    return (
        f"{name}: {n_bad} of {e.size} {what} differ; worst: {name}[{i}].flat[{j}] is "
        f"{float(a[worst_at])!r}, expected {float(e[worst_at])!r}"
    )


def verify(runner: Runner) -> None:
    """Checks the runner's kernel on the state it has reached: one more step must agree
    with the other implementation started from a copy of that state.

    The fused kernel and PyTorch are checked against the NumPy reference; the NumPy
    reference against the fused kernel. The parameters, their change in the step and
    every state array are compared (see :func:`_compare`). Raises
    :class:`BenchCheckError`.
    """
    variant = runner.variant
    before, sd = runner.snapshot()
    other = "fused" if runner.backend == "numpy" else "numpy"
    ref_params = [p.copy() for p in before]
    ref = variant.make(ref_params, other)
    if sd["state"]:
        ref.load_state_dict(sd)
    runner.step()
    ref.step(runner.grads)
    after, sd_after = runner.snapshot()
    problems = [_compare("params", after, ref_params, before)]
    ref_state = ref.state_dict()["state"]
    keys = {k for st in sd_after["state"].values() for k, v in st.items() if np.ndim(v) > 0}
    for key in sorted(keys):
        idx = [
            i for i, st in sd_after["state"].items() if key in st and key in ref_state.get(i, {})
        ]
        problems.append(
            _compare(
                f"state[{key!r}]",
                [sd_after["state"][i][key] for i in idx],
                [ref_state[i][key] for i in idx],
            )
        )
    found = [p for p in problems if p]
    if found:
        impl = runner.backend if runner.impl == runner.backend else f"torch, {runner.impl}"
        what = f"{variant.id} ({impl})"
        raise BenchCheckError(f"{what} disagrees with {other}: " + "; ".join(found))
