"""Low precision (issue 18): float16 / bfloat16 parameters, stochastic rounding, int8 state.

Oracles: the NumPy backend (float32 working copies rounded by NumPy / ml_dtypes, and its own
formulation of stochastic rounding: toward zero, then one step away with a probability
from the random bits), hand-computed values, and statistical properties of the rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import low_precision as lp
from tests.helpers import needs
from tests.table import GROUP_COUPLED, ROWS

ml_dtypes = needs("ml_dtypes", "half")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
HALF = [pytest.param(BF16, id="bfloat16"), pytest.param(F16, id="float16")]
INT8_CLASSES = {fo.SGD, fo.Adam, fo.AdamW, fo.NAdam, fo.RAdam, fo.Adamax, fo.Lion}

#: every class with an element-wise kernel that takes half parameters, with a configuration
KERNEL_ROWS = [r for r in ROWS if r[1].half_params] + [
    (cls.__name__.lower(), cls, {}) for cls in GROUP_COUPLED
]


def _ulp(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The spacing of ``dtype`` at |x| (float32)."""
    h = np.abs(x).astype(dtype)
    return (
        np.nextafter(h, np.array(np.inf, dtype)).astype(np.float32) - h.astype(np.float32)
    ).astype(np.float32)


def _run(cls, kwargs, dtype, backend, steps=3, n=300, shape=None, seed=0, **opts):
    rng = np.random.default_rng(seed)
    shape = shape or (n,)
    p = (rng.standard_normal(shape) * 0.5).astype(dtype)
    opt = cls([p], backend=backend, **kwargs, **opts)
    for _ in range(steps):
        opt.step([rng.standard_normal(shape).astype(dtype)])
    return p, opt


def _state_modes(cls, dtype):
    modes = [None, dtype] if cls.half_state else [None]
    if cls in INT8_CLASSES:
        modes.append("int8")
    return modes


# ----------------------------------------------------------------- backend parity
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize(("name", "cls", "kwargs"), KERNEL_ROWS, ids=[r[0] for r in KERNEL_ROWS])
def test_fused_matches_numpy_for_every_kernel(name, cls, kwargs, dtype):
    """Every element-wise kernel on half parameters, with float32 / half / int8 state and
    both roundings, follows the NumPy backend's trajectory to within one ulp of the half
    type (the rounding of a float32 value an ulp of float32 apart may differ)."""
    for state_dtype in _state_modes(cls, dtype):
        for sr in (False, True):
            opts = {"state_dtype": state_dtype, "stochastic_rounding": sr, "seed": 7}
            pf, of = _run(cls, kwargs, dtype, "fused", **opts)
            pn, on = _run(cls, kwargs, dtype, "numpy", **opts)
            a, b = pf.astype(np.float32), pn.astype(np.float32)
            tol = 2 * _ulp(np.maximum(np.abs(a), np.abs(b)), dtype) + 1e-6
            bad = ~(np.abs(a - b) <= tol) & ~(np.isnan(a) & np.isnan(b))
            assert not bad.any(), (name, state_dtype, sr, a[bad][:5], b[bad][:5])
            sf, sn = dict(of.state.get(0, {})), dict(on.state.get(0, {}))
            assert set(sf) == set(sn)
            for k, v in sf.items():
                assert v.dtype == sn[k].dtype, k


@pytest.mark.parametrize("dtype", HALF)
def test_state_dtypes_and_bytes(dtype):
    """float32 state by default for half params, half state on request, int8 codes with
    float32 block scales: the arrays and their bytes per parameter."""
    n = 1000
    _, default = _run(fo.Adam, {}, dtype, "fused", n=n)
    assert default.state[0]["exp_avg"].dtype == np.float32
    assert lp.state_nbytes_per_param(default) == pytest.approx(8 + 8 / n)
    _, half = _run(fo.Adam, {}, dtype, "fused", n=n, state_dtype=dtype)
    assert half.state[0]["exp_avg"].dtype == dtype
    assert lp.state_nbytes_per_param(half) == pytest.approx(4 + 8 / n)
    _, q = _run(fo.Adam, {}, dtype, "fused", n=n, state_dtype="int8")
    st = q.state[0]
    assert st["exp_avg"].dtype == np.int8 and st["exp_avg"].shape == (n,)
    assert st["exp_avg_sq_absmax"].dtype == np.float32 and st["exp_avg_sq_absmax"].shape == (16,)
    assert lp.state_nbytes_per_param(q) == pytest.approx(2 + 2 * 16 * 4 / n + 8 / n)


