"""Gradient clipping: ``clip_grad_norm_``, ``get_total_norm``, ``clip_grads_with_norm_``,
``clip_grad_value_``, and every optimizer's ``max_grad_norm`` / ``track_grad_norm`` /
``last_grad_norm``.

Oracles: values worked out by hand (``[3, 0]``, ``[0, 4]`` has L2 norm 5, L1 norm 7, max
4); NumPy (``np.linalg.norm`` of all grads concatenated in float64, and each grad times
``dtype(min(max_norm / (norm + 1e-6), 1))``, torch's factor, 0 for a non-finite norm);
``torch.nn.utils`` when torch is installed; for the optimizers, an identical optimizer
without ``max_grad_norm`` stepped with grads clipped in NumPy, the other backend, and the
same optimizer without ``track_grad_norm``. Norms, and parameters stepped with clipping,
must have the same bits on 1, 2, 3 and 4 threads. Bad input: an exception naming the
argument (``grads[i]`` for a grad) and no array changed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import fusedopt as fo

from .helpers import fingerprint, grads_for
from .table import CONFIGS, OPTIMIZERS

EPS = 1e-6  # torch's max_norm / (total_norm + 1e-6)
PARALLEL_MIN = int(fo.build_info()["parallel_min_elements"])
# p of the p-norm: "inf" is spelled as a string too.
NORM_TYPES = [2.0, 1.0, math.inf, "inf", 3.0, 0.5]
NORM_IDS = ["l2", "l1", "inf", "inf-str", "p3", "p0.5"]
CLASSES = [pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS]
THREADS = (1, 2, 3, 4)
# Relative tolerance of a parameter stepped with the clip inside the optimizer against
# one stepped with the grads clipped in NumPy: the norms differ only in summation order.
TIGHT = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-6}
# fused against numpy backend (as test_parity)
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}
ATOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6}


# ------------------------------------------------------------------------- oracles
def as_p(norm_type: Any) -> float:
    return math.inf if norm_type == "inf" else float(norm_type)


def oracle_norm(grads: Sequence[np.ndarray | None], norm_type: Any = 2.0) -> float:
    """The p-norm of every grad concatenated, in float64, by NumPy."""
    flat = [np.asarray(g, np.float64).ravel() for g in grads if g is not None]
    x = np.concatenate(flat) if flat else np.zeros(0)
    if x.size == 0:
        return 0.0
    return float(np.linalg.norm(x, ord=as_p(norm_type)))


def factor(max_norm: float, norm: float) -> float:
    """torch's clip factor; 0 for a non-finite norm (fusedopt's documented rule)."""
    return min(max_norm / (norm + EPS), 1.0) if math.isfinite(norm) else 0.0


def scaled(g: np.ndarray, f: float) -> np.ndarray:
    """``g`` as clip_grad_norm_ leaves it: times the factor cast to its dtype."""
    return np.asarray(g * g.dtype.type(f))


def copies(grads: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    return [None if g is None else g.copy() for g in grads]


def assert_same(got: Any, expected: Any, what: str = "", *, signs: bool = True) -> None:
    """Same dtype, shape and values (NaN where NaN) and, with ``signs``, the same signs of
    zeros: bit for bit apart from NaN payloads."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, what
    assert got.shape == expected.shape, what
    assert np.array_equal(got, expected, equal_nan=True), f"{what}: {got} != {expected}"
    if signs:
        nonnan = ~np.isnan(expected)
        assert np.array_equal(np.signbit(got[nonnan]), np.signbit(expected[nonnan])), what


def snapshot(arrays: Sequence[Any]) -> list[bytes | None]:
    return [a.tobytes() if isinstance(a, np.ndarray) else None for a in arrays]


@pytest.fixture
def restore_threads():
    before = fo.get_num_threads()
    yield
    fo.set_num_threads(before)


# --------------------------------------------------------------------- grad lists
def native_grads(rng: np.random.Generator, dtype: Any, large: bool) -> list[np.ndarray]:
    """Contiguous grads of one dtype (the fused sweeps); ``large``: ~300k elements in
    three tensors, past the parallel threshold."""
    if large:
        shapes: list[Any] = [(150_001,), (400, 250), (49_999,)]
    else:
        shapes = [(7, 5), (33,), (), (1,), (0, 3), (4, 3, 2)]
    out = [rng.standard_normal(s).astype(dtype) for s in shapes]
    out.append(np.asfortranarray(rng.standard_normal((6, 4)).astype(dtype)))
    return out


