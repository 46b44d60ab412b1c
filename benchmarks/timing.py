"""Timing shared by the benchmark scripts: cases timed in interleaved rounds.

Each round times every case once (a batch of calls calibrated to last ``min_time``), in an
order rotated by one every round, with the garbage collector off; ratios are taken round
by round (:func:`paired`), so that a slow moment of a shared machine hits both sides.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Timed", "calibrate", "paired", "run_rounds"]


@dataclass
class Timed:
    """A case: a call, its bytes moved per call (0: not counted), and its samples."""

    key: str  # how the ratios name it
    name: str  # how the table shows it
    fn: Callable[[], Any]
    nbytes: int = 0
    number: int = 1  # calls per sample
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def spread(self) -> float:
        """Interquartile range / median."""
        q = np.percentile(self.samples, [25, 75])
        return float(q[1] - q[0]) / self.median


def calibrate(fn: Callable[[], Any], min_time: float) -> int:
    """Calls per sample so that a sample lasts at least ``min_time`` (after a warm-up)."""
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return number
        number = min(number * 100, max(number * 2, int(number * min_time / elapsed * 1.2) + 1))


def run_rounds(cases: Sequence[Timed], repeats: int, min_time: float) -> None:
    """``repeats`` rounds; each times every case once (a batch of ``number`` calls), in an
    order rotated by one every round; the garbage collector off while timing."""
    for c in cases:
        c.number = calibrate(c.fn, min_time)
        c.samples.clear()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(cases)
            for c in [*cases[k:], *cases[:k]]:
                t0 = time.perf_counter()
                for _ in range(c.number):
                    c.fn()
                c.samples.append((time.perf_counter() - t0) / c.number)
    finally:
        if was_enabled:
            gc.enable()


def paired(fn: Callable[..., float], *cases: Timed) -> float:
    """The median over rounds of ``fn(sample of each case in that round)``."""
    return statistics.median(fn(*xs) for xs in zip(*(c.samples for c in cases), strict=True))


#: One row of a ratio table: what, the value, the goal ("" for none), met (None: no goal).
RatioRow = tuple[str, float, str, "bool | None"]


def print_ratios(rows: Sequence[RatioRow]) -> None:
    """A Markdown table of ratios (medians of per-round ratios) against their goals; a row
    whose name says "share" is shown as a percentage, the others as a factor."""
    print("| ratio (median of per-round ratios) | value | goal | met |")
    print("|---|---|---|---|")
    for what, value, goal, met in rows:
        mark = "" if met is None else ("yes" if met else "**no**")
        shown = f"{100 * value:.1f}%" if "share" in what else f"{value:.3f}x"
        print(f"| {what} | {shown} | {goal} | {mark} |")


def parse_threads(text: str) -> list[int]:
    """``--threads 1,2`` as a list of thread counts (each >= 1)."""
    out = []
    for part in text.split(","):
        n = int(part)
        if n < 1:
            raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {n}")
        out.append(n)
    return out