def test_float32_params_with_int8_state_match_numpy_and_dequantize_close():
    """int8 state on float32 (and float64) parameters: fused = NumPy backend, and the
    dequantized moments stay close to a float32-state run's."""
    for dtype in (np.float32, np.float64):
        pf, of = _run(fo.Adam, {"lr": 1e-2}, dtype, "fused", steps=5, n=1000, state_dtype="int8")
        pn, on = _run(fo.Adam, {"lr": 1e-2}, dtype, "numpy", steps=5, n=1000, state_dtype="int8")
        np.testing.assert_allclose(pf, pn, rtol=1e-5, atol=1e-6)
        for k in of.state[0]:
            np.testing.assert_allclose(
                np.asarray(of.state[0][k], np.float64),
                np.asarray(on.state[0][k], np.float64),
                atol=1.0,
            )
    _, full = _run(fo.Adam, {"lr": 1e-2}, np.float32, "fused", steps=5, n=1000)
    st = of.state[0]
    m = lp.dequantize(st["exp_avg"], st["exp_avg_absmax"], exponent=False)
    v = lp.dequantize(st["exp_avg_sq"], st["exp_avg_sq_absmax"], exponent=True)
    ref_m, ref_v = full.state[0]["exp_avg"], full.state[0]["exp_avg_sq"]
    assert np.abs(m - ref_m).max() < 0.05 * np.abs(ref_m).max()
    assert np.median(np.abs(v - ref_v) / ref_v) < 0.1


# ------------------------------------------------------------------- the codes
def test_linear_code_error_is_half_a_step():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(64 * 50) * np.repeat(10.0 ** rng.uniform(-6, 3, 50), 64)).astype(
        np.float32
    )
    codes, absmax = lp.quantize(x, exponent=False)
    assert codes.dtype == np.int8 and absmax.shape == (50,)
    np.testing.assert_array_equal(absmax, np.abs(x).reshape(50, 64).max(axis=1))
    back = lp.dequantize(codes, absmax, exponent=False)
    step = np.repeat(absmax, 64) / 127
    assert (np.abs(back - x) <= 0.5 * step * (1 + 1e-5)).all()
    assert (np.abs(codes.reshape(50, 64)).max(axis=1) == 127).all()


def test_exponent_code_is_relative():
    """The second-moment code: 3 mantissa bits at every scale from 2^-32 of the block's
    absmax to 1 (relative error <= 1/16), zero below, exact at the absmax."""
    rng = np.random.default_rng(2)
    x = (10.0 ** rng.uniform(-9, 0, 64 * 40)).astype(np.float32)
    x[::64] = 1.0
    codes, absmax = lp.quantize(x, exponent=True)
    back = lp.dequantize(codes, absmax, exponent=True)
    assert (back[::64] == 1.0).all()
    rel = np.abs(back - x) / x
    assert rel.max() <= 1 / 16 + 1e-6
    tiny = np.zeros(64, np.float32)
    tiny[0], tiny[1] = 1.0, 1e-12  # below 2^-32: flushed to 0
    c, a = lp.quantize(tiny, exponent=True)
    assert lp.dequantize(c, a, exponent=True)[1] == 0.0


# --------------------------------------------------------- stochastic rounding
@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize("dtype", HALF)
def test_stochastic_rounding_drifts_where_nearest_stalls(dtype, backend):
    """An SGD update of 1/64 of an ulp per step: round to nearest never moves the
    parameter; stochastic rounding moves it by the expected amount (within 3 sigma)."""
    n, steps = 256, 2000
    ulp = float(_ulp(np.ones(1, np.float32), dtype)[0])  # spacing above 1.0
    g = np.full(n, -ulp / 64, dtype)
    d = -float(g.astype(np.float32)[0])  # the update actually applied, per step
    results = {}
    for sr in (False, True):
        p = np.ones(n, dtype)
        opt = fo.SGD([p], lr=1.0, backend=backend, stochastic_rounding=sr, seed=11)
        for _ in range(steps):
            opt.step([g])
        results[sr] = p.astype(np.float64)
    assert (results[False] == 1.0).all()
    drift = results[True] - 1.0
    q = d / ulp  # probability of rounding up at each step
    mean, sigma = steps * d, ulp * np.sqrt(steps * q * (1 - q) / n)  # of the mean over n
    assert abs(drift.mean() - mean) < 3 * sigma, (drift.mean(), mean, sigma)
    assert drift.std() > 0  # the elements do not move in lockstep


