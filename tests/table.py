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
  message: written out by hand (``HAND_ERRORS``, ``BAD_BY_KEY``) and derived from each
  class's table of rules (:func:`rule_errors`). ``ACCEPTED_HYPERPARAMETERS``: values at
  the edge of a rule, which must be accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.rules import Rule

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
    fo.LAMB,
    fo.LARS,
    fo.ASGD,
    fo.Rprop,
]

#: The classes that step themselves (``kernel = None``): no Plan kernel, so the table's
#: generic properties do not apply (LBFGS steps from a closure, Muon takes 2-D parameters
#: only, SparseAdam row-sparse grads, Adafactor keeps state of other shapes); each has
#: its own test file, and their signatures are checked with the others'.
SELF_STEPPING: list[type[fo.Optimizer]] = [fo.Adafactor, fo.LBFGS, fo.Muon, fo.SparseAdam]

#: Classes with a Plan kernel that step only in train mode (``opt.train()`` first, as the
#: ``schedulefree`` package's): the generic properties construct and step at once, so
#: these have their own test file (tests/test_schedulefree.py: reference parity, the
#: package, state dict, errors, threads); their signatures and kernel declarations are
#: checked with the others'.
TRAIN_EVAL: list[type[fo.Optimizer]] = [fo.SGDScheduleFree, fo.AdamWScheduleFree]

#: Classes with a Plan kernel whose step couples the tensors through sums (Prodigy's d over
#: every group, SGDHD's / AdamHD's learning rate per group, written back to the groups): a
#: non-finite grad reaches every tensor through the sums, Prodigy refuses groups of other
#: nonzero lrs (as prodigyopt), and the adapted lr may cross 0. The generic properties
#: assume none of this, so these have their own test files (tests/test_prodigy.py,
#: tests/test_hypergrad.py: reference parity, the reference packages, threads, errors);
#: their signatures and kernel declarations are checked with the others'.
GROUP_COUPLED: list[type[fo.Optimizer]] = [fo.Prodigy, fo.SGDHD, fo.AdamHD]

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
    ("lamb", fo.LAMB, dict(lr=0.01)),
    (
        "lamb-wd-betas-eps-eps_root",
        fo.LAMB,
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3, eps_root=1e-4, weight_decay=0.1),
    ),
    ("lars", fo.LARS, dict(lr=0.5)),
    ("lars-nesterov-wd-eps", fo.LARS, dict(lr=0.5, weight_decay=0.01, eps=1e-3, nesterov=True)),
    ("lars-no-momentum-trust", fo.LARS, dict(lr=1.0, momentum=0.0, trust_coefficient=0.01)),
    ("asgd", fo.ASGD, dict(lr=0.05)),
    # t0 = 0.5: mu = 1 / (t - 0.5) from step 3 on, so ax averages instead of copying
    (
        "asgd-t0-lambd-alpha-wd",
        fo.ASGD,
        dict(lr=0.05, lambd=0.05, alpha=0.5, t0=0.5, weight_decay=0.1),
    ),
    ("asgd-maximize", fo.ASGD, dict(lr=0.02, lambd=0.1, alpha=1.0, t0=2.0, maximize=True)),
    ("rprop", fo.Rprop, dict(lr=0.01)),
    (
        "rprop-etas-step_sizes-maximize",
        fo.Rprop,
        dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1), maximize=True),
    ),
]

CONFIGS = [pytest.param(cls, kwargs, id=name) for name, cls, kwargs in ROWS]

