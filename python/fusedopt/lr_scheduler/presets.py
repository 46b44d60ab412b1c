"""Schedule presets: the classes of :mod:`fusedopt.lr_scheduler` sized to a run.

An alias (``"cosine"``, ``"warmup-cosine"``, ``"onecycle"``, ``"plateau"``, ...: :data:`SCHEDULES`)
names a class or helper of :mod:`fusedopt.lr_scheduler` with arguments computed from the
run's base lr and number of steps. The command line (``fusedopt train --schedule``) and
the scikit-learn estimators (``fusedopt.sklearn``, ``schedule=``) both take them.

>>> from fusedopt.lr_scheduler.presets import SCHEDULES
>>> SCHEDULES["cosine"].defaults(0.1, 1000)
{'T_max': 1000}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCHEDULES",
    "ScheduleSpec",
    "preset_arguments",
    "resolve_schedule",
    "schedule_factories",
]


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule of :mod:`fusedopt.lr_scheduler` (class or helper), defaults sized to the run.

    ``defaults(lr, total_steps)`` gives the constructor arguments (user arguments
    override them); ``per_epoch`` schedules are stepped once per epoch with the loss.
    """

    cls: str
    defaults: Callable[[float, int], dict[str, Any]]
    summary: str
    per_epoch: bool = False


