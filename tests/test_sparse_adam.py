"""SparseAdam and RowGrad: against the NumPy reference (same bits), against an
independent masked-Adam oracle in float64 written from torch's documentation, against
torch.optim.SparseAdam with torch sparse grads (same bits for distinct indices), and
the properties: repeated indices summed, untouched rows unchanged (parameter and
state), bad input refused before anything changes, state_dict round trip, the same
bits on 1..4 threads, clipping by the norm of the coalesced rows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.reference.sparse_adam import coalesce_rows

BACKENDS = ("fused", "numpy")


def _grads(rng, n_rows, row_shape, dtype, steps, k=12, repeats=True):
    out = []
    for _ in range(steps):
        if repeats:
            idx = rng.integers(0, n_rows, k)
        else:
            idx = rng.choice(n_rows, k, replace=False)
        out.append(fo.RowGrad(idx, rng.standard_normal((k, *row_shape)).astype(dtype)))
    return out


def masked_adam_oracle(p0, grads, lr, betas=(0.9, 0.999), eps=1e-8, maximize=False):
    """SparseAdam in float64 from its definition: Adam on the touched rows only (dense
    grad = the sum of the rows per index; untouched rows keep p, m and v)."""
    b1, b2 = betas
    p = np.array(p0, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        dense = np.zeros_like(p)
        touched = np.zeros(p.shape[0], bool)
        for k, r in enumerate(np.asarray(g.indices)):
            dense[r] += g.rows[k]
            touched[r] = True
        if maximize:
            dense = -dense
        mask = touched.reshape((-1,) + (1,) * (p.ndim - 1))
        m = np.where(mask, b1 * m + (1 - b1) * dense, m)
        v = np.where(mask, b2 * v + (1 - b2) * dense**2, v)
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p = np.where(mask, p - step * m / (np.sqrt(v) + eps), p)
    return p, m, v


# ------------------------------------------------------------------ trajectories


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(40, 6), (30,), (20, 3, 5)], ids=["2d", "1d", "3d"])
@pytest.mark.parametrize("maximize", [False, True])
def test_fused_matches_reference_bits(dtype, shape, maximize):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = _grads(rng, shape[0], shape[1:], dtype, 15)
    pf, pn = p0.copy(), p0.copy()
    of = fo.SparseAdam([pf], lr=0.01, betas=(0.8, 0.99), maximize=maximize)
    on = fo.SparseAdam([pn], lr=0.01, betas=(0.8, 0.99), maximize=maximize, backend="numpy")
    for g in grads:
        of.step([g])
        on.step([g])
    np.testing.assert_array_equal(pf, pn)
    for name in ("exp_avg", "exp_avg_sq", "step"):
        np.testing.assert_array_equal(of.state[0][name], on.state[0][name])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("maximize", [False, True])
def test_matches_masked_adam_oracle(backend, maximize):
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal((25, 4))
    grads = _grads(rng, 25, (4,), np.float64, 20, k=9)
    p = p0.copy()
    opt = fo.SparseAdam(
        [p], lr=0.03, betas=(0.85, 0.98), eps=1e-6, maximize=maximize, backend=backend
    )
    for g in grads:
        opt.step([g])
    want_p, want_m, want_v = masked_adam_oracle(p0, grads, 0.03, (0.85, 0.98), 1e-6, maximize)
    np.testing.assert_allclose(p, want_p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], want_m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], want_v, rtol=1e-12, atol=1e-15)
    assert float(opt.state[0]["step"]) == 20


def test_first_step_by_hand():
    # step 1: m = (1-b1) g, v = (1-b2) g^2, so m/sqrt(v) = sign(g)/... : p moves by
    # lr * sqrt(1-b2)/(1-b1) * (1-b1) g / (sqrt(1-b2)|g| + eps) ~ lr * sign(g)
    p = np.zeros((5, 2))
    opt = fo.SparseAdam([p], lr=0.5, eps=0.0)
    opt.step([fo.RowGrad([1, 3], np.array([[2.0, -3.0], [0.5, -0.25]]))])
    np.testing.assert_allclose(p[[1, 3]], [[-0.5, 0.5], [-0.5, 0.5]], rtol=1e-14)
    assert not p[[0, 2, 4]].any()


# ------------------------------------------------------------------ torch parity


def _torch_run(p0, grads, **kw):
    torch = pytest.importorskip("torch")
    pt = torch.tensor(p0.copy(), requires_grad=True)
    opt = torch.optim.SparseAdam([pt], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on sparse invariant checks
        for g in grads:
            idx = torch.tensor(np.asarray(g.indices, np.int64))[None]
            pt.grad = torch.sparse_coo_tensor(idx, torch.tensor(g.rows), p0.shape)
            opt.step()
    st = opt.state[pt]
    return pt.detach().numpy(), st["exp_avg"].numpy(), st["exp_avg_sq"].numpy(), st["step"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("maximize", [False, True])
def test_torch_distinct_indices(backend, dtype, maximize):
    """To a few ulps (most elements to the bit): torch rounds some operations differently
    by position (its scalar tail loop multiplies by the double -step_size, its vector loop
    by the float-rounded one, and its dense += sparse add may use FMA); fusedopt rounds
    each operation once, in the parameter's dtype, for every element alike."""
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((60, 8)).astype(dtype)
    grads = _grads(rng, 60, (8,), dtype, 25, k=16, repeats=False)
    kw = dict(lr=0.02, betas=(0.9, 0.99), eps=1e-7, maximize=maximize)
    tp, tm, tv, tstep = _torch_run(p0, grads, **kw)
    p = p0.copy()
    opt = fo.SparseAdam([p], backend=backend, **kw)
    for g in grads:
        opt.step([g])
    np.testing.assert_array_max_ulp(p, tp, maxulp=4)
    np.testing.assert_array_max_ulp(opt.state[0]["exp_avg"], tm, maxulp=4)
    np.testing.assert_array_max_ulp(opt.state[0]["exp_avg_sq"], tv, maxulp=4)
    assert np.mean(p == tp) > 0.9  # the same arithmetic: almost every element to the bit
    assert float(opt.state[0]["step"]) == tstep


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_repeated_indices(backend, dtype):
    # torch's coalesce may add repeats in another order: equal to rounding
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal((20, 5)).astype(dtype)
    grads = _grads(rng, 20, (5,), dtype, 25, k=30)
    tp, tm, _, _ = _torch_run(p0, grads, lr=0.01)
    p = p0.copy()
    opt = fo.SparseAdam([p], lr=0.01, backend=backend)
    for g in grads:
        opt.step([g])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, tp, rtol=tol, atol=tol)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], tm, rtol=tol, atol=tol)


