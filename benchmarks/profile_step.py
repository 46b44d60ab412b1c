"""Steps one optimizer over one tensor many times, for a profiler to watch.

    python benchmarks/profile_step.py Adadelta 8192 float64 200000
    perf record -e cpu-clock python benchmarks/profile_step.py Adam 33554432 float32 50

Prints the time per element; runs on one thread (``fusedopt.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fusedopt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("optimizer", help="class name, e.g. Adam, Adadelta")
    ap.add_argument("numel", type=int, help="elements of the one tensor")
    ap.add_argument("dtype", choices=["float32", "float64"])
    ap.add_argument("steps", type=int, help="steps to time")
    args = ap.parse_args()
    fusedopt.set_num_threads(1)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(args.numel).astype(args.dtype)
    g = (rng.standard_normal(args.numel) * 0.1).astype(args.dtype)
    opt = getattr(fusedopt, args.optimizer)([p])
    opt.step([g])  # creates the state
    t0 = time.perf_counter()
    for _ in range(args.steps):
        opt.step([g])
    ns = (time.perf_counter() - t0) / args.steps / args.numel * 1e9
    print(f"{args.optimizer} {args.numel} {args.dtype}: {ns:.3f} ns per element per step")


if __name__ == "__main__":
    main()
