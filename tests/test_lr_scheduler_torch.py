"""fusedopt.lr_scheduler against torch.optim.lr_scheduler itself, when PyTorch is installed.

Each schedule is built the same way on a fusedopt optimizer and a torch optimizer (two
param groups) and stepped side by side: lr, momentum / beta1, ``last_epoch``, ``base_lrs``
and ``get_last_lr()`` must agree at every step, also when the user changes an lr by hand.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import lr_scheduler as ours

torch = pytest.importorskip("torch")
theirs = torch.optim.lr_scheduler
LRS = (0.1, 0.03)


def fo_opt(kind: str, backend: str) -> Any:
    groups = [{"params": [np.zeros(2)], "lr": lr} for lr in LRS]
    if kind == "sgd":
        return fo.SGD(groups, lr=LRS[0], momentum=0.5, backend=backend)
    return fo.Adam(groups, lr=LRS[0], backend=backend)


def torch_opt(kind: str) -> Any:
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=LRS[0], momentum=0.5)
    return torch.optim.Adam(groups, lr=LRS[0])


def snapshot(opt: Any, sched: Any) -> dict[str, Any]:
    groups = opt.param_groups
    out = {
        "lr": [float(g["lr"]) for g in groups],
        "momentum": [float(g["betas"][0] if "betas" in g else g["momentum"]) for g in groups],
        "last_lr": [float(x) for x in sched.get_last_lr()],
    }
    if hasattr(sched, "last_epoch"):
        out["last_epoch"] = sched.last_epoch
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any], where: str) -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        np.testing.assert_allclose(
            a[key], b[key], rtol=1e-12, atol=1e-16, err_msg=f"{where}: {key}"
        )


CASES: dict[str, tuple[Any, int]] = {
    "lambda": (lambda M, o: M.LambdaLR(o, lambda t: 0.9**t + 0.01 * t), 20),
    "multiplicative": (lambda M, o: M.MultiplicativeLR(o, [lambda t: 0.95, lambda t: 0.9]), 20),
    "step": (lambda M, o: M.StepLR(o, 3, 0.5), 20),
    "multistep": (lambda M, o: M.MultiStepLR(o, [0, 2, 5, 5, 9], 0.3), 20),
    "constant": (lambda M, o: M.ConstantLR(o, 0.5, 3), 10),
    "linear": (lambda M, o: M.LinearLR(o, 0.25, 0.0, 4), 10),
    "linear-default": (lambda M, o: M.LinearLR(o), 10),
    "exponential": (lambda M, o: M.ExponentialLR(o, 0.93), 40),
    "polynomial": (lambda M, o: M.PolynomialLR(o, 12, 2.5), 20),
    "cosine": (lambda M, o: M.CosineAnnealingLR(o, 7, 0.001), 40),
    "cosine-long": (lambda M, o: M.CosineAnnealingLR(o, 300, 1e-4), 300),
    "warm-restarts": (lambda M, o: M.CosineAnnealingWarmRestarts(o, 3, 2, 0.001), 50),
    "cyclic": (lambda M, o: M.CyclicLR(o, [0.01, 0.02], [0.1, 0.2], 3, 6, "triangular2"), 40),
    "cyclic-exp": (
        lambda M, o: M.CyclicLR(o, 0.01, 0.1, 4, mode="exp_range", gamma=0.97, base_momentum=0.7),
        40,
    ),
    "cyclic-no-momentum": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 4, cycle_momentum=False), 20),
    "onecycle": (lambda M, o: M.OneCycleLR(o, 0.1, 100), 100),
    "onecycle-linear": (
        lambda M, o: M.OneCycleLR(
            o, [0.1, 0.2], epochs=5, steps_per_epoch=7, pct_start=0.25, anneal_strategy="linear"
        ),
        35,
    ),
    "onecycle-three-phase": (
        lambda M, o: M.OneCycleLR(o, 0.1, 37, pct_start=0.4, three_phase=True, div_factor=10),
        37,
    ),
    "chained": (
        lambda M, o: M.ChainedScheduler(
            [M.StepLR(o, 4, 0.5), M.CosineAnnealingLR(o, 10, 0.001), M.LinearLR(o, 0.5, 1.0, 6)]
        ),
        40,
    ),
    "chained-multiplicative": (
        lambda M, o: M.ChainedScheduler(
            [M.MultiStepLR(o, [3, 7]), M.PolynomialLR(o, 10, 2.0), M.ExponentialLR(o, 0.99)]
        ),
        20,
    ),
    "sequential": (
        lambda M, o: M.SequentialLR(
            o, [M.LinearLR(o, 0.1, 1.0, 5), M.CosineAnnealingLR(o, 20, 0.001)], [5]
        ),
        40,
    ),
    "sequential-three": (
        lambda M, o: M.SequentialLR(
            o, [M.ConstantLR(o, 0.2, 10), M.ExponentialLR(o, 0.9), M.StepLR(o, 3, 0.5)], [3, 8]
        ),
        30,
    ),
    "sequential-restarts-first": (
        lambda M, o: M.SequentialLR(
            o, [M.CosineAnnealingWarmRestarts(o, 4), M.MultiplicativeLR(o, lambda t: 0.9)], [6]
        ),
        12,
    ),
    "plateau": (lambda M, o: M.ReduceLROnPlateau(o, patience=2, cooldown=1), 40),
    "plateau-max-abs": (
        lambda M, o: M.ReduceLROnPlateau(o, "max", 0.5, 1, 0.01, "abs", 2, [0.01, 0.001]),
        40,
    ),
}
METRICS = [1, 0.9, 0.8, 0.85, 0.86, 0.7, 0.71, 0.72] + [abs(math.sin(k)) for k in range(40)]


def run(case: str, kind: str, backend: str, edit: dict[int, float] | None = None) -> None:
    build, n = CASES[case]
    fopt, topt = fo_opt(kind, backend), torch_opt(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs, ts = build(ours, fopt), build(theirs, topt)
        for t in range(n + 1):
            assert_same(snapshot(fopt, fs), snapshot(topt, ts), f"{case} t={t}")
            if hasattr(ts, "base_lrs") and not isinstance(ts, theirs.SequentialLR):
                np.testing.assert_allclose(fs.base_lrs, ts.base_lrs, rtol=1e-15)
            if edit and t in edit:
                for g in (*fopt.param_groups, *topt.param_groups):
                    g["lr"] *= edit[t]
            if t == n:
                break
            topt.step()
            if min(g["lr"] for g in fopt.param_groups) >= 0:
                fopt.step([np.zeros(2), np.zeros(2)])
            else:  # torch steps uphill; fusedopt refuses a negative lr, changing nothing
                with pytest.raises(ValueError, match="invalid lr"):
                    fopt.step([np.zeros(2), np.zeros(2)])
            args = (METRICS[t],) if case.startswith("plateau") else ()
            ts.step(*args)
            fs.step(*args)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(("kind", "backend"), [("sgd", "fused"), ("adam", "numpy")])
def test_matches_torch_step_for_step(case, kind, backend):
    run(case, kind, backend)


HAND_EDITED = ["multiplicative", "step", "multistep", "constant", "linear", "exponential"]
HAND_EDITED += ["polynomial", "cosine", "lambda", "cyclic", "onecycle", "chained", "sequential"]


@pytest.mark.parametrize("case", [*HAND_EDITED, "plateau"])
def test_matches_torch_when_the_lr_is_changed_by_hand(case):
    run(case, "sgd", "fused", edit={4: 0.5, 9: 3.0})


@pytest.mark.parametrize(("T_0", "T_mult"), [(4, 1), (3, 2), (5, 3)])
def test_warm_restarts_fractional_epochs_match_torch(T_0, T_mult):
    fopt, topt = fo_opt("sgd", "fused"), torch_opt("sgd")
    fs = ours.CosineAnnealingWarmRestarts(fopt, T_0, T_mult, 0.001)
    ts = theirs.CosineAnnealingWarmRestarts(topt, T_0, T_mult, 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [*np.arange(0, 40, 0.37).tolist(), 0, 3, 9, 21, 1.5]:
            for arg in ((epoch,), ()):
                fs.step(*arg)
                ts.step(*arg)
                assert_same(snapshot(fopt, fs), snapshot(topt, ts), f"epoch {epoch}")


@pytest.mark.parametrize("case", ["step", "cosine", "cyclic-exp", "onecycle", "plateau"])
def test_loads_a_torch_state_dict(case):
    build, n = CASES[case]
    fopt, topt = fo_opt("sgd", "fused"), torch_opt("sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs, ts = build(ours, fopt), build(theirs, topt)
        args = (0.5,) if case == "plateau" else ()
        for _ in range(n // 3):
            ts.step(*args)
        fs.load_state_dict(ts.state_dict())
        for fg, tg in zip(fopt.param_groups, topt.param_groups, strict=True):
            fg["lr"] = tg["lr"]
            fg["momentum"] = tg["momentum"]
        for _ in range(n // 3):
            ts.step(*args)
            fs.step(*args)
            assert_same(snapshot(fopt, fs), snapshot(topt, ts), case)
