"""SGDScheduleFree and AdamWScheduleFree: fusedopt's fused step against its NumPy
reference and the ``schedulefree`` package (1.4.1, on torch, its default ``foreach``
path), timed in interleaved rounds (A B C, A B C, ...; the order rotated every round) so
that a shared machine's noise hits every case alike. A case's figure is the median over
the rounds; a ratio is the median of the ratios within each round.

The case: ``--count`` tensors of ``--size`` float32 elements (default 1000 x 256), all in
train mode, the same grads at every step (each implementation steps its own copy; the
package writes its grads, dividing them in place: as in a training loop, where the next
backward overwrites them). Before timing, the three are run from the same start for 3
steps with an eval() / train() round trip and compared (fused == reference to the bit;
the package to float32 tolerance). Goal: each fused step >= 10x faster than the
package's on 1000 x 256 on 1 thread.

    python benchmarks/schedulefree_speed.py                         # 20 rounds, 1 and all threads
    python benchmarks/schedulefree_speed.py --repeats 5 --threads 1   # smoke
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt as fo

CLASSES: dict[str, type[fo.Optimizer]] = {
    "SGDScheduleFree": fo.SGDScheduleFree,
    "AdamWScheduleFree": fo.AdamWScheduleFree,
}
KWARGS: dict[str, dict[str, Any]] = {
    "SGDScheduleFree": dict(lr=0.1, weight_decay=1e-4, warmup_steps=10),
    "AdamWScheduleFree": dict(lr=1e-3, weight_decay=1e-4, warmup_steps=10),
}


def make_case(count: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(size).astype(np.float32) for _ in range(count)]
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(count)]
    return params, grads


def schedulefree_module() -> Any | None:
    """The ``schedulefree`` package (it needs torch), or None."""
    try:
        import schedulefree
    except ImportError:
        return None
    return schedulefree


def fusedopt_step(
    name: str, params: list[np.ndarray], grads: list[np.ndarray], backend: str
) -> Callable[[], None]:
    ps = [p.copy() for p in params]
    opt = CLASSES[name](ps, backend=backend, **KWARGS[name])
    opt.train()
    return lambda: opt.step(grads)


def package_step(
    name: str, params: list[np.ndarray], grads: list[np.ndarray]
) -> Callable[[], None] | None:
    sf = schedulefree_module()
    if sf is None:
        return None
    import torch

    ts = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    for t, g in zip(ts, grads, strict=True):
        t.grad = torch.tensor(g.copy())
    opt = getattr(sf, name)(ts, **KWARGS[name])
    opt.train()
    return opt.step


def check(name: str, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
    """Three steps and an eval() / train() round trip from the same start: fused ==
    reference to the bit, the package to float32 tolerance (fresh grads at each step)."""
    outs = []
    for backend in ("fused", "numpy"):
        ps = [p.copy() for p in params]
        opt = CLASSES[name](ps, backend=backend, **KWARGS[name])
        opt.train()
        for k in range(3):
            opt.step(grads)
            if k == 1:
                opt.eval()
                opt.train()
        opt.eval()
        outs.append(ps)
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a, b), f"{name}: fused and reference differ"
    sf = schedulefree_module()
    if sf is None:
        return
    import torch

    ts = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = getattr(sf, name)(ts, **KWARGS[name])
    opt.train()
    for k in range(3):
        for t, g in zip(ts, grads, strict=True):
            t.grad = torch.tensor(g.copy())
        opt.step()
        if k == 1:
            opt.eval()
            opt.train()
    opt.eval()
    for a, t in zip(outs[0], ts, strict=True):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def batch(fn: Callable[[], None], number: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(number):
            fn()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--number", type=int, default=5, help="steps per sample")
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    ap.add_argument("--optimizers", nargs="*", default=list(CLASSES), choices=list(CLASSES))
    args = ap.parse_args()
    params, grads = make_case(args.count, args.size)
    threads = args.threads or sorted({1, fo.get_num_threads()})
    if schedulefree_module() is None:
        print("(the schedulefree package or torch is not installed: no package timings)")
    print(
        f"{args.count} tensors of {args.size} float32, medians of {args.repeats} rounds "
        f"of {args.number} steps"
    )
    print(f"{'threads':>7} {'case':<34} {'median us/step':>14} {'vs fused':>9}")
    for name in args.optimizers:
        check(name, params, grads)
        for n in threads:
            fo.set_num_threads(n)
            if schedulefree_module() is not None:
                import torch

                torch.set_num_threads(n)
            cases = {
                f"{name} fused": fusedopt_step(name, params, grads, "fused"),
                f"{name} numpy": fusedopt_step(name, params, grads, "numpy"),
            }
            theirs = package_step(name, params, grads)
            if theirs is not None:
                cases[f"{name} schedulefree"] = theirs
            for fn in cases.values():  # warm up (state created, caches)
                fn()
            runs = {k: batch(fn, args.number) for k, fn in cases.items()}
            times: dict[str, list[float]] = {k: [] for k in cases}
            names = list(cases)
            for r in range(args.repeats):
                for k in names[r % len(names) :] + names[: r % len(names)]:
                    t0 = time.perf_counter()
                    runs[k]()
                    times[k].append((time.perf_counter() - t0) / args.number)
            base = times[f"{name} fused"]
            for k in names:
                ratio = statistics.median(a / b for a, b in zip(times[k], base, strict=True))
                print(f"{n:>7} {k:<34} {statistics.median(times[k]) * 1e6:>14.1f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
