"""Gradient clipping, timed against its yardsticks in one interleaved run (issue 13).

Three groups of cases, each timed in rounds (A B C ... A B C ..., the order rotated every
round) so that the noise of a shared machine hits every case alike; a case's figure is
the median over the rounds, and a ratio is the median of the ratios within each round.

``big`` (one tensor of 2^k float32 elements, ``--size-log2``, default 25):

* Adam without clipping, with ``track_grad_norm`` (the norm pass, no scale), and with
  ``max_grad_norm=1.0`` (the grads' norm is ~0.1 * sqrt(2^k), so every step clips; the
  grads are not written, so it stays so); and the norm pass alone (``get_total_norm``).
  Goal: Adam with ``max_grad_norm`` <= 1.25x Adam without, on 1 thread.
* ``clip_grad_norm_`` clipping at every call (``max_norm`` = 0.999 of the grads' norm
  at that call: a factor of 0.999 each time, the grads restored from a copy if they ever
  shrank 100x), and with ``max_norm`` = 1e9 (no clipping: the read pass only).
* Yardsticks from ``fusedopt._core.traffic`` through the same parallel loop: a read and
  write of the grads (``traffic([g], [], 1.0)``: g = g * 1.0), and the cost of reading
  one array, ``traffic([a], [g]) - traffic([a], [])`` (2R1W minus 1R1W in the same
  round; ``a`` staggered within a page, ``bench.apart``). Goal: ``clip_grad_norm_``
  within 10% of the read-and-write sweep.

``small`` (1000 tensors of 256 float32 elements, and the 160-tensor model of
``fusedopt.bench.model_case``): fusedopt's Adam with and without ``max_grad_norm=1.0``
against ``torch.nn.utils.clip_grad_norm_(params, 1.0)`` + ``torch.optim.Adam(fused=True)
.step()`` and torch's Adam alone, on their own copies of the same arrays (torch's clip
writes its grads; it multiplies them by its clamped factor at every call, whatever the
factor, so its work is that of a clipping step). Before timing, one step of each from
the same start is compared. Goals: >= 10x (1000x256) and >= 1.3x (model) faster than
torch's clip + fused Adam. Skipped without PyTorch.

Every group runs at each ``--threads`` count (default: 1 and fusedopt's default), torch
set alike (``torch.set_num_threads``)::

    python benchmarks/clip_speed.py                       # everything, 20 rounds
    python benchmarks/clip_speed.py --repeats 30 --threads 1
    python benchmarks/clip_speed.py --only small --size-log2 20
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
from typing import Any

import numpy as np
from timing import Timed, paired, parse_threads, print_ratios, run_rounds

import fusedopt as fo
from fusedopt import _core, bench

MAX_NORM = 1.0  # the optimizers' max_grad_norm and torch's clip, as in the issue
NO_CLIP = 1e9  # a max_norm above any norm here: clip_grad_norm_ reads and writes nothing


# --------------------------------------------------------------------------- cases
class ActiveClip:
    """``fo.clip_grad_norm_`` that clips at every call: ``max_norm`` is 0.999 of the norm
    the previous call left (known from its result), so each call scales the grads by
    ~0.999; when they have shrunk 100x they are restored from a copy (every ~4600 calls).
    ``clipped`` counts the calls whose norm was above ``max_norm``."""

    FACTOR = 0.999

    def __init__(self, grads: list[np.ndarray]) -> None:
        self.grads = grads
        self.initial = [g.copy() for g in grads]
        self.start = fo.get_total_norm(grads)
        self.target = self.FACTOR * self.start
        self.calls = self.clipped = 0

    def __call__(self) -> float:
        if self.target < 1e-2 * self.start:
            for g, g0 in zip(self.grads, self.initial, strict=True):
                np.copyto(g, g0)
            self.target = self.FACTOR * self.start
        norm = fo.clip_grad_norm_(self.grads, self.target)
        self.calls += 1
        self.clipped += norm > self.target
        left = norm * min(self.target / (norm + 1e-6), 1.0)  # the norm after this call
        self.target = self.FACTOR * left
        return norm


def adam_switch(opt: fo.Adam, grads: list[np.ndarray], max_norm: float | None, track: bool):
    """One step of ``opt`` with the given clipping settings (the same optimizer and state
    for every setting, so that the arrays are the same)."""

    def step() -> None:
        opt.max_grad_norm = max_norm
        opt.track_grad_norm = track
        opt.step(grads)

    return step


class TorchStep:
    """``torch.optim.Adam(fused=True)`` over its own copies of the arrays, optionally after
    ``torch.nn.utils.clip_grad_norm_(params, MAX_NORM)``."""

    def __init__(self, torch: Any, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.torch = torch
        self.params = [p.copy() for p in params]
        self.grads = [g.copy() for g in grads]
        self.tensors = [torch.from_numpy(p) for p in self.params]
        for t, g in zip(self.tensors, self.grads, strict=True):
            t.grad = torch.from_numpy(g)
        self.opt = torch.optim.Adam(self.tensors, lr=1e-3, fused=True)

    def clip_step(self) -> None:
        self.torch.nn.utils.clip_grad_norm_(self.tensors, MAX_NORM)
        self.opt.step()

    def step(self) -> None:
        self.opt.step()


def check_against_torch(torch: Any, case: bench.Case) -> str:
    """One step of fusedopt's Adam(max_grad_norm) and of torch's clip + fused Adam from the
    same start: the norms and the parameters must agree. Returns a one-line summary."""
    params, grads = bench.make_arrays(case, "float32", seed=1)
    mine = [p.copy() for p in params]
    opt = fo.Adam(mine, lr=1e-3, max_grad_norm=MAX_NORM)
    opt.step(grads)
    theirs = TorchStep(torch, params, grads)
    torch_norm = float(theirs.torch.nn.utils.clip_grad_norm_(theirs.tensors, MAX_NORM))
    theirs.opt.step()
    norm = opt.last_grad_norm
    exact = math.sqrt(sum(float(np.vdot(x, x)) for x in (g.astype(np.float64) for g in grads)))
    assert norm > MAX_NORM, f"{case.name}: the grads' norm {norm} does not call for clipping"
    # fusedopt sums in float64; torch sums float32 grads in float32 (~1e-5 off at 1e7 elements)
    assert abs(norm - exact) <= 1e-9 * exact, f"{case.name}: norm {norm}, exactly {exact}"
    assert abs(torch_norm - exact) <= 1e-4 * exact, f"{case.name}: torch's norm {torch_norm}"
    for i, (a, b) in enumerate(zip(mine, theirs.params, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=f"{case.name} param {i}")
    return f"{case.name}: norm {norm:.6g} (torch {torch_norm:.6g}), params agree"


# --------------------------------------------------------------------------- groups
def big_group(k: int) -> tuple[list[Timed], dict[str, Any]]:
    """The 2^k cases (see the module docstring) and what the checks need."""
    n = 1 << k
    rng = np.random.default_rng(0)
    f32 = np.float32
    params = [rng.standard_normal(n, dtype=f32)]
    grads = [rng.standard_normal(n, dtype=f32) * f32(0.1)]
    clip_grads = [grads[0].copy()]  # clip_grad_norm_ writes its grads: not Adam's
    other = bench.apart(n, f32, 1)  # the in-place array of the read yardstick
    opt = fo.Adam(params, lr=1e-3)
    opt.step(grads)  # the state, outside the timing
    clip = ActiveClip(clip_grads)
    g = clip_grads[0]
    b = 4 * n  # bytes of one pass over one array
    cases = [
        Timed("adam", "adam", adam_switch(opt, grads, None, False), 7 * b),
        Timed(
            "track",
            "adam track_grad_norm=True (norm pass, no scale)",
            adam_switch(opt, grads, None, True),
            8 * b,
        ),
        Timed(
            "adam_clip",
            f"adam max_grad_norm={MAX_NORM} (clipping)",
            adam_switch(opt, grads, MAX_NORM, False),
            8 * b,
        ),
        Timed("norm", "get_total_norm(g) (the norm pass)", lambda: fo.get_total_norm(grads), b),
        Timed("clip", "clip_grad_norm_ clipping", clip, 3 * b),
        Timed(
            "noclip",
            f"clip_grad_norm_ max_norm={NO_CLIP:g} (no clip)",
            lambda: fo.clip_grad_norm_(g, NO_CLIP),
            b,
        ),
        Timed(
            "rw",
            "traffic([g], []): g read+write, 1R1W",
            lambda: _core.traffic([g], [], 1.0, 1),
            2 * b,
        ),
        Timed(
            "r2w1", "traffic([a], [g]): 2R1W", lambda: _core.traffic([other], [g], 0.5, 1), 3 * b
        ),
        Timed("r1w1", "traffic([a], []): 1R1W", lambda: _core.traffic([other], [], 1.0, 1), 2 * b),
    ]
    return cases, {"opt": opt, "clip": clip}


def big_ratios(cases: list[Timed], threads: int) -> list[tuple[str, float, str, bool | None]]:
    """(what, value, goal, met) for the 2^k group."""
    c = {x.key: x for x in cases}
    adam, track, clipped, norm = c["adam"], c["track"], c["adam_clip"], c["norm"]
    clip, noclip, rw, r2w1, r1w1 = c["clip"], c["noclip"], c["rw"], c["r2w1"], c["r1w1"]
    r_clip = paired(lambda a, b: a / b, clipped, adam)
    r_rw = paired(lambda a, b: a / b, clip, rw)
    rows: list[tuple[str, float, str, bool | None]] = [
        (
            "adam max_grad_norm / adam",
            r_clip,
            "<= 1.25x (1 thread)",
            r_clip <= 1.25 if threads == 1 else None,
        ),
        (
            "adam track_grad_norm / adam (norm pass, no scale)",
            paired(lambda a, b: a / b, track, adam),
            "",
            None,
        ),
        (
            "(adam + read sweep yardstick) / adam: the floor of a separate read pass",
            paired(lambda a, y, z: (a + y - z) / a, adam, r2w1, r1w1),
            "",
            None,
        ),
        (
            "(adam + get_total_norm) / adam: two separate passes",
            paired(lambda a, n: (a + n) / a, adam, norm),
            "",
            None,
        ),
        (
            "adam max_grad_norm / (adam + get_total_norm)",
            paired(lambda x, a, n: x / (a + n), clipped, adam, norm),
            "",
            None,
        ),
        ("clip_grad_norm_ / read+write sweep", r_rw, "<= 1.10x", r_rw <= 1.10),
        (
            "read sweep yardstick (2R1W - 1R1W) / read+write sweep",
            paired(lambda x, y, z: (x - y) / z, r2w1, r1w1, rw),
            "",
            None,
        ),
        (
            "clip_grad_norm_ / (read sweep + read+write sweep)",
            paired(lambda x, y, z, w: x / (y - z + w), clip, r2w1, r1w1, rw),
            "",
            None,
        ),
        (
            "clip_grad_norm_ / (get_total_norm + read+write sweep)",
            paired(lambda x, n, w: x / (n + w), clip, norm, rw),
            "",
            None,
        ),
        (
            "get_total_norm / read sweep yardstick",
            paired(lambda n, y, z: n / (y - z), norm, r2w1, r1w1),
            "",
            None,
        ),
        (
            "clip_grad_norm_ no clip / read sweep yardstick",
            paired(lambda n, y, z: n / (y - z), noclip, r2w1, r1w1),
            "",
            None,
        ),
        (
            "clip_grad_norm_ no clip / get_total_norm",
            paired(lambda a, b: a / b, noclip, norm),
            "",
            None,
        ),
    ]
    return rows


def small_group(torch: Any, case: bench.Case) -> list[Timed]:
    params, grads = bench.make_arrays(case, "float32")
    mine = [p.copy() for p in params]
    opt = fo.Adam(mine, lr=1e-3)
    opt.step(grads)
    theirs = TorchStep(torch, params, grads)
    theirs.clip_step()
    b = 4 * case.numel
    return [
        Timed("fadam", "fusedopt adam", adam_switch(opt, grads, None, False), 7 * b),
        Timed(
            "fclip",
            f"fusedopt adam max_grad_norm={MAX_NORM}",
            adam_switch(opt, grads, MAX_NORM, False),
            8 * b,
        ),
        Timed("tadam", "torch adam fused", theirs.step, 7 * b),
        Timed("tclip", f"torch clip_grad_norm_({MAX_NORM}) + adam fused", theirs.clip_step, 10 * b),
    ]


def small_ratios(cases: list[Timed], case: bench.Case) -> list[tuple[str, float, str, bool | None]]:
    c = {x.key: x for x in cases}
    fadam, fclip, tadam, tclip = c["fadam"], c["fclip"], c["tadam"], c["tclip"]
    goal = 10.0 if case.name.startswith("1000x") else 1.3
    speedup = paired(lambda t, f: t / f, tclip, fclip)
    return [
        (
            "torch clip+adam / fusedopt adam max_grad_norm",
            speedup,
            f">= {goal:g}x",
            speedup >= goal,
        ),
        (
            "torch adam / fusedopt adam (no clipping)",
            paired(lambda t, f: t / f, tadam, fadam),
            "",
            None,
        ),
        ("fusedopt: adam max_grad_norm / adam", paired(lambda a, b: a / b, fclip, fadam), "", None),
        ("torch: clip+adam / adam", paired(lambda a, b: a / b, tclip, tadam), "", None),
    ]


# --------------------------------------------------------------------------- output
def print_cases(cases: list[Timed]) -> None:
    print("| case | median | IQR | GB/s | calls per sample |")
    print("|---|---|---|---|---|")
    for c in cases:
        gbs = f"{c.nbytes / c.median / 1e9:.1f}" if c.nbytes else "-"
        print(
            f"| {c.name} | {bench.format_time(c.median)} | {100 * c.spread():.0f}% | {gbs} "
            f"| {c.number} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_threads = fo.get_num_threads()
    parser.add_argument("--repeats", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--size-log2", type=int, default=25, help="big case: 2^k (default 25)")
    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=sorted({1, default_threads}),
        help=f"comma-separated thread counts (default 1,{default_threads})",
    )
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per sample, at least (default 0.05)"
    )
    parser.add_argument("--only", choices=("big", "small"), help="run one group only")
    args = parser.parse_args(argv)

    torch = bench.torch_module()
    info = fo.build_info()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"fusedopt {fo.__version__} (target {info.get('target')}, {info.get('threads')} threads), "
        f"NumPy {np.__version__}, PyTorch {getattr(torch, '__version__', 'not installed')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs ({bench.machine_info()['cpu']})"
    )
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(f"load average at start: {load0}")
    print(f"{args.repeats} rounds, samples >= {args.min_time:g} s; float32; threads {args.threads}")

    if args.only in (None, "big"):
        cases, state = big_group(args.size_log2)
        for n in args.threads:
            fo.set_num_threads(n)
            run_rounds(cases, args.repeats, args.min_time)
            opt, clip = state["opt"], state["clip"]
            assert opt.last_grad_norm > MAX_NORM  # the last step ran with clipping on
            title = f"2^{args.size_log2} float32, {n} thread(s)"
            print(f"\n### {title}\n")
            print_cases(cases)
            print(f"\nclip_grad_norm_ clipped in {clip.clipped} of {clip.calls} calls\n")
            print_ratios(big_ratios(cases, n))
            sys.stdout.flush()
        del cases, state
        gc.collect()

    if args.only in (None, "small"):
        if torch is None:
            print("\nPyTorch is not installed: the comparisons with torch are skipped.")
        else:
            for case in (bench.many_case(), bench.model_case()):
                print(f"\ncheck: {check_against_torch(torch, case)}")
                cases = small_group(torch, case)
                for n in args.threads:
                    fo.set_num_threads(n)
                    torch.set_num_threads(n)
                    run_rounds(cases, args.repeats, args.min_time)
                    print(f"\n### {case.name} float32, {n} thread(s)\n")
                    print_cases(cases)
                    print()
                    print_ratios(small_ratios(cases, case))
                    sys.stdout.flush()
                del cases
                gc.collect()
    fo.set_num_threads(default_threads)
    if load0 is not None:
        print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
