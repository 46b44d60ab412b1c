"""MultiSteps (gradient accumulation, optax.MultiSteps' semantics).

Oracles: the inner optimizer stepped directly with the mean of each window's grads (the
running mean computed here in NumPy with optax's formula ``acc + (g - acc) / n``, so the
trajectories agree bit for bit); values by hand; and the counts a real step must advance
(the step count, weight decay, clipping by the norm of the mean, keras#19990's bug).
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .helpers import grads_for

SHAPES = [(3, 4), (5,), (70_000,)]  # the last one is swept in parallel


def params(rng, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def window_means(windows):
    """optax's running mean of each window's grads, in NumPy."""
    out = []
    for window in windows:
        acc = [g.copy() for g in window[0]]
        for n, gs in enumerate(window[1:], start=2):
            for a, g in zip(acc, gs, strict=True):
                a += (g - a) / a.dtype.type(n)
        out.append(acc)
    return out


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (fo.AdamW, dict(lr=0.01, weight_decay=0.1)),
        (fo.SGD, dict(lr=0.1, momentum=0.9)),
        (fo.LAMB, dict(lr=0.01)),
    ],
    ids=["AdamW", "SGD", "LAMB"],
)
def test_steps_the_inner_optimizer_with_each_windows_mean(cls, kwargs, k, backend, dtype, rng):
    ps = params(rng, dtype)
    qs = [p.copy() for p in ps]
    multi = fo.MultiSteps(cls(ps, backend=backend, **kwargs), every_k_steps=k)
    direct = cls(qs, backend=backend, **kwargs)
    windows = [[grads_for(ps, 10 * w + j) for j in range(k)] for w in range(3)]
    for window, mean in zip(windows, window_means(windows), strict=True):
        taken = [multi.step([g.astype(dtype) for g in gs]) for gs in window]
        assert taken == [False] * (k - 1) + [True]
        direct.step([m.astype(dtype) for m in mean])
        for p, q in zip(ps, qs, strict=True):
            assert p.tobytes() == q.tobytes()
    assert multi.gradient_step == 3 and multi.mini_step == 0
    steps = [
        float(s["step"]) for s in multi.optimizer.state_dict()["state"].values() if "step" in s
    ]
    assert steps and all(s == 3.0 for s in steps)  # the step count sees real steps only


def test_by_hand(backend):
    w = np.array([1.0, -1.0])
    multi = fo.MultiSteps(fo.SGD([w], lr=0.5, weight_decay=0.1, backend=backend), 3)
    for g in ([1.0, 2.0], [2.0, 4.0], [6.0, 0.0]):
        multi.step([np.array(g)])
    # mean [3, 2]; one decay: g = [3, 2] + 0.1 * [1, -1]; w -= 0.5 * g
    np.testing.assert_allclose(w, [1.0 - 0.5 * 3.1, -1.0 - 0.5 * 1.9], rtol=1e-15)


def test_clipping_sees_the_mean_not_the_micro_batches(backend, rng):
    ps = params(rng)
    qs = [p.copy() for p in ps]
    multi = fo.MultiSteps(fo.Adam(ps, lr=0.01, max_grad_norm=0.5, backend=backend), 4)
    direct = fo.Adam(qs, lr=0.01, max_grad_norm=0.5, backend=backend)
    window = [grads_for(ps, j) for j in range(4)]
    for gs in window:
        multi.step(gs)
    (mean,) = window_means([window])
    direct.step(mean)
    expected = float(np.sqrt(sum(np.sum(m * m) for m in mean)))
    assert multi.last_grad_norm == pytest.approx(expected, rel=1e-12)
    for p, q in zip(ps, qs, strict=True):
        assert p.tobytes() == q.tobytes()


def test_a_nonfinite_micro_batch_drops_the_window_with_skip_nonfinite(backend, rng):
    ps = params(rng)
    before = [p.copy() for p in ps]
    opt = fo.Adam(ps, lr=0.01, backend=backend)
    opt.skip_nonfinite = True
    multi = fo.MultiSteps(opt, 3)
    bad = grads_for(ps, 1)
    bad[1][2] = np.nan
    assert not multi.step(grads_for(ps, 0))
    assert not multi.step(bad)
    assert not multi.step(grads_for(ps, 2))  # the window's end: dropped
    for p, b in zip(ps, before, strict=True):
        assert p.tobytes() == b.tobytes()
    assert opt.skipped_steps == 1 and multi.gradient_step == 0 and not opt.state
    # the next window starts afresh: as a fresh MultiSteps on the same grads
    qs = [b.copy() for b in before]
    fresh = fo.MultiSteps(fo.Adam(qs, lr=0.01, backend=backend), 3)
    for j in range(3):
        multi.step(grads_for(ps, 10 + j))
        fresh.step(grads_for(qs, 10 + j))
    for p, q in zip(ps, qs, strict=True):
        assert p.tobytes() == q.tobytes()


def test_state_dict_resumes_bit_identically_mid_window(backend, rng):
    ps = params(rng)
    qs = [p.copy() for p in ps]
    straight = fo.MultiSteps(fo.Adam(ps, lr=0.01, backend=backend), 3)
    first = fo.MultiSteps(fo.Adam(qs, lr=0.01, backend=backend), 3)
    for t in range(5):  # a window and two thirds
        straight.step(grads_for(ps, t))
        first.step(grads_for(qs, t))
    saved = first.state_dict()
    assert saved["mini_step"] == 2 and len(saved["accumulators"]) == len(qs)
    for t in range(5, 7):
        first.step(grads_for(qs, t))  # moves on; the saved dict must not change with it
    rs = [q.copy() for q in qs]
    resumed = fo.MultiSteps(fo.Adam(rs, lr=0.01, backend=backend), 3)
    for r, p in zip(rs, ps, strict=True):
        r[...] = p
    resumed.load_state_dict(saved)
    for t in range(5, 11):
        straight.step(grads_for(ps, t))
        resumed.step(grads_for(rs, t))
    for p, r in zip(ps, rs, strict=True):
        assert p.tobytes() == r.tobytes()
    assert resumed.gradient_step == straight.gradient_step == 3


def test_the_numpy_backend_follows_the_fused_one(rng):
    ps = params(rng, np.float32)
    qs = [p.copy() for p in ps]
    a = fo.MultiSteps(fo.RMSprop(ps, lr=0.01, momentum=0.5), 2)
    b = fo.MultiSteps(fo.RMSprop(qs, lr=0.01, momentum=0.5, backend="numpy"), 2)
    for t in range(6):
        a.step(grads_for(ps, t))
        b.step(grads_for(qs, t))
    for p, q in zip(ps, qs, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("k", "exc", "match"),
    [
        (0, ValueError, "every_k_steps must be >= 1"),
        (-2, ValueError, "every_k_steps"),
        (1.5, TypeError, "every_k_steps must be an int"),
        (True, TypeError, "every_k_steps"),
        ("2", TypeError, "every_k_steps"),
    ],
)
def test_bad_every_k_steps_is_refused(k, exc, match):
    with pytest.raises(exc, match=match):
        fo.MultiSteps(fo.SGD([np.zeros(2)]), k)


def test_bad_optimizer_is_refused():
    with pytest.raises(TypeError, match="optimizer must be a fusedopt optimizer"):
        fo.MultiSteps([np.zeros(2)], 2)  # type: ignore[arg-type]


def test_bad_grads_change_nothing(backend, rng):
    ps = params(rng)
    multi = fo.MultiSteps(fo.Adam(ps, lr=0.01, backend=backend), 3)
    multi.step(grads_for(ps, 0))
    saved = multi.state_dict()
    before = [p.copy() for p in ps]
    bad_cases = [
        (grads_for(ps, 1)[:2], ValueError, "expected 3 grads"),
        ([g.astype(np.float32) for g in grads_for(ps, 1)], TypeError, r"grads\[0\]"),
        ([np.zeros((4, 3)), *grads_for(ps, 1)[1:]], ValueError, r"grads\[0\] has shape"),
    ]
    for grads, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            multi.step(grads)
    after = multi.state_dict()
    assert after["mini_step"] == saved["mini_step"] == 1
    for a, b in zip(after["accumulators"], saved["accumulators"], strict=True):
        assert a.tobytes() == b.tobytes()
    for p, b in zip(ps, before, strict=True):
        assert p.tobytes() == b.tobytes()


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing(rng):
    ps = params(rng)
    multi = fo.MultiSteps(fo.Adam(ps, lr=0.01), 3)
    multi.step(grads_for(ps, 0))
    saved = multi.state_dict()
    other = fo.MultiSteps(fo.Adam([p.copy() for p in ps], lr=0.01), 4)
    with pytest.raises(ValueError, match="every 3 steps"):
        other.load_state_dict(saved)
    broken = {**saved, "accumulators": saved["accumulators"][:1]}
    with pytest.raises(ValueError, match="1 accumulators"):
        multi.load_state_dict(broken)
    assert multi.mini_step == 1
