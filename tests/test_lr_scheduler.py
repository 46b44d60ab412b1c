"""fusedopt.lr_scheduler against values computed by hand from each schedule's formula.

Every expected value is written here from the formula (PyTorch's documentation, the CLR,
SGDR and 1cycle papers), never from the code under test. Every schedule runs on real
optimizers (SGD with momentum and Adam, both backends) with two param groups, stepping the
optimizer between schedule steps as a training loop does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import lr_scheduler as lrs

B0, B1 = 0.1, 0.02  # the two groups' lrs
OPTS = [
    pytest.param(fo.SGD, "fused", id="sgd-fused"),
    pytest.param(fo.SGD, "numpy", id="sgd-numpy"),
    pytest.param(fo.Adam, "fused", id="adam-fused"),
    pytest.param(fo.Adam, "numpy", id="adam-numpy"),
]


def make_opt(cls: type = fo.SGD, backend: str = "fused", lrs_: tuple[float, ...] = (B0, B1)):
    params = [np.zeros(3) for _ in lrs_]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs_, strict=True)]
    extra = {"momentum": 0.9} if cls is fo.SGD else {}
    return cls(groups, lr=lrs_[0], backend=backend, **extra)


def train(opt, sched, n: int, metrics=None) -> list[list[float]]:
    """The lr of each group at steps 0..n, stepping the optimizer in between."""
    grads = [np.full(3, 0.1) for _ in opt.param_groups]
    out = [[g["lr"] for g in opt.param_groups]]
    for t in range(n):
        opt.step(grads)
        sched.step() if metrics is None else sched.step(metrics[t])
        out.append([g["lr"] for g in opt.param_groups])
    return out


def momentum_of(group: dict[str, Any]) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


# ---------------------------------------------------------------- the formulas, by hand


def cos_anneal(start: float, end: float, x: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * x)) / 2


def sgdr(t: float, T0: int, Tmult: int) -> tuple[float, int]:
    """(T_cur, T_i) of SGDR: periods T0, T0*Tmult, ... laid end to end."""
    start, period = 0, T0
    while t >= start + period:
        start, period = start + period, period * Tmult
    return t - start, period


def clr(t: int, up: int, down: int) -> float:
    """The CLR triangle: 0 at the cycle's start, 1 after `up` steps, 0 after `down` more."""
    p = t % (up + down)
    return p / up if p <= up else 1 - (p - up) / down


def onecycle(t: int, total: int, pct: float, three: bool, cos: bool, lo: float, hi: float, end):
    """1cycle from the paper: (phase end steps, phase endpoints) with interpolation."""
    ann = cos_anneal if cos else (lambda a, b, x: a + (b - a) * x)
    if three:
        ends = [pct * total - 1, 2 * pct * total - 2, total - 1]
        pts = [(lo, hi), (hi, lo), (lo, end)]
    else:
        ends = [pct * total - 1, total - 1]
        pts = [(lo, hi), (hi, end)]
    start = 0.0
    for i, e in enumerate(ends):
        if t <= e or i == len(ends) - 1:
            return ann(*pts[i], (t - start) / (e - start))
        start = e
    raise AssertionError


# ---------------------------------------------------------------- the table of cases

