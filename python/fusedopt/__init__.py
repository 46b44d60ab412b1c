"""fusedopt: PyTorch's optimizers and learning-rate schedules for NumPy arrays.

Each optimizer step is one fused, vectorized, multi-threaded C++ kernel over every
parameter; ``backend="numpy"`` runs the readable NumPy reference instead.

>>> import numpy as np, fusedopt as fo
>>> W = np.zeros((3, 2), np.float32)
>>> opt = fo.Adam([W], lr=1e-3)
>>> opt.step([np.ones((3, 2), np.float32)])
"""

from __future__ import annotations

from ._core import build_info, get_num_threads, set_num_threads
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .sgd import SGD

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "__version__",
    "build_info",
    "get_num_threads",
    "set_num_threads",
]