def mixed_grads(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Grads of every kind in one list: float64, float32, Fortran-ordered, 0-d and empty
    (fused sweeps); float16, a strided view and a reversed view (NumPy). Returns the
    list and the base the strided view looks into."""
    base = rng.standard_normal((40, 30))
    grads = [
        rng.standard_normal((7, 5)),
        rng.standard_normal(33).astype(np.float32),
        np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32)),
        np.asarray(rng.standard_normal(())),
        (3 * rng.standard_normal(17)).astype(np.float16),
        base[::3, 1::2],
        np.zeros((0, 3)),
        rng.standard_normal(9).astype(np.float32)[::-1],
        rng.standard_normal(PARALLEL_MIN + 77).astype(np.float32),
    ]
    return grads, base


# ------------------------------------------------------------------- hand values
@pytest.mark.parametrize(
    ("norm_type", "expected"),
    [
        (2.0, 5.0),
        (2, 5.0),
        (1.0, 7.0),
        (math.inf, 4.0),
        ("inf", 4.0),
        (3.0, 91.0 ** (1 / 3)),
        (0.5, (math.sqrt(3.0) + 2.0) ** 2),
    ],
    ids=["l2", "l2-int", "l1", "inf", "inf-str", "p3", "p0.5"],
)
def test_norms_by_hand(norm_type, expected, dtype):
    grads = [np.array([3.0, 0.0], dtype), np.array([0.0, -4.0], dtype)]
    before = snapshot(grads)
    got = fo.get_total_norm(grads, norm_type)
    assert type(got) is float
    assert got == pytest.approx(expected, rel=1e-15)
    assert snapshot(grads) == before  # get_total_norm writes nothing


def test_clip_by_hand(dtype, rel):
    """[3, 0], [0, -4] clipped to norm 1: [0.6, 0], [0, -0.8] (times 5 / (5 + 1e-6))."""
    grads = [np.array([3.0, 0.0], dtype), np.array([0.0, -4.0], dtype)]
    f = 1.0 / (5.0 + EPS)
    assert fo.clip_grad_norm_(grads, 1.0) == 5.0
    assert_same(grads[0], np.array([3.0, 0.0], dtype) * dtype(f))
    assert_same(grads[1], np.array([0.0, -4.0], dtype) * dtype(f))
    assert grads[0][0] == pytest.approx(0.6 * 5 / (5 + EPS), rel=rel)
    assert grads[1][1] == pytest.approx(-0.8 * 5 / (5 + EPS), rel=rel)
    # L1: norm 7, clipped to 3.5 -> a factor of 3.5 / (7 + 1e-6), about 1/2
    grads = [np.array([3.0, 0.0], dtype), np.array([0.0, -4.0], dtype)]
    assert fo.clip_grad_norm_(grads, 3.5, norm_type=1) == 7.0
    assert grads[0][0] == dtype(3.0) * dtype(3.5 / (7.0 + EPS))
    assert grads[1][1] == pytest.approx(-2.0, rel=1e-6)
    # max norm: 4, clipped to 2
    grads = [np.array([3.0, 0.0], dtype), np.array([0.0, -4.0], dtype)]
    assert fo.clip_grad_norm_(grads, 2.0, norm_type="inf") == 4.0
    assert grads[1][1] == dtype(-4.0) * dtype(2.0 / (4.0 + EPS))


# ---------------------------------------------------------------- NumPy oracle
@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=NORM_IDS)
def test_norm_and_clip_match_numpy(norm_type, large, dtype, rng):
    grads = native_grads(rng, dtype, large)
    g0 = copies(grads)
    expected = oracle_norm(g0, norm_type)
    norm = fo.get_total_norm(grads, norm_type)
    if as_p(norm_type) == math.inf:
        assert norm == expected  # a maximum is exact
    else:
        assert norm == pytest.approx(expected, rel=1e-12)
    max_norm = expected / 3
    assert fo.clip_grad_norm_(grads, max_norm, norm_type) == norm  # the norm before clipping
    f = factor(max_norm, norm)
    assert f < 0.34
    for i, (g, h) in enumerate(zip(grads, g0, strict=True)):
        assert_same(g, scaled(h, f), f"grads[{i}]")
    # clipped: the norm is now max_norm (less the 1e-6)
    assert fo.get_total_norm(grads, norm_type) == pytest.approx(
        norm * f, rel=1e-12 if dtype == np.float64 else 1e-6
    )


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=NORM_IDS)
def test_mixed_dtypes_and_layouts(norm_type, rng):
    """float16 and strided grads take NumPy's path, the others the fused sweep: one norm,
    each grad scaled by the factor cast to its own dtype, nothing else in a view's base."""
    grads, base = mixed_grads(rng)
    g0 = copies(grads)
    base0 = base.copy()
    expected = oracle_norm(g0, norm_type)
    norm = fo.get_total_norm(grads, norm_type)
    assert norm == pytest.approx(expected, rel=1e-12)
    max_norm = 0.5 * expected
    assert fo.clip_grad_norm_(grads, max_norm, norm_type) == norm
    f = factor(max_norm, norm)
    for i, (g, h) in enumerate(zip(grads, g0, strict=True)):
        assert_same(g, scaled(h, f), f"grads[{i}]")
    untouched = np.ones(base.shape, bool)
    untouched[::3, 1::2] = False
    assert_same(base[untouched], base0[untouched], "outside the view")


def test_no_grads_give_zero():
    for norm_type in NORM_TYPES:
        for grads in ([], [None, None], [np.zeros(0), np.zeros((3, 0), np.float32)], ()):
            assert fo.get_total_norm(grads, norm_type) == 0.0
            got = fo.clip_grad_norm_(grads, 1.0, norm_type)
            assert got == 0.0 and type(got) is float
    fo.clip_grads_with_norm_([], 1.0, 0.0)
    fo.clip_grad_value_([], 1.0)
    zeros = [np.zeros(4), np.zeros(3, np.float32)]
    assert fo.clip_grad_norm_(zeros, 0.0) == 0.0
    for z in zeros:
        assert not z.any() and not np.signbit(z).any()


def test_none_entries_are_skipped(rng):
    grads, _ = mixed_grads(rng)
    with_none = [None, *copies(grads[:3]), None, *copies(grads[3:]), None]
    assert fo.get_total_norm(with_none, 2.0) == fo.get_total_norm(grads, 2.0)
    assert fo.get_total_norm(with_none, "inf") == fo.get_total_norm(grads, "inf")
    assert fo.clip_grad_norm_(with_none, 1.0) == fo.clip_grad_norm_(grads, 1.0)
    assert with_none[0] is None and with_none[4] is None and with_none[-1] is None
    for g, h in zip([g for g in with_none if g is not None], grads, strict=True):
        assert_same(g, h)
    fo.clip_grad_value_(with_none, 0.1)
    fo.clip_grads_with_norm_(with_none, 1.0, 2.0)
    assert with_none[0] is None


def test_a_single_array_is_one_grad(rng):
    g = rng.standard_normal((30, 20))
    g0 = g.copy()
    expected = float(np.linalg.norm(g0.ravel()))
    assert fo.get_total_norm(g) == pytest.approx(expected, rel=1e-12)
    assert fo.clip_grad_norm_(g, 1.0) == fo.get_total_norm(g0)
    assert_same(g, scaled(g0, factor(1.0, fo.get_total_norm(g0))))
    fo.clip_grad_value_(g, 0.01)
    assert np.abs(g).max() == 0.01


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=NORM_IDS)
def test_no_write_below_max_norm(norm_type, rng):
    grads, base = mixed_grads(rng)
    grads[0][0, 0] = -0.0
    before = snapshot(grads)
    base0 = base.tobytes()
    norm = fo.get_total_norm(grads, norm_type)
    for max_norm in (norm + 2 * EPS, 2 * norm, math.inf):
        assert fo.clip_grad_norm_(grads, max_norm, norm_type) == norm
        fo.clip_grads_with_norm_(grads, max_norm, norm)
        assert snapshot(grads) == before
        assert base.tobytes() == base0
    # at max_norm == norm, the 1e-6 makes the factor just below 1: torch scales, so do we
    f = factor(norm, norm)
    assert f < 1.0
    g0 = copies(grads)
    fo.clip_grad_norm_(grads, norm, norm_type)
    for g, h in zip(grads, g0, strict=True):
        assert_same(g, scaled(h, f))


