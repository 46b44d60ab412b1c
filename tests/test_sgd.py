"""SGD: the first steps against values computed by hand from torch.optim.SGD's formulas,
its state, and nesterov's requirements (momentum > 0, dampening == 0).

Each expected value is worked out here with plain Python floats, independently of the
code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, fingerprint, grads_for, odd_trajectory

P0 = 1.5
GRADS = (0.4, -0.3)  # run on [P0, -P0] with grads [g, -g] (odd_trajectory)


def odd(*values: float) -> list[tuple[float, float]]:
    """The expected parameter after each step: entry 0 as given, entry 1 its negation."""
    return [(v, -v) for v in values]


def test_sgd_plain(backend, dtype, rel):
    got, _ = odd_trajectory(fo.SGD, backend, dtype, P0, GRADS, lr=0.1)
    assert_steps(got, odd(1.5 - 0.1 * 0.4, 1.5 - 0.1 * 0.4 + 0.1 * 0.3), rel)


def test_sgd_first_momentum_step_takes_the_gradient_without_dampening(backend, dtype, rel):
    got, _ = odd_trajectory(
        fo.SGD, backend, dtype, P0, GRADS, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.2
    )
    d1 = 0.4 + 0.2 * 1.5  # g + wd p
    b1 = d1  # no dampening on the first step
    p1 = 1.5 - 0.1 * b1
    d2 = -0.3 + 0.2 * p1
    b2 = 0.9 * b1 + (1 - 0.5) * d2
    p2 = p1 - 0.1 * b2
    assert_steps(got, odd(p1, p2), rel)


def test_sgd_nesterov_maximize(backend, dtype, rel):
    got, _ = odd_trajectory(
        fo.SGD, backend, dtype, P0, GRADS, lr=0.1, momentum=0.9, nesterov=True, maximize=True
    )
    d1 = -0.4
    b1 = d1
    p1 = 1.5 - 0.1 * (d1 + 0.9 * b1)
    d2 = 0.3
    b2 = 0.9 * b1 + d2
    p2 = p1 - 0.1 * (d2 + 0.9 * b2)
    assert_steps(got, odd(p1, p2), rel)


def test_sgd_keeps_state_only_with_momentum(backend):
    """As torch: no state without momentum; ``momentum_buffer`` (the last buffer) and
    ``step`` with it."""
    _, plain = odd_trajectory(fo.SGD, backend, np.float64, P0, GRADS, lr=0.1)
    assert len(plain.state) == 0 and plain.state_dict()["state"] == {}
    _, heavy = odd_trajectory(fo.SGD, backend, np.float64, P0, GRADS, lr=0.1, momentum=0.5)
    st = heavy.state[0]
    assert set(st) == {"momentum_buffer", "step"}
    b2 = 0.5 * 0.4 - 0.3  # b1 = g1, then momentum * b1 + g2
    np.testing.assert_allclose(st["momentum_buffer"], [b2, -b2], rtol=1e-15)
    assert float(st["step"]) == 2.0


# ------------------------------------------------------------------- nesterov
NESTEROV_REFUSED = [
    pytest.param(dict(nesterov=True), "momentum is 0.0", id="no-momentum"),
    pytest.param(dict(nesterov=True, momentum=0.9, dampening=0.1), "dampening is 0.1", id="damped"),
    pytest.param(dict(nesterov=True, momentum=0.0, dampening=0.1), "momentum is 0.0", id="both"),
]
NESTEROV_MESSAGE = r"nesterov=True requires momentum > 0 and dampening == 0 \({}\)"


@pytest.mark.parametrize(("kwargs", "why"), NESTEROV_REFUSED)
def test_nesterov_requirements_at_construction(kwargs, why):
    match = NESTEROV_MESSAGE.format(why)
    with pytest.raises(ValueError, match="^" + match):
        fo.SGD([np.zeros(3)], **kwargs)
    with pytest.raises(ValueError, match=r"^param_groups\[0\]: " + match):
        fo.SGD([{"params": [np.zeros(3)], **kwargs}])
    opt = fo.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"^param_groups\[1\]: " + match):
        opt.add_param_group({"params": [np.zeros(2)], "momentum": 0.0, **kwargs})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(("kwargs", "why"), NESTEROV_REFUSED)
def test_nesterov_requirements_between_steps(kwargs, why, backend):
    """A schedule (or a user) that breaks nesterov's requirements between steps is
    refused before anything is written, by both backends."""
    params = [np.ones((3, 4)), np.ones(5, np.float32)]
    opt = fo.SGD(params, lr=0.1, momentum=0.9, nesterov=True, backend=backend)
    opt.step(grads_for(params, 0))
    before = fingerprint(opt, params)
    opt.param_groups[0].update({"momentum": 0.0, **kwargs})
    with pytest.raises(ValueError, match=r"^param_groups\[0\]: " + NESTEROV_MESSAGE.format(why)):
        opt.step(grads_for(params, 1))
    opt.param_groups[0].update(momentum=0.9, dampening=0.0)  # as before: the same state
    assert fingerprint(opt, params) == before


def test_nesterov_is_accepted_with_momentum_and_no_dampening(backend):
    opt = fo.SGD([np.zeros(2)], momentum=1e-12, dampening=0.0, nesterov=True, backend=backend)
    opt.step([np.ones(2)])
    opt.param_groups[0]["nesterov"] = False
    opt.param_groups[0]["dampening"] = 0.5  # allowed again without nesterov
    opt.step([np.ones(2)])
