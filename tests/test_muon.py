"""Muon: Newton–Schulz by hand, torch.optim.Muon step for step, the fused backend against
the reference, every variant of nesterov / adjust_lr_fn, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.reference.muon import newton_schulz, round_bfloat16

COEFFS = (3.4445, -4.775, 2.0315)


def test_newton_schulz_by_hand_one_step():
    """One step on a 2x3 matrix, from the formula in float64: X = G/|G|_F, A = X X^T,
    X' = a X + (b A + c A^2) X."""
    g = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    a, b, c = COEFFS
    x = g / math.sqrt((g**2).sum())
    gram = x @ x.T
    expected = a * x + (b * gram + c * gram @ gram) @ x
    got = newton_schulz(g.astype(np.float32), COEFFS, 1, 1e-7, "float32")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # a tall matrix is handled through its transpose
    got_t = newton_schulz(g.T.astype(np.float32), COEFFS, 1, 1e-7, "float32")
    np.testing.assert_allclose(got_t, expected.T, rtol=1e-5, atol=1e-6)


def test_newton_schulz_orthogonalizes():
    """With (2, -1.5, 0.5) (the cubic Newton–Schulz) many steps give U V^T of the SVD."""
    rng = np.random.default_rng(1)
    g = rng.standard_normal((6, 9))
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    got = newton_schulz(g.astype(np.float32), (1.5, -0.5, 0.0), 60, 1e-7, "float32")
    np.testing.assert_allclose(got, u @ vt, atol=1e-4)


def test_round_bfloat16_ties_to_even():
    x = np.array([1.0, 1.00390625, 1.01171875, 1.0 + 2**-9, -3.0e38, np.inf, 1e-40], np.float32)
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1); 1 + 3*2^-8 -> 1 + 2^-6 (even)
    expected = (
        np.array([1.0, 1.0, 1.015625, 1.0, -3.0e38, np.inf, 1e-40], np.float32).view(np.uint32)
        & 0xFFFF0000
    )
    got = round_bfloat16(x.copy()).view(np.uint32)
    np.testing.assert_array_equal(got[:4], expected[:4])
    assert np.isnan(round_bfloat16(np.array([np.nan], np.float32))[0])
    assert round_bfloat16(np.array([np.inf], np.float32))[0] == np.inf