def test_torch_empty_grad_counts_a_step():
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal((6, 2))
    empty = fo.RowGrad(np.zeros(0, np.int64), np.zeros((0, 2)))
    grads = [empty, *_grads(rng, 6, (2,), np.float64, 3), empty]
    tp, _, _, tstep = _torch_run(p0, grads, lr=0.1)
    for backend in BACKENDS:
        p = p0.copy()
        opt = fo.SparseAdam([p], lr=0.1, backend=backend)
        for g in grads:
            opt.step([g])
        assert float(opt.state[0]["step"]) == tstep == 5
        np.testing.assert_array_equal(p, tp)


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_indices_are_summed(backend):
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal((10, 3))
    rows = rng.standard_normal((4, 3))
    p1, p2 = p0.copy(), p0.copy()
    o1 = fo.SparseAdam([p1], lr=0.1, backend=backend)
    o2 = fo.SparseAdam([p2], lr=0.1, backend=backend)
    o1.step([fo.RowGrad([7, 2, 7, 7], rows)])
    summed = np.stack([rows[1], (rows[0] + rows[2]) + rows[3]])
    o2.step([fo.RowGrad([2, 7], summed)])
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(o1.state[0]["exp_avg_sq"], o2.state[0]["exp_avg_sq"])


def test_coalesce_native_matches_reference():
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        idx = rng.integers(0, 50, 300)
        rows = rng.standard_normal((300, 7)).astype(dtype)
        u, v = fo._core.coalesce_rows(idx.astype(np.int64), rows, 50)
        ru, rv = coalesce_rows(idx, rows)
        np.testing.assert_array_equal(u, ru)
        np.testing.assert_array_equal(v, rv)
        np.testing.assert_array_equal(u, np.unique(idx))
        dense = np.zeros((50, 7), dtype)
        np.add.at(dense, idx, rows)
        np.testing.assert_array_equal(v, dense[u])


