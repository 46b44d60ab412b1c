"""Signatures and defaults of every optimizer class.

Each class against the table's ``SIGNATURES`` (written out by hand from torch.optim's
documentation), and against torch.optim's own signature and param groups when PyTorch
is installed.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import fusedopt as fo

from .table import OPTIMIZERS, ROWS, SIGNATURES

CLASSES = [pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS]


def torch_class(cls: type[fo.Optimizer]) -> type:
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.optim, cls.__name__, None)
    if theirs is None:
        pytest.skip(f"torch.optim has no {cls.__name__}")
    return theirs


def test_the_table_covers_every_optimizer():
    exported = {
        obj
        for name in fo.__all__
        if isinstance(obj := getattr(fo, name), type)
        and issubclass(obj, fo.Optimizer)
        and obj is not fo.Optimizer
    }
    assert set(OPTIMIZERS) == exported
    assert set(SIGNATURES) == exported
    assert {cls for _, cls, _ in ROWS} == exported  # every class has configurations


@pytest.mark.parametrize("cls", CLASSES)
def test_signature_is_the_tables(cls):
    sig = SIGNATURES[cls]
    params = inspect.signature(cls).parameters
    assert list(params) == ["params", *sig.positional, *sig.keyword_only, "backend"]
    for name in ("params", *sig.positional):
        assert params[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
    for name in (*sig.keyword_only, "backend"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert params["params"].default is inspect.Parameter.empty
    assert params["backend"].default == "fused"
    for name in (*sig.positional, *sig.keyword_only):
        assert params[name].default == sig.defaults[name], name
        assert type(params[name].default) is not list, name  # a pair is a tuple, never shared


@pytest.mark.parametrize("cls", CLASSES)
def test_defaults_are_the_tables(cls):
    expected = SIGNATURES[cls].defaults
    opt = cls([np.zeros(2)])
    assert opt.defaults == expected
    group = opt.param_groups[0]
    assert {k: v for k, v in group.items() if k != "params"} == expected
    for k, v in expected.items():  # a flag stays a bool, a number a number
        assert isinstance(group[k], bool) == isinstance(v, bool), k


@pytest.mark.parametrize("cls", CLASSES)
def test_every_hyperparameter_is_a_checked_group_key(cls):
    """The table names group keys only; the kernel reads all but the initial-state ones."""
    opt = cls([np.zeros(3)])
    group = opt.param_groups[0]
    assert set(cls.hyperparameters) == set(group) - {"params"} == set(SIGNATURES[cls].defaults)
    assert list(opt.defaults) == list(cls.hyperparameters)  # in the table's (kernel's) order
    assert set(cls.hyper_names) == set(cls.hyperparameters) - set(cls.init_hyperparameters)
    assert list(cls.hyper_names) == [k for k in cls.hyperparameters if k in cls.hyper_names]


@pytest.mark.parametrize("cls", CLASSES)
def test_an_unknown_keyword_is_refused(cls):
    with pytest.raises(TypeError, match="bogus"):
        cls([np.zeros(3)], bogus=1.0)
    if "eps" not in cls.hyperparameters:  # Lion has no eps
        with pytest.raises(TypeError, match="eps"):
            cls([np.zeros(3)], eps=1e-8)


# ----------------------------------------------------------------- against torch.optim
@pytest.mark.parametrize("cls", CLASSES)
def test_signature_agrees_with_torch(cls):
    """A positional call means what it means with torch.optim, and every argument has
    torch's default (torch may take more arguments: foreach, fused, capturable, ...)."""
    sig = SIGNATURES[cls]
    theirs = inspect.signature(torch_class(cls)).parameters
    positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[: 1 + len(sig.positional)] == ["params", *sig.positional]
    for name in (*sig.positional, *sig.keyword_only):
        assert name in theirs, name
        assert theirs[name].default == sig.defaults[name], name


@pytest.mark.parametrize("cls", CLASSES)
def test_group_keys_and_defaults_agree_with_torch(cls):
    torch = pytest.importorskip("torch")
    mine = cls([np.zeros(2)]).param_groups[0]
    theirs = torch_class(cls)([torch.zeros(2)]).param_groups[0]
    assert set(mine) <= set(theirs)
    for k in mine.keys() - {"params"}:
        assert mine[k] == theirs[k], k
