"""Properties of every optimizer in the table, over random shapes, dtypes and hyperparameters.

* the fused kernels follow the NumPy reference (to floating-point tolerance);
* a zero gradient without weight decay leaves every parameter unchanged;
* ``maximize=True`` with g is bit for bit ``maximize=False`` with -g;
* the result does not depend on the number of threads: bit-identical.

Shapes include 0-d and empty arrays, odd sizes, sizes around the vector width and the
kernels' unit of work (64 elements), and totals around the threading threshold, in C
and Fortran order, mixed float32/float64 in one optimizer.
"""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusedopt as fo

from .hypothesis_settings import examples
from .table import BACKENDS, CONFIGS

INFO = fo.build_info()
GRAIN = int(INFO["grain_elements"])
PARALLEL_MIN = int(INFO["parallel_min_elements"])

# 1-d sizes that sit on a boundary of the kernels: the vector width (4-16 elements),
# the unit of work (GRAIN), and the threshold past which a step is split across threads.
EDGE_SIZES = sorted(
    {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, GRAIN - 1, GRAIN, GRAIN + 1}
    | {2 * GRAIN - 1, 2 * GRAIN + 1, 3 * GRAIN + 5, 1000, 4095, 4097}
)
THRESHOLD_SIZES = [PARALLEL_MIN + d for d in (-GRAIN - 1, -1, 0, 1, GRAIN + 3)]

small_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)
edge_shapes = st.sampled_from(EDGE_SIZES).map(lambda n: (n,))
threshold_shapes = st.sampled_from(THRESHOLD_SIZES).map(lambda n: (n,))
shapes = st.one_of(small_shapes, edge_shapes, small_shapes, edge_shapes, threshold_shapes)

# Valid ranges of every hyperparameter an optimizer of the table may take.
HYPER_RANGES: dict[str, st.SearchStrategy[Any]] = {
    "lr": st.floats(1e-4, 1.0),
    "momentum": st.floats(0.05, 0.99),
    "dampening": st.floats(0.0, 1.0),
    "weight_decay": st.floats(0.0, 0.5),
    "eps": st.floats(1e-8, 1e-2),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.999)),
    "alpha": st.floats(0.5, 0.999),
    "rho": st.floats(0.5, 0.99),
    "lr_decay": st.floats(0.0, 0.1),
    "initial_accumulator_value": st.floats(0.0, 1.0),
    "momentum_decay": st.floats(0.0, 0.1),
}

RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}


@st.composite
def hyperparameters(draw: st.DrawFn, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The row's hyperparameters, each numeric one redrawn from its valid range."""
    out = dict(kwargs)
    for name, strategy in HYPER_RANGES.items():
        if name in out:
            out[name] = draw(strategy)
    return out


@st.composite
def problems(
    draw: st.DrawFn, large: bool = False
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Random parameters (1-4 tensors, float32/float64, C or Fortran order) and grads.

    ``large``: one of the tensors has a size around the threading threshold, so that the
    step is split across threads (at a place that depends on the other tensors).
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 4))
    big = draw(st.integers(0, n - 1)) if large else -1
    params = []
    for k in range(n):
        shape = draw(threshold_shapes if k == big else shapes)
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        p = np.asarray(rng.standard_normal(shape), dtype=dtype)
        if len(shape) >= 2 and draw(st.booleans()):
            p = np.asfortranarray(p)
        params.append(p)
    steps = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    grads = []
    for _ in range(steps):
        gs = []
        for p in params:
            g = np.asarray(scale * rng.standard_normal(p.shape), dtype=p.dtype)
            g[rng.random(p.shape) < 0.1] = 0  # exact zeros: Adam's eps, Lion's sign(0)
            gs.append(g)
        grads.append(gs)
    return params, grads


