"""fusedopt.sklearn: scikit-learn's MLP estimators trained by fusedopt optimizers."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fusedopt as fo  # noqa: E402
from fusedopt.sklearn import (  # noqa: E402
    FusedSolver,
    MLPClassifier,
    MLPRegressor,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXTRA = (
    "optimizer",
    "optimizer_kwargs",
    "schedule",
    "schedule_kwargs",
    "decay_biases",
    "max_grad_norm",
    "sklearn_compatible_eps",
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=300, n_features=10, noise=0.1, random_state=0)
    return X, y / 100.0


def _weights(est: object) -> list[np.ndarray]:
    return [*est.coefs_, *est.intercepts_]  # type: ignore[attr-defined]


def _max_rel(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(
        float(np.max(np.abs(x - z)) / max(np.max(np.abs(x)), 1e-300))
        for x, z in zip(a, b, strict=True)
    )


def _assert_same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)


# ----------------------------------------------------------- scikit-learn's own checks


@parametrize_with_checks(
    [
        MLPClassifier(max_iter=100),
        MLPRegressor(max_iter=100),
        MLPClassifier(
            max_iter=100, optimizer="AdamW", schedule="warmup-cosine", learning_rate_init=3e-3
        ),
        MLPRegressor(max_iter=100, optimizer="AdamW", learning_rate_init=3e-3, max_grad_norm=1.0),
    ]
)
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_parameters_are_named_in_init_and_clone_keeps_them() -> None:
    for cls, sk in ((MLPClassifier, SkMLPClassifier), (MLPRegressor, SkMLPRegressor)):
        params = cls().get_params()
        assert set(params) == set(sk().get_params()) | set(EXTRA)
        est = cls(
            optimizer="AdamW",
            optimizer_kwargs={"weight_decay": 0.1},
            schedule="onecycle",
            schedule_kwargs={"pct_start": 0.2},
            decay_biases=True,
            max_grad_norm=2.0,
            sklearn_compatible_eps=True,
            hidden_layer_sizes=(7,),
        )
        twin = clone(est)
        assert twin.get_params() == est.get_params()
        assert twin is not est


# ----------------------------------------------------------- the same as scikit-learn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sklearn_compatible_adam_matches_sklearn(digits, dtype) -> None:
    X, y = digits
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(24,), max_iter=8, random_state=0, batch_size=50)
    ours = MLPClassifier(**kw, sklearn_compatible_eps=True).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert _max_rel(_weights(theirs), _weights(ours)) < tol
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_curve_ == pytest.approx(theirs.loss_curve_, rel=tol)


def test_sklearn_compatible_adam_matches_sklearn_regressor(regression) -> None:
    X, y = regression
    kw = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=1, batch_size=32)
    ours = MLPRegressor(**kw, sklearn_compatible_eps=True).fit(X, y)
    theirs = SkMLPRegressor(**kw).fit(X, y)
    assert _max_rel(_weights(theirs), _weights(ours)) < 1e-12


def test_torch_eps_is_the_default_and_differs_slightly(digits) -> None:
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    ours = MLPClassifier(**kw).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    assert 1e-12 < _max_rel(_weights(theirs), _weights(ours)) < 0.5


def test_sgd_with_nesterov_momentum_matches_sklearn(digits) -> None:
    X, y = digits
    kw = dict(
        hidden_layer_sizes=(16,), max_iter=6, random_state=0, solver="sgd", learning_rate_init=0.05
    )
    ours = MLPClassifier(**kw).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    assert isinstance(ours._optimizer.optimizer, fo.SGD)
    group = ours._optimizer.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.9, True)
    assert _max_rel(_weights(theirs), _weights(ours)) < 1e-10


def test_lbfgs_stays_sklearns(digits) -> None:
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0, solver="lbfgs")
    ours = MLPClassifier(**kw, optimizer="Lion", schedule="cosine").fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    _assert_same_bits(_weights(theirs), _weights(ours))
    assert not hasattr(ours, "_optimizer")


def test_invscaling_keeps_sklearns_rate(digits) -> None:
    X, y = digits
    kw = dict(
        hidden_layer_sizes=(8,),
        max_iter=3,
        random_state=0,
        solver="sgd",
        learning_rate="invscaling",
        learning_rate_init=0.1,
        power_t=0.25,
    )
    ours = MLPClassifier(**kw).fit(X, y)
    theirs = SkMLPClassifier(**kw).fit(X, y)
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    assert ours._optimizer.learning_rate == pytest.approx(0.1 / (ours.t_ + 1) ** 0.25)


def test_adaptive_divides_the_rate_by_five_then_stops() -> None:
    est = MLPClassifier(solver="sgd", learning_rate="adaptive", learning_rate_init=1e-5)
    from fusedopt.sklearn import _Spec

    solver = FusedSolver(_Spec(est), total_steps=10, n_coefs=1)
    w, b = np.ones((2, 2)), np.ones(2)
    solver.update_params([w, b], [np.ones((2, 2)), np.ones(2)])
    assert solver.trigger_stopping("msg", False) is False
    assert solver.learning_rate == pytest.approx(2e-6)
    assert solver.optimizer.param_groups[1]["lr"] == pytest.approx(2e-6)
    assert solver.trigger_stopping("msg", False) is False
    assert solver.trigger_stopping("msg", False) is True  # 4e-7 <= 1e-6


# ----------------------------------------------------------- state: partial_fit, pickle


def _partial(est, X, y, n, classes=None):
    for _ in range(n):
        if classes is None:
            est.partial_fit(X, y)
        else:
            est.partial_fit(X, y, classes=classes)
    return est


def test_partial_fit_continues_the_moments_as_sklearn(digits) -> None:
    X, y = digits
    classes = np.unique(y)
    kw = dict(hidden_layer_sizes=(16,), random_state=0, batch_size=100)
    ours = _partial(MLPClassifier(**kw, sklearn_compatible_eps=True), X, y, 3, classes)
    theirs = _partial(SkMLPClassifier(**kw), X, y, 3, classes)
    assert _max_rel(_weights(theirs), _weights(ours)) < 1e-12
    solver = ours._optimizer
    assert solver.steps == 3 * 6
    assert int(solver.optimizer.state_dict()["state"][0]["step"]) == 18


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_keeps_the_optimizer_and_schedule_state(digits, how) -> None:
    X, y = digits
    classes = np.unique(y)
    kw = dict(
        hidden_layer_sizes=(16,),
        random_state=0,
        batch_size=100,
        optimizer="AdamW",
        schedule="warmup-cosine",
        max_iter=6,
        learning_rate_init=3e-3,
    )
    a = _partial(MLPClassifier(**kw), X, y, 2, classes)
    if how == "pickle":
        b = pickle.loads(pickle.dumps(a))
    else:
        b = copy.deepcopy(a)
    assert b._optimizer.optimizer is None  # rebuilt at the next step, on b's arrays
    _partial(a, X, y, 2)
    _partial(b, X, y, 2)
    _assert_same_bits(_weights(a), _weights(b))
    sa, sb = a._optimizer, b._optimizer
    assert sb._params[0] is b.coefs_[0]
    assert sa.scheduler.state_dict() == sb.scheduler.state_dict()
    assert sa.steps == sb.steps == 24
    # and the moments were not restarted: a fresh optimizer gives other weights
    c = _partial(MLPClassifier(**kw), X, y, 2, classes)
    del c._optimizer
    _partial(c, X, y, 2)
    assert not np.array_equal(c.coefs_[0], a.coefs_[0])


def test_unpickled_unfitted_and_lbfgs_estimators(digits) -> None:
    X, y = digits
    est = pickle.loads(pickle.dumps(MLPClassifier(optimizer="Lion")))
    assert est.get_params()["optimizer"] == "Lion"
    fitted = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, solver="lbfgs").fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))


def test_early_stopping_best_weights_keep_a_working_optimizer(digits) -> None:
    X, y = digits
    est = MLPClassifier(
        hidden_layer_sizes=(16,),
        random_state=0,
        early_stopping=True,
        n_iter_no_change=2,
        max_iter=40,
        learning_rate_init=0.05,  # overshoots: the best epoch is not the last
        batch_size=64,
        schedule="plateau",
        schedule_kwargs={"patience": 0},
    ).fit(X, y)
    solver = est._optimizer
    assert est.n_iter_ < 40
    assert est.validation_scores_ and est.best_validation_score_ == max(est.validation_scores_)
    # the best weights are copies: the optimizer still holds the old arrays
    assert solver._params[0] is not est.coefs_[0]
    n_train = len(X) - math.ceil(0.1 * len(X))
    assert solver.total_steps == 40 * math.ceil(n_train / 64)
    assert solver.learning_rate < 0.05  # the plateau schedule cut it
    steps = solver.steps
    before = [c.copy() for c in est.coefs_]
    est.set_params(early_stopping=False)
    est.best_loss_ = np.inf  # scikit-learn's own MLP needs it too to go on without a split
    est.partial_fit(X, y)
    assert solver._params[0] is est.coefs_[0]  # rebuilt on the new arrays, state carried
    assert solver.steps == steps + math.ceil(len(X) / 64)
    assert int(solver.optimizer.state_dict()["state"][0]["step"]) == solver.steps
    assert solver.learning_rate < 0.05
    assert not np.array_equal(before[0], est.coefs_[0])


# ----------------------------------------------------------- optimizer and schedule


def test_decay_biases_puts_the_intercepts_in_a_group_without_weight_decay(digits) -> None:
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0, optimizer="AdamW")
    est = MLPClassifier(**kw, optimizer_kwargs={"weight_decay": 0.3}).fit(X, y)
    g0, g1 = est._optimizer.optimizer.param_groups
    assert [p is c for p, c in zip(g0["params"], est.coefs_, strict=True)] == [True, True]
    assert [p is b for p, b in zip(g1["params"], est.intercepts_, strict=True)] == [True, True]
    assert (g0["weight_decay"], g1["weight_decay"]) == (0.3, 0.0)
    est = MLPClassifier(**kw, optimizer_kwargs={"weight_decay": 0.3}, decay_biases=True).fit(X, y)
    assert [g["weight_decay"] for g in est._optimizer.optimizer.param_groups] == [0.3, 0.3]


def test_sklearn_parameters_map_onto_the_optimizer(digits) -> None:
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    est = MLPClassifier(
        **kw,
        optimizer="nadam",
        beta_1=0.8,
        beta_2=0.99,
        epsilon=1e-6,
        learning_rate_init=0.002,
        optimizer_kwargs={"momentum_decay": 0.01},
    ).fit(X, y)
    g = est._optimizer.optimizer.param_groups[0]
    assert isinstance(est._optimizer.optimizer, fo.NAdam)
    assert (g["lr"], g["betas"], g["eps"], g["momentum_decay"]) == (0.002, (0.8, 0.99), 1e-6, 0.01)
    est = MLPClassifier(**kw, optimizer=fo.LARS, momentum=0.5, nesterovs_momentum=False).fit(X, y)
    g = est._optimizer.optimizer.param_groups[0]
    assert (g["momentum"], g["nesterov"]) == (0.5, False)
    est = MLPClassifier(**kw, optimizer="Adam", optimizer_kwargs={"betas": (0.5, 0.6)}).fit(X, y)
    assert est._optimizer.optimizer.param_groups[0]["betas"] == (0.5, 0.6)


def test_max_grad_norm_clips_inside_the_step(digits) -> None:
    X, y = digits
    kw = dict(
        hidden_layer_sizes=(8,),
        max_iter=1,
        random_state=0,
        solver="sgd",
        momentum=0.0,
        batch_size=100,
    )
    # the initial weights (the same random_state), moved by a negligible step
    start = _weights(MLPClassifier(**kw, learning_rate_init=1e-300).fit(X, y))
    free = MLPClassifier(**kw, learning_rate_init=0.5).fit(X, y)
    clipped = MLPClassifier(**kw, learning_rate_init=0.5, max_grad_norm=1e-3).fit(X, y)
    assert clipped._optimizer.optimizer.max_grad_norm == 1e-3
    assert free._optimizer.optimizer.max_grad_norm is None

    def moved(est: object) -> float:
        return math.sqrt(
            sum(float(np.sum((w - s) ** 2)) for w, s in zip(_weights(est), start, strict=True))
        )

    assert moved(clipped) <= 6 * 0.5 * 1e-3 * (1 + 1e-6)  # 6 steps of at most lr * max_norm
    assert moved(free) > 10 * moved(clipped)


@pytest.mark.parametrize("name", ["cosine", "onecycle", "warmup-cosine", "StepLR", "cyclic"])
def test_schedules_are_sized_to_the_run(digits, name) -> None:
    X, y = digits
    est = MLPClassifier(
        hidden_layer_sizes=(8,),
        max_iter=4,
        random_state=0,
        batch_size=128,
        schedule=name,
        learning_rate_init=0.01,
    ).fit(X, y)
    solver = est._optimizer
    assert solver.total_steps == 4 * math.ceil(600 / 128) == solver.steps
    assert solver.scheduler.last_epoch == solver.total_steps - 1
    if name in ("cosine", "onecycle", "warmup-cosine"):
        assert solver.learning_rate < 0.01 * 0.05


def test_callable_schedule_gets_the_optimizer_and_total_steps(digits) -> None:
    X, y = digits
    seen = []

    def halve(opt, total_steps):
        seen.append((type(opt).__name__, total_steps))
        return fo.lr_scheduler.StepLR(opt, step_size=total_steps // 2, gamma=0.5)

    est = MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=2, random_state=0, batch_size=300, schedule=halve
    ).fit(X, y)
    assert ("Adam", 4) in seen
    assert est._optimizer.learning_rate == pytest.approx(0.0005)


def test_grid_and_random_search_over_optimizer_and_schedule(digits) -> None:
    X, y = digits
    base = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0, batch_size=100)
    grid = GridSearchCV(
        base,
        {
            "optimizer": ["Adam", "AdamW", "Lion"],
            "schedule": [None, "warmup-cosine"],
        },
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 6
    assert grid.best_estimator_._optimizer.optimizer is not None
    rand = RandomizedSearchCV(
        base,
        {"learning_rate_init": [1e-3, 3e-3, 1e-2], "optimizer_kwargs": [None, {"amsgrad": True}]},
        n_iter=3,
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert len(rand.cv_results_["params"]) == 3


# ----------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "exc", "name"),
    [
        ({"optimizer": "nope"}, ValueError, "optimizer"),
        ({"optimizer": 3}, TypeError, "optimizer"),
        ({"optimizer": dict}, TypeError, "optimizer"),
        ({"optimizer_kwargs": {"lr": 0.1}}, ValueError, "learning_rate_init"),
        ({"optimizer_kwargs": {"bogus": 1}}, TypeError, "optimizer_kwargs"),
        ({"optimizer_kwargs": {"betas": (0.9, 1.5)}}, ValueError, "betas"),
        ({"optimizer_kwargs": [1]}, TypeError, "optimizer_kwargs"),
        ({"schedule": "nope"}, ValueError, "schedule"),
        ({"schedule": 3}, TypeError, "schedule"),
        ({"schedule_kwargs": {"T_max": 3}}, ValueError, "schedule_kwargs"),
        ({"schedule": "cosine", "schedule_kwargs": {"bogus": 1}}, TypeError, "schedule"),
        ({"schedule": "step", "schedule_kwargs": {"gamma": -1.0}}, ValueError, "schedule"),
        ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm"),
        ({"max_grad_norm": "1"}, TypeError, "max_grad_norm"),
        ({"decay_biases": "yes"}, TypeError, "decay_biases"),
        (
            {"sklearn_compatible_eps": True, "optimizer": "SGD"},
            ValueError,
            "sklearn_compatible_eps",
        ),
        (
            {"solver": "sgd", "learning_rate": "adaptive", "schedule": "cosine"},
            ValueError,
            "learning_rate",
        ),
    ],
)
def test_bad_parameters_are_refused_before_anything_changes(digits, params, exc, name) -> None:
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    before = [w.copy() for w in _weights(est)]
    with pytest.raises(exc, match=name):
        MLPClassifier(hidden_layer_sizes=(8,), **params).fit(X, y)
    est.set_params(**params)
    del est._optimizer  # a partial_fit that builds a new optimizer
    with pytest.raises(exc, match=name):
        est.partial_fit(X, y)
    _assert_same_bits(before, _weights(est))


def test_missing_sklearn_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import fusedopt\n"
        "try:\n    import fusedopt.sklearn\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.startswith("MissingDependencyError")
    assert 'pip install "fusedopt[sklearn]"' in out
