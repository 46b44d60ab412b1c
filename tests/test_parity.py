"""The fused kernels follow the NumPy reference's trajectory, for every row of the table:
over many steps, with mixed dtypes, any number of threads, and hyperparameters changed
between steps (the kernel reads them from the param groups at every step)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.rules import Rule

from .helpers import grads_for, make
from .table import CONFIGS

# 0-d, odd 1-d, 2-d, a transposed (Fortran-ordered) 2-d, an empty one, and one large
# enough to be split across threads (above the parallel threshold on its own).
SHAPES = [(), (7,), (13, 5), (300, 301)]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 2e-6, np.float64: 1e-13}


def make_params(rng: np.random.Generator, dtype: type) -> list[np.ndarray]:
    ps = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ps.append(np.asfortranarray(rng.standard_normal((6, 9)).astype(dtype)))  # transposed layout
    ps.append(np.zeros((0, 3), dtype))
    return ps


def two_groups(params: list[np.ndarray]) -> list[dict]:
    return [{"params": params[:3]}, {"params": params[3:], "lr": 0.003}]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_fused_matches_reference_over_100_steps(cls, kwargs, dtype, rng):
    p0 = make_params(rng, dtype)
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in p0] for _ in range(100)]
    results = {}
    for backend in ("fused", "numpy"):
        ps = [p.copy(order="K") for p in p0]
        opt = cls(two_groups(ps), backend=backend, **kwargs)
        for gs in grads:
            opt.step(gs)
        results[backend] = (ps, opt.state_dict()["state"])
    for pf, pn in zip(results["fused"][0], results["numpy"][0], strict=True):
        np.testing.assert_allclose(pf, pn, rtol=RTOL[dtype], atol=ATOL[dtype])
    sf, sn = results["fused"][1], results["numpy"][1]
    assert sf.keys() == sn.keys()
    for i in sf:
        assert sf[i].keys() == sn[i].keys()
        for k in sf[i]:
            np.testing.assert_allclose(
                sf[i][k], sn[i][k], rtol=RTOL[dtype], atol=ATOL[dtype], err_msg=k
            )


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_mixed_dtypes_in_one_group(cls, kwargs, rng):
    p0 = [rng.standard_normal(50).astype(np.float32), rng.standard_normal(70)]
    grads = [[rng.standard_normal(p.shape).astype(p.dtype) for p in p0] for _ in range(10)]
    out = {}
    for backend in ("fused", "numpy"):
        ps = [p.copy() for p in p0]
        opt = cls(ps, backend=backend, **kwargs)
        for gs in grads:
            opt.step(gs)
        out[backend] = ps
    for pf, pn in zip(out["fused"], out["numpy"], strict=True):
        assert pf.dtype == pn.dtype
        np.testing.assert_allclose(pf, pn, rtol=RTOL[pf.dtype.type], atol=ATOL[pf.dtype.type])


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_result_does_not_depend_on_thread_count(cls, kwargs, rng):
    p0 = rng.standard_normal((700, 300)).astype(np.float32)
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(3)]
    out = []
    before = fo.get_num_threads()
    try:
        for n in (1, 2, 3):
            fo.set_num_threads(n)
            p = p0.copy()
            opt = cls([p], **kwargs)
            for g in grads:
                opt.step([g])
            out.append(p)
    finally:
        fo.set_num_threads(before)
    for p in out[1:]:
        np.testing.assert_array_equal(p, out[0])  # bit-identical


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_schedule_changes_between_steps_are_seen(cls, kwargs, rng):
    p0 = rng.standard_normal(40)
    grads = [rng.standard_normal(40) for _ in range(6)]
    out = {}
    for backend in ("fused", "numpy"):
        p = p0.copy()
        opt = cls([p], backend=backend, **kwargs)
        for k, g in enumerate(grads):
            opt.param_groups[0]["lr"] = kwargs["lr"] * (k + 1) / 3
            opt.step([g])
        out[backend] = p
    np.testing.assert_allclose(out["fused"], out["numpy"], rtol=1e-12, atol=1e-13)


def changed(value: Any, rule: Rule) -> Any:
    """Another valid value of a hyperparameter, of the same kind."""
    if rule.kind == "flag":
        return not value
    if rule.width == 2:
        return (value[0] * 0.9, value[1] * 0.99)
    return value * 0.5 + 0.01


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
            if (
                cls is fo.SGD
                and key == "nesterov"
                and value
                and (group["momentum"] == 0 or group["dampening"])
            ):
                continue  # not a valid SGD configuration
            if cls is fo.SGD and key == "dampening" and group["nesterov"]:
                continue  # nesterov requires zero dampening
            for t in range(4):
                if t == 2:
                    group[key] = value
                opt.step(grads_for(params, t))
            runs[backend] = params
        if runs:
            for a, b in zip(runs["fused"], runs["numpy"], strict=True):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6, err_msg=key)
