"""Signatures, defaults and declarations of every optimizer class.

Each class against the table's ``SIGNATURES`` (written out by hand from torch.optim's
documentation), against torch.optim's own signature and param groups when PyTorch is
installed, and its table of hyperparameter rules against what its C++ kernel declares
(``fusedopt._core.kernels``): a class whose table disagrees fails when it is created.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.rules import BETAS, FLAG, NONNEGATIVE, Rule, hyper_table

from .table import GROUP_COUPLED, OPTIMIZERS, ROWS, SELF_STEPPING, SIGNATURES, TRAIN_EVAL

CLASSES = [
    pytest.param(cls, id=cls.__name__)
    for cls in OPTIMIZERS + SELF_STEPPING + TRAIN_EVAL + GROUP_COUPLED
]
KERNEL_CLASSES = [
    pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS + TRAIN_EVAL + GROUP_COUPLED
]


def a_param(cls: type[fo.Optimizer]) -> np.ndarray:
    """A parameter every class takes (Muon: 2-D only)."""
    return np.zeros((2, 2) if cls is fo.Muon else 2)


def torch_class(cls: type[fo.Optimizer]) -> type:
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.optim, cls.__name__, None)
    if theirs is None:
        pytest.skip(f"torch.optim has no {cls.__name__}")
    return theirs


def test_the_table_covers_every_optimizer():
    exported = {
        obj
        for name in fo.__all__
        if isinstance(obj := getattr(fo, name), type)
        and issubclass(obj, fo.Optimizer)
        and obj is not fo.Optimizer
    }
    coupled = set(GROUP_COUPLED)
    assert set(OPTIMIZERS) | set(SELF_STEPPING) | set(TRAIN_EVAL) | coupled == exported
    assert len(OPTIMIZERS) + len(SELF_STEPPING) + len(TRAIN_EVAL) + len(coupled) == len(exported)
    assert set(SIGNATURES) == exported
    assert {cls for _, cls, _ in ROWS} == set(OPTIMIZERS)  # every kernel class has configurations
    assert all(cls.kernel is None for cls in SELF_STEPPING)


@pytest.mark.parametrize("cls", CLASSES)
def test_signature_is_the_tables(cls):
    sig = SIGNATURES[cls]
    params = inspect.signature(cls).parameters
    # fusedopt's own, for every class (LBFGS does not clip: clipping breaks its secant pairs)
    options: tuple[str, ...] = ("backend", "max_grad_norm", "track_grad_norm")
    if cls is fo.LBFGS:
        options = ("backend",)
    # low precision (issue 18): every class, with the contract's defaults
    options = (*options, "state_dtype", "stochastic_rounding", "seed")
    assert list(params) == ["params", *sig.positional, *sig.keyword_only, *options]
    assert params["state_dtype"].default is None
    assert params["stochastic_rounding"].default is False
    assert params["seed"].default == 0
    for name in ("params", *sig.positional):
        assert params[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
    for name in (*sig.keyword_only, *options):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert params["params"].default is inspect.Parameter.empty
    assert params["backend"].default == "fused"
    if "max_grad_norm" in options:
        assert params["max_grad_norm"].default is None
        assert params["track_grad_norm"].default is False
    for name in (*sig.positional, *sig.keyword_only):
        assert params[name].default == sig.arguments.get(name, sig.defaults[name]), name
        assert type(params[name].default) is not list, name  # a pair is a tuple, never shared


@pytest.mark.parametrize("cls", CLASSES)
def test_defaults_are_the_tables(cls):
    expected = SIGNATURES[cls].defaults
    opt = cls([a_param(cls)])
    assert opt.defaults == expected
    group = opt.param_groups[0]
    assert {k: v for k, v in group.items() if k != "params"} == expected
    for k, v in expected.items():  # a flag stays a bool, a number a number
        assert isinstance(group[k], bool) == isinstance(v, bool), k


@pytest.mark.parametrize("cls", CLASSES)
def test_every_hyperparameter_is_a_checked_group_key(cls):
    """The table names group keys only; the kernel reads all but the initial-state ones."""
    opt = cls([a_param(cls)])
    group = opt.param_groups[0]
    keys = [*cls.hyperparameters, *cls.extra_hyperparameters]
    assert set(keys) == set(group) - {"params"} == set(SIGNATURES[cls].defaults)
    assert list(opt.defaults) == keys  # in the table's (kernel's) order, then the extras
    assert set(cls.hyper_names) == set(cls.hyperparameters) - set(cls.init_hyperparameters)
    assert list(cls.hyper_names) == [k for k in cls.hyperparameters if k in cls.hyper_names]


@pytest.mark.parametrize("cls", CLASSES)
def test_an_unknown_keyword_is_refused(cls):
    with pytest.raises(TypeError, match="bogus"):
        cls([a_param(cls)], bogus=1.0)
    if "eps" not in SIGNATURES[cls].defaults:  # Lion has no eps
        with pytest.raises(TypeError, match="eps"):
            cls([a_param(cls)], eps=1e-8)


# ----------------------------------------------------------------- against torch.optim
@pytest.mark.parametrize("cls", CLASSES)
def test_signature_agrees_with_torch(cls):
    """A positional call means what it means with torch.optim, and every argument has
    torch's default (torch may take more arguments: foreach, fused, capturable, ...)."""
    sig = SIGNATURES[cls]
    theirs = inspect.signature(torch_class(cls)).parameters
    positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[: 1 + len(sig.positional)] == ["params", *sig.positional]
    for name in (*sig.positional, *sig.keyword_only):
        if name in sig.ours:
            continue
        assert name in theirs, name
        assert theirs[name].default == sig.arguments.get(name, sig.defaults[name]), name