#: Classes whose update uses sums over each parameter array (trust ratios from norms):
#: the sums run in memory order, so the same values laid out in another order may give
#: results that differ in the last bits (never with the number of threads).
PER_ARRAY_SUMS: frozenset[type[fo.Optimizer]] = frozenset({fo.LAMB, fo.LARS})


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
    #: Arguments whose default differs from the value the groups then hold (LBFGS's
    #: ``max_eval=None`` becomes ``max_iter * 5 // 4``), as in torch.
    arguments: Mapping[str, Any] = field(default_factory=dict)
    #: fusedopt's own keyword arguments beyond torch's (Muon's ``ns_dtype``).
    ours: tuple[str, ...] = ()


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
    # Not in torch.optim: optax.lamb / optax.lars (optax's learning_rate is lr; lars has no
    # default for it in optax: 1e-3 here, as torch.optim's classes).
    fo.LAMB: Signature(
        ("lr", "betas", "eps", "eps_root", "weight_decay"),
        (),
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, eps_root=0, weight_decay=0),
    ),
    fo.LARS: Signature(
        ("lr", "weight_decay", "trust_coefficient", "eps", "momentum", "nesterov"),
        (),
        dict(lr=1e-3, weight_decay=0, trust_coefficient=1e-3, eps=0, momentum=0.9, nesterov=False),
    ),
    fo.ASGD: Signature(
        ("lr", "lambd", "alpha", "t0", "weight_decay"),
        ("maximize",),
        dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, maximize=False),
    ),
    fo.Rprop: Signature(
        ("lr", "etas", "step_sizes"),
        ("maximize",),
        dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False),
    ),
    fo.Adafactor: Signature(
        ("lr", "beta2_decay", "eps", "d", "weight_decay"),
        ("maximize",),
        dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0, maximize=False),
    ),
    fo.LBFGS: Signature(
        (
            "lr",
            "max_iter",
            "max_eval",
            "tolerance_grad",
            "tolerance_change",
            "history_size",
            "line_search_fn",
        ),
        (),
        dict(
            lr=1,
            max_iter=20,
            max_eval=25,
            tolerance_grad=1e-7,
            tolerance_change=1e-9,
            history_size=100,
            line_search_fn=None,
        ),
        arguments=MappingProxyType({"max_eval": None}),
    ),
    fo.Muon: Signature(
        (
            "lr",
            "weight_decay",
            "momentum",
            "nesterov",
            "ns_coefficients",
            "eps",
            "ns_steps",
            "adjust_lr_fn",
        ),
        ("ns_dtype",),
        dict(
            lr=1e-3,
            weight_decay=0.1,
            momentum=0.95,
            nesterov=True,
            ns_coefficients=(3.4445, -4.775, 2.0315),
            eps=1e-7,
            ns_steps=5,
            adjust_lr_fn=None,
            ns_dtype="float32",
        ),
        ours=("ns_dtype",),
    ),
    fo.SparseAdam: Signature(
        ("lr", "betas", "eps", "maximize"),
        (),
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False),
    ),
    # Not in torch.optim: the schedulefree package's (1.4.1) arguments and defaults, less its
    # foreach; the groups also hold the package's bookkeeping keys, with its initial values.
    # Not in torch.optim: prodigyopt's (1.1.2) arguments and defaults, less fsdp_in_use and
    # slice_p; the groups also hold the package's d, d_max, d_numerator and k.
    fo.Prodigy: Signature(
        (
            "lr",
            "betas",
            "beta3",
            "eps",
            "weight_decay",
            "decouple",
            "use_bias_correction",
            "safeguard_warmup",
            "d0",
            "d_coef",
            "growth_rate",
        ),
        (),
        dict(
            lr=1.0,
            betas=(0.9, 0.999),
            beta3=None,
            eps=1e-8,
            weight_decay=0,
            decouple=True,
            use_bias_correction=False,
            safeguard_warmup=False,
            d0=1e-6,
            d_coef=1.0,
            growth_rate=math.inf,
            d=1e-6,
            d_max=1e-6,
            d_numerator=0.0,
            k=0,
        ),
    ),
    # Not in torch.optim: the authors' SGDHD / AdamHD (hypergrad/sgd_hd.py, adam_hd.py),
    # with torch 2's SGD default lr=1e-3 and its maximize.
    fo.SGDHD: Signature(
        ("lr", "momentum", "dampening", "weight_decay", "nesterov", "hypergrad_lr"),
        ("maximize",),
        dict(
            lr=1e-3,
            momentum=0,
            dampening=0,
            weight_decay=0,
            nesterov=False,
            hypergrad_lr=1e-6,
            maximize=False,
        ),
        ours=("maximize",),
    ),
    fo.AdamHD: Signature(
        ("lr", "betas", "eps", "weight_decay", "hypergrad_lr"),
        ("maximize",),
        dict(
            lr=1e-3,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0,
            hypergrad_lr=1e-8,
            maximize=False,
        ),
        ours=("maximize",),
    ),
    fo.SGDScheduleFree: Signature(
        ("lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power"),
        (),
        dict(
            lr=1.0,
            momentum=0.9,
            weight_decay=0,
            warmup_steps=0,
            r=0.0,
            weight_lr_power=2,
            k=0,
            lr_max=-1.0,
            weight_sum=0.0,
            scheduled_lr=0.0,
            train_mode=False,
        ),
    ),
    fo.AdamWScheduleFree: Signature(
        ("lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power"),
        (),
        dict(
            lr=0.0025,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0,
            warmup_steps=0,
            r=0.0,
            weight_lr_power=2.0,
            k=0,
            lr_max=-1.0,
            weight_sum=0.0,
            scheduled_lr=0.0,
            train_mode=False,
        ),
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
    (fo.LAMB, dict(eps_root=-1e-8), ValueError, "eps_root"),
    (fo.LAMB, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.LAMB, dict(weight_decay=NAN), ValueError, "weight_decay"),
    (fo.LARS, dict(trust_coefficient=-1e-3), ValueError, "trust_coefficient"),
    (fo.LARS, dict(momentum=-0.9), ValueError, "momentum"),
    (fo.LARS, dict(nesterov=1), TypeError, "nesterov"),
    (fo.LARS, dict(eps=INF), ValueError, "eps"),
    # torch.optim.ASGD checks lr and weight_decay; fusedopt also lambd >= 0 (a negative
    # one makes 1 + lambd * lr * t negative, and eta complex) and alpha >= 0 (a negative
    # power makes eta grow without bound).
    (fo.ASGD, dict(lr=-1e-2), ValueError, "lr"),
    (fo.ASGD, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.ASGD, dict(lambd=-1e-4), ValueError, "lambd"),
    (fo.ASGD, dict(t0=INF), ValueError, "t0"),
    (fo.ASGD, dict(alpha="0.75"), TypeError, "alpha"),
    (fo.ASGD, dict(alpha=-0.5), ValueError, "alpha"),
    (fo.ASGD, dict(maximize=1), TypeError, "maximize"),
    # torch.optim.Rprop: "0.0 < etas[0] < 1.0 < etas[1]"; fusedopt: step sizes >= 0.
    (fo.Rprop, dict(lr=-1e-2), ValueError, "lr"),
    (
        fo.Rprop,
        dict(etas=(1.2, 0.5)),
        ValueError,
        r"^invalid etas\[0\]: 1\.2; it must be .* in \(0, 1\)$",
    ),
    (fo.Rprop, dict(etas=(0.0, 1.2)), ValueError, r"invalid etas\[0\]: 0\.0"),
    (fo.Rprop, dict(etas=(1.0, 1.2)), ValueError, r"invalid etas\[0\]: 1\.0"),
    (
        fo.Rprop,
        dict(etas=(0.5, 1.0)),
        ValueError,
        r"^invalid etas\[1\]: 1\.0; it must be a finite number > 1$",
    ),
    (fo.Rprop, dict(etas=(0.5, 0.9)), ValueError, r"invalid etas\[1\]: 0\.9"),
    (fo.Rprop, dict(etas=(0.5,)), TypeError, "etas must be a sequence of 2"),
    (fo.Rprop, dict(step_sizes=(-1e-6, 50)), ValueError, r"invalid step_sizes\[0\]: -1e-06"),
    (fo.Rprop, dict(step_sizes=(1e-6, INF)), ValueError, r"invalid step_sizes\[1\]: inf"),
    (fo.Rprop, dict(step_sizes=50), TypeError, "step_sizes must be a sequence of 2"),
    (fo.Rprop, dict(maximize="no"), TypeError, "maximize"),
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
    # unordered containers: which value is beta1 would be up to a hash (torch refuses a set)
    ("betas", {0.999, 0.9}, TypeError, r"betas must be a sequence of 2"),
    ("betas", {0.9: 0, 0.999: 1}, TypeError, r"betas must be a sequence of 2"),
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


# ------------------------------------------------- error cases derived from the rules
def valid_number(rule: Rule) -> float:
    """A number inside a real ``rule``'s range, away from its edges."""
    low = rule.low if math.isfinite(rule.low) else 0.0
    return (low + rule.high) / 2 if math.isfinite(rule.high) else low + 0.5


def valid_entries(rule: Rule) -> tuple[float, ...]:
    """One valid number per entry of a real ``rule`` (each entry under its own rule)."""
    return tuple(valid_number(rule.element(j)) for j in range(rule.width))


Case = tuple[str, Any, type[Exception], str]  # (label, value, exception, message regex)


def _number_errors(name: str, rule: Rule) -> list[Case]:
    """Bad values of one number of a real rule (``name``: the key, or ``key[i]`` for an
    entry of a pair), each with the whole message expected at construction."""
    slot, must = re.escape(name), re.escape(rule.must)

    def invalid(value: Any) -> str:
        return rf"^invalid {slot}: {re.escape(repr(value))}; it must be {must}$"

    out: list[Case] = []
    if math.isfinite(rule.low):
        out.append(("below-low", rule.low - 1.0, ValueError, invalid(rule.low - 1.0)))
        if rule.low_open:
            out.append(("at-open-low", rule.low, ValueError, invalid(rule.low)))
    if math.isfinite(rule.high):
        above = rule.high if rule.high_open else rule.high + 0.5
        label = "at-open-high" if rule.high_open else "above-high"
        out.append((label, above, ValueError, invalid(above)))
    for label, value in (("nan", NAN), ("inf", INF), ("-inf", -INF), ("f32-nan", np.float32(NAN))):
        out.append((label, value, ValueError, invalid(value)))
    too_large = rf"^invalid {slot}: \d+\.\.\.\d+ is too large; it must be {must}$"
    out.append(("huge-int", 10**400, ValueError, too_large))
    for label, value, type_name in (
        ("str", "0.5", "str"),
        ("bool", True, "bool"),
        ("numpy-bool", np.True_, "numpy.bool"),
        ("array", np.array(0.5), "numpy.ndarray"),
        ("none", None, "NoneType"),
        ("complex", 0.5 + 0.5j, "complex"),
        ("list", [0.5], "list"),
    ):
        out.append((label, value, TypeError, rf"^{slot} must be a real number, got {type_name}$"))
    return out


def _key_errors(name: str, rule: Rule) -> list[Case]:
    """Bad values of key ``name`` under ``rule``."""
    if rule.kind == "flag":
        return [
            (label, value, TypeError, rf"^{name} must be a bool, got {type_name}$")
            for label, value, type_name in (
                ("int", 1, "int"),
                ("zero", 0, "int"),
                ("float", 1.0, "float"),
                ("str", "True", "str"),
                ("none", None, "NoneType"),
                ("array", np.array(True), "numpy.ndarray"),
            )
        ]
    if rule.width == 1:
        return _number_errors(name, rule)
    valid = valid_entries(rule)
    out: list[Case] = []
    for j in range(rule.width):
        for label, value, exc, match in _number_errors(f"{name}[{j}]", rule.element(j)):
            entries = tuple(value if k == j else valid[k] for k in range(rule.width))
            out.append((f"[{j}]-{label}", entries, exc, match))
    not_a_pair = rf"^{name} must be a sequence of {rule.width} numbers, got "
    for label, value in (
        ("short", valid[:-1]),
        ("long", (*valid, valid[-1])),
        ("number", valid[0]),
        ("str", "x" * rule.width),  # a str of the right length is not a sequence of numbers
        ("none", None),
    ):
        out.append((label, value, TypeError, not_a_pair))
    return out


# The offset from a requirement's value that satisfies it, and one that violates it.
_SATISFY = {">": 0.5, ">=": 0.0, "<": -1.0, "<=": 0.0, "==": 0.0, "!=": 0.5}
_VIOLATE = {">": 0.0, ">=": -1.0, "<": 0.0, "<=": 1.0, "==": 0.5, "!=": 0.0}
_OP_NAMES = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "eq", "!=": "ne"}


