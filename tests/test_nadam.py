"""NAdam, RAdam and Lion against values computed by hand from their formulas.

Each expected value is worked out here with plain Python floats, element by element,
from the formulas of PyTorch's documentation (NAdam, RAdam) and of the Lion paper,
independently of the code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import fusedopt as fo

BACKENDS = ["fused", "numpy"]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
REL = {np.float64: 1e-13, np.float32: 2e-6}
P0 = 1.5
GRADS = (0.4, -0.3, 0.7, 0.1, -0.5, 0.2, 0.6, -0.8)


def run(cls, backend, dtype, grads=GRADS, **kwargs):
    """Steps ``[P0, -P0]`` with grads ``[g, -g]``; returns entry 0 after each step, and opt."""
    p = np.array([P0, -P0], dtype)
    opt = cls([p], backend=backend, **kwargs)
    out = []
    for g in grads:
        opt.step([np.array([g, -g], dtype)])
        assert p[1] == -p[0]  # the update is odd in (p, g): both entries agree
        out.append(float(p[0]))
    return out, opt


def check(got, expected, dtype):
    assert len(got) == len(expected)
    for t, (g, e) in enumerate(zip(got, expected, strict=True), start=1):
        assert g == pytest.approx(e, rel=REL[dtype], abs=1e-12), f"step {t}"


# ------------------------------------------------------------------- NAdam
def nadam_by_hand(lr, b1, b2, eps, wd, md, decoupled, maximize, grads=GRADS, p=P0):
    m = v = 0.0
    mu_product = 1.0
    out, products = [], []
    for t, g in enumerate(grads, start=1):
        if maximize:
            g = -g
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * md))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * md))
        mu_product = mu_product * mu_t  # prod_{i<=t} mu_i
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = math.sqrt(v / (1 - b2**t)) + eps
        p = (
            p
            - lr * (1 - mu_t) / (1 - mu_product) * g / denom
            - lr * mu_next / (1 - mu_product * mu_next) * m / denom
        )
        out.append(p)
        products.append(mu_product)
    return out, products


NADAM_CASES = [
    pytest.param(dict(lr=0.1), id="defaults"),
    pytest.param(dict(lr=0.1, weight_decay=0.3), id="l2"),
    pytest.param(dict(lr=0.1, weight_decay=0.3, decoupled_weight_decay=True), id="decoupled"),
    pytest.param(
        dict(lr=0.05, betas=(0.5, 0.8), eps=0.1, momentum_decay=0.5, maximize=True),
        id="momentum_decay-betas-eps-maximize",
    ),
    pytest.param(dict(lr=0.1, momentum_decay=0.0), id="momentum_decay-0"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", NADAM_CASES)
def test_nadam(kwargs, backend, dtype):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    expected, products = nadam_by_hand(
        kwargs["lr"],
        b1,
        b2,
        kwargs.get("eps", 1e-8),
        kwargs.get("weight_decay", 0.0),
        kwargs.get("momentum_decay", 4e-3),
        kwargs.get("decoupled_weight_decay", False),
        kwargs.get("maximize", False),
    )
    got, opt = run(fo.NAdam, backend, dtype, **kwargs)
    check(got, expected, dtype)
    st = opt.state[0]
    assert st["step"].dtype == st["mu_product"].dtype == np.float64  # scalar state in double
    assert float(st["step"]) == len(GRADS)
    assert float(st["mu_product"]) == pytest.approx(products[-1], rel=1e-15)


def test_nadam_first_step_with_defaults_by_hand():
    # t = 1, g = 1, p = 0: m = 0.1, v = 0.001, v_hat = 1, mu_1 = 0.9 (1 - 0.5 * 0.96^0.004)
    mu1 = 0.9 * (1 - 0.5 * 0.96**0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96**0.008)
    step = 2e-3 * ((1 - mu1) / (1 - mu1) + mu2 * 0.1 / (1 - mu1 * mu2)) / (1 + 1e-8)
    for backend in BACKENDS:
        p = np.zeros(1)
        fo.NAdam([p], backend=backend).step([np.ones(1)])
        assert p[0] == pytest.approx(-step, rel=1e-14)


# ------------------------------------------------------------------- RAdam
def radam_by_hand(lr, b1, b2, eps, wd, decoupled, maximize, grads=GRADS, p=P0):
    m = v = 0.0
    out, rectified = [], []
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(grads, start=1):
        if maximize:
            g = -g
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            r_t = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            l_t = math.sqrt(1 - b2**t) / (math.sqrt(v) + eps)  # eps before the bias correction
            p = p - lr * m_hat * l_t * r_t
        else:
            p = p - lr * m_hat
        out.append(p)
        rectified.append(rho_t > 5)
    return out, rectified


RADAM_CASES = [
    pytest.param(dict(lr=0.1), id="defaults"),
    pytest.param(dict(lr=0.1, weight_decay=0.3), id="l2"),
    pytest.param(dict(lr=0.1, weight_decay=0.3, decoupled_weight_decay=True), id="decoupled"),
    pytest.param(dict(lr=0.05, betas=(0.5, 0.9), eps=0.1, maximize=True), id="betas-eps-maximize"),
    pytest.param(dict(lr=0.1, betas=(0.8, 0.75)), id="late-switch"),
    pytest.param(dict(lr=0.1, betas=(0.9, 0.6)), id="never-rectified"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", RADAM_CASES)
def test_radam_on_both_sides_of_the_switch(kwargs, backend, dtype):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    grads = GRADS * 2  # 16 steps: the late switch (beta2 = 0.75) comes at step 8
    expected, rectified = radam_by_hand(
        kwargs["lr"],
        b1,
        b2,
        kwargs.get("eps", 1e-8),
        kwargs.get("weight_decay", 0.0),
        kwargs.get("decoupled_weight_decay", False),
        kwargs.get("maximize", False),
        grads=grads,
    )
    if b2 == 0.999 or b2 == 0.9:  # rho_5 <= 5 < rho_6
        assert rectified == [False] * 5 + [True] * 11
    elif b2 == 0.75:
        assert rectified == [False] * 7 + [True] * 9
    else:
        assert not any(rectified)  # rho_inf = 4: never rectified
    got, _ = run(fo.RAdam, backend, dtype, grads=grads, **kwargs)
    check(got, expected, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_radam_first_steps_are_plain_bias_corrected_momentum(backend):
    # Before the switch neither v nor eps plays a part: p -= lr * m / (1 - beta1^t).
    p = np.array([0.0])
    opt = fo.RAdam([p], lr=0.1, eps=1e6, backend=backend)
    m, q = 0.0, 0.0
    for t, g in enumerate(GRADS[:5], start=1):
        opt.step([np.array([g])])
        m = 0.9 * m + 0.1 * g
        q -= 0.1 * m / (1 - 0.9**t)
        assert p[0] == pytest.approx(q, rel=1e-14)
    opt.step([np.array([GRADS[5]])])  # step 6 is rectified: the huge eps now stalls it
    assert abs(p[0] - q) < 1e-6


# -------------------------------------------------------------------- Lion
def sign(x):
    return (x > 0) - (x < 0)


def lion_by_hand(lr, b1, b2, wd, maximize, grads=GRADS, p=P0):
    m = 0.0
    out = []
    for g in grads:
        if maximize:
            g = -g
        c = b1 * m + (1 - b1) * g
        p = p - lr * (sign(c) + wd * p)  # the paper: decay added to the signed update
        m = b2 * m + (1 - b2) * g
        out.append(p)
    return out


LION_CASES = [
    pytest.param(dict(lr=0.1), id="defaults"),
    pytest.param(dict(lr=0.1, weight_decay=0.5), id="wd"),
    pytest.param(
        dict(lr=0.05, betas=(0.5, 0.8), weight_decay=0.2, maximize=True), id="betas-wd-maximize"
    ),
    pytest.param(dict(lr=0.05, betas=(0.0, 0.0)), id="betas-0-signsgd"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", LION_CASES)
def test_lion(kwargs, backend, dtype):
    b1, b2 = kwargs.get("betas", (0.9, 0.99))
    expected = lion_by_hand(
        kwargs["lr"], b1, b2, kwargs.get("weight_decay", 0.0), kwargs.get("maximize", False)
    )
    got, opt = run(fo.Lion, backend, dtype, **kwargs)
    check(got, expected, dtype)
    assert set(opt.state[0]) == {"exp_avg"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_lion_first_step_moves_every_entry_by_lr(backend):
    # m = 0 at first: c = (1 - beta1) g, so every entry moves by exactly lr against the
    # sign of its gradient, whatever the size; a zero gradient does not move (sign(0) = 0)
    # except through the weight decay.
    p = np.array([1.0, 1.0, 1.0, -2.0])
    opt = fo.Lion([p], lr=0.1, weight_decay=0.5, backend=backend)
    opt.step([np.array([1e-30, -1e30, 0.0, 0.0])])
    decay = [0.1 * 0.5 * x for x in (1.0, 1.0, 1.0, -2.0)]
    expected = [1.0 - 0.1 - decay[0], 1.0 + 0.1 - decay[1], 1.0 - decay[2], -2.0 - decay[3]]
    np.testing.assert_allclose(p, expected, rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], [1e-32, -1e28, 0.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_lion_nan_gradient_stays_in_its_own_entries(backend, dtype):
    # sign(NaN) is NaN (numpy.sign, torch.sign): the NaN shows instead of being skipped,
    # and it touches only its own entry, its own state and no other array.
    a = np.ones(70, dtype)
    b = np.ones(5, dtype)
    opt = fo.Lion([a, b], lr=0.1, backend=backend)
    ga = np.ones(70, dtype)
    ga[3] = np.nan
    opt.step([ga, np.ones(5, dtype)])
    assert np.isnan(a[3]) and np.isnan(opt.state[0]["exp_avg"][3])
    others = np.delete(a, 3)
    np.testing.assert_allclose(others, 0.9, rtol=1e-6)
    np.testing.assert_allclose(b, 0.9, rtol=1e-6)
    assert not np.isnan(np.delete(opt.state[0]["exp_avg"], 3)).any()


# ---------------------------------------------------- signatures and errors
@pytest.mark.parametrize(
    ("cls", "positional", "keyword_only"),
    [
        (
            fo.NAdam,
            ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"],
            ["maximize", "backend"],
        ),
        (
            fo.RAdam,
            ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"],
            ["maximize", "backend"],
        ),
        (fo.Lion, ["lr", "betas", "weight_decay"], ["maximize", "backend"]),
    ],
)
def test_signature_is_torchs(cls, positional, keyword_only):
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == ["params", *positional, *keyword_only]
    assert all(p.kind is p.KEYWORD_ONLY for p in params if p.name in keyword_only)


@pytest.mark.parametrize(
    ("cls", "defaults"),
    [
        (
            fo.NAdam,
            dict(
                lr=2e-3,
                betas=(0.9, 0.999),
                eps=1e-8,
                weight_decay=0.0,
                momentum_decay=4e-3,
                decoupled_weight_decay=False,
                maximize=False,
            ),
        ),
        (
            fo.RAdam,
            dict(
                lr=1e-3,
                betas=(0.9, 0.999),
                eps=1e-8,
                weight_decay=0.0,
                decoupled_weight_decay=False,
                maximize=False,
            ),
        ),
        (fo.Lion, dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False)),
    ],
)
def test_defaults_are_the_contracts(cls, defaults):
    assert cls([np.zeros(2)]).defaults == defaults


BAD = float("nan")
HYPER_ERRORS = [
    (fo.NAdam, dict(lr=-1e-3), ValueError, "lr"),
    (fo.NAdam, dict(lr=BAD), ValueError, "lr"),
    (fo.NAdam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.NAdam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.NAdam, dict(betas=(0.9, 1.5)), ValueError, r"betas\[1\]"),
    (fo.NAdam, dict(betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
    (fo.NAdam, dict(betas=0.9), TypeError, "betas"),
    (fo.NAdam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.NAdam, dict(momentum_decay=-4e-3), ValueError, "momentum_decay"),
    (fo.NAdam, dict(momentum_decay="4e-3"), TypeError, "momentum_decay"),
    (fo.NAdam, dict(decoupled_weight_decay=1), TypeError, "decoupled_weight_decay"),
    (fo.NAdam, dict(maximize="no"), TypeError, "maximize"),
    (fo.RAdam, dict(lr=-1e-3), ValueError, "lr"),
    (fo.RAdam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.RAdam, dict(eps=BAD), ValueError, "eps"),
    (fo.RAdam, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.RAdam, dict(betas=(1.2, 0.9)), ValueError, r"betas\[0\]"),
    (fo.RAdam, dict(betas=(0.9, 0.99, 0.999)), TypeError, "betas"),
    (fo.RAdam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.RAdam, dict(decoupled_weight_decay=None), TypeError, "decoupled_weight_decay"),
    (fo.RAdam, dict(maximize=0), TypeError, "maximize"),
    (fo.Lion, dict(lr=-1e-4), ValueError, "lr"),
    (fo.Lion, dict(lr=[1e-4]), TypeError, "lr"),
    (fo.Lion, dict(betas=(1.0, 0.99)), ValueError, r"betas\[0\]"),
    (fo.Lion, dict(betas=(0.9, -0.01)), ValueError, r"betas\[1\]"),
    (fo.Lion, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Lion, dict(weight_decay=BAD), ValueError, "weight_decay"),
    (fo.Lion, dict(maximize=1), TypeError, "maximize"),
    (fo.Lion, dict(eps=1e-8), TypeError, "eps"),  # Lion has no eps
]


@pytest.mark.parametrize(("cls", "kwargs", "exc", "match"), HYPER_ERRORS)
def test_bad_hyperparameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls([np.zeros(3)], **kwargs)


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (fo.NAdam, dict(momentum_decay=-1.0)),
        (fo.RAdam, dict(betas=(0.9, 1.0))),
        (fo.Lion, dict(lr=-0.1)),
    ],
)
def test_bad_group_override_is_refused_and_adds_nothing(cls, bad):
    a, b = np.zeros(3), np.zeros(2)
    with pytest.raises(ValueError, match=next(iter(bad)).split("=")[0]):
        cls([{"params": [a], **bad}])
    opt = cls([a])
    with pytest.raises(ValueError):
        opt.add_param_group({"params": [b], **bad})
    assert len(opt.param_groups) == 1
