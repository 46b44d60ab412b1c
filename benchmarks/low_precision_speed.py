"""Low precision (issue 18, "Half the bytes"): Adam's step on half-precision parameters and
int8 state against float32 Adam, the traffic kernel and PyTorch, in one interleaved run.

One tensor of 2^k elements (``--size-log2``, default 25), 1 thread (``--threads``), the
cases timed in rounds (A B C ... A B C ..., the order rotated every round) so that the
noise of a shared machine hits every case alike; a case's figure is the median over the
rounds, and a ratio the median of the ratios within each round (``timing.py``):

* fusedopt's fused Adam (lr 1e-3) on float32 parameters (28 bytes per element: param and
  two moments read and written, grad read); on bfloat16 parameters with float32 state,
  rounded to nearest and with ``stochastic_rounding=True`` (22 B); on float16 parameters
  (22 B); on bfloat16 with bfloat16 state (``state_dtype=bfloat16``, as torch keeps it:
  14 B); on float32 parameters with int8 state (``state_dtype="int8"``: 8 + 4 + 2 x 2 +
  2 x 2 x 4 / 64 = 16.25 B) and on bfloat16 with int8 state (10.25 B);
* the yardsticks: ``fusedopt._core.traffic_mixed`` with each step's arrays
  (``fusedopt.bench.step_streams``: the same dtypes and bytes, staggered within a page),
  through the same parallel loop, doing nothing but moving the bytes;
* ``torch.optim.Adam(fused=True)`` on bfloat16 CPU tensors (its state is bfloat16: 14 B),
  skipped without PyTorch.

Goals (issue 18): bfloat16 Adam (float32 state) >= 1.15x faster than float32 Adam and
>= 90% of its traffic kernel; >= 1.0x torch's fused Adam on bfloat16; int8-state Adam
>= 1.4x faster than float32-state Adam. Also reported: the bytes of optimizer state per
parameter of each mode, measured from the optimizers' state arrays
(``fusedopt.low_precision.state_nbytes_per_param``; torch's from its state tensors), and
the NumPy reference's bfloat16 Adam (``backend="numpy"``) against the fused one at
2^``--numpy-size-log2`` (default 20; it is slow).

Before timing, every mode is stepped 3 times by the fused kernel and by the NumPy backend
from the same start: the parameters must agree (the figures say whether bit for bit), and
one step of torch's fused bfloat16 Adam is compared with fusedopt's bfloat16-state Adam.
Needs ``ml_dtypes`` (the ``[half]`` extra)::

    python benchmarks/low_precision_speed.py                  # 2^25, 1 thread, 20 rounds
    python benchmarks/low_precision_speed.py --repeats 30 --size-log2 24 --threads 1,2
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any

import numpy as np
from timing import RatioRow, Timed, paired, parse_threads, print_ratios, run_rounds

import fusedopt as fo
from fusedopt import _core, bench
from fusedopt import low_precision as lp

LR = 1e-3
CHECK_SIZE = 1 << 16  # elements of the fused-vs-NumPy checks

Row = RatioRow


# --------------------------------------------------------------------------- modes
def modes() -> dict[str, tuple[str, np.dtype[Any], dict[str, Any]]]:
    """key: (how the table names it, the param dtype, the optimizer's keyword arguments)."""
    bf16 = lp.bfloat16()
    f32, f16 = np.dtype(np.float32), np.dtype(np.float16)
    return {
        "f32": ("float32 Adam (float32 state)", f32, {}),
        "bf16": ("bfloat16 Adam, float32 state, round to nearest", bf16, {}),
        "bf16_sr": (
            "bfloat16 Adam, float32 state, stochastic_rounding",
            bf16,
            {"stochastic_rounding": True, "seed": 7},
        ),
        "f16": ("float16 Adam, float32 state", f16, {}),
        "bf16_bf16": ("bfloat16 Adam, bfloat16 state", bf16, {"state_dtype": bf16}),
        "int8": ("float32 Adam, int8 state", f32, {"state_dtype": "int8"}),
        "bf16_int8": ("bfloat16 Adam, int8 state", bf16, {"state_dtype": "int8"}),
    }


def random_arrays(n: int, dtype: np.dtype[Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A param (standard normal) and a grad (0.1 x standard normal) of ``dtype``."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n, dtype=np.float32).astype(dtype)
    g = (rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)).astype(dtype)
    return p, g


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in units in the last place between two arrays of one float
    dtype (0: bit for bit; signed zeros count as equal)."""
    bits = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    x = a.view(bits).astype(np.int64)
    y = b.view(bits).astype(np.int64)
    # map the sign-magnitude bits onto a monotonic integer line
    top = np.int64(1) << np.int64(8 * a.dtype.itemsize - 1)
    x = np.where(x < 0, -(x + top), x)
    y = np.where(y < 0, -(y + top), y)
    return int(np.max(np.abs(x - y))) if a.size else 0


# --------------------------------------------------------------------------- checks
def check_modes() -> list[str]:
    """Each mode stepped 3 times by the fused kernel and by the NumPy backend from the same
    start: the params must agree within 1 unit in the last place (half) or 1e-5
    (float32). Returns one line per mode."""
    lines = []
    for key, (name, dtype, kwargs) in modes().items():
        p0, g = random_arrays(CHECK_SIZE, dtype, seed=3)
        got = {}
        for backend in ("fused", "numpy"):
            p = p0.copy()
            opt = fo.Adam([p], lr=LR, backend=backend, **kwargs)
            for _ in range(3):
                opt.step([g])
            got[backend] = p
        a, b = got["fused"], got["numpy"]
        same = a.tobytes() == b.tobytes()
        if dtype.itemsize == 2:
            d = ulps(a, b)
            assert d <= 1, f"{key}: the fused and NumPy params are {d} ulps apart"
            detail = "bit for bit" if same else f"within {d} ulp"
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=key)
            detail = "bit for bit" if same else f"max |diff| {np.max(np.abs(a - b)):.2g}"
        moved = np.count_nonzero(a != p0)
        lines.append(
            f"{name}: fused = NumPy backend after 3 steps ({detail}); {moved} of "
            f"{CHECK_SIZE} params changed"
        )
    return lines


def torch_bf16_tensors(torch: Any, p: np.ndarray, g: np.ndarray) -> Any:
    """A torch bfloat16 leaf tensor over a copy of ``p`` with ``.grad`` over a copy of ``g``
    (torch.from_numpy does not know ml_dtypes' bfloat16: through int16 views)."""
    t = torch.from_numpy(p.copy().view(np.int16)).view(torch.bfloat16)
    t.grad = torch.from_numpy(g.copy().view(np.int16)).view(torch.bfloat16)
    return t


def check_torch(torch: Any) -> str:
    """One step of torch's fused bfloat16 Adam and of fusedopt's bfloat16-state Adam from
    the same start: how far apart the params are (bfloat16 ulps)."""
    bf16 = lp.bfloat16()
    p, g = random_arrays(CHECK_SIZE, bf16, seed=4)
    t = torch_bf16_tensors(torch, p, g)
    opt = torch.optim.Adam([t], lr=LR, fused=True)
    mine = p.copy()
    fo.Adam([mine], lr=LR, state_dtype=bf16).step([g])
    opt.step()
    theirs = t.detach().view(torch.int16).numpy().view(bf16)
    d = ulps(mine, theirs)
    assert d <= 2, f"torch's and fusedopt's bfloat16 Adam are {d} ulps apart after one step"
    same = int(np.count_nonzero(mine.view(np.uint16) == theirs.view(np.uint16)))
    return (
        f"torch fused bfloat16 Adam vs fusedopt bfloat16-state Adam, one step: "
        f"{same} of {CHECK_SIZE} params bit for bit, all within {d} ulp"
    )


# --------------------------------------------------------------------------- cases
class TorchAdam:
    """``torch.optim.Adam(fused=True)`` on one bfloat16 CPU tensor (its own copies)."""

    def __init__(self, torch: Any, p: np.ndarray, g: np.ndarray) -> None:
        self.tensor = torch_bf16_tensors(torch, p, g)
        self.opt = torch.optim.Adam([self.tensor], lr=LR, fused=True)
        self.opt.step()  # the state, outside the timing

    def step(self) -> None:
        self.opt.step()

    def state_nbytes_per_param(self) -> float:
        st = self.opt.state[self.tensor]
        nbytes = sum(v.numel() * v.element_size() for v in st.values())
        return nbytes / self.tensor.numel()


def build_cases(k: int, torch: Any) -> tuple[list[Timed], dict[str, float]]:
    """The timed cases at 2^k and the state bytes per param of each mode."""
    n = 1 << k
    table = modes()
    grads: dict[str, np.ndarray] = {}  # one grad per dtype, shared (Adam only reads it)
    cases: list[Timed] = []
    state_bytes: dict[str, float] = {}
    for key, (name, dtype, kwargs) in table.items():
        p, g = random_arrays(n, dtype, seed=1)
        g = grads.setdefault(dtype.name, g)
        opt = fo.Adam([p], lr=LR, **kwargs)
        opt.step([g])  # the state, outside the timing
        streams = bench.step_streams(dtype, kwargs.get("state_dtype"))
        cases.append(
            Timed(key, name, lambda o=opt, g=g: o.step([g]), bench.mixed_bytes(streams, n))
        )
        state_bytes[name] = lp.state_nbytes_per_param(opt)
    for key, dtype, state, name in (
        ("f32_traffic", np.dtype(np.float32), None, "traffic_mixed, float32 Adam's arrays"),
        ("bf16_traffic", lp.bfloat16(), None, "traffic_mixed, bfloat16 + float32 state arrays"),
        (
            "int8_traffic",
            np.dtype(np.float32),
            "int8",
            "traffic_mixed, float32 + int8 state arrays",
        ),
    ):
        streams = bench.step_streams(dtype, state)
        inplace, readonly = bench.mixed_traffic_arrays(streams, n)
        layout = ", ".join(str(s) for s in streams)
        cases.append(
            Timed(
                key,
                f"{name} ({layout}: {bench.mixed_bytes(streams, n) / n:g} B/elem)",
                lambda i=inplace, r=readonly: _core.traffic_mixed(i, r, 1),
                bench.mixed_bytes(streams, n),
            )
        )
    if torch is not None:
        p, g = random_arrays(n, lp.bfloat16(), seed=1)
        theirs = TorchAdam(torch, p, g)
        del p, g
        streams = bench.step_streams(lp.bfloat16(), lp.bfloat16())
        cases.append(
            Timed(
                "torch_bf16",
                "torch Adam(fused=True), bfloat16 tensors (bfloat16 state)",
                theirs.step,
                bench.mixed_bytes(streams, n),
            )
        )
        state_bytes["torch Adam(fused=True), bfloat16 (bfloat16 state)"] = (
            theirs.state_nbytes_per_param()
        )
    return cases, state_bytes


def numpy_cases(k: int) -> list[Timed]:
    """bfloat16 Adam (float32 state) at 2^k: the fused kernel and the NumPy reference."""
    n = 1 << k
    bf16 = lp.bfloat16()
    out = []
    for backend in ("fused", "numpy"):
        p, g = random_arrays(n, bf16, seed=2)
        opt = fo.Adam([p], lr=LR, backend=backend)
        opt.step([g])
        streams = bench.step_streams(bf16)
        out.append(
            Timed(
                backend,
                f"bfloat16 Adam 2^{k}, backend={backend!r}",
                lambda o=opt, g=g: o.step([g]),
                bench.mixed_bytes(streams, n),
            )
        )
    return out


# --------------------------------------------------------------------------- ratios
def speed(a: Timed, b: Timed) -> float:
    """How many times faster ``b`` is than ``a`` (median of per-round time ratios)."""
    return paired(lambda x, y: x / y, a, b)


def ratios(c: dict[str, Timed], threads: int) -> list[Row]:
    one = threads == 1
    rows: list[Row] = []

    def goal(what: str, value: float, target: float, kind: str = "x") -> None:
        text = f">= {100 * target:.0f}%" if kind == "%" else f">= {target:g}x"
        rows.append(
            (what, value, text + ("" if one else " (1 thread)"), value >= target if one else None)
        )

    goal("float32 Adam / bfloat16 Adam (speed-up)", speed(c["f32"], c["bf16"]), 1.15)
    goal(
        "bfloat16 Adam as a share of its traffic kernel (traffic time / Adam time)",
        speed(c["bf16_traffic"], c["bf16"]),
        0.90,
        "%",
    )
    if "torch_bf16" in c:
        goal("torch fused bfloat16 Adam / bfloat16 Adam", speed(c["torch_bf16"], c["bf16"]), 1.0)
    goal("float32-state Adam / int8-state Adam (speed-up)", speed(c["f32"], c["int8"]), 1.4)
    info = [
        ("float32 Adam / bfloat16 Adam stochastic_rounding", speed(c["f32"], c["bf16_sr"])),
        (
            "bfloat16 stochastic_rounding as a share of its traffic kernel",
            speed(c["bf16_traffic"], c["bf16_sr"]),
        ),
        ("bfloat16 stochastic_rounding / round to nearest (time)", speed(c["bf16_sr"], c["bf16"])),
        ("float32 Adam / float16 Adam", speed(c["f32"], c["f16"])),
        (
            "float16 Adam as a share of the bfloat16 traffic kernel (same bytes)",
            speed(c["bf16_traffic"], c["f16"]),
        ),
        ("float32 Adam / bfloat16 Adam with bfloat16 state", speed(c["f32"], c["bf16_bf16"])),
        ("int8-state Adam as a share of its traffic kernel", speed(c["int8_traffic"], c["int8"])),
        ("float32 Adam as a share of its traffic kernel", speed(c["f32_traffic"], c["f32"])),
        ("float32 Adam / bfloat16 Adam with int8 state", speed(c["f32"], c["bf16_int8"])),
        (
            "traffic kernels: float32 (28 B) / bfloat16 (22 B) time",
            speed(c["f32_traffic"], c["bf16_traffic"]),
        ),
        (
            "traffic kernels: float32 (28 B) / int8 state (16.25 B) time",
            speed(c["f32_traffic"], c["int8_traffic"]),
        ),
    ]
    if "torch_bf16" in c:
        info.append(
            (
                "torch fused bfloat16 Adam / bfloat16-state Adam (same bytes)",
                speed(c["torch_bf16"], c["bf16_bf16"]),
            )
        )
        info.append(
            (
                "torch fused bfloat16 Adam / bfloat16 stochastic_rounding",
                speed(c["torch_bf16"], c["bf16_sr"]),
            )
        )
    rows += [(what, value, "", None) for what, value in info]
    return rows


# --------------------------------------------------------------------------- output
def print_cases(cases: list[Timed], n: int) -> None:
    print("| case | median | IQR | B/elem | GB/s | calls per sample |")
    print("|---|---|---|---|---|---|")
    for c in cases:
        print(
            f"| {c.name} | {bench.format_time(c.median)} | {100 * c.spread():.0f}% "
            f"| {c.nbytes / n:g} | {c.nbytes / c.median / 1e9:.1f} | {c.number} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--size-log2", type=int, default=25, help="2^k elements (default 25)")
    parser.add_argument(
        "--numpy-size-log2",
        type=int,
        default=20,
        help="the NumPy reference's size, 2^k (default 20; 0: skip it)",
    )
    parser.add_argument(
        "--threads", type=parse_threads, default=[1], help="comma-separated (default 1)"
    )
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per sample, at least (default 0.05)"
    )
    args = parser.parse_args(argv)

    lp.bfloat16()  # a clear ImportError naming the [half] extra without ml_dtypes
    torch = bench.torch_module()
    info = fo.build_info()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    default_threads = fo.get_num_threads()
    print(
        f"fusedopt {fo.__version__} (target {info.get('target')}, {info.get('threads')} threads), "
        f"NumPy {np.__version__}, ml_dtypes {sys.modules['ml_dtypes'].__version__}, "
        f"PyTorch {getattr(torch, '__version__', 'not installed')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs ({bench.machine_info()['cpu']})"
    )
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(f"load average at start: {load0}")
    print(
        f"{args.repeats} rounds, samples >= {args.min_time:g} s; one tensor of "
        f"2^{args.size_log2} elements; Adam lr={LR:g}; threads {args.threads}\n"
    )
    for line in check_modes():
        print(f"check: {line}")
    if torch is None:
        print("PyTorch is not installed: the comparison with torch is skipped.")
    else:
        print(f"check: {check_torch(torch)}")
    sys.stdout.flush()

    n = 1 << args.size_log2
    cases, state_bytes = build_cases(args.size_log2, torch)
    by_key = {c.key: c for c in cases}
    for threads in args.threads:
        fo.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        run_rounds(cases, args.repeats, args.min_time)
        print(f"\n### 2^{args.size_log2} elements, {threads} thread(s)\n")
        print_cases(cases, n)
        print()
        print_ratios(ratios(by_key, threads))
        sys.stdout.flush()
    del cases, by_key
    gc.collect()

    print("\n### Optimizer state per parameter (bytes, from the state arrays)\n")
    print("| mode | state bytes / param |")
    print("|---|---|")
    for name, b in state_bytes.items():
        print(f"| {name} | {b:.4g} |")

    if args.numpy_size_log2 > 0:
        fo.set_num_threads(1)
        small = numpy_cases(args.numpy_size_log2)
        run_rounds(small, max(3, args.repeats // 4), args.min_time)
        print(f"\n### NumPy reference, 2^{args.numpy_size_log2} elements, 1 thread\n")
        print_cases(small, 1 << args.numpy_size_log2)
        fused, ref = small
        print(f"\nfused / NumPy reference (bfloat16 Adam): {speed(ref, fused):.1f}x faster")
    fo.set_num_threads(default_threads)
    if load0 is not None:
        print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
