"""State: ``state_dict`` / ``load_state_dict`` (torch-shaped, copies, a resume that is
bit-identical, refusals that change nothing) and the read-only, live ``opt.state``."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fusedopt as fo

from .helpers import fingerprint, grads_for, make
from .table import CONFIGS, OPTIMIZERS


def flatten(sd: dict) -> dict[str, np.ndarray]:
    """A state dict as npz entries (no pickle): state arrays by key, groups as numbers."""
    out = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            out[f"state/{i}/{k}"] = v
    for gi, g in enumerate(sd["param_groups"]):
        for k, v in g.items():
            out[f"group/{gi}/{k}"] = np.asarray(v)
    return out


def unflatten(npz: dict[str, np.ndarray]) -> dict:
    state: dict[int, dict] = {}
    groups: dict[int, dict] = {}
    for key, v in npz.items():
        kind, i, k = key.split("/")
        if kind == "state":
            state.setdefault(int(i), {})[k] = v
        else:
            value = v.tolist()
            groups.setdefault(int(i), {})[k] = tuple(value) if k == "betas" else value
    return {"state": state, "param_groups": [groups[i] for i in sorted(groups)]}


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_round_trip_through_savez_resumes_bit_identically(cls, kwargs, backend, rng):
    p0 = [rng.standard_normal((6, 7)).astype(np.float32), rng.standard_normal(11)]
    grads = [[rng.standard_normal(p.shape).astype(p.dtype) for p in p0] for _ in range(8)]
    groups = lambda ps: [{"params": ps[:1]}, {"params": ps[1:], "lr": kwargs["lr"] / 2}]  # noqa: E731

    straight = [p.copy() for p in p0]
    opt = cls(groups(straight), backend=backend, **kwargs)
    for gs in grads:
        opt.step(gs)

    first = [p.copy() for p in p0]
    opt1 = cls(groups(first), backend=backend, **kwargs)
    for gs in grads[:4]:
        opt1.step(gs)
    buf = io.BytesIO()
    np.savez(buf, **flatten(opt1.state_dict()))
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        sd = unflatten(dict(f))
    resumed = [p.copy() for p in first]
    opt2 = cls(groups(resumed), backend=backend, **kwargs)
    opt2.load_state_dict(sd)
    for gs in grads[4:]:
        opt2.step(gs)
    for a, b in zip(resumed, straight, strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_state_dict_is_torch_shaped_and_a_copy(cls, kwargs, rng):
    ps = [rng.standard_normal(4), rng.standard_normal((2, 2))]
    opt = cls([{"params": ps[:1]}, {"params": ps[1:]}], **kwargs)
    opt.step([np.ones(4), np.ones((2, 2))])
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sorted(sd["state"]) in ([0, 1], [])
    for g in sd["param_groups"]:
        for k in opt.defaults:
            assert k in g
    before = {i: {k: v.copy() for k, v in st.items()} for i, st in sd["state"].items()}
    opt.step([np.ones(4), np.ones((2, 2))])
    for i, st in sd["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(v, before[i][k])
    for i in opt.state:
        assert set(opt.state[i]) == set(sd["state"][i])
        assert opt.state[ps[i]] is not None


def test_load_refuses_another_shape_algorithm_or_dtype_and_changes_nothing(rng):
    w = rng.standard_normal((3, 4))
    opt = fo.Adam([w], lr=0.1)
    opt.step([np.ones((3, 4))])
    sd = opt.state_dict()
    other = fo.Adam([rng.standard_normal((4, 3))], lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(sd)
    assert len(other.state) == 0
    f32 = fo.Adam([w.astype(np.float32)], lr=0.1)
    with pytest.raises(TypeError, match="dtype"):
        f32.load_state_dict(sd)
    sgd = fo.SGD([w.copy()], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="an Adam optimizer, not an SGD"):
        sgd.load_state_dict(sd)
    with pytest.raises(ValueError, match="param groups"):
        fo.Adam([{"params": [w.copy()]}, {"params": [np.ones(2)]}]).load_state_dict(sd)
    bad = {**sd, "param_groups": [{**sd["param_groups"][0], "lr": -1.0}]}
    opt2 = fo.Adam([w.copy()], lr=0.1)
    with pytest.raises(ValueError, match="invalid lr"):
        opt2.load_state_dict(bad)
    assert opt2.param_groups[0]["lr"] == 0.1 and len(opt2.state) == 0


def test_adamw_refuses_an_adam_state_dict_and_changes_nothing(backend):
    """Adam and AdamW have the same state and hyperparameter names: only the class name
    the state dict carries tells them apart."""
    _, adam = make(fo.Adam, {}, backend, steps=2)
    params, adamw = make(fo.AdamW, {}, backend, seed=1, steps=1)
    before = fingerprint(adamw, params)
    with pytest.raises(
        ValueError, match=r"^the state dict holds the state of an Adam optimizer, not an AdamW$"
    ):
        adamw.load_state_dict(adam.state_dict())
    assert fingerprint(adamw, params) == before


@pytest.mark.parametrize(
    ("source", "target"),
    [
        pytest.param(a, b, id=f"{a.__name__}-into-{b.__name__}")
        for a in OPTIMIZERS
        for b in OPTIMIZERS
        if a is not b
    ],
)
def test_another_classs_state_dict_is_refused_and_changes_nothing(source, target):
    _, src = make(source, {}, steps=1)
    params, opt = make(target, {}, seed=1, steps=1)
    before = fingerprint(opt, params)
    a = r"an? "
    with pytest.raises(
        ValueError,
        match=rf"^the state dict holds the state of {a}{source.__name__} optimizer, "
        rf"not {a}{target.__name__}$",
    ):
        opt.load_state_dict(src.state_dict())
    assert fingerprint(opt, params) == before


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_state_is_read_only_and_live(cls, kwargs, backend):
    """``opt.state[i][name]`` is a read-only view of the live array: writing through it
    raises and changes nothing; a later step shows through it."""
    params, opt = make(cls, kwargs, backend, steps=1)
    assert set(opt.state) == set(opt.state_dict()["state"])
    views = {i: dict(opt.state[i]) for i in opt.state}
    before = fingerprint(opt, params)
    for i, st in views.items():
        assert opt.state[params[i]].keys() == st.keys()  # by the array, as by its index
        with pytest.raises(TypeError):
            opt.state[i]["bogus"] = np.zeros(1)  # type: ignore[index]
        for view in st.values():
            assert not view.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                view[...] = 7.0
            with pytest.raises(ValueError, match="WRITEABLE"):
                view.flags.writeable = True  # not even on purpose
    assert fingerprint(opt, params) == before
    opt.step(grads_for(params, 5))
    now = opt.state_dict()["state"]
    for i, st in views.items():
        for name, view in st.items():
            assert view.tobytes() == now[i][name].tobytes(), (i, name)  # live
    assert fingerprint(opt, params) != before
