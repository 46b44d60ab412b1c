"""Adafactor: the fused step against the NumPy reference, against torch.optim.Adafactor
step for step, and against a first step worked out by hand; the same bits on 1..4
threads; the state dict; every bad input.

The fused step sums in float64 (torch and the reference in ways of their own), so the
comparisons allow rounding: float64 to ~1e-12, float32 to ~1e-5 relative.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import reference

SHAPES = [(), (7,), (5, 9), (3, 4, 6), (2, 1, 3, 5)]
SHAPE_IDS = ["0d", "1d", "2d", "3d", "4d"]
DTYPES = [np.float32, np.float64]
OPTIONS = {
    "default": {},
    "lr-wd": dict(lr=0.05, weight_decay=0.1),
    "maximize": dict(maximize=True),
    "eps": dict(eps=(1e-10, 1e-2)),
    "d-beta2_decay": dict(d=1.5, beta2_decay=-0.5),
    "everything": dict(
        lr=0.02, beta2_decay=-0.6, eps=(1e-6, 1e-4), d=2.0, weight_decay=0.05, maximize=True
    ),
}


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def problem(shape, dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    p0 = np.asarray(rng.standard_normal(shape), dtype)
    # grads of every magnitude (the clamps and the clipping of RMS(update) come into play)
    grads = [
        np.asarray(rng.standard_normal(shape) * rng.choice([1e-6, 1e-2, 1.0, 3.0]), dtype)
        for _ in range(steps)
    ]
    return p0, grads


def run(p0, grads, backend, **kwargs):
    p = p0.copy()
    opt = fo.Adafactor([p], backend=backend, **kwargs)
    for g in grads:
        opt.step([g])
    return p, opt


# --------------------------------------------------------------- reference parity
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_fused_matches_the_reference(shape, dtype, options):
    p0, grads = problem(shape, dtype, 8)
    fused, a = run(p0, grads, "fused", **options)
    ref, b = run(p0, grads, "numpy", **options)
    assert fused.dtype == dtype
    np.testing.assert_allclose(fused, ref, **tol(dtype))
    assert set(a.state[0]) == set(b.state[0])
    for name, value in b.state[0].items():
        assert a.state[0][name].shape == value.shape
        assert a.state[0][name].dtype == (np.float64 if name == "step" else dtype)
        np.testing.assert_allclose(a.state[0][name], value, **tol(dtype))
    assert float(a.state[0]["step"]) == len(grads)


def test_state_shapes_are_torchs():
    ps = [np.zeros(()), np.zeros(4), np.zeros((3, 5)), np.zeros((2, 3, 5))]
    opt = fo.Adafactor(ps)
    opt.step([np.ones_like(p) for p in ps])
    assert opt.state[0]["variance"].shape == ()
    assert opt.state[1]["variance"].shape == (4,)
    assert opt.state[2]["row_var"].shape == (3, 1)
    assert opt.state[2]["col_var"].shape == (1, 5)
    assert opt.state[3]["row_var"].shape == (2, 3, 1)
    assert opt.state[3]["col_var"].shape == (2, 1, 5)
    assert "variance" not in opt.state[2] and "row_var" not in opt.state[1]


# ---------------------------------------------------------------------- by hand
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_first_step_of_a_2x2_by_hand(backend):
    """p = g = [[1, 2], [3, 4]], defaults. Step 1: the lerp weight 1 ** -0.8 = 1, so
    row_var = row means of g^2 = (2.5, 12.5), col_var = column means = (5, 10);
    v = row_var col_var^T / mean(row_var) = [[5/3, 10/3], [25/3, 50/3]];
    update = g / sqrt(v): update^2 = [[0.6, 1.2], [1.08, 0.96]], RMS = sqrt(0.96) < 1, so no
    clipping; alpha = max(1e-3, RMS(p) = sqrt(7.5)) * min(0.01, 1) = 0.01 sqrt(7.5)."""
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = p.copy()
    opt = fo.Adafactor([p], backend=backend)
    opt.step([g])
    update = np.sign(g) * np.sqrt([[0.6, 1.2], [1.08, 0.96]])
    expected = g - 0.01 * math.sqrt(7.5) * update
    np.testing.assert_allclose(p, expected, rtol=1e-14)
    np.testing.assert_allclose(opt.state[0]["row_var"], [[2.5], [12.5]], rtol=1e-15)
    np.testing.assert_allclose(opt.state[0]["col_var"], [[5.0, 10.0]], rtol=1e-15)


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_second_step_of_a_vector_by_hand(backend):
    """A vector keeps `variance`; step 2 lerps with weight 2 ** -0.8, rho = min(lr, 1/sqrt 2),
    weight decay first multiplies p by 1 - lr * wd, and d clips RMS(update)."""
    lr, wd, d = 0.1, 0.5, 1.0
    p = np.array([3.0, -4.0])
    g1, g2 = np.array([1.0, 2.0]), np.array([2.0, -1.0])
    opt = fo.Adafactor([p], lr=lr, weight_decay=wd, d=d, backend=backend)
    opt.step([g1])
    # step 1: variance = g1^2, update = sign(g1) (RMS 1: no clipping); alpha = RMS(p) * lr
    p1 = np.array([3.0, -4.0]) * (1 - lr * wd) - math.sqrt(12.5) * lr * np.sign(g1)
    np.testing.assert_allclose(p, p1, rtol=1e-14)
    opt.step([g2])
    w = 2**-0.8
    v = g1**2 + w * (g2**2 - g1**2)
    u = g2 / np.sqrt(v)
    denom = max(1.0, math.sqrt(np.mean(u**2)) / d)
    alpha = max(1e-3, math.sqrt(np.mean(p1**2))) * min(lr, 1 / math.sqrt(2))
    np.testing.assert_allclose(p, p1 * (1 - lr * wd) - alpha / denom * u, rtol=1e-13)
    np.testing.assert_allclose(opt.state[0]["variance"], v, rtol=1e-14)


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_eps1_floors_the_estimate(backend):
    """A zero grad row and column: row_var and col_var there are 0, v = 0 is raised to
    eps1^2, and the update there is g / eps1 = 0; eps2 floors RMS(p) (p = 0)."""
    p = np.zeros((2, 3))
    g = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    opt = fo.Adafactor([p], eps=(1e-3, 0.5), lr=0.1, backend=backend)
    opt.step([g])
    # row_var = (0, 5/3), col_var = (0, 2, 0.5), mean(row_var) = 5/6
    v = np.array([[0, 0, 0], [0, (5 / 3) * 2 / (5 / 6), (5 / 3) * 0.5 / (5 / 6)]])
    u = g / np.sqrt(np.maximum(v, 1e-6))
    denom = max(1.0, math.sqrt(np.mean(u**2)))
    np.testing.assert_allclose(p, -0.5 * 0.1 * u / denom, rtol=1e-14, atol=1e-300)


# ----------------------------------------------------------------------- torch
TORCH_SHAPES = [(), (7,), (6, 10), (3, 4, 6)]


@pytest.mark.parametrize("shape", TORCH_SHAPES, ids=SHAPE_IDS[:4])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_matches_torch_step_for_step(shape, dtype, options, backend):
    torch = pytest.importorskip("torch")
    steps = 20
    p0, grads = problem(shape, dtype, steps, seed=1)
    p = p0.copy()
    opt = fo.Adafactor([p], backend=backend, **options)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.Adafactor([tp], **options)
    for k, g in enumerate(grads):
        opt.step([g])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        np.testing.assert_allclose(p, tp.detach().numpy(), **tol(dtype), err_msg=f"step {k + 1}")
    theirs = topt.state[tp]
    for name, value in opt.state[0].items():
        np.testing.assert_allclose(value, theirs[name].numpy(), **tol(dtype), err_msg=name)
    assert set(opt.state[0]) == set(theirs)


def test_torch_signature_and_defaults():
    torch = pytest.importorskip("torch")
    import inspect

    ours = inspect.signature(fo.Adafactor).parameters
    theirs = inspect.signature(torch.optim.Adafactor).parameters
    shared = [n for n in theirs if n != "foreach"]
    assert list(ours)[: len(shared)] == shared
    for name in shared[1:]:
        assert ours[name].default == theirs[name].default, name
        assert ours[name].kind == theirs[name].kind, name
    t = torch.optim.Adafactor([torch.zeros(2, requires_grad=True)])
    mine = fo.Adafactor([np.zeros(2)])
    for k, v in mine.defaults.items():
        assert t.defaults[k] == v, k


def test_mixed_dtypes_in_a_group_take_the_first_params_eps1():
    """torch resolves eps1=None once per group, from the first parameter with a grad."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    # tiny grads: v sits below float32's eps^2 for the float64 parameter
    a0, b0 = rng.standard_normal(4).astype(np.float32), rng.standard_normal((3, 2))
    ga, gb = rng.standard_normal(4).astype(np.float32), 1e-9 * rng.standard_normal((3, 2))
    for backend in ("fused", "numpy"):
        a, b = a0.copy(), b0.copy()
        opt = fo.Adafactor([a, b], backend=backend)
        opt.step([ga, gb])
        ta, tb = (torch.nn.Parameter(torch.from_numpy(x.copy())) for x in (a0, b0))
        topt = torch.optim.Adafactor([ta, tb])
        ta.grad, tb.grad = torch.from_numpy(ga), torch.from_numpy(gb)
        topt.step()
        np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-12)
        c = b0.copy()  # with float64's own eps the step differs
        fo.Adafactor([c], backend=backend).step([gb])
        assert not np.allclose(c, b, rtol=1e-6)


