"""Every optimizer, one tensor of 2^k elements: fused (1 and all threads), the NumPy
reference and torch.optim in one group per optimizer, size and dtype."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_step(opt_spec: Any, step_bench: Callable[[Any], None]) -> None:
    step_bench(opt_spec)
