"""The one table the tests run over.

* ``ROWS`` / ``CONFIGS``: optimizer configurations. Each row: (readable id, optimizer
  class, constructor keyword arguments). Rows cover every option of every algorithm;
  add a row here and every property (reference parity, state round trip, PyTorch
  parity, errors) checks it.
* ``OPTIMIZERS``: every optimizer class; ``BACKENDS``: both backends.
* ``SIGNATURES``: each class's constructor (positional and keyword-only arguments) and
  the default of every hyperparameter, written out by hand from torch.optim's
  documentation (Lion: from the paper), an oracle independent of the code.
* ``BAD_HYPERPARAMETERS``: values each class must refuse, with the exception and the
  message, written out by hand (``HAND_ERRORS``, ``BAD_BY_KEY``).
  ``ACCEPTED_HYPERPARAMETERS``: values at the edge of a rule, which must be accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


# ------------------------------------------------------------ signatures and defaults
@dataclass(frozen=True)
class Signature:
    """A constructor: its arguments after ``params`` and every hyperparameter's default."""

    #: Positional-or-keyword arguments, in order (a positional call means what it
    #: means with torch.optim).
    positional: tuple[str, ...]
    #: Keyword-only arguments, in order; ``backend="fused"`` comes last, after them.
    keyword_only: tuple[str, ...]
    #: The default of every hyperparameter, as ``defaults`` and the param groups hold it
    #: (AdamW's ``decoupled_weight_decay`` is a group key, not an argument, as in torch).
    defaults: Mapping[str, Any]


SIGNATURES: dict[type[fo.Optimizer], Signature] = {
    fo.SGD: Signature(
        ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
        ("maximize",),
        dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False),
    ),
    fo.Adam: Signature(
        ("lr", "betas", "eps", "weight_decay", "amsgrad"),
        ("maximize", "decoupled_weight_decay"),
        dict(
            lr=1e-3,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0,
            amsgrad=False,
            maximize=False,
            decoupled_weight_decay=False,
        ),
    ),
    fo.AdamW: Signature(
        ("lr", "betas", "eps", "weight_decay", "amsgrad"),
        ("maximize",),
        dict(
            lr=1e-3,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=1e-2,
            amsgrad=False,
            maximize=False,
            decoupled_weight_decay=True,
        ),
    ),
    fo.Adagrad: Signature(
        ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
        ("maximize",),
        dict(
            lr=1e-2,
            lr_decay=0,
            weight_decay=0,
            initial_accumulator_value=0,
            eps=1e-10,
            maximize=False,
        ),
    ),
    fo.RMSprop: Signature(
        ("lr", "alpha", "eps", "weight_decay", "momentum", "centered"),
        ("maximize",),
        dict(
            lr=1e-2,
            alpha=0.99,
            eps=1e-8,
            weight_decay=0,
            momentum=0,
            centered=False,
            maximize=False,
        ),
    ),
    fo.Adadelta: Signature(
        ("lr", "rho", "eps", "weight_decay"),
        ("maximize",),
        dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False),
    ),
    fo.Adamax: Signature(
        ("lr", "betas", "eps", "weight_decay"),
        ("maximize",),
        dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False),
    ),
    fo.NAdam: Signature(
        ("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"),
        ("maximize",),
        dict(
            lr=2e-3,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0,
            momentum_decay=4e-3,
            decoupled_weight_decay=False,
            maximize=False,
        ),
    ),
    fo.RAdam: Signature(
        ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
        ("maximize",),
        dict(
            lr=1e-3,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0,
            decoupled_weight_decay=False,
            maximize=False,
        ),
    ),
    # Not in torch.optim: the defaults of the paper (Chen et al., 2023) and its code.
    fo.Lion: Signature(
        ("lr", "betas", "weight_decay"),
        ("maximize",),
        dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0, maximize=False),
    ),
}


# ---------------------------------------------------------------------- error cases
@dataclass(frozen=True)
class BadHyper:
    """Hyperparameter values ``cls`` must refuse: ``cls(params, **kwargs)`` raises ``exc``
    with a message matching ``match`` (``re.search``); the same values in a param group
    raise the same, the message prefixed with ``param_groups[i]: ``."""

    cls: type[fo.Optimizer]
    kwargs: Mapping[str, Any]
    exc: type[Exception]
    match: str
    id: str