# ------------------------------------------------------------------- threads
@pytest.mark.parametrize(
    "shape", [(70001,), (300, 257), (3, 130, 170), (40, 2000)], ids=["1d", "2d", "3d", "wide"]
)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_same_bits_on_any_number_of_threads(shape, dtype):
    before = fo.get_num_threads()
    p0, grads = problem(shape, dtype, 3, seed=5)
    results = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            p, opt = run(p0, grads, "fused", weight_decay=0.01)
            results.append((p, {k: v.copy() for k, v in opt.state[0].items()}))
    finally:
        fo.set_num_threads(before)
    for p, state in results[1:]:
        np.testing.assert_array_equal(p, results[0][0])
        for k, v in state.items():
            np.testing.assert_array_equal(v, results[0][1][k])
    ref, _ = run(p0, grads, "numpy", weight_decay=0.01)
    np.testing.assert_allclose(results[0][0], ref, **tol(dtype))


# ------------------------------------------------------------ layouts and edges
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_fortran_ordered_parameter_steps_as_a_c_ordered_one(dtype):
    p0, grads = problem((6, 5), dtype, 4, seed=7)
    c, _ = run(p0, grads, "fused")
    f = np.asfortranarray(p0)
    opt = fo.Adafactor([f])
    for g in grads:
        opt.step([np.asfortranarray(g)])
    assert f.flags.f_contiguous
    np.testing.assert_array_equal(f, c)


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_none_grad_skips_its_parameter(backend):
    a, b = np.ones((2, 3)), np.ones(4)
    opt = fo.Adafactor([a, b], backend=backend)
    opt.step([None, np.ones(4)])
    np.testing.assert_array_equal(a, np.ones((2, 3)))
    assert 0 not in opt.state and float(opt.state[1]["step"]) == 1
    opt.step([np.ones((2, 3)), None])
    assert float(opt.state[0]["step"]) == 1 and float(opt.state[1]["step"]) == 1


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_empty_parameter_only_counts_the_step(backend):
    p = np.zeros((0, 3))
    q = np.ones(3)
    opt = fo.Adafactor([p, q], backend=backend)
    opt.step([np.zeros((0, 3)), np.ones(3)])
    assert float(opt.state[0]["step"]) == 1
    np.testing.assert_array_equal(opt.state[0]["col_var"], np.zeros((1, 3)))
    assert opt.state[0]["row_var"].shape == (0, 1)
    assert not np.array_equal(q, np.ones(3))


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_max_grad_norm_steps_with_the_clipped_grads(backend):
    p0, grads = problem((4, 5), np.float64, 3, seed=9)
    clipped, _ = run(p0, grads, backend, max_grad_norm=0.5)
    p = p0.copy()
    opt = fo.Adafactor([p], backend=backend)
    for g in grads:
        n = float(np.linalg.norm(g))
        opt.step([g * min(1.0, 0.5 / (n + 1e-6))])
    np.testing.assert_allclose(clipped, p, rtol=1e-12)


