"""Adafactor on one large matrix: fusedopt's fused step against torch.optim.Adafactor and
against the NumPy reference, timed in one interleaved run.

Goal (issue "every torch.optim optimizer"): Adafactor on a 4096x4096 float32 parameter
>= 2x torch's Adafactor. torch's single-tensor step builds the full-size outer product
``row_var @ col_var`` and several more full-size temporaries; fusedopt's never does (three
reads of the grad, two of the parameter, one write).

Each implementation steps its own copy of the same parameter with the same grad; a round
times each once (a batch of calls lasting at least ``--min-time``), in an order rotated by
one every round, so that a shared machine's noise hits every case alike. A figure is the
median over the rounds; a ratio is the median of the ratios within each round. Before
timing, one step of each from the same start is compared (float32: the fused step sums
in float64, torch in float32). Torch runs on as many threads as fusedopt at each
``--threads`` count (``torch.set_num_threads``); it is skipped when not installed::

    python benchmarks/adafactor_speed.py                       # 4096x4096, 1 and all threads
    python benchmarks/adafactor_speed.py --shape 1024 1024 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from timing import Timed, paired, run_rounds

import fusedopt as fo
from fusedopt import bench


def ratio(slow: Timed, fast: Timed) -> float:
    """The median over rounds of slow / fast (both timed in the same round)."""
    return paired(lambda s, f: s / f, slow, fast)


def problem(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal(shape, dtype=np.float32),
        rng.standard_normal(shape, dtype=np.float32),
    )


def fused_step(p: np.ndarray, g: np.ndarray, backend: str = "fused") -> Callable[[], None]:
    opt = fo.Adafactor([p], backend=backend)
    return lambda: opt.step([g])


def torch_step(torch: Any, p: np.ndarray, g: np.ndarray) -> Callable[[], Any]:
    t = torch.nn.Parameter(torch.from_numpy(p))
    t.grad = torch.from_numpy(g)
    opt = torch.optim.Adafactor([t])
    return opt.step


def assert_steps_agree(p0: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> float:
    """torch's step against fusedopt's, from ``p0``: to 2e-3 of the largest move. torch
    sums float32 in float32: its RMS(p) of 2^24 standard normals is ~7e-4 low (fusedopt's
    float64 sums are exact to ~1e-16), and alpha scales the whole step by it. Returns the
    largest difference over the largest move."""
    moved = float(np.max(np.abs(ours - p0)))
    np.testing.assert_allclose(ours - p0, theirs - p0, rtol=0, atol=2e-3 * moved)
    return float(np.max(np.abs(ours - theirs))) / moved


def check(torch: Any | None, shape: tuple[int, ...]) -> str:
    """Two steps of each implementation from the same start must agree (fused and NumPy
    to float32 rounding; torch to its float32 sums); returns a summary."""
    p0, g = problem(shape, seed=1)
    fused, ref = p0.copy(), p0.copy()
    for p, backend in ((fused, "fused"), (ref, "numpy")):
        step = fused_step(p, g, backend)
        step()
        step()
    np.testing.assert_allclose(fused, ref, rtol=1e-5, atol=1e-6)
    line = f"check: fused vs NumPy max |diff| {np.max(np.abs(fused - ref)):.2e}"
    if torch is not None:
        theirs = p0.copy()
        step = torch_step(torch, theirs, g)
        step()
        step()
        line += f", vs torch {assert_steps_agree(p0, fused, theirs):.1e} of the largest move"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs="+", default=[4096, 4096])
    ap.add_argument("--repeats", type=int, default=15, help="rounds (default 15)")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, fo.get_num_threads()}))
    ap.add_argument("--no-numpy", action="store_true", help="leave out the NumPy reference")
    args = ap.parse_args(argv)
    shape = tuple(args.shape)
    torch = bench.torch_module()
    print(f"Adafactor, one float32 parameter of shape {shape} ({np.prod(shape):,} elements)")
    print(check(torch, shape))
    torch_before = torch.get_num_threads() if torch is not None else None
    fo_before = fo.get_num_threads()
    p0, g = problem(shape)
    rows = []
    try:
        for n in args.threads:
            fo.set_num_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            cases = [Timed("fused", "fused", fused_step(p0.copy(), g))]
            if torch is not None:
                cases.append(Timed("torch", "torch", torch_step(torch, p0.copy(), g)))
            if not args.no_numpy:
                cases.append(Timed("numpy", "numpy", fused_step(p0.copy(), g, "numpy")))
            run_rounds(cases, args.repeats, args.min_time)
            fused = cases[0]
            for c in cases:
                speedup = "" if c is fused else f"{ratio(c, fused):.2f}x"
                rows.append((n, c.name, c.median * 1e3, speedup))
    finally:
        fo.set_num_threads(fo_before)
        if torch is not None:
            torch.set_num_threads(torch_before)
    print(f"{'threads':>7}  {'impl':<6} {'median ms':>10}  {'fused is faster by':>18}")
    for n, name, ms, speedup in rows:
        print(f"{n:>7}  {name:<6} {ms:>10.2f}  {speedup:>18}")
    if torch is None:
        print("torch is not installed: its column is left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
