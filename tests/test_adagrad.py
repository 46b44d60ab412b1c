"""Adagrad, RMSprop, Adadelta and Adamax: first steps by hand, state, and bad hyperparameters.

Each expected value is worked out here with plain Python floats, element by element,
straight from the formulas of torch.optim's documentation, independently of the code
under test. Both backends and both dtypes are checked.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import fusedopt as fo

BACKENDS = ["fused", "numpy"]
DTYPES = [pytest.param(np.float64, id="f64"), pytest.param(np.float32, id="f32")]
REL = {np.float64: 1e-13, np.float32: 2e-6}
P0 = (1.5, -0.7)
# Two elements, two steps. For Adamax, element 0's second gradient is below beta2 * u
# (the decayed maximum wins) and element 1's is above it (the new gradient wins).
GRADS = ((0.4, 0.25), (-0.3, 2.0))


def two_steps(cls, backend, dtype, lrs=None, **kwargs):
    """The parameter after each of two steps with GRADS (``lrs``: lr written before each step)."""
    p = np.array(P0, dtype=dtype)
    opt = cls([p], backend=backend, **kwargs)
    out = []
    for k, g in enumerate(GRADS):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[k]
        opt.step([np.array(g, dtype=dtype)])
        out.append(p.copy())
    return out, opt


def check(got, expected, dtype):
    """``expected[step][element]`` against ``got[step]``."""
    for step, (g, e) in enumerate(zip(got, expected, strict=True)):
        for i, ei in enumerate(e):
            assert float(g[i]) == pytest.approx(ei, rel=REL[dtype], abs=1e-300), (step, i)


def by_hand(update, **hyper):
    """Runs ``update(p, g, t, state, **hyper) -> p`` over GRADS for each element."""
    per_element = []
    for i, p in enumerate(P0):
        state: dict[str, float] = {}
        ps = []
        for t, grads in enumerate(GRADS, start=1):
            p = update(p, grads[i], t, state, **hyper)
            ps.append(p)
        per_element.append(ps)
    return [tuple(e[k] for e in per_element) for k in range(len(GRADS))]


# --------------------------------------------------------------------- Adagrad
def adagrad_step(p, g, t, s, lr, lr_decay, wd, init, eps, maximize):
    g = -g if maximize else g
    g = g + wd * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s["sum"] = s.get("sum", init) + g * g
    return p - clr * g / (math.sqrt(s["sum"]) + eps)


ADAGRAD = [
    ("adagrad", dict(lr=0.1)),
    ("lr_decay", dict(lr=0.1, lr_decay=0.5)),
    ("init_acc-wd", dict(lr=0.1, initial_accumulator_value=0.2, weight_decay=0.3)),
    ("all-maximize", dict(lr=0.2, lr_decay=0.1, weight_decay=0.1, eps=0.01, maximize=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [c[1] for c in ADAGRAD], ids=[c[0] for c in ADAGRAD])
def test_adagrad(kwargs, backend, dtype):
    expected = by_hand(
        adagrad_step,
        lr=kwargs["lr"],
        lr_decay=kwargs.get("lr_decay", 0.0),
        wd=kwargs.get("weight_decay", 0.0),
        init=kwargs.get("initial_accumulator_value", 0.0),
        eps=kwargs.get("eps", 1e-10),
        maximize=kwargs.get("maximize", False),
    )
    got, _ = two_steps(fo.Adagrad, backend, dtype, **kwargs)
    check(got, expected, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_first_step_moves_by_lr_and_the_sum_accumulates(backend):
    (p1, _), opt = two_steps(fo.Adagrad, backend, np.float64, lr=0.1, eps=0.0)
    assert p1.tolist() == pytest.approx([1.4, -0.8], rel=1e-15)  # g / sqrt(g^2) = 1: moves by lr
    np.testing.assert_allclose(opt.state[0]["sum"], [0.4**2 + 0.3**2, 0.25**2 + 2.0**2])
    assert float(opt.state[0]["step"]) == 2.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_state_exists_from_construction(backend):
    w = [np.zeros((2, 3), np.float32), np.asfortranarray(np.zeros((3, 4)))]
    opt = fo.Adagrad(
        [{"params": w[:1]}, {"params": w[1:], "initial_accumulator_value": 0.5}],
        initial_accumulator_value=0.25,
        backend=backend,
    )
    sd = opt.state_dict()["state"]
    assert sorted(sd) == [0, 1]
    assert set(sd[0]) == set(sd[1]) == {"step", "sum"}
    assert float(sd[0]["step"]) == 0.0
    assert sd[0]["sum"].dtype == np.float32 and (sd[0]["sum"] == 0.25).all()
    assert sd[1]["sum"].flags.f_contiguous and (sd[1]["sum"] == 0.5).all()
    extra = np.zeros(4)
    opt.add_param_group({"params": [extra], "initial_accumulator_value": 2.0})
    assert (opt.state[extra]["sum"] == 2.0).all()


# --------------------------------------------------------------------- RMSprop
def rmsprop_step(p, g, t, s, lr, alpha, eps, wd, momentum, centered, maximize):
    lr = lr[t - 1] if isinstance(lr, tuple) else lr
    g = -g if maximize else g
    g = g + wd * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    if centered:
        s["m"] = alpha * s.get("m", 0.0) + (1 - alpha) * g
        avg = math.sqrt(s["v"] - s["m"] ** 2) + eps
    else:
        avg = math.sqrt(s["v"]) + eps  # no bias correction, eps after the root
    if momentum > 0:
        s["b"] = momentum * s.get("b", 0.0) + g / avg
        return p - lr * s["b"]  # lr outside the buffer
    return p - lr * g / avg


RMSPROP = [
    ("rmsprop", dict(lr=0.01)),
    ("alpha-eps", dict(lr=0.01, alpha=0.5, eps=0.1)),
    ("centered", dict(lr=0.01, alpha=0.9, centered=True)),
    ("momentum-wd", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.2)),
    (
        "centered-momentum-wd-maximize",
        dict(lr=0.02, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1, maximize=True),
    ),
]


def rmsprop_hyper(kwargs, lr=None):
    return dict(
        lr=kwargs["lr"] if lr is None else lr,
        alpha=kwargs.get("alpha", 0.99),
        eps=kwargs.get("eps", 1e-8),
        wd=kwargs.get("weight_decay", 0.0),
        momentum=kwargs.get("momentum", 0.0),
        centered=kwargs.get("centered", False),
        maximize=kwargs.get("maximize", False),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [c[1] for c in RMSPROP], ids=[c[0] for c in RMSPROP])
def test_rmsprop(kwargs, backend, dtype):
    expected = by_hand(rmsprop_step, **rmsprop_hyper(kwargs))
    got, opt = two_steps(fo.RMSprop, backend, dtype, **kwargs)
    check(got, expected, dtype)
    keys = {"step", "square_avg"}  # only the state an option uses, as torch
    if kwargs.get("momentum", 0) > 0:
        keys.add("momentum_buffer")
    if kwargs.get("centered"):
        keys.add("grad_avg")
    assert set(opt.state_dict()["state"][0]) == keys


@pytest.mark.parametrize("backend", BACKENDS)
def test_rmsprop_momentum_buffer_does_not_hold_the_learning_rate(backend):
    kwargs = dict(lr=0.01, alpha=0.9, momentum=0.9)
    expected = by_hand(rmsprop_step, **rmsprop_hyper(kwargs, lr=(0.01, 0.05)))
    got, _ = two_steps(fo.RMSprop, backend, np.float64, lrs=(0.01, 0.05), **kwargs)
    check(got, expected, np.float64)


# -------------------------------------------------------------------- Adadelta
def adadelta_step(p, g, t, s, lr, rho, eps, wd, maximize):
    g = -g if maximize else g
    g = g + wd * p
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    u = s.get("u", 0.0)
    delta = math.sqrt(u + eps) / math.sqrt(s["v"] + eps) * g  # eps inside both roots
    s["u"] = rho * u + (1 - rho) * delta * delta
    return p - lr * delta


ADADELTA = [
    ("adadelta", dict()),
    ("lr-rho-eps", dict(lr=0.5, rho=0.5, eps=1e-2)),
    ("wd-maximize", dict(rho=0.8, weight_decay=0.2, maximize=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [c[1] for c in ADADELTA], ids=[c[0] for c in ADADELTA])
def test_adadelta(kwargs, backend, dtype):
    expected = by_hand(
        adadelta_step,
        lr=kwargs.get("lr", 1.0),
        rho=kwargs.get("rho", 0.9),
        eps=kwargs.get("eps", 1e-6),
        wd=kwargs.get("weight_decay", 0.0),
        maximize=kwargs.get("maximize", False),
    )
    got, opt = two_steps(fo.Adadelta, backend, dtype, **kwargs)
    check(got, expected, dtype)
    assert set(opt.state_dict()["state"][0]) == {"step", "square_avg", "acc_delta"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_adadelta_default_first_step(backend):
    # v = 0.1 g^2, delta = sqrt(eps) / sqrt(0.1 g^2 + eps) * g, about sqrt(10 eps) sign(g).
    (p1, _), _ = two_steps(fo.Adadelta, backend, np.float64)
    assert p1[0] == pytest.approx(1.5 - 1e-3 * 0.4 / math.sqrt(0.016 + 1e-6), rel=1e-14)


# ---------------------------------------------------------------------- Adamax
def adamax_step(p, g, t, s, lr, b1, b2, eps, wd, maximize):
    g = -g if maximize else g
    g = g + wd * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["u"] = max(b2 * s.get("u", 0.0), abs(g) + eps)  # eps inside the max
    return p - lr / (1 - b1**t) * s["m"] / s["u"]


ADAMAX = [
    ("adamax", dict(lr=0.1)),
    ("betas-eps", dict(lr=0.1, betas=(0.5, 0.9), eps=0.05)),
    ("wd-maximize", dict(lr=0.1, betas=(0.8, 0.95), weight_decay=0.3, maximize=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs", [c[1] for c in ADAMAX], ids=[c[0] for c in ADAMAX])
def test_adamax(kwargs, backend, dtype):
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    expected = by_hand(
        adamax_step,
        lr=kwargs["lr"],
        b1=b1,
        b2=b2,
        eps=kwargs.get("eps", 1e-8),
        wd=kwargs.get("weight_decay", 0.0),
        maximize=kwargs.get("maximize", False),
    )
    got, opt = two_steps(fo.Adamax, backend, dtype, **kwargs)
    check(got, expected, dtype)
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_inf"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_adamax_infinity_norm_and_zero_gradient(backend):
    p = np.array([1.0, 2.0])
    opt = fo.Adamax([p], lr=0.1, betas=(0.5, 0.5), eps=1e-3, backend=backend)
    opt.step([np.array([0.0, 4.0])])  # a zero gradient: u = eps, m = 0, no move, no NaN
    opt.step([np.array([0.0, 1.0])])
    u = opt.state[0]["exp_inf"]
    assert u[0] == pytest.approx(1e-3)  # max(0.5 eps, 0 + eps)
    assert u[1] == pytest.approx(0.5 * 4.001)  # max(0.5 * 4.001, 1.001): the decayed max
    assert p[0] == 1.0


# ------------------------------------------------------- signatures and errors
SIGNATURES = {
    fo.Adagrad: ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    fo.RMSprop: ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
    fo.Adadelta: ["lr", "rho", "eps", "weight_decay"],
    fo.Adamax: ["lr", "betas", "eps", "weight_decay"],
}
DEFAULTS = {
    fo.Adagrad: dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10),
    fo.RMSprop: dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False),
    fo.Adadelta: dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0),
    fo.Adamax: dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0),
}


@pytest.mark.parametrize("cls", list(SIGNATURES), ids=lambda c: c.__name__)
def test_signature_and_defaults_are_torchs(cls):
    sig = inspect.signature(cls.__init__).parameters
    positional = [n for n, p in sig.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["self", "params", *SIGNATURES[cls]]
    assert sig["maximize"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig["backend"].default == "fused"
    opt = cls([np.zeros(2)])
    assert opt.defaults == {**DEFAULTS[cls], "maximize": False}


HYPER_ERRORS = [
    (fo.Adagrad, dict(lr=-0.1), ValueError, "lr"),
    (fo.Adagrad, dict(lr_decay=-0.1), ValueError, "lr_decay"),
    (fo.Adagrad, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Adagrad, dict(initial_accumulator_value=-0.1), ValueError, "initial_accumulator_value"),
    (fo.Adagrad, dict(eps=-1e-10), ValueError, "eps"),
    (fo.Adagrad, dict(lr_decay="0"), TypeError, "lr_decay"),
    (fo.Adagrad, dict(maximize=1), TypeError, "maximize"),
    (fo.RMSprop, dict(lr=-1e-2), ValueError, "lr"),
    (fo.RMSprop, dict(alpha=-0.1), ValueError, "alpha"),
    (fo.RMSprop, dict(alpha=1.5), ValueError, "alpha"),
    (fo.RMSprop, dict(eps=-1e-8), ValueError, "eps"),
    (fo.RMSprop, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.RMSprop, dict(momentum=-0.5), ValueError, "momentum"),
    (fo.RMSprop, dict(momentum=float("nan")), ValueError, "momentum"),
    (fo.RMSprop, dict(centered="yes"), TypeError, "centered"),
    (fo.RMSprop, dict(maximize=None), TypeError, "maximize"),
    (fo.Adadelta, dict(lr=-1.0), ValueError, "lr"),
    (fo.Adadelta, dict(rho=-0.1), ValueError, "rho"),
    (fo.Adadelta, dict(rho=1.01), ValueError, "rho"),
    (fo.Adadelta, dict(eps=-1e-6), ValueError, "eps"),
    (fo.Adadelta, dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (fo.Adadelta, dict(maximize="no"), TypeError, "maximize"),
    (fo.Adamax, dict(lr=-2e-3), ValueError, "lr"),
    (fo.Adamax, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (fo.Adamax, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (fo.Adamax, dict(betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
    (fo.Adamax, dict(betas=0.9), TypeError, "betas"),
    (fo.Adamax, dict(eps=-1e-8), ValueError, "eps"),
    (fo.Adamax, dict(weight_decay=float("inf")), ValueError, "weight_decay"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "match"),
    HYPER_ERRORS,
    ids=[f"{c.__name__}-{'-'.join(kw)}-{i}" for i, (c, kw, _, _) in enumerate(HYPER_ERRORS)],
)
def test_bad_hyperparameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls([np.zeros(3)], **kwargs)
    with pytest.raises(exc, match=match):  # also as a per-group override, checked the same way
        cls([{"params": [np.zeros(3)], **kwargs}])
    opt = cls([np.zeros(3)])
    with pytest.raises(exc, match=match):
        opt.add_param_group({"params": [np.zeros(2)], **kwargs})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (fo.RMSprop, dict(alpha=0.0)),
        (fo.RMSprop, dict(alpha=1.0)),
        (fo.Adadelta, dict(rho=0.0)),
        (fo.Adadelta, dict(rho=1.0)),
        (fo.Adamax, dict(betas=(0.0, 0.0))),
        (fo.Adagrad, dict(eps=0.0, lr=0.0)),
    ],
    ids=["alpha0", "alpha1", "rho0", "rho1", "betas0", "eps0-lr0"],
)
def test_boundary_hyperparameters_are_accepted(cls, kwargs):
    cls([np.zeros(3)], **kwargs)
