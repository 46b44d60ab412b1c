"""SGDScheduleFree and AdamWScheduleFree: the first steps against values worked out by
hand from the package's formula, fused against the NumPy reference for every option,
against the ``schedulefree`` package (1.4.1) step for step with train() / eval()
switches, the eval-mode error, bad input, the state dict and the thread count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fusedopt as fo

from .helpers import fingerprint

CLASSES = [fo.SGDScheduleFree, fo.AdamWScheduleFree]

# every option, for each class (warmup, r, weight_lr_power, weight decay, momentum / betas)
CONFIGS = [
    pytest.param(fo.SGDScheduleFree, dict(lr=0.5), id="sgd"),
    pytest.param(
        fo.SGDScheduleFree,
        dict(lr=0.3, momentum=0.5, weight_decay=0.1, warmup_steps=3, r=1.0, weight_lr_power=1.0),
        id="sgd-momentum-wd-warmup-r-power",
    ),
    # momentum 0.2: eval's weight 1 - 1/0.2 = -4 takes lerp's other branch
    pytest.param(fo.SGDScheduleFree, dict(lr=0.2, momentum=0.2, r=0.5), id="sgd-low-momentum"),
    pytest.param(fo.AdamWScheduleFree, dict(lr=0.05), id="adamw"),
    pytest.param(
        fo.AdamWScheduleFree,
        dict(
            lr=0.05,
            betas=(0.5, 0.9),
            eps=1e-3,
            weight_decay=0.1,
            warmup_steps=3,
            r=0.5,
            weight_lr_power=0.0,
        ),
        id="adamw-betas-eps-wd-warmup-r-power",
    ),
]


def params_of(dtype: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in [(5, 3), (7,), (), (33,)]]


def grads_at(params: list[np.ndarray], step: int) -> list[np.ndarray | None]:
    """Random grads; parameter 1 has none at steps 0 and 3 (its z starts at step 1)."""
    rng = np.random.default_rng(100 + step)
    gs: list[np.ndarray | None] = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    if step in (0, 3):
        gs[1] = None
    return gs


def drive(opt: Any, params: list[np.ndarray], steps: int = 7) -> list[list[np.ndarray]]:
    """train(), then steps with an eval() / train() round trip in the middle; the
    parameters after each step and after the final eval()."""
    out = []
    opt.train()
    for s in range(steps):
        opt.step(grads_at(params, s))
        out.append([p.copy() for p in params])
        if s == 3:
            opt.eval()
            out.append([p.copy() for p in params])
            opt.train()
    opt.eval()
    out.append([p.copy() for p in params])
    return out


# ------------------------------------------------------------------ by hand
def test_sgd_first_two_steps_by_hand(backend: str) -> None:
    lr, m, wd = 0.5, 0.8, 0.1
    y0, g1, g2 = 1.5, 0.4, -0.3
    w = np.array([y0])
    opt = fo.SGDScheduleFree([w], lr=lr, momentum=m, weight_decay=wd, backend=backend)
    opt.train()
    # step 1: weight = lr^2, ckp1 = 1: y = z0; then y += lr (m * 0 - 1) g; z = z0 - lr g
    g = g1 + wd * y0
    z = y0 - lr * g
    y = y0 - lr * g
    opt.step([np.array([g1])])
    assert w[0] == pytest.approx(y, rel=1e-15)
    assert opt.state[0]["z"][0] == pytest.approx(z, rel=1e-15)
    # step 2: weight_sum = 2 lr^2, ckp1 = 1/2
    g = g2 + wd * y
    y = y + 0.5 * (z - y) + lr * (m * 0.5 - 1) * g
    z = z - lr * g
    opt.step([np.array([g2])])
    assert w[0] == pytest.approx(y, rel=1e-15)
    assert opt.state[0]["z"][0] == pytest.approx(z, rel=1e-15)
    group = opt.param_groups[0]
    assert (group["k"], group["lr_max"], group["weight_sum"]) == (2, lr, 2 * lr**2)
    # x = y + (1 - 1/m) (z - y)
    opt.eval()
    assert w[0] == pytest.approx(y + (1 - 1 / m) * (z - y), rel=1e-14)


def test_adamw_first_two_steps_by_hand_with_warmup(backend: str) -> None:
    lr, b1, b2, eps, wd, warm = 0.1, 0.7, 0.95, 1e-3, 0.2, 2
    y0, g1, g2 = -0.8, 0.6, 0.25
    w = np.array([y0])
    opt = fo.AdamWScheduleFree(
        [w], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, warmup_steps=warm, backend=backend
    )
    opt.train()
    # step 1: lr_1 = lr / 2, weight = lr_1^2 = weight_sum, ckp1 = 1
    lr1 = lr * 1 / 2
    v = (1 - b2) * g1 * g1
    u = g1 / (math.sqrt(v / (1 - b2)) + eps) + wd * y0
    z = y0 - lr1 * u
    y = y0 - lr1 * u
    opt.step([np.array([g1])])
    assert w[0] == pytest.approx(y, rel=1e-14)
    # step 2: lr_2 = lr, lr_max = lr, weight = lr^2, weight_sum = lr1^2 + lr^2
    ckp1 = lr**2 / (lr1**2 + lr**2)
    v = b2 * v + (1 - b2) * g2 * g2
    u = g2 / (math.sqrt(v / (1 - b2**2)) + eps) + wd * y
    y = y + ckp1 * (z - y) + lr * (b1 * (1 - ckp1) - 1) * u
    z = z - lr * u
    opt.step([np.array([g2])])
    assert w[0] == pytest.approx(y, rel=1e-14)
    assert opt.state[0]["z"][0] == pytest.approx(z, rel=1e-14)
    assert opt.state[0]["exp_avg_sq"][0] == pytest.approx(v, rel=1e-14)
    g = opt.param_groups[0]
    assert g["scheduled_lr"] == lr and g["lr_max"] == lr
    assert g["weight_sum"] == pytest.approx(lr1**2 + lr**2, rel=1e-15)


def test_zero_lr_gives_ckp1_zero(backend: str) -> None:
    """lr = 0: weight_sum stays 0 and the package's ZeroDivisionError means ckp1 = 0."""
    w = np.array([1.0, 2.0])
    opt = fo.SGDScheduleFree([w], lr=0.0, backend=backend)
    opt.train()
    opt.step([np.ones(2)])
    opt.step([np.ones(2)])
    assert w.tolist() == [1.0, 2.0]
    assert opt.param_groups[0]["weight_sum"] == 0.0 and opt.param_groups[0]["k"] == 2