def test_grads_are_not_written():
    p0, grads = problem((5, 6), np.float32, 2)
    kept = [g.copy() for g in grads]
    run(p0, grads, "fused", maximize=True, max_grad_norm=0.1)
    for g, k in zip(grads, kept, strict=True):
        np.testing.assert_array_equal(g, k)


# ------------------------------------------------------------------ state dict
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_state_dict_round_trip_resumes_bit_identically(backend):
    shapes = [(), (5,), (4, 6), (2, 3, 4)]
    rng = np.random.default_rng(11)
    ps = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]
    opt = fo.Adafactor(ps, weight_decay=0.1, backend=backend)
    for g in gs[:3]:
        opt.step(g)
    saved, at = opt.state_dict(), [p.copy() for p in ps]
    assert saved["param_groups"][0]["eps"] == (None, 1e-3)
    for g in gs[3:]:
        opt.step(g)
    qs = [p.copy() for p in at]
    other = fo.Adafactor(qs, backend=backend)
    other.load_state_dict(saved)
    assert other.param_groups[0]["weight_decay"] == 0.1
    for g in gs[3:]:
        other.step(g)
    for p, q in zip(ps, qs, strict=True):
        np.testing.assert_array_equal(p, q)
    for i in range(len(ps)):
        for k, v in opt.state[i].items():
            np.testing.assert_array_equal(other.state[i][k], v)