@pytest.mark.parametrize("backend", BACKENDS)
def test_untouched_rows_unchanged(backend):
    rng = np.random.default_rng(8)
    p = rng.standard_normal((30, 4)).astype(np.float32)
    opt = fo.SparseAdam([p], lr=0.1, backend=backend)
    opt.step([fo.RowGrad(np.arange(30), rng.standard_normal((30, 4)).astype(np.float32))])
    before_p = p.copy()
    before_m = np.array(opt.state[0]["exp_avg"])
    before_v = np.array(opt.state[0]["exp_avg_sq"])
    touched = [3, 17, 3]
    opt.step([fo.RowGrad(touched, rng.standard_normal((3, 4)).astype(np.float32))])
    rest = np.setdiff1d(np.arange(30), touched)
    np.testing.assert_array_equal(p[rest], before_p[rest])
    np.testing.assert_array_equal(opt.state[0]["exp_avg"][rest], before_m[rest])
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"][rest], before_v[rest])
    for r in (3, 17):
        assert not np.array_equal(p[r], before_p[r])
        assert not np.array_equal(opt.state[0]["exp_avg"][r], before_m[r])


@pytest.mark.parametrize("backend", BACKENDS)
def test_none_grad_skips_and_groups(backend):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((8, 2)), rng.standard_normal((5, 3))
    a0, b0 = a.copy(), b.copy()
    opt = fo.SparseAdam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, backend=backend)
    ga = fo.RowGrad([1], np.ones((1, 2)))
    opt.step([ga, None])
    np.testing.assert_array_equal(b, b0)
    assert 1 not in opt.state
    gb = fo.RowGrad([4], np.ones((1, 3)))
    opt.step([None, gb])
    assert float(opt.state[0]["step"]) == 1 and float(opt.state[1]["step"]) == 1
    # first step, g = 1: the move is lr * sqrt(1 - b2) / (sqrt(1 - b2) + eps)
    s = math.sqrt(1 - 0.999)
    np.testing.assert_allclose(b[4], b0[4] - 0.5 * s / (s + 1e-8), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a[1], a0[1] - 0.1 * s / (s + 1e-8), rtol=1e-13, atol=1e-15)