def test_clip_grads_with_norm(rng):
    grads, _ = mixed_grads(rng)
    twin = copies(grads)
    g0 = copies(grads)
    norm = fo.get_total_norm(grads)
    fo.clip_grads_with_norm_(grads, 1.0, norm)
    fo.clip_grad_norm_(twin, 1.0)
    for g, h in zip(grads, twin, strict=True):
        assert_same(g, h)  # the same as clip_grad_norm_, bit for bit
    for total in (10.0, np.float64(7.5), np.array(3.25), np.float32(2.0), 4):
        grads = copies(g0)
        fo.clip_grads_with_norm_(grads, 1.0, total)
        for g, h in zip(grads, g0, strict=True):
            assert_same(g, scaled(h, factor(1.0, float(total))))
    for total in (math.inf, math.nan):  # a non-finite norm: factor 0 (documented)
        grads = copies(g0)
        fo.clip_grads_with_norm_(grads, 1.0, total)
        for g in grads:
            assert not g.any() and not np.isnan(g).any()


@pytest.mark.parametrize("clip_value", [0.5, 0.0, 1e-3, math.inf])
def test_clip_grad_value(clip_value, rng):
    """Every element clamped to [-v, v] (v in the grad's dtype); NaN stays NaN; float16
    and strided views (NumPy) as the contiguous float32 / float64 ones (fused)."""
    grads, base = mixed_grads(rng)
    for g in grads[:2] + grads[4:6] + grads[-1:]:
        g[(0,) * g.ndim] = np.nan
        g[(-1,) * g.ndim] = np.inf
    grads[1][3] = -np.inf
    grads[-1][PARALLEL_MIN + 5] = np.nan
    g0 = copies(grads)
    base0 = base.copy()
    fo.clip_grad_value_(grads, clip_value)
    for i, (g, h) in enumerate(zip(grads, g0, strict=True)):
        hi, lo = h.dtype.type(clip_value), h.dtype.type(-clip_value)
        expected = np.where(h > hi, hi, np.where(h < lo, lo, h))  # NaN compares False: kept
        # the sign of a zero clamped to [-0.0, 0.0] is not specified (as torch.clamp)
        assert_same(g, expected.astype(h.dtype), f"grads[{i}]", signs=False)
    assert np.isnan(grads[0][0, 0]) and np.isnan(grads[-1][PARALLEL_MIN + 5])
    untouched = np.ones(base.shape, bool)
    untouched[::3, 1::2] = False
    assert_same(base[untouched], base0[untouched])


