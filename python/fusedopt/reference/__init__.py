"""The NumPy reference backend: one readable function per algorithm.

Each function updates one parameter and its state in place, written straight from
the "Algorithm" box of PyTorch's documentation (LAMB and LARS: from optax's chains of
transformations). They are what ``backend="numpy"`` runs, and what the tests and
benchmarks compare the fused kernels with.
"""

from .adadelta import adadelta
from .adagrad import adagrad
from .adam import adam
from .adamax import adamax
from .lamb import lamb
from .lars import lars
from .lion import lion
from .nadam import nadam
from .radam import radam
from .rmsprop import rmsprop
from .sgd import sgd

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "lamb",
    "lars",
    "lion",
    "nadam",
    "radam",
    "rmsprop",
    "sgd",
]
