"""Prodigy: a hand-computed first step, the fused kernel against the NumPy reference for
every option, against prodigyopt 1.1.2 step for step (when installed), group["d"], the
same bits on any thread count, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fusedopt as fo

OPTIONS = [
    {},
    {"betas": (0.0, 0.99)},  # no exp_avg: the update reads the grad
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decouple": False},
    {"weight_decay": 0.1, "decouple": False, "betas": (0.0, 0.9)},
    {"use_bias_correction": True},
    {"safeguard_warmup": True, "beta3": 0.9},
    {"growth_rate": 1.02, "d_coef": 0.5, "d0": 1e-4},
    {"lr": 0.5, "eps": 1e-6},
]


def _problem(dtype: type, seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    shapes = [(7, 5), (33,), (3, 4, 2)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(12)]
    return params, grads


def _run(backend: str, kwargs: dict, dtype: type, groups: bool = False):
    params, grads = _problem(dtype)
    if groups:  # two groups: their own weight decay and d0; the same lr
        spec = [
            {"params": params[:1]},
            {"params": params[1:], "weight_decay": 0.05, "d0": 2e-6},
        ]
        opt = fo.Prodigy(spec, backend=backend, **kwargs)
    else:
        opt = fo.Prodigy(params, backend=backend, **kwargs)
    ds = []
    for g in grads:
        opt.step(g)
        ds.append(opt.param_groups[0]["d"])
    return params, opt, ds


def test_first_step_by_hand() -> None:
    w = np.array([0.5, -1.0])
    g = np.array([2.0, 3.0])
    opt = fo.Prodigy([w.copy()])
    p = opt.param_groups[0]["params"][0]
    opt.step([g])
    d = 1e-6  # the update uses d0; d stays d0 (p0 == p: the numerator is 0)
    m = d * 0.1 * g
    v = d * d * 0.001 * g * g
    np.testing.assert_allclose(p, w - d * m / (np.sqrt(v) + d * 1e-8), rtol=1e-12)
    grp = opt.param_groups[0]
    assert grp["k"] == 1 and isinstance(grp["k"], int)
    assert grp["d"] == d and grp["d_hat"] == 0.0
    s = (d / d) * d * g  # beta3 * 0 + (d / d0) * dlr * g
    assert grp["d_denom"] == pytest.approx(np.abs(s).sum(), rel=1e-12)
    # the second step: the numerator is (d / d0) dlr <g2, p0 - p1>
    g2 = np.array([1.0, 1.0])
    p_after_1 = p.copy()
    opt.step([g2])
    # d_numerator = beta3 * 0 + (d / d0) * dlr * <g2, p0 - p1>, d_hat = it / sum |s|
    num = d * float(g2 @ (w - p_after_1))
    s = math.sqrt(0.999) * s + d * g2
    assert grp["k"] == 2
    assert grp["d_numerator"] == pytest.approx(num, rel=1e-12)
    assert grp["d_hat"] == pytest.approx(num / np.abs(s).sum(), rel=1e-12)


@pytest.mark.parametrize("kwargs", OPTIONS, ids=lambda k: ",".join(k) or "default")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_matches_reference(kwargs: dict, dtype: type) -> None:
    pf, of, df = _run("fused", kwargs, dtype)
    pn, on, dn = _run("numpy", kwargs, dtype)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(df, dn, rtol=tol)
    for a, b in zip(pf, pn, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-3)
    for key in ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k"):
        assert of.param_groups[0][key] == pytest.approx(on.param_groups[0][key], rel=tol)
    for i in range(len(pf)):
        for name in of.state[i]:
            np.testing.assert_allclose(of.state[i][name], on.state[i][name], rtol=tol, atol=1e-12)


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_groups_share_d(backend: str) -> None:
    pf, of, _ = _run(backend, {}, np.float64, groups=True)
    pn, _, _ = _run("numpy", {}, np.float64, groups=True)
    for a, b in zip(pf, pn, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    g0, g1 = of.param_groups
    assert g0["d"] == g1["d"] and g0["d_numerator"] == g1["d_numerator"] and g1["k"] == 12


def _torch_prodigy_run(kwargs: dict, groups: bool, steps: int = 30):
    torch = pytest.importorskip("torch")
    prodigyopt = pytest.importorskip("prodigyopt")
    rng = np.random.default_rng(1)
    shapes = [(6, 4), (10,)]
    init = [rng.standard_normal(s) for s in shapes]
    target = [rng.standard_normal(s) for s in shapes]
    noise = [[0.1 * rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    tp = [torch.tensor(x, requires_grad=True) for x in init]
    fp = [x.copy() for x in init]
    if groups:
        tspec = [{"params": tp[:1]}, {"params": tp[1:], "weight_decay": 0.1, "d0": 3e-6}]
        fspec = [{"params": fp[:1]}, {"params": fp[1:], "weight_decay": 0.1, "d0": 3e-6}]
    else:
        tspec, fspec = tp, fp
    topt = prodigyopt.Prodigy(tspec, **kwargs)
    fopt = fo.Prodigy(fspec, **kwargs)
    out = []
    for step in range(steps):  # a quadratic: d grows as the parameters travel
        g = [t.detach().numpy() - c + e for t, c, e in zip(tp, target, noise[step], strict=True)]
        for t, x in zip(tp, g, strict=True):
            t.grad = torch.tensor(x)
        topt.step()
        fopt.step([x.copy() for x in g])
        out.append((topt.param_groups, fopt.param_groups))
        for t, f in zip(tp, fp, strict=True):
            np.testing.assert_allclose(f, t.detach().numpy(), rtol=1e-9, atol=1e-14)
        for tg, fg in zip(topt.param_groups, fopt.param_groups, strict=True):
            for key in ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k"):
                assert fg[key] == pytest.approx(float(tg[key]), rel=1e-9, abs=1e-300), key
    return topt, fopt


@pytest.mark.parametrize("kwargs", OPTIONS, ids=lambda k: ",".join(k) or "default")
def test_against_prodigyopt(kwargs: dict) -> None:
    _, fopt = _torch_prodigy_run(kwargs, groups=False)
    assert fopt.param_groups[0]["d"] > 1e-6  # d has grown over 30 steps


def test_against_prodigyopt_groups() -> None:
    _torch_prodigy_run({"decouple": False}, groups=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_any_thread_count(dtype: type) -> None:
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(n).astype(dtype) for n in (150_001, 70_000, 5)]
    grads = [[rng.standard_normal(x.size).astype(dtype) for x in init] for _ in range(3)]
    results = []
    before = fo.get_num_threads()
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            ps = [x.copy() for x in init]
            opt = fo.Prodigy(ps)
            for g in grads:
                opt.step(g)
            results.append((ps, opt.param_groups[0]["d"], opt.param_groups[0]["d_denom"]))
    finally:
        fo.set_num_threads(before)
    for ps, d, den in results[1:]:
        assert d == results[0][1] and den == results[0][2]
        for a, b in zip(ps, results[0][0], strict=True):
            assert np.array_equal(a, b)


def test_none_grad_and_zero_grads() -> None:
    a, b = np.ones(3), np.ones(4)
    opt = fo.Prodigy([a, b])
    opt.step([None, np.ones(4)])
    assert np.array_equal(a, np.ones(3)) and not np.array_equal(b, np.ones(4))
    assert 0 not in opt.state and opt.param_groups[0]["k"] == 1
    # all grads zero: d_denom is 0, the package returns before the update (k unchanged)
    c = np.ones(2)
    opt = fo.Prodigy([c])
    opt.step([np.zeros(2)])
    assert opt.param_groups[0]["k"] == 0 and "d_denom" not in opt.param_groups[0]
    assert float(opt.state[0]["step"]) == 0.0


def test_state_dict_round_trip() -> None:
    params, grads = _problem(np.float64)
    opt = fo.Prodigy(params)
    for g in grads[:5]:
        opt.step(g)
    sd = opt.state_dict()
    copy = [p.copy() for p in params]
    opt2 = fo.Prodigy(copy)
    opt2.load_state_dict(sd)
    for g in grads[5:]:
        opt.step(g)
        opt2.step(g)
    for a, b in zip(params, copy, strict=True):
        assert np.array_equal(a, b)
    assert opt.param_groups[0]["d"] == opt2.param_groups[0]["d"]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lr": -1.0}, ValueError, "lr"),
        ({"betas": (1.0, 0.9)}, ValueError, "betas"),
        ({"beta3": 1.5}, ValueError, "beta3"),
        ({"beta3": "x"}, TypeError, "beta3"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"decouple": 1}, TypeError, "decouple"),
        ({"use_bias_correction": "yes"}, TypeError, "use_bias_correction"),
        ({"safeguard_warmup": None}, TypeError, "safeguard_warmup"),
        ({"d0": 0.0}, ValueError, "d0"),
        ({"d_coef": math.nan}, ValueError, "d_coef"),
        ({"growth_rate": 0.0}, ValueError, "growth_rate"),
        ({"growth_rate": math.nan}, ValueError, "growth_rate"),
    ],
)
def test_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fo.Prodigy([np.zeros(2)], **kwargs)


@pytest.mark.parametrize(
    ("key", "value", "exc"),
    [
        ("d", -1.0, ValueError),
        ("d", None, TypeError),
        ("d_max", math.inf, ValueError),
        ("d_numerator", math.nan, ValueError),
        ("k", 1.5, TypeError),
        ("beta3", 2.0, ValueError),
        ("growth_rate", -1.0, ValueError),
        ("lr", math.nan, ValueError),
    ],
)
@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_bad_group_value_changes_nothing(key: str, value: object, exc: type, backend: str) -> None:
    w = np.ones(3)
    opt = fo.Prodigy([w], backend=backend)
    opt.step([np.ones(3)])
    before = (w.copy(), dict(opt.param_groups[0]), {k: v.copy() for k, v in opt.state[0].items()})
    opt.param_groups[0][key] = value
    with pytest.raises(exc, match=key):
        opt.step([np.ones(3)])
    assert np.array_equal(w, before[0])
    for k, v in opt.state[0].items():
        assert np.array_equal(v, before[2][k])
    for k, v in before[1].items():  # no group value written (but the one set above)
        if k not in ("params", key):
            assert opt.param_groups[0][k] == v


def test_different_group_lrs_refused() -> None:
    a, b = np.ones(2), np.ones(2)
    opt = fo.Prodigy([{"params": [a]}, {"params": [b], "lr": 0.5}])
    with pytest.raises(ValueError, match="lr"):
        opt.step([np.ones(2), np.ones(2)])
    assert np.array_equal(a, np.ones(2))
    opt.param_groups[1]["lr"] = 0.0  # 0 is allowed: that group is left out of the sums
    opt.step([np.ones(2), np.ones(2)])
    assert not np.array_equal(a, np.ones(2))


def test_signature_and_group_keys_are_prodigyopts() -> None:
    """The arguments (less fsdp_in_use and slice_p), their order and defaults, and the
    group keys with their initial values, as prodigyopt 1.1.2's."""
    import inspect

    torch = pytest.importorskip("torch")
    prodigyopt = pytest.importorskip("prodigyopt")
    theirs = inspect.signature(prodigyopt.Prodigy).parameters
    mine = inspect.signature(fo.Prodigy).parameters
    left_out = {"fsdp_in_use", "slice_p"}
    names = [n for n in theirs if n not in left_out]
    assert [n for n, p in mine.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == names
    for n in names[1:]:
        assert mine[n].default == theirs[n].default, n
    ours = fo.Prodigy([np.zeros(2)]).param_groups[0]
    ref = prodigyopt.Prodigy([torch.zeros(2)]).param_groups[0]
    assert set(ours) == set(ref) - left_out
    for k in set(ours) - {"params"}:
        assert ours[k] == ref[k], k