# -------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("where", [0, 1, 4, 8], ids=["f64", "f32", "f16", "large"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0], ids=["l2", "l1", "inf", "p3"])
def test_a_non_finite_grad(norm_type, where, bad, rng):
    """The norm is inf (NaN for a NaN, also for the max norm, wherever it is); clipping
    multiplies by 0: every other grad becomes exactly 0, never NaN."""
    grads, _ = mixed_grads(rng)
    flat = grads[where].reshape(-1)
    k = flat.size // 2 + 3
    flat[k] = bad
    flat[k + 1] = 1e4  # a larger element after the NaN: a max must not drop the NaN
    g0 = copies(grads)
    norm = fo.get_total_norm(grads, norm_type)
    if np.isnan(bad):
        assert math.isnan(norm)
    else:
        assert norm == math.inf
    got = fo.clip_grad_norm_(grads, 1.0, norm_type)
    assert got == norm or (math.isnan(got) and math.isnan(norm))
    for i, (g, h) in enumerate(zip(grads, g0, strict=True)):
        if i == where:
            gf = g.reshape(-1)
            assert not np.isfinite(gf[k])
            assert not np.delete(gf, k).any()
        else:
            assert not g.any() and not np.isnan(g).any(), f"grads[{i}]"
            assert_same(g, scaled(h, 0.0), f"grads[{i}]")


def test_an_infinite_half_precision_grad_is_clipped_whole_or_not_at_all(rng):
    """Under ``np.errstate(all="raise")``, clipping a list with an inf in a float16 grad
    (NumPy's path, after the fused sweep) either clips every grad or, if it raises, has
    written none: a failed call changes nothing."""
    grads, _ = mixed_grads(rng)
    grads[4][3] = np.inf
    before = snapshot(grads)
    try:
        with np.errstate(all="raise"):
            fo.clip_grad_norm_(grads, 1.0)
    except FloatingPointError:
        changed = [
            i for i, (a, b) in enumerate(zip(snapshot(grads), before, strict=True)) if a != b
        ]
        assert not changed, f"raised after writing grads {changed}"
        return
    for i, g in enumerate(grads):
        if i != 4:
            assert not g.any() and not np.isnan(g).any(), f"grads[{i}]"


@pytest.mark.parametrize("bad", [np.inf, np.nan], ids=["inf", "nan"])
def test_error_if_nonfinite_raises_before_writing(bad, rng):
    grads, base = mixed_grads(rng)
    grads[4][2] = bad  # the float16 one, after fused arrays in the list
    before = snapshot(grads)
    base0 = base.tobytes()
    for norm_type in NORM_TYPES:
        with pytest.raises(RuntimeError, match="error_if_nonfinite"):
            fo.clip_grad_norm_(grads, 1.0, norm_type, error_if_nonfinite=True)
        with pytest.raises(RuntimeError, match="error_if_nonfinite"):
            fo.get_total_norm(grads, norm_type, error_if_nonfinite=True)
        assert snapshot(grads) == before
        assert base.tobytes() == base0
    ok = native_grads(rng, np.float32, False)
    norm = oracle_norm(ok)
    assert fo.clip_grad_norm_(ok, 1.0, error_if_nonfinite=True) == pytest.approx(norm, rel=1e-12)


