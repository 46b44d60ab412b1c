"""Schedule behaviours found by running PyTorch's own scheduler tests against fusedopt
(issue 15): each expected value is torch 2.13's, written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import lr_scheduler as S


def _opt(lr: float = 0.05, groups: int = 1) -> fo.SGD:
    return fo.SGD([{"params": [np.zeros(2)]} for _ in range(groups)], lr=lr)


def test_lr_at_after_load_state_dict_replays_the_loaded_schedule() -> None:
    src = S.StepLR(_opt(), step_size=3, gamma=0.1)
    dst = S.StepLR(_opt(), step_size=1, gamma=0.005)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_allclose(dst.lr_at([0, 1, 3])[:, 0], [0.05, 0.05, 0.005], rtol=1e-12)
    # and lr_at changes neither the schedule nor its optimizer
    assert dst.last_epoch == 0 and dst.optimizer.param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize(
    "make",
    [
        lambda o: S.StepLR(o, step_size=2, gamma=0.5),
        lambda o: S.MultiStepLR(o, milestones=[2, 2, 5], gamma=0.3),
        lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
        lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=12),
        lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
        lambda o: S.SequentialLR(
            o,
            [S.LinearLR(o, start_factor=0.5, total_iters=2), S.ExponentialLR(o, gamma=0.9)],
            milestones=[3],
        ),
        lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.9), S.StepLR(o, 2, gamma=0.5)]),
    ],
    ids=[
        "step",
        "multistep",
        "linear",
        "warm-restarts",
        "onecycle",
        "cyclic",
        "sequential",
        "chained",
    ],
)
def test_a_loaded_schedule_has_the_curve_of_the_one_it_was_saved_from(make) -> None:
    src = make(_opt(0.1))
    expected = src.lr_at(np.arange(10))
    for _ in range(4):
        src.optimizer.step([np.ones(2)])
        src.step()
    dst = make(_opt(0.1))
    dst.load_state_dict(src.state_dict())
    np.testing.assert_allclose(dst.lr_at(np.arange(10)), expected, rtol=1e-12)


def test_reduce_on_plateau_min_lr_list_after_add_param_group_fails_at_the_first_reduction() -> None:
    opt = _opt(1.0)
    sched = S.ReduceLROnPlateau(opt, patience=1, factor=0.5, min_lr=[0.01])
    opt.add_param_group({"params": [np.zeros(3)], "lr": 1.0})
    sched.step(1.0)  # improves: torch steps fine
    sched.step(2.0)  # one bad epoch, patience 1: no reduction yet
    before = (sched.last_epoch, sched.num_bad_epochs, [g["lr"] for g in opt.param_groups])
    with pytest.raises(ValueError, match="min_lr has 1 values"):
        sched.step(3.0)  # the reduction reads min_lrs: torch raises here
    assert before == (sched.last_epoch, sched.num_bad_epochs, [g["lr"] for g in opt.param_groups])
    sched.min_lrs = [0.01, 0.02]
    sched.step(3.0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]


def test_reduce_on_plateau_scalar_min_lr_follows_an_added_group() -> None:
    opt = _opt(1.0)
    sched = S.ReduceLROnPlateau(opt, patience=0, factor=0.1, min_lr=0.2)
    opt.add_param_group({"params": [np.zeros(3)], "lr": 1.0})
    sched.step(1.0)
    sched.step(2.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_onecycle_loads_a_state_dict_of_torch_before_2_2(strategy: str) -> None:
    src = S.OneCycleLR(_opt(), max_lr=0.5, total_steps=20, anneal_strategy=strategy)
    for _ in range(5):
        src.step()
    old = src.state_dict()
    del old["_anneal_func_type"]

    def _annealing_cos() -> None: ...

    def _annealing_linear() -> None: ...

    old["anneal_func"] = _annealing_cos if strategy == "cos" else _annealing_linear
    dst = S.OneCycleLR(_opt(), max_lr=0.5, total_steps=20)  # cos by default
    dst.load_state_dict(old)
    for _ in range(6):
        src.step()
        dst.step()
        assert dst.get_last_lr() == src.get_last_lr()


def test_onecycle_old_state_dict_with_an_unknown_function_keeps_its_own_strategy() -> None:
    src = S.OneCycleLR(_opt(), max_lr=0.5, total_steps=20, anneal_strategy="linear")
    old = src.state_dict()
    del old["_anneal_func_type"]
    old["anneal_func"] = "<bound method of something>"
    dst = S.OneCycleLR(_opt(), max_lr=0.5, total_steps=20, anneal_strategy="linear")
    dst.load_state_dict(old)
    dst.step()
    src.step()
    assert dst.get_last_lr() == src.get_last_lr()
    assert not math.isnan(dst.get_last_lr()[0])


def test_multiplicative_lr_says_what_torch_says_of_a_number() -> None:
    with pytest.raises(TypeError, match=r"^lr_lambda should be a function, but got float$"):
        S.MultiplicativeLR(_opt(), 0.95)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^lr_lambda\[1\] should be a function, but got int$"):
        S.LambdaLR(_opt(groups=2), [lambda t: 1.0, 3])  # type: ignore[list-item]
