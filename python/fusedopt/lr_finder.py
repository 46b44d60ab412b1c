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

Reading the curve
-----------------
The moving average above lags: with ``beta = 0.98`` it remembers ~50 steps, half of a
default test, so its descent is flattened and shifted to higher lrs, and a wiggle of batch
noise early on can be steeper than the real descent. The suggestions therefore read a
second, centered curve (no lag): the raw losses averaged over a window of ``k`` points
centered on each step (``k`` ~ a tenth of the points, odd, >= 3; fewer at both ends), see
:attr:`LRFinderResult.centered_losses`. The default suggestion, ``"valley"`` (after fastai's
``valley``), finds the longest descending stretch of that curve (its longest strictly
decreasing subsequence, so that small bumps do not cut a descent in two) and answers the
lr where it falls fastest per unit of ``log10(lr)``. The curve shows a *clear descent*
(:attr:`LRFinderResult.clear_descent`) when that stretch falls by at least the noise of the
raw loss (the robust standard deviation of raw minus centered loss) and by at least 20% of
its level where it starts; otherwise the result says so and its suggestion is a guess.

Example::

    >>> import fusedopt as fo
    >>> from fusedopt.lr_finder import lr_find
    >>> opt = fo.SGD(model.params, lr=0.1, momentum=0.9)
    >>> result = lr_find(opt, lambda b: model.loss_and_grads(*b), batches=loader)
    >>> result.suggested_lr            # "valley": steepest point of the longest descent
    >>> result.clear_descent           # False: no clear descent, the suggestion is a guess
    >>> print(result.summary())        # the suggestions (and the warning) in words
    >>> result.suggestion("minimum")   # the lr of the lowest smoothed loss, divided by 10
    >>> result.plot()                  # needs matplotlib
"""

from __future__ import annotations

import bisect
import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fusedopt._optional import pyplot

__all__ = ["CLEAR_DROP_FRACTION", "CLEAR_DROP_NOISE", "LRFinderResult", "Valley", "lr_find"]

StepMode = Literal["exp", "linear"]
SuggestMethod = Literal["valley", "steepest", "minimum"]
_METHODS = ("valley", "steepest", "minimum")

#: A clear descent falls by at least this fraction of the loss where it starts...
CLEAR_DROP_FRACTION = 0.2
#: ... and by at least this many robust standard deviations of the raw loss's noise.
CLEAR_DROP_NOISE = 1.0
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


def _centered_window(n: int) -> int:
    """The width of the centered average over ``n`` points: ~n/10, odd, at least 3."""
    return max(3, (n // 10) | 1)


def _centered_mean(values: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Mean over a window of ``k`` (odd) points centered on each point; the window is cut
    at both ends (fewer points there), so the curve has no lag and no padding."""
    if values.size == 0:
        return values.copy()
    kernel = np.ones(k)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(np.ones_like(values), kernel, mode="same")
    return np.asarray(total / count, dtype=np.float64)


def _longest_descent(values: NDArray[np.float64]) -> list[int]:
    """Indices of a longest strictly decreasing subsequence of ``values``, in O(n log n)
    (patience sorting on ``-values``; of equal values the first is kept, so a descent
    onto a flat floor ends where it reaches the floor); empty for no values."""
    tails: list[float] = []  # tails[j]: -(last value) of the best run of length j + 1
    ends: list[int] = []  # ends[j]: its index
    prev = [-1] * len(values)
    for i, v in enumerate(values.tolist()):
        j = bisect.bisect_left(tails, -v)
        prev[i] = ends[j - 1] if j > 0 else -1
        if j == len(tails):
            tails.append(-v)
            ends.append(i)
        elif tails[j] != -v:  # on a tie the earlier point stays: a descent ends early
            tails[j] = -v
            ends[j] = i
    out: list[int] = []
    i = ends[-1] if ends else -1
    while i >= 0:
        out.append(i)
        i = prev[i]
    return out[::-1]


@dataclass(frozen=True)
class Valley:
    """The longest descending stretch of the centered loss curve (see :mod:`fusedopt.lr_finder`).

    Attributes:
        start_lr, end_lr: where the stretch starts (its last point within a tenth of
            ``drop`` of its first: before it, the curve is flat) and where it ends.
        lr: its steepest point: the ``"valley"`` suggestion.
        drop: how much the centered loss falls along it (from its first point).
        level: the centered loss at its first point.
        noise: robust standard deviation of the raw loss around the centered one
            (``1.4826 * median|raw - centered|``) up to the stretch's end.
        clear: ``drop >= CLEAR_DROP_NOISE * noise`` and ``drop >= CLEAR_DROP_FRACTION * |level|``.
    """

    start_lr: float
    end_lr: float
    lr: float
    drop: float
    level: float
    noise: float
    clear: bool


