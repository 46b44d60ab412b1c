"""The optimizer base class: everything that does not depend on the algorithm.

An algorithm is a subclass that names its fused kernel, its state and its table of
hyperparameter rules (:mod:`fusedopt.rules`), says which state a param group uses, and
points at its NumPy reference function. Everything else lives here: param groups and
defaults, checks that run before anything is written (one validator, at construction
and at every step of both backends), lazily created state, one native call per step for
every group and tensor, ``state_dict`` / ``load_state_dict``, a transactional restore,
``add_param_group``, the ``backend`` switch, and torch 2.x's API around the step: ``None``
grads, named parameters, ``step(closure)`` and the step / state-dict hooks.

An algorithm that is not one element-wise kernel over all tensors (Adafactor's factored
moments, LBFGS, Muon, SparseAdam) sets ``kernel = None`` and steps itself in
``_custom_step``; the checks, clipping, guard, hooks and state dict stay here.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from . import _core
from ._memory import spread_full_like
from .clip import check_max_norm, clip_coefficient, reference_total_norm
from .low_precision import (
    EXPONENT_CODED,
    QUANT_BLOCK,
    dequantize,
    is_half,
    quantize,
    round_half,
    rounding_key,
)
from .rules import Checker, Rule

__all__ = ["BACKENDS", "Optimizer", "ParamGroup", "Params", "RemovableHandle", "StateDType"]

ParamGroup = dict[str, Any]
#: What ``state_dtype`` takes: None, "int8", or a dtype (the parameter's, or float32).
StateDType = Any
Params = Sequence[np.ndarray] | Sequence[ParamGroup]
BACKENDS = ("fused", "numpy")

# Shared pieces of the algorithms' docstrings, written once.
PARAMS_DOC = """\
params: the arrays to optimize (float32, float64, float16 or ``ml_dtypes.bfloat16``;
    contiguous, writeable), or a list of dicts each with key ``"params"`` and per-group
    overrides of the hyperparameters below. The arrays are updated in place."""
BACKEND_DOC = """\
backend: ``"fused"`` (default): one fused C++ kernel per step for all tensors;
    ``"numpy"``: the readable NumPy reference in :mod:`fusedopt.reference`. Both
    follow the same trajectory to floating-point tolerance."""
MAXIMIZE_DOC = "maximize: maximize the objective instead of minimizing it (steps along +grad)."
CLIP_DOC = """\
max_grad_norm: clip by the global L2 norm of all grads, inside the step: the update
            sees the grads as ``clip_grad_norm_(grads, max_grad_norm)`` would leave them,
            and the grads are not written (default None: no clipping).
        track_grad_norm: compute ``last_grad_norm`` at every step also without clipping
            (default False: only ``max_grad_norm`` computes it).
        state_dtype: the dtype of the state arrays: None (default: the parameter's dtype,
            float32 for float16 / bfloat16 parameters), the parameter's own dtype (as torch
            keeps it), or ``"int8"`` (blockwise-quantized moments: the Adam family, SGD with
            momentum and Lion; see :mod:`fusedopt.low_precision`).
        stochastic_rounding: round the writes of float16 / bfloat16 parameters
            stochastically (unbiased) instead of to nearest (default False).
        seed: the key of stochastic rounding's counter-based generator (default 0): the
            same bits for any number of threads and after a resume."""


class RemovableHandle:
    """What a ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook (as
    ``torch.utils.hooks.RemovableHandle``; also a context manager that removes it on exit)."""

    _next_id = itertools.count()

    def __init__(self, hooks: dict[int, Callable[..., Any]]) -> None:
        self._hooks = hooks
        self.id = next(RemovableHandle._next_id)

    def remove(self) -> None:
        """Unregisters the hook (a second call does nothing)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _add_hook(
    hooks: dict[int, Callable[..., Any]], hook: Callable[..., Any], prepend: bool = False
) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    if prepend:  # dicts keep insertion order: rebuild with the new hook first
        rest = [(k, v) for k, v in hooks.items() if k != handle.id]
        hooks.clear()
        hooks[handle.id] = hook
        hooks.update(rest)
    return handle


def _split_named(ps: list[Any], first_param: int) -> tuple[list[Any], list[str] | None]:
    """torch 2.x's named parameters: ``(name, array)`` pairs become arrays plus their names
    (ValueError when only some entries are named)."""
    names: list[str] = []
    arrays: list[Any] = []
    for k, p in enumerate(ps):
        if isinstance(p, tuple):
            if len(p) != 2 or not isinstance(p[0], str):
                raise TypeError(
                    f"params[{first_param + k}]: a named parameter is a (name, array) pair "
                    f"with a str name, got {type(p).__name__} of length {len(p)}"
                )
            names.append(p[0])
            arrays.append(p[1])
        else:
            arrays.append(p)
    if names and len(names) != len(arrays):
        raise ValueError(
            "all optimizer params should be with/without names. Some param names are missing"
        )
    return arrays, (names or None)


