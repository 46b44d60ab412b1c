"""SGD: the first steps against values computed by hand from torch.optim.SGD's formulas.

Each expected value is worked out here with plain Python floats, independently of the
code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import fusedopt as fo

from .helpers import assert_steps, odd_trajectory

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