@pytest.mark.parametrize("dtype", HALF)
def test_stochastic_rounding_is_unbiased_on_random_values(dtype):
    """round_half's stochastic rounding of float32 values (normal and subnormal half range)
    averages to the value: the mean over many keys is within 4 sigma."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(200) * 10.0 ** rng.uniform(-7, 3, 200)).astype(np.float32)
    if dtype == F16:
        x = np.clip(x, -6e4, 6e4)
    draws = np.stack([lp.round_half(x, dtype, key=k).astype(np.float64) for k in range(400)])
    ulp = _ulp(x, dtype).astype(np.float64)
    lo = np.abs(x).astype(dtype).astype(np.float64)
    assert (np.abs(draws - x) <= 2 * ulp + 1e-30).all()
    sigma = ulp / 2 / np.sqrt(400)
    assert (np.abs(draws.mean(axis=0) - x) <= 4 * sigma + 1e-12).all()
    assert lo.size == x.size


@pytest.mark.parametrize("dtype", HALF)
def test_stochastic_rounding_same_bits_any_thread_count_and_after_resume(dtype):
    """The same seed gives the same parameter bits on 1 and 2 threads (a step above the
    parallel threshold), and after a state-dict round trip through numpy.savez."""
    n = 1 << 17
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    before = fo.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            fo.set_num_threads(threads)
            p = p0.copy()
            opt = fo.Adam([p], lr=1e-3, stochastic_rounding=True, seed=5)
            for g in grads:
                opt.step([g])
            outs.append(p)
    finally:
        fo.set_num_threads(before)
    np.testing.assert_array_equal(outs[0].view(np.uint16), outs[1].view(np.uint16))
    # resume: two steps, save, load into a new optimizer, two more steps
    p = p0.copy()
    opt = fo.Adam([p], lr=1e-3, stochastic_rounding=True, seed=5)
    for g in grads[:2]:
        opt.step([g])
    sd = opt.state_dict()
    assert sd["stochastic_rounding"] == {"seed": 5, "step": 2}
    p2 = p.copy()
    opt2 = fo.Adam([p2], lr=1e-3, stochastic_rounding=True, seed=999)
    opt2.load_state_dict(sd)
    for g in grads[2:]:
        opt2.step([g])
    np.testing.assert_array_equal(p2.view(np.uint16), outs[0].view(np.uint16))
    # another seed gives other bits
    p3 = p0.copy()
    opt3 = fo.Adam([p3], lr=1e-3, stochastic_rounding=True, seed=6)
    for g in grads:
        opt3.step([g])
    assert (p3.view(np.uint16) != outs[0].view(np.uint16)).any()


def test_int8_state_dict_resumes_bit_identically(tmp_path):
    """int8 codes and scales go through state_dict and a checkpoint file and resume bit
    for bit."""
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal((37, 70)).astype(np.float32)
    grads = [rng.standard_normal((37, 70)).astype(np.float32) for _ in range(6)]
    p = p0.copy()
    opt = fo.Adam([p], lr=1e-2, state_dtype="int8")
    for g in grads:
        opt.step([g])
    q = p0.copy()
    opt2 = fo.Adam([q], lr=1e-2, state_dtype="int8")
    for g in grads[:3]:
        opt2.step([g])
    path = tmp_path / "ckpt.npz"
    fo.save_checkpoint(path, opt2)
    q2 = q.copy()
    opt3 = fo.Adam([q2], lr=1e-2, state_dtype="int8")
    fo.load_checkpoint(path, opt3)
    for k, v in opt2.state[0].items():
        np.testing.assert_array_equal(opt3.state[0][k], v)
    for g in grads[3:]:
        opt3.step([g])
    np.testing.assert_array_equal(q2, p)
    np.testing.assert_array_equal(opt3.state[0]["exp_avg"], opt.state[0]["exp_avg"])


@pytest.mark.parametrize("dtype", HALF)
def test_half_parameters_checkpoint_round_trip(tmp_path, dtype):
    p = np.linspace(-1, 1, 100).astype(dtype)
    opt = fo.AdamW([p], lr=1e-2, stochastic_rounding=True)
    opt.step([np.ones(100, dtype)])
    path = tmp_path / "half.npz"
    fo.save_checkpoint(path, opt)
    q = np.zeros(100, dtype)
    opt2 = fo.AdamW([q], lr=1e-2, stochastic_rounding=True)
    fo.load_checkpoint(path, opt2)
    np.testing.assert_array_equal(q.view(np.uint16), p.view(np.uint16))
    opt.step([np.ones(100, dtype)])
    opt2.step([np.ones(100, dtype)])
    np.testing.assert_array_equal(q.view(np.uint16), p.view(np.uint16))


# ------------------------------------------------------------------ hand values
def test_first_adam_step_by_hand_bfloat16():
    """Adam's first step moves each entry by lr * g / (|g| + eps') ~ lr: 1.0 - 0.0625 and
    -2.0 + 0.0625 are exact in bfloat16."""
    p = np.array([1.0, -2.0], BF16)
    fo.Adam([p], lr=0.0625).step([np.array([3.0, -0.5], BF16)])
    np.testing.assert_array_equal(p.astype(np.float32), [0.9375, -1.9375])


def test_round_to_nearest_matches_numpy_casts_on_edge_values():
    """SGD with lr = 1 and p = 0 writes -g rounded: f16 grads are exact, so use float32
    arithmetic from a float32 lr: the fused rounding of p - lr * g equals NumPy's cast,
    through the subnormal range, overflow and ties."""
    rng = np.random.default_rng(8)
    for dtype, exps in ((F16, (-27, 16)), (BF16, (-130, 127))):
        g = (rng.choice([-1, 1], 4000) * 2.0 ** rng.uniform(*exps, 4000)).astype(dtype)
        lr = np.float32(1.0 + 2.0**-9)  # rounds often and hits ties
        p = np.zeros(4000, dtype)
        fo.SGD([p], lr=float(lr)).step([g])
        expect = (np.float32(0) - lr * g.astype(np.float32)).astype(dtype)
        np.testing.assert_array_equal(p.view(np.uint16), expect.view(np.uint16))


# ------------------------------------------------------------------ bad input
def test_bad_input_names_it_and_changes_nothing():
    p = np.ones(10, BF16)
    opt = fo.Adam([p], lr=0.1)
    with pytest.raises(
        TypeError, match=r"grads\[0\] has dtype float16 but params\[0\] is bfloat16"
    ):
        opt.step([np.ones(10, np.float16)])
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float32"):
        opt.step([np.ones(10, np.float32)])
    assert (p.astype(np.float32) == 1).all() and not opt.state
    with pytest.raises(ValueError, match="stochastic_rounding"):
        fo.Adam([np.ones(3, np.float32)], stochastic_rounding=True)
    with pytest.raises(ValueError, match="state_dtype"):
        fo.Adam([np.ones(3, np.float32)], state_dtype="int4")
    with pytest.raises(ValueError, match="state_dtype"):
        fo.Adam([np.ones(3, np.float32)], state_dtype="float8")
    with pytest.raises(ValueError, match="state_dtype='int8' is not offered by Adagrad"):
        fo.Adagrad([np.ones(3, np.float32)], state_dtype="int8")
    with pytest.raises(ValueError, match=r"state_dtype=float16 does not suit params\[0\]"):
        fo.Adam([np.ones(3, BF16)], state_dtype=np.float16)
    with pytest.raises(ValueError, match=r"state_dtype=float32 does not suit params\[0\]"):
        fo.Adam([np.ones(3, np.float64)], state_dtype=np.float32)
    with pytest.raises(TypeError, match="stochastic_rounding must be a bool"):
        fo.Adam([np.ones(3, BF16)], stochastic_rounding=1)
    with pytest.raises(TypeError, match="seed must be an int"):
        fo.Adam([np.ones(3, BF16)], seed=1.5)
    with pytest.raises(ValueError, match="seed must be in"):
        fo.Adam([np.ones(3, BF16)], seed=-1)
    for cls in (fo.LAMB, fo.Prodigy, fo.SGDHD, fo.AdamHD, fo.Adafactor, fo.Muon):
        with pytest.raises(ValueError, match=r"keeps the state of params\[0\] in float32"):
            cls([np.ones((3, 3), BF16)], state_dtype=BF16)
    for backend in ("fused", "numpy"):
        with pytest.raises(TypeError, match=r"params\[0\] is bfloat16: MultiSteps accumulates"):
            fo.MultiSteps(fo.Adam([np.ones(3, BF16)], backend=backend), 2)
    for cls in (fo.LBFGS, fo.SparseAdam, fo.SGDScheduleFree, fo.AdamWScheduleFree):
        with pytest.raises(TypeError, match=rf"params\[0\] is bfloat16: {cls.__name__} takes"):
            cls([np.ones((3, 3), BF16)])


def test_int8_state_dict_of_wrong_dtype_is_refused():
    p = np.ones(10, np.float32)
    opt = fo.Adam([p], state_dtype="int8")
    opt.step([np.ones(10, np.float32)])
    sd = opt.state_dict()
    plain = fo.Adam([np.ones(10, np.float32)])
    with pytest.raises(TypeError, match="exp_avg has dtype int8"):
        plain.load_state_dict(sd)
    bad = opt.state_dict()
    del bad["state"][0]["exp_avg_absmax"]
    with pytest.raises(ValueError, match="needs exp_avg_absmax"):
        opt.load_state_dict(bad)


def test_clip_and_guard_on_half_grads():
    """max_grad_norm and the non-finite guard read half grads: the same as the NumPy
    backend, and an inf bfloat16 grad skips the step."""
    outs = []
    for backend in ("fused", "numpy"):
        p = np.linspace(-1, 1, 500).astype(BF16)
        opt = fo.SGD([p], lr=0.1, momentum=0.9, backend=backend, max_grad_norm=0.5)
        opt.step([np.linspace(3, -4, 500).astype(BF16)])
        outs.append((p.astype(np.float32), opt.last_grad_norm))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=2**-7)
    assert outs[0][1] == pytest.approx(outs[1][1], rel=1e-6)
    p = np.ones(4, BF16)
    opt = fo.Adam([p])
    opt.skip_nonfinite = True
    opt.step([np.array([1, np.inf, 0, 0], BF16)])
    assert opt.skipped_steps == 1 and (p.astype(np.float32) == 1).all()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("cls", [fo.Adafactor, fo.Muon])
def test_self_stepping_classes_on_half_params(cls, dtype):
    """Adafactor and Muon step float32 working copies of half parameters (float32 state),
    rounded back as the element-wise kernels round: both backends agree, the result is the
    float32 parameters' step rounded, and stochastic rounding resumes bit-identically."""
    rng = np.random.default_rng(9)
    p0 = rng.standard_normal((24, 40)).astype(dtype)
    grads = [rng.standard_normal((24, 40)).astype(dtype) for _ in range(3)]
    outs = {}
    for backend in ("fused", "numpy"):
        p = p0.copy()
        opt = cls([p], lr=1e-2, backend=backend, max_grad_norm=5.0)
        for g in grads:
            opt.step([g])
        outs[backend] = p.astype(np.float32)
        assert all(a.dtype in (np.float32, np.float64) for a in opt.state[0].values())
    np.testing.assert_allclose(outs["fused"], outs["numpy"], rtol=2**-6, atol=2**-9)
    # one step from float32 copies, rounded to nearest: exactly the half step
    p = p0.copy()
    q = p0.astype(np.float32)
    cls([p], lr=1e-2).step([grads[0]])
    cls([q], lr=1e-2).step([grads[0].astype(np.float32)])
    np.testing.assert_array_equal(p.view(np.uint16), q.astype(dtype).view(np.uint16))
    # stochastic rounding: a resume continues with the same bits
    runs = []
    for split in (False, True):
        p = p0.copy()
        opt = cls([p], lr=1e-2, stochastic_rounding=True, seed=3)
        for k, g in enumerate(grads):
            if split and k == 2:
                sd = opt.state_dict()
                opt = cls([p], lr=1e-2, stochastic_rounding=True, seed=4)
                opt.load_state_dict(sd)
            opt.step([g])
        runs.append(p.view(np.uint16).copy())
    np.testing.assert_array_equal(runs[0], runs[1])