def _cycle(n: int, parts: int) -> int:
    """``ceil(n / parts)``, at least 1: ``parts`` periods of this length cover a run of
    ``n`` steps, so that the run ends inside the last one, never just after a restart."""
    return max(1, -(-n // parts))


#: The aliases. ``defaults(lr, n)`` sizes a schedule to a run of ``n`` steps (steps ``0 ..
#: n-1``); "at the last step" in a summary is the lr of step ``n - 1``, the last step taken.
SCHEDULES: dict[str, ScheduleSpec | None] = {
    "constant": None,
    "cosine": ScheduleSpec(
        "CosineAnnealingLR", lambda lr, n: {"T_max": n}, "cosine from lr to ~0 at the last step"
    ),
    "warmup-cosine": ScheduleSpec(
        "warmup_cosine",
        lambda lr, n: {"warmup_steps": max(1, n // 20), "total_steps": n},
        "linear warm-up over 5% of the run, then cosine to ~0 at the last step",
    ),
    "warmup-linear": ScheduleSpec(
        "warmup_linear",
        lambda lr, n: {"warmup_steps": max(1, n // 20), "total_steps": n},
        "linear warm-up over 5% of the run, then linear decay to ~0 at the last step",
    ),
    "wsd": ScheduleSpec(
        "warmup_stable_decay",
        lambda lr, n: {
            "warmup_steps": max(1, n // 20),
            "total_steps": n,
            "decay_steps": max(1, n // 5),
        },
        "warm-up, stable, decay: linear warm-up over 5% of the run, lr, then a 1-sqrt "
        "cooldown over the last 20% to ~0",
    ),
    "onecycle": ScheduleSpec(
        "OneCycleLR",
        lambda lr, n: {"max_lr": lr, "total_steps": n},
        "lr/25 up to lr over 30% of the run, then cosine to lr/2.5e5 at the last step",
    ),
    "step": ScheduleSpec(
        "StepLR",
        lambda lr, n: {"step_size": _cycle(n, 3), "gamma": 0.1},
        "x0.1 at 1/3 and 2/3 of the run",
    ),
    "multistep": ScheduleSpec(
        "MultiStepLR",
        lambda lr, n: {"milestones": [n // 2, 3 * n // 4], "gamma": 0.1},
        "x0.1 at 50% and 75% of the run",
    ),
    "exponential": ScheduleSpec(
        "ExponentialLR",
        lambda lr, n: {"gamma": 0.01 ** (1 / max(n - 1, 1))},
        "exponential decay to lr/100 at the last step",
    ),
    "linear": ScheduleSpec(
        "LinearLR",
        lambda lr, n: {"start_factor": 1.0, "end_factor": 0.01, "total_iters": max(n - 1, 1)},
        "linear decay to lr/100 at the last step",
    ),
    "polynomial": ScheduleSpec(
        "PolynomialLR",
        lambda lr, n: {"total_iters": n, "power": 2.0},
        "(1 - t/n)^2 decay to ~0 at the last step",
    ),
    "constant-factor": ScheduleSpec(
        "ConstantLR", lambda lr, n: {}, "lr/3 for 5 steps, then lr (torch's defaults)"
    ),
    "cosine-restarts": ScheduleSpec(
        "CosineAnnealingWarmRestarts",
        lambda lr, n: {"T_0": _cycle(n, 7), "T_mult": 2},
        "cosine with warm restarts, periods n/7, 2n/7, 4n/7: the third ends with the run",
    ),
    "cyclic": ScheduleSpec(
        "CyclicLR",
        lambda lr, n: {"base_lr": lr / 10, "max_lr": lr, "step_size_up": _cycle(n, 8)},
        "4 triangles between lr/10 and lr, the last ending with the run",
    ),
    "plateau": ScheduleSpec(
        "ReduceLROnPlateau",
        lambda lr, n: {"factor": 0.1, "patience": 2},
        "x0.1 when the epoch loss stops improving for 2 epochs",
        per_epoch=True,
    ),
}


def schedule_factories() -> dict[str, Callable[..., Any]]:
    """The public schedule classes and helpers of ``fusedopt.lr_scheduler``, by name."""
    out: dict[str, Callable[..., Any]] = {}
    from fusedopt import lr_scheduler  # the package imports this module

    for n in lr_scheduler.__all__:
        obj = getattr(lr_scheduler, n, None)
        if callable(obj) and not n.startswith("_") and n not in ("LRScheduler", "curve"):
            out[n] = obj
    return out


def resolve_schedule(name: str) -> tuple[ScheduleSpec | None, Callable[..., Any] | None]:
    """``name`` -> (spec with defaults or None, class or function of fusedopt.lr_scheduler).

    ``name`` is an alias of :data:`SCHEDULES` (``-`` or ``_``) or the name of a class or
    helper of ``fusedopt.lr_scheduler``, case-insensitive; ``constant`` gives ``(None, None)``.
    """
    key = name.lower().replace("_", "-")
    if key in ("constant", "none"):
        return None, None
    factories = schedule_factories()
    spec = SCHEDULES.get(key)
    target = spec.cls if spec is not None else name
    factory = next(
        (f for n, f in factories.items() if n.lower() == target.lower().replace("-", "_")), None
    )
    if factory is None:
        names = ", ".join([*SCHEDULES, *factories])
        raise ValueError(f"unknown schedule {name!r} (choose from {names})")
    if spec is None:  # a class name that has an alias: use the alias's defaults
        spec = next(
            (s for s in SCHEDULES.values() if s is not None and s.cls.lower() == target.lower()),
            None,
        )
    return spec, factory


def preset_arguments(
    name: str, lr: float, total_steps: int, overrides: Mapping[str, Any] | None = None
) -> tuple[ScheduleSpec | None, Callable[..., Any] | None, dict[str, Any]]:
    """Schedule ``name`` sized to a run: ``(spec, factory, arguments)``, the arguments the
    preset's defaults for peak ``lr`` over ``total_steps``, then ``overrides``; build it
    as ``factory(optimizer, **arguments)``. ``constant``: ``(None, None, {})``.

    Raises:
        ValueError: an unknown name, or arguments for the constant schedule.
    """
    spec, factory = resolve_schedule(name)
    overrides = dict(overrides or {})
    if factory is None:
        if overrides:
            raise ValueError("the constant schedule takes no arguments")
        return None, None, {}
    arguments = spec.defaults(lr, total_steps) if spec is not None else {}
    arguments.update(overrides)
    return spec, factory, arguments