def _steps(shape, n, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape).astype(dtype)
    return w0, [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


@pytest.mark.parametrize("shape", [(16, 8), (8, 16), (12, 12)])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust_lr_fn", [None, "original", "match_rms_adamw"])
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_matches_torch_muon(shape, nesterov, adjust_lr_fn, backend):
    torch = pytest.importorskip("torch")
    w0, grads = _steps(shape, 4)
    kw = {
        "lr": 0.02,
        "weight_decay": 0.1,
        "momentum": 0.9,
        "nesterov": nesterov,
        "adjust_lr_fn": adjust_lr_fn,
    }
    w = w0.copy()
    opt = fo.Muon([w], ns_dtype="bfloat16", backend=backend, **kw)
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    topt = torch.optim.Muon([tw], **kw)
    for g in grads:
        opt.step([g])
        tw.grad = torch.from_numpy(g.copy())
        topt.step()
        # bfloat16 tolerance: a few bf16 ulps of the update (lr' * |O| ~ 1e-2)
        np.testing.assert_allclose(w, tw.detach().numpy(), rtol=0, atol=2e-4)
    np.testing.assert_allclose(
        opt.state[0]["momentum_buffer"],
        topt.state[tw]["momentum_buffer"].numpy(),
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("ns_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("momentum", [0.95, 0.3])
@pytest.mark.parametrize("shape", [(24, 10), (10, 24)])
def test_fused_matches_reference(ns_dtype, nesterov, momentum, shape):
    w0, grads = _steps(shape, 3, seed=2)
    out = []
    for backend in ("fused", "numpy"):
        w = w0.copy()
        opt = fo.Muon(
            [w], lr=0.05, momentum=momentum, nesterov=nesterov, ns_dtype=ns_dtype, backend=backend
        )
        for g in grads:
            opt.step([g])
        out.append((w, opt.state[0]["momentum_buffer"].copy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_float32_iteration_close_to_torch():
    """float32 Newton–Schulz differs from torch's bfloat16 one by bf16 rounding only."""
    torch = pytest.importorskip("torch")
    w0, grads = _steps((32, 16), 1, seed=3)
    w = w0.copy()
    fo.Muon([w], lr=0.02).step([grads[0]])
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    tw.grad = torch.from_numpy(grads[0].copy())
    torch.optim.Muon([tw], lr=0.02).step()
    np.testing.assert_allclose(w, tw.detach().numpy(), atol=5e-4)


def test_first_step_by_hand():
    """momentum 0, no Nesterov, ns_steps 0: p = p (1 - lr wd) - lr' G/|G|_F."""
    g = np.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]], np.float32)
    w = np.ones((3, 2), np.float32)
    fo.Muon([w], lr=0.1, weight_decay=0.5, momentum=0.0, nesterov=False, ns_steps=0).step([g])
    expected = 0.95 - 0.1 * math.sqrt(3 / 2) * g / 5.0
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_float64_parameter_and_none_grad():
    w = np.ones((4, 3))
    v = np.ones((2, 2))
    opt = fo.Muon([w, v], lr=0.1)
    opt.step([np.arange(12.0).reshape(4, 3), None])
    assert w.dtype == np.float64 and not np.all(w == 1)
    np.testing.assert_array_equal(v, np.ones((2, 2)))
    assert 1 not in opt.state


def test_state_dict_round_trip():
    w0, grads = _steps((8, 6), 4, seed=4)
    w = w0.copy()
    opt = fo.Muon([w], lr=0.03)
    for g in grads[:2]:
        opt.step([g])
    sd = opt.state_dict()
    w2 = w.copy()
    opt2 = fo.Muon([w2], lr=0.03)
    opt2.load_state_dict(sd)
    for g in grads[2:]:
        opt.step([g])
        opt2.step([g])
    np.testing.assert_array_equal(w, w2)


@pytest.mark.parametrize("ndim", [1, 3])
def test_non_2d_parameter_named(ndim):
    bad = np.zeros((2,) * ndim, np.float32)
    with pytest.raises(ValueError, match=rf"params\[1\] has {ndim} dimension\(s\); Muon"):
        fo.Muon([np.zeros((2, 2), np.float32), bad])
    opt = fo.Muon([np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError, match=r"params\[1\]"):
        opt.add_param_group({"params": [bad]})


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"lr": -1e-3}, ValueError, "lr"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"momentum": -0.5}, ValueError, "momentum"),
        ({"momentum": float("inf")}, ValueError, "momentum"),
        ({"nesterov": 1}, TypeError, "nesterov"),
        ({"ns_coefficients": (1.0, 2.0)}, TypeError, "ns_coefficients"),
        ({"ns_coefficients": (1.0, float("nan"), 2.0)}, ValueError, "ns_coefficients"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"eps": -1e-7}, ValueError, "eps"),
        ({"ns_steps": 100}, ValueError, "ns_steps"),
        ({"ns_steps": -1}, ValueError, "ns_steps"),
        ({"ns_steps": 5.0}, TypeError, "ns_steps"),
        ({"adjust_lr_fn": "sqrt"}, ValueError, "adjust_lr_fn"),
        ({"adjust_lr_fn": 3}, TypeError, "adjust_lr_fn"),
        ({"ns_dtype": "float16"}, ValueError, "ns_dtype"),
        ({"ns_dtype": np.float32}, TypeError, "ns_dtype"),
        ({"backend": "torch"}, ValueError, "backend"),
        ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fo.Muon([np.zeros((2, 2), np.float32)], **kwargs)


def test_bad_group_value_and_grads_refused_before_any_write():
    w = np.ones((3, 2), np.float32)
    opt = fo.Muon([w])
    g = np.ones((3, 2), np.float32)
    opt.param_groups[0]["ns_steps"] = 200
    with pytest.raises(ValueError, match="ns_steps"):
        opt.step([g])
    opt.param_groups[0]["ns_steps"] = 5
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.ones((2, 3), np.float32)])
    with pytest.raises(TypeError, match="dtype"):
        opt.step([np.ones((3, 2))])
    np.testing.assert_array_equal(w, np.ones((3, 2), np.float32))
    assert len(opt.state) == 0


def test_clipping_scales_the_grads():
    w0, grads = _steps((6, 4), 2, seed=5)
    w, w2 = w0.copy(), w0.copy()
    opt = fo.Muon([w], max_grad_norm=0.5, nesterov=False)
    ref = fo.Muon([w2], nesterov=False)
    for g in grads:
        opt.step([g])
        ref.step([g * np.float32(0.5 / np.linalg.norm(g))])
    np.testing.assert_allclose(w, w2, rtol=1e-5, atol=1e-6)
