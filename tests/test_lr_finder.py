"""The learning-rate range test: analytic quadratic, exact restore, divergence, arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.demo.model import MLP
from fusedopt.lr_finder import LRFinderResult, lr_find


def _quadratic(h: float, dim: int = 10) -> tuple[np.ndarray, Any]:
    """f(x) = h/2 |x|^2: SGD's best lr is 1/h (one step to the minimum), it diverges past 2/h."""
    x = np.random.default_rng(0).normal(size=dim)

    def loss_and_grads() -> tuple[float, list[np.ndarray]]:
        return 0.5 * h * float(x @ x), [h * x]

    return x, loss_and_grads


@pytest.mark.parametrize("h", [0.01, 1.0, 100.0])
def test_suggestion_tracks_the_analytic_best_lr_of_a_quadratic(h: float) -> None:
    x, fn = _quadratic(h)
    x0 = x.copy()
    opt = fo.SGD([x], lr=0.5)
    result = lr_find(opt, fn, start_lr=1e-6, end_lr=1e4, num_iter=100)
    best = 1.0 / h
    assert result.diverged and result.lrs[-1] > 2 * best  # went past the stability limit
    # the valley is the middle of the descent: a safe rate, ~8x below the best, that
    # still takes the loss down by 1e-20 in 200 steps (each step multiplies x by 1 - lr h)
    valley = result.suggested_lr
    assert result.clear_descent and valley == result.suggestion("valley")
    assert best / 10 < valley < best / 4
    assert (1 - valley * h) ** 400 < 1e-20
    # the moving average's lag moves its steepest point a few times higher
    assert best / 5 < result.suggestion("steepest") < best
    assert best / 5 < result.suggestion("minimum") < 2 * best
    assert x.tobytes() == x0.tobytes()


def test_suggestion_scales_with_the_curvature() -> None:
    for method in ("valley", "steepest", "minimum"):
        scaled = []
        for h in (0.01, 1.0, 100.0):
            x, fn = _quadratic(h)
            result = lr_find(fo.SGD([x]), fn, start_lr=1e-6, end_lr=1e4)
            scaled.append(result.suggestion(method) * h)  # type: ignore[arg-type]
        assert max(scaled) / min(scaled) < 1.5, method