def test_threads_same_bits():
    rng = np.random.default_rng(10)
    # large enough for the pool: 3000 rows x 64 > kParallelMin elements
    p0 = rng.standard_normal((5000, 64)).astype(np.float32)
    grads = _grads(rng, 5000, (64,), np.float32, 3, k=3000)
    saved = fo.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            p = p0.copy()
            opt = fo.SparseAdam([p], lr=0.01, max_grad_norm=5.0)
            for g in grads:
                opt.step([g])
            results.append((p, opt.last_grad_norm, np.array(opt.state[0]["exp_avg_sq"])))
    finally:
        fo.set_num_threads(saved)
    for p, norm, v in results[1:]:
        np.testing.assert_array_equal(p, results[0][0])
        assert norm == results[0][1]
        np.testing.assert_array_equal(v, results[0][2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_by_coalesced_norm(backend):
    rng = np.random.default_rng(11)
    p0 = rng.standard_normal((12, 3))
    g = fo.RowGrad([2, 5, 2], rng.standard_normal((3, 3)) * 10)
    _, values = coalesce_rows(g.indices, g.rows)
    norm = math.sqrt(float(np.sum(values**2)))
    p1, p2 = p0.copy(), p0.copy()
    o1 = fo.SparseAdam([p1], lr=0.1, max_grad_norm=1.0, backend=backend)
    o1.step([g])
    assert o1.last_grad_norm == pytest.approx(norm, rel=1e-12)
    coef = 1.0 / (norm + 1e-6)  # torch's clip coefficient
    o2 = fo.SparseAdam([p2], lr=0.1, backend=backend)
    o2.step([fo.RowGrad([2, 5], values * coef)])
    np.testing.assert_allclose(p1, p2, rtol=1e-13)
    np.testing.assert_allclose(o1.state[0]["exp_avg"], o2.state[0]["exp_avg"], rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip(backend, tmp_path):
    rng = np.random.default_rng(12)
    p0 = rng.standard_normal((15, 4)).astype(np.float32)
    grads = _grads(rng, 15, (4,), np.float32, 10)
    pa = p0.copy()
    oa = fo.SparseAdam([pa], lr=0.05, backend=backend)
    for g in grads[:5]:
        oa.step([g])
    sd = oa.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    pb = pa.copy()
    ob = fo.SparseAdam([pb], lr=0.05, backend=backend)
    ob.load_state_dict(sd)
    for g in grads[5:]:
        oa.step([g])
        ob.step([g])
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(oa.state[0]["exp_avg"], ob.state[0]["exp_avg"])
    # and it refuses another optimizer's state
    with pytest.raises(ValueError, match="SparseAdam"):
        fo.Adam([pb.copy()]).load_state_dict(sd)


# ------------------------------------------------------------------ bad input


def _fresh(backend="fused"):
    rng = np.random.default_rng(13)
    p = rng.standard_normal((10, 3)).astype(np.float32)
    opt = fo.SparseAdam([p], lr=0.1, backend=backend)
    opt.step([fo.RowGrad([0, 4], np.ones((2, 3), np.float32))])
    return p, opt


def _snapshot(p, opt):
    return p.copy(), {k: np.array(v) for k, v in opt.state[0].items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("make_grads", "exc", "match"),
    [
        (lambda p: [np.ones_like(p)], TypeError, r"grads\[0\] is a dense numpy.ndarray.*RowGrad"),
        (lambda p: [1.0], TypeError, r"grads\[0\] must be a fusedopt.RowGrad"),
        (lambda p: [], ValueError, "expected 1 grads"),
        (lambda p: fo.RowGrad([0], np.ones((1, 3), np.float32)), TypeError, "single RowGrad"),
        (lambda p: [fo.RowGrad([10], np.ones((1, 3), np.float32))], ValueError, "has 10 rows"),
        (lambda p: [fo.RowGrad([1, -1], np.ones((2, 3), np.float32))], ValueError, ">= 0"),
        (lambda p: [fo.RowGrad([1], np.ones((1, 4), np.float32))], ValueError, r"rows has shape"),
        (lambda p: [fo.RowGrad([1], np.ones((1, 3)))], TypeError, "dtype float64"),
        (lambda p: [fo.RowGrad([1, 2], p[:2])], ValueError, "shares memory"),
    ],
)
def test_bad_grads_change_nothing(backend, make_grads, exc, match):
    p, opt = _fresh(backend)
    before = _snapshot(p, opt)
    with pytest.raises(exc, match=match):
        opt.step(make_grads(p))
    after = _snapshot(p, opt)
    np.testing.assert_array_equal(before[0], after[0])
    for k in before[1]:
        np.testing.assert_array_equal(before[1][k], after[1][k])


def test_rows_sharing_state_memory_refused():
    _, opt = _fresh()
    state_view = opt._state[0]["exp_avg"][:1]
    with pytest.raises(ValueError, match="exp_avg of params"):
        opt.step([fo.RowGrad([1], state_view)])


def test_bad_rowgrad_and_hyperparameters():
    with pytest.raises(TypeError, match="integers"):
        fo.RowGrad([0.5], np.ones((1, 2)))
    with pytest.raises(ValueError, match="1-D"):
        fo.RowGrad([[0]], np.ones((1, 2)))
    with pytest.raises(ValueError, match="one row per index"):
        fo.RowGrad([0, 1], np.ones((3, 2)))
    with pytest.raises(ValueError, match="betas"):
        fo.SparseAdam([np.zeros((2, 2))], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="lr"):
        fo.SparseAdam([np.zeros((2, 2))], lr=-1.0)
    p, opt = _fresh()
    before = _snapshot(p, opt)
    opt.param_groups[0]["eps"] = float("nan")
    with pytest.raises(ValueError, match="eps"):
        opt.step([fo.RowGrad([1], np.ones((1, 3), np.float32))])
    np.testing.assert_array_equal(p, before[0])
    # a 0-d parameter has no rows
    opt0 = fo.SparseAdam([np.zeros(())])
    with pytest.raises(ValueError, match="0-d"):
        opt0.step([fo.RowGrad(np.zeros(0, np.int64), np.zeros(0))])


def test_rowgrad_to_dense_and_not_written():
    idx = np.array([2, 0, 2])
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    rows.flags.writeable = False
    g = fo.RowGrad(idx, rows)
    np.testing.assert_array_equal(g.to_dense(3), [[2, 3], [0, 0], [4, 6]])
    p = np.zeros((3, 2), np.float32)
    fo.SparseAdam([p]).step([g])  # read-only rows are fine
    np.testing.assert_array_equal(rows, np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(idx, [2, 0, 2])