# ------------------------------------------------------- fused vs reference
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_fused_matches_reference(cls: Any, kwargs: dict[str, Any], dtype: Any) -> None:
    runs = {}
    for backend in ("fused", "numpy"):
        ps = params_of(dtype)
        # two groups: the second with its own lr and weight decay
        opt = cls(
            [{"params": ps[:2]}, {"params": ps[2:], "lr": kwargs["lr"] / 2, "weight_decay": 0.05}],
            backend=backend,
            **kwargs,
        )
        runs[backend] = (drive(opt, ps), opt.state_dict())
    (fused, sd_f), (ref, sd_r) = runs["fused"], runs["numpy"]
    for a_step, b_step in zip(fused, ref, strict=True):
        for a, b in zip(a_step, b_step, strict=True):
            np.testing.assert_array_equal(a, b)
    assert repr(sd_f["param_groups"]) == repr(sd_r["param_groups"])
    for i, st in sd_f["state"].items():
        for k, v in st.items():
            np.testing.assert_array_equal(v, sd_r["state"][i][k])


# --------------------------------------------------------- the package
def _package_run(cls: Any, kwargs: dict[str, Any], dtype: Any) -> None:
    torch = pytest.importorskip("torch")
    sf = pytest.importorskip("schedulefree")
    theirs_cls = getattr(sf, cls.__name__)
    ps = params_of(dtype)
    tps = [torch.tensor(p.copy(), requires_grad=True) for p in ps]
    groups = [{"params": ps[:2]}, {"params": ps[2:], "lr": kwargs["lr"] / 2}]
    opt = cls(groups, **kwargs)
    theirs = theirs_cls(
        [{"params": tps[:2]}, {"params": tps[2:], "lr": kwargs["lr"] / 2}], **kwargs
    )
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)

    def same() -> None:
        for p, t in zip(ps, tps, strict=True):
            np.testing.assert_allclose(p, t.detach().numpy(), **tol)
        for mine, g in zip(opt.param_groups, theirs.param_groups, strict=True):
            for key in ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode"):
                assert mine[key] == g[key], key  # the same Python arithmetic: equal
        for i, t in enumerate(tps):
            if "z" in theirs.state[t]:
                for name in opt.state_names:
                    np.testing.assert_allclose(
                        opt.state[i][name], theirs.state[t][name].numpy(), **tol
                    )
            else:
                assert i not in opt.state

    for o in (opt, theirs):
        o.train()
    for s in range(8):
        gs = grads_at(ps, s)
        for t, g in zip(tps, gs, strict=True):
            t.grad = None if g is None else torch.tensor(g.copy())
        opt.step(gs)
        theirs.step()
        same()
        if s in (2, 5):
            opt.eval()
            theirs.eval()
            same()
            opt.eval()  # a second eval() changes nothing, as the package's
            theirs.eval()
            same()
            opt.train()
            theirs.train()
            same()
    opt.eval()
    theirs.eval()
    same()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_matches_the_schedulefree_package(cls: Any, kwargs: dict[str, Any], dtype: Any) -> None:
    _package_run(cls, kwargs, dtype)


