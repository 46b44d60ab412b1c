"""The NumPy MLP (hand-written backward), the digits loader, the training loop."""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.demo import MissingDependencyError, progress
from fusedopt.demo.data import _digits_arrays, iterate_minibatches, load_digits
from fusedopt.demo.model import MLP, History, TrainingDiverged, fit, softmax_cross_entropy

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason='needs "fusedopt[demo]"'
)


def _numeric_grad(f: Any, p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        old = p[idx]
        p[idx] = old + eps
        up = f()
        p[idx] = old - eps
        down = f()
        p[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("sizes", [(5, 3), (5, 7, 3), (4, 6, 5, 3)], ids=str)
def test_gradients_match_finite_differences(activation: str, sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    model = MLP(sizes, activation=activation, dtype=np.float64, seed=2)  # type: ignore[arg-type]
    for p in model.params[1::2]:
        p[...] = rng.normal(size=p.shape) * 0.1  # nonzero biases: test their gradient too
    X = rng.normal(size=(8, sizes[0]))
    y = rng.integers(0, sizes[-1], size=8)
    loss, grads = model.loss_and_grads(X, y)
    assert loss == pytest.approx(model.loss(X, y), rel=1e-12)
    for p, g in zip(model.params, grads, strict=True):
        num = _numeric_grad(lambda: model.loss(X, y), p)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_softmax_cross_entropy_formula_and_stability() -> None:
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([2, 0])
    loss, grad = softmax_cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[[0, 1], y])), rel=1e-12)
    np.testing.assert_allclose(grad, (p - np.eye(3)[y]) / 2, rtol=1e-12)
    big_loss, big_grad = softmax_cross_entropy(z * 1e4, y)  # no overflow
    assert math.isfinite(big_loss) and np.isfinite(big_grad).all()


def test_float32_params_give_float32_grads_in_param_order() -> None:
    model = MLP((64, 32, 10), seed=0)
    X = np.random.default_rng(0).normal(size=(16, 64))
    _, grads = model.loss_and_grads(X, np.arange(16) % 10)
    assert [g.shape for g in grads] == [p.shape for p in model.params]
    assert all(g.dtype == np.float32 for g in grads)
    assert model.n_params == 64 * 32 + 32 + 32 * 10 + 10


def test_mlp_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="sizes"):
        MLP((10,))
    with pytest.raises(ValueError, match="activation"):
        MLP((3, 2), activation="sigmoid")  # type: ignore[arg-type]


def test_iterate_minibatches_covers_each_row_once() -> None:
    X = np.arange(10.0)[:, None]
    y = np.arange(10)
    batches = list(iterate_minibatches(X, y, 4, np.random.default_rng(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in batches])) == list(range(10))
    assert len(list(iterate_minibatches(X, y, 4, drop_last=True))) == 2


@needs_sklearn
def test_load_digits_split_is_stratified_standardized_and_reproducible() -> None:
    a = load_digits(seed=3)
    b = load_digits(seed=3)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert a.X_train.dtype == np.float32 and a.n_features == 64
    assert len(a.y_train) + len(a.y_test) == 1797
    assert abs(len(a.y_test) / 1797 - 0.2) < 0.01
    np.testing.assert_allclose(a.X_train.mean(axis=0), 0, atol=1e-5)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # each class ~20% of its ~180 images
    assert not np.array_equal(load_digits(seed=4).y_test, a.y_test)


def test_digits_read_from_the_package_match_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_digits()
    X, y = _digits_arrays()
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # the fallback path
    X2, y2 = _digits_arrays()
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_missing_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes the imports fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingDependencyError, match=r'needs scikit-learn.*"fusedopt\[demo\]"'):
        load_digits()


def test_progress_bar_degrades_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    assert not progress.tqdm_available()
    with progress.progress_bar(total=3) as bar:
        assert isinstance(bar, progress.NullBar)
        bar.update(1)
        bar.set_postfix({"loss": 1.0})


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@needs_sklearn
def test_fit_reaches_95_percent_on_digits(backend: str) -> None:
    data = load_digits(seed=0)
    model = MLP((64, 128, 10), seed=0)
    opt = fo.Adam(model.params, lr=3e-3, backend=backend)
    history = fit(
        model,
        opt,
        data.X_train,
        data.y_train,
        epochs=8,
        batch_size=32,
        X_test=data.X_test,
        y_test=data.y_test,
    )
    assert history.test_accuracy[-1] > 0.95
    assert len(history.epoch_losses) == 8 and history.epoch_losses[-1] < history.epoch_losses[0]
    assert history.n_steps == 8 * math.ceil(len(data.y_train) / 32) == len(history.step_losses)
    assert history.time_per_step > 0


def test_backends_follow_the_same_trajectory() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    losses = []
    for backend in ("fused", "numpy"):
        model = MLP((8, 16, 3), seed=1)
        opt = fo.SGD(model.params, lr=0.1, momentum=0.9, backend=backend)
        losses.append(fit(model, opt, X, y, epochs=3, batch_size=16).step_losses)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def _tiny_problem() -> tuple[MLP, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 8)).astype(np.float32)
    return MLP((8, 16, 3), seed=0), X, rng.integers(0, 3, size=128)


def test_fit_stops_with_a_clear_message_when_the_loss_explodes() -> None:
    model, X, y = _tiny_problem()
    opt = fo.SGD(model.params, lr=50.0, momentum=0.9)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, opt, X, y, epochs=50, batch_size=16)
    exc = info.value
    assert exc.lr == 50.0 and exc.suggested_lr == 5.0 and exc.epoch >= 1
    msg = str(exc)
    assert msg.startswith(f"training diverged at epoch {exc.epoch}")
    assert "with lr=50" in msg and "try a smaller learning rate, e.g. 5" in msg
    assert isinstance(exc.history, History) and len(exc.history.step_losses) == exc.step


def test_divergence_under_a_warm_up_names_the_chosen_lr_not_the_warm_up_start() -> None:
    model, X, y = _tiny_problem()
    opt = fo.SGD(model.params, lr=50.0, momentum=0.9)
    sched = fo.lr_scheduler.warmup_cosine(opt, warmup_steps=2, total_steps=400)
    assert opt.param_groups[0]["lr"] == 0.0  # the warm-up starts from 0
    with pytest.raises(TrainingDiverged) as info:
        fit(model, opt, X, y, epochs=50, batch_size=16, scheduler=sched)
    assert info.value.lr == 50.0 and "with lr=50" in str(info.value)


def test_fit_stops_on_a_non_finite_loss() -> None:
    model, X, y = _tiny_problem()
    opt = fo.SGD(model.params, lr=0.1)
    X = X.copy()
    X[5, 0] = np.inf
    with pytest.raises(TrainingDiverged, match=r"loss=(nan|inf)"):
        fit(model, opt, X, y, epochs=1, batch_size=128)


def test_fit_steps_the_scheduler_every_step() -> None:
    model, X, y = _tiny_problem()
    opt = fo.SGD(model.params, lr=0.1)

    class Halve:
        def step(self) -> None:
            opt.param_groups[0]["lr"] /= 2

    history = fit(model, opt, X, y, epochs=2, batch_size=64, scheduler=Halve())
    assert history.lrs == [0.1, 0.05, 0.025, 0.0125]
    assert opt.param_groups[0]["lr"] == 0.1 / 16
