"""The NumPy reference backend: one readable function per algorithm.

Each function updates one parameter and its state in place, written straight from
the "Algorithm" box of PyTorch's documentation (LAMB and LARS: from optax's chains of
transformations). They are what ``backend="numpy"`` runs, and what the tests and
benchmarks compare the fused kernels with.
"""

from .adadelta import adadelta
from .adafactor import adafactor
from .adagrad import adagrad
from .adam import adam
from .adamax import adamax
from .asgd import asgd
from .hd import adam_hd, sgd_hd
from .lamb import lamb
from .lars import lars
from .lbfgs import lbfgs
from .lion import lion
from .muon import muon
from .nadam import nadam
from .prodigy import prodigy
from .radam import radam
from .rmsprop import rmsprop
from .rprop import rprop
from .schedulefree import adamw_schedulefree, sgd_schedulefree
from .sgd import sgd
from .sparse_adam import sparse_adam

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adam_hd",
    "adamax",
    "adamw_schedulefree",
    "asgd",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "muon",
    "nadam",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "sgd",
    "sgd_hd",
    "sgd_schedulefree",
    "sparse_adam",
]
