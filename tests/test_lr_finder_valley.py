"""The range test's default suggestion ("valley") and its "no clear descent" verdict.

Two cases from issue 16: least squares trained on 10 cycled batches, where the steepest
point of the moving average picks a wiggle of batch noise (an lr ~1e-6 that leaves the
loss where it was), and a target of pure noise, where there is nothing to find.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import cli
from fusedopt.cli import lr_find as lr_find_command
from fusedopt.lr_finder import LRFinderResult, _longest_descent, lr_find

Batch = tuple[np.ndarray, np.ndarray]


def _least_squares(
    seed: int, pure_noise: bool = False
) -> tuple[np.ndarray, np.ndarray, list[Batch]]:
    """200 rows, 10 features, y = X w + 0.1 noise (or y = noise), as 10 batches of 20."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 10))
    y = X @ rng.normal(size=10) + 0.1 * rng.normal(size=200)
    if pure_noise:
        y = rng.normal(size=200)
    return X, y, [(X[i : i + 20], y[i : i + 20]) for i in range(0, 200, 20)]


def _loss_and_grads(w: np.ndarray, batch: Batch) -> tuple[float, list[np.ndarray]]:
    X, y = batch
    r = X @ w - y
    return 0.5 * float(r @ r) / len(y), [X.T @ r / len(y)]


def _train(cls: Any, lr: float, X: np.ndarray, y: np.ndarray, batches: list[Batch]) -> float:
    """The full-data loss after 200 steps over the cycled batches from w = 0."""
    w = np.zeros(10)
    opt = cls([w], lr=lr)
    for i in range(200):
        opt.step(_loss_and_grads(w, batches[i % 10])[1])
    return _loss_and_grads(w, (X, y))[0]


def _range_test(cls: Any, batches: list[Batch]) -> LRFinderResult:
    w = np.zeros(10)
    return lr_find(cls([w], lr=0.1), lambda b: _loss_and_grads(w, b), batches)


@pytest.mark.parametrize("seed", [1, 2, 4])
@pytest.mark.parametrize("cls", [fo.SGD, fo.Adam], ids=["SGD", "Adam"])
def test_least_squares_on_cycled_batches_default_suggestion_trains(cls: Any, seed: int) -> None:
    X, y, batches = _least_squares(seed)
    start = _loss_and_grads(np.zeros(10), (X, y))[0]
    result = _range_test(cls, batches)
    # the reproduction: the moving average's steepest point is a wiggle of batch noise
    steep = result.suggestion("steepest")
    assert steep < 1e-5 and _train(cls, steep, X, y, batches) > 0.8 * start
    # the default reads the valley: it trains to the noise floor (~0.005) in 200 steps
    assert result.clear_descent
    assert _train(cls, result.suggested_lr, X, y, batches) < 0.01
    v = result.valley()
    assert v.start_lr < result.suggested_lr < v.end_lr and v.drop > 0.5 * start


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cls", [fo.SGD, fo.Adam], ids=["SGD", "Adam"])
def test_a_pure_noise_target_shows_no_clear_descent(cls: Any, seed: int) -> None:
    _, _, batches = _least_squares(seed, pure_noise=True)
    result = _range_test(cls, batches)
    assert result.clear_descent is False and result.valley().clear is False
    text = result.summary()
    assert text.splitlines()[1].startswith("no clear descent: the loss falls by only")
    assert "suggested lr: " in text and "(guess, valley" in text


@pytest.mark.parametrize("seed", range(8))
def test_a_loss_that_ignores_the_parameters_shows_no_clear_descent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = np.zeros(3)
    result = lr_find(fo.SGD([w]), lambda: (1 + 0.1 * rng.normal(), [rng.normal(size=3)]))
    assert result.clear_descent is False


def test_a_clear_descent_summary_has_no_warning() -> None:
    _, _, batches = _least_squares(1)
    text = _range_test(fo.SGD, batches).summary()
    assert "no clear descent" not in text and "guess" not in text
    assert text.splitlines()[1].startswith("suggested lr: ")
    assert "steepest:" in text and "minimum / 10:" in text


def _result(losses: list[float], smoothed: list[float] | None = None) -> LRFinderResult:
    n = len(losses)
    return LRFinderResult(
        lrs=np.geomspace(1e-4, 1.0, n),
        losses=np.asarray(losses, dtype=np.float64),
        smoothed_losses=np.asarray(smoothed if smoothed is not None else losses, np.float64),
        best_loss=min(losses),
        diverged=False,
        stop_reason="test",
    )


