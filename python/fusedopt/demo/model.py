"""A small NumPy MLP with hand-written forward and backward passes, and a training loop.

Used by the ``fusedopt`` command line and meant to be read as an example of driving a
fusedopt optimizer: the model owns its parameters as plain NumPy arrays, computes the
gradients itself, and the optimizer updates the arrays in place.

The network is ``L`` affine layers with an activation ``phi`` between them::

    a_0 = X,   z_l = a_{l-1} W_l + b_l,   a_l = phi(z_l)   (l < L),   logits = z_L

trained with the mean softmax cross-entropy over a batch of ``N`` rows::

    p = softmax(z) = exp(z - max z) / sum exp(z - max z)
    loss = -(1/N) sum_n log p[n, y_n]

whose gradients are (backpropagation, ``Y`` the one-hot labels)::

    dz_L = (p - Y) / N
    dW_l = a_{l-1}^T dz_l,   db_l = sum_n dz_l[n],   da_{l-1} = dz_l W_l^T
    dz_{l-1} = da_{l-1} * phi'(z_{l-1})

With a float16 or bfloat16 ``dtype`` (``"bfloat16"`` is ``ml_dtypes.bfloat16``, the extra
``fusedopt[half]``) the parameters are stored in that dtype while the forward and backward
passes compute in float32 (the weights cast up for the matrix products, as mixed-precision
training does); the gradients handed to the optimizer are cast back to the parameters'
dtype, which is what a fusedopt optimizer takes for half-precision parameters.

Example::

    >>> import fusedopt as fo
    >>> from fusedopt.demo.model import MLP, fit
    >>> from fusedopt.demo.data import load_digits
    >>> data = load_digits()
    >>> model = MLP((64, 128, 10), seed=0)
    >>> opt = fo.Adam(model.params, lr=3e-3)
    >>> history = fit(model, opt, data.X_train, data.y_train, epochs=10, batch_size=32,
    ...               X_test=data.X_test, y_test=data.y_test)
    >>> history.test_accuracy[-1] > 0.95
    True
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fusedopt.demo.data import iterate_minibatches
from fusedopt.demo.progress import progress_bar
from fusedopt.low_precision import bfloat16, is_half

__all__ = [
    "MLP",
    "History",
    "TrainingDiverged",
    "fit",
    "softmax_cross_entropy",
]

Activation = Literal["relu", "tanh"]


def softmax_cross_entropy(
    logits: NDArray[np.floating], y: NDArray[np.integer]
) -> tuple[float, NDArray[np.floating]]:
    """Mean softmax cross-entropy of ``logits`` (``N x C``) against labels ``y`` (``N``).

    ``loss = -(1/N) sum_n log softmax(z_n)[y_n]``, computed stably by subtracting each
    row's maximum. Returns ``(loss, dloss/dlogits)`` with the gradient
    ``(softmax(z) - onehot(y)) / N`` in the dtype of ``logits``.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    log_p = shifted[rows, y] - np.log(sum_exp[:, 0])
    loss = -float(np.mean(log_p, dtype=np.float64))
    grad = exp / sum_exp
    grad[rows, y] -= 1
    grad /= n
    return loss, grad


