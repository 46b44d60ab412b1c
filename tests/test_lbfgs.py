"""LBFGS: known minima (a quadratic, Rosenbrock), torch.optim.LBFGS step for step, the
fused backend against the reference port, state-dict round trips and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import _core

LINE_SEARCHES = [None, "strong_wolfe"]
BACKENDS = ["fused", "numpy"]


def rosenbrock(x):
    """f and grad of the n-dimensional Rosenbrock function (minimum 0 at all ones)."""
    f = float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return f, g


def quadratic(n, seed=0):
    """f(x) = 1/2 x'Ax - b'x with A SPD: the minimum is A^-1 b."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    a = m @ m.T / n + np.eye(n)
    b = rng.standard_normal(n)
    return a, b, np.linalg.solve(a, b)


def rosen_start(n=6, dtype=np.float64):
    x = np.full(n, 1.0, dtype)
    x[::2] = -1.2
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ls", LINE_SEARCHES)
def test_quadratic_reaches_known_minimum(backend, ls):
    a, b, xstar = quadratic(20)
    w = np.zeros((4, 5))  # a 2-D parameter: the flat vector is its ravel
    opt = fo.LBFGS(
        [w],
        lr=1 if ls else 0.5,
        max_iter=200,
        max_eval=400,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn=ls,
        backend=backend,
    )

    def closure():
        x = w.reshape(-1)
        return 0.5 * x @ a @ x - b @ x, [(a @ x - b).reshape(4, 5)]

    opt.step(closure)
    np.testing.assert_allclose(w.reshape(-1), xstar, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rosenbrock_strong_wolfe_reaches_ones(backend):
    x = rosen_start(10)
    opt = fo.LBFGS([x], max_iter=500, max_eval=1000, line_search_fn="strong_wolfe", backend=backend)
    for _ in range(3):
        opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
    np.testing.assert_allclose(x, np.ones(10), atol=1e-5)


@pytest.mark.parametrize("ls", LINE_SEARCHES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_matches_reference_bits(ls, dtype):
    """Two parameters (flattened together), a small history that wraps its ring."""
    runs = {}
    for backend in BACKENDS:
        x = rosen_start(6, dtype)
        p1, p2 = x[:2].copy(), x[2:].reshape(2, 2).copy()
        opt = fo.LBFGS(
            [p1, p2],
            lr=1 if ls else 0.05,
            history_size=3,
            max_iter=7,
            line_search_fn=ls,
            backend=backend,
        )

        def closure(p1=p1, p2=p2):
            f, g = rosenbrock(np.concatenate([p1, p2.reshape(-1)]))
            return f, [g[:2].copy(), g[2:].reshape(2, 2).copy()]

        losses = [opt.step(closure) for _ in range(6)]
        runs[backend] = (p1.copy(), p2.copy(), losses, opt.state_dict()["state"][0])
    (a1, a2, la, sa), (b1, b2, lb, sb) = runs["fused"], runs["numpy"]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert la == lb
    assert sa.keys() == sb.keys()
    for k in sa:
        if isinstance(sa[k], list):
            assert len(sa[k]) == len(sb[k]) <= 3
            for u, v in zip(sa[k], sb[k], strict=True):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(sa[k], sb[k])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "ls,dtype,kwargs",
    [
        (None, np.float64, {"lr": 0.1, "history_size": 5, "max_iter": 10}),
        ("strong_wolfe", np.float64, {"history_size": 5, "max_iter": 10}),
        (None, np.float32, {"lr": 0.1, "history_size": 4, "max_iter": 6}),
        ("strong_wolfe", np.float64, {"max_iter": 4, "tolerance_change": 1e-5}),
    ],
)
def test_matches_torch_lbfgs(backend, ls, dtype, kwargs):
    torch = pytest.importorskip("torch")
    x0 = rosen_start(6, dtype)
    x = x0.copy()
    opt = fo.LBFGS([x], line_search_fn=ls, backend=backend, **kwargs)
    tx = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    topt = torch.optim.LBFGS([tx], line_search_fn=ls, **kwargs)

    def tclosure():
        f, g = rosenbrock(tx.detach().numpy().copy())
        tx.grad = torch.from_numpy(g)
        return torch.tensor(f, dtype=tx.dtype)

    tol = 1e-9 if dtype == np.float64 else 1e-3  # float32: Rosenbrock amplifies rounding
    for _ in range(5):
        loss = opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
        tloss = float(topt.step(tclosure))
        assert loss == pytest.approx(tloss, rel=tol, abs=tol if dtype == np.float64 else 1e-4)
        np.testing.assert_allclose(x, tx.detach().numpy(), rtol=tol, atol=tol)
    mine, theirs = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert int(mine["func_evals"]) == theirs["func_evals"]
    assert int(mine["n_iter"]) == theirs["n_iter"]
    assert len(mine["old_dirs"]) == len(theirs["old_dirs"])
    for u, v in zip(mine["old_stps"], theirs["old_stps"], strict=True):
        np.testing.assert_allclose(u, v.numpy(), rtol=1e-4, atol=tol)
    np.testing.assert_allclose(mine["d"], theirs["d"].numpy(), rtol=1e-4, atol=tol)
    hrel = 1e-4 if dtype == np.float64 else 1e-2
    assert float(mine["H_diag"]) == pytest.approx(float(theirs["H_diag"]), rel=hrel)


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_step_length_and_direction(backend):
    """One iteration without line search: x1 = x0 - min(1, 1/|g|_1) lr g (torch's rule)."""
    x = np.array([3.0, -4.0])
    g0 = np.array([6.0, -8.0])
    opt = fo.LBFGS([x], lr=0.5, max_iter=1, backend=backend)
    loss = opt.step(lambda: (float(x @ x), [2 * x]))
    assert loss == 25.0
    np.testing.assert_allclose(x, [3.0, -4.0] - 0.5 / 14.0 * g0, rtol=1e-15)
    st = opt.state[0]
    assert int(st["func_evals"]) == 1 and int(st["n_iter"]) == 1
    np.testing.assert_array_equal(st["d"], -g0)
    assert st["old_dirs"] == [] and float(st["H_diag"]) == 1.0


def test_optimal_start_returns_at_once():
    x = np.zeros(3)
    opt = fo.LBFGS([x])
    assert opt.step(lambda: (0.0, [np.zeros(3)])) == 0.0
    assert dict(opt.state[0]).keys() == {"func_evals", "n_iter"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ls", LINE_SEARCHES)
def test_state_dict_round_trip_resumes_identically(backend, ls, tmp_path):
    def run(opt, x, steps):
        return [opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x))) for _ in range(steps)]

    kw = {"lr": 1 if ls else 0.05, "history_size": 3, "max_iter": 5, "line_search_fn": ls}
    x = rosen_start()
    opt = fo.LBFGS([x], backend=backend, **kw)
    run(opt, x, 3)
    sd = opt.state_dict()
    assert isinstance(sd["state"][0]["old_dirs"], list)
    x2 = x.copy()
    path = tmp_path / "ck.npz"
    fo.save_checkpoint(path, opt)
    a = run(opt, x, 3)
    opt2 = fo.LBFGS([x2], backend=backend, **kw)
    opt2.load_state_dict(sd)
    b = run(opt2, x2, 3)
    assert a == b
    np.testing.assert_array_equal(x, x2)
    x3 = np.zeros_like(x)
    opt3 = fo.LBFGS([x3], backend=backend, **kw)
    fo.load_checkpoint(path, opt3)
    c = run(opt3, x3, 3)
    assert c == a
    np.testing.assert_array_equal(x3, x)


