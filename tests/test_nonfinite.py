"""Non-finite values: the policy and the opt-in guard.

Policy (as PyTorch): an inf or NaN in one grad may make that parameter and its state
inf/NaN, and never touches another array. Guard (``opt.skip_nonfinite = True``, like
optax's ``apply_if_finite``): a step whose grads hold any inf or NaN is skipped as a whole
and counted in ``opt.skipped_steps``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusedopt as fo

from .helpers import grads_for
from .hypothesis_settings import examples
from .table import CONFIGS

PARALLEL_MIN = int(fo.build_info()["parallel_min_elements"])
BAD = [np.nan, np.inf, -np.inf]


def make_params(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.standard_normal((6, 5)),
        rng.standard_normal(9).astype(np.float32),
        np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
        np.asarray(rng.standard_normal(())),
    ]


def state_bytes(opt: fo.Optimizer, i: int) -> dict[str, bytes]:
    st = opt.state_dict()["state"].get(i, {})
    return {k: v.tobytes() for k, v in st.items()}


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_a_non_finite_grad_touches_no_other_array(cls, kwargs, bad, backend):
    """Parameter 1 gets a non-finite grad element; every other parameter and its state
    are exactly those of a run where parameter 1's grads were finite."""
    rng = np.random.default_rng(0)
    init = make_params(rng)
    grads = [grads_for(init, rng) for _ in range(3)]
    poisoned = [[g.copy() for g in gs] for gs in grads]
    poisoned[1][1][4] = bad
    runs = []
    for gss in (grads, poisoned):
        ps = [p.copy(order="K") for p in init]
        opt = cls(ps, backend=backend, **kwargs)
        with np.errstate(all="ignore"):
            for gs in gss:
                opt.step(gs)
        runs.append((ps, opt))
    (clean, copt), (dirty, dopt) = runs
    for i in (0, 2, 3):
        assert clean[i].tobytes() == dirty[i].tobytes(), f"params[{i}] was touched"
        assert state_bytes(copt, i) == state_bytes(dopt, i), f"state of params[{i}] was touched"
    assert dopt.skipped_steps == 0


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_the_guard_skips_non_finite_steps_whole_and_counts_them(cls, kwargs, backend):
    rng = np.random.default_rng(1)
    init = make_params(rng)
    finite = [grads_for(init, rng) for _ in range(4)]
    ref = [p.copy(order="K") for p in init]
    ref_opt = cls(ref, backend=backend, **kwargs)
    for gs in finite:
        ref_opt.step(gs)
    ps = [p.copy(order="K") for p in init]
    opt = cls(ps, backend=backend, **kwargs)
    opt.skip_nonfinite = True
    schedule = ["bad", "ok", "bad", "ok", "ok", "bad", "ok"]  # the first step is skipped too
    k = 0
    for n, what in enumerate(schedule):
        if what == "ok":
            opt.step(finite[k])
            k += 1
            continue
        gs = [g.copy() for g in finite[0]]
        g = gs[n % len(gs)]
        g[(-1,) * g.ndim] = BAD[n % 3]  # its last element
        before = ([p.tobytes() for p in ps], opt.state_dict())
        opt.step(gs)
        after = ([p.tobytes() for p in ps], opt.state_dict())
        assert before[0] == after[0]
        assert before[1]["state"].keys() == after[1]["state"].keys()
        for i in before[1]["state"]:
            assert state_bytes(opt, i) == {
                key: v.tobytes() for key, v in before[1]["state"][i].items()
            }
    assert opt.skipped_steps == 3
    for p, q in zip(ps, ref, strict=True):  # exactly the run that only saw the finite steps
        assert p.tobytes() == q.tobytes()
    opt.skip_nonfinite = False  # off again: a non-finite grad goes through, as in PyTorch
    gs = [g.copy() for g in finite[0]]
    gs[0][0, 0] = np.nan
    with np.errstate(all="ignore"):
        opt.step(gs)
    assert opt.skipped_steps == 3


@examples(30)
@given(
    n=st.sampled_from([1, 15, 64, 65, PARALLEL_MIN - 1, PARALLEL_MIN + 64, 3 * PARALLEL_MIN + 7]),
    where=st.floats(0.0, 1.0),
    bad=st.sampled_from(BAD),
    dtype=st.sampled_from([np.float32, np.float64]),
    threads=st.integers(1, 4),
    tensor=st.integers(0, 2),
    finite_too=st.booleans(),
)
def test_the_guard_finds_a_non_finite_element_anywhere(
    n, where, bad, dtype, threads, tensor, finite_too
):
    """Wherever the one bad element is, in whichever tensor, with any number of threads
    splitting the check; and never a false alarm (huge and tiny finite values)."""
    shapes = [(n,), (3, 5), ()]
    ps = [np.ones(s, dtype) for s in shapes]
    gs = [np.full(s, np.finfo(dtype).max, dtype) for s in shapes]
    gs[1][0, 0] = np.finfo(dtype).smallest_subnormal
    gs[2][...] = -np.finfo(dtype).max
    if not finite_too:
        flat = gs[tensor].reshape(-1)
        flat[min(int(where * flat.size), flat.size - 1)] = bad
    opt = fo.SGD(ps, lr=0.0)
    opt.skip_nonfinite = True
    before = fo.get_num_threads()
    try:
        fo.set_num_threads(threads)
        with np.errstate(all="ignore"):
            opt.step(gs)
    finally:
        fo.set_num_threads(before)
    assert opt.skipped_steps == (0 if finite_too else 1)


def test_the_guard_is_an_attribute_of_every_optimizer_and_checked():
    opt = fo.Adam([np.zeros(2)])
    assert opt.skip_nonfinite is False and opt.skipped_steps == 0
    with pytest.raises(TypeError, match="skip_nonfinite"):
        opt.skip_nonfinite = 1
    assert "skip_nonfinite" in fo.Optimizer.__doc__
