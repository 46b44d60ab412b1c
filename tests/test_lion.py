"""Lion: steps against values computed by hand from the Lion paper's formulas
(Chen et al., 2023, Algorithm 2): the signed update, decoupled decay, sign(0) and NaN.

Each expected value is worked out here with plain Python floats, from the paper's formulas,
independently of the code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, odd_trajectory

P0 = 1.5  # run on [P0, -P0] with grads [g, -g] (odd_trajectory)
GRADS = (0.4, -0.3, 0.7, 0.1, -0.5, 0.2, 0.6, -0.8)


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


@pytest.mark.parametrize("kwargs", LION_CASES)
def test_lion(kwargs, backend, dtype, rel):
    b1, b2 = kwargs.get("betas", (0.9, 0.99))
    expected = lion_by_hand(
        kwargs["lr"], b1, b2, kwargs.get("weight_decay", 0.0), kwargs.get("maximize", False)
    )
    got, opt = odd_trajectory(fo.Lion, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, [(e, -e) for e in expected], rel, abs_tol=1e-12)
    assert set(opt.state[0]) == {"exp_avg"}


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