def test_state_dict_between_backends():
    x = rosen_start()
    opt = fo.LBFGS([x], lr=0.05, history_size=2, backend="fused")
    opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
    y = x.copy()
    ref = fo.LBFGS([y], lr=0.05, history_size=2, backend="numpy")
    ref.load_state_dict(opt.state_dict())
    for o, v in ((opt, x), (ref, y)):
        o.step(lambda v=v: (lambda f, g: (f, [g]))(*rosenbrock(v)))
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_closure_changes_nothing(backend):
    x = rosen_start()
    opt = fo.LBFGS([x], lr=0.05, history_size=2, backend=backend)
    for _ in range(3):
        opt.step(lambda: (lambda f, g: (f, [g]))(*rosenbrock(x)))
    before, sd = x.copy(), opt.state_dict()
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 4:
            return 1.0, [np.zeros(3)]  # wrong shape on the 4th call
        f, g = rosenbrock(x)
        return f, [g]

    with pytest.raises(ValueError, match="grads"):
        opt.step(closure)
    np.testing.assert_array_equal(x, before)
    after = opt.state_dict()["state"][0]
    for k, v in sd["state"][0].items():
        if isinstance(v, list):
            for u, w in zip(v, after[k], strict=True):
                np.testing.assert_array_equal(u, w)
        else:
            np.testing.assert_array_equal(v, after[k])


