"""Adagrad: the first steps against values computed by hand from torch.optim.Adagrad's
formulas, and its state (which exists from construction, as torch's).

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


def adagrad_step(p, g, t, s, lr, lr_decay, wd, init, eps, maximize):
    g = -g if maximize else g
    g = g + wd * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s["sum"] = s.get("sum", init) + g * g
    return p - clr * g / (math.sqrt(s["sum"]) + eps)


ADAGRAD = [
    ("adagrad", dict(lr=0.1)),
    ("lr_decay", dict(lr=0.1, lr_decay=0.5)),
    ("init_acc-wd", dict(lr=0.1, initial_accumulator_value=0.2, weight_decay=0.3)),
    ("all-maximize", dict(lr=0.2, lr_decay=0.1, weight_decay=0.1, eps=0.01, maximize=True)),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in ADAGRAD], ids=[c[0] for c in ADAGRAD])
def test_adagrad(kwargs, backend, dtype, rel):
    expected = by_hand(
        adagrad_step,
        P0,
        GRADS,
        lr=kwargs["lr"],
        lr_decay=kwargs.get("lr_decay", 0.0),
        wd=kwargs.get("weight_decay", 0.0),
        init=kwargs.get("initial_accumulator_value", 0.0),
        eps=kwargs.get("eps", 1e-10),
        maximize=kwargs.get("maximize", False),
    )
    got, _ = trajectory(fo.Adagrad, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, expected, rel)


def test_adagrad_first_step_moves_by_lr_and_the_sum_accumulates(backend):
    (p1, _), opt = trajectory(fo.Adagrad, backend, np.float64, P0, GRADS, lr=0.1, eps=0.0)
    assert p1.tolist() == pytest.approx([1.4, -0.8], rel=1e-15)  # g / sqrt(g^2) = 1: moves by lr
    np.testing.assert_allclose(opt.state[0]["sum"], [0.4**2 + 0.3**2, 0.25**2 + 2.0**2])
    assert float(opt.state[0]["step"]) == 2.0


def test_adagrad_state_exists_from_construction(backend):
    w = [np.zeros((2, 3), np.float32), np.asfortranarray(np.zeros((3, 4)))]
    opt = fo.Adagrad(
        [{"params": w[:1]}, {"params": w[1:], "initial_accumulator_value": 0.5}],
        initial_accumulator_value=0.25,
        backend=backend,
    )
    sd = opt.state_dict()["state"]
    assert sorted(sd) == [0, 1]
    assert set(sd[0]) == set(sd[1]) == {"step", "sum"}
    assert float(sd[0]["step"]) == 0.0
    assert sd[0]["sum"].dtype == np.float32 and (sd[0]["sum"] == 0.25).all()
    assert sd[1]["sum"].flags.f_contiguous and (sd[1]["sum"] == 0.5).all()
    extra = np.zeros(4)
    opt.add_param_group({"params": [extra], "initial_accumulator_value": 2.0})
    assert (opt.state[extra]["sum"] == 2.0).all()
