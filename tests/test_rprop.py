"""Rprop: steps against values computed by hand from torch.optim.Rprop's rule (the step
size grows while the sign holds, shrinks and skips the move when it flips, clamped to
step_sizes), its state, and bit-identity with torch.optim.Rprop in float32.

Each expected value is worked out here with plain Python floats, independently of the
code under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

from .helpers import assert_steps, by_hand, trajectory

P0 = (0.5, -0.3, 0.2, 1.0, -2.0)
# one column per element: the same sign all along (the step size grows to its maximum),
# alternating signs (each flip shrinks it and skips the move; the step after a flip has
# prev = 0), zeros, two flips in a row, a constant negative grad
GRADS = (
    (0.4, 0.3, 0.0, -0.2, -1.0),
    (0.1, -0.5, 0.7, -0.4, -1.0),
    (0.2, 0.6, 0.0, 0.3, -1.0),
    (0.9, -0.1, -0.2, -0.1, -1.0),
    (0.5, 0.2, -0.3, 0.5, -1.0),
    (0.3, 0.4, 0.1, 0.6, -1.0),
)


def rprop_update(p, g, t, state, lr, etas, step_sizes, maximize):
    """One element's step, in plain Python floats (for :func:`by_hand`)."""
    prev, size = state.get("prev", 0.0), state.get("size", lr)
    if maximize:
        g = -g
    factor = etas[1] if g * prev > 0 else etas[0] if g * prev < 0 else 1.0
    size = min(max(size * factor, step_sizes[0]), step_sizes[1])
    if factor == etas[0]:
        g = 0.0
    sign = (g > 0) - (g < 0)
    state.update(prev=g, size=size)
    return p - sign * size


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.01),
        dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(0.02, 0.1)),  # both bounds reached
        dict(lr=0.5, step_sizes=(1e-3, 0.15), maximize=True),  # lr above the maximum
    ],
    ids=["defaults", "etas-step_sizes", "clamped-lr-maximize"],
)
def test_steps_against_the_formula(kwargs, backend, dtype, rel):
    hyper = dict(etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False) | kwargs
    expected = by_hand(rprop_update, P0, GRADS, **hyper)
    got, opt = trajectory(fo.Rprop, backend, dtype, P0, GRADS, **kwargs)
    assert_steps(got, expected, rel)
    state = opt.state[0]
    assert set(state) == {"step", "prev", "step_size"}
    assert float(state["step"]) == len(GRADS)
    assert state["prev"].dtype == state["step_size"].dtype == dtype
    # the last step's prev: the grad (negated with maximize), 0 where the sign flipped
    sizes, prevs = [], []
    for i in range(len(P0)):
        st: dict[str, float] = {}
        for t, g in enumerate(GRADS, start=1):
            rprop_update(0.0, g[i], t, st, **hyper)
        sizes.append(st["size"])
        prevs.append(st["prev"])
    assert_steps([state["step_size"], state["prev"]], [sizes, prevs], rel)


def test_step_size_starts_full_of_the_lr_of_the_first_step(backend):
    p = np.zeros(3)
    opt = fo.Rprop([p], lr=0.1, backend=backend)
    opt.param_groups[0]["lr"] = 0.25  # before any state exists: as torch, used here
    opt.step([np.array([1.0, -1.0, 0.0])])
    np.testing.assert_array_equal(p, [-0.25, 0.25, 0.0])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.25] * 3)
    opt.param_groups[0]["lr"] = 10.0  # later: no effect, the step sizes are state
    opt.step([np.array([1.0, -1.0, 0.0])])
    np.testing.assert_array_equal(p, [-0.25 - 0.3, 0.25 + 0.3, 0.0])


def test_a_nan_grad_leaves_its_element_in_place(backend):
    # as torch: sign(NaN) = 0, so no move, and the step size is unchanged; prev keeps NaN,
    # so the next step sees g * prev = NaN: factor 1 again. Other elements are untouched.
    p = np.array([1.0, 2.0])
    opt = fo.Rprop([p], lr=0.1, backend=backend)
    opt.step([np.array([np.nan, 1.0])])
    np.testing.assert_array_equal(p, [1.0, 1.9])
    assert np.isnan(opt.state[0]["prev"][0])
    opt.step([np.array([1.0, 1.0])])
    np.testing.assert_array_equal(p, [0.9, 1.9 - 0.12])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.1, 0.12])


def test_bit_identical_to_torch_in_float32(backend, rng):
    torch = pytest.importorskip("torch")
    shapes = [(33, 7), (5,), ()]
    p0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [p.copy() for p in p0]
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    kw = dict(lr=0.03, etas=(0.4, 1.3), step_sizes=(1e-3, 0.1))
    opt = fo.Rprop(ours, backend=backend, **kw)
    topt = torch.optim.Rprop(theirs, foreach=False, **kw)
    for k in range(25):
        grads = []
        for s in shapes:
            g = rng.standard_normal(s).astype(np.float32)
            g[rng.random(s) < 0.2] = 0.0  # exact zeros
            if k == 7 and g.ndim == 2:
                g[0, :3] = [np.nan, np.inf, -np.inf]
            grads.append(g)
        opt.step(grads)
        for t, g in zip(theirs, grads, strict=True):
            t.grad = torch.tensor(g)
        topt.step()
        for i, (p, t) in enumerate(zip(ours, theirs, strict=True)):
            assert p.tobytes() == t.detach().numpy().tobytes(), (k, i)
            for name in ("prev", "step_size"):
                mine, torchs = opt.state[i][name], topt.state[t][name].numpy()
                assert mine.tobytes() == torchs.tobytes(), (k, i, name)


def test_etas_are_checked_as_torch_checks_them():
    # torch.optim.Rprop: 0.0 < etas[0] < 1.0 < etas[1]
    for etas in [(0.5, 1.2), (1e-9, 1.0 + 1e-9), (math.nextafter(1.0, 0.0), 2.0)]:
        fo.Rprop([np.zeros(1)], etas=etas)
    for etas in [(0.0, 1.2), (1.0, 1.2), (0.5, 1.0), (1.2, 0.5), (-0.5, 1.2)]:
        with pytest.raises(ValueError, match=r"^invalid etas\[[01]\]"):
            fo.Rprop([np.zeros(1)], etas=etas)