def _saved_2d():
    p = np.ones((3, 4))
    opt = fo.Adafactor([p])
    opt.step([np.ones((3, 4))])
    return opt, opt.state_dict()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda e: e.update(row_var=np.zeros((3, 4))), ValueError, r"row_var has shape \(3, 4\)"),
        (lambda e: e.update(col_var=np.zeros((4, 1))), ValueError, "col_var has shape"),
        (lambda e: e.update(variance=np.zeros((3, 4))), ValueError, "variance is not the state"),
        (lambda e: e.pop("col_var"), ValueError, "needs"),
        (lambda e: e.update(row_var=np.zeros((3, 1), np.float32)), TypeError, "dtype"),
        (lambda e: e.update(step=-1.0), ValueError, "step"),
    ],
    ids=["row_var-shape", "col_var-shape", "variance-of-2d", "missing", "dtype", "step"],
)
def test_load_state_dict_refuses_bad_state(change, error, match):
    opt, saved = _saved_2d()
    change(saved["state"][0])
    before = {k: v.copy() for k, v in opt.state[0].items()}
    with pytest.raises(error, match=match):
        opt.load_state_dict(saved)
    for k, v in before.items():
        np.testing.assert_array_equal(opt.state[0][k], v)


def test_load_state_dict_refuses_a_bad_eps():
    opt, saved = _saved_2d()
    saved["param_groups"][0]["eps"] = (-1.0, 1e-3)
    with pytest.raises(ValueError, match=r"eps\[0\]"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["eps"] == (None, 1e-3)


# ----------------------------------------------------------------- bad input
BAD = [
    (dict(lr=-1e-3), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(beta2_decay=0.1), ValueError, "beta2_decay"),
    (dict(d=0.5), ValueError, "d"),
    (dict(d=0.0), ValueError, "d"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(eps=(-1e-3, 1e-3)), ValueError, r"eps\[0\]"),
    (dict(eps=(None, -1e-3)), ValueError, r"eps\[1\]"),
    (dict(eps=(None, float("inf"))), ValueError, r"eps\[1\]"),
    (dict(eps=(None, None)), TypeError, r"eps\[1\]"),
    (dict(eps=(True, 1e-3)), TypeError, r"eps\[0\]"),
    (dict(eps=1e-3), TypeError, "eps"),
    (dict(eps=(1e-3,)), TypeError, "eps"),
    (dict(eps=(None, 1e-3, 1.0)), TypeError, "eps"),
    (dict(maximize=1), TypeError, "maximize"),
    (dict(lr="0.1"), TypeError, "lr"),
]
BAD_IDS = [
    "lr<0",
    "lr-nan",
    "beta2_decay>0",
    "d<1",
    "d=0",
    "wd<0",
    "eps1<0",
    "eps2<0",
    "eps2-inf",
    "eps2-None",
    "eps1-bool",
    "eps-scalar",
    "eps-short",
    "eps-long",
    "maximize-int",
    "lr-str",
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD, ids=BAD_IDS)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fo.Adafactor([np.zeros(2)], **kwargs)


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD, ids=BAD_IDS)
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_bad_group_value_at_step_changes_nothing(kwargs, error, match, backend):
    a, b = np.ones((2, 3)), np.ones(3)
    opt = fo.Adafactor([{"params": [a]}, {"params": [b]}], backend=backend)
    opt.step([np.ones((2, 3)), np.ones(3)])
    before = [a.copy(), b.copy(), {k: v.copy() for k, v in opt.state[0].items()}]
    opt.param_groups[1].update(kwargs)  # the second group: the first must not move either
    with pytest.raises(error, match=match):
        opt.step([np.ones((2, 3)), np.ones(3)])
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])
    for k, v in before[2].items():
        np.testing.assert_array_equal(opt.state[0][k], v)


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD, ids=BAD_IDS)
def test_bad_add_param_group(kwargs, error, match):
    opt = fo.Adafactor([np.zeros(2)])
    with pytest.raises(error, match=match):
        opt.add_param_group({"params": [np.zeros(3)], **kwargs})
    assert len(opt.param_groups) == 1