@pytest.mark.parametrize("cls", CLASSES)
def test_defaults_are_the_packages(cls: Any) -> None:
    pytest.importorskip("torch")
    sf = pytest.importorskip("schedulefree")
    import torch

    theirs = getattr(sf, cls.__name__)([torch.zeros(2)]).defaults
    mine = cls([np.zeros(2)]).defaults
    assert {k: v for k, v in theirs.items() if k != "foreach"} == mine


# --------------------------------------------------------------- eval mode
@pytest.mark.parametrize("cls", CLASSES)
def test_step_in_eval_mode_is_an_error(cls: Any, backend: str) -> None:
    ps = params_of(np.float64)
    opt = cls(ps, backend=backend)
    with pytest.raises(RuntimeError, match=r"not in train mode.*opt\.train\(\)"):
        opt.step(grads_at(ps, 1))  # a new optimizer starts in eval mode, as the package's
    assert not opt.state and opt.param_groups[0]["k"] == 0
    opt.train()
    opt.step(grads_at(ps, 1))
    opt.eval()
    before = fingerprint(opt, ps)
    called = []

    def closure() -> tuple[float, list[np.ndarray | None]]:
        called.append(1)
        return 0.0, grads_at(ps, 2)

    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step(grads_at(ps, 2))
    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step(closure)
    assert not called
    assert fingerprint(opt, ps) == before


@pytest.mark.parametrize("cls", CLASSES)
def test_add_param_group_takes_the_current_mode(cls: Any) -> None:
    a, b, c = np.ones(3), np.ones(2), np.ones(4)
    opt = cls([a])
    opt.train()
    opt.add_param_group({"params": [b]})
    assert opt.param_groups[1]["train_mode"] is True
    opt.step([np.ones(3), np.ones(2)])
    opt.add_param_group({"params": [c], "train_mode": False})  # said explicitly: kept
    assert opt.param_groups[2]["train_mode"] is False
    with pytest.raises(RuntimeError, match=r"param_groups\[2\]"):
        opt.step([np.ones(3), np.ones(2), np.ones(4)])