@pytest.mark.parametrize("cls", CLASSES)
def test_group_keys_and_defaults_agree_with_torch(cls):
    torch = pytest.importorskip("torch")
    mine = cls([a_param(cls)]).param_groups[0]
    theirs = torch_class(cls)([torch.tensor(a_param(cls))]).param_groups[0]
    ours = set(SIGNATURES[cls].ours)
    assert set(mine) - ours <= set(theirs)
    for k in mine.keys() - {"params"} - ours:
        assert mine[k] == theirs[k], k


# ------------------------------------------------------- against the kernel's declaration
@pytest.mark.parametrize("cls", KERNEL_CLASSES)
def test_the_class_tables_are_the_kernels_declaration(cls):
    declared = fo._core.kernels[cls.kernel]
    read = tuple(
        (k, rule.width)
        for k, rule in cls.hyperparameters.items()
        if k not in cls.init_hyperparameters
    )
    assert declared["hyperparameters"] == read
    assert declared["state"] == tuple(cls.state_names)
    assert declared["scalars"] == tuple(cls.scalar_names)
    assert cls._rules.kernel == cls.kernel
    assert list(cls._rules.names) == list(cls.hyperparameters)


def test_every_kernel_has_a_class():
    assert set(fo._core.kernels) == {cls.kernel for cls in OPTIMIZERS + TRAIN_EVAL + GROUP_COUPLED}


ADAM_TABLE = dict(fo.Adam.hyperparameters)


def adam_table(**changes: Rule | None):
    """Adam's table with ``changes`` (None: the key removed), in Adam's order."""
    table = {**ADAM_TABLE, **changes}
    return hyper_table(**{k: v for k, v in table.items() if v is not None})


