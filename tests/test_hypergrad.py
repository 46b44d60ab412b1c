"""SGDHD and AdamHD: hand-computed steps, the fused kernels against the NumPy reference for
every option, against a torch port of the authors' code (hypergrad/sgd_hd.py and
adam_hd.py, when torch is installed), the same bits on any thread count, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

SGD_OPTIONS = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "maximize": True},
]
ADAM_OPTIONS = [
    {"lr": 0.01},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "maximize": True},
]
CASES = [(fo.SGDHD, k) for k in SGD_OPTIONS] + [(fo.AdamHD, k) for k in ADAM_OPTIONS]


def _ids(case: tuple) -> str:
    cls, kwargs = case
    return cls.__name__ + "-" + ",".join(f"{k}" for k in kwargs)


def _grads(shapes: list[tuple[int, ...]], steps: int, dtype: type, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = [rng.standard_normal(s) for s in shapes]  # correlated grads: the rate moves
    return [
        [
            (b + 0.5 * rng.standard_normal(s)).astype(dtype)
            for b, s in zip(base, shapes, strict=True)
        ]
        for _ in range(steps)
    ]


def test_sgd_hd_by_hand() -> None:
    w = np.zeros(2)
    opt = fo.SGDHD([w], lr=0.1, hypergrad_lr=0.01)
    g1, g2 = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    opt.step([g1])
    assert opt.param_groups[0]["lr"] == 0.1  # no previous direction at step 1
    np.testing.assert_allclose(w, -0.1 * g1)
    opt.step([g2])
    lr = 0.1 + 0.01 * float(g2 @ g1)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-15)
    np.testing.assert_allclose(w, -0.1 * g1 - lr * g2, rtol=1e-15)


def test_adam_hd_by_hand() -> None:
    w = np.zeros(2)
    b1, b2, eps, hl = 0.9, 0.999, 1e-8, 0.01
    opt = fo.AdamHD([w], lr=0.1, hypergrad_lr=hl)
    g1, g2 = np.array([1.0, -4.0]), np.array([0.5, -2.0])
    opt.step([g1])
    m, v = (1 - b1) * g1, (1 - b2) * g1 * g1
    p1 = -0.1 * math.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w, p1, rtol=1e-12)
    opt.step([g2])
    h = float(g2 @ (m / (np.sqrt(v) + eps))) * math.sqrt(1 - b2) / (1 - b1)
    lr = 0.1 + hl * h
    assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-14)
    m, v = b1 * m + (1 - b1) * g2, b2 * v + (1 - b2) * g2 * g2
    p2 = p1 - lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w, p2, rtol=1e-12)


def _run(cls, kwargs: dict, backend: str, dtype: type, groups: bool = False):
    shapes = [(5, 3), (17,), (2, 2, 2)]
    rng = np.random.default_rng(7)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    hl = {"hypergrad_lr": 1e-3}
    if groups:
        spec = [{"params": params[:1]}, {"params": params[1:], "lr": 0.03, "weight_decay": 0.05}]
        opt = cls(spec, backend=backend, **{**kwargs, **hl})
    else:
        opt = cls(params, backend=backend, **{**kwargs, **hl})
    lrs = []
    for g in _grads(shapes, 15, dtype):
        opt.step(g)
        lrs.append([grp["lr"] for grp in opt.param_groups])
    return params, opt, lrs


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("groups", [False, True])
def test_fused_matches_reference(case: tuple, dtype: type, groups: bool) -> None:
    cls, kwargs = case
    pf, of, lf = _run(cls, kwargs, "fused", dtype, groups)
    pn, on, ln = _run(cls, kwargs, "numpy", dtype, groups)
    tol = 1e-10 if dtype == np.float64 else 3e-4
    np.testing.assert_allclose(lf, ln, rtol=tol)
    assert lf[-1] != lf[0]  # the rate has moved
    for a, b in zip(pf, pn, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)
    for i in range(len(pf)):
        assert set(of.state[i]) == set(on.state[i])
        for name in of.state[i]:
            np.testing.assert_allclose(
                of.state[i][name], on.state[i][name], rtol=tol, atol=tol * 1e-2
            )


# ----------------------------------------------------- the authors' code, ported to torch 2
def _authors_sgd_hd_step(torch, params, state, group) -> None:
    """hypergrad/sgd_hd.py's step (one group), with torch 2's add_(x, alpha=...)."""
    wd, momentum, dampening = group["weight_decay"], group["momentum"], group["dampening"]
    views = []
    for p in params:
        view = p.grad.data.view(-1).clone()
        if wd != 0:
            view.add_(p.data.view(-1), alpha=wd)
        views.append(view)
    grad = torch.cat(views, 0)
    if len(state) == 0:
        state["grad_prev"] = torch.zeros_like(grad)
    h = torch.dot(grad, state["grad_prev"])
    group["lr"] += group["hypergrad_lr"] * h.item()
    if momentum != 0:
        if "momentum_buffer" not in state:
            buf = state["momentum_buffer"] = torch.zeros_like(grad)
            buf.mul_(momentum).add_(grad)
        else:
            buf = state["momentum_buffer"]
            buf.mul_(momentum).add_(grad, alpha=1 - dampening)
        if group["nesterov"]:
            grad.add_(buf, alpha=momentum)
        else:
            grad = buf
    state["grad_prev"] = grad
    offset = 0
    for p in params:
        n = p.numel()
        p.data.add_(grad[offset : offset + n].view_as(p.data), alpha=-group["lr"])
        offset += n


def _authors_adam_hd_step(torch, params, states, group) -> None:
    """hypergrad/adam_hd.py's step (one group), with torch 2's add_(x, alpha=...)."""
    for p in params:
        grad = p.grad.data
        state = states.setdefault(p, {})
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p.data)
            state["exp_avg_sq"] = torch.zeros_like(p.data)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad.add(p.data, alpha=group["weight_decay"])
        if state["step"] > 1:
            pbc1 = 1 - beta1 ** (state["step"] - 1)
            pbc2 = 1 - beta2 ** (state["step"] - 1)
            h = (
                torch.dot(
                    grad.view(-1), torch.div(exp_avg, exp_avg_sq.sqrt().add_(group["eps"])).view(-1)
                )
                * math.sqrt(pbc2)
                / pbc1
            )
            group["lr"] += group["hypergrad_lr"] * h.item()
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt().add_(group["eps"])
        bc1 = 1 - beta1 ** state["step"]
        bc2 = 1 - beta2 ** state["step"]
        step_size = group["lr"] * math.sqrt(bc2) / bc1
        p.data.addcdiv_(exp_avg, denom, value=-step_size)


@pytest.mark.parametrize("kwargs", [k for k in SGD_OPTIONS if "maximize" not in k], ids=str)
def test_sgd_hd_against_authors(kwargs: dict) -> None:
    torch = pytest.importorskip("torch")
    shapes = [(6, 3), (11,)]  # several tensors, one group: the authors' flat dot product
    rng = np.random.default_rng(2)
    init = [rng.standard_normal(s) for s in shapes]
    tp = [torch.tensor(x) for x in init]
    fp = [x.copy() for x in init]
    group = {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, **kwargs}
    group["hypergrad_lr"] = 1e-3
    fopt = fo.SGDHD(fp, **group)
    state: dict = {}
    for g in _grads(shapes, 30, np.float64):
        for t, x in zip(tp, g, strict=True):
            t.grad = torch.tensor(x)
        _authors_sgd_hd_step(torch, tp, state, group)
        fopt.step(g)
        assert fopt.param_groups[0]["lr"] == pytest.approx(group["lr"], rel=1e-12)
        for t, f in zip(tp, fp, strict=True):
            np.testing.assert_allclose(f, t.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kwargs", [k for k in ADAM_OPTIONS if "maximize" not in k], ids=str)
def test_adam_hd_against_authors(kwargs: dict) -> None:
    # one tensor: the authors' loop changes lr between the tensors of a group; for one
    # tensor it is exactly the group's hypergradient (multi-tensor: test_fused_matches_reference)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    init = rng.standard_normal((8, 5))
    tp = [torch.tensor(init)]
    fp = [init.copy()]
    group = {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        **kwargs,
        "hypergrad_lr": 1e-4,
    }
    fopt = fo.AdamHD(fp, **group)
    states: dict = {}
    for g in _grads([(8, 5)], 30, np.float64):
        tp[0].grad = torch.tensor(g[0])
        _authors_adam_hd_step(torch, tp, states, group)
        fopt.step(g)
        assert fopt.param_groups[0]["lr"] == pytest.approx(group["lr"], rel=1e-12)
        np.testing.assert_allclose(fp[0], tp[0].numpy(), rtol=1e-11, atol=1e-13)
    assert group["lr"] != kwargs["lr"]


@pytest.mark.parametrize("cls", [fo.SGDHD, fo.AdamHD])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_any_thread_count(cls, dtype: type) -> None:
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(n).astype(dtype) for n in (150_001, 70_000, 3)]
    grads = _grads([x.shape for x in init], 3, dtype)
    results = []
    before = fo.get_num_threads()
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            ps = [x.copy() for x in init]
            opt = cls(
                ps, lr=0.01, hypergrad_lr=1e-4, **({"momentum": 0.9} if cls is fo.SGDHD else {})
            )
            for g in grads:
                opt.step(g)
            results.append((ps, opt.param_groups[0]["lr"]))
    finally:
        fo.set_num_threads(before)
    for ps, lr in results[1:]:
        assert lr == results[0][1]
        for a, b in zip(ps, results[0][0], strict=True):
            assert np.array_equal(a, b)


def test_none_grads_and_lr_write_back() -> None:
    a, b = np.ones(3), np.ones(2)
    opt = fo.SGDHD([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1, hypergrad_lr=0.5)
    for _ in range(2):
        opt.step([None, np.ones(2)])
    assert np.array_equal(a, np.ones(3)) and opt.param_groups[0]["lr"] == 0.1
    assert opt.param_groups[1]["lr"] == pytest.approx(0.2 + 0.5 * 2.0)
    opt.param_groups[1]["lr"] = 0.0  # a schedule sets the rate: the adaptation starts there
    opt.step([None, np.ones(2)])
    assert opt.param_groups[1]["lr"] == pytest.approx(0.5 * 2.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "match"),
    [
        (fo.SGDHD, {"hypergrad_lr": -1.0}, ValueError, "hypergrad_lr"),
        (fo.SGDHD, {"hypergrad_lr": math.inf}, ValueError, "hypergrad_lr"),
        (fo.SGDHD, {"hypergrad_lr": "1"}, TypeError, "hypergrad_lr"),
        (fo.SGDHD, {"lr": math.inf}, ValueError, "lr"),
        (fo.SGDHD, {"nesterov": True}, ValueError, "nesterov"),
        (fo.SGDHD, {"momentum": -0.5}, ValueError, "momentum"),
        (fo.AdamHD, {"hypergrad_lr": -1e-8}, ValueError, "hypergrad_lr"),
        (fo.AdamHD, {"hypergrad_lr": None}, TypeError, "hypergrad_lr"),
        (fo.AdamHD, {"lr": math.nan}, ValueError, "lr"),
        (fo.AdamHD, {"betas": (0.9, 1.0)}, ValueError, "betas"),
        (fo.AdamHD, {"maximize": 1}, TypeError, "maximize"),
    ],
)
def test_bad_arguments(cls, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        cls([np.zeros(2)], **kwargs)


@pytest.mark.parametrize("cls", [fo.SGDHD, fo.AdamHD])
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_bad_group_value_changes_nothing(cls, backend: str) -> None:
    w = np.ones(3)
    opt = cls([w], lr=0.1, backend=backend)
    opt.step([np.ones(3)])
    after_one = w.copy()
    for key, value in (("lr", math.nan), ("hypergrad_lr", -1.0)):
        opt.param_groups[0][key] = value
        with pytest.raises(ValueError, match=key):
            opt.step([np.ones(3)])
        opt.param_groups[0][key] = 0.1 if key == "lr" else 1e-6
        assert np.array_equal(w, after_one)