# ------------------------------------------------------------- bad input
BAD = [
    (fo.SGDScheduleFree, dict(lr=-1.0), ValueError, "lr"),
    (fo.SGDScheduleFree, dict(momentum=0.0), ValueError, "momentum"),
    (fo.SGDScheduleFree, dict(momentum=1.0), ValueError, "momentum"),
    (fo.SGDScheduleFree, dict(momentum="0.9"), TypeError, "momentum"),
    (fo.SGDScheduleFree, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (fo.SGDScheduleFree, dict(warmup_steps=-1), ValueError, "warmup_steps"),
    (fo.SGDScheduleFree, dict(warmup_steps=2.5), TypeError, "warmup_steps"),
    (fo.SGDScheduleFree, dict(r=float("nan")), ValueError, "r"),
    (fo.SGDScheduleFree, dict(r="1"), TypeError, "r"),
    (fo.SGDScheduleFree, dict(weight_lr_power=float("inf")), ValueError, "weight_lr_power"),
    (fo.SGDScheduleFree, dict(weight_lr_power=True), TypeError, "weight_lr_power"),
    (fo.AdamWScheduleFree, dict(lr=float("nan")), ValueError, "lr"),
    (fo.AdamWScheduleFree, dict(betas=(0.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.AdamWScheduleFree, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.AdamWScheduleFree, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.AdamWScheduleFree, dict(betas=(0.9,)), TypeError, "betas"),
    (fo.AdamWScheduleFree, dict(eps=-1e-8), ValueError, "eps"),
    (fo.AdamWScheduleFree, dict(weight_decay=float("inf")), ValueError, "weight_decay"),
    (fo.AdamWScheduleFree, dict(warmup_steps=None), TypeError, "warmup_steps"),
    (fo.AdamWScheduleFree, dict(r=None), TypeError, "r"),
    (fo.AdamWScheduleFree, dict(weight_lr_power=-float("inf")), ValueError, "weight_lr_power"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "match"),
    BAD,
    ids=[f"{c.__name__}-{'-'.join(k)}-{i}" for i, (c, k, _, _) in enumerate(BAD)],
)
def test_bad_arguments(
    cls: Any, kwargs: dict[str, Any], exc: Any, match: str, backend: str
) -> None:
    with pytest.raises(exc, match=match):
        cls([np.zeros(2)], **kwargs)
    # the same value written into a group between steps: refused, nothing changed
    ps = params_of(np.float64)
    opt = cls(ps, backend=backend)
    opt.train()
    opt.step(grads_at(ps, 1))
    opt.param_groups[0].update(kwargs)
    before = fingerprint(opt, ps)
    with pytest.raises(exc, match=match):
        opt.step(grads_at(ps, 2))
    if "betas" not in kwargs and "momentum" not in kwargs:
        assert fingerprint(opt, ps) == before
    with pytest.raises(exc, match=match):  # train() / eval() check the groups too
        opt.eval()
    assert fingerprint(opt, ps) == before


@pytest.mark.parametrize(
    ("key", "value", "exc"),
    [
        ("k", -1, ValueError),
        ("k", 1.5, TypeError),
        ("lr_max", float("nan"), ValueError),
        ("weight_sum", -1.0, ValueError),
        ("scheduled_lr", "x", TypeError),
        ("train_mode", 1, TypeError),
    ],
)
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_group_counters(cls: Any, key: str, value: Any, exc: Any, backend: str) -> None:
    ps = params_of(np.float32)
    opt = cls(ps, backend=backend)
    opt.train()
    opt.step(grads_at(ps, 1))
    opt.param_groups[0][key] = value
    before = fingerprint(opt, ps)
    with pytest.raises(exc, match=key):
        opt.step(grads_at(ps, 2))
    assert fingerprint(opt, ps) == before


@pytest.mark.parametrize("cls", CLASSES)
def test_a_weight_that_overflows_is_refused(cls: Any, backend: str) -> None:
    """(k + 1)**r overflows a float at k = 2 with r = 700: the package's OverflowError,
    as a ValueError naming r, before anything changes."""
    ps = params_of(np.float64)
    opt = cls(ps, r=700.0, backend=backend)
    opt.train()
    opt.step(grads_at(ps, 0))
    opt.step(grads_at(ps, 1))
    before = fingerprint(opt, ps)
    with pytest.raises(ValueError, match=r"r=700\.0"):
        opt.step(grads_at(ps, 2))
    assert fingerprint(opt, ps) == before


# ----------------------------------------------------------- state dict
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_state_dict_round_trip(
    cls: Any, kwargs: dict[str, Any], mode: str, backend: str, tmp_path: Any
) -> None:
    ps = params_of(np.float32)
    opt = cls(ps, backend=backend, **kwargs)
    opt.train()
    for s in range(3):
        opt.step(grads_at(ps, s))
    getattr(opt, mode)()
    sd = opt.state_dict()
    # through numpy.savez / numpy.load, as fusedopt's checkpoints
    path = tmp_path / "sd.npz"
    np.savez(path, sd=np.array(sd, dtype=object))
    loaded = np.load(path, allow_pickle=True)["sd"].item()
    ps2 = [p.copy() for p in ps]
    opt2 = cls(ps2, backend=backend, **kwargs)
    opt2.load_state_dict(loaded)
    assert opt2.param_groups[0]["train_mode"] is (mode == "train")
    for o in (opt, opt2):
        o.train()
    for s in range(3, 6):
        opt.step(grads_at(ps, s))
        opt2.step(grads_at(ps2, s))
    opt.eval()
    opt2.eval()
    for a, b in zip(ps, ps2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert repr(opt.state_dict()["param_groups"]) == repr(opt2.state_dict()["param_groups"])


def test_load_state_dict_needs_z() -> None:
    """A state with exp_avg_sq but no z is refused (without z, y cannot be moved to x)."""
    cls = fo.AdamWScheduleFree
    ps = params_of(np.float64)
    opt = cls(ps)
    opt.train()
    opt.step(grads_at(ps, 1))
    sd = opt.state_dict()
    del sd["state"][0]["z"]
    opt2 = cls([p.copy() for p in ps])
    with pytest.raises(ValueError, match=r"params\[0\].*lacks \['z'\]"):
        opt2.load_state_dict(sd)
    assert not opt2.state and opt2.param_groups[0]["k"] == 0


@pytest.mark.parametrize("cls", CLASSES)
def test_skipped_step_does_not_advance_the_counters(cls: Any, backend: str) -> None:
    ps = params_of(np.float64)
    opt = cls(ps, backend=backend)
    opt.skip_nonfinite = True
    opt.train()
    opt.step(grads_at(ps, 1))
    gs = grads_at(ps, 2)
    gs[0] = np.full_like(ps[0], np.nan)
    before = fingerprint(opt, ps)
    opt.step(gs)
    assert opt.skipped_steps == 1
    assert fingerprint(opt, ps)[:3] == before[:3]


# --------------------------------------------------------------- threads
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_threads_give_the_same_bits(cls: Any, kwargs: dict[str, Any]) -> None:
    old = fo.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 4):
            fo.set_num_threads(n)
            rng = np.random.default_rng(5)
            ps = [rng.standard_normal(s).astype(np.float32) for s in [(3000,), (517, 9), (1,)]]
            opt = cls(ps, **kwargs)
            results.append([np.concatenate([q.ravel() for q in step]) for step in drive(opt, ps)])
    finally:
        fo.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", CLASSES)
def test_another_classs_state_dict_is_refused(cls: Any) -> None:
    ps = params_of(np.float64)
    adam = fo.Adam([p.copy() for p in ps])
    adam.step(grads_at(ps, 1))
    opt = cls(ps)
    with pytest.raises(ValueError, match=r"state of an Adam optimizer, not an? " + cls.__name__):
        opt.load_state_dict(adam.state_dict())
