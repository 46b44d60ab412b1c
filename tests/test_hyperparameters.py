"""Hyperparameters: the same rules at construction and at every step, with both backends.

Each class declares its hyperparameters once (``hyperparameters``: key -> rule); one
native validator checks the param groups at construction, in ``add_param_group`` and at
every step of both backends, before anything is written. These tests run every error
case of the table (written out by hand, and derived from each class's rules) at each of
those places: the same exception with the same message (prefixed with the group it is
about), and no parameter, state array or group changed. Values at the edge of a rule are
accepted at each place.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import fusedopt as fo

from .helpers import fingerprint, grads_for, make
from .table import ACCEPTED_HYPERPARAMETERS, BAD_HYPERPARAMETERS, OPTIMIZERS, BadHyper

BAD = [pytest.param(case, id=case.id) for case in BAD_HYPERPARAMETERS]


def is_argument(cls: type, kwargs: Mapping[str, Any]) -> bool:
    """Whether every key is a constructor argument (AdamW's ``decoupled_weight_decay``
    is a group key only, as in torch)."""
    return set(kwargs) <= set(inspect.signature(cls).parameters)


def message_at_construction(case: BadHyper) -> str:
    """The message of the constructor's refusal of ``case`` (which must match it): of
    its arguments, or for a group key that is no argument, of the group less its prefix."""
    if is_argument(case.cls, case.kwargs):
        with pytest.raises(case.exc, match=case.match) as info:
            case.cls([np.zeros(3)], **case.kwargs)
        message = str(info.value)
        assert not message.startswith("param_groups")  # the constructor's own arguments
        return message
    with pytest.raises(case.exc) as info:
        case.cls([{"params": [np.zeros(3)], **case.kwargs}])
    prefix, message = str(info.value).split(": ", 1)
    assert prefix == "param_groups[0]"
    assert re.search(case.match, message), message
    return message


@pytest.mark.parametrize("case", BAD)
def test_refused_at_construction_in_a_group_and_by_add_param_group(case):
    message = message_at_construction(case)
    with pytest.raises(case.exc) as info:
        case.cls([{"params": [np.zeros(3)], **case.kwargs}])
    assert str(info.value) == "param_groups[0]: " + message
    params, opt = make(case.cls, {}, steps=1)
    before = fingerprint(opt, params)
    with pytest.raises(case.exc) as info:
        opt.add_param_group({"params": [np.zeros(2)], **case.kwargs})
    assert str(info.value) == "param_groups[1]: " + message
    assert len(opt.param_groups) == 1
    assert fingerprint(opt, params) == before


@pytest.mark.parametrize("case", BAD)
def test_refused_when_written_between_steps_and_nothing_changes(case, backend):
    """The value written into ``param_groups[0]`` between steps (as a schedule would) is
    refused by the next step with the constructor's exception and message; no array
    changes, and once the value is put back the optimizer goes on as one that never
    saw it."""
    message = message_at_construction(case)
    params, opt = make(case.cls, {}, backend, steps=1)
    twin_params, twin = make(case.cls, {}, backend, steps=1)
    before = fingerprint(opt, params)
    group = opt.param_groups[0]
    saved = dict(group)
    group.update(case.kwargs)
    with pytest.raises(case.exc) as info:
        opt.step(grads_for(params, 10))
    assert str(info.value) == "param_groups[0]: " + message
    group.clear()
    group.update(saved)
    assert fingerprint(opt, params) == before
    opt.step(grads_for(params, 11))
    twin.step(grads_for(twin_params, 11))
    assert fingerprint(opt, params) == fingerprint(twin, twin_params)


@pytest.mark.parametrize("cls", [pytest.param(c, id=c.__name__) for c in OPTIMIZERS])
def test_the_message_names_the_group(cls, backend):
    params, opt = make(cls, {}, backend)
    params.append(np.zeros(3))
    opt.add_param_group({"params": params[-1:]})
    opt.param_groups[1]["lr"] = float("nan")
    before = fingerprint(opt, params)
    with pytest.raises(ValueError, match=r"^param_groups\[1\]: invalid lr: nan"):
        opt.step(grads_for(params, 0))
    assert fingerprint(opt, params) == before  # group 0 was not stepped either


@pytest.mark.parametrize(("cls", "kwargs"), ACCEPTED_HYPERPARAMETERS)
def test_accepted_at_construction_and_between_steps(cls, kwargs, backend):
    """Values on the edge of a rule (and other types of number, NumPy bools) are valid
    everywhere: as arguments, in a group, in add_param_group and written between steps;
    and they are kept as given."""
    if is_argument(cls, kwargs):
        params, opt = make(cls, kwargs, backend)
    else:
        params, opt = make(cls, {}, backend)
        opt.param_groups[0].update(kwargs)
    opt.add_param_group({"params": [np.zeros(3)], **kwargs})
    later, written = make(cls, {}, backend, steps=1)
    written.param_groups[0].update(kwargs)
    with np.errstate(all="ignore"):
        opt.step(grads_for([*params, np.zeros(3)], 0))
        written.step(grads_for(later, 1))
    for k, v in kwargs.items():
        assert opt.param_groups[0][k] is v
        assert opt.param_groups[1][k] is v
        assert written.param_groups[0][k] is v
    assert opt.skipped_steps == written.skipped_steps == 0


def test_a_key_deleted_from_a_group_is_named(backend):
    params, opt = make(fo.Adam, {}, backend)
    del opt.param_groups[0]["eps"]
    with pytest.raises((ValueError, KeyError), match="eps"):
        opt.step(grads_for(params, 0))
    assert not opt.state


class _Exploding:
    """A value whose conversion raises something other than TypeError/ValueError: a
    sequence (for a pair) whose items cannot be read, and a number that cannot be one."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> float:
        raise RuntimeError("boom from __getitem__")

    def __iter__(self):
        raise RuntimeError("boom from __iter__")

    def __float__(self) -> float:
        raise RuntimeError("boom from __float__")


@pytest.mark.parametrize("key", ["lr", "betas"])
def test_an_unexpected_error_while_reading_a_value_propagates_unchanged(key, backend):
    """Only TypeError/ValueError are turned into fusedopt's messages; anything else
    (an interrupt, a bug in the user's object) propagates as it is, nothing written."""
    params, opt = make(fo.Adam, {}, backend)
    opt.step(grads_for(params, 0))
    before = fingerprint(opt, params)
    opt.param_groups[0][key] = _Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        opt.step(grads_for(params, 1))
    opt.param_groups[0][key] = fo.Adam([np.zeros(1)]).defaults[key]
    assert fingerprint(opt, params) == before
