"""state_dict / load_state_dict: torch-shaped, copies, and a resume that is bit-identical."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fusedopt as fo

from .table import CONFIGS


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


@pytest.mark.parametrize("backend", ["fused", "numpy"])
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