def test_torch_refuses_what_we_refuse():
    """Every value refused above for its range, torch refuses too (ValueError)."""
    torch = pytest.importorskip("torch")
    for kwargs in (
        dict(lr=-1e-3),
        dict(beta2_decay=0.1),
        dict(d=0.5),
        dict(weight_decay=-0.1),
        dict(eps=(-1e-3, 1e-3)),
        dict(eps=(None, -1e-3)),
    ):
        with pytest.raises(ValueError):
            torch.optim.Adafactor([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_grads_change_nothing():
    a = np.ones((2, 3))
    opt = fo.Adafactor([a])
    with pytest.raises(ValueError):
        opt.step([np.ones((3, 2))])
    with pytest.raises(TypeError):
        opt.step([np.ones((2, 3), np.float32)])
    np.testing.assert_array_equal(a, np.ones((2, 3)))
    assert 0 not in opt.state


def test_native_binding_checks_its_arrays():
    from fusedopt import _core

    p, g = np.ones((2, 3)), np.ones((2, 3))
    kw = dict(lr=0.01, weight_decay=0.0, eps1=1e-30, eps2=1e-3, d=1.0, weight=1.0, rho=0.01)
    rv, cv = np.zeros((2, 1)), np.zeros((1, 3))
    with pytest.raises(ValueError, match="row_var has shape"):
        _core.adafactor_step(p, g, np.zeros((2, 3)), cv, None, maximize=False, **kw)
    with pytest.raises(TypeError, match="col_var has dtype"):
        _core.adafactor_step(p, g, rv, np.zeros((1, 3), np.float32), None, maximize=False, **kw)
    with pytest.raises(ValueError, match="no variance"):
        _core.adafactor_step(p, g, rv, cv, np.zeros((2, 3)), maximize=False, **kw)
    with pytest.raises(ValueError, match="shares memory"):
        _core.adafactor_step(p, p, rv, cv, None, maximize=False, **kw)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.adafactor_step(p, np.ones((3, 2)).T, rv, cv, None, maximize=False, **kw)
    np.testing.assert_array_equal(p, np.ones((2, 3)))
    np.testing.assert_array_equal(rv, 0.0)
    _core.adafactor_step(p, g, rv, cv, None, maximize=False, **kw)
    ref = {"step": np.array(0.0), "row_var": np.zeros((2, 1)), "col_var": np.zeros((1, 3))}
    q = np.ones((2, 3))
    reference.adafactor(
        q, g, ref, lr=0.01, beta2_decay=-0.8, eps=(1e-30, 1e-3), d=1.0, weight_decay=0.0,
        maximize=False,
    )  # fmt: skip
    np.testing.assert_allclose(p, q, rtol=1e-15)


# ---------------------------------------------------------------------- memory
PEAK_SCRIPT = """
import sys
import numpy as np
import fusedopt as fo


def peak():  # the peak resident set (VmHWM) in bytes
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM"))


backend = sys.argv[1]
rng = np.random.default_rng(0)
p = rng.standard_normal((2048, 2048), dtype=np.float32)
g = rng.standard_normal((2048, 2048), dtype=np.float32)
small = np.ones((64, 64), np.float32)
fo.Adafactor([small], backend=backend).step([small.copy()])
opt = fo.Adafactor([p], backend=backend)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident set
before = peak()
opt.step([g])
print(peak() - before)
"""


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs"
)
def test_the_fused_step_builds_no_full_size_temporary():
    """The peak memory of a step on a 2048x2048 float32 parameter (16 MiB) grows by less
    than a quarter of the parameter with the fused backend; the reference, which builds
    the outer product as torch does, needs several parameter-sized temporaries."""
    nbytes = 2048 * 2048 * 4
    grown = {}
    for backend in ("fused", "numpy"):
        out = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, backend], capture_output=True, text=True, check=True
        )
        grown[backend] = int(out.stdout.split()[-1])
    assert grown["fused"] < nbytes // 4, grown
    assert grown["numpy"] > 2 * nbytes, grown  # the control: the measure sees temporaries


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("shape", [(5,), (4, 6)], ids=["1d", "2d"])
def test_a_non_finite_grad_spreads_as_in_torch(bad, shape):
    """Without the guard: the NaN / inf reaches what torch's formulas make it reach (a
    factored estimate mixes every row and column, a vector's does not)."""
    torch = pytest.importorskip("torch")
    p0, grads = problem(shape, np.float64, 2, seed=13)
    grads[1].flat[3] = bad
    fused, _ = run(p0, grads, "fused")
    ref, _ = run(p0, grads, "numpy")
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.Adafactor([tp])
    for g in grads:
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    theirs = tp.detach().numpy()
    assert not np.isfinite(theirs).all()
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(theirs))
    np.testing.assert_allclose(fused, theirs, rtol=1e-12)
    np.testing.assert_allclose(ref, theirs, rtol=1e-12)