@dataclass(frozen=True)
class LRFinderResult:
    """The outcome of :func:`lr_find`.

    Attributes:
        lrs: the learning rate of every step taken, increasing.
        losses: the raw loss returned for each of those steps.
        smoothed_losses: the bias-corrected moving average of ``losses`` (what the test
            stops on; ``"steepest"`` and ``"minimum"`` read it).
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

    def _usable(self, skip_start: int, skip_end: int) -> tuple[int, int, int]:
        """``(n, lo, hi)``: ``n`` points before the first non-finite loss, and the window."""
        finite = np.isfinite(self.losses) & np.isfinite(self.smoothed_losses)
        n = len(finite) if finite.all() else int(np.argmin(finite))
        lo, hi = _window(n, skip_start, skip_end)
        if hi - lo < 3:
            raise ValueError(
                f"the range test recorded {n} usable points, too few to suggest a learning "
                "rate: run more iterations or start from a smaller lr"
            )
        return n, lo, hi

    @property
    def centered_losses(self) -> NDArray[np.float64]:
        """The raw losses averaged over a centered window of ~n/10 points (odd, >= 3, cut
        at both ends): a smoothed curve without the moving average's lag. NaN from the
        first non-finite loss on."""
        finite = np.isfinite(self.losses)
        n = len(finite) if finite.all() else int(np.argmin(finite))
        out = np.full(len(self.losses), np.nan)
        out[:n] = _centered_mean(self.losses[:n], _centered_window(n))
        return out

    def valley(self, skip_start: int = 10, skip_end: int = 5) -> Valley:
        """The longest descending stretch of :attr:`centered_losses`, its steepest point
        and whether it is a clear descent (see :class:`Valley` and the module docstring).

        Raises:
            ValueError: fewer than 3 usable points.
        """
        _, lo, hi = self._usable(skip_start, skip_end)
        lrs = self.lrs[lo:hi]
        centered = self.centered_losses[lo:hi]
        idx = _longest_descent(centered)
        a, b = idx[0], idx[-1]
        slope = np.gradient(centered, np.log10(lrs))
        steep = a + int(np.argmin(slope[a : b + 1]))
        drop = float(centered[a] - centered[b])
        level = float(centered[a])
        # the descent starts at the last point of the run (up to the steepest) still
        # within a tenth of the drop of the run's first: earlier points are the flat noise
        begin = max(i for i in idx if i <= steep and centered[i] >= level - 0.1 * drop)
        resid = self.losses[lo : lo + b + 1] - centered[: b + 1]
        noise = float(1.4826 * np.median(np.abs(resid)))
        clear = (
            drop > 0
            and drop >= CLEAR_DROP_NOISE * noise
            and drop >= CLEAR_DROP_FRACTION * abs(level)
        )
        return Valley(
            start_lr=float(lrs[begin]),
            end_lr=float(lrs[b]),
            lr=float(lrs[steep]),
            drop=drop,
            level=level,
            noise=noise,
            clear=bool(clear),
        )

    @property
    def clear_descent(self) -> bool:
        """Whether the curve shows a clear descent (``valley().clear``): when it does not,
        no learning rate can be read off it with confidence and :meth:`summary` says so.
        False when too few points were recorded."""
        try:
            return self.valley().clear
        except ValueError:
            return False

    def suggestion(
        self, method: SuggestMethod = "valley", skip_start: int = 10, skip_end: int = 5
    ) -> float:
        """A learning rate read off the curve.

        ``"valley"`` (the default, after fastai's ``valley``): the steepest point (the
        lowest ``d centered / d log10(lr)``) of the longest descending stretch of
        :attr:`centered_losses` (its longest strictly decreasing subsequence). Robust to a
        wiggle of batch noise, which is short, and free of the moving average's lag.
        Check :attr:`clear_descent`: without a clear descent the answer is a guess.

        ``"steepest"`` (pytorch-lr-finder and fastai's ``steep``): the lr where the moving
        average :attr:`smoothed_losses` falls fastest per unit of log-lr, searched
        between ``skip_start`` and its lowest point. On a quadratic ``f(x) = h/2 |x|^2``
        trained by SGD (best lr ``1/h``, divergence beyond ``2/h``) this lands a few times
        below ``1/h``; with batch noise it can pick a wiggle of the noise.

        ``"minimum"`` (fastai's ``lr_min``): the lr of the lowest :attr:`smoothed_losses`
        divided by 10, one decade back from where training stops improving.

        The first ``skip_start`` and last ``skip_end`` points (fewer on short runs) and
        trailing non-finite losses are ignored.

        Raises:
            ValueError: unknown method, or fewer than 3 usable points.
        """
        if method not in _METHODS:
            raise ValueError(f"method must be 'valley', 'steepest' or 'minimum', got {method!r}")
        if method == "valley":
            return self.valley(skip_start, skip_end).lr
        _, lo, hi = self._usable(skip_start, skip_end)
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
        """``suggestion("valley")``: the steepest point of the longest descent of the
        centered loss. A guess when :attr:`clear_descent` is False."""
        return self.suggestion("valley")

    def summary(self) -> str:
        """The suggestions in words, one per line, and a warning first when the curve
        shows no clear descent."""
        lines = [f"stopped after {len(self.lrs)} steps: {self.stop_reason}"]
        try:
            v = self.valley()
        except ValueError as exc:
            return "\n".join([*lines, f"no suggestion: {exc}"])
        if not v.clear:
            pct = 100 * v.drop / abs(v.level) if v.level else math.inf
            lines.append(
                f"no clear descent: the loss falls by only {max(v.drop, 0.0):.3g} along its "
                f"longest descent ({pct:.0f}% of {v.level:.3g}; noise {v.noise:.3g}); "
                "the suggestions are guesses: widen the lr range, run more steps, or check "
                "that the loss depends on the parameters"
            )
        tag = "" if v.clear else "guess, "
        lines.append(
            f"suggested lr: {v.lr:.2g} ({tag}valley: steepest point of the longest descent, "
            f"lr {v.start_lr:.2g} .. {v.end_lr:.2g})"
        )
        steep = self.suggestion("steepest")
        low = self.suggestion("minimum")
        lines.append(f"steepest:     {steep:.2g} (steepest descent of the moving average)")
        lines.append(
            f"minimum / 10: {low:.2g} (lowest moving average at lr={low * 10:.2g}, divided by 10)"
        )
        return "\n".join(lines)

    def plot(
        self,
        ax: Any = None,
        skip_start: int = 10,
        skip_end: int = 5,
        log_lr: bool = True,
        show_suggestion: bool = True,
    ) -> Any:
        """Plot the raw loss (light), the centered and moving-average curves against the
        lr, the valley and the suggestions; needs matplotlib.

        The y-limits hold the raw losses from the lowest to the ~95th percentile of those
        before the explosion (with a margin), so that the raw curve is visible, and the
        legend sits below the axes, off the data.

        Args:
            ax: a matplotlib ``Axes`` to draw on (default: a new figure).
            skip_start, skip_end: points left out at both ends, as in :meth:`suggestion`.
            log_lr: logarithmic lr axis.
            show_suggestion: shade the valley and mark the suggestions.

        Returns:
            The ``Axes``.

        Raises:
            MissingDependencyError: matplotlib is not installed (an ``ImportError``
                that names the extra to install).
        """
        if ax is None:
            plt = pyplot("LRFinderResult.plot")
            _, ax = plt.subplots(figsize=(6.4, 4.8))
        lo, hi = _window(len(self.lrs), skip_start, skip_end)
        lrs, raw = self.lrs[lo:hi], self.losses[lo:hi]
        sm, centered = self.smoothed_losses[lo:hi], self.centered_losses[lo:hi]
        ax.plot(lrs, raw, color="C0", alpha=0.3, lw=0.8, marker=".", ms=2, label="loss (raw)")
        ax.plot(lrs, centered, color="C0", lw=2, label="smoothed loss (centered)")
        ax.plot(lrs, sm, color="0.45", lw=1, ls=":", label="moving average (stop test)")
        note = ""
        if show_suggestion:
            try:
                v = self.valley(skip_start, skip_end)
            except ValueError:
                v = None
            if v is not None:
                ax.axvspan(v.start_lr, v.end_lr, color="C2", alpha=0.08, lw=0)
                word = "valley" if v.clear else "valley (no clear descent)"
                ax.axvline(v.lr, color="C3", lw=1.5, label=f"{word}: {v.lr:.2g}")
                note = "" if v.clear else " - no clear descent"
                for method, color, label in (
                    ("steepest", "C1", "steepest (moving avg)"),
                    ("minimum", "C2", "minimum / 10"),
                ):
                    lr = self.suggestion(method, skip_start, skip_end)  # type: ignore[arg-type]
                    ax.axvline(lr, color=color, ls="--", lw=1, label=f"{label}: {lr:.2g}")
        if log_lr:
            ax.set_xscale("log")
        limits = _y_limits(raw)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("learning-rate range test" + note)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=2,
            fontsize=8,
            frameon=False,
        )
        return ax


def _y_limits(raw: NDArray[np.float64]) -> tuple[float, float] | None:
    """From the lowest finite raw loss to the 95th percentile of the raw losses before the
    explosion (the last point under 3x the first, a finite one), with a 5% margin."""
    finite = raw[np.isfinite(raw)]
    if not finite.size:
        return None
    first = float(finite[0])
    cap = first + 2 * abs(first) if first else float(np.max(finite))
    calm = finite[finite <= cap]
    top = float(np.quantile(calm if calm.size else finite, 0.95))
    top = max(top, first)
    bottom = float(finite.min())
    pad = 0.05 * (top - bottom) if top > bottom else 0.05 * abs(top) + 1e-12
    return bottom - pad, top + pad


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
