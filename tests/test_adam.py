"""The first two steps of SGD, Adam and AdamW against values computed by hand from the formulas.

Each expected value is worked out here with plain Python floats, element by element,
independently of the code under test. Both backends are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

BACKENDS = ["fused", "numpy"]
P0, G1, G2 = 1.5, 0.4, -0.3


def two_steps(cls, backend, **kwargs):
    p = np.array([P0, -P0])
    opt = cls([p], backend=backend, **kwargs)
    out = []
    for g in (G1, G2):
        opt.step([np.array([g, -g])])
        out.append(p.copy())
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_plain(backend):
    s1, s2 = two_steps(fo.SGD, backend, lr=0.1)
    assert s1[0] == pytest.approx(1.5 - 0.1 * 0.4)
    assert s2[0] == pytest.approx(1.5 - 0.1 * 0.4 + 0.1 * 0.3)
    assert s2[1] == pytest.approx(-s2[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_first_momentum_step_takes_the_gradient_without_dampening(backend):
    s1, s2 = two_steps(fo.SGD, backend, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.2)
    d1 = 0.4 + 0.2 * 1.5  # g + wd p
    b1 = d1  # no dampening on the first step
    p1 = 1.5 - 0.1 * b1
    d2 = -0.3 + 0.2 * p1
    b2 = 0.9 * b1 + (1 - 0.5) * d2
    p2 = p1 - 0.1 * b2
    assert s1[0] == pytest.approx(p1, rel=1e-14)
    assert s2[0] == pytest.approx(p2, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_nesterov_maximize(backend):
    s1, s2 = two_steps(fo.SGD, backend, lr=0.1, momentum=0.9, nesterov=True, maximize=True)
    d1 = -0.4
    b1 = d1
    p1 = 1.5 - 0.1 * (d1 + 0.9 * b1)
    d2 = 0.3
    b2 = 0.9 * b1 + d2
    p2 = p1 - 0.1 * (d2 + 0.9 * b2)
    assert s1[0] == pytest.approx(p1, rel=1e-14)
    assert s2[0] == pytest.approx(p2, rel=1e-14)


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


@pytest.mark.parametrize("backend", BACKENDS)
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
def test_adam_family(cls, kwargs, decoupled, backend):
    lr = kwargs["lr"]
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    eps = kwargs.get("eps", 1e-8)
    wd = kwargs.get("weight_decay", 1e-2 if cls is fo.AdamW else 0.0)
    expected = adam_by_hand(lr, b1, b2, eps, wd, decoupled, kwargs.get("amsgrad", False))
    got = two_steps(cls, backend, **kwargs)
    for e, g in zip(expected, got, strict=True):
        assert g[0] == pytest.approx(e, rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_amsgrad_keeps_the_max_of_the_raw_second_moment(backend):
    # A large gradient then small ones: v decays, v_max holds the first raw value.
    p = np.array([0.0])
    opt = fo.Adam([p], lr=0.1, betas=(0.5, 0.5), amsgrad=True, backend=backend)
    for g in (2.0, 0.1, 0.1):
        opt.step([np.array([g])])
    v1 = 0.5 * 4.0
    assert opt.state[0]["max_exp_avg_sq"][0] == pytest.approx(v1)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(0.25 * v1 + 0.25 * 0.01 + 0.5 * 0.01)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adamw_differs_from_adam_only_through_decay(backend):
    a = two_steps(fo.Adam, backend, lr=0.1, weight_decay=0.0)
    w = two_steps(fo.AdamW, backend, lr=0.1, weight_decay=0.0)
    np.testing.assert_array_equal(a[1], w[1])


HYPER_ERRORS = [
    (fo.SGD, dict(momentum=-0.1), ValueError, "momentum"),
    (fo.SGD, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.SGD, dict(nesterov=True), ValueError, "nesterov"),
    (fo.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov"),
    (fo.SGD, dict(lr="0.1"), TypeError, "lr"),
    (fo.SGD, dict(nesterov=1), TypeError, "nesterov"),
    (fo.Adam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.Adam, dict(betas=(1.0, 0.9)), ValueError, r"betas\[0\]"),
    (fo.Adam, dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (fo.Adam, dict(betas=(0.9,)), TypeError, "betas"),
    (fo.Adam, dict(weight_decay=float("nan")), ValueError, "weight_decay"),
    (fo.AdamW, dict(lr=float("inf")), ValueError, "lr"),
    (fo.AdamW, dict(amsgrad="yes"), TypeError, "amsgrad"),
]


@pytest.mark.parametrize(("cls", "kwargs", "exc", "match"), HYPER_ERRORS)
def test_bad_hyperparameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls([np.zeros(3)], **kwargs)