# ------------------------------------------------------------------------- torch
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=NORM_IDS)
def test_matches_torch(norm_type, dtype, rng):
    torch = pytest.importorskip("torch")
    tu = torch.nn.utils
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    p = as_p(norm_type)
    grads = [g for g in native_grads(rng, dtype, False) if g.size]
    grads.append(rng.standard_normal(PARALLEL_MIN + 99).astype(dtype))

    def params_of(gs: list[np.ndarray]) -> list[Any]:
        out = []
        for g in gs:
            t = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
            t.grad = torch.from_numpy(np.array(g, order="C"))
            out.append(t)
        return out

    def check(ours: list[np.ndarray], theirs: list[Any]) -> None:
        for g, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=0)

    want = float(tu.get_total_norm([torch.from_numpy(g) for g in grads], p))
    assert fo.get_total_norm(grads, norm_type) == pytest.approx(want, rel=rtol)
    for max_norm in (0.1 * want, 10 * want):
        ours, theirs = copies(grads), params_of(grads)
        got = fo.clip_grad_norm_(ours, max_norm, norm_type)
        assert got == pytest.approx(float(tu.clip_grad_norm_(theirs, max_norm, p)), rel=rtol)
        check(ours, theirs)
        ours, theirs = copies(grads), params_of(grads)
        fo.clip_grads_with_norm_(ours, max_norm, want)
        tu.clip_grads_with_norm_(theirs, max_norm, torch.tensor(want, dtype=torch.float64))
        check(ours, theirs)
    ours, theirs = copies(grads), params_of(grads)
    fo.clip_grad_value_(ours, 0.3)
    tu.clip_grad_value_(theirs, 0.3)
    check(ours, theirs)
    # an infinite grad: torch also multiplies by 0 (max_norm / inf); error_if_nonfinite
    # raises in both
    ours = copies(grads)
    ours[1][2] = np.inf
    theirs = params_of(ours)
    with pytest.raises(RuntimeError):
        tu.clip_grad_norm_(theirs, 1.0, p, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        fo.clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
    assert fo.clip_grad_norm_(ours, 1.0, norm_type) == float(tu.clip_grad_norm_(theirs, 1.0, p))
    for i, (g, t) in enumerate(zip(ours, theirs, strict=True)):
        if i != 1:
            np.testing.assert_array_equal(g, t.grad.numpy())


# ------------------------------------------------------------------------ threads
def thread_lists(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    sizes = rng.integers(1, 700, size=400)
    many = [
        rng.standard_normal(int(n)).astype(np.float32 if k % 3 else np.float64)
        for k, n in enumerate(sizes)
    ]
    assert sum(g.size for g in many) > PARALLEL_MIN
    three = [
        rng.standard_normal(150_001).astype(np.float32),
        rng.standard_normal((400, 250)),
        rng.standard_normal(49_999).astype(np.float32),
    ]
    return {"three-large": three, "many-small": many}


@pytest.mark.usefixtures("restore_threads")
def test_norms_have_the_same_bits_on_any_number_of_threads(rng):
    for name, grads in thread_lists(rng).items():
        for norm_type in (2.0, 1.0, math.inf, 3.0):
            norms, clipped = [], []
            for n in THREADS:
                fo.set_num_threads(n)
                assert fo.get_num_threads() == n
                norms.append(fo.get_total_norm(grads, norm_type))
                gs = copies(grads)
                assert fo.clip_grad_norm_(gs, 1.0, norm_type) == norms[-1]
                clipped.append(snapshot(gs))
            assert norms == [norms[0]] * len(THREADS), (name, norm_type, norms)
            assert all(c == clipped[0] for c in clipped), (name, norm_type)
            assert norms[0] == pytest.approx(oracle_norm(grads, norm_type), rel=1e-12)


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_clipped_steps_have_the_same_bits_on_any_number_of_threads(cls, kwargs, rng):
    grads = thread_lists(rng)["three-large"]
    p0 = [0.1 * g for g in grads]
    steps = [grads, [-0.5 * g for g in grads], [g[::-1].copy() for g in grads]]
    runs = []
    for n in THREADS:
        fo.set_num_threads(n)
        ps = copies(p0)
        opt = cls(ps, **kwargs, max_grad_norm=1.0)
        norms = []
        for gs in steps:
            opt.step(gs)
            norms.append(opt.last_grad_norm)
        runs.append((norms, snapshot(ps)))
    assert all(r == runs[0] for r in runs)
    assert runs[0][0] == pytest.approx([oracle_norm(gs) for gs in steps], rel=1e-12)


# --------------------------------------------------------------- optimizers
def opt_params(seed: int) -> list[np.ndarray]:
    """float64 2-d, float32 1-d, float64 0-d, float32 Fortran-ordered 2-d."""
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((4, 3)),
        rng.standard_normal(5).astype(np.float32),
        np.asarray(rng.standard_normal(())),
        np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
    ]


def two_groups(ps: list[np.ndarray], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": kwargs["lr"] / 2}]


def assert_params_close(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], tol) -> None:
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.dtype == b.dtype
        t = tol[a.dtype]
        np.testing.assert_allclose(a, b, rtol=t, atol=t / 10, err_msg=f"params[{i}]")


@pytest.mark.parametrize("max_norm", [0.8, 0.0], ids=["max0.8", "max0"])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_max_grad_norm_steps_with_clipped_grads(cls, kwargs, max_norm, backend):
    """Against an identical optimizer without max_grad_norm fed the grads clipped in
    NumPy; two param groups share one global norm; the grads are never written."""
    ps, twin_ps = opt_params(0), opt_params(0)
    opt = cls(two_groups(ps, kwargs), backend=backend, **kwargs, max_grad_norm=max_norm)
    twin = cls(two_groups(twin_ps, kwargs), backend=backend, **kwargs)
    assert opt.max_grad_norm == max_norm and opt.last_grad_norm is None
    for k in range(4):
        gs = grads_for(ps, 10 + k)
        if k == 2:
            gs = [np.asarray(0.01 * g) for g in gs]  # below max_norm 0.8: not clipped
        before = snapshot(gs)
        norm = oracle_norm(gs)
        opt.step(gs)
        assert snapshot(gs) == before, "the grads were written"
        assert type(opt.last_grad_norm) is float
        assert opt.last_grad_norm == pytest.approx(norm, rel=1e-12)
        twin.step([scaled(g, factor(max_norm, norm)) for g in gs])
        assert_params_close(ps, twin_ps, TIGHT)
    assert twin.last_grad_norm is None


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_max_grad_norm_fused_matches_numpy(cls, kwargs):
    out = {}
    for backend in ("fused", "numpy"):
        ps = opt_params(1)
        ps.append(np.random.default_rng(2).standard_normal(PARALLEL_MIN + 5).astype(np.float32))
        opt = cls(ps, backend=backend, **kwargs, max_grad_norm=2.0)
        norms = []
        for k in range(5):
            opt.step(grads_for(ps, 20 + k))
            norms.append(opt.last_grad_norm)
        out[backend] = (ps, norms)
    assert_params_close(out["fused"][0], out["numpy"][0], RTOL)
    assert out["fused"][1] == pytest.approx(out["numpy"][1], rel=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_track_grad_norm_and_no_clipping_change_nothing(cls, kwargs, backend):
    """track_grad_norm, max_grad_norm=inf and a max_grad_norm above every norm give the
    trajectory of the plain optimizer, bit for bit, and the norm of every step."""
    runs: dict[str, tuple[list[np.ndarray], fo.Optimizer]] = {}
    for name, extra in [
        ("plain", {}),
        ("track", {"track_grad_norm": True}),
        ("inf", {"max_grad_norm": math.inf}),
        ("large", {"max_grad_norm": 1e6}),
    ]:
        ps = opt_params(3)
        runs[name] = (ps, cls(ps, backend=backend, **kwargs, **extra))
    for k in range(3):
        gs = grads_for(runs["plain"][0], 30 + k)
        for _, opt in runs.values():
            opt.step(gs)
        for name in ("track", "inf", "large"):
            assert runs[name][1].last_grad_norm == pytest.approx(oracle_norm(gs), rel=1e-12)
    assert runs["plain"][1].last_grad_norm is None
    for name in ("track", "inf", "large"):
        assert snapshot(runs[name][0]) == snapshot(runs["plain"][0]), name
    assert runs["track"][1].max_grad_norm is None and runs["track"][1].track_grad_norm is True


@pytest.mark.parametrize("cls", CLASSES)
def test_the_attributes_are_settable_between_steps(cls, backend):
    kwargs = {"lr": 0.01}
    ps, twin_ps = opt_params(4), opt_params(4)
    opt = cls(ps, backend=backend, **kwargs)
    twin = cls(twin_ps, backend=backend, **kwargs)
    assert opt.max_grad_norm is None and opt.track_grad_norm is False
    assert opt.last_grad_norm is None
    opt.step(grads_for(ps, 40))
    twin.step(grads_for(ps, 40))
    assert opt.last_grad_norm is None
    for value in (1, np.float32(0.5), 0.25):
        opt.max_grad_norm = value
        assert opt.max_grad_norm == float(value) and type(opt.max_grad_norm) is float
        gs = grads_for(ps, 41)
        norm = oracle_norm(gs)
        opt.step(gs)
        twin.step([scaled(g, factor(float(value), norm)) for g in gs])
        assert opt.last_grad_norm == pytest.approx(norm, rel=1e-12)
        assert_params_close(ps, twin_ps, TIGHT)
    opt.max_grad_norm = None
    opt.track_grad_norm = np.True_
    assert opt.track_grad_norm is True
    gs = grads_for(ps, 42)
    opt.step(gs)
    twin.step(gs)
    assert opt.last_grad_norm == pytest.approx(oracle_norm(gs), rel=1e-12)
    assert_params_close(ps, twin_ps, TIGHT)


@pytest.mark.parametrize("cls", CLASSES)
def test_the_new_arguments_are_keyword_only_after_backend(cls):
    params = list(inspect.signature(cls).parameters.values())
    names = [p.name for p in params]
    # (then the low-precision options, tests/test_signatures.py)
    assert names[-6:-3] == ["backend", "max_grad_norm", "track_grad_norm"]
    for p in params[-5:-3]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY
    assert params[-5].default is None and params[-4].default is False


# ---------------------------------------------------------- non-finite in a step
BAD = [np.nan, np.inf, -np.inf]
BAD_IDS = ["nan", "inf", "-inf"]


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_the_guard_with_max_grad_norm_skips_whole_steps(cls, kwargs, bad, backend):
    init = opt_params(5)
    finite = [grads_for(init, 50 + k) for k in range(3)]
    ref = copies(init)
    ref_opt = cls(ref, backend=backend, **kwargs, max_grad_norm=1.0)
    for gs in finite:
        ref_opt.step(gs)
    ps = copies(init)
    opt = cls(ps, backend=backend, **kwargs, max_grad_norm=1.0)
    opt.skip_nonfinite = True
    k = 0
    for n, what in enumerate(["bad", "ok", "bad", "ok", "bad", "ok"]):
        if what == "ok":
            opt.step(finite[k])
            assert opt.last_grad_norm == pytest.approx(oracle_norm(finite[k]), rel=1e-12)
            k += 1
            continue
        gs = copies(finite[0])
        g = gs[n % len(gs)]
        g[(-1,) * g.ndim] = bad
        before = fingerprint(opt, ps)
        grads_before = snapshot(gs)
        opt.step(gs)
        assert fingerprint(opt, ps)[:2] == before[:2], "a skipped step changed something"
        assert snapshot(gs) == grads_before
        if k:  # the norm of the skipped step's grads (the first step skips before any norm)
            assert not math.isfinite(opt.last_grad_norm)
    assert opt.skipped_steps == 3
    assert snapshot(ps) == snapshot(ref)  # exactly the run that only saw the finite steps


@pytest.mark.parametrize("bad", BAD, ids=BAD_IDS)
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_a_non_finite_grad_zeroes_the_others_without_the_guard(cls, kwargs, bad, backend):
    """Norm inf or NaN: factor 0; every other parameter steps as with grads of 0 (signs
    kept: ``g * 0``), never NaN; the grads are not written."""
    ps, twin_ps = opt_params(6), opt_params(6)
    opt = cls(ps, backend=backend, **kwargs, max_grad_norm=1.0)
    twin = cls(twin_ps, backend=backend, **kwargs)
    first = grads_for(ps, 60)
    opt.step(first)
    twin.step([scaled(g, factor(1.0, oracle_norm(first))) for g in first])
    gs = grads_for(ps, 61)
    gs[1][2] = bad
    before = snapshot(gs)
    opt.step(gs)
    assert snapshot(gs) == before
    assert opt.last_grad_norm is not None
    if np.isnan(bad):
        assert math.isnan(opt.last_grad_norm)
    else:
        assert opt.last_grad_norm == math.inf
    with np.errstate(invalid="ignore"):  # the oracle's own inf * 0
        zeroed = [scaled(g, 0.0) for g in gs]
    with np.errstate(all="ignore"):
        twin.step(zeroed)
    assert opt.skipped_steps == 0
    for i in (0, 2, 3):
        assert np.isfinite(ps[i]).all(), f"params[{i}]"
        assert_params_close([ps[i]], [twin_ps[i]], TIGHT)
        for name, v in opt.state.get(i, {}).items():
            assert np.isfinite(v).all(), f"state {name} of params[{i}]"


# ---------------------------------------------------------------------- bad input
def good() -> list[np.ndarray]:
    return [np.arange(1.0, 7.0).reshape(2, 3), np.linspace(-2, 2, 5).astype(np.float32)]


def read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def same_twice() -> list[np.ndarray]:
    g = np.ones(3)
    return [g, np.ones(2), g]


def overlapping_native() -> list[Any]:
    a = np.arange(1.0, 11.0)
    return [None, np.ones(3, np.float16), a[:6], a[4:]]


def overlapping_strided() -> list[Any]:
    b = np.arange(1.0, 11.0)
    return [None, None, b[::2], b[::3]]


# (id, grads builder, exception, message regex): for every function; read-only grads and
# overlaps only matter to the functions that write.
BAD_GRAD_LISTS: list[tuple[str, Any, type[Exception], str, bool]] = [
    ("number", lambda: 5.0, TypeError, "grads", False),
    ("dict", lambda: {"a": np.ones(2)}, TypeError, "grads", False),
    ("str", lambda: "grads", TypeError, "grads", False),
    ("list-item", lambda: [*good(), [1.0, 2.0]], TypeError, r"grads\[2\]", False),
    ("int-dtype", lambda: [*good(), np.arange(3)], TypeError, r"grads\[2\]", False),
    ("bool-dtype", lambda: [None, *good(), np.ones(2, bool)], TypeError, r"grads\[3\]", False),
    ("complex", lambda: [np.ones(2, complex), *good()], TypeError, r"grads\[0\]", False),
    ("read-only", lambda: [*good(), read_only(np.ones(3))], ValueError, r"grads\[2\]", True),
    ("same-twice", same_twice, ValueError, r"grads\[0\].*grads\[2\]", False),
    ("overlap-native", overlapping_native, ValueError, r"grads\[2\].*grads\[3\]", True),
    ("overlap-strided", overlapping_strided, ValueError, r"grads\[(2|3)\]", True),
]


def call_all(grads: Any) -> list[tuple[str, Any]]:
    return [
        ("clip_grad_norm_", lambda: fo.clip_grad_norm_(grads, 1e-3)),
        ("clip_grads_with_norm_", lambda: fo.clip_grads_with_norm_(grads, 1e-3, 10.0)),
        ("clip_grad_value_", lambda: fo.clip_grad_value_(grads, 1e-3)),
        ("get_total_norm", lambda: fo.get_total_norm(grads)),
    ]


@pytest.mark.parametrize(
    ("make_grads", "exc", "match", "writers_only"),
    [b[1:] for b in BAD_GRAD_LISTS],
    ids=[b[0] for b in BAD_GRAD_LISTS],
)
def test_bad_grads_are_refused_before_writing(make_grads, exc, match, writers_only):
    for name, call in call_all(grads := make_grads()):
        arrays = [g for g in grads if isinstance(g, np.ndarray)] if isinstance(grads, list) else []
        before = snapshot(arrays)
        if writers_only and name == "get_total_norm":
            assert math.isfinite(call())  # reading is fine
        else:
            with pytest.raises(exc, match=match):
                call()
        assert snapshot(arrays) == before, name


BAD_ARGS: list[tuple[str, Any, type[Exception]]] = [
    (arg, value, exc)
    for arg, cases in {
        "max_norm": [
            (-1.0, ValueError),
            (10**400, ValueError),
            (math.nan, ValueError),
            (-math.inf, ValueError),
            ("1.0", TypeError),
            (None, TypeError),
            (True, TypeError),
            ([1.0], TypeError),
        ],
        "norm_type": [
            (0, ValueError),
            (0.0, ValueError),
            (-2.0, ValueError),
            (math.nan, ValueError),
            (-math.inf, ValueError),
            ("two", TypeError),
            (None, TypeError),
            (True, TypeError),
        ],
        "clip_value": [
            (-0.5, ValueError),
            (math.nan, ValueError),
            ("1", TypeError),
            (None, TypeError),
        ],
        "total_norm": [("abc", TypeError), (None, TypeError), ("5", TypeError)],
    }.items()
    for value, exc in cases
]


def calls_taking(arg: str, value: Any, grads: list[np.ndarray]) -> list[Any]:
    if arg == "max_norm":
        return [
            lambda: fo.clip_grad_norm_(grads, value),
            lambda: fo.clip_grads_with_norm_(grads, value, 1.0),
        ]
    if arg == "norm_type":
        return [
            lambda: fo.clip_grad_norm_(grads, 1e-3, value),
            lambda: fo.get_total_norm(grads, value),
        ]
    if arg == "clip_value":
        return [lambda: fo.clip_grad_value_(grads, value)]
    return [lambda: fo.clip_grads_with_norm_(grads, 1e-3, value)]


@pytest.mark.parametrize(
    ("arg", "value", "exc"),
    BAD_ARGS,
    ids=[f"{a}-{v!r}" for a, v, _ in BAD_ARGS],
)
def test_bad_arguments_are_refused_before_writing(arg, value, exc):
    grads = good()
    before = snapshot(grads)
    for call in calls_taking(arg, value, grads):
        with pytest.raises(exc, match=arg):
            call()
        assert snapshot(grads) == before


BAD_OPT_ARGS = [
    ("max_grad_norm", -1.0, ValueError),
    ("max_grad_norm", math.nan, ValueError),
    ("max_grad_norm", -math.inf, ValueError),
    ("max_grad_norm", 10**400, ValueError),  # beyond float64 (found by test_fuzz)
    ("max_grad_norm", "1.0", TypeError),
    ("max_grad_norm", True, TypeError),
    ("max_grad_norm", [1.0], TypeError),
    ("track_grad_norm", 1, TypeError),
    ("track_grad_norm", "yes", TypeError),
    ("track_grad_norm", None, TypeError),
]


@pytest.mark.parametrize(
    ("arg", "value", "exc"), BAD_OPT_ARGS, ids=[f"{a}-{v!r}" for a, v, _ in BAD_OPT_ARGS]
)
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_optimizer_arguments(cls, arg, value, exc):
    """Refused at construction and when set (the value kept); the message names it."""
    p = np.ones(3)
    with pytest.raises(exc, match=arg):
        cls([p], lr=0.01, **{arg: value})
    opt = cls([p], lr=0.01, max_grad_norm=0.5, track_grad_norm=True)
    opt.step([np.full(3, 2.0)])
    before = fingerprint(opt, [p])
    with pytest.raises(exc, match=arg):
        setattr(opt, arg, value)
    assert opt.max_grad_norm == 0.5 and opt.track_grad_norm is True
    assert fingerprint(opt, [p]) == before


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_a_failed_clipped_step_changes_nothing(cls, kwargs, backend):
    ps = opt_params(7)
    opt = cls(ps, backend=backend, **kwargs, max_grad_norm=0.5)
    opt.step(grads_for(ps, 70))
    norm = opt.last_grad_norm
    before = fingerprint(opt, ps)
    bad = grads_for(ps, 71)
    bad[2] = np.zeros(3)  # the wrong shape, after two good grads
    with pytest.raises(ValueError, match=r"grads\[2\]"):
        opt.step(bad)
    assert fingerprint(opt, ps) == before
    assert opt.last_grad_norm == norm