NAN, INF = float("nan"), float("inf")

# Written out by hand, per class (kwargs, exception, a regex the message must match).
HAND_ERRORS: list[tuple[type[fo.Optimizer], dict[str, Any], type[Exception], str]] = [
    (fo.SGD, dict(momentum=-0.1), ValueError, "momentum"),
    (fo.SGD, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.SGD, dict(nesterov=True), ValueError, "nesterov"),
    (fo.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov"),
    (fo.SGD, dict(lr="0.1"), TypeError, "lr"),
    (fo.SGD, dict(nesterov=1), TypeError, "nesterov"),
    (fo.Adam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.Adam, dict(betas=(1.0, 0.9)), ValueError, r"betas\[0\]"),
    (fo.Adam, dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (fo.Adam, dict(betas=(0.9,)), TypeError, "betas"),
    (fo.Adam, dict(weight_decay=NAN), ValueError, "weight_decay"),
    (fo.AdamW, dict(lr=INF), ValueError, "lr"),
    (fo.AdamW, dict(amsgrad="yes"), TypeError, "amsgrad"),
    (fo.Adagrad, dict(lr=-0.1), ValueError, "lr"),
    (fo.Adagrad, dict(lr_decay=-0.1), ValueError, "lr_decay"),
    (fo.Adagrad, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Adagrad, dict(initial_accumulator_value=-0.1), ValueError, "initial_accumulator_value"),
    (fo.Adagrad, dict(eps=-1e-10), ValueError, "eps"),
    (fo.Adagrad, dict(lr_decay="0"), TypeError, "lr_decay"),
    (fo.Adagrad, dict(maximize=1), TypeError, "maximize"),
    (fo.RMSprop, dict(lr=-1e-2), ValueError, "lr"),
    (fo.RMSprop, dict(alpha=-0.1), ValueError, "alpha"),
    (fo.RMSprop, dict(alpha=1.5), ValueError, "alpha"),
    (fo.RMSprop, dict(eps=-1e-8), ValueError, "eps"),
    (fo.RMSprop, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.RMSprop, dict(momentum=-0.5), ValueError, "momentum"),
    (fo.RMSprop, dict(momentum=NAN), ValueError, "momentum"),
    (fo.RMSprop, dict(centered="yes"), TypeError, "centered"),
    (fo.RMSprop, dict(maximize=None), TypeError, "maximize"),
    (fo.Adadelta, dict(lr=-1.0), ValueError, "lr"),
    (fo.Adadelta, dict(rho=-0.1), ValueError, "rho"),
    (fo.Adadelta, dict(rho=1.01), ValueError, "rho"),
    (fo.Adadelta, dict(eps=-1e-6), ValueError, "eps"),
    (fo.Adadelta, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Adadelta, dict(maximize="no"), TypeError, "maximize"),
    (fo.Adamax, dict(lr=-2e-3), ValueError, "lr"),
    (fo.Adamax, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.Adamax, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.Adamax, dict(betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
    (fo.Adamax, dict(betas=0.9), TypeError, "betas"),
    (fo.Adamax, dict(eps=-1e-8), ValueError, "eps"),
    (fo.Adamax, dict(weight_decay=INF), ValueError, "weight_decay"),
    (fo.NAdam, dict(lr=-1e-3), ValueError, "lr"),
    (fo.NAdam, dict(lr=NAN), ValueError, "lr"),
    (fo.NAdam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.NAdam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.NAdam, dict(betas=(0.9, 1.5)), ValueError, r"betas\[1\]"),
    (fo.NAdam, dict(betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
    (fo.NAdam, dict(betas=0.9), TypeError, "betas"),
    (fo.NAdam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.NAdam, dict(momentum_decay=-4e-3), ValueError, "momentum_decay"),
    (fo.NAdam, dict(momentum_decay=-1.0), ValueError, "momentum_decay"),
    (fo.NAdam, dict(momentum_decay="4e-3"), TypeError, "momentum_decay"),
    (fo.NAdam, dict(decoupled_weight_decay=1), TypeError, "decoupled_weight_decay"),
    (fo.NAdam, dict(maximize="no"), TypeError, "maximize"),
    (fo.RAdam, dict(lr=-1e-3), ValueError, "lr"),
    (fo.RAdam, dict(eps=-1e-8), ValueError, "eps"),
    (fo.RAdam, dict(eps=NAN), ValueError, "eps"),
    (fo.RAdam, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.RAdam, dict(betas=(1.2, 0.9)), ValueError, r"betas\[0\]"),
    (fo.RAdam, dict(betas=(0.9, 0.99, 0.999)), TypeError, "betas"),
    (fo.RAdam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.RAdam, dict(decoupled_weight_decay=None), TypeError, "decoupled_weight_decay"),
    (fo.RAdam, dict(maximize=0), TypeError, "maximize"),
    (fo.Lion, dict(lr=-1e-4), ValueError, "lr"),
    (fo.Lion, dict(lr=-0.1), ValueError, "lr"),
    (fo.Lion, dict(lr=[1e-4]), TypeError, "lr"),
    (fo.Lion, dict(betas=(1.0, 0.99)), ValueError, r"betas\[0\]"),
    (fo.Lion, dict(betas=(0.9, -0.01)), ValueError, r"betas\[1\]"),
    (fo.Lion, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Lion, dict(weight_decay=NAN), ValueError, "weight_decay"),
    (fo.Lion, dict(maximize=1), TypeError, "maximize"),
]

# Written out by hand, per key, for every class that has the key: (key, value,
# exception, the whole message at construction; in a group it gets its prefix).
BAD_BY_KEY: list[tuple[str, Any, type[Exception], str]] = [
    ("lr", NAN, ValueError, r"invalid lr: nan"),
    ("lr", INF, ValueError, r"invalid lr: inf"),
    ("lr", -1.0, ValueError, r"invalid lr: -1\.0; it must be a finite num"),
    ("lr", "fast", TypeError, r"lr must be a real number"),
    ("lr", 10**400, ValueError, r"invalid lr: 1000.* is too large"),
    ("betas", (1.0, 0.9), ValueError, r"invalid betas\[0\]: 1\.0"),
    ("betas", (0.9, 1.5), ValueError, r"invalid betas\[1\]: 1\.5"),
    ("eps", -1.0, ValueError, r"invalid eps: -1\.0"),
    ("weight_decay", -1.0, ValueError, r"invalid weight_decay: -1\.0"),
    ("alpha", -1.0, ValueError, r"invalid alpha: -1\.0"),
    ("maximize", 1, TypeError, r"maximize must be a bool, got int"),
    ("betas", (0.9,), TypeError, r"betas must be a sequence of 2"),
    ("betas", 0.9, TypeError, r"betas must be a sequence of 2"),
    ("betas", (0.9, NAN), ValueError, r"invalid betas\[1\]: nan"),
    ("betas", (None, 0.9), TypeError, r"betas\[0\] must be a real number"),
]


def _hand_errors() -> list[BadHyper]:
    out = []
    for i, (cls, kwargs, exc, match) in enumerate(HAND_ERRORS):
        out.append(BadHyper(cls, kwargs, exc, match, f"{cls.__name__}-hand{i}-{'-'.join(kwargs)}"))
    for cls in OPTIMIZERS:
        for i, (key, value, exc, match) in enumerate(BAD_BY_KEY):
            if key in cls.hyperparameters:
                out.append(BadHyper(cls, {key: value}, exc, "^" + match, f"{cls.__name__}-key{i}"))
    return out


BAD_HYPERPARAMETERS: list[BadHyper] = _hand_errors()


# ------------------------------------------------------------- values to be accepted
# Written out by hand: values at the edge of a range (class, kwargs).
HAND_ACCEPTED: list[tuple[str, type[fo.Optimizer], dict[str, Any]]] = [
    ("alpha0", fo.RMSprop, dict(alpha=0.0)),
    ("alpha1", fo.RMSprop, dict(alpha=1.0)),
    ("rho0", fo.Adadelta, dict(rho=0.0)),
    ("rho1", fo.Adadelta, dict(rho=1.0)),
    ("betas0", fo.Adamax, dict(betas=(0.0, 0.0))),
    ("eps0-lr0", fo.Adagrad, dict(eps=0.0, lr=0.0)),
]


ACCEPTED_HYPERPARAMETERS = [
    pytest.param(cls, kwargs, id=f"{cls.__name__}-{label}") for label, cls, kwargs in HAND_ACCEPTED
]
