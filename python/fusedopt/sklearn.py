"""fusedopt inside scikit-learn: ``MLPClassifier`` and ``MLPRegressor`` with any fusedopt
optimizer, any fusedopt schedule, decoupled weight decay and gradient clipping::

    from fusedopt.sklearn import MLPClassifier

    clf = MLPClassifier((512, 512), optimizer="AdamW", schedule="warmup-cosine",
                        optimizer_kwargs={"weight_decay": 1e-2}, max_iter=30)
    clf.fit(X, y).score(X_test, y_test)

The two classes are scikit-learn's own estimators (subclasses) with every parameter and
its meaning kept, plus:

* ``optimizer``: a fusedopt optimizer, by name (``"AdamW"``, case-insensitive) or class.
  ``None`` (default) follows ``solver``: ``"adam"`` -> :class:`fusedopt.Adam`, ``"sgd"``
  -> :class:`fusedopt.SGD`. ``solver="lbfgs"`` stays scikit-learn's L-BFGS and ignores
  every parameter below.
* sklearn's parameters map onto the optimizer where it takes them:
  ``learning_rate_init`` -> ``lr`` (always); ``beta_1``, ``beta_2`` -> ``betas`` and
  ``epsilon`` -> ``eps`` (optimizers that take ``betas``: the Adam family, LAMB, Lion);
  ``momentum`` -> ``momentum`` and ``nesterovs_momentum`` -> ``nesterov`` (optimizers that
  take both: SGD, LARS; nesterov only with a momentum > 0). ``optimizer_kwargs`` (a dict)
  gives any other argument and overrides a mapped one, except ``lr`` (use
  ``learning_rate_init``) and ``max_grad_norm`` (use the parameter of that name).
* ``schedule``: ``None``, a preset sized to the run (``"cosine"``, ``"warmup-cosine"``,
  ``"warmup-linear"``, ``"onecycle"``, ``"step"``, ``"multistep"``, ``"exponential"``,
  ``"linear"``, ``"polynomial"``, ``"cosine-restarts"``, ``"cyclic"``,
  ``"constant-factor"``, ``"plateau"``: the presets of the ``fusedopt`` command line), the
  name of any class or helper of :mod:`fusedopt.lr_scheduler`, or a callable
  ``(optimizer, total_steps) -> scheduler``. ``schedule_kwargs`` override the preset's
  arguments. A schedule steps once per optimizer step (batch); its length
  ``total_steps = max_iter * ceil(n_train / batch_size)``, with ``n_train`` the samples
  left after the early-stopping split. After ``total_steps`` steps (more ``partial_fit``
  calls than ``max_iter``) the lr stays where the schedule ended. ``ReduceLROnPlateau``
  (``"plateau"``) steps once per epoch on the training loss, or on minus the validation
  score with ``early_stopping=True`` (so ``mode="min"`` is right in both cases).
* ``learning_rate="invscaling"`` and ``"adaptive"`` (with ``solver="sgd"``, as in
  scikit-learn) keep scikit-learn's meaning on any optimizer; they cannot be combined with
  a ``schedule`` (``ValueError``). With ``solver="adam"`` scikit-learn ignores
  ``learning_rate`` and so do these classes.
* ``decay_biases=False``: the coefficients and the intercepts are two param groups; the
  intercepts' ``weight_decay`` is 0 unless ``decay_biases=True``. (scikit-learn's
  ``alpha``, an L2 term in the loss, is unchanged and applies to the coefficients only.)
* ``max_grad_norm``: clip the global gradient norm inside the fused step.
* ``sklearn_compatible_eps=False``: scikit-learn's Adam adds ``epsilon`` before the bias
  correction (``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``-lr_t m / (sqrt(v) + eps)``),
  torch's after. ``True`` (Adam and AdamW only) writes ``eps / sqrt(1 - b2^t)`` into the
  groups before each step, which is scikit-learn's update exactly (same trajectory as
  ``sklearn.neural_network.MLPClassifier(solver="adam")`` to ~1e-15 relative).

The fitted estimator's ``_optimizer`` is a stand-in for scikit-learn's private
``AdamOptimizer`` / ``SGDOptimizer`` whose ``optimizer`` and ``scheduler`` attributes are
the live fusedopt objects. It pickles (and deep-copies) through their ``state_dict``, so
``partial_fit`` after unpickling continues the moments bit-identically; when the
estimator's ``coefs_`` / ``intercepts_`` are new arrays (early stopping's best weights,
or arrays you assign), the optimizer is rebuilt on them with its state carried over.

Supported scikit-learn: 1.9 (tested with 1.9.1; ``pip install "fusedopt[sklearn]"`` pins
``scikit-learn>=1.9,<1.10``). The estimators reach into scikit-learn's private training
loop (``_fit_stochastic`` builds ``self._optimizer``; ``_update_no_improvement_count``
gives the epoch's metric), so other versions may break; the import fails with a clear
message when these hooks are missing.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import fusedopt
from fusedopt._optional import import_optional
from fusedopt._registry import optimizer_classes
from fusedopt.lr_scheduler import ReduceLROnPlateau
from fusedopt.lr_scheduler.presets import resolve_schedule

__all__ = ["MLPClassifier", "MLPRegressor", "sklearn_schedule"]

_PURPOSE = "fusedopt.sklearn"
_mlp = import_optional(
    "sklearn.neural_network._multilayer_perceptron", _PURPOSE, "scikit-learn", extra="sklearn"
)
_base_mlp: Any = _mlp.BaseMultilayerPerceptron
for _hook in ("_fit", "_fit_stochastic", "_update_no_improvement_count"):
    if not callable(getattr(_base_mlp, _hook, None)):  # pragma: no cover - other versions
        raise ImportError(
            f"fusedopt.sklearn needs scikit-learn's private MLP hook {_hook!r}, which this "
            'version of scikit-learn lacks: pip install "fusedopt[sklearn]" (scikit-learn 1.9)'
        )
del _hook


ScheduleFactory = Callable[[Any, int], Any]


def sklearn_schedule(
    schedule: str | ScheduleFactory | None, kwargs: Mapping[str, Any] | None = None
) -> ScheduleFactory | None:
    """The factory ``(optimizer, total_steps) -> scheduler`` for ``schedule`` (see the module).

    ``None``, ``"constant"`` and ``"none"`` give ``None``; a preset alias of
    :mod:`fusedopt.lr_scheduler.presets` or a name of :mod:`fusedopt.lr_scheduler`
    (case-insensitive, ``-`` or ``_``) gives its factory with the preset's defaults sized
    to the run, overridden by ``kwargs``; a callable is returned as is (``kwargs`` must then
    be empty).
    """
    user = dict(kwargs or {})
    if schedule is None or (isinstance(schedule, str) and schedule.lower() in ("constant", "none")):
        if user:
            raise ValueError(f"schedule_kwargs {sorted(user)} given without a schedule")
        return None
    if not isinstance(schedule, str):
        if not callable(schedule):
            raise TypeError(
                "schedule must be None, a preset name or a callable (optimizer, total_steps) "
                f"-> scheduler, got {type(schedule).__name__}"
            )
        if user:
            raise ValueError("schedule_kwargs cannot be used with a callable schedule")
        return schedule
    resolve_schedule(schedule)  # ValueError naming the choices for an unknown name
    return _NamedSchedule(schedule, user)


class _NamedSchedule:
    """A schedule by preset alias or :mod:`fusedopt.lr_scheduler` name, with the preset's
    defaults sized to the run (picklable, unlike a closure)."""

    def __init__(self, name: str, user: dict[str, Any]) -> None:
        self.name = name
        self.user = user

    def __call__(self, optimizer: Any, total_steps: int) -> Any:
        spec, factory = resolve_schedule(self.name)
        assert factory is not None  # "constant" never gets here
        lr = float(optimizer.param_groups[0]["lr"])
        args = {**(spec.defaults(lr, total_steps) if spec is not None else {}), **self.user}
        return factory(optimizer, **args)

    def __repr__(self) -> str:
        return f"schedule {self.name}({self.user})"


def _mode(opt: Any, *, train: bool) -> None:
    """Puts an optimizer with ``train()`` / ``eval()`` (schedule-free) in that mode."""
    switch = getattr(opt, "train" if train else "eval", None)
    if callable(switch):
        switch()


def _resolve_optimizer(optimizer: Any, solver: str) -> type[fusedopt.Optimizer]:
    classes = optimizer_classes(any_array=True)
    if optimizer is None:
        return fusedopt.SGD if solver == "sgd" else fusedopt.Adam
    if isinstance(optimizer, str):
        found = next((c for n, c in classes.items() if n.lower() == optimizer.lower()), None)
        if found is None:
            raise ValueError(
                f"optimizer {optimizer!r} is unknown (choose from {', '.join(classes)})"
            )
        return found
    if isinstance(optimizer, type) and issubclass(optimizer, fusedopt.Optimizer):
        return optimizer
    raise TypeError(
        "optimizer must be None, the name of a fusedopt optimizer or a fusedopt.Optimizer "
        f"subclass, got {optimizer!r}"
    )


def _signature(cls: type) -> set[str]:
    return set(inspect.signature(cls).parameters)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class _Spec:
    """What an estimator's parameters ask of the fusedopt optimizer (checked, picklable)."""

    def __init__(self, est: Any) -> None:
        self.cls = _resolve_optimizer(est.optimizer, est.solver)
        sig = _signature(self.cls)
        kw: dict[str, Any] = {"lr": float(est.learning_rate_init)}
        if "betas" in sig:
            kw["betas"] = (float(est.beta_1), float(est.beta_2))
            if "eps" in sig:
                kw["eps"] = float(est.epsilon)
        if "momentum" in sig and "nesterov" in sig:
            kw["momentum"] = float(est.momentum)
            kw["nesterov"] = bool(est.nesterovs_momentum) and float(est.momentum) > 0
        extra = est.optimizer_kwargs
        if extra is not None and not isinstance(extra, Mapping):
            raise TypeError(f"optimizer_kwargs must be a dict or None, got {type(extra).__name__}")
        extra = dict(extra or {})
        for bad, use in (("lr", "learning_rate_init"), ("max_grad_norm", "max_grad_norm")):
            if bad in extra:
                raise ValueError(f"optimizer_kwargs must not hold {bad!r}: use {use}")
        if "params" in extra:
            raise ValueError("optimizer_kwargs must not hold 'params'")
        kw.update(extra)
        self.decay_biases = _check_bool("decay_biases", est.decay_biases)
        mgn = est.max_grad_norm
        if mgn is not None:
            if isinstance(mgn, bool) or not isinstance(mgn, numbers.Real):
                raise TypeError(f"max_grad_norm must be None or a float, got {mgn!r}")
            if not (math.isfinite(float(mgn)) and float(mgn) > 0):
                raise ValueError(f"max_grad_norm must be a finite number > 0, got {mgn!r}")
            kw["max_grad_norm"] = float(mgn)
        self.kwargs = kw
        self.sklearn_eps = _check_bool("sklearn_compatible_eps", est.sklearn_compatible_eps)
        if self.sklearn_eps and not issubclass(self.cls, fusedopt.Adam | fusedopt.AdamW):
            raise ValueError(
                "sklearn_compatible_eps=True needs optimizer Adam or AdamW, "
                f"got {self.cls.__name__}"
            )
        self.eps = float(kw.get("eps", est.epsilon))
        sk = est.schedule_kwargs
        if sk is not None and not isinstance(sk, Mapping):
            raise TypeError(f"schedule_kwargs must be a dict or None, got {type(sk).__name__}")
        self.schedule = sklearn_schedule(est.schedule, sk)
        # scikit-learn's own rates, as its SGDOptimizer applies them (solver="sgd" only)
        self.lr_mode = est.learning_rate if est.solver == "sgd" else "constant"
        if self.lr_mode not in ("constant", "invscaling", "adaptive"):
            raise ValueError(
                "learning_rate must be 'constant', 'invscaling' or 'adaptive', "
                f"got {est.learning_rate!r}"
            )
        if self.lr_mode != "constant" and self.schedule is not None:
            raise ValueError(
                f"learning_rate={self.lr_mode!r} and schedule={est.schedule!r} both set the "
                "learning rate: use one (learning_rate='constant' with a schedule)"
            )
        self.lr_init = float(est.learning_rate_init)
        self.power_t = float(est.power_t)
        self.weight_decay_arg = "weight_decay" in sig

    def groups(self, params: Sequence[np.ndarray], n_coefs: int) -> list[dict[str, Any]]:
        """The coefs and the intercepts as two param groups."""
        bias: dict[str, Any] = {"params": list(params[n_coefs:])}
        if not self.decay_biases and self.weight_decay_arg:
            bias["weight_decay"] = 0.0
        return [{"params": list(params[:n_coefs])}, bias]

    def build(
        self, params: Sequence[np.ndarray], n_coefs: int, total_steps: int
    ) -> tuple[fusedopt.Optimizer, Any]:
        """A new optimizer on ``params`` and its scheduler (or None)."""
        try:
            opt = self.cls(self.groups(params, n_coefs), **self.kwargs)
        except TypeError as exc:
            raise TypeError(f"optimizer_kwargs for {self.cls.__name__}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"optimizer {self.cls.__name__}: {exc}") from exc
        sched = None
        if self.schedule is not None:
            try:
                sched = self.schedule(opt, total_steps)
            except TypeError as exc:
                raise TypeError(f"schedule: {exc}") from exc
            except ValueError as exc:
                raise ValueError(f"schedule: {exc}") from exc
            if not hasattr(sched, "step") or not hasattr(sched, "state_dict"):
                raise TypeError(
                    "schedule must build a scheduler (with step and state_dict), "
                    f"got {type(sched).__name__}"
                )
        return opt, sched


# ----------------------------------------------------------------------------- the solver


class FusedSolver:
    """Stands in for scikit-learn's ``AdamOptimizer`` / ``SGDOptimizer`` in its MLP loop.

    ``update_params(params, grads)`` is one fused step of :attr:`optimizer` (and one step of
    :attr:`scheduler`); ``iteration_ends`` and ``trigger_stopping`` keep scikit-learn's
    meaning (``invscaling``, ``adaptive``) and step a per-epoch ``ReduceLROnPlateau``.
    Pickles through the optimizer's and the scheduler's ``state_dict``.

    Attributes:
        optimizer: the fusedopt optimizer (``None`` before the first step).
        scheduler: its scheduler, or ``None``.
        steps: optimizer steps taken.
        total_steps: the schedule's length.
    """

    def __init__(self, spec: _Spec, total_steps: int, n_coefs: int) -> None:
        self.spec = spec
        self.total_steps = int(total_steps)
        self.n_coefs = int(n_coefs)
        self.steps = 0
        self.optimizer: fusedopt.Optimizer | None = None
        self.scheduler: Any = None
        self._params: list[np.ndarray] = []
        self._pending: dict[str, Any] | None = None  # state dicts waiting for their params
        self._metric: float | None = None
        self._lr = spec.lr_init  # scikit-learn's current lr (invscaling / adaptive)

    # scikit-learn's optimizers expose these
    @property
    def learning_rate(self) -> float:
        """The current lr of the coefficients' group."""
        if self.optimizer is None:
            return self._lr
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def learning_rate_init(self) -> float:
        """``learning_rate_init`` of the estimator."""
        return self.spec.lr_init

    def _per_epoch(self) -> bool:
        return isinstance(self.scheduler, ReduceLROnPlateau)

    def _snapshot(self) -> dict[str, Any]:
        if self.optimizer is None:
            return dict(self._pending or {})
        sd: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.scheduler is not None:
            sd["scheduler"] = self.scheduler.state_dict()
        return sd

    def _bind(self, params: Sequence[np.ndarray]) -> None:
        """(Re)build the optimizer on ``params``, carrying any state over."""
        saved = self._snapshot()
        opt, sched = self.spec.build(params, self.n_coefs, self.total_steps)
        if "optimizer" in saved:
            opt.load_state_dict(saved["optimizer"])
        if sched is not None and "scheduler" in saved:
            sched.load_state_dict(saved["scheduler"])
        if self.spec.lr_mode != "constant" and "optimizer" not in saved:
            for g in opt.param_groups:
                g["lr"] = self._lr
        self.optimizer, self.scheduler = opt, sched
        self._params = list(params)
        self._pending = None

    def update_params(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """One step: ``params`` (coefs then intercepts) updated in place from ``grads``."""
        if (
            self.optimizer is None
            or len(params) != len(self._params)
            or any(p is not q for p, q in zip(params, self._params, strict=True))
        ):
            self._bind(params)
        opt = self.optimizer
        assert opt is not None
        if self.spec.sklearn_eps:  # scikit-learn's eps, before the bias correction
            t = self.steps + 1
            for g in opt.param_groups:
                g["eps"] = self.spec.eps / math.sqrt(1.0 - float(g["betas"][1]) ** t)
        # scikit-learn's own optimizers add the update in place, casting (a float32
        # regressor gets float64 grads for its last layer from float64 targets)
        grads = [
            g if g.dtype == p.dtype and g.flags.c_contiguous else np.ascontiguousarray(g, p.dtype)
            for p, g in zip(params, grads, strict=True)
        ]
        _mode(opt, train=True)  # schedule-free: back to y after an epoch's end (no-op else)
        opt.step(grads)
        self.steps += 1
        if self.scheduler is not None and not self._per_epoch() and self.steps < self.total_steps:
            self.scheduler.step()

    def epoch_metric(self, value: float) -> None:
        """The epoch's metric for a per-epoch scheduler (lower is better)."""
        self._metric = float(value)

    def iteration_ends(self, time_step: int) -> None:
        """End of an epoch: scikit-learn's ``invscaling``; ``ReduceLROnPlateau.step``."""
        if self.spec.lr_mode == "invscaling":
            self._set_lr(self.spec.lr_init / (time_step + 1) ** self.spec.power_t)
        if self._per_epoch() and self._metric is not None and math.isfinite(self._metric):
            self.scheduler.step(self._metric)
        self._metric = None
        if self.optimizer is not None:
            # schedule-free: the coefs between epochs and after fit are the average x (the
            # point to predict with); the epoch's early-stopping score has seen y
            _mode(self.optimizer, train=False)

    def _set_lr(self, lr: float) -> None:
        self._lr = lr
        if self.optimizer is not None:
            for g in self.optimizer.param_groups:
                g["lr"] = lr
        elif self._pending and "optimizer" in self._pending:
            for g in self._pending["optimizer"]["param_groups"]:
                g["lr"] = lr

    def trigger_stopping(self, msg: str, verbose: bool) -> bool:
        """Whether to stop (scikit-learn's rule: ``adaptive`` divides the lr by 5 instead,
        until it is at most 1e-6)."""
        if self.spec.lr_mode != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_lr(self.learning_rate / 5.0)
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "scheduler")}
        state["_pending"] = self._snapshot() or None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # rebuilt at the next step, on the estimator's arrays: an unpickled estimator may
        # have read-only (memory-mapped) coefs, and only a new step must write them
        self.__dict__.update(state)
        self.optimizer = None
        self.scheduler = None

    def __repr__(self) -> str:
        return f"FusedSolver({self.optimizer!r}, scheduler={type(self.scheduler).__name__})"


