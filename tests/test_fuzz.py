"""A hypothesis-driven fuzz of every public entry point.

Wrong types, shapes and dtypes, read-only, strided, byte-swapped and misaligned arrays,
views that overlap a parameter or a state array, NaN/inf and absurd hyperparameters,
corrupted state dicts. The contract under test, for every call:

* it succeeds, when the input is valid, with the result of the same call on clean input;
* or it raises ``ValueError`` or ``TypeError`` (nothing else: no crash, no KeyError,
  no AttributeError, no OverflowError) and every array is bit-identical afterwards;
* and either way the optimizer goes on exactly as one that never saw the call.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusedopt as fo

from .helpers import grads_for, make
from .hypothesis_settings import examples
from .table import BACKENDS, CONFIGS, ROWS

ALLOWED = (ValueError, TypeError)
OK = "ok"

# ------------------------------------------------------------------------ helpers


def fingerprint(opt: fo.Optimizer, params: list[np.ndarray], extra: list[np.ndarray]) -> Any:
    """Bytes, dtype, shape and strides of every array, and the optimizer's whole state."""
    sd = opt.state_dict()
    arrays = [*params, *extra]
    return (
        [(a.tobytes(), a.dtype.str, a.shape, a.strides, a.flags.writeable) for a in arrays],
        {i: {k: v.tobytes() for k, v in s.items()} for i, s in sd["state"].items()},
        repr(sd["param_groups"]),
        opt.skipped_steps,
    )


def same_course(opt, params, twin, twin_params, seed: int) -> None:
    """The optimizer and its twin (which never saw the fuzzed call) take one more valid
    step and must agree bit for bit."""
    opt.step(grads_for(params, seed))
    twin.step(grads_for(twin_params, seed))
    for p, q in zip(params, twin_params, strict=True):
        assert p.tobytes() == q.tobytes()
    sd, st_ = opt.state_dict()["state"], twin.state_dict()["state"]
    assert sd.keys() == st_.keys()
    for i in sd:
        for k in sd[i]:
            assert sd[i][k].tobytes() == st_[i][k].tobytes(), (i, k)


def check_call(call: Callable[[], Any], expect: Any, opt, params, extra) -> bool:
    """Runs ``call``: ``expect`` is OK, an exception class, or None (either is fine).
    Returns whether it succeeded."""
    before = fingerprint(opt, params, extra)
    try:
        call()
    except ALLOWED as e:
        assert expect is not OK, f"valid input refused: {e!r}"
        if expect is not None:
            assert isinstance(e, expect), f"expected {expect.__name__}, got {e!r}"
        assert fingerprint(opt, params, extra) == before, "a failed call changed an array"
        assert str(e), "an error without a message"
        return False
    assert expect in (OK, None), f"invalid input accepted (expected {expect})"
    return True


# -------------------------------------------------------------- bad and odd grads


def misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` whose data starts one byte off its dtype's alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def strided(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view holding the values of ``a``."""
    big = np.zeros((*a.shape, 2), a.dtype)
    big[..., 0] = a
    return big[..., 0]


def readonly(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.flags.writeable = False
    return out


# name -> (make(grad, index, params, opt) -> replacement, expected outcome). A valid
# replacement holds the values of the grad it replaces.
GRAD_MUTATIONS: dict[str, tuple[Callable[..., Any], Any]] = {
    "readonly": (lambda g, i, ps, o: readonly(g), OK),
    "strided": (lambda g, i, ps, o: strided(g), OK),
    "fortran": (lambda g, i, ps, o: np.array(g, order="F"), OK),
    "c-order": (lambda g, i, ps, o: np.array(g, order="C"), OK),
    "reversed-view": (lambda g, i, ps, o: np.flip(np.flip(g).copy()) if g.ndim else g, OK),
    "byteswapped": (lambda g, i, ps, o: g.astype(g.dtype.newbyteorder()), OK),
    "misaligned": (lambda g, i, ps, o: misaligned(g), OK),
    "nan": (lambda g, i, ps, o: np.full_like(g, np.nan), OK),
    "inf": (lambda g, i, ps, o: np.full_like(g, -np.inf), OK),
    "float16": (lambda g, i, ps, o: g.astype(np.float16), TypeError),
    "other-float": (
        lambda g, i, ps, o: g.astype(np.float64 if g.dtype == np.float32 else np.float32),
        TypeError,
    ),
    "int": (lambda g, i, ps, o: g.astype(np.int64), TypeError),
    "complex": (lambda g, i, ps, o: g.astype(np.complex128), TypeError),
    "bool": (lambda g, i, ps, o: g > 0, TypeError),
    "object": (lambda g, i, ps, o: g.astype(object), TypeError),
    "list": (lambda g, i, ps, o: g.tolist(), TypeError),
    "none": (lambda g, i, ps, o: None, OK),  # torch 2.x: a None grad skips its parameter
    "str": (lambda g, i, ps, o: "grad", TypeError),
    "scalar": (lambda g, i, ps, o: g.dtype.type(1), TypeError),
    "extra-dim": (lambda g, i, ps, o: g[None], ValueError),
    "flat": (lambda g, i, ps, o: g.reshape(-1) if g.ndim != 1 else g.reshape(1, -1), ValueError),
    "empty": (lambda g, i, ps, o: np.zeros((0,), g.dtype), ValueError),
    "transposed": (lambda g, i, ps, o: g.T if g.ndim == 2 else g[None], ValueError),
    "is-param": (lambda g, i, ps, o: ps[i], ValueError),
    "param-view": (lambda g, i, ps, o: ps[i][...], ValueError),
    "param-readonly-view": (lambda g, i, ps, o: readonly_view(ps[i]), ValueError),
    "other-param-view": (lambda g, i, ps, o: other_param_view(g, i, ps), ValueError),
    "state-array": (lambda g, i, ps, o: state_array(g, i, o), ValueError),
}


def readonly_view(p: np.ndarray) -> np.ndarray:
    v = p[...]
    v.flags.writeable = False
    return v


def other_param_view(g: np.ndarray, i: int, ps: list[np.ndarray]) -> np.ndarray:
    """A view with g's shape and dtype into another parameter's memory."""
    for j, q in enumerate(ps):
        if j != i and q.nbytes >= g.nbytes:
            flat = q.ravel(order="K").view(np.uint8)[: g.nbytes]
            return flat.view(g.dtype).reshape(g.shape)
    return ps[i]


def state_array(g: np.ndarray, i: int, opt: fo.Optimizer) -> np.ndarray:
    """A live state array of params[i] (the state view hands them out), else the param."""
    try:
        st_ = opt.state[i]
    except KeyError:
        return opt.param_groups[0]["params"][i] if i < len(opt.param_groups[0]["params"]) else g
    for v in st_.values():
        if v.shape == g.shape and v.dtype == g.dtype:
            return v
    return opt.param_groups[0]["params"][i]


CONTAINERS: dict[str, tuple[Callable[[list[Any]], Any], Any]] = {
    "list": (lambda gs: gs, OK),
    "tuple": (lambda gs: tuple(gs), OK),
    "too-few": (lambda gs: gs[:-1], ValueError),
    "too-many": (lambda gs: [*gs, gs[0]], ValueError),
    "none": (lambda gs: None, TypeError),
    "generator": (lambda gs: (g for g in gs), TypeError),
    "dict": (lambda gs: dict(enumerate(gs)), TypeError),
    "bare-array": (lambda gs: gs[0], TypeError),
    "float": (lambda gs: 1.0, TypeError),
    "str": (lambda gs: "abcd", TypeError),
}


def worst(a: Any, b: Any) -> Any:
    """The expected outcome of two mutations together: OK only if both are OK."""
    if a is OK:
        return b
    if b is OK:
        return a
    return a if a is b else None  # two different errors: either may be raised first


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@examples(40)
@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(0, 2),
    guard=st.booleans(),
    mutations=st.dictionaries(
        st.integers(0, 3), st.sampled_from(sorted(GRAD_MUTATIONS)), max_size=3
    ),
    container=st.sampled_from(sorted(CONTAINERS)),
)
def test_fuzz_step_grads(cls, kwargs, backend, seed, steps, guard, mutations, container):
    params, opt = make(cls, kwargs, backend, seed, steps)
    twin_params, twin = make(cls, kwargs, backend, seed, steps)
    opt.skip_nonfinite = twin.skip_nonfinite = guard
    grads = grads_for(params, seed + 100)
    clean = [g.copy() for g in grads]
    expect = OK
    fuzzed: list[Any] = list(grads)
    for i, name in sorted(mutations.items()):
        mutate, outcome = GRAD_MUTATIONS[name]
        fuzzed[i] = mutate(grads[i], i, params, opt)
        if outcome is OK and name not in ("nan", "inf", "none"):
            np.testing.assert_array_equal(np.asarray(fuzzed[i]), grads[i])
        if name in ("nan", "inf"):
            clean[i] = np.asarray(fuzzed[i]).copy()
        if name == "none":  # the twin skips that parameter too
            clean[i] = None
        expect = worst(expect, outcome)
    wrap, outcome = CONTAINERS[container]
    expect = worst(expect, outcome)
    arg = wrap(fuzzed)
    grad_arrays = [g for g in fuzzed if isinstance(g, np.ndarray)]
    grad_bytes = [(g.tobytes(), g.strides) for g in grad_arrays]
    extra = [a for a in grad_arrays if not any(a is p for p in params)]
    with np.errstate(all="ignore"):
        ok = check_call(lambda: opt.step(arg), expect, opt, params, extra)
        if ok:  # the twin takes the same step with clean grads
            twin.step(clean)
            for p, q in zip(params, twin_params, strict=True):
                assert p.tobytes() == q.tobytes()
        for g, (b, s) in zip(grad_arrays, grad_bytes, strict=True):
            if not any(g is p or np.shares_memory(g, p) for p in params):
                assert (g.tobytes(), g.strides) == (b, s), "a grad was modified"
        same_course(opt, params, twin, twin_params, seed + 200)


# --------------------------------------------------- hyperparameters between steps

BAD_VALUES: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    np.float32("nan"),
    np.float64("inf"),
    10**400,
    "0.1",
    None,
    complex(0.1, 1.0),
    [0.1],
    object(),
]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@examples(30)
@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(0, 2),
    data=st.data(),
    bad=st.sampled_from(BAD_VALUES),
    pair_slot=st.integers(0, 1),
    backend=st.sampled_from(BACKENDS),
)
def test_fuzz_hyperparameter_written_between_steps(
    cls, kwargs, seed, steps, data, bad, pair_slot, backend
):
    key = data.draw(st.sampled_from(list(cls.hyperparameters)), label="key")  # any of its keys
    params, opt = make(cls, kwargs, backend, seed, steps)
    twin_params, twin = make(cls, kwargs, backend, seed, steps)
    group = opt.param_groups[0]
    old = group[key]
    if isinstance(old, tuple):
        value = tuple(bad if k == pair_slot else b for k, b in enumerate(old))
    else:
        value = bad
    group[key] = value
    grads = grads_for(params, seed + 100)
    # A non-finite or non-numeric hyperparameter is refused, whenever it is written.
    assert not check_call(lambda: opt.step(grads), None, opt, params, [])
    group[key] = old
    same_course(opt, params, twin, twin_params, seed + 200)


# --------------------------------------------------------------------- constructors

PARAM_KINDS: dict[str, Callable[[np.random.Generator, list[np.ndarray]], Any]] = {
    "f64": lambda r, prev: r.standard_normal((3, 2)),
    "f32": lambda r, prev: r.standard_normal(4).astype(np.float32),
    "0-d": lambda r, prev: np.asarray(r.standard_normal(())),
    "empty": lambda r, prev: np.zeros((0, 3)),
    "fortran": lambda r, prev: np.asfortranarray(r.standard_normal((2, 3))),
    "f16": lambda r, prev: r.standard_normal(3).astype(np.float16),
    "int": lambda r, prev: np.arange(3),
    "complex": lambda r, prev: np.ones(3, np.complex64),
    "object": lambda r, prev: np.ones(3, object),
    "bool": lambda r, prev: np.ones(3, bool),
    "byteswapped": lambda r, prev: r.standard_normal(3).astype(
        ">f8" if np.little_endian else "<f8"
    ),
    "readonly": lambda r, prev: readonly(r.standard_normal(3)),
    "strided": lambda r, prev: r.standard_normal(8)[::2],
    "reversed": lambda r, prev: r.standard_normal(4)[::-1],
    "misaligned": lambda r, prev: misaligned(r.standard_normal(3)),
    "broadcast": lambda r, prev: np.broadcast_to(np.ones(1), (4,)),
    "same-as-previous": lambda r, prev: prev[-1] if prev else np.ones(2),
    "view-of-previous": lambda r, prev: (
        prev[-1].ravel(order="K")[:1]
        if prev and isinstance(prev[-1], np.ndarray) and prev[-1].size
        else np.ones(2)
    ),
    "list": lambda r, prev: [1.0, 2.0],
    "none": lambda r, prev: None,
    "str": lambda r, prev: "w",
    "float": lambda r, prev: 1.5,
    "matrix-subclass": lambda r, prev: r.standard_normal((2, 2)).view(np.matrix),
}

HYPER_VALUES: list[Any] = [
    *BAD_VALUES,
    -1.0,
    0.0,
    1.0,
    2.0,
    0.5,
    True,
    np.float32(0.25),
    np.array(0.1),
    (0.9,),
    (0.9, 0.999),
    (0.9, 1.5),
    (float("nan"), 0.9),
    (0.9, 0.99, 0.5),
    "yes",
]


def hyper_names(cls) -> list[str]:
    return [
        n
        for n, p in inspect.signature(cls).parameters.items()
        if n not in ("params", "backend") and p.kind is not p.VAR_KEYWORD
    ]


@examples(1000)
@given(
    row=st.sampled_from(ROWS),
    kinds=st.lists(st.sampled_from(sorted(PARAM_KINDS)), min_size=0, max_size=4),
    as_groups=st.booleans(),
    shape=st.sampled_from(["list", "tuple", "generator", "bare", "dict"]),
    overrides=st.dictionaries(st.integers(0, 12), st.sampled_from(HYPER_VALUES), max_size=2),
    seed=st.integers(0, 2**16),
)
def test_fuzz_constructor(row, kinds, as_groups, shape, overrides, seed):
    _, cls, kwargs = row
    rng = np.random.default_rng(seed)
    made: list[Any] = []
    for k in kinds:
        made.append(PARAM_KINDS[k](rng, made))
    arrays = [a for a in made if isinstance(a, np.ndarray)]
    before = [(a.tobytes(), a.strides, a.flags.writeable) for a in arrays]
    names = hyper_names(cls)
    hyper = dict(kwargs)
    for k, v in overrides.items():
        hyper[names[k % len(names)]] = v
    items: Any = [{"params": [a]} for a in made] if as_groups else list(made)
    if shape == "tuple":
        items = tuple(items)
    elif shape == "generator":
        items = iter(items)
    elif shape == "bare":
        items = made[0] if made else None
    elif shape == "dict":
        items = {"params": made}
    try:
        opt = cls(items, **hyper)
    except ALLOWED as e:
        assert str(e)
        after = [(a.tobytes(), a.strides, a.flags.writeable) for a in arrays]
        assert after == before, "a refused constructor changed an array"
        return
    after = [(a.tobytes(), a.strides, a.flags.writeable) for a in arrays]
    assert after == before, "a constructor changed an array"
    for group in opt.param_groups:  # whatever was accepted is real and finite
        for k, v in group.items():
            if k == "params":
                continue
            for x in v if isinstance(v, tuple) else (v,):
                assert isinstance(x, bool | int | float | np.bool_ | np.number | str), (k, x)
                if not isinstance(x, str | bool | np.bool_):
                    assert math.isfinite(float(x)), (k, x)
    params = [p for g in opt.param_groups for p in g["params"]]
    with np.errstate(all="ignore"):
        opt.step(grads_for(params, seed))


# ------------------------------------------------------------------- add_param_group


@examples(400)
@given(
    row=st.sampled_from(ROWS),
    kind=st.sampled_from(sorted(PARAM_KINDS)),
    key=st.sampled_from(["lr", "betas", "momentum", "weight_decay", "eps", "params", "nesterov"]),
    value=st.sampled_from(HYPER_VALUES),
    overlap=st.sampled_from(["none", "same", "view"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_add_param_group(row, kind, key, value, overlap, seed):
    _, cls, kwargs = row
    params, opt = make(cls, kwargs, "fused", seed, 1)
    twin_params, twin = make(cls, kwargs, "fused", seed, 1)
    rng = np.random.default_rng(seed)
    new = PARAM_KINDS[kind](rng, [])
    if overlap == "same":
        new = params[0]
    elif overlap == "view":
        new = params[1][1:3]
    group: dict[str, Any] = {"params": [new]}
    if key != "params":
        group[key] = value
    extra = [new] if isinstance(new, np.ndarray) and not any(new is p for p in params) else []
    ok = check_call(lambda: opt.add_param_group(group), None, opt, params, extra)
    if ok:
        twin.add_param_group(
            {
                "params": [np.array(new, copy=True)],
                **{k: v for k, v in group.items() if k != "params"},
            }
        )
        params = [p for g in opt.param_groups for p in g["params"]]
        twin_params = [p for g in twin.param_groups for p in g["params"]]
    with np.errstate(all="ignore"):
        same_course(opt, params, twin, twin_params, seed + 200)


# ------------------------------------------------------------------- load_state_dict


def corrupt(sd: dict[str, Any], how: str, value: Any, rng: np.random.Generator) -> None:
    """Damages the state dict ``sd`` in place, in way ``how``."""
    state, groups = sd["state"], sd["param_groups"]
    keys = [(i, k) for i in state for k in state[i]]
    if how == "state-value" and keys:
        i, k = keys[rng.integers(len(keys))]
        state[i][k] = value
    elif how == "state-wrong-shape" and keys:
        i, k = keys[rng.integers(len(keys))]
        state[i][k] = np.zeros((7, 7))
    elif how == "state-wrong-dtype" and keys:
        i, k = keys[rng.integers(len(keys))]
        state[i][k] = np.asarray(state[i][k]).astype(np.float16)
    elif how == "state-entry" and state:
        state[next(iter(state))] = value
    elif how == "state-index":
        state[value if isinstance(value, int | str | float) else 99] = {}
    elif how == "unknown-state-key" and state:
        state[next(iter(state))]["bogus"] = np.zeros(1)
    elif how == "group-value":
        groups[0]["lr"] = value
    elif how == "group-betas" and "betas" in groups[0]:
        groups[0]["betas"] = value
    elif how == "group-params":
        groups[0]["params"] = value
    elif how == "groups":
        sd["param_groups"] = value
    elif how == "state":
        sd["state"] = value
    elif how == "drop-key":
        del sd["state"]
    elif how == "group-not-dict":
        groups[0] = value


CORRUPTIONS = [
    "state-value",
    "state-wrong-shape",
    "state-wrong-dtype",
    "state-entry",
    "state-index",
    "unknown-state-key",
    "group-value",
    "group-betas",
    "group-params",
    "groups",
    "state",
    "drop-key",
    "group-not-dict",
    "other-optimizer",
]

STATE_VALUES: list[Any] = [
    *HYPER_VALUES,
    -5,
    3,
    np.zeros(3),
    np.array([1.0]),
    np.array(np.nan),
    np.array(-1.0),
    np.array(1e300),
    np.array(2.0 + 1j),
    np.array("x"),
    [],
    {},
    [1, 2, 3],
    {"a": 1},
]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@examples(40)
@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(0, 2),
    how=st.sampled_from(CORRUPTIONS),
    value=st.sampled_from(STATE_VALUES),
    other=st.sampled_from(ROWS),
)
def test_fuzz_load_state_dict(cls, kwargs, seed, steps, how, value, other):
    params, opt = make(cls, kwargs, "fused", seed, steps)
    twin_params, twin = make(cls, kwargs, "fused", seed, steps)
    if how == "other-optimizer":
        _, ocls, okw = other
        _, source = make(ocls, okw, "fused", seed + 1, 2)
        sd = source.state_dict()
    else:
        sd = opt.state_dict()
        corrupt(sd, how, value, np.random.default_rng(seed))
    ok = check_call(lambda: opt.load_state_dict(sd), None, opt, params, [])
    if ok:  # accepted: the twin loads the same dict, and both must go on identically
        twin.load_state_dict(sd)
    with np.errstate(all="ignore"):
        same_course(opt, params, twin, twin_params, seed + 200)


# --------------------------------------------------------------------- module level


@examples(60)
@given(value=st.sampled_from([*HYPER_VALUES, 0, -3, 1, 3, 2**31, 2**63, 2**70, np.int64(2)]))
def test_fuzz_set_num_threads(value):
    before = fo.get_num_threads()
    try:
        fo.set_num_threads(value)
    except ALLOWED as e:
        assert str(e)
        assert fo.get_num_threads() == before
    finally:
        fo.set_num_threads(before)


@examples(40)
@given(value=st.sampled_from([*HYPER_VALUES, 0, 1, np.bool_(True)]))
def test_fuzz_skip_nonfinite_attribute(value):
    opt = fo.SGD([np.zeros(2)], lr=0.1)
    try:
        opt.skip_nonfinite = value
    except TypeError:
        assert opt.skip_nonfinite is False
    else:
        assert isinstance(value, bool | np.bool_)
        assert opt.skip_nonfinite is bool(value)


# ------------------------------------------- arrays changed behind the optimizer's back


@pytest.mark.parametrize(
    "change",
    ["resize", "shrink", "dtype", "readonly", "state-resize", "state-dtype", "state-readonly"],
)
def test_arrays_changed_behind_the_optimizers_back_are_refused(change, backend):
    """NumPy lets Python code reallocate (``resize(refcheck=False)``), retype or lock an
    array the optimizer holds. The native step would then write at stale addresses
    (under AddressSanitizer: a heap-use-after-free); it must refuse instead."""
    p, q = np.ones(100), np.ones(8, np.float32)
    opt = fo.Adam([p, q], lr=0.1, backend=backend)
    grads = [np.ones(100), np.ones(8, np.float32)]
    opt.step(grads)
    state = opt._state[0]["exp_avg"]  # the live array (opt.state gives read-only views)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if change == "resize":
            p.resize(1 << 20, refcheck=False)
        elif change == "shrink":
            p.resize(3, refcheck=False)
        elif change == "dtype":
            q.dtype = np.int32
        elif change == "readonly":
            p.flags.writeable = False
        elif change == "state-resize":
            state.resize(1 << 20, refcheck=False)
        elif change == "state-dtype":
            state.dtype = np.int64
        elif change == "state-readonly":
            state.flags.writeable = False
    snapshot = [a.tobytes() for a in (p, q, state)]
    with pytest.raises(ValueError, match=r"changed|read-only"):
        opt.step([np.ones(p.shape), np.ones(q.shape, np.float32)])
    assert [a.tobytes() for a in (p, q, state)] == snapshot
