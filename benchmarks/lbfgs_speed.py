"""LBFGS per iteration on an L2-regularized logistic regression, against torch.optim.LBFGS.

The issue's goal: "LBFGS on a 10^6-parameter logistic regression >= 3x torch's LBFGS per
iteration". The problem: ``--features`` weights (default 10^6, float32), ``--samples``
rows of dense data (default 16; entries N(0, 1/samples)), loss
``mean(log(1 + exp(-y Xw))) + l2/2 |w|^2``. Each side computes its closure with its own
library (NumPy BLAS gemv for fusedopt, torch for torch) on the same data, so a figure is
the optimizer plus its closure, as a user sees it; the closure alone is timed too, so
that the optimizer's own share can be read off.

Both optimizers run with ``tolerance_grad = tolerance_change = 0`` so that every step does
all its iterations. A round builds each optimizer from the same start, takes one untimed
step (the history fills), then times one step of ``--max-iter`` iterations and divides by
the iterations it took (state ``n_iter``). Rounds alternate the order of the cases;
figures are medians::

    python benchmarks/lbfgs_speed.py                         # 10^6 features, 7 rounds
    python benchmarks/lbfgs_speed.py --features 100000 --repeats 3 --history 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt as fo


def make_problem(features: int, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features), dtype=np.float32)
    x *= np.float32(1 / np.sqrt(samples))
    y = np.where(rng.random(samples) < 0.5, -1.0, 1.0).astype(np.float32)
    return x, y


def numpy_closure(w: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> Callable[[], Any]:
    g = np.empty_like(w)

    def closure() -> tuple[float, list[np.ndarray]]:
        margin = y * (x @ w)
        loss = float(np.mean(np.logaddexp(0.0, -margin))) + 0.5 * l2 * float(w @ w)
        coef = (-y / (1.0 + np.exp(margin)) / len(y)).astype(np.float32)
        np.dot(coef, x, out=g)
        np.add(g, np.float32(l2) * w, out=g)
        return loss, [g]

    return closure


def fusedopt_case(
    w0: np.ndarray, x: np.ndarray, y: np.ndarray, args: argparse.Namespace, backend: str
) -> Callable[[], float]:
    def run() -> float:
        w = w0.copy()
        opt = fo.LBFGS(
            [w],
            max_iter=args.max_iter,
            history_size=args.history,
            line_search_fn=args.ls,
            backend=backend,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
        closure = numpy_closure(w, x, y, args.l2)
        opt.step(closure)
        before = int(opt.state[0]["n_iter"])
        t0 = time.perf_counter()
        opt.step(closure)
        elapsed = time.perf_counter() - t0
        return elapsed / max(1, int(opt.state[0]["n_iter"]) - before)

    return run


def torch_case(
    w0: np.ndarray, x: np.ndarray, y: np.ndarray, args: argparse.Namespace
) -> Callable[[], float] | None:
    try:
        import torch
    except ImportError:
        return None
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def run() -> float:
        w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = torch.optim.LBFGS(
            [w],
            max_iter=args.max_iter,
            history_size=args.history,
            line_search_fn=args.ls,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            margin = ty * (tx @ w)
            loss = torch.nn.functional.softplus(-margin).mean() + 0.5 * args.l2 * (w @ w)
            loss.backward()
            return loss

        opt.step(closure)
        before = opt.state[w]["n_iter"]
        t0 = time.perf_counter()
        opt.step(closure)
        elapsed = time.perf_counter() - t0
        return elapsed / max(1, opt.state[w]["n_iter"] - before)

    return run


def closure_case(w0: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> Callable[[], float]:
    closure = numpy_closure(w0.copy(), x, y, l2)

    def run() -> float:
        t0 = time.perf_counter()
        closure()
        return time.perf_counter() - t0

    return run


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--history", type=int, default=20)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--ls", default=None, choices=[None, "strong_wolfe"])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    x, y = make_problem(args.features, args.samples)
    w0 = np.zeros(args.features, np.float32)
    cases: dict[str, Callable[[], float]] = {
        "fusedopt fused": fusedopt_case(w0, x, y, args, "fused"),
        "fusedopt numpy": fusedopt_case(w0, x, y, args, "numpy"),
        "closure alone (NumPy)": closure_case(w0, x, y, args.l2),
    }
    tc = torch_case(w0, x, y, args)
    if tc is not None:
        cases["torch.optim.LBFGS"] = tc
    samples: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for k in order:
            samples[k].append(cases[k]())
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(
        f"LBFGS per iteration: {args.features} float32 features, {args.samples} samples, "
        f"history {args.history}, max_iter {args.max_iter}, line search {args.ls}, "
        f"{fo.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'case':<24}{'ms/iter':>10}{'vs fused':>10}")
    for k in names:
        print(f"{k:<24}{med[k] * 1e3:>10.2f}{med[k] / med['fusedopt fused']:>10.2f}")
    if "torch.optim.LBFGS" in med:
        print(
            f"torch / fused per iteration: {med['torch.optim.LBFGS'] / med['fusedopt fused']:.2f}x"
        )
    return med


if __name__ == "__main__":
    main()