def test_skip_nonfinite_leaves_everything():
    p0, grads = problem((4, 6), np.float32, 2, seed=13)
    p = p0.copy()
    opt = fo.Adafactor([p])
    opt.skip_nonfinite = True
    opt.step([grads[0]])
    before = p.copy(), {k: v.copy() for k, v in opt.state[0].items()}
    grads[1][0, 0] = np.nan
    opt.step([grads[1]])
    assert opt.skipped_steps == 1
    np.testing.assert_array_equal(p, before[0])
    for k, v in before[1].items():
        np.testing.assert_array_equal(opt.state[0][k], v)


# ------------------------------------------------------------ instruction sets
TARGET_CHILD = """
import hashlib, json
import numpy as np
import fusedopt as fo

out = {"target": fo.build_info()["target"]}
for threads in (1, 2):
    fo.set_num_threads(threads)
    for dtype in (np.float32, np.float64):
        for shape in [(), (13,), (70001,), (3, 5, 7), (300, 257)]:
            rng = np.random.default_rng(7)
            p = np.asarray(rng.standard_normal(shape), dtype)
            opt = fo.Adafactor([p], weight_decay=0.1, d=1.5, maximize=True)
            for _ in range(3):
                opt.step([np.asarray(rng.standard_normal(shape), dtype)])
            digest = hashlib.sha256(p.tobytes())
            for k, v in sorted(opt.state[0].items()):
                digest.update(np.ascontiguousarray(v).tobytes())
            out[f"{threads}/{np.dtype(dtype).name}/{shape}"] = digest.hexdigest()
print(json.dumps(out))
"""


@pytest.mark.skipif(
    len(fo.build_info()["cpu_runs"]) < 2, reason="this CPU runs one target of this build"
)
def test_every_instruction_set_target_gives_the_same_bits():
    runs = {}
    for target in fo.build_info()["cpu_runs"]:
        proc = subprocess.run(
            [sys.executable, "-c", TARGET_CHILD],
            env={**os.environ, "FUSEDOPT_TARGET": target},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        runs[target] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert runs[target].pop("target") == target
    first, *others = runs
    for other in others:
        assert runs[other] == runs[first], f"{first} and {other} differ"


def test_checkpoint_round_trip(tmp_path):
    """fusedopt's checkpoint file keeps the factored state and eps's None."""
    p0, grads = problem((4, 5), np.float32, 4, seed=17)
    p = p0.copy()
    opt = fo.Adafactor([p], weight_decay=0.1)
    for g in grads[:2]:
        opt.step([g])
    fo.save_checkpoint(tmp_path / "ck.npz", opt)
    q = np.zeros_like(p)
    other = fo.Adafactor([q])
    fo.load_checkpoint(tmp_path / "ck.npz", other)
    assert other.param_groups[0]["eps"][0] is None
    for g in grads[2:]:
        opt.step([g])
        other.step([g])
    np.testing.assert_array_equal(q, p)
