"""Adam, AdamW and Adam's ``decoupled_weight_decay``: the first steps against values
computed by hand from torch.optim.Adam's formulas, AMSGrad's maximum, and AdamW as Adam
with the decoupled rule (the group key decides, as in torch).

Each expected value is worked out here with plain Python floats, independently of the
code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, grads_for, make, odd_trajectory

P0, G1, G2 = 1.5, 0.4, -0.3  # run on [P0, -P0] with grads [g, -g] (odd_trajectory)


def adam_by_hand(lr, b1, b2, eps, wd, decoupled, amsgrad, grads=(G1, G2), p=P0):
    m = v = vmax = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        vv = vmax if amsgrad else v
        denom = math.sqrt(vv) / math.sqrt(1 - b2**t) + eps  # eps after the bias correction
        p = p - lr / (1 - b1**t) * m / denom
        out.append(p)
    return out


@pytest.mark.parametrize(
    ("cls", "kwargs", "decoupled"),
    [
        (fo.Adam, dict(lr=0.1), False),
        (fo.Adam, dict(lr=0.1, betas=(0.5, 0.8), eps=0.1, weight_decay=0.3), False),
        (fo.Adam, dict(lr=0.1, betas=(0.5, 0.8), amsgrad=True), False),
        (fo.AdamW, dict(lr=0.1, weight_decay=0.3), True),
        (fo.AdamW, dict(lr=0.1, betas=(0.5, 0.8), eps=0.1, weight_decay=0.5, amsgrad=True), True),
    ],
    ids=["adam", "adam-l2-eps", "adam-amsgrad", "adamw", "adamw-amsgrad-eps"],
)
def test_adam_family(cls, kwargs, decoupled, backend, dtype, rel):
    lr = kwargs["lr"]
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    eps = kwargs.get("eps", 1e-8)
    wd = kwargs.get("weight_decay", 1e-2 if cls is fo.AdamW else 0.0)
    amsgrad = kwargs.get("amsgrad", False)
    expected = adam_by_hand(lr, b1, b2, eps, wd, decoupled, amsgrad)
    got, opt = odd_trajectory(cls, backend, dtype, P0, (G1, G2), **kwargs)
    assert_steps(got, [(e, -e) for e in expected], rel)
    keys = {"step", "exp_avg", "exp_avg_sq"}  # only the state an option uses, as torch
    assert set(opt.state[0]) == (keys | {"max_exp_avg_sq"} if amsgrad else keys)


def test_amsgrad_keeps_the_max_of_the_raw_second_moment(backend):
    # A large gradient then small ones: v decays, v_max holds the first raw value.
    p = np.array([0.0])
    opt = fo.Adam([p], lr=0.1, betas=(0.5, 0.5), amsgrad=True, backend=backend)
    for g in (2.0, 0.1, 0.1):
        opt.step([np.array([g])])
    v1 = 0.5 * 4.0
    assert opt.state[0]["max_exp_avg_sq"][0] == pytest.approx(v1, rel=1e-14)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(
        0.25 * v1 + 0.25 * 0.01 + 0.5 * 0.01, rel=1e-14
    )


def test_adamw_differs_from_adam_only_through_decay(backend):
    a, _ = odd_trajectory(fo.Adam, backend, np.float64, P0, (G1, G2), lr=0.1, weight_decay=0.0)
    w, _ = odd_trajectory(fo.AdamW, backend, np.float64, P0, (G1, G2), lr=0.1, weight_decay=0.0)
    np.testing.assert_array_equal(a[1], w[1])


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_with_decoupled_weight_decay_is_adamw(backend, amsgrad):
    """As in torch 2.x: AdamW is Adam(decoupled_weight_decay=True), bit for bit."""
    kw = dict(lr=0.05, weight_decay=0.3, amsgrad=amsgrad)
    pa, a = make(fo.Adam, {**kw, "decoupled_weight_decay": True}, backend)
    pw, w = make(fo.AdamW, kw, backend)
    pl, plain = make(fo.Adam, kw, backend)
    for t in range(5):
        for params, opt in ((pa, a), (pw, w), (pl, plain)):
            opt.step(grads_for(params, t))
    for x, y, z in zip(pa, pw, pl, strict=True):
        assert x.tobytes() == y.tobytes()
        assert not np.array_equal(x, z)  # the coupled L2 rule is another trajectory
    assert a.param_groups[0]["decoupled_weight_decay"] is True
    assert w.param_groups[0]["decoupled_weight_decay"] is True
    assert plain.param_groups[0]["decoupled_weight_decay"] is False


def test_adamw_keeps_its_rule_when_the_group_key_is_switched_off(backend):
    """The group key, not the class, decides (as in torch): a user may switch it."""
    pw, w = make(fo.AdamW, dict(lr=0.05, weight_decay=0.3), backend)
    pa, a = make(fo.Adam, dict(lr=0.05, weight_decay=0.3), backend)
    w.param_groups[0]["decoupled_weight_decay"] = False
    for t in range(3):
        w.step(grads_for(pw, t))
        a.step(grads_for(pa, t))
    for x, y in zip(pw, pa, strict=True):
        assert x.tobytes() == y.tobytes()
