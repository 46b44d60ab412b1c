"""torch 2.x's optimizer API around the step, for every optimizer of the table: ``None``
grads, ``(name, array)`` parameters, ``step(closure)`` and the hooks (issue 15)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fusedopt as fo

from .table import CONFIGS

SHAPES = [(7, 3), (5,), (4, 2)]


def _params(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(s) for s in SHAPES]


def _grads(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(s) for s in SHAPES]


# ------------------------------------------------------------------------- None grads
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
@pytest.mark.parametrize("clip", [None, 0.5], ids=["noclip", "clip"])
def test_a_none_grad_skips_its_parameter(cls, kwargs, backend, rng, clip):
    """Oracle: an optimizer of the other parameters only, given the same grads (every
    update is per tensor; the clip norm counts only the grads that are there)."""
    params = _params(rng)
    others = [params[0].copy(), params[2].copy()]
    opt = cls(params, backend=backend, max_grad_norm=clip, **kwargs)
    ref = cls(others, backend=backend, max_grad_norm=clip, **kwargs)
    frozen = params[1].copy()
    for _ in range(3):
        g = _grads(rng)
        opt.step([g[0], None, g[2]])
        ref.step([g[0], g[2]])
    np.testing.assert_array_equal(params[0], others[0])
    np.testing.assert_array_equal(params[2], others[1])
    np.testing.assert_array_equal(params[1], frozen)  # no step, no weight decay
    sd, ref_sd = opt.state_dict()["state"], ref.state_dict()["state"]
    if not cls.eager_state:
        assert 1 not in sd and 1 not in opt.state  # no state for a parameter never stepped
    else:
        assert set(sd[1]) == set(ref_sd[0])
    for mine, theirs in ((0, 0), (2, 1)):
        assert set(sd.get(mine, {})) == set(ref_sd.get(theirs, {}))
        for k, v in ref_sd.get(theirs, {}).items():
            np.testing.assert_array_equal(sd[mine][k], v)
    if clip is not None:
        assert opt.last_grad_norm == ref.last_grad_norm


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_a_parameter_stepped_once_keeps_its_state_while_its_grad_is_none(cls, kwargs, backend, rng):
    params = _params(rng)
    opt = cls(params, backend=backend, **kwargs)
    opt.step(_grads(rng))
    before = {k: v.copy() for k, v in opt.state_dict()["state"].get(1, {}).items()}
    value = params[1].copy()
    g = _grads(rng)
    opt.step([g[0], None, g[2]])
    np.testing.assert_array_equal(params[1], value)
    after = opt.state_dict()["state"].get(1, {})
    assert set(after) == set(before)
    for k, v in after.items():
        np.testing.assert_array_equal(v, before[k])


def test_all_grads_none_changes_nothing(backend, rng):
    params = _params(rng)
    copies = [p.copy() for p in params]
    opt = fo.Adam(params, backend=backend, track_grad_norm=True)
    opt.step([None, None, None])
    for p, c in zip(params, copies, strict=True):
        np.testing.assert_array_equal(p, c)
    assert opt.state_dict()["state"] == {}
    assert opt.last_grad_norm == 0.0  # torch: the norm of no grads is 0


def test_none_grads_match_torch(backend, rng):
    torch = pytest.importorskip("torch")
    p0 = _params(rng)
    ours = [p.copy() for p in p0]
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    kw = dict(lr=0.1, weight_decay=0.1)
    opt = fo.AdamW(ours, backend=backend, **kw)
    topt = torch.optim.AdamW(theirs, foreach=False, **kw)
    for k in range(4):
        g = _grads(rng)
        skip = k % 3
        for i, t in enumerate(theirs):
            t.grad = None if i == skip else torch.tensor(g[i])
        topt.step()
        opt.step([None if i == skip else g[i] for i in range(3)])
    for p, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert sorted(opt.state_dict()["state"]) == sorted(topt.state_dict()["state"])


def test_none_is_refused_where_a_grad_is_required(rng):
    """MultiSteps averages every grad: a None there is a TypeError naming it."""
    params = _params(rng)
    ms = fo.MultiSteps(fo.SGD(params, lr=0.1), every_k_steps=2)
    g = _grads(rng)
    with pytest.raises(TypeError, match=r"grads\[1\]"):
        ms.step([g[0], None, g[2]])


# ----------------------------------------------------------------- named parameters
def test_named_params_give_param_names_as_torch(rng):
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    opt = fo.Adam([("layer.weight", w), ("layer.bias", b)], lr=0.1)
    opt.step([np.ones((3, 2)), np.ones(2)])
    sd = opt.state_dict()
    assert sd["param_groups"][0]["param_names"] == ["layer.weight", "layer.bias"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert opt.param_groups[0]["params"][0] is w
    opt2 = fo.Adam([("layer.weight", w.copy()), ("layer.bias", b.copy())], lr=0.1)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["param_names"] == ["layer.weight", "layer.bias"]


def test_named_param_groups(rng):
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    opt = fo.SGD([{"params": [("w", w)]}, {"params": [("b", b)], "lr": 0.5}], lr=0.1)
    assert [g["param_names"] for g in opt.state_dict()["param_groups"]] == [["w"], ["b"]]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [rng.standard_normal(2)]})
    assert len(opt.param_groups) == 2


def test_named_params_match_torch_state_dict_keys(rng):
    torch = pytest.importorskip("torch")
    w = rng.standard_normal((3, 2))
    t = torch.tensor(w, requires_grad=True)
    topt = torch.optim.SGD([("w", t)], lr=0.1)
    opt = fo.SGD([("w", w)], lr=0.1)
    ours = opt.state_dict()["param_groups"][0]
    theirs = topt.state_dict()["param_groups"][0]
    assert ours["param_names"] == theirs["param_names"]


def test_named_params_bad_input(rng):
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    with pytest.raises(ValueError, match="Some param names are missing"):
        fo.SGD([("w", w), b], lr=0.1)
    with pytest.raises(TypeError, match="named parameter"):
        fo.SGD([(1, w)], lr=0.1)
    with pytest.raises(ValueError, match="with/without names"):
        fo.SGD([{"params": [("w", w)]}, {"params": [b]}], lr=0.1)


# --------------------------------------------------------------------------- closure
@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_step_with_a_closure_is_step_with_its_grads(cls, kwargs, backend, rng):
    params = _params(rng)
    twins = [p.copy() for p in params]
    opt = cls(params, backend=backend, **kwargs)
    ref = cls(twins, backend=backend, **kwargs)
    for k in range(3):
        g = _grads(rng)
        loss = (
            opt.step(lambda g=g, k=k: (float(k), g))
            if k % 2
            else opt.step(closure=lambda g=g, k=k: (float(k), g))
        )
        assert loss == float(k)
        assert ref.step(g) is None
    for p, t in zip(params, twins, strict=True):
        np.testing.assert_array_equal(p, t)


def test_closure_sees_the_current_parameters(rng):
    w = np.array([3.0, -2.0])
    opt = fo.SGD([w], lr=0.25)
    losses = [opt.step(lambda: (float(w @ w), [2 * w.copy()])) for _ in range(3)]
    # gradient descent on |w|^2 with lr 0.25 halves w each step
    np.testing.assert_allclose(losses, [13.0, 13.0 / 4, 13.0 / 16])
    np.testing.assert_allclose(w, [3.0 / 8, -2.0 / 8])


def test_closure_bad_input(rng):
    w = np.zeros(2)
    opt = fo.SGD([w], lr=0.1)
    with pytest.raises(TypeError, match=r"closure\(\) must return a tuple \(loss, grads\)"):
        opt.step(lambda: 1.0)
    with pytest.raises(TypeError, match="not both"):
        opt.step([np.ones(2)], closure=lambda: (0.0, [np.ones(2)]))
    with pytest.raises(TypeError, match="needs the grads"):
        opt.step()
    with pytest.raises(TypeError, match="closure must be callable"):
        opt.step(closure=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 1 grads"):
        opt.step(lambda: (0.0, []))
    np.testing.assert_array_equal(w, 0.0)


# ----------------------------------------------------------------------------- hooks
def test_step_hooks_see_the_call_and_may_replace_its_arguments(rng):
    w = np.zeros(2)
    opt = fo.SGD([w], lr=1.0)
    calls: list[tuple[str, Any, Any]] = []

    def pre(o: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert o is opt
        calls.append(("pre", args, kwargs))
        return (o, [np.full(2, 2.0)]), {}

    def post(o: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append(("post", args, kwargs))

    h1 = opt.register_step_pre_hook(pre)
    h2 = opt.register_step_post_hook(post)
    g = [np.ones(2)]
    opt.step(g)
    np.testing.assert_array_equal(w, [-2.0, -2.0])  # the hook's grads were used
    assert [c[0] for c in calls] == ["pre", "post"]
    assert calls[0][1][0] is opt and calls[0][1][1] is g
    h1.remove()
    h2.remove()
    h2.remove()  # twice is fine
    opt.step(g)
    np.testing.assert_array_equal(w, [-3.0, -3.0])
    assert len(calls) == 2


def test_step_pre_hook_returning_garbage_is_refused():
    w = np.zeros(2)
    opt = fo.SGD([w], lr=1.0)
    opt.register_step_pre_hook(lambda o, a, k: 5)
    with pytest.raises(
        RuntimeError, match=r"must return None or a tuple of \(new_args, new_kwargs\)"
    ):
        opt.step([np.ones(2)])
    np.testing.assert_array_equal(w, 0.0)


def test_state_dict_hooks_in_order_with_prepend(rng):
    w = np.zeros(2)
    opt = fo.Adam([w], lr=0.1)
    opt.step([np.ones(2)])
    seen: list[str] = []
    opt.register_state_dict_pre_hook(lambda o: seen.append("pre"))
    opt.register_state_dict_post_hook(lambda o, sd: seen.append("post-a"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1}, prepend=True)
    sd = opt.state_dict()
    assert seen == ["pre", "post-a"] and sd["extra"] == 1
    loaded: list[str] = []

    def drop_extra(o: Any, sd: dict[str, Any]) -> dict[str, Any]:
        loaded.append("pre")
        return {k: v for k, v in sd.items() if k != "extra"}

    opt.register_load_state_dict_pre_hook(drop_extra)
    handle = opt.register_load_state_dict_post_hook(lambda o: loaded.append("post"))
    opt.load_state_dict(sd)
    assert loaded == ["pre", "post"]
    handle.remove()
    opt.load_state_dict(sd)
    assert loaded == ["pre", "post", "pre"]


def test_hooks_match_torch_call_signature(rng):
    torch = pytest.importorskip("torch")
    t = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([t], lr=1.0)
    opt = fo.SGD([np.zeros(2)], lr=1.0)
    got: dict[str, Any] = {}
    for name, o in (("torch", topt), ("ours", opt)):
        o.register_step_pre_hook(lambda o, a, k, name=name: got.setdefault(name, (a, k)))
    t.grad = torch.ones(2)
    topt.step()
    opt.step(closure=lambda: (0.0, [np.ones(2)]))
    assert got["torch"][0] == (topt,) and got["torch"][1] == {}
    assert got["ours"][0] == (opt,) and set(got["ours"][1]) == {"closure"}


def test_a_hook_must_be_callable():
    opt = fo.SGD([np.zeros(2)], lr=1.0)
    with pytest.raises(TypeError, match="hook must be callable"):
        opt.register_step_post_hook(3)  # type: ignore[arg-type]