def rule_errors(cls: type[fo.Optimizer]) -> list[BadHyper]:
    """Every bad value derived from ``cls.hyperparameters``: for each key, values that
    break its rule, and for a flag with requirements (SGD's nesterov), each requirement
    broken in turn with the flag True and the others met."""
    out = []
    for name, rule in cls.hyperparameters.items():
        for label, value, exc, match in _key_errors(name, rule):
            out.append(BadHyper(cls, {name: value}, exc, match, f"{cls.__name__}-{name}-{label}"))
        met = {other: value + _SATISFY[op] for other, op, value in rule.requires}
        for other, op, value in rule.requires:
            broken = value + _VIOLATE[op]
            kwargs = {name: True, **met, other: broken}
            match = rf"^{name}=True requires .* \({other} is {re.escape(repr(float(broken)))}\)$"
            label = f"{cls.__name__}-{name}-requires-{other}-{_OP_NAMES[op]}-{value}"
            out.append(BadHyper(cls, kwargs, ValueError, match, label))
    return out


BAD_HYPERPARAMETERS: list[BadHyper] = _hand_errors() + [
    case for cls in OPTIMIZERS for case in rule_errors(cls)
]


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


def rule_edges(cls: type[fo.Optimizer]) -> list[tuple[str, dict[str, Any]]]:
    """Values derived from ``cls.hyperparameters`` that must be accepted: each end of a
    range (the largest number below an open end), other number types, NumPy bools."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, rule in cls.hyperparameters.items():
        if rule.kind == "flag":
            out.append(("numpy-false", {name: np.False_}))
            if not rule.requires:
                out.append(("numpy-true", {name: np.True_}))
            continue
        if rule.elements:  # each number at its own edges, the others valid
            valid = valid_entries(rule)
            for j in range(rule.width):
                for label, x in _number_edges(rule.element(j)):
                    entries = tuple(x if k == j else valid[k] for k in range(rule.width))
                    out.append((f"[{j}]-{label}", {name: entries}))
        else:
            for label, x in _number_edges(rule):
                value = x if rule.width == 1 else (x,) * rule.width
                out.append((label, {name: value}))
        if rule.width > 1:
            out.append(("list", {name: list(valid_entries(rule))}))
            out.append(("array", {name: np.array(valid_entries(rule))}))
    return out


def _number_edges(rule: Rule) -> list[tuple[str, Any]]:
    """Numbers a real ``rule`` accepts: both ends of its range (the nearest number inside
    an open end) and other number types."""
    valid = valid_number(rule)
    edges = [("f32", np.float32(valid)), ("int", int(valid)), ("numpy-int", np.int64(1))]
    if math.isfinite(rule.low):
        edges.append(("low", float(np.nextafter(rule.low, INF)) if rule.low_open else rule.low))
    if math.isfinite(rule.high):
        top = float(np.nextafter(rule.high, -INF)) if rule.high_open else rule.high
        edges.append(("high", top))
    return [
        (label, x)
        for label, x in edges
        if (x > rule.low if rule.low_open else x >= rule.low)
        and (x < rule.high if rule.high_open else x <= rule.high)
    ]


ACCEPTED_HYPERPARAMETERS = [
    pytest.param(cls, kwargs, id=f"{cls.__name__}-{label}") for label, cls, kwargs in HAND_ACCEPTED
] + [
    pytest.param(cls, kwargs, id=f"{cls.__name__}-{'-'.join(kwargs)}-{label}")
    for cls in OPTIMIZERS
    for label, kwargs in rule_edges(cls)
]
