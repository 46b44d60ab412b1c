"""NAdam: steps against values computed by hand from torch.optim.NAdam's formulas
(the momentum schedule mu_t and its product, L2 and decoupled weight decay).

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


@pytest.mark.parametrize("kwargs", NADAM_CASES)
def test_nadam(kwargs, backend, dtype, rel):
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
    got, opt = odd_trajectory(fo.NAdam, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, [(e, -e) for e in expected], rel, abs_tol=1e-12)
    st = opt.state[0]
    assert st["step"].dtype == st["mu_product"].dtype == np.float64  # scalar state in double
    assert float(st["step"]) == len(GRADS)
    assert float(st["mu_product"]) == pytest.approx(products[-1], rel=1e-15)


def test_nadam_first_step_with_defaults_by_hand(backend):
    # t = 1, g = 1, p = 0: m = 0.1, v = 0.001, v_hat = 1, mu_1 = 0.9 (1 - 0.5 * 0.96^0.004)
    mu1 = 0.9 * (1 - 0.5 * 0.96**0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96**0.008)
    step = 2e-3 * ((1 - mu1) / (1 - mu1) + mu2 * 0.1 / (1 - mu1 * mu2)) / (1 + 1e-8)
    p = np.zeros(1)
    fo.NAdam([p], backend=backend).step([np.ones(1)])
    assert p[0] == pytest.approx(-step, rel=1e-14)