def test_centered_losses_by_hand() -> None:
    # 5 points: k = 3, the window cut at both ends
    got = _result([1.0, 4.0, 2.0, 8.0, 5.0]).centered_losses
    np.testing.assert_allclose(got, [2.5, 7 / 3, 14 / 3, 5.0, 6.5], rtol=1e-15)
    # 40 finite points: k = 5 (40 // 10 = 4, made odd); a trailing nan stops the curve
    raw = np.arange(41.0) ** 2
    raw[-1] = math.nan
    got = _result(raw.tolist()).centered_losses
    assert np.isnan(got[-1])
    assert got[10] == pytest.approx(sum(i * i for i in range(8, 13)) / 5)
    assert got[0] == pytest.approx((0 + 1 + 4) / 3)
    assert got[39] == pytest.approx(sum(i * i for i in range(37, 40)) / 3)


def test_longest_descent_is_the_longest_strictly_decreasing_subsequence() -> None:
    assert _longest_descent(np.array([5.0, 1.0, 4.0, 3.0, 2.0, 6.0, 0.0])) == [0, 2, 3, 4, 6]
    assert len(_longest_descent(np.array([1.0, 2.0, 3.0]))) == 1  # no descent: one point
    assert _longest_descent(np.array([2.0, 2.0, 1.0])) == [0, 2]  # strict
    assert _longest_descent(np.array([])) == []


def test_valley_on_a_hand_made_curve() -> None:
    # flat at 10 (20 points), a linear fall to 0 over 20 points, flat at 0 (20 points)
    raw = [10.0] * 20 + [10.0 - 0.5 * i for i in range(1, 21)] + [0.0] * 20
    result = _result(raw)
    v = result.valley(skip_start=0, skip_end=0)
    c = result.centered_losses  # k = 7
    lrs = result.lrs
    # by hand: c[17] = (6 * 10 + 9.5) / 7 is the first below 10, c[20] = 65 / 7 the last
    # within a tenth of the drop (>= 9), c[42] = 0 the first at the floor
    assert c[17] == pytest.approx(69.5 / 7) and c[20] == pytest.approx(65 / 7)
    assert c[21] == pytest.approx(62.5 / 7) and c[41] == pytest.approx(0.5 / 7) and c[42] == 0
    assert v.level == pytest.approx(10.0) and v.drop == pytest.approx(10.0)
    assert v.start_lr == lrs[20] and v.end_lr == lrs[42]
    assert v.noise == 0.0 and v.clear
    slope = np.gradient(c, np.log10(lrs))
    assert v.lr == lrs[int(np.argmin(slope))] and lrs[21] < v.lr < lrs[39]
    assert result.suggestion(skip_start=0, skip_end=0) == v.lr


def test_plot_keeps_the_raw_loss_in_view_and_the_legend_off_the_data() -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    _, _, batches = _least_squares(1)
    result = _range_test(fo.SGD, batches)
    ax = result.plot()
    try:
        lo, hi = ax.get_ylim()
        raw = result.losses[10 : len(result.losses) - 5]
        calm = raw[raw <= 3 * raw[0]]
        assert lo <= raw.min()  # the descent to ~0.005 is in view (the EMA never gets there)
        assert hi >= np.quantile(calm, 0.95) and hi < 2 * calm.max()  # the explosion is not
        assert result.smoothed_losses[10:-5].min() > 1.0 > raw.min() + 0.5
        fig = ax.figure
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        assert legend.y1 <= ax.get_window_extent().y0  # below the axes, off the data
        assert "raw" in ax.get_lines()[0].get_label() and ax.get_lines()[0].get_alpha() < 0.5
    finally:
        plt.close(ax.figure)


def test_plot_title_says_no_clear_descent() -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    _, _, batches = _least_squares(0, pure_noise=True)
    ax = _range_test(fo.SGD, batches).plot()
    try:
        assert ax.get_title().endswith("no clear descent")
        assert any("(no clear descent)" in line.get_label() for line in ax.get_lines())
    finally:
        plt.close(ax.figure)


def _fake_run(result: LRFinderResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lr_find_command, "lr_find", lambda *a, **k: result)


def test_cli_says_when_there_is_no_clear_descent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    _, _, batches = _least_squares(0, pure_noise=True)
    _fake_run(_range_test(fo.SGD, batches), monkeypatch)
    assert cli.main(["lr-find", "--no-plot", "--n-train", "64"]) == 0
    out = capsys.readouterr().out
    assert "no clear descent: the loss falls by only" in out and "(guess, valley" in out
    assert "next: fusedopt train" not in out
    assert "next: check the curve" in out


def test_cli_with_too_few_points_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("sklearn")
    _fake_run(_result([1.0, 0.5]), monkeypatch)
    assert cli.main(["lr-find", "--no-plot", "--n-train", "64"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too few to suggest" in err[0], err


def test_namespace_of_the_command_is_unchanged() -> None:
    p = argparse.ArgumentParser()
    lr_find_command.add_arguments(p)
    args = p.parse_args([])
    assert (args.start_lr, args.end_lr, args.num_iter, args.smooth) == (1e-6, 10.0, 100, 0.98)
