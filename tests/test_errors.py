"""Every error of the contract: the right exception, a message naming the culprit, no change."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import fingerprint, grads_for, make
from .table import CONFIGS, OPTIMIZERS, PER_ARRAY_SUMS


def but(params: list[np.ndarray], i: int, grad: object) -> list[object]:
    """Zero grads for ``params``, with grads[i] replaced by ``grad``."""
    grads: list[object] = [np.zeros_like(p) for p in params]
    grads[i] = grad
    return grads


# The parameters of helpers.make: float64 (4, 3), float32 (5,), float64 (), float32 (3, 4) F.
BAD_GRADS = [
    ("too-few", lambda ps: [np.zeros_like(p) for p in ps[:3]], ValueError, "expected 4 grads"),
    (
        "too-many",
        lambda ps: [np.zeros_like(p) for p in ps] + [np.zeros(1)],
        ValueError,
        "expected 4 grads",
    ),
    ("dtype", lambda ps: but(ps, 1, np.zeros(5)), TypeError, r"grads\[1\]"),
    ("shape", lambda ps: but(ps, 0, np.zeros((3, 4))), ValueError, r"grads\[0\]"),
    ("list-not-array", lambda ps: but(ps, 1, [0.0] * 5), TypeError, r"grads\[1\]"),
    ("bare-ndarray", lambda ps: np.zeros(3), TypeError, "single numpy.ndarray"),
    ("not-a-sequence", lambda ps: 3.0, TypeError, "grads must be a sequence"),
    ("int-grad", lambda ps: but(ps, 2, np.zeros((), np.int64)), TypeError, r"grads\[2\]"),
    ("grad-is-param", lambda ps: but(ps, 0, ps[0]), ValueError, "shares memory"),
    (
        "grad-views-another-param",
        lambda ps: but(ps, 1, ps[3].ravel(order="K")[:5]),
        ValueError,
        r"grads\[1\].*shares memory",
    ),
]


@pytest.mark.parametrize(("name", "bad", "exc", "match"), BAD_GRADS, ids=[b[0] for b in BAD_GRADS])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_bad_grads_change_nothing(cls, kwargs, name, bad, exc, match, backend):
    params, opt = make(cls, kwargs, backend, steps=1)
    before = fingerprint(opt, params)
    with pytest.raises(exc, match=match):
        opt.step(bad(params))
    assert fingerprint(opt, params) == before


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_bad_grads_on_the_first_step_create_no_state(cls, kwargs, backend):
    params, opt = make(cls, kwargs, backend)
    before = fingerprint(opt, params)
    with pytest.raises(ValueError):
        opt.step([np.zeros_like(params[0])])
    assert fingerprint(opt, params) == before


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_grads_are_never_modified_and_may_be_read_only_or_a_tuple(cls, kwargs, backend):
    params, opt = make(cls, kwargs, backend, steps=1)
    grads = tuple(grads_for(params, 7))
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
def test_add_param_group_checks_before_adding(cls, kwargs):
    params, opt = make(cls, kwargs, steps=1)
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
    if cls in PER_ARRAY_SUMS:  # its norms are summed in the other order: the last bits differ
        np.testing.assert_allclose(wt, ref, rtol=1e-13, atol=1e-15)
        return
    np.testing.assert_array_equal(wt, ref)
    np.testing.assert_array_equal(base, ref.T)


@pytest.mark.parametrize("cls", [pytest.param(c, id=c.__name__) for c in OPTIMIZERS])
def test_a_big_endian_param_is_refused_by_name(cls, dtype):
    """The kernels update arrays in the machine's byte order; a byte-swapped parameter
    is refused by name (a byte-swapped grad is read: see test_fuzz)."""
    order = ">" if np.little_endian else "<"
    swapped = np.zeros(3, np.dtype(dtype).newbyteorder(order))
    end = "big" if order == ">" else "little"
    with pytest.raises(TypeError, match=rf"params\[1\] has dtype .*\({end}-endian\)"):
        cls([np.zeros(2), swapped])
    with pytest.raises(TypeError, match=f"{end}-endian"):
        cls([{"params": [swapped]}])
