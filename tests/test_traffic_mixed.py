"""``fusedopt._core.traffic_mixed``: the bandwidth kernel over arrays of several element
widths (the yardstick of the low-precision benchmarks), against a NumPy model of it, and
the stream layouts of ``fusedopt.bench`` (bytes per element of a low-precision step)."""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, bench

BLOCK = bench.traffic.QUANT_BLOCK
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# sizes around the vector widths, a block (64) and a span of the kernel (512)
SIZES = [0, 1, 2, 7, 31, 63, 64, 65, 127, 511, 512, 513, 1000, 4099]


def random_array(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    """n elements of ``dtype`` with random bits (NaNs and all: the kernel moves bits)."""
    dt = np.dtype(dtype)
    u = UINT[dt.itemsize]
    return rng.integers(0, np.iinfo(u).max, n, dtype=u, endpoint=True).view(dt)


def expected(
    inplace: list[np.ndarray], readonly: list[np.ndarray], n: int, repeat: int = 1
) -> list[np.ndarray]:
    """The in-place arrays after ``repeat`` sweeps, as unsigned bits (a copy)."""
    out = [a.view(UINT[a.itemsize]).copy() for a in inplace]
    x = np.zeros(n, np.uint64)
    for r in readonly:
        bits = r.view(UINT[r.itemsize]).astype(np.uint64)
        if r.size != n:  # one per block
            bits = np.repeat(bits, BLOCK)[:n]
        x = x + bits
    x = x & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        for _ in range(repeat):
            for a in out:
                add = x if a.size == n else x[::BLOCK]
                a += add.astype(a.dtype)  # modulo 2**(8 * itemsize), as the kernel
    return out


def half_dtypes() -> list[np.dtype]:
    return list(fusedopt.low_precision.half_dtypes())


LAYOUTS = {
    # name: (in-place dtypes, read-only dtypes, which arrays are per block)
    # an optimizer step's layouts: the fused loops
    "bf16-adam": (["bf16", "f4", "f4"], ["bf16"], set()),
    "f16-adam-f16-state": (["f2", "f2", "f2"], ["f2"], set()),
    "int8-adam": (["f4", "i1", "f4", "i1", "f4"], ["f4"], {2, 4}),
    "int8-adam-bf16": (["bf16", "i1", "f4", "i1", "f4"], ["bf16"], {2, 4}),
    "int8-momentum-f64": (["f8", "i1", "f4"], ["f8"], {2}),
    "f64-sgd": (["f8"], ["f8"], set()),
    "f16-amsgrad-f64-state": (["f2", "f8", "f8", "f8"], ["f2"], set()),
    # any other mix: the span loop
    "all-widths": (["i1", "f2", "f4", "f8", "f4", "u1"], ["f8", "i1", "u2", "f4"], {4, 9}),
    "readonly-block-first": (["f4"], ["f4", "f2"], {1}),
    "no-readonly": (["f2", "f8"], [], set()),
    "int8-without-scales": (["f4", "i1", "i1"], ["f4"], set()),
    "states-of-two-widths": (["f2", "f4", "f2"], ["f2"], set()),
    "grad-of-another-width": (["f4", "f4"], ["f2"], set()),
}


def dtype_of(name: str) -> np.dtype:
    if name == "bf16":
        pytest.importorskip("ml_dtypes")
        return fusedopt.low_precision.bfloat16()
    return np.dtype(name)


def make_layout(rng, name: str, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ins, ros, blocked = LAYOUTS[name]
    arrays = []
    for k, d in enumerate([*ins, *ros]):
        size = -(-n // BLOCK) if k in blocked else n
        arrays.append(random_array(rng, size, dtype_of(d)))
    return arrays[: len(ins)], arrays[len(ins) :]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("n", SIZES)
def test_traffic_mixed_values(rng, layout, n) -> None:
    inplace, readonly = make_layout(rng, layout, n)
    kept = [r.copy() for r in readonly]
    want = expected(inplace, readonly, n)
    _core.traffic_mixed(inplace, readonly)
    for got, w in zip(inplace, want, strict=True):
        np.testing.assert_array_equal(got.view(w.dtype), w)
    for r, k in zip(readonly, kept, strict=True):
        assert r.tobytes() == k.tobytes()  # read-only arrays are not written


@pytest.mark.parametrize("layout", ["int8-adam", "all-widths", "bf16-adam"])
def test_traffic_mixed_parallel_split_and_work_list(rng, layout, threads) -> None:
    """Large enough to be split over the threads (chunks start inside a tensor, at a
    block boundary); a work list of odd sizes; repeat."""
    sizes = [1, 70000, 63, 129, 100001, 1 << 17]
    tensors = [make_layout(rng, layout, n) for n in sizes]
    n_in = len(tensors[0][0])
    inplace = [[t[0][k] for t in tensors] for k in range(n_in)]
    readonly = [[t[1][k] for t in tensors] for k in range(len(tensors[0][1]))]
    want = [expected(ins, ros, n, repeat=3) for (ins, ros), n in zip(tensors, sizes, strict=True)]
    _core.traffic_mixed(inplace, readonly, repeat=3)
    for (ins, _), w in zip(tensors, want, strict=True):
        for got, wk in zip(ins, w, strict=True):
            np.testing.assert_array_equal(got.view(wk.dtype), wk)


def test_traffic_mixed_work_list_of_two_layouts(rng) -> None:
    """A work list whose tensors are not all laid out alike (a bfloat16 tensor, a float16
    one with float16 state, a float32 one): the span loop, the same bits."""
    pytest.importorskip("ml_dtypes")
    tensors = [
        make_layout(rng, "bf16-adam", 1000),
        make_layout(rng, "f16-adam-f16-state", 3000),
        make_layout(rng, "int8-without-scales", 500),
    ]
    want = [expected(ins, ros, ins[0].size, repeat=2) for ins, ros in tensors]
    inplace = [[t[0][k] for t in tensors] for k in range(3)]
    readonly = [[t[1][0] for t in tensors]]
    _core.traffic_mixed(inplace, readonly, repeat=2)
    for (ins, _), w in zip(tensors, want, strict=True):
        for got, wk in zip(ins, w, strict=True):
            np.testing.assert_array_equal(got.view(wk.dtype), wk)
    inplace[1][2] = np.ones(1000, np.float32)
    with pytest.raises(ValueError, match=r"inplace\[1\]\[2\] has 1000 elements, its tensor 500"):
        _core.traffic_mixed(inplace, readonly)


def test_traffic_mixed_errors() -> None:
    f = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="inplace must hold 1 to 6"):
        _core.traffic_mixed([], [])
    with pytest.raises(ValueError, match="inplace must hold 1 to 6"):
        _core.traffic_mixed([np.ones(4, np.int8) for _ in range(7)])
    with pytest.raises(ValueError, match="readonly must hold at most 4"):
        _core.traffic_mixed([f], [np.ones(100, np.int8) for _ in range(5)])
    with pytest.raises(TypeError, match=r"readonly\[0\] has dtype object"):
        _core.traffic_mixed([f], [np.ones(100, object)])
    with pytest.raises(TypeError, match=r"inplace\[0\] has dtype complex128"):
        _core.traffic_mixed([np.ones(100, np.complex128)])
    with pytest.raises(TypeError, match=r"inplace\[1\] has dtype \|S3"):
        _core.traffic_mixed([f, np.zeros(100, "S3")])
    with pytest.raises(ValueError, match=r"readonly\[0\] has 3 elements, its tensor 100 \(or 2,"):
        _core.traffic_mixed([f], [np.ones(3, np.float16)])
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.traffic_mixed([f], [np.ones(200, np.float16)[::2]])
    ro = np.ones(100, np.int8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"inplace\[1\] is read-only"):
        _core.traffic_mixed([f, ro])
    _core.traffic_mixed([f.copy()], [ro])  # a read-only array may be read
    with pytest.raises(ValueError, match="shares memory"):
        _core.traffic_mixed([f], [f.view(np.uint16)[:100]])
    with pytest.raises(ValueError, match=r"readonly\[0\] has 1 arrays, inplace\[0\] 2"):
        _core.traffic_mixed([[f, np.ones(4)]], [[np.ones(100, np.int8)]])
    with pytest.raises(ValueError, match="empty list"):
        _core.traffic_mixed([[]])
    with pytest.raises(ValueError, match="repeat"):
        _core.traffic_mixed([f], repeat=0)
    assert np.all(f == 1.0)  # nothing was written by a call that failed


def test_step_streams_bytes_per_element() -> None:
    n = 1 << 20
    f32 = bench.step_streams(np.float32)
    assert [str(s) for s in f32] == ["float32 rw"] * 3 + ["float32 r"]
    assert bench.mixed_bytes(f32, n) == 28 * n  # Adam: the 4R3W of the uniform kernel
    assert bench.mixed_bytes(f32, n) == bench.Pattern(4, 3).bytes(n, 4)
    int8 = bench.step_streams(np.float32, "int8")
    assert [str(s) for s in int8] == [
        "float32 rw",
        "int8 rw",
        "float32/64 rw",
        "int8 rw",
        "float32/64 rw",
        "float32 r",
    ]
    assert bench.mixed_bytes(int8, n) == 16.25 * n
    f16 = bench.step_streams(np.float16)
    assert bench.mixed_bytes(f16, n) == 22 * n  # half params: float32 state by default
    assert bench.mixed_bytes(bench.step_streams(np.float16, np.float16), n) == 14 * n
    assert bench.mixed_bytes(bench.step_streams(np.float64, n_state=1), n) == 40 * n
    assert bench.step_streams(np.float32, "int8", n_state=1)[2].size(65) == 2


def test_step_streams_bf16_and_arrays() -> None:
    pytest.importorskip("ml_dtypes")
    bf16 = fusedopt.low_precision.bfloat16()
    streams = bench.step_streams(bf16)
    assert bench.mixed_bytes(streams, 1000) == 22 * 1000
    inplace, readonly = bench.mixed_traffic_arrays(streams, 1 << 16)
    assert [a.dtype for a in inplace] == [bf16, np.float32, np.float32]
    assert [a.dtype for a in readonly] == [bf16]
    offsets = {a.ctypes.data % 4096 for a in [*inplace, *readonly]}
    assert len(offsets) == 4  # staggered within a page
    _core.traffic_mixed(inplace, readonly)
    # ones: bf16 1.0 is 0x3F80, float32 1.0 0x3F800000; x = 0x3F80 from the grad
    assert np.all(inplace[0].view(np.uint16) == 2 * 0x3F80)
    assert np.all(inplace[1].view(np.uint32) == 0x3F800000 + 0x3F80)
    assert bench.mixed_traffic_seconds(streams, 4096, repeats=1, min_time=1e-4) > 0
    with pytest.raises(ValueError, match="first stream"):
        bench.mixed_traffic_arrays(streams[::-1], 10)
