"""ASGD: the first steps against values computed by hand from torch.optim.ASGD's
single-tensor rule (eta and mu updated after the parameter, ax copied while mu == 1 and
averaged after t0), and the scalar state it keeps.

Each expected value is worked out here with plain Python floats, independently of the
code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, odd_trajectory

P0 = 1.5
GRADS = (0.4, -0.3, 0.8, 0.1, -0.6)  # run on [P0, -P0] with grads [g, -g] (odd_trajectory)


def asgd_by_hand(lr, lambd, alpha, t0, wd, maximize, grads=GRADS, p=P0):
    """(p, ax, eta, mu) after each step, in plain Python floats."""
    eta, mu, ax = lr, 1.0, 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if maximize:
            g = -g
        g = g + wd * p
        p = p * (1 - lambd * eta) - eta * g  # this step's eta: the previous step's value
        ax = p if mu == 1 else ax + (p - ax) * mu
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)
        out.append((p, ax, eta, mu))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        # t0 = 0.5: mu = 1 / (t - 0.5) after step 2, so steps 3-5 average
        dict(lr=0.2, lambd=0.3, alpha=0.5, t0=0.5, weight_decay=0.2),
        dict(lr=0.05, lambd=1.0, alpha=2.0, t0=2.0, maximize=True),
    ],
    ids=["defaults", "averaging-wd", "maximize-t0"],
)
def test_steps_against_the_formula(kwargs, backend, dtype, rel):
    expected = asgd_by_hand(
        kwargs["lr"],
        kwargs.get("lambd", 1e-4),
        kwargs.get("alpha", 0.75),
        kwargs.get("t0", 1e6),
        kwargs.get("weight_decay", 0.0),
        kwargs.get("maximize", False),
    )
    got, opt = odd_trajectory(fo.ASGD, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, [(p, -p) for p, _, _, _ in expected], rel)
    _, ax, eta, mu = expected[-1]
    state = opt.state[0]
    assert set(state) == {"step", "eta", "mu", "ax"}
    assert float(state["step"]) == len(GRADS)
    # scalar state in float64 whatever the parameter's dtype
    assert state["eta"].dtype == state["mu"].dtype == np.float64
    assert float(state["eta"]) == pytest.approx(eta, rel=1e-15)
    assert float(state["mu"]) == pytest.approx(mu, rel=1e-15)
    assert state["ax"].dtype == dtype
    assert_steps([state["ax"]], [(ax, -ax)], rel)


def test_ax_is_a_copy_of_the_parameter_until_t0(backend):
    p = np.array([0.3, -1.2, 2.0], np.float32)
    opt = fo.ASGD([p], lr=0.1, t0=3.0, backend=backend)
    rng = np.random.default_rng(0)
    for t in range(1, 8):
        opt.step([rng.standard_normal(3).astype(np.float32)])
        ax = opt.state[0]["ax"]
        # step t uses the mu of step t - 1: 1 / max(1, t - 1 - 3), which is 1 up to step 5
        if t <= 5:  # each step copies p
            assert ax.tobytes() == p.tobytes(), t
        else:  # mu = 1/2, then 1/3: the average lags behind p
            assert not np.array_equal(ax, p), t


def test_eta_starts_at_the_lr_the_group_has_at_the_first_step(backend):
    p = np.array([1.0])
    opt = fo.ASGD([p], lr=0.1, lambd=0.5, alpha=1.0, backend=backend)
    opt.param_groups[0]["lr"] = 0.2  # before any state exists: as torch, eta starts here
    opt.step([np.array([1.0])])
    assert p[0] == pytest.approx(1.0 * (1 - 0.5 * 0.2) - 0.2 * 1.0, rel=1e-15)
    assert float(opt.state[0]["eta"]) == pytest.approx(0.2 / (1 + 0.5 * 0.2 * 1), rel=1e-15)
    opt.param_groups[0]["lr"] = 0.4  # now the next eta (not this step's) uses the new lr
    eta = float(opt.state[0]["eta"])
    before = p[0]
    opt.step([np.array([1.0])])
    assert p[0] == pytest.approx(before * (1 - 0.5 * eta) - eta * 1.0, rel=1e-15)
    assert float(opt.state[0]["eta"]) == pytest.approx(0.4 / (1 + 0.5 * 0.4 * 2), rel=1e-15)


def test_a_huge_eta_denominator_gives_eta_zero_not_an_error(backend):
    # (1 + lambd * lr * t)^alpha overflows a double: eta becomes 0 and p stops moving
    # (Python's ** would raise OverflowError here).
    p = np.array([1.0])
    opt = fo.ASGD([p], lr=1.0, lambd=1e300, alpha=2.0, backend=backend)
    opt.step([np.array([0.0])])
    assert float(opt.state[0]["eta"]) == 0.0
    opt.step([np.array([5.0])])
    assert np.isfinite(p).all()
    before = p.copy()
    opt.step([np.array([5.0])])
    assert p[0] == before[0]
