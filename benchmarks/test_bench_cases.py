"""The cases of issue 5 besides single tensors: 1000 tensors of 256 elements, a
160-tensor CNN-like model of 11.2 M parameters, and one 1-element tensor (the fixed
cost of a step from Python). Adam by default; every optimizer with --bench-full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_step(case_spec: Any, step_bench: Callable[[Any], None]) -> None:
    step_bench(case_spec)
