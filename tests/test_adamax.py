"""Adamax: the first steps against values computed by hand from torch.optim.Adamax's
formulas (eps inside the max), the infinity norm, and its state.

Each expected value is worked out here with plain Python floats, element by element,
independently of the code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, by_hand, trajectory

P0 = (1.5, -0.7)
# Two elements, two steps: element 0's second gradient is below beta2 * u (the decayed
# maximum wins) and element 1's is above it (the new gradient wins).
GRADS = ((0.4, 0.25), (-0.3, 2.0))


def adamax_step(p, g, t, s, lr, b1, b2, eps, wd, maximize):
    g = -g if maximize else g
    g = g + wd * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = max(b2 * s.get("u", 0.0), abs(g) + eps)  # eps inside the max
    return p - lr / (1 - b1**t) * s["m"] / s["u"]


ADAMAX = [
    ("adamax", dict(lr=0.1)),
    ("betas-eps", dict(lr=0.1, betas=(0.5, 0.9), eps=0.05)),
    ("wd-maximize", dict(lr=0.1, betas=(0.8, 0.95), weight_decay=0.3, maximize=True)),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in ADAMAX], ids=[c[0] for c in ADAMAX])
def test_adamax(kwargs, backend, dtype, rel):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    expected = by_hand(
        adamax_step,
        P0,
        GRADS,
        lr=kwargs["lr"],
        b1=b1,
        b2=b2,
        eps=kwargs.get("eps", 1e-8),
        wd=kwargs.get("weight_decay", 0.0),
        maximize=kwargs.get("maximize", False),
    )
    got, opt = trajectory(fo.Adamax, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, expected, rel)
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_inf"}


def test_adamax_infinity_norm_and_zero_gradient(backend):
    p = np.array([1.0, 2.0])
    opt = fo.Adamax([p], lr=0.1, betas=(0.5, 0.5), eps=1e-3, backend=backend)
    opt.step([np.array([0.0, 4.0])])  # a zero gradient: u = eps, m = 0, no move, no NaN
    opt.step([np.array([0.0, 1.0])])
    u = opt.state[0]["exp_inf"]
    assert u[0] == pytest.approx(1e-3)  # max(0.5 eps, 0 + eps)
    assert u[1] == pytest.approx(0.5 * 4.001)  # max(0.5 * 4.001, 1.001): the decayed max
    assert p[0] == 1.0
