"""Hyperparameters are read from the param groups, by key, at every step.

Each algorithm declares its hyperparameters once (``hyperparameters``: key -> check);
the base class checks groups with that table and the native Plan reads the same keys
from ``param_groups`` on each step. These tests hold the fused kernel to the NumPy
reference after every kind of hyperparameter has been changed between steps, check
that a bad value written between steps is refused with its name and changes nothing,
and that Adam's ``decoupled_weight_decay`` group key is AdamW's rule, as in torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.optimizer import Optimizer
from fusedopt.rules import Rule

from .table import CONFIGS, ROWS

OPTIMIZERS = sorted({cls for _, cls, _ in ROWS}, key=lambda c: c.__name__)


def changed(value: Any, rule: Rule) -> Any:
    """Another valid value of a hyperparameter, of the same kind."""
    if rule.kind == "flag":
        return not value
    if rule.width == 2:
        return (value[0] * 0.9, value[1] * 0.99)
    return value * 0.5 + 0.01


def make(cls: type[Optimizer], kwargs: dict[str, Any], backend: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 5)), rng.standard_normal(7).astype(np.float32)]
    return params, cls(params, backend=backend, **kwargs)


def grads_for(params: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_hyperparameter_is_a_checked_group_key(cls):
    """The table names group keys only; the kernel reads all but the initial-state ones."""
    opt = cls([np.zeros(3)])
    group = opt.param_groups[0]
    assert set(cls.hyperparameters) == set(group) - {"params"}
    assert set(cls.hyper_names) == set(cls.hyperparameters) - set(cls.init_hyperparameters)
    assert list(cls.hyper_names) == [k for k in cls.hyperparameters if k in cls.hyper_names]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_a_hyperparameter_changed_between_steps_is_used_by_both_backends(cls, kwargs):
    """Each key in turn is rewritten after two steps (as a schedule would); the fused
    kernel must then still follow the NumPy reference, which reads the group in Python:
    a kernel that kept an old value would leave it."""
    for key, check in cls.hyperparameters.items():
        if key in cls.init_hyperparameters:
            continue
        runs = {}
        for backend in ("fused", "numpy"):
            params, opt = make(cls, kwargs, backend)
            group = opt.param_groups[0]
            value = changed(group[key], check)
            if key == "nesterov" and value and (group["momentum"] == 0 or group["dampening"]):
                continue  # not a valid SGD configuration
            if key == "dampening" and group["nesterov"]:
                continue  # nesterov requires zero dampening
            for t in range(4):
                if t == 2:
                    group[key] = value
                opt.step(grads_for(params, t))
            runs[backend] = params
        if runs:
            for a, b in zip(runs["fused"], runs["numpy"], strict=True):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6, err_msg=key)


BAD_WRITES = [
    ("lr", float("nan"), ValueError, r"param_groups\[0\]: invalid lr: nan"),
    ("lr", math.inf, ValueError, r"param_groups\[0\]: invalid lr: inf"),
    ("lr", -1.0, ValueError, r"param_groups\[0\]: invalid lr: -1\.0; it must be a finite num"),
    ("lr", "fast", TypeError, r"param_groups\[0\]: lr must be a real number"),
    ("lr", 10**400, ValueError, r"param_groups\[0\]: invalid lr: 1000.* is too large"),
    ("betas", (1.0, 0.9), ValueError, r"param_groups\[0\]: invalid betas\[0\]: 1\.0"),
    ("betas", (0.9, 1.5), ValueError, r"param_groups\[0\]: invalid betas\[1\]: 1\.5"),
    ("eps", -1.0, ValueError, r"param_groups\[0\]: invalid eps: -1\.0"),
    ("weight_decay", -1.0, ValueError, r"param_groups\[0\]: invalid weight_decay: -1\.0"),
    ("alpha", -1.0, ValueError, r"param_groups\[0\]: invalid alpha: -1\.0"),
    ("maximize", 1, TypeError, r"param_groups\[0\]: maximize must be a bool, got int"),
    ("betas", (0.9,), TypeError, r"param_groups\[0\]: betas must be a sequence of 2"),
    ("betas", 0.9, TypeError, r"param_groups\[0\]: betas must be a sequence of 2"),
    ("betas", (0.9, float("nan")), ValueError, r"param_groups\[0\]: invalid betas\[1\]: nan"),
    ("betas", (None, 0.9), TypeError, r"param_groups\[0\]: betas\[0\] must be a real number"),
]


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize(
    ("cls", "key", "value", "exc", "match"),
    [
        pytest.param(cls, *bad, id=f"{cls.__name__}-{i}")
        for cls in OPTIMIZERS
        for i, bad in enumerate(BAD_WRITES)
        if bad[0] in cls.hyperparameters
    ],
)
def test_a_bad_value_written_between_steps_is_refused_and_changes_nothing(
    cls, key, value, exc, match, backend
):
    params, opt = make(cls, {}, backend)
    opt.step(grads_for(params, 0))
    before = [p.copy() for p in params]
    state = opt.state_dict()
    opt.param_groups[0][key] = value
    with pytest.raises(exc, match=match):
        opt.step(grads_for(params, 1))
    for p, q in zip(params, before, strict=True):
        assert p.tobytes() == q.tobytes()
    after = opt.state_dict()["state"]
    for i, st in state["state"].items():
        for name, arr in st.items():
            assert np.asarray(after[i][name]).tobytes() == np.asarray(arr).tobytes()


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_a_key_deleted_from_a_group_is_named(backend):
    params, opt = make(fo.Adam, {}, backend)
    del opt.param_groups[0]["eps"]
    with pytest.raises((ValueError, KeyError), match="eps"):
        opt.step(grads_for(params, 0))
    assert not opt.state


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_with_decoupled_weight_decay_is_adamw(backend, amsgrad):
    """As in torch 2.x: AdamW is Adam(decoupled_weight_decay=True), bit for bit."""
    kw = dict(lr=0.05, weight_decay=0.3, amsgrad=amsgrad)
    pa, a = make(fo.Adam, {**kw, "decoupled_weight_decay": True}, backend)
    pw, w = make(fo.AdamW, kw, backend)
    pl, plain = make(fo.Adam, kw, backend)
    for t in range(5):
        for params, opt in ((pa, a), (pw, w), (pl, plain)):
            opt.step(grads_for(params, t))
    for x, y, z in zip(pa, pw, pl, strict=True):
        assert x.tobytes() == y.tobytes()
        assert not np.array_equal(x, z)  # the coupled L2 rule is another trajectory
    assert a.param_groups[0]["decoupled_weight_decay"] is True
    assert w.param_groups[0]["decoupled_weight_decay"] is True
    assert plain.param_groups[0]["decoupled_weight_decay"] is False


def test_adamw_keeps_its_rule_when_the_group_key_is_switched_off():
    """The group key, not the class, decides (as in torch): a user may switch it."""
    pw, w = make(fo.AdamW, dict(lr=0.05, weight_decay=0.3), "fused")
    pa, a = make(fo.Adam, dict(lr=0.05, weight_decay=0.3), "fused")
    w.param_groups[0]["decoupled_weight_decay"] = False
    for t in range(3):
        w.step(grads_for(pw, t))
        a.step(grads_for(pa, t))
    for x, y in zip(pw, pa, strict=True):
        assert x.tobytes() == y.tobytes()


def test_adam_group_keys_are_torch_keys():
    torch = pytest.importorskip("torch")
    for ours, theirs in ((fo.Adam, torch.optim.Adam), (fo.AdamW, torch.optim.AdamW)):
        mine = ours([np.zeros(2)]).param_groups[0]
        torch_group = theirs([torch.zeros(2)]).param_groups[0]
        assert set(mine) <= set(torch_group)
        assert mine["decoupled_weight_decay"] == torch_group["decoupled_weight_decay"]


class _Exploding:
    """A value whose conversion raises something other than TypeError/ValueError."""

    def __iter__(self):
        raise RuntimeError("boom from __iter__")

    def __float__(self) -> float:
        raise RuntimeError("boom from __float__")


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize("key", ["lr", "betas"])
def test_an_unexpected_error_while_reading_a_value_propagates_unchanged(key, backend):
    """Only TypeError/ValueError are turned into fusedopt's messages; anything else
    (an interrupt, a bug in the user's object) propagates as it is, nothing written."""
    params, opt = make(fo.Adam, {}, backend)
    opt.step(grads_for(params, 0))
    before = [p.copy() for p in params]
    opt.param_groups[0][key] = _Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        opt.step(grads_for(params, 1))
    for p, q in zip(params, before, strict=True):
        assert p.tobytes() == q.tobytes()
