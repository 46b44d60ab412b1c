"""Train a small softmax-regression model in plain NumPy with a fused optimizer.

Run:  python examples/train_small.py [--optimizer Adam] [--lr 0.05] [--steps 300]

It makes a synthetic 3-class problem, computes the loss and its gradient by hand, and
lets fusedopt update the weights in place; the loss falls as it trains.
"""

from __future__ import annotations

import argparse

import numpy as np

import fusedopt as fo


def loss_and_grads(
    W: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Mean cross-entropy of softmax(X W + b) and its gradients with respect to W and b."""
    z = X @ W + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    d = p
    d[np.arange(n), y] -= 1.0
    d /= n
    return loss, [X.T @ d, d.sum(axis=0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizer", default="Adam", help="any fusedopt optimizer class (default Adam)"
    )
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 20)) * 0.3
    y = rng.integers(0, 3, size=600)
    X = (centers[y] + rng.standard_normal((600, 20))).astype(np.float32)
    W = np.zeros((20, 3), np.float32)
    b = np.zeros(3, np.float32)

    opt = getattr(fo, args.optimizer)([W, b], lr=args.lr)
    for step in range(args.steps + 1):
        loss, grads = loss_and_grads(W, b, X, y)
        if step % (args.steps // 10 or 1) == 0:
            acc = float(((X @ W + b).argmax(axis=1) == y).mean())
            print(f"step {step:4d}  loss {loss:.4f}  accuracy {acc:.3f}")
        opt.step(grads)


if __name__ == "__main__":
    main()
