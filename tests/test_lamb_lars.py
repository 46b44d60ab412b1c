"""LAMB and LARS against a NumPy transcription of optax's chains, and by hand.

The oracle below is written from optax's definitions of ``optax.lamb`` (scale_by_adam,
add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate) and ``optax.lars``
(add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate, trace), one
transformation at a time over the whole list of arrays, in float64: independent of
fusedopt's kernels and of its reference functions. Also by hand: the first LAMB step
moves each array by exactly lr * ||p|| (Adam's first direction is +-1 per element before
the ratio); the zero-norm cases (optax: a ratio of 1); and the same bits on any number of
threads for arrays large enough to be reduced in parallel.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo


def _norm(x):
    return math.sqrt(float(np.sum(np.asarray(x, np.float64) ** 2)))


def _trust_ratio(params, updates, trust_coefficient=1.0, eps=0.0):
    """optax.scale_by_trust_ratio (min_norm 0): per array; 1 where either norm is 0."""
    out = []
    for p, u in zip(params, updates, strict=True):
        pn, un = _norm(p), _norm(u)
        ratio = 1.0 if pn == 0.0 or un == 0.0 else trust_coefficient * pn / (un + eps)
        out.append(u * ratio)
    return out


def optax_lamb(params, grads_seq, lr, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, wd=0.0):
    params = [np.array(p, np.float64) for p in params]
    mu = [np.zeros_like(p) for p in params]
    nu = [np.zeros_like(p) for p in params]
    for count, grads in enumerate(grads_seq, start=1):
        mu = [(1 - b1) * g + b1 * m for g, m in zip(grads, mu, strict=True)]
        nu = [(1 - b2) * g**2 + b2 * v for g, v in zip(grads, nu, strict=True)]
        mu_hat = [m / (1 - b1**count) for m in mu]
        nu_hat = [v / (1 - b2**count) for v in nu]
        u = [m / (np.sqrt(v + eps_root) + eps) for m, v in zip(mu_hat, nu_hat, strict=True)]
        u = [x + wd * p for x, p in zip(u, params, strict=True)]  # add_decayed_weights
        u = _trust_ratio(params, u)
        u = [-lr * x for x in u]  # scale_by_learning_rate
        params = [p + x for p, x in zip(params, u, strict=True)]  # apply_updates
    return params


def optax_lars(params, grads_seq, lr, wd=0.0, tc=1e-3, eps=0.0, momentum=0.9, nesterov=False):
    params = [np.array(p, np.float64) for p in params]
    trace = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        u = [g + wd * p for g, p in zip(grads, params, strict=True)]
        u = _trust_ratio(params, u, tc, eps)
        u = [-lr * x for x in u]
        trace = [x + momentum * t for x, t in zip(u, trace, strict=True)]  # optax.trace
        u = [x + momentum * t for x, t in zip(u, trace, strict=True)] if nesterov else trace
        params = [p + x for p, x in zip(params, u, strict=True)]
    return params


def run(cls, params, grads_seq, dtype, backend, **kwargs):
    ps = [np.array(p, dtype) for p in params]
    opt = cls(ps, backend=backend, **kwargs)
    for grads in grads_seq:
        opt.step([np.array(g, dtype) for g in grads])
    return ps


def problem(rng, shapes=((4, 3), (5,), (2, 2, 2)), steps=6):
    params = [rng.standard_normal(s) for s in shapes]
    params[1][:] = 0.0  # a zero array: ratio 1 on the first step (optax's zero-norm case)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return params, grads


CASES = [
    pytest.param(fo.LAMB, optax_lamb, dict(lr=0.01), {}, id="lamb-defaults"),
    pytest.param(
        fo.LAMB,
        optax_lamb,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-3, eps_root=1e-4, weight_decay=0.1),
        dict(b1=0.8, b2=0.99, eps=1e-3, eps_root=1e-4, wd=0.1),
        id="lamb-all",
    ),
    pytest.param(fo.LARS, optax_lars, dict(lr=0.5), {}, id="lars-defaults"),
    pytest.param(
        fo.LARS,
        optax_lars,
        dict(lr=0.3, weight_decay=0.01, trust_coefficient=0.02, eps=1e-3, momentum=0.8),
        dict(wd=0.01, tc=0.02, eps=1e-3, momentum=0.8),
        id="lars-all",
    ),
    pytest.param(
        fo.LARS, optax_lars, dict(lr=0.5, nesterov=True), dict(nesterov=True), id="lars-nesterov"
    ),
    pytest.param(
        fo.LARS, optax_lars, dict(lr=2.0, momentum=0.0), dict(momentum=0.0), id="lars-no-momentum"
    ),
]


@pytest.mark.parametrize(("cls", "oracle", "kwargs", "theirs"), CASES)
def test_follows_optax(cls, oracle, kwargs, theirs, backend, dtype, rng):
    params, grads = problem(rng)
    expected = oracle(params, grads, kwargs["lr"], **theirs)
    got = run(cls, params, grads, dtype, backend, **kwargs)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for p, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=tol, atol=tol)


def test_lamb_first_step_moves_each_array_by_lr_times_its_norm(backend):
    # step 1: mu_hat = g, nu_hat = g^2, so u = g / (|g| + eps) ~ sign(g) (eps = 0 here);
    # the ratio ||p|| / ||u|| makes the step's length lr * ||p||, whatever g.
    p = np.array([3.0, -4.0, 12.0])  # ||p|| = 13
    opt = fo.LAMB([p], lr=0.1, eps=0.0, backend=backend)
    opt.step([np.array([2.0, 0.5, -7.0])])
    u = np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(p, [3.0, -4.0, 12.0] - 0.1 * 13 / math.sqrt(3) * u, rtol=1e-15)


def test_lars_by_hand_with_momentum(backend):
    # p = [3, 4] (norm 5), g = [0, 2] (norm 2): ratio = 1e-3 * 5 / 2 = 2.5e-3
    p = np.array([3.0, 4.0])
    opt = fo.LARS([p], lr=10.0, momentum=0.5, backend=backend)
    opt.step([np.array([0.0, 2.0])])  # u = -10 * 2.5e-3 * [0, 2] = [0, -0.05]; trace = u
    np.testing.assert_allclose(p, [3.0, 3.95], rtol=1e-15)
    # step 2 from p = [3, 3.95] with g = [0, 2]: ratio = 1e-3 * ||p|| / 2
    ratio = 1e-3 * math.hypot(3.0, 3.95) / 2.0
    u = -10.0 * ratio * 2.0
    trace = u + 0.5 * -0.05
    opt.step([np.array([0.0, 2.0])])
    np.testing.assert_allclose(p, [3.0, 3.95 + trace], rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["trace"], [0.0, trace], rtol=1e-15)


@pytest.mark.parametrize("cls", [fo.LAMB, fo.LARS])
def test_zero_norms_give_a_ratio_of_one(cls, backend):
    # a zero parameter (||p|| = 0): the ratio is 1, so the array moves (optax's rule);
    # a zero grad with no decay (||u|| = 0 for LARS): nothing moves, and nothing is NaN.
    kwargs = dict(lr=0.1, momentum=0.0) if cls is fo.LARS else dict(lr=0.1)
    p, q = np.zeros(3), np.ones(3)
    opt = cls([p, q], backend=backend, **kwargs)
    opt.step([np.array([1.0, -2.0, 0.5]), np.zeros(3)])
    assert np.all(np.isfinite(p)) and np.any(p != 0)
    np.testing.assert_array_equal(q, np.ones(3))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(fo.LAMB, dict(lr=0.01, weight_decay=0.1)), (fo.LARS, dict(lr=1.0, nesterov=True))],
    ids=["LAMB", "LARS"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_the_same_bits_on_any_number_of_threads(cls, kwargs, dtype):
    """Arrays large enough to be reduced in parallel (blocks of 2^14 over 2^16+ elements,
    one array straddling blocks): the parameters after three steps are bit-identical
    for 1, 2, 3 and 4 threads."""
    rng = np.random.default_rng(7)
    shapes = [(300_001,), (5,), (40_000,), (1000, 17)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    before = fo.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            ps = [p.copy() for p in params]
            opt = cls(ps, **kwargs)
            for gs in grads:
                opt.step(gs)
            results.append(ps)
    finally:
        fo.set_num_threads(before)
    for ps in results[1:]:
        for a, b in zip(results[0], ps, strict=True):
            assert a.tobytes() == b.tobytes()
