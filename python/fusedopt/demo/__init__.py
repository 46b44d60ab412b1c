"""The demo: scikit-learn's handwritten digits and a small NumPy MLP trained by fusedopt.

It uses the library and is used by the ``fusedopt`` command line; the library never
imports it. Its optional dependencies (scikit-learn, matplotlib, tqdm, threadpoolctl)
install with ``pip install "fusedopt[demo]"``; a missing one raises
:class:`MissingDependencyError` (an ``ImportError``) naming that command, or, for the
progress bar and the BLAS thread limit, is simply done without.

* :mod:`fusedopt.demo.data`: the digits, split and standardized; minibatches.
* :mod:`fusedopt.demo.model`: the MLP (hand-written backward pass) and :func:`fit`.
* :mod:`fusedopt.demo.progress`: a tqdm bar, or a silent stand-in.
* :mod:`fusedopt.demo.threads`: NumPy's BLAS threads, limited while training (threadpoolctl).

>>> import fusedopt as fo
>>> from fusedopt.demo import MLP, fit, load_digits
>>> data = load_digits()
>>> model = MLP((64, 128, 10), seed=0)
>>> history = fit(model, fo.Adam(model.params, lr=3e-3), data.X_train, data.y_train, epochs=5)
"""

from __future__ import annotations

from fusedopt._optional import MissingDependencyError
from fusedopt.demo.data import Dataset, iterate_minibatches, load_digits
from fusedopt.demo.model import MLP, History, TrainingDiverged, fit, softmax_cross_entropy
from fusedopt.demo.progress import NullBar, progress_bar, tqdm_available
from fusedopt.demo.threads import blas_threads, limit_blas_threads

__all__ = [
    "MLP",
    "Dataset",
    "History",
    "MissingDependencyError",
    "NullBar",
    "TrainingDiverged",
    "blas_threads",
    "fit",
    "iterate_minibatches",
    "limit_blas_threads",
    "load_digits",
    "progress_bar",
    "softmax_cross_entropy",
    "tqdm_available",
]