# ----------------------------------------------------------------------------- estimators


def _n_train(est: Any, n: int, incremental: bool) -> int:
    if est.early_stopping and not incremental:
        return max(1, n - math.ceil(est.validation_fraction * n))
    return n


def _total_steps(est: Any, n_samples: int, incremental: bool) -> int:
    n = _n_train(est, n_samples, incremental)
    batch = min(200, n) if est.batch_size == "auto" else int(np.clip(est.batch_size, 1, n))
    return max(1, est.max_iter * math.ceil(n / batch))


_EXTRA_CONSTRAINTS: dict[str, list[Any]] = {
    "optimizer": [None, str, type],
    "optimizer_kwargs": [None, dict],
    "schedule": [None, str, callable],
    "schedule_kwargs": [None, dict],
    "decay_biases": ["boolean"],
    "max_grad_norm": [None, numbers.Real],
    "sklearn_compatible_eps": ["boolean"],
}


class _FusedMLP(_base_mlp):
    """The hooks shared by both estimators (see the module docstring)."""

    @property
    def _optimizer(self) -> FusedSolver:
        try:
            return self.__dict__["_fused_solver"]
        except KeyError:
            raise AttributeError("_optimizer") from None

    @_optimizer.setter
    def _optimizer(self, value: Any) -> None:
        # scikit-learn's _fit_stochastic builds its own optimizer here: use ours instead
        if not isinstance(value, FusedSolver):
            spec, total, n_coefs = self.__dict__["_fused_plan"]
            value = FusedSolver(spec, total, n_coefs)
        self.__dict__["_fused_solver"] = value

    @_optimizer.deleter
    def _optimizer(self) -> None:
        self.__dict__.pop("_fused_solver", None)

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        if self.solver != "lbfgs":
            _Spec(self)  # every parameter checked before anything changes
        return super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)

    def _fit_stochastic(self, X: Any, *args: Any) -> Any:
        incremental = bool(args[-1])
        spec = _Spec(self)
        total = _total_steps(self, X.shape[0], incremental)
        n_coefs = len(self.coefs_)
        if not incremental or "_fused_solver" not in self.__dict__:
            # build once on stand-in arrays: bad optimizer / schedule arguments fail here
            stand_in = [np.zeros(c.shape, c.dtype) for c in (*self.coefs_, *self.intercepts_)]
            spec.build(stand_in, n_coefs, total)
        self.__dict__["_fused_plan"] = (spec, total, n_coefs)
        try:
            return super()._fit_stochastic(X, *args)
        finally:
            del self.__dict__["_fused_plan"]

    def _update_no_improvement_count(self, early_stopping: bool, *args: Any) -> None:
        super()._update_no_improvement_count(early_stopping, *args)
        solver = self.__dict__.get("_fused_solver")
        if solver is not None:
            metric = -self.validation_scores_[-1] if early_stopping else self.loss_curve_[-1]
            solver.epoch_metric(metric)


