"""fusedopt: PyTorch's optimizers and learning-rate schedules for NumPy arrays.

Each optimizer step is one fused, vectorized, multi-threaded C++ kernel over every
parameter; ``backend="numpy"`` runs the readable NumPy reference instead.

>>> import numpy as np, fusedopt as fo
>>> W = np.zeros((3, 2), np.float32)
>>> opt = fo.Adam([W], lr=1e-3)
>>> opt.step([np.ones((3, 2), np.float32)])
"""

from __future__ import annotations

import warnings

from . import low_precision, lr_finder, lr_scheduler, swa_utils
from ._core import build_info, get_num_threads, set_num_threads
from ._version import __version__
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .asgd import ASGD
from .checkpoint import load_checkpoint, save_checkpoint
from .clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .hypergrad import SGDHD, AdamHD
from .lamb import LAMB
from .lars import LARS
from .lbfgs import LBFGS
from .lion import Lion
from .lr_finder import LRFinderResult, lr_find
from .multi_steps import MultiSteps
from .muon import Muon
from .nadam import NAdam
from .optimizer import Optimizer
from .prodigy import Prodigy
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulefree import AdamWScheduleFree, SGDScheduleFree
from .sgd import SGD
from .sparse_adam import RowGrad, SparseAdam

__all__ = [
    "ASGD",
    "LAMB",
    "LARS",
    "LBFGS",
    "SGD",
    "SGDHD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamHD",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "LRFinderResult",
    "Lion",
    "MultiSteps",
    "Muon",
    "NAdam",
    "Optimizer",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "RowGrad",
    "Rprop",
    "SGDScheduleFree",
    "SparseAdam",
    "__version__",
    "build_info",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_num_threads",
    "get_total_norm",
    "load_checkpoint",
    "low_precision",
    "lr_find",
    "lr_finder",
    "lr_scheduler",
    "save_checkpoint",
    "set_num_threads",
    "swa_utils",
]

# FUSEDOPT_TARGET asked for an instruction-set target this build or this CPU cannot run:
# say so once, at import (the best target the CPU runs is in use instead).
if build_info()["target_note"]:
    warnings.warn(build_info()["target_note"], RuntimeWarning, stacklevel=2)