class Trainable(Protocol):
    """What :func:`fit` trains: the :class:`MLP`, or a wrapper of it
    (:class:`fusedopt.demo.parallel.DataParallel`)."""

    params: list[NDArray[np.floating]]

    def loss_and_grads(
        self, X: NDArray[np.floating], y: NDArray[np.integer]
    ) -> tuple[float, list[NDArray[np.floating]]]: ...

    def loss(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float: ...

    def accuracy(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float: ...


class MLP:
    """Multi-layer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` in NumPy.

    Weights use He initialization, ``W_l ~ N(0, 2 / fan_in)`` (suited to ReLU), biases
    start at zero. ``params`` is the list ``[W_1, b_1, W_2, b_2, ...]`` of the arrays
    themselves, in the order ``loss_and_grads`` returns their gradients: hand it to a
    fusedopt optimizer, which updates it in place.

    Args:
        sizes: layer widths, input first, number of classes last (at least two).
        activation: ``"relu"`` or ``"tanh"``, between the affine layers.
        dtype: floating dtype of the parameters (and of the gradients): float32, float64,
            float16 or bfloat16 (``"bfloat16"`` or ``ml_dtypes.bfloat16``). With a half
            dtype the passes compute in float32 (:attr:`compute_dtype`).
        seed: seed of the initialization.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (64, 128, 10),
        activation: Activation = "relu",
        dtype: DTypeLike = np.float32,
        seed: int = 0,
    ) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must hold at least two positive widths, got {sizes}")
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        self.sizes = sizes
        self.activation: Activation = activation
        self.dtype = _param_dtype(dtype)
        #: The dtype of the forward and backward passes: float32 for half parameters.
        self.compute_dtype = np.dtype(np.float32) if is_half(self.dtype) else self.dtype
        rng = np.random.default_rng(seed)
        self.params: list[NDArray[np.floating]] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            w = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
            self.params.append(np.ascontiguousarray(w, dtype=self.dtype))
            self.params.append(np.zeros(fan_out, dtype=self.dtype))

    @property
    def n_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(p.size for p in self.params)

    def _phi(self, z: NDArray[np.floating]) -> NDArray[np.floating]:
        return np.maximum(z, 0) if self.activation == "relu" else np.tanh(z)

    def _compute_params(self) -> list[NDArray[np.floating]]:
        """The parameters in :attr:`compute_dtype` (themselves, or float32 copies of half ones)."""
        if self.compute_dtype == self.dtype:
            return self.params
        return [p.astype(self.compute_dtype) for p in self.params]

    def forward(self, X: NDArray[np.floating]) -> NDArray[np.floating]:
        """Logits ``(N, n_classes)`` for the inputs ``X`` ``(N, n_features)``, in
        :attr:`compute_dtype`."""
        a = np.asarray(X, dtype=self.compute_dtype)
        params = self._compute_params()
        n_layers = len(params) // 2
        for i in range(n_layers):
            a = a @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                a = self._phi(a)
        return a

    def loss_and_grads(
        self, X: NDArray[np.floating], y: NDArray[np.integer]
    ) -> tuple[float, list[NDArray[np.floating]]]:
        """Mean cross-entropy on the batch and its gradient for every parameter.

        Returns ``(loss, [dW_1, db_1, dW_2, db_2, ...])``, same order, shapes and dtype
        as ``params`` (see the module docstring for the formulas; computed in
        :attr:`compute_dtype`, then cast to the parameters' dtype).
        """
        params = self._compute_params()
        n_layers = len(params) // 2
        acts = [np.asarray(X, dtype=self.compute_dtype)]  # a_0 .. a_{L-1}
        zs: list[NDArray[np.floating]] = []
        a = acts[0]
        for i in range(n_layers):
            z = a @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                zs.append(z)
                a = self._phi(z)
                acts.append(a)
            else:
                a = z
        loss, dz = softmax_cross_entropy(a, np.asarray(y))
        grads: list[NDArray[np.floating]] = [np.empty(0)] * len(self.params)
        for i in reversed(range(n_layers)):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                da = dz @ params[2 * i].T
                z = zs[i - 1]
                if self.activation == "relu":
                    dz = da * (z > 0)
                else:
                    dz = da * (1 - acts[i] * acts[i])
        if self.compute_dtype != self.dtype:
            grads = [g.astype(self.dtype) for g in grads]
        return loss, grads

    def loss(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        """Mean cross-entropy on ``(X, y)``, without gradients."""
        return softmax_cross_entropy(self.forward(X), np.asarray(y))[0]

    def predict(self, X: NDArray[np.floating]) -> NDArray[np.intp]:
        """Predicted class of each row of ``X``."""
        return np.argmax(self.forward(X), axis=1)

    def accuracy(self, X: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        """Fraction of the rows of ``X`` whose predicted class is ``y``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _param_dtype(dtype: DTypeLike | str) -> np.dtype[Any]:
    """``dtype`` as a NumPy dtype; the name ``"bfloat16"`` is ``ml_dtypes.bfloat16``
    (imported only then: MissingDependencyError naming the extra ``fusedopt[half]``)."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        return bfloat16()
    d = np.dtype(dtype)
    if d.kind != "f" and not is_half(d):
        raise ValueError(f"dtype must be a floating dtype, got {d}")
    return d


@dataclass
class History:
    """What :func:`fit` recorded.

    Attributes:
        step_losses: training loss of every batch, before its optimizer step.
        lrs: learning rate (of the first param group) used at every step.
        epoch_losses: mean training loss of each completed epoch.
        test_accuracy: held-out accuracy after each completed epoch (if a test set was given).
        test_loss: held-out loss after each completed epoch (if a test set was given).
        step_times: wall time of every ``optimizer.step`` call, in seconds.
        n_steps: number of optimizer steps taken.
        seconds: total wall time of the training.
    """

    step_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    n_steps: int = 0
    seconds: float = 0.0

    @property
    def time_per_step(self) -> float:
        """Median wall time of one ``optimizer.step``, in seconds (``nan`` before any step).

        The median leaves out the first step (which allocates the optimizer state) and
        the occasional step interrupted by the operating system.
        """
        return float(np.median(self.step_times)) if self.step_times else math.nan


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or exploded.

    The message names the epoch, the loss, the learning rate and suggests one ten times
    smaller. The attributes hold the same facts, and ``history`` what was recorded up to
    the divergence.
    """

    def __init__(
        self, epoch: int, step: int, loss: float, lr: float, current_lr: float, history: History
    ) -> None:
        self.epoch = epoch
        self.step = step
        self.loss = loss
        self.lr = lr
        self.current_lr = current_lr
        self.suggested_lr = lr / 10
        self.history = history
        where = f"with lr={lr:g}"
        if not math.isclose(current_lr, lr, rel_tol=1e-6):
            where += f" (scheduled lr at that step: {current_lr:.3g})"
        super().__init__(
            f"training diverged at epoch {epoch}, step {step} (loss={loss:.4g}) {where}: "
            f"try a smaller learning rate, e.g. {self.suggested_lr:g}"
        )


def _is_plateau(scheduler: Any) -> bool:
    return "plateau" in type(scheduler).__name__.lower()


def fit(
    model: Trainable,
    optimizer: Any,
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    *,
    epochs: int,
    batch_size: int = 32,
    scheduler: Any = None,
    X_test: NDArray[np.floating] | None = None,
    y_test: NDArray[np.integer] | None = None,
    seed: int = 0,
    diverge_th: float = 10.0,
    progress: bool = False,
    desc: str | None = None,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """Train ``model`` with ``optimizer`` on ``(X, y)`` for ``epochs`` passes.

    Each step draws a shuffled minibatch, computes the loss and the gradients with
    ``model.loss_and_grads`` and calls ``optimizer.step(grads)``, then
    ``scheduler.step()`` (a schedule counts optimizer steps, not epochs; a
    ``ReduceLROnPlateau`` is stepped once per epoch with the epoch's mean loss instead).
    An optimizer with ``train()`` and ``eval()`` modes (schedule-free) is put in train mode
    before each epoch's steps and in eval mode after them, so the test set is evaluated,
    and the model returned, at its averaged point.

    Divergence: when a batch loss is non-finite or exceeds ``diverge_th`` times the loss
    of the first batch, the training stops with :class:`TrainingDiverged` (NumPy's
    floating-point warnings are silenced inside the loop: the loss check replaces them).

    Args:
        model: the :class:`MLP` (anything with ``loss_and_grads``, ``loss``, ``accuracy``).
        optimizer: a fusedopt optimizer built on ``model.params``.
        X, y: training data.
        epochs: number of passes over the training data.
        batch_size: rows per optimizer step.
        scheduler: an optional ``fusedopt.lr_scheduler`` schedule of ``optimizer``.
        X_test, y_test: held-out data evaluated after each epoch.
        seed: seed of the batch order.
        diverge_th: explosion threshold, relative to the first batch's loss.
        progress: show a progress bar (tqdm, when installed) with loss and accuracy.
        desc: the progress bar's label.
        on_epoch: called as ``on_epoch(epoch, history)`` after each epoch (1-based).

    Returns:
        The :class:`History` of the run.

    Raises:
        TrainingDiverged: the loss became non-finite or exploded.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    rng = np.random.default_rng(seed)
    history = History()
    # The lr the user chose: a schedule keeps it as "initial_lr" and may have written its
    # step-0 value (0 at the start of a warm-up) into "lr".
    group = optimizer.param_groups[0]
    base_lr = float(group.get("initial_lr", group["lr"]))
    steps_per_epoch = math.ceil(X.shape[0] / batch_size)
    has_test = X_test is not None and y_test is not None
    reference: float | None = None
    start = time.perf_counter()
    clock = time.perf_counter
    # Overflow is expected when a run diverges; it is detected from the loss, not warned about.
    quiet_fp = np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
    bar_cm = progress_bar(total=epochs * steps_per_epoch, desc=desc, disable=not progress)
    # A schedule-free optimizer steps in train mode and is evaluated in eval mode
    modal = callable(getattr(optimizer, "train", None)) and callable(
        getattr(optimizer, "eval", None)
    )
    with quiet_fp, bar_cm as bar:
        for epoch in range(1, epochs + 1):
            total, count = 0.0, 0
            if modal:
                optimizer.train()
            for Xb, yb in iterate_minibatches(X, y, batch_size, rng):
                loss, grads = model.loss_and_grads(Xb, yb)
                lr = float(optimizer.param_groups[0]["lr"])
                history.step_losses.append(loss)
                history.lrs.append(lr)
                if reference is None:
                    reference = loss
                if not math.isfinite(loss) or loss > diverge_th * reference:
                    history.seconds = clock() - start
                    raise TrainingDiverged(epoch, history.n_steps + 1, loss, base_lr, lr, history)
                t0 = clock()
                optimizer.step(grads)
                history.step_times.append(clock() - t0)
                history.n_steps += 1
                if scheduler is not None and not _is_plateau(scheduler):
                    scheduler.step()
                total += loss * Xb.shape[0]
                count += Xb.shape[0]
                bar.update(1)
            if modal:
                optimizer.eval()
            history.epoch_losses.append(total / count)
            postfix = {"loss": f"{total / count:.4f}"}
            if has_test:
                assert X_test is not None and y_test is not None
                history.test_loss.append(model.loss(X_test, y_test))
                history.test_accuracy.append(model.accuracy(X_test, y_test))
                postfix["test_acc"] = f"{history.test_accuracy[-1]:.3f}"
            bar.set_postfix(postfix)
            if scheduler is not None and _is_plateau(scheduler):
                scheduler.step(total / count)
            if on_epoch is not None:
                on_epoch(epoch, history)
    history.seconds = clock() - start
    return history
