"""SparseAdam on an embedding: fusedopt's fused step against its NumPy reference and
torch.optim.SparseAdam, timed in interleaved rounds (A B C, A B C, ...; the order rotated
every round) so that a shared machine's noise hits every case alike. A case's figure is
the median over the rounds; a ratio is the median of the ratios within each round.

The case: an embedding of ``--rows`` x ``--dim`` float32 (default 10^6 x 64) and a
RowGrad of ``--touched`` rows (default 4096) drawn with repeats (about 4 % repeats),
the same grad for every step (each optimizer keeps stepping its own copy). Before timing,
the three are run from the same start for 3 steps and compared (fused == reference to
the bit; torch to a few ulps).

    python benchmarks/sparse_adam_speed.py                    # 15 rounds, 1 and all threads
    python benchmarks/sparse_adam_speed.py --repeats 5 --rows 100000 --threads 1   # smoke
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

import fusedopt as fo


def make_case(rows: int, dim: int, touched: int, seed: int = 0) -> tuple[np.ndarray, fo.RowGrad]:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((rows, dim)).astype(np.float32)
    idx = rng.integers(0, rows, touched)
    idx[: touched // 25] = idx[touched // 25 : 2 * (touched // 25)]  # ~4 % repeats
    grad = fo.RowGrad(idx, rng.standard_normal((touched, dim)).astype(np.float32))
    return emb, grad


def fusedopt_step(emb: np.ndarray, grad: fo.RowGrad, backend: str) -> Callable[[], None]:
    p = emb.copy()
    opt = fo.SparseAdam([p], lr=1e-3, backend=backend)
    return lambda: opt.step([grad])


def torch_step(emb: np.ndarray, grad: fo.RowGrad) -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        return None
    p = torch.tensor(emb.copy(), requires_grad=True)
    opt = torch.optim.SparseAdam([p], lr=1e-3)
    idx = torch.tensor(np.asarray(grad.indices, np.int64))[None]
    vals = torch.tensor(grad.rows)

    def step() -> None:
        # a fresh uncoalesced grad each step, as an embedding's backward produces
        p.grad = torch.sparse_coo_tensor(idx, vals, emb.shape)
        opt.step()

    return step


def check(emb: np.ndarray, grad: fo.RowGrad) -> None:
    """Three steps from the same start: fused == reference; torch to a few ulps."""
    outs = []
    for backend in ("fused", "numpy"):
        p = emb.copy()
        opt = fo.SparseAdam([p], lr=1e-3, backend=backend)
        for _ in range(3):
            opt.step([grad])
        outs.append(p)
    assert np.array_equal(outs[0], outs[1]), "fused and reference differ"
    try:
        import torch
    except ImportError:
        return
    pt = torch.tensor(emb.copy(), requires_grad=True)
    opt = torch.optim.SparseAdam([pt], lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on sparse invariant checks
        for _ in range(3):
            idx = torch.tensor(np.asarray(grad.indices, np.int64))[None]
            pt.grad = torch.sparse_coo_tensor(idx, torch.tensor(grad.rows), emb.shape)
            opt.step()
    np.testing.assert_allclose(outs[0], pt.detach().numpy(), rtol=1e-5, atol=1e-6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--touched", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # torch's note on sparse invariant checks
    emb, grad = make_case(args.rows, args.dim, args.touched)
    check(emb, grad)
    threads = args.threads or sorted({1, fo.get_num_threads()})
    print(
        f"SparseAdam: embedding {args.rows} x {args.dim} float32, {args.touched} touched rows "
        f"(with repeats), medians of {args.repeats} rounds"
    )
    print(f"{'threads':>7} {'case':<22} {'median us':>10} {'vs fused':>9}")
    for n in threads:
        fo.set_num_threads(n)
        try:
            import torch

            torch.set_num_threads(n)
        except ImportError:
            pass
        cases = {
            "fusedopt fused": fusedopt_step(emb, grad, "fused"),
            "fusedopt numpy": fusedopt_step(emb, grad, "numpy"),
        }
        t = torch_step(emb, grad)
        if t is not None:
            cases["torch SparseAdam"] = t
        for fn in cases.values():  # warm up (state created, caches)
            fn()
        times: dict[str, list[float]] = {k: [] for k in cases}
        names = list(cases)
        for r in range(args.repeats):
            for k in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                cases[k]()
                times[k].append(time.perf_counter() - t0)
        base = times["fusedopt fused"]
        for k in names:
            ratio = statistics.median(a / b for a, b in zip(times[k], base, strict=True))
            print(f"{n:>7} {k:<22} {statistics.median(times[k]) * 1e6:>10.1f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