def _digits_like(seed: int = 0) -> tuple[MLP, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(96, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=96)
    batches = [(X[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    return MLP((12, 16, 4), seed=seed), batches


def _assert_same_state(sd_a: dict[str, Any], sd_b: dict[str, Any]) -> None:
    assert sd_a["param_groups"] == sd_b["param_groups"]
    assert sd_a["state"].keys() == sd_b["state"].keys()
    for i, st in sd_a["state"].items():
        assert st.keys() == sd_b["state"][i].keys()
        for k, v in st.items():
            other = sd_b["state"][i][k]
            assert v.dtype == other.dtype and v.tobytes() == other.tobytes(), (i, k)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: fo.Adam(ps, lr=1e-3),
        lambda ps: fo.SGD(
            [{"params": ps[:2], "lr": 0.05}, {"params": ps[2:]}], lr=0.01, momentum=0.9
        ),
        lambda ps: fo.AdamW(ps, lr=2e-3, backend="numpy"),
    ],
    ids=["Adam", "SGD-2-groups", "AdamW-numpy"],
)
def test_params_state_and_lrs_are_restored_bit_identically(make: Any) -> None:
    model_a, batches = _digits_like()
    model_b, _ = _digits_like()
    opt_a, opt_b = make(model_a.params), make(model_b.params)
    for opt, model in ((opt_a, model_a), (opt_b, model_b)):  # non-trivial state first
        for X, y in batches[:3]:
            opt.step(model.loss_and_grads(X, y)[1])
    arrays = list(model_a.params)
    before = opt_a.state_dict()

    result = lr_find(
        opt_a, lambda b: model_a.loss_and_grads(*b), batches, start_lr=1e-5, end_lr=1e3
    )
    assert result.diverged  # the ramp went far enough to wreck the weights before restoring

    assert all(p is q for p, q in zip(model_a.params, arrays, strict=True))
    in_groups = [p for g in opt_a.param_groups for p in g["params"]]
    assert all(p is q for p, q in zip(in_groups, arrays, strict=True))
    for pa, pb in zip(model_a.params, model_b.params, strict=True):
        assert pa.tobytes() == pb.tobytes()
    _assert_same_state(opt_a.state_dict(), before)
    _assert_same_state(opt_a.state_dict(), opt_b.state_dict())
    # and training continues exactly as if the test had never run
    for opt, model in ((opt_a, model_a), (opt_b, model_b)):
        for X, y in batches:
            opt.step(model.loss_and_grads(X, y)[1])
    for pa, pb in zip(model_a.params, model_b.params, strict=True):
        assert pa.tobytes() == pb.tobytes()


def test_restores_after_an_exception_in_the_user_function() -> None:
    x, fn = _quadratic(1.0)
    saved = x.copy()
    opt = fo.SGD([x], lr=0.3, momentum=0.9)
    calls = 0

    def failing() -> Any:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise RuntimeError("boom")
        return fn()

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(opt, failing, start_lr=1e-3, end_lr=1.0)
    assert x.tobytes() == saved.tobytes()
    assert opt.param_groups[0]["lr"] == 0.3 and opt.state_dict()["state"] == {}


def test_stops_on_a_non_finite_loss() -> None:
    x, fn = _quadratic(1.0)
    opt = fo.SGD([x])

    calls = 0

    def nan_after_20() -> Any:
        nonlocal calls
        calls += 1
        loss, grads = fn()
        return (float("nan") if calls > 20 else loss), grads

    result = lr_find(opt, nan_after_20, start_lr=1e-6, end_lr=1e-3, num_iter=50)
    assert result.diverged and len(result.lrs) == 21 and "nan" in result.stop_reason
    assert np.isfinite(result.suggested_lr)  # the trailing nan is ignored


def test_smoothing_is_a_bias_corrected_ema_and_the_ramp_is_geometric() -> None:
    x = np.zeros(3)
    raw = iter([4.0, 2.0, 3.0, 1.0, 5.0, 2.0])

    def fn() -> Any:
        return next(raw), [np.zeros(3)]

    result = lr_find(fo.SGD([x]), fn, start_lr=1e-3, end_lr=1e2, num_iter=6, smooth=0.5)
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-3, 1e2, 6), rtol=1e-12)
    m, expected = 0.0, []
    for i, loss in enumerate([4.0, 2.0, 3.0, 1.0, 5.0, 2.0]):
        m = 0.5 * m + 0.5 * loss
        expected.append(m / (1 - 0.5 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed_losses, expected, rtol=1e-12)
    assert result.smoothed_losses[0] == 4.0  # bias correction: no pull towards 0
    assert not result.diverged and result.best_loss == min(expected)


def test_linear_ramp() -> None:
    x, fn = _quadratic(1.0)
    result = lr_find(fo.SGD([x]), fn, start_lr=1e-4, end_lr=0.1, num_iter=30, step_mode="linear")
    np.testing.assert_allclose(result.lrs, np.linspace(1e-4, 0.1, 30), rtol=1e-12)
    assert 1e-4 <= result.suggested_lr <= 0.1


def test_batches_are_any_objects_and_restarted_when_exhausted() -> None:
    seen: list[Any] = []
    x = np.ones(2)

    def fn(batch: Any) -> Any:
        seen.append(batch)
        return 1.0, [np.zeros(2)]

    lr_find(fo.SGD([x]), fn, [{"a": 1}, "b", 3], num_iter=7)
    assert seen == [{"a": 1}, "b", 3, {"a": 1}, "b", 3, {"a": 1}]

    def once() -> Iterator[int]:
        yield from range(4)

    result = lr_find(fo.SGD([x]), lambda b: fn(b), once(), num_iter=10)
    assert len(result.lrs) == 4 and "nothing more" in result.stop_reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.5}, "end_lr"),
        ({"num_iter": 1}, "num_iter"),
        ({"step_mode": "cos"}, "step_mode"),
        ({"smooth": 1.0}, "smooth"),
        ({"diverge_th": 1.0}, "diverge_th"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, Any], match: str) -> None:
    x, fn = _quadratic(1.0)
    with pytest.raises(ValueError, match=match):
        lr_find(fo.SGD([x]), fn, **kwargs)


def test_too_few_points_to_suggest() -> None:
    result = LRFinderResult(
        lrs=np.array([1e-3, 1e-2]),
        losses=np.array([1.0, 0.5]),
        smoothed_losses=np.array([1.0, 0.5]),
        best_loss=0.5,
        diverged=False,
        stop_reason="",
    )
    with pytest.raises(ValueError, match="too few"):
        result.suggestion()
    with pytest.raises(ValueError, match="too few"):
        result.valley()
    assert result.clear_descent is False
    assert "no suggestion: the range test recorded 2 usable points" in result.summary()
    with pytest.raises(ValueError, match="method must be 'valley', 'steepest' or 'minimum'"):
        result.suggestion("bogus")  # type: ignore[arg-type]


def test_plot_draws_the_curve_and_the_suggestions() -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    x, fn = _quadratic(1.0)
    result = lr_find(fo.SGD([x]), fn, start_lr=1e-4, end_lr=1e2)
    ax = result.plot()
    try:
        assert ax.get_xscale() == "log"
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels[:3] == [
            "loss (raw)",
            "smoothed loss (centered)",
            "moving average (stop test)",
        ]
        assert f"valley: {result.suggested_lr:.2g}" in labels
        assert any(s.startswith("steepest") for s in labels)
        assert any(s.startswith("minimum / 10") for s in labels)
    finally:
        plt.close(ax.figure)
