"""scikit-learn's Adam against fusedopt's, inside ``MLPClassifier``: accuracy and fit time.

Prints a markdown table: for each data set (``load_digits``; a 200-feature, 10-class
``make_classification`` problem), scikit-learn's own ``MLPClassifier(solver="adam")``,
``fusedopt.sklearn.MLPClassifier`` with fusedopt's Adam, and with AdamW + a warm-up
cosine schedule: test accuracy and fit time (the median of ``--repeats`` fits), with the
speed-up over scikit-learn's Adam. Every fit runs exactly ``--max-iter`` epochs
(``tol=0``), so the times compare the same work; threads are the defaults (BLAS and
fusedopt's pool).

    python examples/sklearn_compare.py                       # (512, 512), batch 64
    python examples/sklearn_compare.py --hidden 64 --max-iter 5 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler

from fusedopt.sklearn import MLPClassifier

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def datasets(names: list[str], n_samples: int) -> dict[str, Data]:
    """The train/test splits, by name."""
    out: dict[str, Data] = {}
    for name in names:
        if name == "digits":
            X, y = load_digits(return_X_y=True)
            X = X / 16.0
        elif name == "classification":
            X, y = make_classification(
                n_samples=n_samples,
                n_features=200,
                n_informative=40,
                n_redundant=20,
                n_classes=10,
                n_clusters_per_class=2,
                class_sep=1.0,
                random_state=0,
            )
            X = StandardScaler().fit_transform(X)
        else:
            raise SystemExit(f"unknown data set {name!r} (digits, classification)")
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        out[name] = (Xtr, Xte, ytr, yte)
    return out


def configs(lr: float, lr_adamw: float) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The estimators compared, by the name shown."""
    return {
        f"sklearn Adam (lr {lr:g})": lambda kw: SkMLPClassifier(**kw, learning_rate_init=lr),
        f"fusedopt Adam (lr {lr:g})": lambda kw: MLPClassifier(**kw, learning_rate_init=lr),
        f"fusedopt AdamW + warmup-cosine (lr {lr_adamw:g}, wd 0.01)": lambda kw: MLPClassifier(
            **kw,
            learning_rate_init=lr_adamw,
            optimizer="AdamW",
            optimizer_kwargs={"weight_decay": 0.01},
            schedule="warmup-cosine",
        ),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fit everything (printing each row as it comes); one dict per row of the table."""
    kw = dict(
        hidden_layer_sizes=tuple(args.hidden),
        batch_size=args.batch_size,
        max_iter=args.max_iter,
        tol=0.0,
        n_iter_no_change=args.max_iter + 1,
        random_state=0,
    )
    rows: list[dict[str, Any]] = []
    makers = configs(args.lr, args.lr_adamw)
    for dname, (Xtr, Xte, ytr, yte) in datasets(args.data, args.n_samples).items():
        times: dict[str, list[float]] = {c: [] for c in makers}
        acc: dict[str, float] = {}
        for _ in range(args.repeats):  # interleaved: a shared machine's load drifts
            for cname, make in makers.items():
                est = make(kw)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(Xtr, ytr)
                times[cname].append(time.perf_counter() - t0)
                acc[cname] = float(est.score(Xte, yte))
        base = statistics.median(next(iter(times.values())))
        for cname in makers:
            t = statistics.median(times[cname])
            rows.append(
                {
                    "data": f"{dname} ({Xtr.shape[0]}x{Xtr.shape[1]})",
                    "optimizer": cname,
                    "accuracy": acc[cname],
                    "time": t,
                    "speedup": base / t,
                }
            )
            print(markdown(rows[-1:], header=False), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], header: bool = True) -> str:
    """The rows as a markdown table."""
    out = (
        [
            "| data set | optimizer | test accuracy | fit time (s) | speed-up |",
            "|---|---|---:|---:|---:|",
        ]
        if header
        else []
    )
    out += [
        f"| {r['data']} | {r['optimizer']} | {r['accuracy']:.2%} | {r['time']:.2f} "
        f"| {r['speedup']:.2f}x |"
        for r in rows
    ]
    return "\n".join(out)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512], help="layer sizes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-iter", type=int, default=30, help="epochs of every fit")
    p.add_argument("--repeats", type=int, default=3, help="fits per cell (median time)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--lr-adamw", type=float, default=3e-3, help="AdamW's peak learning rate")
    p.add_argument("--n-samples", type=int, default=4000, help="make_classification samples")
    p.add_argument(
        "--data", nargs="+", default=["digits", "classification"], help="digits, classification"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    args = parse(argv)
    print(
        f"hidden {tuple(args.hidden)}, batch {args.batch_size}, {args.max_iter} epochs, "
        f"median of {args.repeats}\n"
    )
    print("\n" + markdown(run(args)))


if __name__ == "__main__":
    main()
