"""The command line's schedule presets do what their summaries say, at the run's last step.

A run of ``n`` steps takes steps ``0 .. n-1``; "at the last step" is the lr of step
``n - 1`` (after ``n - 1`` scheduler steps).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

import fusedopt
from fusedopt import cli
from fusedopt.cli import presets, schedule

LR = 0.1
RUNS = [2, 10, 100, 899, 900, 901]


def curve(name: str, n: int) -> np.ndarray:
    """The lr of each of the ``n`` steps of preset ``name`` (as ``fusedopt schedule``)."""
    opt = fusedopt.SGD([np.zeros(1)], lr=LR, momentum=0.9)
    sched, _, per_epoch = presets.make_schedule(name, opt, LR, n, {})
    return schedule.schedule_curve(sched, opt, n, per_epoch)


@pytest.mark.parametrize("name", ["exponential", "linear"])
@pytest.mark.parametrize("n", RUNS)
def test_decays_documented_to_lr_over_100_end_there(name: str, n: int) -> None:
    assert presets.SCHEDULES[name].summary.endswith("to lr/100 at the last step")  # type: ignore[union-attr]
    lrs = curve(name, n)
    assert lrs[0] == LR
    assert lrs[-1] == pytest.approx(LR / 100, rel=1e-9)
    assert np.all(np.diff(lrs) < 0)


@pytest.mark.parametrize("n", [100, 899, 900, 901, 1000])
def test_cosine_restarts_ends_at_the_end_of_its_third_cycle(n: int) -> None:
    lrs = curve("cosine-restarts", n)
    restarts = np.flatnonzero(np.diff(lrs) > 0) + 1
    assert len(restarts) == 2  # three cycles, the last not cut short by a fourth
    assert lrs[-1] < lrs[-2]  # still annealing at the last step, not back at the peak
    assert lrs[-1] < 0.05 * LR
    if n >= 900:
        assert lrs[-1] < 1e-3 * LR


def test_cosine_restarts_900_steps_no_longer_ends_at_the_peak() -> None:
    lrs = curve("cosine-restarts", 900)  # T_0 was 900 // 7 = 128: a restart at step 896
    assert lrs[896:].max() < 1e-3 * LR


@pytest.mark.parametrize("n", [100, 900])
def test_cyclic_makes_four_triangles_the_last_ending_with_the_run(n: int) -> None:
    lrs = curve("cyclic", n)
    peaks = np.flatnonzero((lrs[1:-1] > lrs[:-2]) & (lrs[1:-1] >= lrs[2:])) + 1
    assert len(peaks) == 4
    assert lrs[-1] < lrs[-2]  # going down at the end, not starting a fifth triangle
    assert lrs[-1] < (0.2 if n >= 900 else 0.5) * LR  # near lr/10 (at most 7 steps short)


@pytest.mark.parametrize("n", [10, 100, 900, 901])
def test_step_cuts_twice_within_the_run(n: int) -> None:
    lrs = curve("step", n)
    assert sorted(set(np.round(lrs / LR, 12))) == [0.01, 0.1, 1.0]


@pytest.mark.parametrize("n", [100, 900])
def test_onecycle_goes_from_lr_over_25_to_lr_over_250000(n: int) -> None:
    lrs = curve("onecycle", n)
    assert lrs[0] == pytest.approx(LR / 25)
    assert lrs.max() == pytest.approx(LR)
    assert lrs[-1] == pytest.approx(LR / 2.5e5)


# ------------------------------------------------------------------ log axis
def test_a_curve_spanning_many_decades_is_drawn_on_a_log_axis() -> None:
    assert schedule.log_scale_wanted(0.1 * 0.8 ** np.arange(100))  # 0.1 -> 2.5e-11
    assert schedule.log_scale_wanted(curve("plateau", 100))  # x0.1 every third step
    assert not schedule.log_scale_wanted(curve("cosine", 100))  # a few steps near 0 only
    assert not schedule.log_scale_wanted(curve("warmup-cosine", 100))  # starts at 0
    assert not schedule.log_scale_wanted(curve("exponential", 100))  # two decades: readable
    assert not schedule.log_scale_wanted(np.full(10, 0.1))


needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='needs "fusedopt[demo]"'
)


@needs_matplotlib
@pytest.mark.parametrize(
    ("args", "log"),
    [
        (["exponential", "gamma=0.8"], True),
        (["plateau"], True),
        (["cosine"], False),
        (["cosine", "--yscale", "log"], True),
        (["exponential", "gamma=0.8", "--yscale", "linear"], False),
    ],
)
def test_the_plot_uses_a_log_axis_when_the_lr_spans_decades(
    args: list[str], log: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    axes: list[str] = []
    plot = schedule.plot_schedule

    def spy(plt: Any, lrs: np.ndarray, title: str, log: bool) -> Any:
        fig = plot(plt, lrs, title, log)
        axes.append(fig.axes[0].get_yscale())
        return fig

    monkeypatch.setattr(schedule, "plot_schedule", spy)
    out = tmp_path / "s.png"
    assert cli.main(["schedule", *args, "--steps", "100", "--plot", str(out)]) == 0
    assert axes == ["log" if log else "linear"] and out.is_file()