_SKLEARN_CLS: Any = _mlp.MLPClassifier
_SKLEARN_REG: Any = _mlp.MLPRegressor


class MLPClassifier(_FusedMLP, _SKLEARN_CLS):
    """scikit-learn's ``MLPClassifier`` trained by a fusedopt optimizer and schedule.

    Every parameter of :class:`sklearn.neural_network.MLPClassifier` keeps its meaning;
    the added ones (``optimizer``, ``optimizer_kwargs``, ``schedule``, ``schedule_kwargs``,
    ``decay_biases``, ``max_grad_norm``, ``sklearn_compatible_eps``) are described in
    :mod:`fusedopt.sklearn`.
    """

    _parameter_constraints: dict[str, Any] = {  # noqa: RUF012
        **_SKLEARN_CLS._parameter_constraints,
        **_EXTRA_CONSTRAINTS,
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        optimizer: str | type | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
        schedule: str | ScheduleFactory | None = None,
        schedule_kwargs: dict[str, Any] | None = None,
        decay_biases: bool = False,
        max_grad_norm: float | None = None,
        sklearn_compatible_eps: bool = False,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.schedule = schedule
        self.schedule_kwargs = schedule_kwargs
        self.decay_biases = decay_biases
        self.max_grad_norm = max_grad_norm
        self.sklearn_compatible_eps = sklearn_compatible_eps


class MLPRegressor(_FusedMLP, _SKLEARN_REG):
    """scikit-learn's ``MLPRegressor`` trained by a fusedopt optimizer and schedule.

    Every parameter of :class:`sklearn.neural_network.MLPRegressor` keeps its meaning;
    the added ones are described in :mod:`fusedopt.sklearn`.
    """

    _parameter_constraints: dict[str, Any] = {  # noqa: RUF012
        **_SKLEARN_REG._parameter_constraints,
        **_EXTRA_CONSTRAINTS,
    }

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        optimizer: str | type | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
        schedule: str | ScheduleFactory | None = None,
        schedule_kwargs: dict[str, Any] | None = None,
        decay_biases: bool = False,
        max_grad_norm: float | None = None,
        sklearn_compatible_eps: bool = False,
    ) -> None:
        super().__init__(
            loss=loss,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.schedule = schedule
        self.schedule_kwargs = schedule_kwargs
        self.decay_biases = decay_biases
        self.max_grad_norm = max_grad_norm
        self.sklearn_compatible_eps = sklearn_compatible_eps
