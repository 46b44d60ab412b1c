"""Adadelta: the first steps against values computed by hand from torch.optim.Adadelta's
formulas (eps inside both roots), and its state.

Each expected value is worked out here with plain Python floats, element by element,
independently of the code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, by_hand, trajectory

P0 = (1.5, -0.7)
GRADS = ((0.4, 0.25), (-0.3, 2.0))


def adadelta_step(p, g, t, s, lr, rho, eps, wd, maximize):
    g = -g if maximize else g
    g = g + wd * p
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    u = s.get("u", 0.0)
    delta = math.sqrt(u + eps) / math.sqrt(s["v"] + eps) * g  # eps inside both roots
    s["u"] = rho * u + (1 - rho) * delta * delta
    return p - lr * delta


ADADELTA = [
    ("adadelta", dict()),
    ("lr-rho-eps", dict(lr=0.5, rho=0.5, eps=1e-2)),
    ("wd-maximize", dict(rho=0.8, weight_decay=0.2, maximize=True)),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in ADADELTA], ids=[c[0] for c in ADADELTA])
def test_adadelta(kwargs, backend, dtype, rel):
    expected = by_hand(
        adadelta_step,
        P0,
        GRADS,
        lr=kwargs.get("lr", 1.0),
        rho=kwargs.get("rho", 0.9),
        eps=kwargs.get("eps", 1e-6),
        wd=kwargs.get("weight_decay", 0.0),
        maximize=kwargs.get("maximize", False),
    )
    got, opt = trajectory(fo.Adadelta, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, expected, rel)
    assert set(opt.state_dict()["state"][0]) == {"step", "square_avg", "acc_delta"}


def test_adadelta_default_first_step(backend):
    # v = 0.1 g^2, delta = sqrt(eps) / sqrt(0.1 g^2 + eps) * g, about sqrt(10 eps) sign(g).
    (p1, _), _ = trajectory(fo.Adadelta, backend, np.float64, P0, GRADS)
    assert p1[0] == pytest.approx(1.5 - 1e-3 * 0.4 / math.sqrt(0.016 + 1e-6), rel=1e-14)
