"""Muon's step against its own matrix products timed alone, and against torch.optim.Muon.

The issue's goal: "Muon's step on a 1024x1024 and a 1024x4096 float32 parameter <= 1.2x
the time of its own matrix products timed alone with the same BLAS". For each shape:

* ``fused``: ``fusedopt.Muon(ns_dtype="float32")``'s step (momentum, Nesterov, 5
  Newton–Schulz iterations, decay, update);
* ``products``: the 15 matrix products of those 5 iterations alone (``X X^T``, ``G G``,
  ``B X`` into preallocated buffers with ``numpy.matmul(out=)``: the same BLAS calls);
* ``numpy``: the reference backend (``fusedopt.reference.muon``);
* ``bf16``: the fused step with ``ns_dtype="bfloat16"`` (the emulated rounding costs
  element-wise passes);
* ``torch``: ``torch.optim.Muon`` (its iteration in bfloat16), when torch is installed;
  timed once, after the rounds (bfloat16 products on a CPU without bfloat16 units take
  tens of seconds: 39 s for 1024x1024 on the 2-core development machine).

Cases are timed in rounds, the order rotated each round; figures are medians, and the
ratio ``fused / products`` is the median of the per-round ratios::

    python benchmarks/muon_speed.py                 # both shapes, 9 rounds
    python benchmarks/muon_speed.py --repeats 3 --shapes 256x256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt as fo

NS_STEPS = 5


def products(shape: tuple[int, int]) -> Callable[[], Any]:
    """The step's matrix products alone, on buffers of the step's shapes."""
    m, n = min(shape), max(shape)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((m, n)) / np.sqrt(n)).astype(np.float32)
    x2 = np.empty_like(x)
    gram = np.empty((m, m), np.float32)
    gram2 = np.empty_like(gram)

    def run() -> None:
        for _ in range(NS_STEPS):
            np.matmul(x, x.T, out=gram)
            np.matmul(gram, gram, out=gram2)
            np.matmul(gram2, x, out=x2)

    return run


def fusedopt_step(shape: tuple[int, int], backend: str, ns_dtype: str) -> Callable[[], Any]:
    rng = np.random.default_rng(1)
    w = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    opt = fo.Muon([w], lr=1e-3, backend=backend, ns_dtype=ns_dtype)
    return lambda: opt.step([g])


def torch_step(shape: tuple[int, int]) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    rng = np.random.default_rng(1)
    w = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)))
    w.grad = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    opt = torch.optim.Muon([w], lr=1e-3)
    return opt.step


def time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", nargs="+", default=["1024x1024", "1024x4096"])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--no-torch", action="store_true", help="skip torch.optim.Muon")
    args = p.parse_args(argv)
    out: dict[str, dict[str, float]] = {}
    print(
        f"Muon step, float32, {NS_STEPS} Newton–Schulz steps, {fo.get_num_threads()} "
        f"threads (BLAS: numpy's), median of {args.repeats} rounds"
    )
    print(f"{'shape':<12}{'case':<10}{'ms':>10}{'vs products':>13}")
    for spec in args.shapes:
        r, c = (int(v) for v in spec.split("x"))
        cases: dict[str, Callable[[], Any]] = {
            "products": products((r, c)),
            "fused": fusedopt_step((r, c), "fused", "float32"),
            "bf16": fusedopt_step((r, c), "fused", "bfloat16"),
            "numpy": fusedopt_step((r, c), "numpy", "float32"),
        }
        for fn in cases.values():
            fn()  # warm-up: buffers, BLAS threads
        samples: dict[str, list[float]] = {k: [] for k in cases}
        names = list(cases)
        for k in range(args.repeats):
            for name in names[k % len(names) :] + names[: k % len(names)]:
                samples[name].append(time_once(cases[name]))
        med = {k: statistics.median(v) for k, v in samples.items()}
        t = None if args.no_torch else torch_step((r, c))
        if t is not None:  # bfloat16 matmuls on a CPU without bf16 units: seconds; once
            names.append("torch")
            med["torch"] = time_once(t)
        ratio = statistics.median(
            f / p_ for f, p_ in zip(samples["fused"], samples["products"], strict=True)
        )
        for name in names:
            print(
                f"{spec:<12}{name:<10}{med[name] * 1e3:>10.2f}{med[name] / med['products']:>13.2f}"
            )
        print(f"{spec:<12}fused / products (paired median): {ratio:.3f}  (goal <= 1.2)")
        out[spec] = {**med, "ratio": ratio}
    return out


if __name__ == "__main__":
    main()
