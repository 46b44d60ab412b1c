"""RAdam: steps against values computed by hand from torch.optim.RAdam's formulas, on
both sides of the switch to the rectified update.

Each expected value is worked out here with plain Python floats, from the formulas of
PyTorch's documentation, independently of the code under test. Both backends and both
dtypes are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, odd_trajectory

P0 = 1.5  # run on [P0, -P0] with grads [g, -g] (odd_trajectory)
GRADS = (0.4, -0.3, 0.7, 0.1, -0.5, 0.2, 0.6, -0.8)


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


@pytest.mark.parametrize("kwargs", RADAM_CASES)
def test_radam_on_both_sides_of_the_switch(kwargs, backend, dtype, rel):
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
    got, _ = odd_trajectory(fo.RAdam, backend, dtype, P0, grads, **kwargs)
    assert_steps(got, [(e, -e) for e in expected], rel, abs_tol=1e-12)


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
