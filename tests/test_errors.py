"""Every error of the contract: the right exception, a message naming the culprit, no change."""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo

from .table import CONFIGS


def snapshot(opt: fo.Optimizer, params: list[np.ndarray]) -> tuple:
    return [p.copy(order="K") for p in params], opt.state_dict()


def assert_unchanged(opt: fo.Optimizer, params: list[np.ndarray], before: tuple) -> None:
    saved_params, saved = before
    for p, q in zip(params, saved_params, strict=True):
        assert p.tobytes() == q.tobytes()
    now = opt.state_dict()
    assert now["state"].keys() == saved["state"].keys()
    for i, st in saved["state"].items():
        assert now["state"][i].keys() == st.keys()
        for k, v in st.items():
            assert now["state"][i][k].tobytes() == v.tobytes(), (i, k)
    assert now["param_groups"] == saved["param_groups"]


def setup(cls, kwargs, rng, steps=1):
    params = [
        rng.standard_normal((4, 3)),
        rng.standard_normal(5).astype(np.float32),
        rng.standard_normal(()),
    ]
    opt = cls(params, **kwargs)
    for _ in range(steps):
        opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    return params, opt


BAD_GRADS = [
    ("too-few", lambda ps: [np.zeros_like(p) for p in ps[:2]], ValueError, "expected 3 grads"),
    (
        "too-many",
        lambda ps: [np.zeros_like(p) for p in ps] + [np.zeros(1)],
        ValueError,
        "expected 3 grads",
    ),
    (
        "dtype",
        lambda ps: [np.zeros_like(ps[0]), np.zeros(5), np.zeros_like(ps[2])],
        TypeError,
        r"grads\[1\]",
    ),
    (
        "shape",
        lambda ps: [np.zeros((3, 4)), np.zeros_like(ps[1]), np.zeros_like(ps[2])],
        ValueError,
        r"grads\[0\]",
    ),
    (
        "list-not-array",
        lambda ps: [np.zeros_like(ps[0]), [0.0] * 5, np.zeros_like(ps[2])],
        TypeError,
        r"grads\[1\]",
    ),
    ("bare-ndarray", lambda ps: np.zeros(3), TypeError, "single numpy.ndarray"),
    ("not-a-sequence", lambda ps: 3.0, TypeError, "grads must be a sequence"),
    (
        "int-grad",
        lambda ps: [np.zeros_like(ps[0]), np.zeros_like(ps[1]), np.zeros((), np.int64)],
        TypeError,
        r"grads\[2\]",
    ),
    (
        "grad-is-param",
        lambda ps: [ps[0], np.zeros_like(ps[1]), np.zeros_like(ps[2])],
        ValueError,
        "shares memory",
    ),
]


@pytest.mark.parametrize("backend", ["fused", "numpy"])
@pytest.mark.parametrize(("name", "make", "exc", "match"), BAD_GRADS, ids=[b[0] for b in BAD_GRADS])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_bad_grads_change_nothing(cls, kwargs, name, make, exc, match, backend, rng):
    params, opt = setup(cls, {**kwargs, "backend": backend}, rng)
    before = snapshot(opt, params)
    with pytest.raises(exc, match=match):
        opt.step(make(params))
    assert_unchanged(opt, params, before)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_bad_grads_on_the_first_step_create_no_state(cls, kwargs, rng):
    params, opt = setup(cls, kwargs, rng, steps=0)
    before = snapshot(opt, params)
    with pytest.raises(ValueError):
        opt.step([np.zeros_like(params[0])])
    assert_unchanged(opt, params, before)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_grads_are_never_modified_and_may_be_read_only_or_a_tuple(cls, kwargs, rng):
    params, opt = setup(cls, kwargs, rng)
    grads = tuple(rng.standard_normal(p.shape).astype(p.dtype) for p in params)
    copies = [g.copy() for g in grads]
    for g in grads:
        g.flags.writeable = False
    opt.step(grads)
    for g, c in zip(grads, copies, strict=True):
        assert g.tobytes() == c.tobytes()


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_bad_params(cls, kwargs, rng):
    w = rng.standard_normal((4, 6))
    with pytest.raises(TypeError, match=r"single numpy\.ndarray"):
        cls(w, **kwargs)
    with pytest.raises(ValueError, match="empty"):
        cls([], **kwargs)
    with pytest.raises(ValueError, match="same array"):
        cls([w, w], **kwargs)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        cls([w[:2], w[1:]], **kwargs)
    with pytest.raises(TypeError, match=r"params\[1\].*int64"):
        cls([w, np.arange(3)], **kwargs)
    with pytest.raises(TypeError, match=r"params\[1\]"):
        cls([w, [1.0, 2.0]], **kwargs)
    ro = w.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        cls([ro], **kwargs)
    with pytest.raises(ValueError, match=r"params\[0\] is not contiguous"):
        cls([w[:, ::2]], **kwargs)
    with pytest.raises(ValueError, match="backend"):
        cls([w], backend="cuda", **kwargs)
    with pytest.raises(ValueError, match="invalid lr"):
        cls([w], **{**kwargs, "lr": -1.0})
    with pytest.raises(ValueError, match="invalid lr"):
        cls([w], **{**kwargs, "lr": float("nan")})


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_add_param_group_checks_before_adding(cls, kwargs, rng):
    params, opt = setup(cls, kwargs, rng)
    with pytest.raises(ValueError, match="same array"):
        opt.add_param_group({"params": [params[0]]})
    with pytest.raises(ValueError, match="invalid lr"):
        opt.add_param_group({"params": [np.zeros(3)], "lr": -1.0})
    assert len(opt.param_groups) == 1
    extra = np.ones(4)
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5
    opt.step([np.zeros_like(p) for p in params] + [np.ones(4)])
    assert not np.array_equal(extra, np.ones(4))


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_transposed_param_is_updated_at_the_right_elements(cls, kwargs, rng):
    base = rng.standard_normal((5, 8))
    grads = [rng.standard_normal((8, 5)) for _ in range(3)]
    wt = base.T  # a Fortran-ordered view: updated in place, element by element
    ref = np.ascontiguousarray(base.T)
    opt_t, opt_c = cls([wt], **kwargs), cls([ref], **kwargs)
    for g in grads:
        opt_t.step([g])
        opt_c.step([g])
    np.testing.assert_array_equal(wt, ref)
    np.testing.assert_array_equal(base, ref.T)