def _call_closure(closure: Callable[[], Any]) -> tuple[Any, Any]:
    """``closure()`` as ``(loss, grads)``; TypeError naming the closure otherwise."""
    out = closure()
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            "closure() must return a tuple (loss, grads) with one grad per parameter, got "
            + (f"a tuple of length {len(out)}" if isinstance(out, tuple) else type(out).__name__)
        )
    return out


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: its values stay live; writing through it raises, and so
    does setting its ``writeable`` flag back (it sees ``a`` through a read-only buffer)."""
    if a.dtype.kind == "V":  # bfloat16 (ml_dtypes) has no buffer format: through its bits
        bits = a.view(np.dtype(f"u{a.dtype.itemsize}"))
        return np.asarray(memoryview(bits).toreadonly()).view(a.dtype)  # type: ignore[arg-type]
    return np.asarray(memoryview(a).toreadonly())  # type: ignore[arg-type]  # ndarray is a buffer


class _StateView(Mapping[int, Mapping[str, np.ndarray]]):
    """Per-parameter state, by parameter index or by the parameter array itself: read-only
    views of the live arrays (``state_dict`` / ``load_state_dict`` change the state)."""

    def __init__(self, opt: Optimizer) -> None:
        self._opt = opt

    def _index(self, key: int | np.ndarray) -> int:
        if isinstance(key, np.ndarray):
            for i, p in enumerate(self._opt._params):
                if p is key:
                    return i
            raise KeyError("that array is not a parameter of this optimizer")
        if isinstance(key, numbers.Integral) and 0 <= int(key) < len(self._opt._params):
            return int(key)
        raise KeyError(key)

    def __getitem__(self, key: int | np.ndarray) -> Mapping[str, np.ndarray]:
        i = self._index(key)
        if not self._opt._has_state(i):
            raise KeyError(key)
        return MappingProxyType({name: _read_only(a) for name, a in self._opt._state[i].items()})

    def __iter__(self) -> Iterator[int]:
        return (i for i in range(len(self._opt._state)) if self._opt._has_state(i))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Optimizer:
    """Base class of fusedopt's optimizers (the torch.optim.Optimizer of NumPy arrays).

    Subclasses set the class attributes below (the kernel, the state, and a table of
    their hyperparameters with the rule of each) and hand their constructor's arguments
    to ``Optimizer.__init__(params, locals(), backend=backend)``, which keeps those named
    in the table as ``defaults`` (and takes ``max_grad_norm`` / ``track_grad_norm``);
    ``_state_in_use`` and ``_initial_value`` may be refined.
    When a subclass is created, its table and state names are checked against what its
    C++ kernel declares (``fusedopt._core.kernels``): a mismatch fails at import.

    Attributes:
        param_groups: list of dicts with ``"params"`` and every hyperparameter; a
            schedule (or you) may change ``group["lr"]`` and friends between steps. Each
            value is checked against the same rules as at construction, at every step and
            with either backend, before anything is written.
        defaults: the hyperparameters given to the constructor.
        state: per-parameter state, keyed by parameter index (or the array): read-only
            views of the live arrays (unlike torch's mutable ``state``; change the state
            with :meth:`load_state_dict`).
        backend: ``"fused"`` or ``"numpy"``.
        skip_nonfinite: the opt-in non-finite guard (default False; settable at any
            time). When True, a step whose grads hold any inf or NaN is skipped as a
            whole (no parameter, state array or step count changes) and counted in
            ``skipped_steps``, like optax's ``apply_if_finite``. With the fused backend
            the check runs inside the same native call as the step, in parallel; when
            False it costs nothing.
        skipped_steps: the number of steps the guard has skipped.
        max_grad_norm: ``None`` or the global L2 norm the grads are clipped to, as
            ``torch.nn.utils.clip_grad_norm_`` clips them, folded into the same native call
            as the update (one read-only pass over the grads computes the norm, and the
            non-finite guard's check with it); the grads are never written. Settable.
        track_grad_norm: compute the norm at every step even without clipping. Settable.
        last_grad_norm: the global L2 norm of the last step's grads, before clipping
            (``None`` until a step computes it). The same bits on any number of threads.

    torch 2.x's API: a grad may be ``None`` (that parameter is skipped: no state is created
    or changed, no weight decay, and it counts in no norm); ``params`` may be
    ``(name, array)`` pairs (the group then holds ``"param_names"``, and so does
    ``state_dict()``); ``step(closure=...)`` calls ``closure()``, which returns
    ``(loss, grads)``, steps with those grads and returns the loss; step and state-dict
    hooks as torch.optim.Optimizer's, each ``register_*`` returning a
    :class:`RemovableHandle`.

    Non-finite values: without the guard, as in PyTorch, an inf or NaN in one grad
    (or a parameter or state) may make that parameter and its state inf or NaN, and
    never touches any other array: every update is element-wise.

    Trust: a failed call (``ValueError`` / ``TypeError``) changes no array. Parameters
    must not share memory; a grad may not share memory with any parameter or state
    array (``numpy.may_share_memory``); hyperparameters must obey their rules, at
    construction and at every step (a schedule writing ``nan`` is refused before
    anything changes). One optimizer is safe to use from several threads: its calls are
    serialized, and the native step runs without the GIL.
    """

    #: Name of the fused kernel in ``fusedopt._core``; None for a class that steps itself
    #: in :meth:`_custom_step` (its state need not have the parameter's shape).
    kernel: ClassVar[str | None]
    #: Element-wise state arrays, in the kernel's order (PyTorch's names).
    state_names: ClassVar[tuple[str, ...]] = ()
    #: Per-parameter scalar state, kept as float64 arrays of shape (), in the kernel's order.
    scalar_names: ClassVar[tuple[str, ...]] = ("step",)
    #: Every hyperparameter of a param group with its rule, in the kernel's order.
    hyperparameters: ClassVar[Mapping[str, Rule]]
    #: Hyperparameters the native rules cannot state (ints, strings, None: LBFGS's
    #: ``max_iter``, Muon's ``adjust_lr_fn``, Adafactor's ``eps``): name -> checker (see
    #: :func:`fusedopt.rules.check_int`); taken from the constructor's arguments into
    #: ``defaults`` and every group, and checked wherever the rules are.
    extra_hyperparameters: ClassVar[Mapping[str, Checker]] = MappingProxyType({})
    #: Hyperparameters that only set the initial state; the kernel does not read them.
    init_hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: The hyperparameters the kernel reads, in its order (the table less the above);
    #: also the keyword names of ``reference_step``.
    hyper_names: ClassVar[tuple[str, ...]]
    #: The NumPy reference: ``reference_step(param, grad, state, **hyper)`` updates in place.
    reference_step: ClassVar[Callable[..., None]]
    #: Whether ``step(grads)`` takes a dense grad for parameters of any shape, as a
    #: training loop gives them (the CLI, the scikit-learn estimators); False for LBFGS
    #: (a closure), Muon (2-D only) and SparseAdam (row-sparse grads). The loops call
    #: ``train()`` / ``eval()`` where an optimizer has them (schedule-free).
    steps_any_array: ClassVar[bool] = True
    #: Create the state when parameters are added rather than at their first step
    #: (torch's Adagrad has its ``sum`` from construction).
    eager_state: ClassVar[bool] = False
    #: Whether ``state_dtype="int8"`` is offered (the Adam family, SGD with momentum, Lion).
    int8_state: ClassVar[bool] = False
    #: Whether float16 / bfloat16 parameters are taken (False: LBFGS, whose closure reads
    #: the parameters mid-step, SparseAdam's row grads and the schedule-free classes,
    #: whose train/eval swap is float32/float64). Adafactor and Muon step float32 working
    #: copies of half parameters (see :meth:`_step_in_float32`).
    half_params: ClassVar[bool] = True
    #: Whether the state may be kept in a half-precision parameter's own dtype (False for
    #: the kernels whose sums pass writes state that the update pass reads: it would be
    #: rounded in between; their half parameters keep float32 state).
    half_state: ClassVar[bool] = True
    #: The native validator compiled from ``hyperparameters`` (one per class).
    _rules: ClassVar[_core.HyperRules]
    #: Whether a step calls :meth:`_check_step` (set per class).
    _step_checks: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # whether a step runs _check_step (not a cost the plain kernels pay)
        cls._step_checks = bool(cls.extra_hyperparameters) or (
            cls._check_step is not Optimizer._check_step
        )
        # A subclass that changes what its kernel is fed is checked again, whichever
        # attribute it changes.
        declared = (
            "kernel",
            "hyperparameters",
            "init_hyperparameters",
            "state_names",
            "scalar_names",
        )
        if any(name in cls.__dict__ for name in declared) and hasattr(cls, "hyperparameters"):
            cls.hyper_names = tuple(
                k for k in cls.hyperparameters if k not in cls.init_hyperparameters
            )
            cls._rules = _compile_rules(cls)

    def __init__(
        self, params: Params, defaults: Mapping[str, Any], *, backend: str = "fused"
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        # the hyperparameters among the constructor's arguments (a subclass passes locals())
        self.defaults: dict[str, Any] = {k: defaults[k] for k in self.hyperparameters}
        self._rules.check(self.defaults)
        for name, check in self.extra_hyperparameters.items():
            check(defaults[name], name)
            self.defaults[name] = defaults[name]
        self.param_groups: list[ParamGroup] = []
        self._params: list[np.ndarray] = []
        self._state: list[dict[str, np.ndarray]] = []
        self._lock = threading.RLock()
        # the state names each group's step used when the state was last handed to the kernel
        self._state_built_for: list[tuple[str, ...]] | None = None
        self._skip_nonfinite = False
        self.skipped_steps = 0
        self.max_grad_norm = defaults.get("max_grad_norm")
        self.track_grad_norm = defaults.get("track_grad_norm", False)
        self._init_low_precision(defaults)
        self.last_grad_norm: float | None = None
        # which parameters have had a step (their state is visible; eager state always is)
        self._touched: list[bool] = []
        self._all_touched = False
        self._step_pre_hooks: dict[int, Callable[..., Any]] = {}
        self._step_post_hooks: dict[int, Callable[..., Any]] = {}
        self._state_dict_pre_hooks: dict[int, Callable[..., Any]] = {}
        self._state_dict_post_hooks: dict[int, Callable[..., Any]] = {}
        self._load_state_dict_pre_hooks: dict[int, Callable[..., Any]] = {}
        self._load_state_dict_post_hooks: dict[int, Callable[..., Any]] = {}
        if isinstance(params, np.ndarray):
            raise TypeError(
                "params must be a sequence of arrays or of param-group dicts, got a single "
                "numpy.ndarray; wrap it in a list: [array]"
            )
        if isinstance(params, Mapping) or not isinstance(params, Sequence | Iterator):
            raise TypeError(
                f"params must be a sequence of arrays or dicts, got {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        new: list[ParamGroup] = []
        for gi, g in enumerate(groups):
            new.append(self._make_group(g, gi, sum(len(n["params"]) for n in new)))
        self._install(new)

    # ----------------------------------------------------------------- groups
    def _make_group(self, group: Any, index: int, first_param: int) -> ParamGroup:
        """Group ``index`` (its params numbered from ``first_param``), defaults filled, checked."""
        if not isinstance(group, Mapping):
            raise TypeError(f"a param group must be a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError('a param group must have a "params" key')
        ps = group["params"]
        if isinstance(ps, np.ndarray):
            ps = [ps]
        elif isinstance(ps, Mapping | str) or not isinstance(ps, Sequence | Iterator):
            raise TypeError(
                f'group["params"] must be a sequence of arrays, got {type(ps).__name__}'
            )
        ps, names = _split_named(list(ps), first_param)
        if not ps:
            raise ValueError("a param group has an empty parameter list")
        for k, p in enumerate(ps):
            if not isinstance(p, np.ndarray):
                raise TypeError(
                    f"params[{first_param + k}] must be a numpy.ndarray, got {type(p).__name__}"
                )
        out: ParamGroup = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        out["params"] = ps
        if names is not None:
            out["param_names"] = names
        self._rules.check(out, f"param_groups[{index}]: ")
        self._check_extra(out, f"param_groups[{index}]: ")
        return out

    def _install(self, new_groups: list[ParamGroup]) -> None:
        """Checks the new groups' arrays against each other and the existing ones, then commits."""
        params = self._params + [p for g in new_groups for p in g["params"]]
        check_no_overlap(params)
        self._check_precision(params)
        groups = self.param_groups + new_groups
        if len({"param_names" in g for g in groups}) > 1:
            raise ValueError("all optimizer param groups should be with/without names.")
        group_of = [gi for gi, g in enumerate(groups) for _ in g["params"]]
        # checks dtype, layout and overlap; reads the hyperparameters by key at each step
        plan = _core.Plan(self._rules, params, group_of, len(groups))
        self.param_groups = groups
        self._params = params
        self._state.extend({} for _ in range(len(params) - len(self._state)))
        self._touched.extend(False for _ in range(len(params) - len(self._touched)))
        self._all_touched = all(self._touched)
        self._plan = plan
        self._state_built_for = None
        if self.eager_state:
            self._build_state([self._state_in_use(g) for g in self.param_groups])

    def add_param_group(self, param_group: ParamGroup) -> None:
        """Adds a param group (a dict with ``"params"``), filling the defaults."""
        with self._lock:
            group = self._make_group(param_group, len(self.param_groups), len(self._params))
            self._install([group])

    # --------------------------------------------------------- low precision
    def _init_low_precision(self, defaults: Mapping[str, Any]) -> None:
        """Takes ``state_dtype``, ``stochastic_rounding`` and ``seed`` (checked) from the
        constructor's arguments."""
        state_dtype = defaults.get("state_dtype")
        sr = defaults.get("stochastic_rounding", False)
        seed = defaults.get("seed", 0)
        if not isinstance(sr, bool | np.bool_):
            raise TypeError(f"stochastic_rounding must be a bool, got {type(sr).__name__}")
        if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        if isinstance(state_dtype, str) and state_dtype == "int8":
            if not self.int8_state:
                raise ValueError(
                    f"state_dtype='int8' is not offered by {type(self).__name__}: int8 state "
                    "is for the Adam family (Adam, AdamW, NAdam, RAdam, Adamax), SGD with "
                    "momentum and Lion"
                )
            resolved: np.dtype[Any] | str | None = "int8"
        elif state_dtype is None:
            resolved = None
        else:
            try:
                dt = np.dtype(state_dtype)
            except TypeError:
                raise ValueError(
                    f"state_dtype must be None, 'int8' or a dtype (the parameter's, or float32 "
                    f"for float16 / bfloat16 parameters), got {state_dtype!r}"
                ) from None
            if dt == np.int8:
                resolved = "int8"
                if not self.int8_state:
                    raise ValueError(f"state_dtype='int8' is not offered by {type(self).__name__}")
            elif dt.kind not in "fV" or dt.itemsize not in (2, 4, 8):
                raise ValueError(
                    f"state_dtype must be None, 'int8' or a floating dtype, got {state_dtype!r}"
                )
            else:
                resolved = dt
        self.state_dtype = resolved
        self.stochastic_rounding = bool(sr)
        self.seed = int(seed)
        self._sr_step = 0

    def _check_precision(self, params: Sequence[np.ndarray]) -> None:
        """The parameters' dtypes against the class and ``state_dtype``, before anything
        is installed (TypeError / ValueError naming the parameter)."""
        any_half = False
        for i, p in enumerate(params):
            half = is_half(p.dtype)
            any_half = any_half or half
            if half and not self.half_params:
                raise TypeError(
                    f"params[{i}] is {p.dtype}: {type(self).__name__} takes float32 and float64 "
                    "parameters (float16 / bfloat16 are for the fused element-wise optimizers)"
                )
            sd = self.state_dtype
            if isinstance(sd, np.dtype) and not (sd == p.dtype or (half and sd == np.float32)):
                raise ValueError(
                    f"state_dtype={sd.name} does not suit params[{i}] ({p.dtype}): state is "
                    "the parameter's dtype, float32 for a float16 / bfloat16 parameter, or int8"
                )
            if isinstance(sd, np.dtype) and half and sd == p.dtype and not self.half_state:
                raise ValueError(
                    f"state_dtype={sd.name}: {type(self).__name__} keeps the state of "
                    f"params[{i}] in float32 (its two passes would round the state in between)"
                )
        if self.stochastic_rounding and not any_half:
            raise ValueError(
                "stochastic_rounding=True rounds float16 / bfloat16 parameter writes, and no "
                "parameter is float16 or bfloat16 (float32 and float64 parameters round to nearest)"
            )

    def _state_dtype_of(self, i: int) -> np.dtype[Any] | str:
        """The dtype of params[i]'s state arrays (``"int8"`` for quantized state)."""
        p = self._params[i]
        if self.state_dtype is None:
            return np.dtype(np.float32) if is_half(p.dtype) else p.dtype
        return self.state_dtype

    @property
    def _low_precision(self) -> bool:
        """Whether some parameter or state is half precision or int8 (the NumPy backend
        then steps through float32 working copies)."""
        return self.state_dtype == "int8" or any(
            is_half(p.dtype) or self._state_dtype_of(i) != p.dtype
            for i, p in enumerate(self._params)
        )

    def _step_in_float32(
        self,
        groups: list[ParamGroup],
        checked: list[Any],
        step: Callable[[list[ParamGroup], list[Any]], None],
    ) -> None:
        """``step(groups, grads)`` on float32 working copies of the half-precision parameters
        and grads (and of half or int8 state), then rounded back: the parameters to nearest
        or stochastically (as the fused kernels round), half state to nearest, int8 state
        requantized per block. The NumPy backend's step of low-precision parameters or
        state, and the step of the classes that step themselves on half parameters."""
        work_params: list[np.ndarray] = []
        work_state: list[dict[str, np.ndarray]] = []
        for p, st in zip(self._params, self._state, strict=True):
            p32 = p.astype(np.float32) if is_half(p.dtype) else p
            w: dict[str, np.ndarray] = {}
            for name, a in st.items():
                if name.endswith("_absmax"):
                    continue
                if a.dtype == np.int8:
                    flat = dequantize(a, st[name + "_absmax"], name in EXPONENT_CODED)
                    w[name] = _shaped_like(flat.astype(p32.dtype), p)
                elif name in self.state_names and a.dtype != p32.dtype:
                    w[name] = a.astype(p32.dtype)
                else:
                    w[name] = a  # float32 state of a half parameter, scalars: in place
            work_params.append(p32)
            work_state.append(w)
        work_checked = [
            None if g is None else (g.astype(np.float32) if is_half(g.dtype) else g)
            for g in checked
        ]
        saved_params = [g["params"] for g in groups]
        saved_state = self._state
        start = 0
        for g in groups:
            n = len(g["params"])
            g["params"] = work_params[start : start + n]
            start += n
        self._state = work_state
        saved_params_list = self._params
        self._params = work_params
        try:
            step(groups, work_checked)
        finally:
            self._params = saved_params_list
            for g, ps in zip(groups, saved_params, strict=True):
                g["params"] = ps
            self._state = saved_state
        for i, (p, st, p32, w) in enumerate(
            zip(self._params, self._state, work_params, work_state, strict=True)
        ):
            if checked[i] is None:
                continue
            if p32 is not p:
                key = (
                    rounding_key(self.seed, self._sr_step, i) if self.stochastic_rounding else None
                )
                _flat(p)[...] = round_half(_flat(p32), p.dtype, key)
            for name, a in w.items():
                old = st.get(name)
                if old is None:  # created by the reference step
                    st[name] = a
                elif old is a:
                    continue
                elif old.dtype == np.int8:
                    codes, absmax = quantize(_flat(a), name in EXPONENT_CODED)
                    _flat(old)[...] = codes
                    st[name + "_absmax"][...] = absmax
                else:
                    old[...] = a.astype(old.dtype)

    # ------------------------------------------------------- algorithm hooks
    def _state_in_use(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The state (array and scalar) names a step of ``group`` uses."""
        return self.state_names + self.scalar_names

    def _initial_value(self, name: str, group: Mapping[str, Any]) -> float:
        """The value state ``name`` (an array or a scalar) starts from."""
        return 0.0

    # ------------------------------------------------------------------ state
    def _build_state(self, in_use: list[tuple[str, ...]]) -> None:
        """Creates the state the groups now use and hands every array to the kernel."""
        arrays: list[list[np.ndarray | None]] = []
        scalars: list[list[np.ndarray | None]] = []
        absmax_arrays: list[list[np.ndarray | None]] = []
        i = 0
        for group, keys in zip(self.param_groups, in_use, strict=True):
            for p in group["params"]:
                st = self._state[i]
                sdtype = self._state_dtype_of(i)
                for name in keys:
                    if name not in st:
                        value = self._initial_value(name, group)
                        if name in self.scalar_names:
                            st[name] = np.array(value, np.float64)
                        elif sdtype == "int8":
                            slot = self.state_names.index(name)
                            st[name] = spread_full_like(p, 0, slot, np.int8)
                            codes, absmax = quantize(
                                np.full(p.size, value, np.float32), name in EXPONENT_CODED
                            )
                            _flat(st[name])[...] = codes
                            st[name + "_absmax"] = absmax
                        else:
                            st[name] = spread_full_like(
                                p, value, self.state_names.index(name), sdtype
                            )
                arrays.append([st[n] if n in keys else None for n in self.state_names])
                scalars.append([st[n] if n in keys else None for n in self.scalar_names])
                absmax_arrays.append(
                    [st.get(n + "_absmax") if n in keys else None for n in self.state_names]
                )
                i += 1
        quant = [2 if n in EXPONENT_CODED else 1 for n in self.state_names]
        self._plan.set_state(arrays, scalars, absmax_arrays, quant)
        self._state_built_for = in_use

    @property
    def state(self) -> Mapping[int, Mapping[str, np.ndarray]]:
        """Per-parameter state, by index or array: read-only views of the live arrays."""
        return _StateView(self)

    # ------------------------------------------------------------------- step
    def step(
        self,
        grads: Sequence[np.ndarray | None] | Callable[[], Any] | None = None,
        closure: Callable[[], Any] | None = None,
    ) -> Any:
        """Updates every parameter in place from ``grads`` (one array per parameter, in order;
        ``None`` skips that parameter), or from ``closure()``, which returns ``(loss, grads)``
        (``opt.step(closure)`` as in torch also works).

        The grads (count, type, dtype, shape) and every group's hyperparameters are
        checked before anything is written; the grads are never modified. Returns the
        closure's loss, or None. The step pre-hooks run first, as
        ``hook(optimizer, args, kwargs)`` where ``args`` starts with the optimizer itself
        (torch's convention); each may return new ``(args, kwargs)``. The post-hooks last.
        """
        if not (self._step_pre_hooks or self._step_post_hooks):
            return self._step_impl(grads, closure)
        with self._lock:
            # as torch's: args holds the optimizer itself first, then the step's arguments
            args: tuple[Any, ...] = (self,) if grads is None else (self, grads)
            kwargs: dict[str, Any] = {} if closure is None else {"closure": closure}
            for hook in list(self._step_pre_hooks.values()):
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            f"{hook!r} must return None or a tuple of (new_args, new_kwargs), "
                            f"but got {result!r}."
                        )
                    args, kwargs = result
            out = self._step_impl(*args[1:], **kwargs)
            for hook in list(self._step_post_hooks.values()):
                hook(self, args, kwargs)
            return out

    def _step_impl(self, grads: Any = None, closure: Callable[[], Any] | None = None) -> Any:
        """The step without its hooks: grads or a closure (LBFGS overrides this)."""
        if closure is None and callable(grads) and not isinstance(grads, Sequence):
            grads, closure = None, grads
        if closure is None:
            if grads is None:
                raise TypeError(
                    "step() needs the grads (one array per parameter) or a closure that "
                    "returns (loss, grads)"
                )
            self._update(grads)
            return None
        if grads is not None:
            raise TypeError("step() takes the grads or a closure, not both")
        if not callable(closure):
            raise TypeError(f"closure must be callable, got {type(closure).__name__}")
        with self._lock:
            loss, grads = _call_closure(closure)
            self._update(grads)
            return loss

    def _update(self, grads: Sequence[np.ndarray | None]) -> None:
        """One step from checked grads: the fused kernel, the reference or the class's own."""
        with self._lock:
            groups = self.param_groups
            max_norm, want_norm = self._max_grad_norm, self._track_grad_norm
            if self.kernel is None:
                self._update_custom(grads, groups, max_norm, want_norm)
                return
            if self._step_checks and all(isinstance(g, Mapping) for g in groups):
                self._check_step(groups)
            try:
                in_use = [self._state_in_use(g) for g in groups]
            except (TypeError, ValueError, KeyError, IndexError):
                self._check_groups()  # names the bad hyperparameter
                raise
            if in_use != self._state_built_for:
                # refuse bad input before creating state
                checked = self._plan.checked_grads(grads, groups)
                if self._skip_nonfinite and not self._plan.all_finite(checked):
                    if max_norm is not None or want_norm:  # as a skipped step reports it later
                        self.last_grad_norm = self._grad_norm(checked)
                    self.skipped_steps += 1
                    return
                self._build_state(in_use)
            if self.backend == "fused":
                taken, norm, n_none = self._plan.step(
                    grads,
                    groups,
                    self._skip_nonfinite,
                    max_norm,
                    want_norm,
                    self.seed if self.stochastic_rounding else None,
                    self._sr_step,
                )
                if max_norm is not None or want_norm:
                    self.last_grad_norm = norm
                if taken:
                    self._sr_step += 1
                if not taken:
                    self.skipped_steps += 1
                elif n_none:
                    self._touch(grads)
                elif not self._all_touched:
                    self._touch(None)
                return
            # the same checks of grads and hyperparameters as the fused step, before any write
            checked = self._plan.checked_grads(grads, groups)
            scale = self._clip_scale(checked, max_norm, want_norm)
            if self._skip_nonfinite and not self._plan.all_finite(checked):
                self.skipped_steps += 1
                return
            # np.seterr(all="raise") must not stop a step half-way, with some params updated.
            with np.errstate(all="ignore"):
                if scale != 1.0:  # the grads as clip_grad_norm_ would leave them (copies)
                    checked = [None if g is None else _scaled(g, scale) for g in checked]
                if self._low_precision:
                    self._step_in_float32(groups, checked, self._reference_update)
                else:
                    self._reference_update(groups, checked)
            self._sr_step += 1
            self._touch(checked)

    def _check_step(self, groups: Sequence[Mapping[str, Any]]) -> None:
        """Checks of a kernel class's step beyond what the native rules check, before
        anything is written: its :attr:`extra_hyperparameters` (a subclass adds its own)."""
        for gi, g in enumerate(groups):
            self._check_extra(g, f"param_groups[{gi}]: ")

    def _reference_update(self, groups: list[ParamGroup], checked: list[Any]) -> None:
        """The NumPy backend's step from checked (and clipped) grads: ``reference_step``
        on every parameter with a grad (an algorithm that couples its tensors overrides it)."""
        i = 0
        for group in groups:
            kwargs = {k: group[k] for k in self.hyper_names}
            for p in group["params"]:
                if checked[i] is not None:
                    type(self).reference_step(p, checked[i], self._state[i], **kwargs)
                i += 1

    def _update_custom(
        self,
        grads: Sequence[Any],
        groups: list[ParamGroup],
        max_norm: float | None,
        want_norm: bool,
    ) -> None:
        """The step of a class without a Plan kernel: the same checks, clip and guard,
        then its :meth:`_custom_step`."""
        checked = self._check_grads(grads, groups)
        for gi, g in enumerate(groups):
            self._check_extra(g, f"param_groups[{gi}]: ")
        scale = self._clip_scale(checked, max_norm, want_norm)
        if self._skip_nonfinite:
            arrays = self._norm_arrays(checked)
            if arrays and not all(np.isfinite(a).all() for a in arrays):
                self.skipped_steps += 1
                return
        with np.errstate(all="ignore"):
            if self._low_precision:  # half parameters: float32 working copies, rounded back
                self._step_in_float32(groups, checked, lambda _, c: self._custom_step(c, scale))
            else:
                self._custom_step(checked, scale)
        self._sr_step += 1
        self._touch(checked)

    def _clip_scale(self, checked: list[Any], max_norm: float | None, want_norm: bool) -> float:
        """Computes ``last_grad_norm`` when asked and returns the clip factor (1.0: none)."""
        if max_norm is None and not want_norm:
            return 1.0
        norm = self.last_grad_norm = self._grad_norm(checked)
        return 1.0 if max_norm is None else clip_coefficient(max_norm, norm)

    def _grad_norm(self, checked: list[Any]) -> float:
        """The global L2 norm of checked grads (None entries left out), by this optimizer's
        backend (the fused step computes it inside its own call)."""
        arrays = self._norm_arrays(checked)
        if not arrays:
            return 0.0
        if self.backend == "numpy":
            return reference_total_norm(arrays)
        arrays = [a.astype(np.float32) if is_half(a.dtype) else a for a in arrays]
        return math.sqrt(_core.norm_sums(arrays, 2.0)[0])

    def _norm_arrays(self, checked: list[Any]) -> list[np.ndarray]:
        """The arrays whose global norm clipping uses (SparseAdam: the coalesced rows)."""
        return [g for g in checked if g is not None]

    def _touch(self, grads: Sequence[Any] | None) -> None:
        """Marks the parameters with a grad (all when ``grads`` is None) as stepped."""
        if grads is None:
            self._touched = [True] * len(self._touched)
        else:
            for i, g in enumerate(grads):
                if g is not None:
                    self._touched[i] = True
        self._all_touched = all(self._touched)

    def _has_state(self, i: int) -> bool:
        """Whether params[i] has state to show: it has been stepped (or loaded), or the
        class creates its state eagerly (torch's Adagrad)."""
        return bool(self._state[i]) and (self.eager_state or self._touched[i])

    # ------------------------------------------ for classes without a Plan kernel
    def _check_grads(self, grads: Any, groups: list[ParamGroup]) -> list[Any]:
        """The grads checked against the parameters (None kept), and every group's
        hyperparameters checked, before anything is written."""
        return self._plan.checked_grads(grads, groups)

    def _custom_step(self, grads: list[Any], scale: float) -> None:
        """One step of every parameter with a grad (classes with ``kernel = None``):
        ``grads[i]`` is params[i]'s checked grad or None, ``scale`` the clip factor."""
        raise NotImplementedError(f"{type(self).__name__} sets kernel = None: it must step itself")

    def _state_shape(self, i: int, name: str) -> tuple[int, ...]:
        """The shape of array state ``name`` of params[i] (the parameter's, by default)."""
        return tuple(self._params[i].shape)

    # ------------------------------------------------------------------ hooks
    def register_step_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None or (new_args, new_kwargs)``, called
        before each step with the step's arguments (torch's signature)."""
        return _add_hook(self._step_pre_hooks, hook)

    def register_step_post_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(optimizer, args, kwargs) -> None``, called after each step."""
        return _add_hook(self._step_post_hooks, hook)

    def register_state_dict_pre_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer) -> None``, called before :meth:`state_dict` builds the dict."""
        return _add_hook(self._state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer, state_dict) -> state_dict or None``, called on the dict
        :meth:`state_dict` returns (a returned dict replaces it)."""
        return _add_hook(self._state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer, state_dict) -> state_dict or None``, called before
        :meth:`load_state_dict` reads the dict (a returned dict is loaded instead)."""
        return _add_hook(self._load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(
        self, hook: Callable[..., Any], prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer) -> None``, called after :meth:`load_state_dict` has loaded."""
        return _add_hook(self._load_state_dict_post_hooks, hook, prepend)

    def _check_groups(self) -> None:
        """Raises TypeError/ValueError for the first bad hyperparameter of any group."""
        for gi, g in enumerate(self.param_groups):
            if not isinstance(g, Mapping):
                raise TypeError(f"param_groups[{gi}] must be a dict, got {type(g).__name__}")
            self._rules.check(g, f"param_groups[{gi}]: ")
            self._check_extra(g, f"param_groups[{gi}]: ")

    def _check_extra(self, group: Mapping[str, Any], where: str) -> None:
        """Checks ``group``'s :attr:`extra_hyperparameters` (``where`` prefixes messages)."""
        for name, check in self.extra_hyperparameters.items():
            if name not in group:
                raise ValueError(f"{where}{name} is missing")
            check(group[name], f"{where}{name}")

    @property
    def skip_nonfinite(self) -> bool:
        """Whether a step with a non-finite grad is skipped (see the class docstring)."""
        return self._skip_nonfinite

    @skip_nonfinite.setter
    def skip_nonfinite(self, value: bool) -> None:
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"skip_nonfinite must be a bool, got {type(value).__name__}")
        self._skip_nonfinite = bool(value)

    @property
    def max_grad_norm(self) -> float | None:
        """The global L2 norm the grads are clipped to inside the step, or None."""
        return self._max_grad_norm

    @max_grad_norm.setter
    def max_grad_norm(self, value: float | None) -> None:
        self._max_grad_norm = check_max_norm(value, "max_grad_norm", allow_none=True)

    @property
    def track_grad_norm(self) -> bool:
        """Whether every step computes ``last_grad_norm`` even without clipping."""
        return self._track_grad_norm

    @track_grad_norm.setter
    def track_grad_norm(self, value: bool) -> None:
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"track_grad_norm must be a bool, got {type(value).__name__}")
        self._track_grad_norm = bool(value)

    # ------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """A torch-shaped snapshot: ``{"state": {index: {...}}, "param_groups": [...]}``,
        plus ``"optimizer"``: the class name, so that another algorithm refuses it.

        Unlike torch, the arrays are copies: later steps do not change a saved dict.
        The state-dict pre-hooks run first, the post-hooks on the result.
        """
        with self._lock:
            for hook in list(self._state_dict_pre_hooks.values()):
                hook(self)
            state = {
                i: {k: np.array(v, copy=True, order="K") for k, v in st.items()}
                for i, st in enumerate(self._state)
                if self._has_state(i)
            }
            groups = []
            start = 0
            for g in self.param_groups:
                n = len(g["params"])
                groups.append(
                    {
                        **{k: v for k, v in g.items() if k != "params"},
                        "params": list(range(start, start + n)),
                    }
                )
                start += n
            out = {"state": state, "param_groups": groups, "optimizer": type(self).__name__}
            if self.stochastic_rounding:  # where the generator stands, to resume bit-identically
                out["stochastic_rounding"] = {"seed": self.seed, "step": self._sr_step}
            for hook in list(self._state_dict_post_hooks.values()):
                result = hook(self, out)
                if result is not None:
                    out = result
            return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict`; every check runs before anything changes.

        A state dict of another optimizer class (its ``"optimizer"`` entry) is refused with
        ``ValueError``, as :func:`fusedopt.load_checkpoint` refuses its checkpoint; a dict
        without that entry (hand-made, or from torch) is checked by its state names and
        hyperparameters only. The load-state-dict pre-hooks see the dict first (one may
        return another to load), the post-hooks run after the load.
        """
        with self._lock:
            for hook in list(self._load_state_dict_pre_hooks.values()):
                result = hook(self, state_dict)
                if result is not None:
                    state_dict = result
            if (
                not isinstance(state_dict, Mapping)
                or "state" not in state_dict
                or "param_groups" not in state_dict
            ):
                raise TypeError('state_dict must be a dict with "state" and "param_groups"')
            name = type(self).__name__
            theirs = state_dict.get("optimizer", name)
            if theirs != name:
                raise ValueError(
                    f"the state dict holds the state of {_a(str(theirs))} optimizer, not {_a(name)}"
                )
            saved_groups = list(state_dict["param_groups"])
            if len(saved_groups) != len(self.param_groups):
                raise ValueError(
                    f"state_dict has {len(saved_groups)} param groups, "
                    f"this optimizer {len(self.param_groups)}"
                )
            new_groups = []
            for gi, (mine, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
                if not isinstance(saved, Mapping) or len(saved.get("params", ())) != len(
                    mine["params"]
                ):
                    raise ValueError(
                        f"param group {gi} of state_dict does not have {len(mine['params'])} params"
                    )
                merged = {**mine, **{k: v for k, v in saved.items() if k != "params"}}
                merged["params"] = mine["params"]
                self._rules.check(merged, f"param group {gi} of state_dict: ")
                self._check_extra(merged, f"param group {gi} of state_dict: ")
                new_groups.append(merged)
            rounding = state_dict.get("stochastic_rounding")
            sr_seed, sr_step = self.seed, 0
            if rounding is not None:
                try:
                    sr_seed, sr_step = int(rounding["seed"]), int(rounding["step"])
                except (TypeError, KeyError, ValueError):
                    raise ValueError(
                        'state_dict["stochastic_rounding"] must hold the ints "seed" and "step"'
                    ) from None
                if not (0 <= sr_seed < 2**64 and sr_step >= 0):
                    raise ValueError('state_dict["stochastic_rounding"] is out of range')
            new_state: list[dict[str, np.ndarray]] = [{} for _ in self._params]
            saved_state = state_dict["state"]
            if not isinstance(saved_state, Mapping):
                raise TypeError('state_dict["state"] must be a dict')
            for key, entry in saved_state.items():
                i = _state_index(key)
                if not isinstance(entry, Mapping):
                    raise TypeError(
                        f"state of params[{i}] in state_dict must be a dict, "
                        f"got {type(entry).__name__}"
                    )
                if not 0 <= i < len(self._params):
                    raise ValueError(
                        f"state_dict has state for parameter {key}, "
                        f"this optimizer has {len(self._params)}"
                    )
                new_state[i] = self._load_entry(i, entry)
            for group, merged in zip(self.param_groups, new_groups, strict=True):
                group.clear()
                group.update(merged)
            self._state = new_state
            self._state_built_for = None
            self.seed, self._sr_step = sr_seed, sr_step
            self._touched = [bool(st) for st in new_state]
            self._all_touched = all(self._touched)
            for hook in list(self._load_state_dict_post_hooks.values()):
                hook(self)

    def locked(self) -> contextlib.AbstractContextManager[Any]:
        """The optimizer's lock, as a context manager: no other thread steps, loads or
        changes the optimizer while the block runs (a consistent snapshot of its
        parameters and state, as :func:`fusedopt.save_checkpoint` takes). Re-entrant."""
        return self._lock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: if the block raises, the optimizer is put back as it was.

        Holds the optimizer's lock for the block (no other thread steps meanwhile). On an
        exception, the param groups' hyperparameters, the state (its arrays' values
        included), the parameters' values and ``skipped_steps`` are restored, then the
        exception goes on. It copies the parameters and the state on entry: memory for
        one more copy of each while the block runs. The block must not add param groups.
        :func:`fusedopt.load_checkpoint` restores through it.

        >>> import numpy as np, fusedopt as fo
        >>> w = np.ones(2); opt = fo.SGD([w], lr=0.5)
        >>> try:
        ...     with opt.transaction():
        ...         opt.step([np.ones(2)])
        ...         raise RuntimeError("the rest of the restore failed")
        ... except RuntimeError:
        ...     pass
        >>> w
        array([1., 1.])
        """
        with self.locked():
            groups = [dict(g) for g in self.param_groups]
            state = self._state
            state_values = [{k: v.copy() for k, v in st.items()} for st in state]
            values = [p.copy(order="K") for p in self._params]
            skipped = self.skipped_steps
            touched = list(self._touched)
            sr_step = self._sr_step
            try:
                yield
            except BaseException:
                for group, old in zip(self.param_groups, groups, strict=True):
                    group.clear()
                    group.update(old)
                for st, saved in zip(state, state_values, strict=True):
                    for k, v in saved.items():
                        np.copyto(st[k], v)
                    for k in set(st) - set(saved):  # state created inside the block
                        del st[k]
                self._state = state
                self._state_built_for = None  # the arrays go back to the kernel at the next step
                for p, v in zip(self._params, values, strict=True):
                    np.copyto(p, v)
                self.skipped_steps = skipped
                self._sr_step = sr_step
                self._touched = touched
                self._all_touched = all(touched)
                raise

    def _load_entry(self, i: int, entry: Mapping[str, Any]) -> dict[str, np.ndarray]:
        p = self._params[i]
        out: dict[str, np.ndarray] = {}
        for name, value in entry.items():
            if name in self.scalar_names:
                v = np.asarray(value)
                real = np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)
                if v.size != 1 or not real:
                    raise ValueError(f"state of params[{i}]: {name} must be a single real number")
                x = float(v.reshape(()))
                if not math.isfinite(x) or (name == "step" and (x < 0 or x != math.floor(x))):
                    raise ValueError(
                        f"state of params[{i}]: {name} is {x}; it must be finite"
                        + (" and a whole number >= 0" if name == "step" else "")
                    )
                out[name] = np.array(x, dtype=np.float64)
            elif name in self.state_names:
                v = np.asarray(value)
                shape = self._state_shape(i, name)
                if v.shape != shape:
                    raise ValueError(
                        f"state of params[{i}]: {name} has shape {v.shape}, expected {shape}"
                        + ("" if shape == p.shape else f" (the parameter is {p.shape})")
                    )
                want = self._state_dtype_of(i)
                dtype = np.dtype(np.int8) if want == "int8" else np.dtype(want)
                if v.dtype != dtype:
                    raise TypeError(
                        f"state of params[{i}]: {name} has dtype {v.dtype}; this optimizer keeps"
                        f" it as {dtype} (the parameter is {p.dtype}, "
                        f"state_dtype={self.state_dtype})"
                    )
                if want == "int8":
                    blocks = -(-p.size // QUANT_BLOCK)
                    scale = np.asarray(entry.get(name + "_absmax"))
                    if scale.dtype != np.float32 or scale.shape != (blocks,):
                        raise ValueError(
                            f"state of params[{i}]: int8 {name} needs {name}_absmax, float32 of "
                            f"shape ({blocks},)"
                        )
                    out[name + "_absmax"] = scale.copy()
                if shape == p.shape:
                    out[name] = spread_full_like(p, 0.0, self.state_names.index(name), dtype)
                else:
                    out[name] = np.empty(shape, dtype)
                out[name][...] = v
            elif name.endswith("_absmax") and name[: -len("_absmax")] in self.state_names:
                if self._state_dtype_of(i) != "int8":
                    raise ValueError(
                        f"state of params[{i}] has {name!r}: int8 state, and this optimizer's "
                        f"state_dtype is {self.state_dtype}"
                    )
            else:
                raise ValueError(
                    f"state of params[{i}] has {name!r}, which {type(self).__name__} does not use "
                    "(a state dict of another optimizer?)"
                )
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} (backend={self.backend!r})"]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"  group {gi}: {len(g['params'])} params")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines)


def _a(name: str) -> str:
    """``name`` with its indefinite article, as it is read aloud: "an Adam", "an SGD"
    (ess-gee-dee), "an RAdam", "a Lion", "a OneCycleLR"."""
    spelled = name[:2].isupper()  # an initialism: SGD, RMSprop, NAdam, RAdam
    vowel_sound = name[:1] in "FHLMNRSX" if spelled else name[:1].upper() in "AEIOU"
    if name.startswith(("One", "Uni", "Eu")):
        vowel_sound = False
    return ("an " if vowel_sound else "a ") + name


def _compile_rules(cls: type[Optimizer]) -> _core.HyperRules:
    """Checks ``cls``'s tables against what its kernel declares and compiles its rules.

    Raises TypeError (at import, when the class is created) for any mismatch: a table
    that names or orders the kernel's inputs differently would feed the kernel wrong values.
    """
    where = f"{cls.__module__}.{cls.__qualname__}"
    if cls.kernel is None:  # steps itself: the rules validate, no kernel reads them
        if cls.init_hyperparameters or cls.eager_state:
            raise TypeError(f"{where}: a class without a kernel creates its own state")
        return _core.HyperRules("", [r.native(k) for k, r in cls.hyperparameters.items()])
    declared = _core.kernels.get(cls.kernel)
    if declared is None:
        raise TypeError(
            f"{where}: no fused kernel named {cls.kernel!r} (built: {list(_core.kernels)})"
        )
    unknown = [k for k in cls.init_hyperparameters if k not in cls.hyperparameters]
    if unknown:
        raise TypeError(f"{where}: init_hyperparameters {unknown} are not in its table")
    table = tuple((k, cls.hyperparameters[k].width) for k in cls.hyper_names)
    if table != declared["hyperparameters"]:
        raise TypeError(
            f"{where}: its hyperparameters {table} are not those its kernel {cls.kernel!r} "
            f"reads: {declared['hyperparameters']} (names, widths and order must agree)"
        )
    for attr, names in (("state_names", declared["state"]), ("scalar_names", declared["scalars"])):
        if tuple(getattr(cls, attr)) != names:
            raise TypeError(f"{where}: {attr} {getattr(cls, attr)} are not the kernel's {names}")
    return _core.HyperRules(cls.kernel, [r.native(k) for k, r in cls.hyperparameters.items()])


def _state_index(key: Any) -> int:
    """A key of ``state_dict["state"]`` as a parameter index: an int, or its decimal string
    (as after a round trip through a file)."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool | np.bool_):
        return int(key)
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    raise TypeError(f"state_dict has state under {key!r}: keys must be parameter indices (int)")