def run(cls, kwargs, params, grads, backend="fused"):
    ps = [p.copy(order="K") for p in params]
    opt = cls(ps, backend=backend, **kwargs)
    for gs in grads:
        opt.step(gs)
    return ps, opt


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@examples(25)
@given(data=st.data())
def test_fused_matches_reference(cls, kwargs, data):
    hyper = data.draw(hyperparameters(kwargs), label="hyperparameters")
    params, grads = data.draw(problems(), label="problem")
    fused, fopt = run(cls, hyper, params, grads, "fused")
    ref, ropt = run(cls, hyper, params, grads, "numpy")
    steps = len(grads)
    for i, (pf, pr, p0) in enumerate(zip(fused, ref, params, strict=True)):
        assert (
            pf.dtype == pr.dtype
            and pf.shape == pr.shape
            and pf.flags.f_contiguous == p0.flags.f_contiguous
        )
        # The error of a step scales with the size of the update, not of the parameter.
        moved = float(np.max(np.abs(pr.astype(np.float64) - p0), initial=0.0))
        rtol = RTOL[pf.dtype]
        atol = rtol * (moved + hyper["lr"] * steps + 1e-30)
        np.testing.assert_allclose(pf, pr, rtol=rtol, atol=atol, err_msg=f"params[{i}]")
    sf, sr = fopt.state_dict()["state"], ropt.state_dict()["state"]
    assert sf.keys() == sr.keys()
    for i in sf:
        assert sf[i].keys() == sr[i].keys()


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@pytest.mark.parametrize("backend", BACKENDS)
@examples(10)
@given(data=st.data())
def test_zero_grad_without_weight_decay_changes_no_parameter(cls, kwargs, backend, data):
    hyper = data.draw(hyperparameters(kwargs), label="hyperparameters")
    # no decay of p: weight decay, and ASGD's decay term (Rprop has neither)
    hyper.update({k: 0.0 for k in ("weight_decay", "lambd") if k in cls.hyperparameters})
    params, grads = data.draw(problems(), label="problem")
    zeros = [[np.zeros_like(g) for g in gs] for gs in grads]
    out, _ = run(cls, hyper, params, zeros, backend)
    for p, p0 in zip(out, params, strict=True):
        np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@pytest.mark.parametrize("backend", BACKENDS)
@examples(10)
@given(data=st.data())
def test_maximize_with_g_is_minimize_with_minus_g(cls, kwargs, backend, data):
    if "maximize" not in cls.hyperparameters:
        pytest.skip(f"{cls.__name__} has no maximize (as in optax)")
    hyper = data.draw(hyperparameters(kwargs), label="hyperparameters")
    params, grads = data.draw(problems(), label="problem")
    up, up_opt = run(cls, {**hyper, "maximize": True}, params, grads, backend)
    negated = [[np.asarray(-g) for g in gs] for gs in grads]  # -g of a 0-d array is a scalar
    down, down_opt = run(cls, {**hyper, "maximize": False}, params, negated, backend)
    for p, q in zip(up, down, strict=True):
        assert p.tobytes() == q.tobytes()
    su, sd = up_opt.state_dict()["state"], down_opt.state_dict()["state"]
    for i in su:
        for k in su[i]:
            assert su[i][k].tobytes() == sd[i][k].tobytes(), (i, k)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@examples(8)
@given(data=st.data())
def test_result_is_bit_identical_for_any_number_of_threads(cls, kwargs, data):
    hyper = data.draw(hyperparameters(kwargs), label="hyperparameters")
    params, grads = data.draw(problems(large=True), label="problem")
    before = fo.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            ps, opt = run(cls, hyper, params, grads)
            results.append((ps, opt.state_dict()["state"]))
    finally:
        fo.set_num_threads(before)
    ps1, st1 = results[0]
    for ps, state in results[1:]:
        for p, q in zip(ps, ps1, strict=True):
            assert p.tobytes() == q.tobytes()
        for i in st1:
            for k in st1[i]:
                assert state[i][k].tobytes() == st1[i][k].tobytes(), (i, k)