# id -> (build(opt), expected lr(t, base_lr, group index), number of steps)
Case = tuple[Callable[[Any], Any], Callable[[int, float, int], float], int]
CASES: dict[str, Case] = {
    "lambda": (lambda o: lrs.LambdaLR(o, lambda t: 0.9**t), lambda t, b, i: b * 0.9**t, 12),
    "lambda-per-group": (
        lambda o: lrs.LambdaLR(o, [lambda t: 1 / (t + 1), lambda t: 2.0 - 0.1 * t]),
        lambda t, b, i: b / (t + 1) if i == 0 else b * (2.0 - 0.1 * t),
        12,
    ),
    "multiplicative": (
        lambda o: lrs.MultiplicativeLR(o, lambda t: 0.95),
        lambda t, b, i: b * 0.95**t,
        12,
    ),
    "multiplicative-per-group": (
        lambda o: lrs.MultiplicativeLR(o, [lambda t: 0.9, lambda t: 1 - 0.01 * t]),
        lambda t, b, i: (
            b * (0.9**t if i == 0 else math.prod(1 - 0.01 * k for k in range(1, t + 1)))
        ),
        12,
    ),
    "step": (lambda o: lrs.StepLR(o, 3, 0.5), lambda t, b, i: b * 0.5 ** (t // 3), 13),
    "step-default-gamma": (lambda o: lrs.StepLR(o, 4), lambda t, b, i: b * 0.1 ** (t // 4), 13),
    "multistep-repeated": (
        lambda o: lrs.MultiStepLR(o, [2, 5, 5, 9], 0.3),
        lambda t, b, i: b * 0.3 ** sum(m <= t for m in [2, 5, 5, 9]),
        12,
    ),
    "multistep-unsorted-zero": (
        lambda o: lrs.MultiStepLR(o, [6, 0]),
        lambda t, b, i: b * 0.1 ** ((t >= 0) + (t >= 6)),
        9,
    ),
    "constant-default": (
        lambda o: lrs.ConstantLR(o),
        lambda t, b, i: b / 3 if t < 5 else b,
        8,
    ),
    "constant": (lambda o: lrs.ConstantLR(o, 0.5, 3), lambda t, b, i: b * (0.5 if t < 3 else 1), 6),
    "linear-default": (
        lambda o: lrs.LinearLR(o),
        lambda t, b, i: b * (1 / 3 + (1 - 1 / 3) * min(t, 5) / 5),
        8,
    ),
    "linear-decay": (
        lambda o: lrs.LinearLR(o, 1.0, 0.1, 7),
        lambda t, b, i: b * (1.0 - 0.9 * min(t, 7) / 7),
        10,
    ),
    "linear-to-zero": (
        lambda o: lrs.LinearLR(o, 0.25, 0.0, 4),
        lambda t, b, i: b * 0.25 * (1 - min(t, 4) / 4),
        7,
    ),
    "exponential": (lambda o: lrs.ExponentialLR(o, 0.93), lambda t, b, i: b * 0.93**t, 20),
    "polynomial-default": (
        lambda o: lrs.PolynomialLR(o),
        lambda t, b, i: b * (1 - min(t, 5) / 5),
        8,
    ),
    "polynomial": (
        lambda o: lrs.PolynomialLR(o, 12, 2.5),
        lambda t, b, i: b * (1 - min(t, 12) / 12) ** 2.5,
        15,
    ),
    "cosine": (
        lambda o: lrs.CosineAnnealingLR(o, 10),
        lambda t, b, i: b * (1 + math.cos(math.pi * t / 10)) / 2,
        25,  # past T_max the cosine goes back up, as in PyTorch
    ),
    "cosine-eta-min": (
        lambda o: lrs.CosineAnnealingLR(o, 7, 0.001),
        lambda t, b, i: cos_anneal(b, 0.001, t / 7),
        16,
    ),
    "warm-restarts": (
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 4),
        lambda t, b, i: cos_anneal(b, 0.0, (t % 4) / 4),
        13,
    ),
    "warm-restarts-tmult": (
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 3, 2, 0.001),
        lambda t, b, i: cos_anneal(b, 0.001, sgdr(t, 3, 2)[0] / sgdr(t, 3, 2)[1]),
        25,  # restarts at 3, 9, 21
    ),
    "cyclic-triangular": (
        lambda o: lrs.CyclicLR(o, [0.01, 0.002], [0.1, 0.02], 5),
        lambda t, b, i: [0.01, 0.002][i] + ([0.1, 0.02][i] - [0.01, 0.002][i]) * clr(t, 5, 5),
        23,
    ),
    "cyclic-triangular2-asym": (
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 3, 6, "triangular2"),
        lambda t, b, i: 0.01 + 0.09 * clr(t, 3, 6) / 2 ** (t // 9),
        30,
    ),
    "cyclic-exp-range": (
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 4, mode="exp_range", gamma=0.97),
        lambda t, b, i: 0.01 + 0.09 * clr(t, 4, 4) * 0.97**t,
        20,
    ),
    "cyclic-scale-fn": (
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 2, scale_fn=lambda c: 1 / c, cycle_momentum=False),
        lambda t, b, i: 0.01 + 0.09 * clr(t, 2, 2) / (t // 4 + 1),
        14,
    ),
    "onecycle": (
        lambda o: lrs.OneCycleLR(o, 0.1, 100),
        lambda t, b, i: onecycle(t, 100, 0.3, False, True, 0.1 / 25, 0.1, 0.1 / 25 / 1e4),
        100,
    ),
    "onecycle-linear-epochs": (
        lambda o: lrs.OneCycleLR(
            o, [0.1, 0.2], epochs=5, steps_per_epoch=7, pct_start=0.25, anneal_strategy="linear"
        ),
        lambda t, b, i: onecycle(
            t, 35, 0.25, False, False, (0.1, 0.2)[i] / 25, (0.1, 0.2)[i], (0.1, 0.2)[i] / 25e4
        ),
        35,
    ),
    "onecycle-three-phase": (
        lambda o: lrs.OneCycleLR(o, 0.1, 50, three_phase=True, div_factor=10, final_div_factor=100),
        lambda t, b, i: onecycle(t, 50, 0.3, True, True, 0.01, 0.1, 0.0001),
        50,
    ),
    "sequential": (
        lambda o: lrs.SequentialLR(
            o, [lrs.LinearLR(o, 0.1, 1.0, 5), lrs.CosineAnnealingLR(o, 20, 0.001)], [5]
        ),
        lambda t, b, i: b * (0.1 + 0.9 * t / 5) if t < 5 else cos_anneal(b, 0.001, (t - 5) / 20),
        30,
    ),
    "sequential-three": (
        lambda o: lrs.SequentialLR(
            o, [lrs.ConstantLR(o, 0.2, 10), lrs.ExponentialLR(o, 0.9), lrs.StepLR(o, 2)], [3, 8]
        ),
        lambda t, b, i: b * (0.2 if t < 3 else 0.9 ** (t - 3) if t < 8 else 0.1 ** ((t - 8) // 2)),
        14,
    ),
    "chained": (
        lambda o: lrs.ChainedScheduler([lrs.ConstantLR(o, 0.1, 3), lrs.ExponentialLR(o, 0.9)]),
        lambda t, b, i: b * (0.1 if t < 3 else 1.0) * 0.9**t,
        12,
    ),
    "chained-three": (
        lambda o: lrs.ChainedScheduler(
            [lrs.StepLR(o, 4, 0.5), lrs.LinearLR(o, 0.5, 1.0, 6), lrs.MultiStepLR(o, [3, 7])]
        ),
        lambda t, b, i: (
            b * 0.5 ** (t // 4) * (0.5 + 0.5 * min(t, 6) / 6) * 0.1 ** ((t >= 3) + (t >= 7))
        ),
        14,
    ),
    "warmup-cosine": (
        lambda o: lrs.warmup_cosine(o, 4, 20, min_lr=0.001),
        lambda t, b, i: b * t / 4 if t < 4 else cos_anneal(b, 0.001, min(t - 4, 16) / 16),
        24,
    ),
    "warmup-linear": (
        lambda o: lrs.warmup_linear(o, 3, 10, start_factor=0.1),
        lambda t, b, i: b * (0.1 + 0.9 * t / 3) if t < 3 else b * (1 - min(t - 3, 7) / 7),
        12,
    ),
    "warmup-constant": (
        lambda o: lrs.warmup_constant(o, 5),
        lambda t, b, i: b * min(t, 5) / 5,
        8,
    ),
    "no-warmup-cosine": (
        lambda o: lrs.WarmupDecayLR(o, 0, 10, min_lr=[0.01, 0.002]),
        lambda t, b, i: cos_anneal(b, [0.01, 0.002][i], min(t, 10) / 10),
        12,
    ),
}
CASE_IDS = list(CASES)


def expected_table(case: str, bases=(B0, B1)) -> np.ndarray:
    _, f, n = CASES[case]
    return np.array([[f(t, b, i) for i, b in enumerate(bases)] for t in range(n + 1)])


@pytest.mark.parametrize("case", CASE_IDS)
@pytest.mark.parametrize(("cls", "backend"), OPTS)
def test_values_match_the_formula(case, cls, backend):
    opt = make_opt(cls, backend)
    build, _, n = CASES[case]
    sched = build(opt)
    got = np.array(train(opt, sched, n))
    np.testing.assert_allclose(got, expected_table(case), rtol=1e-12, atol=1e-16)
    assert sched.get_last_lr() == pytest.approx(list(got[-1]), rel=0, abs=0)


# every optimizer a training loop steps with dense grads of any shape (Muon: below), less
# those that set their own rates: SGDHD / AdamHD adapt group["lr"] at each step and
# Prodigy wants one lr for all its groups (its d is shared), so a schedule's exact values
# for two groups do not apply (scheduled below, one group)
SETS_ITS_OWN_RATE = {"SGDHD", "AdamHD", "Prodigy"}
ALL_OPTIMIZERS = [
    name
    for name in fo.__all__
    if isinstance(getattr(fo, name), type)
    and issubclass(getattr(fo, name), fo.Optimizer)
    and name != "Optimizer"
    and getattr(fo, name).steps_any_array
    and name not in SETS_ITS_OWN_RATE
]


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize("name", ALL_OPTIMIZERS)
def test_every_schedule_on_every_optimizer(name, backend):
    cls = getattr(fo, name)
    for case in CASE_IDS:
        params = [np.zeros(3), np.zeros(3)]
        groups = [{"params": [params[0]], "lr": B0}, {"params": [params[1]], "lr": B1}]
        opt = cls(groups, backend=backend)
        if hasattr(opt, "train"):  # schedule-free: steps in train mode
            opt.train()
        cycles = "momentum" in opt.defaults or "betas" in opt.defaults
        build, _, n = CASES[case]
        try:
            sched = build(opt)
        except ValueError as e:  # CyclicLR / OneCycleLR cycle momentum by default
            assert not cycles and "cycle_momentum" in str(e), (case, e)
            continue
        got = np.array(train(opt, sched, n))
        np.testing.assert_allclose(got, expected_table(case), rtol=1e-12, atol=1e-16, err_msg=case)
        assert all(np.isfinite(p).all() for p in params)


@pytest.mark.parametrize("case", CASE_IDS)
def test_lr_at_and_curve_replay_without_touching_the_optimizer(case):
    opt = make_opt()
    build, _, n = CASES[case]
    sched = build(opt)
    train(opt, sched, 2)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    last = sched.get_last_lr()
    table = sched.lr_at(np.arange(n + 1))
    np.testing.assert_allclose(table, expected_table(case), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(sched.lr_at(n), expected_table(case)[n], rtol=1e-12, atol=1e-16)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    assert sched.get_last_lr() == last
    # the module-level curve builds its own stand-in optimizer
    one = lrs.curve(build, n + 1, lr=[B0, B1])
    np.testing.assert_allclose(one, expected_table(case), rtol=1e-12, atol=1e-16)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(("cls", "backend"), OPTS)
def test_constructor_takes_the_first_step(cls, backend):
    opt = make_opt(cls, backend)
    sched = lrs.LinearLR(opt, start_factor=0.5, total_iters=4)
    assert sched.last_epoch == 0
    assert sched.base_lrs == [B0, B1]
    assert [g["initial_lr"] for g in opt.param_groups] == [B0, B1]
    assert [g["lr"] for g in opt.param_groups] == [B0 * 0.5, B1 * 0.5]
    last = sched.get_last_lr()
    assert last == [B0 * 0.5, B1 * 0.5]
    last.append(1.0)  # a copy
    assert len(sched.get_last_lr()) == 2


def test_a_second_schedule_keeps_the_first_initial_lr():
    opt = make_opt()
    lrs.ConstantLR(opt, 0.5, 2)
    sched = lrs.ExponentialLR(opt, 0.9)
    assert sched.base_lrs == [B0, B1]
    assert sched.get_last_lr() == [B0 * 0.5, B1 * 0.5]


def test_scheduled_lr_drives_the_optimizer():
    p = np.zeros(2)
    opt = fo.SGD([p], lr=1.0)
    sched = lrs.StepLR(opt, 1, 0.5)
    for _ in range(3):
        opt.step([np.ones(2)])
        sched.step()
    np.testing.assert_allclose(p, -(1.0 + 0.5 + 0.25), rtol=1e-15)


def test_duck_typed_optimizer():
    class Opt:
        def __init__(self) -> None:
            self.param_groups = [{"lr": 0.5, "momentum": 0.0}]
            self.defaults = {"lr": 0.5, "momentum": 0.0}

    opt = Opt()
    sched = lrs.OneCycleLR(opt, 1.0, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25, rel=1e-15)
    assert opt.param_groups[0]["momentum"] == 0.95
    sched.step()


def test_resume_with_last_epoch():
    opt = make_opt()
    lrs.StepLR(opt, 3, 0.5)
    opt.param_groups[0]["lr"] = 0.05  # as loaded from a checkpoint at last_epoch=4
    sched = lrs.StepLR(opt, 3, 0.5, last_epoch=4)
    assert sched.last_epoch == 5 and opt.param_groups[0]["lr"] == 0.05
    sched.step()  # t = 6: a decay step
    assert opt.param_groups[0]["lr"] == 0.025


# ---------------------------------------------------------------- closed forms and chaining


def test_closed_form_does_not_drift():
    opt = make_opt(lrs_=(0.1,))
    sched = lrs.ExponentialLR(opt, 0.999)
    for _ in range(3000):
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.1 * 0.999**3000  # exactly the closed form


def test_hand_set_lr_is_carried_on_recursively():
    opt = make_opt(lrs_=(0.1,))
    sched = lrs.StepLR(opt, 3, 0.5)
    seen = []
    for t in range(1, 8):
        if t == 5:
            opt.param_groups[0]["lr"] *= 0.5  # the user halves the lr after step 4
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    # t:        1    2    3     4     5      6       7
    want = [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125, 0.0125]
    np.testing.assert_allclose(seen, want, rtol=1e-15)


def test_cosine_chained_follows_the_recursion():
    opt = make_opt(lrs_=(1.0,))
    sched = lrs.ChainedScheduler([lrs.CosineAnnealingLR(opt, 4), lrs.ConstantLR(opt, 0.5, 2)])
    got = [g for (g,) in train(opt, sched, 4)]
    c = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    # the cosine scales the current lr by c_t / c_{t-1}; the constant halves it until t = 2
    want = [0.5 * c[0], 0.5 * c[1], c[2], c[3], c[4]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-17)


def test_step_with_epoch_jumps_by_the_closed_form():
    opt = make_opt()
    sched = lrs.StepLR(opt, 3, 0.5)
    sched.step(7)
    assert sched.last_epoch == 7
    assert opt.param_groups[0]["lr"] == pytest.approx(B0 * 0.5 ** (7 // 3), rel=1e-15)
    with pytest.raises(ValueError, match="epoch"):
        sched.step(-1)


# ---------------------------------------------------------------- momentum cycling


@pytest.mark.parametrize(("cls", "backend"), OPTS)
def test_cyclic_momentum(cls, backend):
    opt = make_opt(cls, backend)
    sched = lrs.CyclicLR(opt, 0.01, 0.1, 4, base_momentum=0.7, max_momentum=0.95)
    grads = [np.full(3, 0.1)] * 2
    for t in range(12):
        for g in opt.param_groups:
            assert momentum_of(g) == pytest.approx(0.95 - 0.25 * clr(t, 4, 4), rel=1e-12)
            if "betas" in g:
                assert isinstance(g["betas"], tuple) and g["betas"][1] == 0.999
            assert g["max_momentum"] == 0.95 and g["base_momentum"] == 0.7
        opt.step(grads)
        sched.step()


@pytest.mark.parametrize(("cls", "backend"), OPTS)
@pytest.mark.parametrize("three", [False, True])
def test_onecycle_momentum(cls, backend, three):
    opt = make_opt(cls, backend)
    sched = lrs.OneCycleLR(opt, [0.1, 0.05], 40, pct_start=0.25, three_phase=three)
    ends = [9, 18, 39] if three else [9, 39]
    pts = [(0.95, 0.85), (0.85, 0.95), (0.95, 0.95)]
    grads = [np.full(3, 0.1)] * 2
    for t in range(41):
        start = 0
        for k, e in enumerate(ends):
            if t <= e or k == len(ends) - 1:
                want = cos_anneal(*pts[k], (t - start) / (e - start))
                break
            start = e
        for g in opt.param_groups:
            assert momentum_of(g) == pytest.approx(want, rel=1e-12)
        opt.step(grads)
        if t < 40:
            sched.step()


def test_cycle_momentum_needs_momentum_or_betas():
    class Plain:
        def __init__(self) -> None:
            self.param_groups = [{"lr": 0.1}]
            self.defaults = {"lr": 0.1}

    for build in (
        lambda o, **k: lrs.CyclicLR(o, 0.01, 0.1, **k),
        lambda o, **k: lrs.OneCycleLR(o, 0.1, 10, **k),
    ):
        opt = Plain()
        with pytest.raises(ValueError, match="momentum"):
            build(opt)
        assert opt.param_groups == [{"lr": 0.1}]  # nothing written
        build(opt, cycle_momentum=False)


def test_onecycle_past_total_steps():
    opt = make_opt()
    sched = lrs.OneCycleLR(opt, 0.1, 5)
    for _ in range(5):
        sched.step()  # PyTorch allows last_epoch == total_steps
    lr = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()
    assert sched.last_epoch == 5 and opt.param_groups[0]["lr"] == lr


# ---------------------------------------------------------------- warm restarts


def test_warm_restarts_fractional_epochs():
    opt = make_opt(lrs_=(1.0,))
    sched = lrs.CosineAnnealingWarmRestarts(opt, 2, 3, eta_min=0.1)
    # periods 2, 6, 18: restarts at 2 and 8
    for epoch, (t_cur, t_i) in [
        (0.5, (0.5, 2)),
        (2.0, (0, 6)),
        (7.75, (5.75, 6)),
        (8.25, (0.25, 18)),
    ]:
        sched.step(epoch)
        assert opt.param_groups[0]["lr"] == pytest.approx(
            0.1 + 0.9 * (1 + math.cos(math.pi * t_cur / t_i)) / 2, rel=1e-13
        )
        assert sched.last_epoch == math.floor(epoch)
    sched.step()  # then one step on: T_cur 1.25 of 18
    assert opt.param_groups[0]["lr"] == pytest.approx(
        0.1 + 0.9 * (1 + math.cos(math.pi * 1.25 / 18)) / 2, rel=1e-13
    )


def test_warm_restarts_on_an_exact_restart_boundary():
    opt = make_opt(lrs_=(1.0,))
    sched = lrs.CosineAnnealingWarmRestarts(opt, 1, 10)
    sched.step(111)  # restarts at 1, 11, 111: a fresh cycle (PyTorch's math.log says T_cur=T_i)
    assert opt.param_groups[0]["lr"] == 1.0
    assert (sched.T_cur, sched.T_i) == (0, 1000)


# ---------------------------------------------------------------- ReduceLROnPlateau


def plateau(opt, metrics, **kwargs):
    sched = lrs.ReduceLROnPlateau(opt, **kwargs)
    return sched, [row[0] for row in train(opt, sched, len(metrics), metrics)]


@pytest.mark.parametrize(("cls", "backend"), OPTS)
def test_plateau_min_rel_patience(cls, backend):
    opt = make_opt(cls, backend)
    m = [1.0, 0.9, 0.9, 0.95, 0.89995, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6]
    _, got = plateau(opt, m, patience=2)
    # better means < best * (1 - 1e-4): 1.0, 0.9 improve; 0.9, 0.95, 0.89995 (> 0.89991) are
    # bad -> the third bad step (5) > patience: lr * 0.1; 0.9 bad; 0.5 improves; then 3 bad
    # (steps 8, 9, 10): lr * 0.1 again at step 10
    want = [B0] * 5 + [B0 * 0.1] * 5 + [B0 * 0.01] * 2
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_plateau_max_abs_cooldown_min_lr():
    opt = make_opt()
    m = [1, 2, 2.005, 2, 2, 2, 2, 2, 2, 2]
    sched, got = plateau(
        opt, m, mode="max", factor=0.5, patience=0, threshold=0.01, threshold_mode="abs",
        cooldown=2, min_lr=[0.04, 0.001],
    )  # fmt: skip
    # bad at 3 (2.005 < 2 + 0.01): halve; cooldown 2 steps; bad again at step 6: halve -> 0.025,
    # clipped to 0.04 for group 0
    g0 = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.04, 0.04, 0.04, 0.04, 0.04]
    np.testing.assert_allclose(got, g0, rtol=1e-15)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.02 * 0.5**3, rel=1e-15)
    assert sched.best == 2


def test_plateau_eps_skips_tiny_reductions():
    opt = make_opt(lrs_=(1e-8,))
    _, got = plateau(opt, [1, 1, 1], patience=0, eps=1e-8)
    assert got == [1e-8] * 4


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_rel_threshold_with_negative_metrics(mode):
    # best = -1 (min): an improvement needs < -1 - 0.1 * |-1| = -1.1 (PyTorch: < -0.9, which
    # counts the worse -0.95 as better).
    sign = 1 if mode == "min" else -1
    opt = make_opt(lrs_=(1.0,))
    sched, got = plateau(opt, [-1 * sign, -0.95 * sign], mode=mode, patience=0, threshold=0.1)
    assert sched.best == -1 * sign
    assert got[-1] == 0.1
    opt = make_opt(lrs_=(1.0,))
    sched, got = plateau(opt, [-1 * sign, -1.11 * sign], mode=mode, patience=0, threshold=0.1)
    assert sched.best == -1.11 * sign and got[-1] == 1.0


def test_plateau_has_no_curve():
    with pytest.raises(TypeError, match="metric"):
        lrs.ReduceLROnPlateau(make_opt()).lr_at(3)


# ---------------------------------------------------------------- state_dict


def is_plain(x: Any) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(is_plain(v) for v in x)
    return x is None or type(x) in (int, float, str, bool)


def savez_round_trip(d: dict, tmp_path) -> dict:
    path = tmp_path / "sched.npz"
    np.savez(path, d=np.array(d, dtype=object))
    with np.load(path, allow_pickle=True) as z:
        return z["d"].item()


@pytest.mark.parametrize("case", [*CASE_IDS, "plateau"])
def test_state_dict_resumes_exactly(case, tmp_path):
    def build(o):
        if case == "plateau":
            return lrs.ReduceLROnPlateau(o, patience=1, cooldown=1)
        return CASES[case][0](o)

    n = 12 if case == "plateau" else CASES[case][2]
    metrics = [1.0, 0.9, 0.95, 0.97, 0.96, 0.8, 0.85, 0.86, 0.9, 0.1, 0.2, 0.3]
    ms = metrics if case == "plateau" else None
    opt = make_opt(fo.Adam)
    sched = build(opt)
    full = train(opt, sched, n, ms)

    opt_a = make_opt(fo.Adam)
    sched_a = build(opt_a)
    train(opt_a, sched_a, n // 2, ms)
    sd = sched_a.state_dict()
    assert is_plain(sd)
    sd = savez_round_trip(sd, tmp_path)
    opt_sd = opt_a.state_dict()

    opt_b = make_opt(fo.Adam)
    sched_b = build(opt_b)  # as in PyTorch: build the schedule, then load both states
    opt_b.load_state_dict(opt_sd)
    sched_b.load_state_dict(sd)
    assert sched_b.get_last_lr() == full[n // 2]
    rest = train(opt_b, sched_b, n - n // 2, ms[n // 2 :] if ms else None)
    assert rest == full[n // 2 :]  # bit for bit


def test_lambda_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def __call__(self, t: int) -> float:
            return self.rate**t

    opt = make_opt()
    sched = lrs.LambdaLR(opt, [Decay(0.5), lambda t: 1.0])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.5}, None]
    other = lrs.LambdaLR(make_opt(), [Decay(0.9), lambda t: 1.0])
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].rate == 0.5


def test_composite_state_dicts_nest():
    opt = make_opt()
    sched = lrs.SequentialLR(opt, [lrs.ConstantLR(opt), lrs.MultiStepLR(opt, [3, 3])], [2])
    sd = sched.state_dict()
    assert [s["total_iters"] for s in sd["_schedulers"][:1]] == [5]
    assert sd["_schedulers"][1]["milestones"] == [3, 3]
    chained = lrs.ChainedScheduler([lrs.ExponentialLR(opt, 0.5)])
    assert chained.state_dict()["_schedulers"][0]["gamma"] == 0.5


# ---------------------------------------------------------------- curve helpers


def test_curve_shapes_and_arguments():
    out = lrs.curve(lrs.StepLR, 5, lr=0.1, step_size=2)
    np.testing.assert_allclose(out, [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.01], rtol=1e-15)
    part = functools.partial(lrs.warmup_cosine, warmup_steps=2, total_steps=6)
    two = lrs.curve(part, [6, 0, 1], lr=[1.0, 2.0])
    np.testing.assert_allclose(two, [[0, 0], [0, 0], [0.5, 1.0]], atol=1e-16)
    assert lrs.curve(lrs.OneCycleLR, 10, max_lr=1.0, total_steps=10).shape == (10,)
    with pytest.raises(ValueError, match="steps"):
        lrs.curve(lrs.ExponentialLR, [-1], gamma=0.5)
    with pytest.raises(TypeError, match="steps"):
        lrs.curve(lrs.ExponentialLR, [0.5], gamma=0.5)
    with pytest.raises(TypeError, match="schedule"):
        lrs.curve(lambda o: None, 3)


# ---------------------------------------------------------------- argument errors

ERRORS = [
    # PyTorch's own
    (ValueError, "lr_lambda", lambda o: lrs.LambdaLR(o, [lambda t: 1.0])),
    (TypeError, "lr_lambda", lambda o: lrs.MultiplicativeLR(o, 0.9)),
    (ValueError, "factor", lambda o: lrs.ConstantLR(o, factor=1.5)),
    (ValueError, "start_factor", lambda o: lrs.LinearLR(o, start_factor=0)),
    (ValueError, "end_factor", lambda o: lrs.LinearLR(o, end_factor=1.5)),
    (ValueError, "T_0", lambda o: lrs.CosineAnnealingWarmRestarts(o, 0)),
    (TypeError, "T_0", lambda o: lrs.CosineAnnealingWarmRestarts(o, 1.5)),
    (ValueError, "T_mult", lambda o: lrs.CosineAnnealingWarmRestarts(o, 2, 0)),
    (TypeError, "eta_min", lambda o: lrs.CosineAnnealingWarmRestarts(o, 2, eta_min="0")),
    (ValueError, "mode", lambda o: lrs.CyclicLR(o, 0.01, 0.1, mode="square")),
    (ValueError, "max_lr", lambda o: lrs.CyclicLR(o, 0.01, [0.1])),
    (ValueError, "total_steps", lambda o: lrs.OneCycleLR(o, 0.1, 0)),
    (TypeError, "total_steps", lambda o: lrs.OneCycleLR(o, 0.1, 10.0)),
    (ValueError, "epochs", lambda o: lrs.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=3)),
    (ValueError, "total_steps", lambda o: lrs.OneCycleLR(o, 0.1)),
    (ValueError, "pct_start", lambda o: lrs.OneCycleLR(o, 0.1, 10, pct_start=1.5)),
    (ValueError, "anneal_strategy", lambda o: lrs.OneCycleLR(o, 0.1, 10, anneal_strategy="exp")),
    (ValueError, "max_lr", lambda o: lrs.OneCycleLR(o, [0.1, 0.2, 0.3], 10)),
    (ValueError, "factor", lambda o: lrs.ReduceLROnPlateau(o, factor=1.0)),
    (ValueError, "mode", lambda o: lrs.ReduceLROnPlateau(o, mode="up")),
    (ValueError, "threshold_mode", lambda o: lrs.ReduceLROnPlateau(o, threshold_mode="pct")),
    (ValueError, "min_lr", lambda o: lrs.ReduceLROnPlateau(o, min_lr=[0.1])),
    (ValueError, "last_epoch", lambda o: lrs.StepLR(o, 2, last_epoch=3)),  # no initial_lr
    (TypeError, "param_groups", lambda o: lrs.StepLR(object(), 2)),
    # the ones PyTorch should raise
    (ValueError, "factor", lambda o: lrs.ConstantLR(o, factor=0)),
    (ValueError, "total_iters", lambda o: lrs.ConstantLR(o, total_iters=0)),
    (ValueError, "total_iters", lambda o: lrs.LinearLR(o, total_iters=0)),
    (ValueError, "total_iters", lambda o: lrs.PolynomialLR(o, total_iters=0)),
    (ValueError, "power", lambda o: lrs.PolynomialLR(o, power=-1)),
    (ValueError, "step_size", lambda o: lrs.StepLR(o, 0)),
    (TypeError, "step_size", lambda o: lrs.StepLR(o, 2.5)),
    (ValueError, "gamma", lambda o: lrs.StepLR(o, 2, gamma=-0.1)),
    (ValueError, "gamma", lambda o: lrs.ExponentialLR(o, float("nan"))),
    (ValueError, "milestones", lambda o: lrs.MultiStepLR(o, [3, -1])),
    (TypeError, "milestones", lambda o: lrs.MultiStepLR(o, [1.5])),
    (ValueError, "T_max", lambda o: lrs.CosineAnnealingLR(o, 0)),
    (ValueError, "eta_min", lambda o: lrs.CosineAnnealingLR(o, 5, eta_min=-1)),
    (ValueError, "step_size_up", lambda o: lrs.CyclicLR(o, 0.01, 0.1, 0)),
    (ValueError, "scale_mode", lambda o: lrs.CyclicLR(o, 0.01, 0.1, scale_mode="step")),
    (TypeError, "scale_fn", lambda o: lrs.CyclicLR(o, 0.01, 0.1, scale_fn=2)),
    (ValueError, "zero length", lambda o: lrs.OneCycleLR(o, 0.1, 10, pct_start=1.0)),
    (
        ValueError,
        "zero length",
        lambda o: lrs.OneCycleLR(o, 0.1, 10, pct_start=0.1, three_phase=True),
    ),
    (ValueError, "div_factor", lambda o: lrs.OneCycleLR(o, 0.1, 10, div_factor=0)),
    (ValueError, "patience", lambda o: lrs.ReduceLROnPlateau(o, patience=-1)),
    (ValueError, "factor", lambda o: lrs.ReduceLROnPlateau(o, factor=-0.5)),
    (ValueError, "milestones", lambda o: lrs.SequentialLR(o, [lrs.StepLR(o, 2)] * 3, [4, 2])),
    (ValueError, "milestone", lambda o: lrs.SequentialLR(o, [lrs.StepLR(o, 2)] * 2, [])),
    (ValueError, "ReduceLROnPlateau", lambda o: lrs.ChainedScheduler([lrs.ReduceLROnPlateau(o)])),
    (
        ValueError,
        "another optimizer",
        lambda o: lrs.ChainedScheduler([lrs.StepLR(make_opt(), 2)], o),
    ),
    (ValueError, "at least one", lambda o: lrs.ChainedScheduler([], o)),
    (ValueError, "total_steps", lambda o: lrs.WarmupDecayLR(o, 10, 10)),
    (ValueError, "total_steps", lambda o: lrs.WarmupDecayLR(o, 10)),
    (ValueError, "decay", lambda o: lrs.WarmupDecayLR(o, 2, 10, decay="step")),
    (ValueError, "min_lr", lambda o: lrs.warmup_cosine(o, 2, 10, min_lr=0.5)),
    (ValueError, "start_factor", lambda o: lrs.warmup_constant(o, 2, start_factor=2)),
    (TypeError, "warmup_steps", lambda o: lrs.warmup_linear(o, 2.0, 10)),
]


@pytest.mark.parametrize(
    ("exc", "match", "build"), ERRORS, ids=[f"{m}-{i}" for i, (_, m, _) in enumerate(ERRORS)]
)
def test_argument_errors(exc, match, build):
    opt = make_opt()
    before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    with pytest.raises(exc, match=match):
        build(opt)
    if match not in ("milestones", "milestone", "ReduceLROnPlateau", "another optimizer"):
        # nothing was written (composites' children were built before the error)
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == before


def test_schedule_refuses_a_changed_group_count():
    opt = make_opt()
    sched = lrs.ExponentialLR(opt, 0.5)
    opt.add_param_group({"params": [np.zeros(1)]})
    with pytest.raises(ValueError, match="param groups"):
        sched.step()


def test_a_pytorch_style_subclass_overriding_get_lr():
    class Halving(lrs.LRScheduler):
        def get_lr(self):
            return [b * 0.5**self.last_epoch for b in self.base_lrs]

    opt = make_opt()
    sched = Halving(opt)
    got = train(opt, sched, 3)
    np.testing.assert_allclose(got, [[B0 * 0.5**t, B1 * 0.5**t] for t in range(4)], rtol=1e-15)
    np.testing.assert_allclose(sched.lr_at(5), [B0 / 32, B1 / 32], rtol=1e-15)
    with pytest.raises(NotImplementedError, match="get_last_lr"):
        lrs.StepLR(opt, 2).get_lr()


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_a_schedule_drives_muon_whose_step_scales_with_lr(backend):
    """Muon's update is -lr * NS(momentum) (no weight decay): halving the lr with StepLR
    halves the next displacement of a fresh copy stepped with the same grads."""
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((6, 4))
    g = rng.standard_normal((6, 4))
    moved = []
    for gamma in (1.0, 0.5):
        p = p0.copy()
        opt = fo.Muon([p], lr=0.1, weight_decay=0.0, backend=backend)
        sched = lrs.StepLR(opt, step_size=1, gamma=gamma)
        sched.step()
        assert opt.param_groups[0]["lr"] == 0.1 * gamma
        opt.step([g])
        moved.append(p - p0)
    np.testing.assert_allclose(moved[1], 0.5 * moved[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(SETS_ITS_OWN_RATE))
def test_a_schedule_writes_the_rate_of_the_self_setting_optimizers(name):
    """StepLR halves group["lr"] each step; SGDHD / AdamHD adapt from the written value
    (their own change per step is hypergrad_lr * h, tiny here); Prodigy scales its d-step
    by it. The trajectory stays finite and the written values are the schedule's."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal(5)
    opt = getattr(fo, name)([p], lr=0.1) if name != "Prodigy" else fo.Prodigy([p], lr=1.0)
    base = opt.param_groups[0]["lr"]
    sched = lrs.StepLR(opt, step_size=1, gamma=0.5)
    for k in range(1, 6):
        opt.step([rng.standard_normal(5)])
        sched.step()
        written = opt.param_groups[0]["lr"]
        if name == "Prodigy":
            assert written == base * 0.5**k
        else:  # the schedule halves whatever the hypergradient made of it
            assert written == pytest.approx(base * 0.5**k, rel=1e-3)
    assert np.isfinite(p).all()
