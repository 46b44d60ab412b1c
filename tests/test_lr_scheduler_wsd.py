"""Warm-up, stable, decay (WSD): values against the formula worked by hand, arguments, preset."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import cli
from fusedopt.cli import presets, schedule
from fusedopt.lr_scheduler import WarmupStableDecayLR, curve, warmup_stable_decay


def _opt(lrs: tuple[float, ...] = (0.1,)) -> fo.SGD:
    groups = [{"params": [np.zeros(2)], "lr": lr} for lr in lrs]
    return fo.SGD(groups, lr=lrs[0])


def _run(sched: Any, opt: Any, n: int) -> list[list[float]]:
    """The lr of every group at steps 0 .. n-1, stepping the optimizer as a loop does."""
    out = []
    for _ in range(n):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step([np.zeros(2) for _ in opt.param_groups])
        sched.step()
    return out


def test_hand_computed_values_of_the_1_sqrt_cooldown() -> None:
    # W=4, T=20, D=8: warm-up 0..3, stable 4..11, cooldown 12..20 (p = (t-12)/8)
    opt = _opt((2.0,))
    got = [row[0] for row in _run(warmup_stable_decay(opt, 4, 20, 8), opt, 23)]
    expected = [0.0, 0.5, 1.0, 1.5] + [2.0] * 8
    # 1 - sqrt(p) at p = 0, 1/8, ..., 1: sqrt(2/8) = 1/2, sqrt(8/8) = 1
    expected += [2.0 * (1 - math.sqrt(k / 8)) for k in range(9)] + [0.0, 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-17)
    assert got[14] == pytest.approx(1.0)  # p = 2/8: 2 * (1 - 1/2)
    assert got[20] == 0.0 and got[22] == 0.0  # min_lr at and after total_steps


@pytest.mark.parametrize(
    ("shape", "f"),
    [
        ("1-sqrt", lambda p: 1 - math.sqrt(p)),
        ("linear", lambda p: 1 - p),
        ("cosine", lambda p: (1 + math.cos(math.pi * p)) / 2),
    ],
)
def test_every_shape_with_min_lr_per_group(shape: str, f: Any) -> None:
    opt = _opt((0.1, 0.4))
    mins = [0.01, 0.04]
    sched = warmup_stable_decay(opt, 0, 10, 5, shape, min_lr=mins)  # type: ignore[arg-type]
    got = np.array(_run(sched, opt, 12))
    for t in range(12):
        for i, (b, m) in enumerate(zip((0.1, 0.4), mins, strict=True)):
            p = min(max(t - 5, 0), 5) / 5
            assert got[t, i] == pytest.approx(m + (b - m) * f(p), rel=1e-14, abs=1e-17)
    # hand values: halfway through the cooldown (t = 7.5 is not a step; use p = 0.4 at t = 7)
    half = {
        "1-sqrt": 1 - math.sqrt(0.4),
        "linear": 0.6,
        "cosine": (1 + math.cos(0.4 * math.pi)) / 2,
    }
    assert got[7, 0] == pytest.approx(0.01 + 0.09 * half[shape], rel=1e-14)
    assert got[10, 1] == pytest.approx(0.04) and got[11, 1] == pytest.approx(0.04)


def test_the_1_sqrt_shape_falls_faster_than_linear_early_and_slower_late() -> None:
    kw = {"warmup_steps": 0, "total_steps": 100, "decay_steps": 100}
    sq = curve(warmup_stable_decay, 101, decay_shape="1-sqrt", **kw)
    lin = curve(warmup_stable_decay, 101, decay_shape="linear", **kw)
    assert np.all(sq[1:100] < lin[1:100])  # 1 - sqrt(p) < 1 - p on (0, 1)
    assert sq[0] == lin[0] == 1.0 and sq[100] == lin[100] == 0.0


def test_start_factor_and_a_run_with_no_stable_stretch() -> None:
    got = curve(warmup_stable_decay, 7, lr=1.0, warmup_steps=2, total_steps=6, decay_steps=4,
                decay_shape="linear", start_factor=0.5)  # fmt: skip
    np.testing.assert_allclose(got, [0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0], rtol=1e-15)


def test_lr_at_curve_and_state_dict_replay_the_schedule() -> None:
    opt = _opt()
    sched = warmup_stable_decay(opt, 3, 12, 4, "cosine", min_lr=0.001)
    full = np.array(_run(sched, opt, 6))[:, 0]  # six steps taken
    ahead = curve(warmup_stable_decay, np.arange(15), lr=0.1, warmup_steps=3, total_steps=12,
                  decay_steps=4, decay_shape="cosine", min_lr=0.001)  # fmt: skip
    np.testing.assert_allclose(full, ahead[:6], rtol=1e-15)
    np.testing.assert_allclose(sched.lr_at(np.arange(15))[:, 0], ahead, rtol=1e-15)
    sd = sched.state_dict()
    assert sd["decay_shape"] == "cosine" and sd["decay_steps"] == 4 and sd["min_lrs"] == [0.001]
    opt2 = _opt()
    other = warmup_stable_decay(opt2, 1, 30, 2)
    other.load_state_dict(sd)
    np.testing.assert_allclose(other.lr_at(np.arange(15))[:, 0], ahead, rtol=1e-15)
    assert pickle.loads(pickle.dumps(sd)) == sd  # a plain, picklable dict
    assert type(sched).__module__ == "fusedopt.lr_scheduler"


W = warmup_stable_decay

WSD_ERRORS = [
    (ValueError, r"warmup_steps \+ decay_steps \(6 \+ 5\) must be <= total_steps \(10\)",
     lambda o: W(o, 6, 10, 5)),
    (ValueError, "decay_steps must be >= 1", lambda o: W(o, 2, 10, 0)),
    (ValueError, "warmup_steps must be >= 0", lambda o: W(o, -1, 10, 2)),
    (ValueError, "total_steps must be >= 1", lambda o: W(o, 0, 0, 1)),
    (TypeError, "total_steps must be an int", lambda o: W(o, 0, 10.0, 2)),
    (TypeError, "decay_steps must be an int", lambda o: W(o, 0, 10, True)),
    (TypeError, "warmup_steps must be an int", lambda o: W(o, "2", 10, 2)),
    (ValueError, "decay_shape must be '1-sqrt', 'linear' or 'cosine', got 'cos'",
     lambda o: W(o, 0, 10, 2, "cos")),  # type: ignore[arg-type]
    (ValueError, "decay_shape", lambda o: W(o, 0, 10, 2, None)),  # type: ignore[arg-type]
    (ValueError, r"min_lr \(0.5\) exceeds the lr of group 0", lambda o: W(o, 0, 10, 2, min_lr=0.5)),
    (ValueError, "min_lr must be finite", lambda o: W(o, 0, 10, 2, min_lr=-0.1)),
    (ValueError, "min_lr must be finite", lambda o: W(o, 0, 10, 2, min_lr=math.nan)),
    (TypeError, "min_lr must be a real", lambda o: W(o, 0, 10, 2, min_lr="0")),
    (ValueError, "one value per param group", lambda o: W(o, 0, 10, 2, min_lr=[0, 0])),
    (ValueError, "start_factor", lambda o: W(o, 2, 10, 2, start_factor=1.5)),
    (ValueError, "initial_lr", lambda o: W(o, 2, 10, 2, last_epoch=3)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "match", "build"), WSD_ERRORS, ids=[f"{i}" for i in range(len(WSD_ERRORS))]
)
def test_bad_arguments_raise_before_anything_changes(exc: type, match: str, build: Any) -> None:
    opt = _opt()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    with pytest.raises(exc, match=match):
        build(opt)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before


def test_the_wsd_preset_is_sized_to_the_run() -> None:
    opt = fo.Adam([np.zeros(3)], lr=0.1)
    sched, desc, per_epoch = presets.make_schedule("wsd", opt, 0.1, 100, {})
    assert desc == "warmup_stable_decay(warmup_steps=5, total_steps=100, decay_steps=20)"
    assert not per_epoch and isinstance(sched, WarmupStableDecayLR)
    lrs = schedule.schedule_curve(sched, opt, 100, per_epoch)
    np.testing.assert_allclose(lrs[:6], [0, 0.02, 0.04, 0.06, 0.08, 0.1], rtol=1e-14, atol=1e-18)
    assert np.all(lrs[5:81] == 0.1)  # stable until the cooldown starts at 100 - 20
    assert lrs[85] == pytest.approx(0.1 * (1 - math.sqrt(5 / 20)))
    assert lrs[99] == pytest.approx(0.1 * (1 - math.sqrt(19 / 20)))  # ~0 at the last step
    assert cli.SCHEDULES["wsd"] is not None


def test_fusedopt_schedule_wsd(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", "wsd", "decay_shape='linear'", "min_lr=0.01", "--steps", "40"]
    assert cli.main([*args, "--rows", "40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "warmup_stable_decay(warmup_steps=2, total_steps=40, decay_steps=8, "
        "decay_shape='linear', min_lr=0.01), base lr 0.1, 40 steps"
    )
    row = next(line for line in out.splitlines() if line.split()[:1] == ["36"])
    assert float(row.split()[1]) == pytest.approx(0.01 + 0.09 * (1 - 4 / 8))
    assert cli.main(["schedule", "warmup_stable_decay", "--steps", "40", "--rows", "3"]) == 0
    assert "decay_steps=8" in capsys.readouterr().out  # the class name takes the alias's defaults


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["wsd", "decay_shape=cos"], "decay_shape must be '1-sqrt', 'linear' or 'cosine'"),
        (["wsd", "decay_steps=30", "--steps", "20"], "warmup_steps + decay_steps (1 + 30)"),
        (["wsd", "min_lr=1", "--lr", "0.1"], "min_lr (1.0) exceeds the lr of group 0 (0.1)"),
        (["wsd", "decay_steps=0"], "decay_steps must be >= 1"),
    ],
)
def test_bad_wsd_arguments_on_the_command_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["schedule", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
