"""The one table of optimizer configurations that every property test runs over.

Each row: (optimizer class, constructor keyword arguments), with a readable id.
Rows cover every option of every algorithm; add a row here and every property
(reference parity, state round trip, PyTorch parity, errors) checks it.
"""

from __future__ import annotations

from typing import Any

import pytest

import fusedopt as fo

ROWS: list[tuple[str, type[fo.Optimizer], dict[str, Any]]] = [
    ("sgd", fo.SGD, dict(lr=0.1)),
    ("sgd-momentum", fo.SGD, dict(lr=0.05, momentum=0.9)),
    ("sgd-dampening-wd", fo.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
    ("sgd-nesterov-maximize", fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("adam", fo.Adam, dict(lr=0.01)),
    ("adam-amsgrad-wd", fo.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("adam-betas-eps-maximize", fo.Adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, maximize=True)),
    ("adamw", fo.AdamW, dict(lr=0.01)),
    ("adamw-amsgrad-wd", fo.AdamW, dict(lr=0.01, amsgrad=True, weight_decay=0.3)),
    ("adamw-maximize", fo.AdamW, dict(lr=0.01, betas=(0.8, 0.99), maximize=True)),
]

CONFIGS = [pytest.param(cls, kwargs, id=name) for name, cls, kwargs in ROWS]
