"""The learning-rate range test (Smith 2017), for any fusedopt optimizer.

Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017),
popularized by fastai's ``lr_find`` and by pytorch-lr-finder. The test trains for
``num_iter`` steps while the learning rate grows from ``start_lr`` to ``end_lr``,
exponentially (step ``i`` of ``n``)::

    lr_i = start_lr * (end_lr / start_lr) ** (i / (n - 1))

or linearly, ``lr_i = start_lr + (end_lr - start_lr) * i / (n - 1)``, and records the
loss of every step. The raw losses are noisy, so they are smoothed with a bias-corrected
exponential moving average (``beta = smooth``)::

    m_i = beta * m_{i-1} + (1 - beta) * loss_i,    m_{-1} = 0
    smoothed_i = m_i / (1 - beta ** (i + 1))

and the test stops early once ``smoothed_i > diverge_th * best`` (``best`` the lowest
smoothed loss so far; ``best + (diverge_th - 1) * |best|`` for a loss that can be
negative) or the loss is not finite. Afterwards the parameters (in place: the caller's
arrays stay the same objects), the optimizer state and every param-group hyperparameter
(the lrs included) are restored exactly as they were.

The model is not the finder's business: it calls a user function that returns
``(loss, grads)``, either with no argument or with each item of an optional ``batches``
iterable, whatever that item is (a tuple of arrays, a dict, an index...).

Example::

    >>> import fusedopt as fo
    >>> from fusedopt.lr_finder import lr_find
    >>> opt = fo.SGD(model.params, lr=0.1, momentum=0.9)
    >>> result = lr_find(opt, lambda b: model.loss_and_grads(*b), batches=loader)
    >>> result.suggested_lr          # steepest descent of the smoothed loss over log(lr)
    >>> result.suggestion("minimum") # the lr of the lowest smoothed loss, divided by 10
    >>> result.plot()                # needs matplotlib
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fusedopt._optional import pyplot

__all__ = ["LRFinderResult", "lr_find"]

StepMode = Literal["exp", "linear"]
SuggestMethod = Literal["steepest", "minimum"]
LossAndGrads = Callable[..., tuple[float, Sequence[NDArray[Any]]]]


def _window(n: int, skip_start: int, skip_end: int) -> tuple[int, int]:
    """The ``[lo, hi)`` slice of ``n`` points left after skipping both ends.

    The skips shrink on short runs (at most a quarter of the points each) so that a
    short test still leaves most of its points.
    """
    if skip_start < 0 or skip_end < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got {skip_start}, {skip_end}")
    lo = min(skip_start, n // 4)
    hi = n - min(skip_end, n // 4)
    return lo, hi


@dataclass(frozen=True)
class LRFinderResult:
    """The outcome of :func:`lr_find`.

    Attributes:
        lrs: the learning rate of every step taken, increasing.
        losses: the raw loss returned for each of those steps.
        smoothed_losses: the bias-corrected moving average of ``losses``.
        best_loss: the lowest smoothed loss.
        diverged: whether the test stopped early because the loss exploded or became
            non-finite.
        stop_reason: why the test ended, in words.
    """

    lrs: NDArray[np.float64]
    losses: NDArray[np.float64]
    smoothed_losses: NDArray[np.float64]
    best_loss: float
    diverged: bool
    stop_reason: str

    def suggestion(
        self, method: SuggestMethod = "steepest", skip_start: int = 10, skip_end: int = 5
    ) -> float:
        """A learning rate read off the curve.

        ``"steepest"`` (the default, as in pytorch-lr-finder and fastai's ``steep``): the
        lr where the smoothed loss falls fastest per unit of log-lr, i.e. the minimum of
        ``d smoothed / d log10(lr)`` (``numpy.gradient``, so it works for both ramps),
        searched between ``skip_start`` and the lowest smoothed loss. On a quadratic
        ``f(x) = h/2 |x|^2`` trained by SGD (best lr ``1/h``, divergence beyond ``2/h``)
        this lands a few times below ``1/h``: a safe, fast rate.

        ``"minimum"`` (fastai's ``lr_min``): the lr of the lowest smoothed loss divided
        by 10, one decade back from where training stops improving.

        The first ``skip_start`` and last ``skip_end`` points (fewer on short runs) and
        trailing non-finite losses are ignored.

        Raises:
            ValueError: unknown method, or fewer than 3 usable points.
        """
        if method not in ("steepest", "minimum"):
            raise ValueError(f"method must be 'steepest' or 'minimum', got {method!r}")
        finite = np.isfinite(self.smoothed_losses)
        n = len(finite) if finite.all() else int(np.argmin(finite))
        lo, hi = _window(n, skip_start, skip_end)
        if hi - lo < 3:
            raise ValueError(
                f"the range test recorded {n} usable points, too few to suggest a learning "
                "rate: run more iterations or start from a smaller lr"
            )
        lrs = self.lrs[lo:hi]
        sm = self.smoothed_losses[lo:hi]
        i_min = int(np.argmin(sm))
        if method == "minimum":
            return float(lrs[i_min] / 10)
        slope = np.gradient(sm, np.log10(lrs))
        descent = slope[: i_min + 1] if i_min >= 1 else slope
        return float(lrs[int(np.argmin(descent))])

    @property
    def suggested_lr(self) -> float:
        """``suggestion("steepest")``: the lr of the steepest descent of the smoothed loss."""
        return self.suggestion("steepest")

    def plot(
        self,
        ax: Any = None,
        skip_start: int = 10,
        skip_end: int = 5,
        log_lr: bool = True,
        show_suggestion: bool = True,
    ) -> Any:
        """Plot the smoothed (and, faintly, the raw) loss against the lr; needs matplotlib.

        Args:
            ax: a matplotlib ``Axes`` to draw on (default: a new figure).
            skip_start, skip_end: points left out at both ends, as in :meth:`suggestion`.
            log_lr: logarithmic lr axis.
            show_suggestion: mark the steepest-descent and minimum/10 suggestions.

        Returns:
            The ``Axes``.

        Raises:
            MissingDependencyError: matplotlib is not installed (an ``ImportError``
                that names the extra to install).
        """
        if ax is None:
            plt = pyplot("LRFinderResult.plot")
            _, ax = plt.subplots(figsize=(6.4, 4.2))
        lo, hi = _window(len(self.lrs), skip_start, skip_end)
        lrs, raw, sm = self.lrs[lo:hi], self.losses[lo:hi], self.smoothed_losses[lo:hi]
        ax.plot(lrs, raw, color="C0", alpha=0.25, lw=1, label="loss")
        ax.plot(lrs, sm, color="C0", lw=2, label="smoothed loss")
        if show_suggestion:
            for method, color, label in (
                ("steepest", "C3", "steepest descent"),
                ("minimum", "C2", "minimum / 10"),
            ):
                try:
                    lr = self.suggestion(method, skip_start, skip_end)  # type: ignore[arg-type]
                except ValueError:
                    continue
                ax.axvline(lr, color=color, ls="--", lw=1, label=f"{label}: {lr:.2g}")
        if log_lr:
            ax.set_xscale("log")
        finite = sm[np.isfinite(sm)]
        if finite.size:
            top = min(float(finite.max()), 4 * float(finite.min()) + 1e-12)
            bottom = float(finite.min())
            pad = 0.05 * (top - bottom) if top > bottom else 0.05 * abs(top) + 1e-12
            ax.set_ylim(bottom - pad, top + pad)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("learning-rate range test")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return ax


def _lr_schedule(start_lr: float, end_lr: float, num_iter: int, step_mode: str) -> NDArray:
    t = np.arange(num_iter, dtype=np.float64) / max(num_iter - 1, 1)
    if step_mode == "exp":
        return start_lr * (end_lr / start_lr) ** t
    return start_lr + (end_lr - start_lr) * t


def _batch_source(batches: Iterable[Any] | None) -> Callable[[], tuple[bool, Any]]:
    """``next_batch() -> (ok, batch)``, restarting ``batches`` when it is exhausted."""
    if batches is None:
        return lambda: (True, None)
    it: Iterator[Any] = iter(batches)

    def next_batch() -> tuple[bool, Any]:
        nonlocal it
        try:
            return True, next(it)
        except StopIteration:
            it = iter(batches)
            try:
                return True, next(it)
            except StopIteration:
                return False, None

    return next_batch


def lr_find(
    optimizer: Any,
    loss_and_grads: LossAndGrads,
    batches: Iterable[Any] | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    step_mode: StepMode = "exp",
    smooth: float = 0.98,
    diverge_th: float = 5.0,
) -> LRFinderResult:
    """Run the learning-rate range test with ``optimizer``; restore everything afterwards.

    At step ``i`` every param group's ``lr`` is set to ``lr_i`` (see the module
    docstring), ``loss, grads = loss_and_grads(batch)`` is called (``loss_and_grads()``
    when ``batches`` is ``None``) and ``optimizer.step(grads)`` applied. ``batches`` is
    restarted with ``iter(batches)`` when it runs out, so a list or any re-iterable data
    loader works for any ``num_iter``.

    Before the first step the parameter values, ``optimizer.state_dict()`` and the
    param groups' hyperparameters are saved; afterwards (also after an exception or
    Ctrl-C) they are written back: parameters in place (``p[...] = saved``), the state
    through ``load_state_dict``, so a training can continue as if the test never ran.

    Args:
        optimizer: any fusedopt optimizer (``param_groups``, ``step``, ``state_dict``,
            ``load_state_dict``).
        loss_and_grads: returns ``(loss, grads)`` with one gradient per parameter, in the
            optimizer's order.
        batches: optional iterable whose items are passed to ``loss_and_grads``.
        start_lr: first lr, ``> 0``.
        end_lr: last lr, ``> start_lr``.
        num_iter: number of steps (the test may stop earlier), ``>= 2``.
        step_mode: ``"exp"`` (geometric ramp, the usual choice) or ``"linear"``.
        smooth: ``beta`` of the moving average, in ``[0, 1)`` (0: no smoothing).
        diverge_th: stop once the smoothed loss exceeds ``diverge_th`` times the best, ``> 1``.

    Returns:
        An :class:`LRFinderResult` with the lrs, raw and smoothed losses, suggestions and
        ``plot()``.
    """
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start_lr must be a positive number, got {start_lr}")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(f"end_lr must be greater than start_lr={start_lr}, got {end_lr}")
    if isinstance(num_iter, bool) or not isinstance(num_iter, int | np.integer):
        raise TypeError(f"num_iter must be an int, got {type(num_iter).__name__}")
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"step_mode must be 'exp' or 'linear', got {step_mode!r}")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    if not diverge_th > 1.0:
        raise ValueError(f"diverge_th must be greater than 1, got {diverge_th}")

    groups = optimizer.param_groups
    params = [p for g in groups for p in g["params"]]
    saved_params = [np.array(p, copy=True) for p in params]
    saved_state = copy.deepcopy(optimizer.state_dict())
    saved_hyper = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in groups]

    schedule = _lr_schedule(start_lr, end_lr, int(num_iter), step_mode)
    next_batch = _batch_source(batches)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    diverged = False
    reason = f"reached end_lr={end_lr:g} after {num_iter} steps"
    try:
        for i, lr in enumerate(schedule):
            ok, batch = next_batch()
            if not ok:
                reason = f"batches yielded nothing more after {i} steps"
                break
            for g in groups:
                g["lr"] = float(lr)
            loss, grads = loss_and_grads(batch) if batches is not None else loss_and_grads()
            loss = float(loss)
            avg = smooth * avg + (1 - smooth) * loss
            sm = avg / (1 - smooth ** (i + 1))
            lrs.append(float(lr))
            losses.append(loss)
            smoothed.append(sm)
            if not math.isfinite(sm):
                diverged = True
                reason = f"loss became {loss} at lr={lr:.3g}"
                break
            if i > 0 and sm > best + (diverge_th - 1) * abs(best):
                diverged = True
                reason = (
                    f"smoothed loss {sm:.4g} exceeded {diverge_th:g} x the best "
                    f"({best:.4g}) at lr={lr:.3g}"
                )
                break
            best = min(best, sm)
            optimizer.step(grads)
    finally:
        optimizer.load_state_dict(saved_state)
        for g, hyper in zip(optimizer.param_groups, saved_hyper, strict=True):
            g.update(copy.deepcopy(hyper))
        for p, saved in zip(params, saved_params, strict=True):
            p[...] = saved

    return LRFinderResult(
        lrs=np.asarray(lrs, dtype=np.float64),
        losses=np.asarray(losses, dtype=np.float64),
        smoothed_losses=np.asarray(smoothed, dtype=np.float64),
        best_loss=float(best),
        diverged=diverged,
        stop_reason=reason,
    )
