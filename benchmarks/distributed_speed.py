"""fusedopt.distributed on the 160-tensor model (11.18 M float32 parameters), 2+ MPI ranks.

The issue's goals, measured in one run:

* ``allreduce_grads`` on the model's 160 grads >= 90% of the speed of mpi4py's
  ``Allreduce`` of one flat buffer of the same bytes. Also timed: the same reduction by
  hand, packing the grads into a buffer (``np.concatenate``) and unpacking it, and one
  ``Allreduce`` per tensor (160 messages);
* ZeRO-1 (``ZeroRedundancyOptimizer`` over Adam): the optimizer state per rank <= 55% of
  one process's;
* a 2-rank ZeRO step of the model <= 1.5x the single-process fused Adam step; the step is
  split into its parts: the shard's fused step alone (both ranks at once, as in the ZeRO
  step) and the rest, communication (reduce-scatter, global agreement, all-gather).

The single-process step is timed on rank 0 while the other ranks wait without spinning,
with 1 thread and with all the cores (fusedopt's default); the ranks' ZeRO steps run
with 1 thread each (N ranks on N cores). Run with the ranks unbound, so that the
single-process step can use every core::

    mpirun -n 2 --bind-to none python benchmarks/distributed_speed.py
    mpirun -n 2 --bind-to none python benchmarks/distributed_speed.py --repeats 5 --json out.json

Each case is timed in rounds, the order rotated every round; every sample starts after a
barrier and ends when the slowest rank is done (a second barrier); figures are medians
over the rounds, and each ratio the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

import fusedopt as fo
from fusedopt.bench import model_case
from fusedopt.distributed import ZeroRedundancyOptimizer, allreduce_grads, state_nbytes

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()


def say(*args: Any) -> None:
    if RANK == 0:
        print(*args, flush=True)


def timed(fn: Callable[[], Any]) -> float:
    """One collective sample: barrier, the call, barrier (the slowest rank's time)."""
    COMM.Barrier()
    t0 = time.perf_counter()
    fn()
    COMM.Barrier()
    return time.perf_counter() - t0


def rounds(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """``repeats`` rounds of every case (one warm-up call each first), order rotated."""
    names = list(cases)
    for fn in cases.values():
        timed(fn)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            out[n].append(timed(cases[n]))
    return out


def quiet_wait() -> None:
    """The ranks other than 0 wait here without spinning (MPI's barrier would spin)."""
    req = COMM.Ibarrier()
    while not req.Test():
        time.sleep(0.002)


def single_step_times(
    params: list[np.ndarray], grads: list[np.ndarray], repeats: int
) -> dict[str, float]:
    """Median single-process fused Adam step on rank 0 at 1 thread and all threads."""
    out: dict[str, float] = {}
    if RANK == 0:
        opt = fo.Adam([p.copy() for p in params], lr=1e-3)
        old = fo.get_num_threads()
        for threads in (1, os.cpu_count() or 1):
            fo.set_num_threads(threads)
            opt.step(grads)
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                opt.step(grads)
                samples.append(time.perf_counter() - t0)
            out[f"single step, {threads} thread{'s' if threads > 1 else ''}"] = statistics.median(
                samples
            )
        fo.set_num_threads(old)
        quiet_wait()
    else:
        quiet_wait()
    return COMM.bcast(out, root=0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=15, help="rounds (default 15)")
    ap.add_argument("--json", default=None, help="also write the figures to this file (rank 0)")
    ap.add_argument(
        "--buckets",
        default="",
        help="also time allreduce_grads with these bucket sizes, MiB, comma-separated "
        "(default: only fusedopt.distributed.BUCKET_BYTES)",
    )
    args = ap.parse_args()
    shapes = model_case().shapes
    rng = np.random.default_rng(RANK)
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    n = sum(g.size for g in grads)
    nbytes = 4 * n
    library = MPI.Get_library_version().splitlines()[0][:40]
    say(
        f"{SIZE} ranks, model-160: {len(shapes)} tensors, {n:,} float32 "
        f"({nbytes / 2**20:.1f} MiB); {os.cpu_count()} cores; {library}"
    )

    # ------------------------------------------------------------ allreduce
    fo.set_num_threads(1)
    flat = np.ones(n, np.float32)
    packed_buf = np.empty(n, np.float32)

    def packed() -> None:
        np.concatenate([g.reshape(-1) for g in grads], out=packed_buf)
        COMM.Allreduce(MPI.IN_PLACE, packed_buf)
        np.divide(packed_buf, SIZE, out=packed_buf)
        at = 0
        for g in grads:
            g.reshape(-1)[:] = packed_buf[at : at + g.size]
            at += g.size

    def per_tensor() -> None:
        for g in grads:
            COMM.Allreduce(MPI.IN_PLACE, g)
            g /= SIZE

    cases = {
        "flat Allreduce (one buffer)": lambda: COMM.Allreduce(MPI.IN_PLACE, flat),
        "allreduce_grads": lambda: allreduce_grads(grads),
        "pack + Allreduce + unpack": packed,
        "Allreduce per tensor": per_tensor,
    }
    for mib in filter(None, args.buckets.split(",")):
        size = int(float(mib) * 2**20)
        cases[f"allreduce_grads, {mib} MiB buckets"] = lambda size=size: allreduce_grads(
            grads, bucket_bytes=size
        )
    samples = rounds(cases, args.repeats)
    flat_s = samples["flat Allreduce (one buffer)"]
    say(
        f"\nallreduce of the 160 grads ({args.repeats} rounds; "
        "speed = the flat Allreduce's time / the case's)"
    )
    say(f"{'case':32} {'median':>10} {'GB/s':>7} {'speed':>7}")
    figures: dict[str, Any] = {"ranks": SIZE, "bytes": nbytes}
    for name, ts in samples.items():
        med = statistics.median(ts)
        speed = statistics.median(f / t for f, t in zip(flat_s, ts, strict=True))
        figures[name] = {"median_s": med, "vs_flat": speed}
        say(f"{name:32} {med * 1e3:8.2f} ms {nbytes / med / 1e9:7.2f} {speed:7.0%}")

    # ------------------------------------------------------------------ ZeRO
    prng = np.random.default_rng(1234)  # the same parameters on every rank
    params = [prng.standard_normal(s).astype(np.float32) for s in shapes]
    single = single_step_times(params, grads, args.repeats)
    zero_params = [p.copy() for p in params]
    zero = ZeroRedundancyOptimizer(zero_params, fo.Adam, lr=1e-3)
    zero.step(grads)
    shard = zero._local_grads
    assert zero.optim is not None
    local = zero.optim
    zcases = {
        "ZeRO step": lambda: zero.step(grads),
        "its shard's fused step alone": lambda: local.step(shard),
    }
    zs = rounds(zcases, args.repeats)
    step_med = statistics.median(zs["ZeRO step"])
    local_med = statistics.median(zs["its shard's fused step alone"])
    say(f"\nZeRO-1 Adam step, {SIZE} ranks x 1 thread ({args.repeats} rounds)")
    for name, t in single.items():
        say(f"  {name:34} {t * 1e3:8.2f} ms")
        figures[name] = t
    say(f"  {'ZeRO step':34} {step_med * 1e3:8.2f} ms")
    say(f"    {'the shards fused steps (at once)':32} {local_med * 1e3:8.2f} ms")
    say(f"    {'communication and the rest':32} {(step_med - local_med) * 1e3:8.2f} ms")
    for name, t in single.items():
        say(f"  ZeRO step / {name}: {step_med / t:.2f}x")
    figures["zero step"] = step_med
    figures["zero local step"] = local_med

    mine = state_nbytes(zero)
    per_rank = COMM.allgather(mine)
    single_state = 0
    if RANK == 0:
        one = fo.Adam([p.copy() for p in params], lr=1e-3)
        one.step(grads)
        single_state = state_nbytes(one)
        del one
    single_state = COMM.bcast(single_state, root=0)
    say(f"\noptimizer state: one process {single_state / 2**20:.1f} MiB")
    for q, b in enumerate(per_rank):
        say(f"  rank {q}: {b / 2**20:.1f} MiB = {b / single_state:.1%} of one process's")
    figures["state per rank"] = per_rank
    figures["state one process"] = single_state
    if RANK == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