def test_defaults_as_torch():
    opt = fo.LBFGS([np.zeros(2)], max_iter=8)
    assert opt.defaults == {
        "lr": 1,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "max_iter": 8,
        "max_eval": 10,
        "history_size": 100,
        "line_search_fn": None,
    }


def test_no_closure_is_a_type_error():
    opt = fo.LBFGS([np.zeros(2)])
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    with pytest.raises(TypeError, match="closure"):
        opt.step([np.zeros(2)])
    with pytest.raises(TypeError, match="closure"):
        opt.step(closure=3)


def test_two_param_groups_refused():
    with pytest.raises(ValueError, match="parameter groups"):
        fo.LBFGS([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)]}])
    opt = fo.LBFGS([np.zeros(2)])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [np.zeros(2)]})


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"lr": -1.0}, ValueError, "lr"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"max_iter": 2.5}, TypeError, "max_iter"),
        ({"max_eval": 0}, ValueError, "max_eval"),
        ({"max_eval": "10"}, TypeError, "max_eval"),
        ({"history_size": 0}, ValueError, "history_size"),
        ({"history_size": True}, TypeError, "history_size"),
        ({"tolerance_grad": -1e-7}, ValueError, "tolerance_grad"),
        ({"tolerance_change": float("nan")}, ValueError, "tolerance_change"),
        ({"line_search_fn": "armijo"}, ValueError, "line_search_fn"),
        ({"line_search_fn": 1}, TypeError, "line_search_fn"),
        ({"backend": "cuda"}, ValueError, "backend"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fo.LBFGS([np.zeros(2)], **kwargs)


def test_bad_group_value_refused_before_any_write():
    x = np.ones(2)
    opt = fo.LBFGS([x])
    opt.param_groups[0]["line_search_fn"] = "wolfe"
    with pytest.raises(ValueError, match="line_search_fn"):
        opt.step(lambda: (float(x @ x), [2 * x]))
    opt.param_groups[0]["line_search_fn"] = None
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step(lambda: (float(x @ x), [2 * x]))
    np.testing.assert_array_equal(x, [1.0, 1.0])
    assert len(opt.state) == 0


def test_bad_closure_output():
    x = np.ones(2)
    opt = fo.LBFGS([x])
    with pytest.raises(TypeError, match="closure"):
        opt.step(lambda: 1.0)
    with pytest.raises(TypeError, match="dtype"):
        opt.step(lambda: (1.0, [np.ones(2, np.float32)]))
    np.testing.assert_array_equal(x, [1.0, 1.0])


@pytest.mark.parametrize("new_size", [2, 6])
def test_history_size_changed_between_steps(new_size):
    """A smaller history drops its oldest pairs at once, a larger one keeps them all;
    both backends alike."""
    runs = []
    for backend in BACKENDS:
        x = rosen_start()
        opt = fo.LBFGS([x], lr=0.05, history_size=4, max_iter=6, backend=backend)
        closure = lambda x=x: (lambda f, g: (f, [g]))(*rosenbrock(x))  # noqa: E731
        opt.step(closure)
        dirs = [a.copy() for a in opt.state[0]["old_dirs"]]
        assert len(dirs) == 4
        opt.param_groups[0]["history_size"] = new_size
        opt.step(closure)
        runs.append((x.copy(), opt.state_dict()["state"][0]))
        assert len(runs[-1][1]["old_dirs"]) == new_size
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for u, v in zip(runs[0][1]["old_stps"], runs[1][1]["old_stps"], strict=True):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------- the native axpy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 70_001])
def test_native_axpy_is_numpys_two_calls_bit_for_bit(dtype, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    a = dtype(rng.standard_normal())
    expected = y + np.multiply(x, a)
    _core.axpy(float(a), x, y)
    np.testing.assert_array_equal(y, expected)


def test_native_axpy_bad_input_changes_nothing():
    x = np.ones(4, np.float32)
    y = np.zeros(4, np.float32)
    cases = [
        (np.ones(4), y, TypeError, "dtype"),
        (x, np.zeros(5, np.float32), ValueError, "elements"),
        (x, np.zeros(4, np.float32)[::-1], TypeError, "C-contiguous"),
        (x, np.zeros(4, np.int32), TypeError, "float32"),
        (y, y, ValueError, "share memory"),
        ([1.0] * 4, y, TypeError, "numpy.ndarray"),
    ]
    for xx, yy, exc, match in cases:
        before = np.array(yy, copy=True) if isinstance(yy, np.ndarray) else None
        with pytest.raises(exc, match=match):
            _core.axpy(1.0, xx, yy)
        if before is not None:
            np.testing.assert_array_equal(yy, before)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.axpy(1.0, x, ro)