WRONG_TABLES = [
    pytest.param(
        {
            "hyperparameters": hyper_table(
                betas=BETAS,
                lr=NONNEGATIVE,
                eps=NONNEGATIVE,
                weight_decay=NONNEGATIVE,
                amsgrad=FLAG,
                maximize=FLAG,
                decoupled_weight_decay=FLAG,
            )
        },
        r"are not those its kernel 'adam' reads",
        id="order",
    ),
    pytest.param({"hyperparameters": adam_table(betas=NONNEGATIVE)}, "reads", id="width"),
    pytest.param({"hyperparameters": adam_table(eps=None)}, "reads", id="missing"),
    pytest.param({"hyperparameters": adam_table(bogus=NONNEGATIVE)}, "reads", id="extra"),
    pytest.param({"hyperparameters": adam_table(amsgrad=None, ams=FLAG)}, "reads", id="renamed"),
    pytest.param(
        {"kernel": "nope", "hyperparameters": adam_table()},
        "no fused kernel named 'nope'",
        id="kernel",
    ),
    pytest.param(
        {"kernel": "sgd", "hyperparameters": adam_table()}, "kernel 'sgd' reads", id="other-kernel"
    ),
    pytest.param(
        {"state_names": ("exp_avg", "exp_avg_sq"), "hyperparameters": adam_table()},
        r"state_names .* are not the kernel's",
        id="state_names",
    ),
    pytest.param(
        {"scalar_names": ("step", "mu_product"), "hyperparameters": adam_table()},
        r"scalar_names .* are not the kernel's",
        id="scalar_names",
    ),
    pytest.param(
        {"init_hyperparameters": ("bogus",), "hyperparameters": adam_table()},
        r"init_hyperparameters \['bogus'\] are not in its table",
        id="init_hyperparameters",
    ),
]


@pytest.mark.parametrize(("attrs", "match"), WRONG_TABLES)
def test_a_wrong_table_fails_when_the_class_is_created(attrs, match):
    with pytest.raises(TypeError, match=match):
        type("Bad", (fo.Adam,), attrs)


def test_a_right_table_makes_a_working_class():
    """The control of the test above: the same subclass with Adam's own table works."""
    cls = type("Good", (fo.Adam,), {"hyperparameters": adam_table()})
    p = np.zeros(2)
    cls([p], lr=0.1).step([np.ones(2)])
    np.testing.assert_allclose(p, -0.1, rtol=1e-6)


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"kernel": "sgd"}, id="kernel"),
        pytest.param({"state_names": ("a",)}, id="state"),
    ],
)
def test_a_subclass_changing_only_its_kernel_or_state_fails_when_created(attrs):
    with pytest.raises(TypeError):
        type("Bad", (fo.Adam,), attrs)


# ------------------------------------------------------------------------ the rules
def test_hyper_table_takes_rules_only():
    with pytest.raises(TypeError, match="lr: expected a Rule, got float"):
        hyper_table(lr=0.1)
    table = hyper_table(lr=NONNEGATIVE, betas=BETAS)
    assert list(table) == ["lr", "betas"]
    with pytest.raises(TypeError):
        table["eps"] = NONNEGATIVE  # read-only


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(kind="int"), "kind must be"),
        (dict(width=0), "cannot hold 0"),
        (dict(kind="flag", width=2), "cannot hold 2"),
        (dict(requires=(("momentum", ">", 0),)), "only a flag"),
        (dict(kind="flag", requires=(("momentum", "=>", 0),)), "unknown operator"),
        (dict(width=2, elements=(Rule(),)), "one real rule of width 1 per number"),
        (dict(width=1, elements=(Rule(kind="flag"),)), "one real rule of width 1 per number"),
    ],
)
def test_a_malformed_rule_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Rule(**kwargs)


@pytest.mark.parametrize(
    ("rule", "must"),
    [
        (NONNEGATIVE, "a finite number >= 0"),
        (BETAS, "a finite number in [0, 1)"),
        (Rule(low=0.0, high=1.0), "a finite number in [0, 1]"),
        (Rule(high=2.5, high_open=True), "a finite number < 2.5"),
        (Rule(low=1.0, low_open=True), "a finite number > 1"),
        (Rule(low=0.0, high=1.0, low_open=True, high_open=True), "a finite number in (0, 1)"),
        (
            fo.Rprop.hyperparameters["etas"],
            "[0] a finite number in (0, 1), [1] a finite number > 1",
        ),
        (Rule(), "a finite number"),
        (FLAG, "a bool"),
    ],
)
def test_what_a_rule_says_a_value_must_be(rule, must):
    assert rule.must == must
