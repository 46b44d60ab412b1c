"""The NumPy reference backend: one readable function per algorithm.

Each function updates one parameter and its state in place, written straight from
the "Algorithm" box of PyTorch's documentation. They are what ``backend="numpy"``
runs, and what the tests and benchmarks compare the fused kernels with.
"""

from .adam import adam
from .sgd import sgd

__all__ = ["adam", "sgd"]
