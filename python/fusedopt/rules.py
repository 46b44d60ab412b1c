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
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ANY_REAL",
    "BETAS",
    "FLAG",
    "NONNEGATIVE",
    "UNIT_INTERVAL",
    "Rule",
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
    """

    kind: Literal["real", "flag"] = "real"
    low: float = -math.inf
    high: float = math.inf
    high_open: bool = False
    width: int = 1
    requires: tuple[tuple[str, str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("real", "flag"):
            raise ValueError(f"kind must be 'real' or 'flag', got {self.kind!r}")
        if self.width < 1 or (self.kind == "flag" and self.width != 1):
            raise ValueError(f"a {self.kind} rule cannot hold {self.width} values")
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
        what = "a finite number"
        low, high = self.low, self.high
        if low == -math.inf and high == math.inf:
            return what
        if high == math.inf:
            return f"{what} >= {_number(low)}"
        if low == -math.inf:
            return f"{what} {'<' if self.high_open else '<='} {_number(high)}"
        return f"{what} in [{_number(low)}, {_number(high)}{')' if self.high_open else ']'}"

    def requiring(self, *conditions: tuple[str, str, float]) -> Rule:
        """This flag rule, with ``conditions`` that must hold when the flag is True."""
        return Rule(self.kind, self.low, self.high, self.high_open, self.width, conditions)

    def native(self, name: str) -> tuple[object, ...]:
        """The rule as the native validator (``fusedopt._core.HyperRules``) takes it."""
        return (
            name,
            self.kind,
            self.width,
            self.low,
            self.high,
            self.high_open,
            self.must,
            self.requires,
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
