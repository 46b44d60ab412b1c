"""The schedule presets of the command line (:mod:`fusedopt.lr_scheduler.presets`).

``train``, ``compare-lr`` and ``schedule`` take a schedule by alias (``cosine``,
``onecycle``, ...: :data:`SCHEDULES`, with arguments sized to the run's steps) or by the
name of any class or helper of :mod:`fusedopt.lr_scheduler`; ``NAME=VALUE`` arguments
override the preset's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fusedopt.cli.common import UsageError
from fusedopt.lr_scheduler.presets import (
    SCHEDULES,
    ScheduleSpec,
    preset_arguments,
    schedule_factories,
)
from fusedopt.lr_scheduler.presets import resolve_schedule as _resolve

__all__ = [
    "SCHEDULES",
    "ScheduleSpec",
    "format_value",
    "make_schedule",
    "resolve_schedule",
    "schedule_factories",
]


def resolve_schedule(name: str) -> tuple[ScheduleSpec | None, Callable[..., Any] | None]:
    """:func:`fusedopt.lr_scheduler.presets.resolve_schedule`, an unknown name a UsageError."""
    try:
        return _resolve(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def make_schedule(
    name: str, optimizer: Any, lr: float, total_steps: int, user: Mapping[str, Any]
) -> tuple[Any, str, bool]:
    """Build schedule ``name`` for ``optimizer``: (scheduler or None, description, per_epoch)."""
    try:
        spec, factory, kwargs = preset_arguments(name, lr, total_steps, user)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if factory is None:
        return None, "constant", False
    fname = getattr(factory, "__name__", str(factory))
    try:
        sched = factory(optimizer, **kwargs)
    except (TypeError, ValueError) as exc:
        hint = " (give arguments as NAME=VALUE)" if "missing" in str(exc) else ""
        raise UsageError(f"cannot build schedule {fname}: {exc}{hint}") from exc
    shown = ", ".join(f"{k}={format_value(v)}" for k, v in kwargs.items())
    per_epoch = spec.per_epoch if spec is not None else "plateau" in fname.lower()
    return sched, f"{fname}({shown})", per_epoch


def format_value(v: Any) -> str:
    """A schedule argument as shown in a description: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else repr(v)