def check_no_overlap(params: Sequence[np.ndarray], name: str = "params") -> None:
    """ValueError if two parameters are the same array or share memory (one sorted sweep);
    the message calls them ``name[i]``."""
    spans = []
    for i, p in enumerate(params):
        if p.size:
            start = p.__array_interface__["data"][0]
            spans.append((start, start + p.nbytes, i))
    spans.sort()
    for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
        if start_b < end_a:
            i, j = sorted((a, b))
            what = "are the same array" if params[i] is params[j] else "share memory"
            raise ValueError(f"{name}[{i}] and {name}[{j}] {what}: each must be given once")
    seen: dict[int, int] = {}
    for i, p in enumerate(params):  # empty arrays have no extent; catch them given twice
        if id(p) in seen:
            raise ValueError(
                f"{name}[{seen[id(p)]}] and {name}[{i}] are the same array: each must be given once"
            )
        seen[id(p)] = i


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat view of contiguous ``a`` in memory order (C or Fortran)."""
    return a.reshape(-1, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C")


def _shaped_like(flat: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``flat`` (memory order) as an array shaped and laid out like ``p``."""
    if p.flags.f_contiguous and not p.flags.c_contiguous:
        return flat.reshape(p.shape, order="F")
    return flat.reshape(p.shape)


def _scaled(g: np.ndarray, scale: float) -> np.ndarray:
    """``g`` times the clip factor as the fused kernels multiply it: in float32 for a half
    grad (widened first), in the grad's dtype otherwise."""
    if is_half(g.dtype):
        return g.astype(np.float32) * np.float32(scale)
    return g * g.dtype.type(scale)
