"""RMSprop: the first steps against values computed by hand from torch.optim.RMSprop's
formulas (centered, momentum, weight decay, maximize), and the state each option uses.

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


def rmsprop_step(p, g, t, s, lr, alpha, eps, wd, momentum, centered, maximize):
    lr = lr[t - 1] if isinstance(lr, tuple) else lr
    g = -g if maximize else g
    g = g + wd * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    if centered:
        s["m"] = alpha * s.get("m", 0.0) + (1 - alpha) * g
        avg = math.sqrt(s["v"] - s["m"] ** 2) + eps
    else:
        avg = math.sqrt(s["v"]) + eps  # no bias correction, eps after the root
    if momentum > 0:
        s["b"] = momentum * s.get("b", 0.0) + g / avg
        return p - lr * s["b"]  # lr outside the buffer
    return p - lr * g / avg


RMSPROP = [
    ("rmsprop", dict(lr=0.01)),
    ("alpha-eps", dict(lr=0.01, alpha=0.5, eps=0.1)),
    ("centered", dict(lr=0.01, alpha=0.9, centered=True)),
    ("momentum-wd", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.2)),
    (
        "centered-momentum-wd-maximize",
        dict(lr=0.02, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1, maximize=True),
    ),
]


def rmsprop_hyper(kwargs, lr=None):
    return dict(
        lr=kwargs["lr"] if lr is None else lr,
        alpha=kwargs.get("alpha", 0.99),
        eps=kwargs.get("eps", 1e-8),
        wd=kwargs.get("weight_decay", 0.0),
        momentum=kwargs.get("momentum", 0.0),
        centered=kwargs.get("centered", False),
        maximize=kwargs.get("maximize", False),
    )


@pytest.mark.parametrize("kwargs", [c[1] for c in RMSPROP], ids=[c[0] for c in RMSPROP])
def test_rmsprop(kwargs, backend, dtype, rel):
    expected = by_hand(rmsprop_step, P0, GRADS, **rmsprop_hyper(kwargs))
    got, opt = trajectory(fo.RMSprop, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, expected, rel)
    keys = {"step", "square_avg"}  # only the state an option uses, as torch
    if kwargs.get("momentum", 0) > 0:
        keys.add("momentum_buffer")
    if kwargs.get("centered"):
        keys.add("grad_avg")
    assert set(opt.state_dict()["state"][0]) == keys


def test_rmsprop_momentum_buffer_does_not_hold_the_learning_rate(backend):
    kwargs = dict(lr=0.01, alpha=0.9, momentum=0.9)
    expected = by_hand(rmsprop_step, P0, GRADS, **rmsprop_hyper(kwargs, lr=(0.01, 0.05)))
    got, _ = trajectory(fo.RMSprop, backend, np.float64, P0, GRADS, lrs=(0.01, 0.05), **kwargs)
    assert_steps(got, expected, 1e-13)
