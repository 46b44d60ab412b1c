"""torch's schedules that go up again: warm restarts, ``CyclicLR`` and ``OneCycleLR``.

All three are closed forms of the step, as in PyTorch; ``CyclicLR`` and ``OneCycleLR``
also cycle the momentum (``momentum`` or Adam's ``betas[0]``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from fusedopt.lr_scheduler.base import (
    LRScheduler,
    _callable_state,
    _check_last_epoch,
    _check_optimizer,
    _int,
    _is_real,
    _Optimizer,
    _per_group,
    _real,
)

__all__ = ["CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR"]


# --------------------------------------------------------------------------- restarts


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR), the period growing ``T_mult``-fold.

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``, where ``T_i``
    is the current period (``T_0``, ``T_0 * T_mult``, ...) and ``T_cur`` the steps since the
    last restart. ``step()`` adds 1 to ``T_cur``; ``step(epoch)`` accepts a fractional
    epoch (``epoch + i / iters_per_epoch``) and places it exactly (PyTorch uses ``math.log``,
    which can land one cycle off on a restart boundary). Closed form in ``T_cur``.

    Args:
        optimizer: the optimizer.
        T_0: steps until the first restart, an int >= 1.
        T_mult: growth of the period after each restart, an int >= 1. Default: 1.
        eta_min: the lowest lr, >= 0. Default: 0.
        last_epoch: -1 to start.
    """

    _state_keys = ("T_0", "T_i", "T_mult", "eta_min", "T_cur")

    def __init__(
        self,
        optimizer: _Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_0 = _int("T_0", T_0, 1)
        self.T_i: float = self.T_0
        self.T_mult = _int("T_mult", T_mult, 1)
        self.eta_min = _real("eta_min", eta_min, 0.0)
        self.T_cur: float = _int("last_epoch", last_epoch, -1)
        super().__init__(optimizer, last_epoch)

    def _initial_step(self) -> None:
        self.step()

    def _closed_lr(self, t: int) -> list[float]:
        m = self.eta_min
        c = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [m + (b - m) * c / 2 for b in self.base_lrs]

    def _position(self, epoch: float) -> tuple[float, float]:
        """``(T_cur, T_i)`` at ``epoch``, restart boundaries found with exact sums."""
        if epoch < self.T_0:
            return epoch, self.T_0
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        start, period = 0, self.T_0
        while epoch >= start + period:
            start += period
            period *= self.T_mult
        return epoch - start, period

    def step(self, epoch: float | None = None) -> None:
        """Advance by one step, or go to ``epoch`` (a float >= 0, fractions allowed)."""
        self._check_groups()
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            last = self.last_epoch + 1
            t_cur, t_i = self.T_cur + 1, self.T_i
            if t_cur >= t_i:
                t_cur, t_i = t_cur % t_i, t_i * self.T_mult
        else:
            if not _is_real(epoch):
                raise TypeError(f"epoch must be a real number, got {type(epoch).__name__}")
            if not epoch >= 0 or not math.isfinite(epoch):
                raise ValueError(f"epoch must be finite and >= 0, got {epoch}")
            t_cur, t_i = self._position(epoch)
            last = math.floor(epoch)
        self.T_cur, self.T_i = t_cur, t_i
        self._apply(last, self._closed_lr(last))

    def _restart(self) -> None:
        self.step(0)


# --------------------------------------------------------------------------- cyclic


def _momentum_key(optimizer: _Optimizer) -> str:
    """``betas`` (Adam family: cycle beta1) or ``momentum`` (SGD, RMSprop)."""
    defaults = getattr(optimizer, "defaults", {})
    if "betas" in defaults:
        return "betas"
    if "momentum" in defaults:
        return "momentum"
    raise ValueError(
        "cycle_momentum=True needs an optimizer with 'momentum' or 'betas' "
        "(SGD, RMSprop, Adam family); pass cycle_momentum=False"
    )


def _write_momentum(group: dict[str, Any], use_beta1: bool, value: float) -> None:
    if use_beta1:
        group["betas"] = (value, *tuple(group["betas"])[1:])
    else:
        group["momentum"] = value


class CyclicLR(LRScheduler):
    """Cycles the lr between ``base_lr`` and ``max_lr`` (cyclical learning rates, CLR).

    With ``cycle = floor(1 + t / (up + down))``, ``x = 1 + t / (up + down) - cycle`` and the
    triangle ``h = x / r`` if ``x <= r`` else ``(x - 1) / (r - 1)`` (``r = up / (up + down)``):
    ``lr_t = base_lr + (max_lr - base_lr) * h * scale_fn(cycle or t)``, where ``scale_fn`` is
    1 (``"triangular"``), ``1 / 2 ** (cycle - 1)`` (``"triangular2"``) or ``gamma ** t``
    (``"exp_range"``). With ``cycle_momentum``, momentum (or ``betas[0]``) runs the other
    way: ``max_momentum - (max_momentum - base_momentum) * h * scale_fn(...)``. Closed form.

    Args:
        optimizer: the optimizer.
        base_lr: lower bound, a float or one per group (written to the groups at start).
        max_lr: upper bound, a float or one per group.
        step_size_up: steps of the rising half, > 0. Default: 2000.
        step_size_down: steps of the falling half, >= 0. Default: ``step_size_up``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``; ignored with ``scale_fn``.
        gamma: base of ``"exp_range"``. Default: 1.
        scale_fn: a custom scaling function of one argument; overrides ``mode``.
        scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` is given.
        cycle_momentum: cycle ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family).
            Other optimizers raise ``ValueError`` unless this is False. Default: True.
        base_momentum: lower momentum bound (at the lr's peak). Default: 0.8.
        max_momentum: upper momentum bound (at ``base_lr``). Default: 0.9.
        last_epoch: -1 to start.
    """

    _state_keys = (
        "max_lrs",
        "total_size",
        "step_ratio",
        "mode",
        "gamma",
        "scale_mode",
        "cycle_momentum",
        "use_beta1",
        "base_momentums",
        "max_momentums",
    )

    def __init__(
        self,
        optimizer: _Optimizer,
        base_lr: float | Sequence[float],
        max_lr: float | Sequence[float],
        step_size_up: float = 2000,
        step_size_down: float | None = None,
        mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: Literal["cycle", "iterations"] = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.8,
        max_momentum: float | Sequence[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        last_epoch = _check_last_epoch(optimizer, last_epoch, ("initial_lr",))
        base_lrs = _per_group("base_lr", base_lr, n, 0.0)
        self.max_lrs = _per_group("max_lr", max_lr, n, 0.0)
        up = _real("step_size_up", step_size_up, 0.0, lo_open=True)
        down = up if step_size_down is None else _real("step_size_down", step_size_down, 0.0)
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(
                f"mode must be 'triangular', 'triangular2' or 'exp_range' (or give scale_fn), "
                f"got {mode!r}"
            )
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable, got {type(scale_fn).__name__}")
        self.mode = mode
        self.gamma = _real("gamma", gamma)
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_mode()
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        self.base_momentums: list[float] = []
        self.max_momentums: list[float] = []
        if self.cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            self.base_momentums = _per_group("base_momentum", base_momentum, n, 0.0)
            self.max_momentums = _per_group("max_momentum", max_momentum, n, 0.0)
        # All checks passed: now write the groups.
        self._cyclic_base_lrs = base_lrs
        if last_epoch == -1:
            for lr, g in zip(base_lrs, optimizer.param_groups, strict=True):
                g["lr"] = lr
            if self.cycle_momentum:
                for g, hi, lo in zip(
                    optimizer.param_groups, self.max_momentums, self.base_momentums, strict=True
                ):
                    _write_momentum(g, self.use_beta1, hi)
                    g["max_momentum"] = hi
                    g["base_momentum"] = lo
        super().__init__(optimizer, last_epoch)

    def _initial_base_lrs(self) -> list[float]:
        return list(self._cyclic_base_lrs)

    def _init_scale_mode(self) -> None:
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x: float) -> float:
        """The amplitude's scale at ``x`` (the cycle number or the step, see scale_mode)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def _triangle(self, t: int) -> tuple[float, float]:
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        if x <= self.step_ratio:
            h = x / self.step_ratio
        else:
            h = (x - 1) / (self.step_ratio - 1)
        return h, self.scale_fn(cycle if self.scale_mode == "cycle" else t)

    def _closed_lr(self, t: int) -> list[float]:
        h, s = self._triangle(t)
        return [b + (m - b) * h * s for b, m in zip(self.base_lrs, self.max_lrs, strict=True)]

    def _after_lr(self, t: int) -> None:
        if not self.cycle_momentum:
            return
        h, s = self._triangle(t)
        for g, lo, hi in zip(
            self.optimizer.param_groups, self.base_momentums, self.max_momentums, strict=True
        ):
            _write_momentum(g, self.use_beta1, hi - (hi - lo) * h * s)

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`LRScheduler.state_dict`; a custom ``scale_fn`` is saved as PyTorch does
        (a callable object's ``__dict__``; a function as ``None``)."""
        sd = super().state_dict()
        fn = self._scale_fn_custom
        sd["_scale_fn_custom"] = None if fn is None else copy.deepcopy(_callable_state(fn))
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`LRScheduler.load_state_dict`."""
        super().load_state_dict(state_dict)
        saved = state_dict.get("_scale_fn_custom")
        if saved is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(copy.deepcopy(saved))
        self._init_scale_mode()


_ONECYCLE_KEYS = ("initial_lr", "max_lr", "min_lr")


class OneCycleLR(LRScheduler):
    """The 1cycle policy: lr up from ``max_lr / div_factor`` to ``max_lr``, then down to
    ``max_lr / div_factor / final_div_factor``; momentum the other way.

    Phases (``T = total_steps``, ``p = pct_start``), each annealed with
    ``anneal(a, b, x) = b + (a - b) * (1 + cos(pi x)) / 2`` (``"cos"``) or
    ``a + (b - a) * x`` (``"linear"``), ``x`` the fraction of the phase done:

    * two phases (default, fastai): ``initial -> max`` until step ``p T - 1``, then
      ``max -> min`` until ``T - 1``;
    * ``three_phase``: ``initial -> max`` until ``p T - 1``, ``max -> initial`` until
      ``2 p T - 2``, ``initial -> min`` until ``T - 1``.

    Momentum (``momentum`` or ``betas[0]``) goes ``max_momentum -> base_momentum`` while the
    lr rises and back while it falls (constant in the third phase). As in PyTorch the groups
    receive ``initial_lr``, ``max_lr``, ``min_lr`` (and ``max_momentum``,
    ``base_momentum``), which the schedule reads; stepping past ``total_steps`` raises
    ``ValueError``. Closed form.

    Args:
        optimizer: the optimizer.
        max_lr: peak lr, a float or one per group.
        total_steps: length of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: with ``steps_per_epoch``, ``total_steps = epochs * steps_per_epoch``.
        steps_per_epoch: see ``epochs``.
        pct_start: fraction of the cycle spent raising the lr, in [0, 1]. Default: 0.3.
        anneal_strategy: ``"cos"`` or ``"linear"``. Default: ``"cos"``.
        cycle_momentum: cycle momentum / beta1 (SGD, RMSprop, Adam family). Default: True.
        base_momentum: momentum at the lr's peak. Default: 0.85.
        max_momentum: momentum at the ends. Default: 0.95.
        div_factor: ``initial_lr = max_lr / div_factor``. Default: 25.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``. Default: 1e4.
        three_phase: the paper's three phases instead of fastai's two. Default: False.
        last_epoch: -1 to start.
    """

    _state_keys = (
        "total_steps",
        "_schedule_phases",
        "_anneal_func_type",
        "cycle_momentum",
        "use_beta1",
    )

    def __init__(
        self,
        optimizer: _Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if total_steps is not None:
            self.total_steps = _int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _int("epochs", epochs, 1) * _int(
                "steps_per_epoch", steps_per_epoch, 1
            )
        else:
            raise ValueError("give total_steps, or both epochs and steps_per_epoch")
        pct = _real("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group("max_lr", max_lr, n, 0.0)
        div = _real("div_factor", div_factor, 0.0, lo_open=True)
        final_div = _real("final_div_factor", final_div_factor, 0.0, lo_open=True)
        total = self.total_steps
        if three_phase:
            ends = [float(pct * total) - 1, float(2 * pct * total) - 2, total - 1]
            self._schedule_phases = [
                self._phase(ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                self._phase(ends[1], "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                self._phase(ends[2], "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            ends = [float(pct * total) - 1, total - 1]
            self._schedule_phases = [
                self._phase(ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                self._phase(ends[1], "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if any(b == a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)):
            raise ValueError(
                f"pct_start={pct_start} with total_steps={total} gives a phase of zero length"
            )
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        keys: tuple[str, ...] = _ONECYCLE_KEYS
        if self.cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            max_ms = _per_group("max_momentum", max_momentum, n, 0.0)
            base_ms = _per_group("base_momentum", base_momentum, n, 0.0)
            keys = (*keys, "max_momentum", "base_momentum")
        last_epoch = _check_last_epoch(optimizer, last_epoch, keys)
        # All checks passed: now write the groups.
        if last_epoch == -1:
            for g, m in zip(optimizer.param_groups, max_lrs, strict=True):
                g["initial_lr"] = m / div
                g["max_lr"] = m
                g["min_lr"] = g["initial_lr"] / final_div
            if self.cycle_momentum:
                for g, hi, lo in zip(optimizer.param_groups, max_ms, base_ms, strict=True):
                    _write_momentum(g, self.use_beta1, hi)
                    g["max_momentum"] = hi
                    g["base_momentum"] = lo
        super().__init__(optimizer, last_epoch)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """As :meth:`LRScheduler.load_state_dict`; also a state dict of torch before 2.2,
        which saved the annealing function (``anneal_func``) instead of its name
        (``_anneal_func_type``): its strategy is read from the function's name, and when
        that says nothing this schedule keeps its own, as torch does."""
        if "_anneal_func_type" not in state_dict and "anneal_func" in state_dict:
            name = str(getattr(state_dict["anneal_func"], "__name__", state_dict["anneal_func"]))
            strategy = (
                "cos" if "cos" in name else "linear" if "linear" in name else self._anneal_func_type
            )
            state_dict = {**state_dict, "_anneal_func_type": strategy}
        super().load_state_dict(state_dict)

    @staticmethod
    def _phase(end: float, lr0: str, lr1: str, m0: str, m1: str) -> dict[str, Any]:
        return {
            "end_step": end,
            "start_lr": lr0,
            "end_lr": lr1,
            "start_momentum": m0,
            "end_momentum": m1,
        }

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _where(self, t: int) -> tuple[dict[str, Any], float]:
        """The phase of step ``t`` and the fraction of it done."""
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {t} times, past total_steps={self.total_steps}")
        start = 0.0
        phases = self._schedule_phases
        for i, phase in enumerate(phases):
            end = phase["end_step"]
            if t <= end or i == len(phases) - 1:
                return phase, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def _closed_lr(self, t: int) -> list[float]:
        phase, pct = self._where(t)
        groups = self.optimizer.param_groups
        return [self._anneal(g[phase["start_lr"]], g[phase["end_lr"]], pct) for g in groups]

    def _after_lr(self, t: int) -> None:
        if not self.cycle_momentum:
            return
        phase, pct = self._where(t)
        for g in self.optimizer.param_groups:
            m = self._anneal(g[phase["start_momentum"]], g[phase["end_momentum"]], pct)
            _write_momentum(g, self.use_beta1, m)
