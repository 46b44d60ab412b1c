"""The one table the tests run over.

* ``ROWS`` / ``CONFIGS``: optimizer configurations. Each row: (readable id, optimizer
  class, constructor keyword arguments). Rows cover every option of every algorithm;
  add a row here and every property (reference parity, state round trip, PyTorch
  parity, errors) checks it.
* ``OPTIMIZERS``: every optimizer class; ``BACKENDS``: both backends.
"""

from __future__ import annotations

from typing import Any

import pytest

import fusedopt as fo

BACKENDS = ("fused", "numpy")

OPTIMIZERS: list[type[fo.Optimizer]] = [
    fo.SGD,
    fo.Adam,
    fo.AdamW,
    fo.Adagrad,
    fo.RMSprop,
    fo.Adadelta,
    fo.Adamax,
    fo.NAdam,
    fo.RAdam,
    fo.Lion,
]

ROWS: list[tuple[str, type[fo.Optimizer], dict[str, Any]]] = [
    ("sgd", fo.SGD, dict(lr=0.1)),
    ("sgd-momentum", fo.SGD, dict(lr=0.05, momentum=0.9)),
    ("sgd-dampening-wd", fo.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    ("sgd-nesterov-maximize", fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("adam", fo.Adam, dict(lr=0.01)),
    ("adam-amsgrad-wd", fo.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("adam-betas-eps-maximize", fo.Adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, maximize=True)),
    ("adam-decoupled-wd", fo.Adam, dict(lr=0.01, weight_decay=0.2, decoupled_weight_decay=True)),
    ("adamw", fo.AdamW, dict(lr=0.01)),
    ("adamw-amsgrad-wd", fo.AdamW, dict(lr=0.01, amsgrad=True, weight_decay=0.3)),
    ("adamw-maximize", fo.AdamW, dict(lr=0.01, betas=(0.8, 0.99), maximize=True)),
    ("adagrad", fo.Adagrad, dict(lr=0.05)),
    (
        "adagrad-lr_decay-init_acc-wd",
        fo.Adagrad,
        dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1),
    ),
    ("adagrad-eps-maximize", fo.Adagrad, dict(lr=0.05, eps=1e-3, maximize=True)),
    ("rmsprop", fo.RMSprop, dict(lr=0.01)),
    ("rmsprop-centered-alpha", fo.RMSprop, dict(lr=0.01, alpha=0.9, centered=True)),
    ("rmsprop-momentum-wd", fo.RMSprop, dict(lr=0.005, momentum=0.9, weight_decay=0.1)),
    (
        "rmsprop-centered-momentum-eps-maximize",
        fo.RMSprop,
        dict(lr=0.005, alpha=0.95, eps=1e-3, momentum=0.5, centered=True, maximize=True),
    ),
    ("adadelta", fo.Adadelta, dict(lr=1.0)),
    ("adadelta-rho-eps-wd", fo.Adadelta, dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("adadelta-maximize", fo.Adadelta, dict(lr=1.0, maximize=True)),
    ("adamax", fo.Adamax, dict(lr=0.01)),
    (
        "adamax-betas-eps-wd-maximize",
        fo.Adamax,
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1, maximize=True),
    ),
    ("nadam", fo.NAdam, dict(lr=0.01)),
    ("nadam-wd", fo.NAdam, dict(lr=0.01, weight_decay=0.1)),
    ("nadam-decoupled-wd", fo.NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (
        "nadam-momentum_decay-betas-eps-maximize",
        fo.NAdam,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-3, momentum_decay=0.02, maximize=True),
    ),
    ("radam", fo.RAdam, dict(lr=0.01)),
    ("radam-wd", fo.RAdam, dict(lr=0.01, weight_decay=0.1)),
    ("radam-decoupled-wd", fo.RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (
        "radam-betas-eps-maximize",
        fo.RAdam,
        dict(lr=0.02, betas=(0.8, 0.9), eps=1e-3, maximize=True),
    ),
    ("lion", fo.Lion, dict(lr=0.01)),
    (
        "lion-wd-betas-maximize",
        fo.Lion,
        dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.3, maximize=True),
    ),
]

CONFIGS = [pytest.param(cls, kwargs, id=name) for name, cls, kwargs in ROWS]
