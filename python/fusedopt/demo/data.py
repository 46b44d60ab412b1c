"""Built-in demo data: scikit-learn's handwritten digits, split and standardized.

The digits data set (``sklearn.datasets.load_digits``) ships inside the scikit-learn
package, so it needs no download: 1797 grey-scale 8x8 images of the digits 0-9, each
flattened to 64 features with values 0..16.

scikit-learn is an optional dependency, imported only when the data is loaded::

    pip install "fusedopt[demo]"

Example::

    >>> from fusedopt.demo.data import load_digits, iterate_minibatches
    >>> data = load_digits(test_size=0.2, seed=0)
    >>> data.X_train.shape, data.X_test.shape
    ((1437, 64), (360, 64))
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fusedopt._optional import import_optional

__all__ = ["Dataset", "iterate_minibatches", "load_digits"]


@dataclass(frozen=True)
class Dataset:
    """A classification data set split into a training and a held-out test part.

    Attributes:
        X_train: ``(n_train, n_features)`` features, standardized with the training
            split's mean and standard deviation.
        y_train: ``(n_train,)`` integer labels in ``[0, n_classes)``.
        X_test: ``(n_test, n_features)`` features, standardized with the *training*
            statistics (the test split never leaks into preprocessing).
        y_test: ``(n_test,)`` integer labels.
        n_classes: number of classes.
        name: a short description.
    """

    X_train: NDArray[np.floating]
    y_train: NDArray[np.intp]
    X_test: NDArray[np.floating]
    y_test: NDArray[np.intp]
    n_classes: int
    name: str = ""

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.X_train.shape[1])


def _stratified_split(
    y: NDArray[np.intp], test_size: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices of a stratified train/test split: each class keeps its proportion."""
    train: list[NDArray[np.intp]] = []
    test: list[NDArray[np.intp]] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(test_size * idx.size)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _digits_arrays() -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """The 1797 x 64 digit images and their labels, from the installed scikit-learn.

    ``sklearn.datasets.load_digits`` reads ``sklearn/datasets/data/digits.csv.gz`` (64 pixel
    columns, then the label); reading that file directly skips importing scikit-learn and
    SciPy (about a second). If the file is not where expected, ``load_digits`` is used.
    """
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / "datasets" / "data" / "digits.csv.gz"
            try:
                table = np.loadtxt(path, delimiter=",")
            except (OSError, ValueError):
                continue
            if table.shape == (1797, 65):
                return table[:, :64], table[:, 64].astype(np.intp)
    sk_datasets = import_optional("sklearn.datasets", "the digits data set", "scikit-learn")
    bunch = sk_datasets.load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.intp)


def load_digits(
    test_size: float = 0.2,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
    n_train: int | None = None,
) -> Dataset:
    """Load scikit-learn's digits, split them (stratified) and standardize the features.

    Each feature is standardized with the training split's statistics,
    ``x' = (x - mean_train) / max(std_train, 1)`` (pixel values are 0..16); the floor
    keeps the always-blank border pixels (``std = 0``) at zero and the nearly blank ones
    from being blown up.

    Args:
        test_size: fraction of the 1797 images held out for testing, in ``(0, 1)``.
        seed: seed of the split (the same seed gives the same split).
        dtype: floating dtype of the features (float32 is faster).
        n_train: keep only the first ``n_train`` training images (for quick tests).

    Raises:
        MissingDependencyError: scikit-learn is not installed.
        ValueError: ``test_size`` outside ``(0, 1)`` or ``n_train < 1``.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if n_train is not None and n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    X, y = _digits_arrays()
    tr, te = _stratified_split(y, test_size, np.random.default_rng(seed))
    if n_train is not None:
        tr = tr[:n_train]
    mean = X[tr].mean(axis=0)
    std = np.maximum(X[tr].std(axis=0), 1.0)
    Xs = ((X - mean) / std).astype(dtype)
    return Dataset(
        X_train=np.ascontiguousarray(Xs[tr]),
        y_train=y[tr],
        X_test=np.ascontiguousarray(Xs[te]),
        y_test=y[te],
        n_classes=10,
        name="digits (scikit-learn, 8x8 images, 10 classes)",
    )


def iterate_minibatches(
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    batch_size: int,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[NDArray[np.floating], NDArray[np.integer]]]:
    """Yield ``(X_batch, y_batch)`` minibatches for one pass over the data.

    Args:
        X, y: features and labels, same first dimension.
        batch_size: rows per batch (the last batch may be smaller unless ``drop_last``).
        rng: when given, the rows are visited in a random order drawn from it.
        drop_last: skip a last, incomplete batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = X.shape[0]
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]
