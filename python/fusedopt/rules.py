"""What values a hyperparameter may take: the rules of every optimizer's param groups.

Each optimizer class declares its hyperparameters once, as a table of rules in its
kernel's order::

    hyperparameters = hyper_table(lr=NONNEGATIVE, betas=BETAS, eps=NONNEGATIVE, ...)

When the class is created (at import) the table is checked against the names, widths
and order that its C++ kernel declares (``fusedopt._core.kernels``): a mismatch fails at
import, never silently. The table is then compiled into one native validator that
checks the param groups at construction, in ``add_param_group`` and ``load_state_dict``,
and at every step of both backends, before anything is written: the same rules
everywhere, at the cost of a comparison per value.

>>> from fusedopt.rules import BETAS
>>> BETAS.width, BETAS.must
(2, 'a finite number in [0, 1)')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "ANY_REAL",
    "BETAS",
    "FLAG",
    "NONNEGATIVE",
    "UNIT_INTERVAL",
    "Checker",
    "Rule",
    "check_choice",
    "check_int",
    "hyper_table",
]

_OPERATORS = (">", ">=", "<", "<=", "==", "!=")


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


@dataclass(frozen=True)
class Rule:
    """The values one hyperparameter may take.

    Attributes:
        kind: ``"real"`` (a finite real number, never a bool) or ``"flag"`` (a bool).
        low: the smallest allowed value (inclusive).
        high: the largest allowed value (inclusive, exclusive with ``high_open``).
        high_open: whether ``high`` itself is excluded.
        width: how many numbers the key holds: 1, or 2 for a pair such as ``betas``.
        requires: for a flag: conditions ``(other key, operator, value)`` that must hold
            when the flag is True (SGD's nesterov needs ``momentum > 0``).
        low_open: whether ``low`` itself is excluded.
        elements: for a pair whose numbers obey different rules (Rprop's ``etas``: the
            first in (0, 1), the second > 1): one real rule of width 1 per number; the
            rule's own range is then unused. Empty: every number obeys the rule itself.
    """

    kind: Literal["real", "flag"] = "real"
    low: float = -math.inf
    high: float = math.inf
    high_open: bool = False
    width: int = 1
    requires: tuple[tuple[str, str, float], ...] = ()
    low_open: bool = False
    elements: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("real", "flag"):
            raise ValueError(f"kind must be 'real' or 'flag', got {self.kind!r}")
        if self.width < 1 or (self.kind == "flag" and self.width != 1):
            raise ValueError(f"a {self.kind} rule cannot hold {self.width} values")
        if self.elements and (
            self.kind != "real"
            or len(self.elements) != self.width
            or any(e.kind != "real" or e.width != 1 or e.elements for e in self.elements)
        ):
            raise ValueError("elements must be one real rule of width 1 per number of the key")
        if self.requires and self.kind != "flag":
            raise ValueError("only a flag may require conditions on other keys")
        for _, op, _ in self.requires:
            if op not in _OPERATORS:
                raise ValueError(f"unknown operator {op!r} (one of {_OPERATORS})")

    @property
    def must(self) -> str:
        """What each of its numbers must be, as messages say it: ``"a finite number >= 0"``."""
        if self.kind == "flag":
            return "a bool"
        if self.elements:
            return ", ".join(f"[{j}] {e.must}" for j, e in enumerate(self.elements))
        what = "a finite number"
        low, high = self.low, self.high
        if low == -math.inf and high == math.inf:
            return what
        if high == math.inf:
            return f"{what} {'>' if self.low_open else '>='} {_number(low)}"
        if low == -math.inf:
            return f"{what} {'<' if self.high_open else '<='} {_number(high)}"
        opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{what} in {opening}{_number(low)}, {_number(high)}{closing}"

    def element(self, j: int) -> Rule:
        """The rule of the key's ``j``-th number (the rule itself unless ``elements``)."""
        if not 0 <= j < self.width:
            raise IndexError(f"a rule of width {self.width} has no number {j}")
        return (
            self.elements[j]
            if self.elements
            else Rule(self.kind, self.low, self.high, self.high_open, 1, (), self.low_open)
        )

    def requiring(self, *conditions: tuple[str, str, float]) -> Rule:
        """This flag rule, with ``conditions`` that must hold when the flag is True."""
        return Rule(
            self.kind, self.low, self.high, self.high_open, self.width, conditions, self.low_open
        )

    def native(self, name: str) -> tuple[object, ...]:
        """The rule as the native validator (``fusedopt._core.HyperRules``) takes it: its
        range, then the range of each of its numbers ``(low, high, low_open, high_open,
        must)``."""
        bounds = (
            tuple(
                (e.low, e.high, e.low_open, e.high_open, e.must)
                for e in (self.element(j) for j in range(self.width))
            )
            if self.kind == "real"
            else ()
        )
        return (
            name,
            self.kind,
            self.width,
            self.low,
            self.high,
            self.high_open,
            self.must,
            self.requires,
            bounds,
        )


#: A finite real number >= 0 (learning rates, eps, weight decay, momentum, ...).
NONNEGATIVE = Rule(low=0.0)
#: A finite real number in [0, 1].
UNIT_INTERVAL = Rule(low=0.0, high=1.0)
#: Any finite real number.
ANY_REAL = Rule()
#: A bool (Python's or NumPy's).
FLAG = Rule(kind="flag")
#: A pair of finite real numbers in [0, 1); the kernel reads it as two values.
BETAS = Rule(low=0.0, high=1.0, high_open=True, width=2)


def hyper_table(**rules: Rule) -> Mapping[str, Rule]:
    """An algorithm's hyperparameters with their rules, in the kernel's order (read-only)."""
    for name, rule in rules.items():
        if not isinstance(rule, Rule):
            raise TypeError(f"{name}: expected a Rule, got {type(rule).__name__}")
    return MappingProxyType(rules)


# ------------------------------------------------------------------------------------
# Hyperparameters the native rules cannot state: ints, strings, None. A class lists them
# in ``extra_hyperparameters`` (name -> checker); the base class fills them into every
# group and checks them wherever it checks the rules (construction, add_param_group,
# load_state_dict, every step before anything is written).

#: ``checker(value, where)`` raises TypeError / ValueError naming ``where`` for a bad value.
Checker = Callable[[Any, str], None]


def check_int(low: int, high: int | None = None, *, allow_none: bool = False) -> Checker:
    """An int (never a bool) in ``[low, high)`` (``high`` None: no upper bound).

    >>> check_int(1)(0, "max_iter")
    Traceback (most recent call last):
    ...
    ValueError: max_iter must be an int >= 1, got 0
    """

    def check(value: Any, where: str) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{where} must be an int{' or None' if allow_none else ''}, "
                f"got {type(value).__name__}"
            )
        n = int(value)
        if n < low or (high is not None and n >= high):
            bound = f">= {low}" if high is None else f"in [{low}, {high})"
            raise ValueError(f"{where} must be an int {bound}, got {value}")

    return check


def check_choice(*choices: str | None) -> Checker:
    """One of ``choices`` (strings, or None)."""

    def check(value: Any, where: str) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"{where} must be one of {choices}, got {type(value).__name__} {value!r}"
            )
        if value not in choices:
            raise ValueError(f"{where} must be one of {choices}, got {value!r}")

    return check
