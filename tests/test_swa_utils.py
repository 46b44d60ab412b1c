"""fusedopt.swa_utils: AveragedParams against hand-computed averages and against
torch.optim.swa_utils.AveragedModel on a module with the same weights; SWALR against
torch's SWALR step for step; bad input refused before anything changes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import swa_utils as su


def _snapshots(rng, shapes, n, dtype=np.float64):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]


SHAPES = [(7, 5), (5,), (3, 4, 2)]


# ------------------------------------------------------------------ averages by hand


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_swa_default_is_the_mean(dtype):
    rng = np.random.default_rng(0)
    snaps = _snapshots(rng, SHAPES, 9, dtype)
    avg = su.AveragedParams(snaps[0])
    for s in snaps:
        avg.update_parameters(s)
    assert avg.n_averaged == 9
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for k, a in enumerate(avg.params):
        want = np.mean([np.asarray(s[k], np.float64) for s in snaps], axis=0)
        assert a.dtype == dtype
        np.testing.assert_allclose(a, want, rtol=tol, atol=tol)


def test_first_update_copies_and_params_are_copies():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3))
    avg = su.AveragedParams([w], multi_avg_fn=su.get_ema_multi_avg_fn(0.5))
    assert avg.params[0] is not w and np.array_equal(avg.params[0], w)
    w2 = rng.standard_normal((4, 3))
    avg.update_parameters([w2])  # the first update copies, whatever the function
    np.testing.assert_array_equal(avg.params[0], w2)
    w2 += 1.0
    assert not np.array_equal(avg.params[0], w2)  # a copy, not the caller's array


@pytest.mark.parametrize("multi", [True, False])
def test_ema_by_hand(multi):
    rng = np.random.default_rng(2)
    snaps = _snapshots(rng, SHAPES, 6)
    d = 0.7
    fn = {"multi_avg_fn": su.get_ema_multi_avg_fn(d)} if multi else {"avg_fn": su.get_ema_avg_fn(d)}
    avg = su.AveragedParams(snaps[0], **fn)
    for s in snaps:
        avg.update_parameters(s)
    for k, a in enumerate(avg.params):
        # W_0 = x_0; W_t = d W_(t-1) + (1 - d) x_t  =>  closed form
        n = len(snaps)
        want = d ** (n - 1) * snaps[0][k] + sum(
            (1 - d) * d ** (n - 1 - t) * snaps[t][k] for t in range(1, n)
        )
        np.testing.assert_allclose(a, want, rtol=1e-13, atol=1e-14)


def test_swa_multi_and_single_fns_give_the_mean():
    rng = np.random.default_rng(3)
    snaps = _snapshots(rng, SHAPES, 5)
    for fn in ({"multi_avg_fn": su.get_swa_multi_avg_fn()}, {"avg_fn": su.get_swa_avg_fn()}):
        avg = su.AveragedParams(snaps[0], **fn)
        for s in snaps:
            avg.update_parameters(s)
        for k, a in enumerate(avg.params):
            np.testing.assert_allclose(a, np.mean([s[k] for s in snaps], axis=0), rtol=1e-13)


def test_lerp_formula_both_branches():
    # torch.lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w), in the dtype
    a = np.array([1.0, 3.0, -2.0], np.float32)
    b = np.array([2.0, -1.0, 7.5], np.float32)
    for w in (0.1, 0.75):
        x = a.copy()
        fo._core.lerp_arrays([x], [b], w)
        wf = np.float32(w)
        want = a + wf * (b - a) if w < 0.5 else b - (b - a) * (np.float32(1) - wf)
        np.testing.assert_array_equal(x, want)


def test_custom_avg_fn_and_multi_avg_fn():
    rng = np.random.default_rng(4)
    snaps = _snapshots(rng, SHAPES, 4)
    seen: list[int] = []

    def running_max(a, c, n):
        seen.append(n)
        return np.maximum(a, c)

    avg = su.AveragedParams(snaps[0], avg_fn=running_max)
    for s in snaps:
        avg.update_parameters(s)
    assert seen == [1] * 3 + [2] * 3 + [3] * 3  # n_averaged, per array, from the 2nd update
    for k, a in enumerate(avg.params):
        np.testing.assert_array_equal(a, np.max([s[k] for s in snaps], axis=0))

    calls: list[tuple[int, int]] = []

    def halfway(avgs, curs, n):
        calls.append((len(avgs), n))
        for a, c in zip(avgs, curs, strict=True):
            a += 0.5 * (c - a)

    avg = su.AveragedParams(snaps[0], multi_avg_fn=halfway)
    for s in snaps[:3]:
        avg.update_parameters(s)
    assert calls == [(3, 1), (3, 2)]
    for k, a in enumerate(avg.params):
        want = 0.5 * (0.5 * (snaps[0][k] + snaps[1][k]) + snaps[2][k])
        np.testing.assert_allclose(a, want, rtol=1e-14)


def test_multi_avg_fn_called_once_per_dtype():
    w32, w64 = np.ones(3, np.float32), np.ones(2)
    calls = []
    avg = su.AveragedParams(
        [w32, w64], multi_avg_fn=lambda a, c, n: calls.append([x.dtype for x in a])
    )
    avg.update_parameters([w32, w64])
    avg.update_parameters([w32, w64])
    assert calls == [[np.float32], [np.float64]]


def test_threads_same_bits():
    rng = np.random.default_rng(5)
    snaps = _snapshots(rng, [(300, 500), (70_001,)], 3, np.float32)
    saved = fo.get_num_threads()
    out = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            ema = su.AveragedParams(snaps[0], multi_avg_fn=su.get_ema_multi_avg_fn(0.9))
            swa = su.AveragedParams(snaps[0])
            for s in snaps:
                ema.update_parameters(s)
                swa.update_parameters(s)
            out.append(ema.params + swa.params)
    finally:
        fo.set_num_threads(saved)
    for arrays in out[1:]:
        for a, b in zip(arrays, out[0], strict=True):
            np.testing.assert_array_equal(a, b)


def test_other_layouts_and_half_precision():
    rng = np.random.default_rng(6)
    f = np.asfortranarray(rng.standard_normal((6, 4)))
    h = rng.standard_normal(10).astype(np.float16)
    avg = su.AveragedParams([f, h])
    cur_f = rng.standard_normal((6, 4))  # C order against a Fortran-order average
    cur_h = rng.standard_normal(10).astype(np.float16)
    avg.update_parameters([f, h])
    avg.update_parameters([cur_f, cur_h])
    assert avg.params[0].flags.f_contiguous
    np.testing.assert_allclose(avg.params[0], (f + cur_f) / 2, rtol=1e-14)
    np.testing.assert_allclose(avg.params[1], (h.astype(np.float32) + cur_h) / 2, rtol=2e-3)
    assert avg.params[1].dtype == np.float16


def test_state_dict_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    snaps = _snapshots(rng, SHAPES, 6, np.float32)
    a = su.AveragedParams(snaps[0])
    for s in snaps[:3]:
        a.update_parameters(s)
    sd = a.state_dict()
    b = su.AveragedParams(snaps[0])
    b.load_state_dict(sd)
    assert b.n_averaged == 3
    for s in snaps[3:]:
        a.update_parameters(s)
        b.update_parameters(s)
    for x, y in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(x, y)
    sd["params"][0][...] = 99.0  # a copy: changes nothing
    assert not (a.params[0] == 99.0).any()


# ------------------------------------------------------------------ torch parity


def _torch_module(torch, arrays):
    # the arrays' dtype, whatever torch's default dtype another test left behind
    dtype = torch.from_numpy(arrays[0]).dtype
    mod = torch.nn.Sequential(
        torch.nn.Linear(5, 7, dtype=dtype), torch.nn.Linear(7, 3, dtype=dtype)
    )
    with torch.no_grad():
        for p, a in zip(mod.parameters(), arrays, strict=True):
            p.copy_(torch.from_numpy(a))
    return mod


@pytest.mark.parametrize("kind", ["default", "ema_multi", "swa_multi", "ema", "swa"])
def test_against_torch_averaged_model(kind):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as tsu

    rng = np.random.default_rng(8)
    shapes = [(7, 5), (7,), (3, 7), (3,)]
    snaps = _snapshots(rng, shapes, 8, np.float32)
    ours_fn, theirs_fn = {
        "default": ({}, {}),
        "ema_multi": (
            {"multi_avg_fn": su.get_ema_multi_avg_fn(0.9)},
            {"multi_avg_fn": tsu.get_ema_multi_avg_fn(0.9)},
        ),
        "swa_multi": (
            {"multi_avg_fn": su.get_swa_multi_avg_fn()},
            {"multi_avg_fn": tsu.get_swa_multi_avg_fn()},
        ),
        "ema": ({"avg_fn": su.get_ema_avg_fn(0.9)}, {"avg_fn": tsu.get_ema_avg_fn(0.9)}),
        "swa": ({"avg_fn": su.get_swa_avg_fn()}, {"avg_fn": tsu.get_swa_avg_fn()}),
    }[kind]
    model = _torch_module(torch, snaps[0])
    theirs = tsu.AveragedModel(model, **theirs_fn)
    ours = su.AveragedParams(snaps[0], **ours_fn)
    for s in snaps:
        with torch.no_grad():
            for p, a in zip(model.parameters(), s, strict=True):
                p.copy_(torch.from_numpy(a))
        theirs.update_parameters(model)
        ours.update_parameters(s)
    assert ours.n_averaged == int(theirs.n_averaged)
    for a, t in zip(ours.params, theirs.module.parameters(), strict=True):
        t = t.detach().numpy()
        if kind in ("default", "swa", "ema"):  # the same elementary operations: same bits
            np.testing.assert_array_equal(a, t)
        else:  # torch's lerp may use FMA; its SWA weight is a float32 tensor
            np.testing.assert_allclose(a, t, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ SWALR


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 5, 10])
def test_swalr_matches_torch(strategy, anneal_epochs):
    torch = pytest.importorskip("torch")
    lrs, swa_lrs = [0.1, 0.5, 0.02], [0.01, 0.2, 0.05]
    tparams = [torch.zeros(2, requires_grad=True) for _ in lrs]
    topt = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(tparams, lrs, strict=True)], lr=1.0
    )
    tsched = torch.optim.swa_utils.SWALR(
        topt, swa_lr=swa_lrs, anneal_epochs=anneal_epochs, anneal_strategy=strategy
    )
    opt = fo.SGD([{"params": [np.zeros(2)], "lr": lr} for lr in lrs], lr=1.0)
    sched = su.SWALR(opt, swa_lr=swa_lrs, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    assert sched.get_last_lr() == tsched.get_last_lr()
    seen = [sched.get_last_lr()]
    for _ in range(30):
        opt.step([np.ones(2)] * 3)
        topt.step()
        tsched.step()
        sched.step()
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
        seen.append(sched.get_last_lr())
    assert [g["swa_lr"] for g in opt.param_groups] == swa_lrs
    np.testing.assert_array_equal(sched.lr_at(np.arange(31)), np.array(seen))
    np.testing.assert_allclose(seen[-1], swa_lrs, rtol=1e-12)  # annealed to swa_lr


def test_swalr_after_another_schedule_and_state_dict():
    torch = pytest.importorskip("torch")
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=1.0)
    opt = fo.SGD([np.zeros(1)], lr=1.0)
    ts1 = torch.optim.lr_scheduler.ExponentialLR(topt, 0.8)
    s1 = fo.lr_scheduler.ExponentialLR(opt, 0.8)
    for _ in range(4):
        topt.step()
        ts1.step()
        s1.step()
    ts2 = torch.optim.swa_utils.SWALR(topt, swa_lr=0.05, anneal_epochs=6)
    s2 = su.SWALR(opt, swa_lr=0.05, anneal_epochs=6)
    for _ in range(3):
        topt.step()
        ts2.step()
        s2.step()
        # (ExponentialLR's closed form and torch's product differ in the last bit)
        assert s2.get_last_lr() == pytest.approx(ts2.get_last_lr(), rel=1e-13)
    sd = s2.state_dict()
    assert sd["_step_count"] == 4 and sd["anneal_epochs"] == 6
    s3 = su.SWALR(fo.SGD([np.zeros(1)], lr=1.0), swa_lr=0.05, anneal_epochs=6)
    s3.load_state_dict(sd)
    s3.optimizer.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(5):
        topt.step()
        ts2.step()
        s3.step()
        assert s3.get_last_lr() == pytest.approx(ts2.get_last_lr(), rel=1e-13)


def test_swalr_by_hand_linear():
    opt = fo.SGD([np.zeros(1)], lr=1.0)
    sched = su.SWALR(opt, swa_lr=0.2, anneal_epochs=4, anneal_strategy="linear")
    got = [sched.get_last_lr()[0]]
    for _ in range(6):
        sched.step()
        got.append(sched.get_last_lr()[0])
    # linear from 1.0 to 0.2 over 4 steps, then held
    np.testing.assert_allclose(got, [1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2], rtol=1e-12)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("decay", [-0.1, 1.5, float("nan")])
def test_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        su.get_ema_multi_avg_fn(decay)
    with pytest.raises(ValueError, match="decay"):
        su.get_ema_avg_fn(decay)
    with pytest.raises(TypeError, match="decay"):
        su.get_ema_avg_fn("0.9")


def _checked(avg, before):
    for a, b in zip(avg.params, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_before", [0, 2])
def test_bad_update_changes_nothing(n_before):
    rng = np.random.default_rng(9)
    snaps = _snapshots(rng, SHAPES, 3, np.float32)
    avg = su.AveragedParams(snaps[0], multi_avg_fn=su.get_ema_multi_avg_fn(0.5))
    for s in snaps[:n_before]:
        avg.update_parameters(s)
    before = [a.copy() for a in avg.params]
    good = snaps[2]
    bad_cases = [
        (good[:2], ValueError, "got 2 params, but 3"),
        ([*good, good[0]], ValueError, "got 4 params"),
        ([good[0], np.ones((6,), np.float32), good[2]], ValueError, r"params\[1\] has shape"),
        ([good[0], good[1].astype(np.float64), good[2]], TypeError, r"params\[1\] has dtype"),
        ([good[0], [1.0] * 5, good[2]], TypeError, r"params\[1\] must be a numpy.ndarray"),
        (good[0], TypeError, "single numpy.ndarray"),
        ([good[0], good[1], avg.params[2]], ValueError, r"average of params\[2\] shares memory"),
    ]
    for params, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            avg.update_parameters(params)
        _checked(avg, before)
        assert avg.n_averaged == n_before


def test_bad_avg_fn_result_changes_nothing():
    w = [np.ones(3), np.ones(2)]
    avg = su.AveragedParams(w, avg_fn=lambda a, c, n: np.ones(5) if a.size == 2 else a + c)
    avg.update_parameters(w)
    before = [a.copy() for a in avg.params]
    with pytest.raises(ValueError, match=r"avg_fn returned shape \(5,\) for params\[1\]"):
        avg.update_parameters(w)
    _checked(avg, before)
    assert avg.n_averaged == 1


def test_bad_construction_and_state_dict():
    with pytest.raises(ValueError, match="Only one of avg_fn and multi_avg_fn"):
        su.AveragedParams(
            [np.ones(2)], avg_fn=su.get_swa_avg_fn(), multi_avg_fn=su.get_swa_multi_avg_fn()
        )
    with pytest.raises(TypeError, match="avg_fn must be callable"):
        su.AveragedParams([np.ones(2)], avg_fn=3)
    with pytest.raises(TypeError, match=r"params\[0\] has dtype int64"):
        su.AveragedParams([np.ones(2, np.int64)])
    with pytest.raises(TypeError, match=r"single numpy\.ndarray"):
        su.AveragedParams(np.ones(2))
    avg = su.AveragedParams([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="holds 1 averages"):
        avg.load_state_dict({"params": [np.ones(2)], "n_averaged": 1})
    with pytest.raises(ValueError, match="shape"):
        avg.load_state_dict({"params": [np.ones(2), np.ones(4)], "n_averaged": 1})
    with pytest.raises(ValueError, match="n_averaged"):
        avg.load_state_dict({"params": [np.ones(2), np.ones(3)], "n_averaged": -1})
    assert avg.n_averaged == 0


def test_swalr_bad_arguments_change_nothing():
    opt = fo.SGD([{"params": [np.zeros(1)]}, {"params": [np.zeros(1)]}], lr=0.1)
    groups_before = [dict(g) for g in opt.param_groups]
    cases = [
        (dict(swa_lr=[0.1, 0.2, 0.3]), ValueError, "one value per param group"),
        (dict(swa_lr=0.1, anneal_epochs=-1), ValueError, "anneal_epochs"),
        (dict(swa_lr=0.1, anneal_epochs=2.5), TypeError, "anneal_epochs must be an int"),
        (dict(swa_lr=0.1, anneal_strategy="exp"), ValueError, "anneal_strategy"),
        (dict(swa_lr=float("nan")), ValueError, "swa_lr"),
        (dict(swa_lr=-0.1), ValueError, "swa_lr"),
    ]
    for kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            su.SWALR(opt, **kw)
        assert [dict(g) for g in opt.param_groups] == groups_before
    assert math.isclose(opt.param_groups[0]["lr"], 0.1)
