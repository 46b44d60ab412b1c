"""Benchmark results and how they are written down.

:class:`Result` (one optimizer on one case, dtype and thread count) and :class:`Report`
(a run, with :func:`machine_info`); :func:`format_table`, :func:`format_markdown` and
:func:`format_comparison` write them as Markdown, :func:`write_markdown` into
BENCHMARKS.md; :func:`format_time` is the one way fusedopt prints a duration.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

import fusedopt

__all__ = [
    "MARK_END",
    "MARK_START",
    "Report",
    "Result",
    "format_comparison",
    "format_markdown",
    "format_table",
    "format_time",
    "machine_info",
    "write_markdown",
]


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """One optimizer on one case, dtype and thread count. Times are seconds per step
    (median), None where that backend was not run."""

    case: str
    n_tensors: int
    numel: int
    optimizer: str
    config: dict[str, Any]
    dtype: str
    threads: int
    pattern: str
    bytes_per_step: int
    fused_s: float | None = None
    numpy_s: float | None = None
    torch_s: float | None = None
    torch_impl: str | None = None
    limit_s: float | None = None
    limit_same_s: float | None = None
    checked: list[str] = field(default_factory=list)

    def gbs(self, seconds: float | None) -> float | None:
        """GB/s (1e9 bytes) of a step taking ``seconds``."""
        return self.bytes_per_step / seconds / 1e9 if seconds else None

    @property
    def fused_gbs(self) -> float | None:
        """GB/s of the fused step."""
        return self.gbs(self.fused_s)

    @property
    def limit_gbs(self) -> float | None:
        """GB/s of the traffic kernel with the same pattern, tensors, dtype and threads."""
        return self.gbs(self.limit_s)

    @property
    def pct_of_limit(self) -> float | None:
        """The fused step's bandwidth in % of the traffic kernel's."""
        if self.fused_s and self.limit_s:
            return 100.0 * self.limit_s / self.fused_s
        return None

    @property
    def pct_of_same(self) -> float | None:
        """The fused step's bandwidth in % of the traffic kernel's over the same arrays."""
        if self.fused_s and self.limit_same_s:
            return 100.0 * self.limit_same_s / self.fused_s
        return None

    @property
    def speedup_numpy(self) -> float | None:
        """NumPy reference time / fused time."""
        return self.numpy_s / self.fused_s if self.fused_s and self.numpy_s else None

    @property
    def speedup_torch(self) -> float | None:
        """PyTorch time / fused time."""
        return self.torch_s / self.fused_s if self.fused_s and self.torch_s else None

    def to_dict(self) -> dict[str, Any]:
        """The fields plus the derived figures, for JSON."""
        d = asdict(self)
        for k in (
            "fused_gbs",
            "limit_gbs",
            "pct_of_limit",
            "pct_of_same",
            "speedup_numpy",
            "speedup_torch",
        ):
            d[k] = getattr(self, k)
        d["numpy_gbs"] = self.gbs(self.numpy_s)
        d["torch_gbs"] = self.gbs(self.torch_s)
        return d


@dataclass
class Report:
    """A benchmark run: its results, the bandwidth kernels' figures and the machine."""

    results: list[Result]
    bandwidth: list[dict[str, Any]]
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"schema", "meta", "bandwidth", "results"}``."""
        return {
            "schema": 1,
            "meta": self.meta,
            "bandwidth": self.bandwidth,
            "results": [r.to_dict() for r in self.results],
        }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch: Any | None = None) -> dict[str, Any]:
    """The machine, the build and the library versions, for the record."""
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fusedopt": fusedopt.__version__,
        "build_info": dict(fusedopt.build_info()),
        "torch": getattr(torch, "__version__", None),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = list(os.getloadavg())
    return info


# --------------------------------------------------------------------------- output
def format_time(seconds: float | None) -> str:
    """A duration for people: ``"850 ns"``, ``"12.3 µs"``, ``"456 µs"``, ``"12.5 ms"``,
    ``"1.23 s"`` (``"-"`` for None). Below 10 ms it stays in µs, so that a column of step
    times reads at a glance.
    """
    if seconds is None:
        return "-"
    us = seconds * 1e6
    if us < 1:
        return f"{us * 1000:.0f} ns"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_table(report: Report) -> str:
    """The results as Markdown tables: optimizers, then the bandwidth kernels."""
    head = (
        "| case | optimizer | pattern | dtype | threads | fused / step | GB/s | % of bus "
        "| % same arrays | NumPy / step | vs NumPy | torch / step | vs torch |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in report.results:
        torch_name = format_time(r.torch_s)
        if r.torch_impl and r.torch_impl != "fused":
            torch_name += f" ({r.torch_impl})"
        lines.append(
            f"| {r.case} | {r.optimizer} | {r.pattern} | {r.dtype} | {r.threads} "
            f"| {format_time(r.fused_s)} | {_fmt(r.fused_gbs, '.1f')} "
            f"| {_fmt(r.pct_of_limit, '.0f', '%')} | {_fmt(r.pct_of_same, '.0f', '%')} "
            f"| {format_time(r.numpy_s)} "
            f"| {_fmt(r.speedup_numpy, '.1f', 'x')} | {torch_name} "
            f"| {_fmt(r.speedup_torch, '.2f', 'x')} |"
        )
    if report.bandwidth:
        lines += [
            "",
            "| bandwidth kernel | case | dtype | threads | time | GB/s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {b['kernel']} | {b['case']} | {b['dtype']} | {b['threads']} "
            f"| {format_time(b['seconds'])} | {b['gbs']:.1f} |"
            for b in report.bandwidth
        ]
    return "\n".join(lines)


def _loads(values: Sequence[float] | None) -> str:
    return "-" if not values else ", ".join(f"{v:.2f}" for v in values)


def format_markdown(report: Report, command: str | None = None) -> str:
    """A Markdown section for BENCHMARKS.md: the machine, the command, the tables."""
    m = report.meta
    bi = m.get("build_info", {})
    load = m.get("loadavg_start")
    lines = [
        f"Run of {m.get('date')} on {m.get('cpu')} ({m.get('cpu_count')} logical CPUs), "
        f"{m.get('platform')}.",
        "",
        f"- fusedopt {m.get('fusedopt')} ({bi.get('compiler')}; target {bi.get('target')} of "
        f"{', '.join(bi.get('targets', []))}; threads: {bi.get('threads')}; "
        f"SIMD {', '.join(bi.get('simd', []))}), NumPy {m.get('numpy')}, "
        f"PyTorch {m.get('torch') or 'not installed'}, Python {m.get('python')}.",
        f"- Load average (1, 5, 15 min) at start / end: {_loads(load)} / "
        f"{_loads(m.get('loadavg_end'))}.",
        "- Times are medians per step, from Python; GB/s counts each array read or written "
        "once. Every implementation steps the same arrays. % of bus: the fused step's "
        "bandwidth against the traffic kernel with the same read/write pattern over tensors "
        "of the same shapes and threads, on arrays staggered within a page (at 2^25 elements: "
        "the bus limit). % same arrays: against the traffic kernel over the step's own "
        "params and grads (and state-like arrays placed as the optimizers place theirs), so "
        "the layout of the caller's arrays is common to both. Both timed per sweep in this "
        "run, without the cost of a call (for tiny steps they show the fixed overhead).",
    ]
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    return "\n".join([*lines, "", format_table(report), ""])


#: BENCHMARKS.md marks the generated section with these lines; --markdown replaces it.
MARK_START = "<!-- fusedopt-bench:start -->"
MARK_END = "<!-- fusedopt-bench:end -->"


def write_markdown(path: str, section: str) -> None:
    """Writes ``section`` to ``path``; if the file exists and holds the lines
    :data:`MARK_START` and :data:`MARK_END`, only what lies between them is replaced."""
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    start, end = old.find(MARK_START), old.find(MARK_END)
    if 0 <= start < end:
        text = old[: start + len(MARK_START)] + "\n" + section + old[end:]
    else:
        text = section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def format_comparison(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A Markdown table of the fused step time of two runs' JSON (``--json``), matched by
    case, optimizer, dtype and threads: old, new and old / new (> 1: faster now)."""

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (r["case"], r["optimizer"], r["dtype"], r["threads"])

    before = {key(r): r for r in old.get("results", [])}
    lines = [
        "| case | optimizer | dtype | threads | before | now | before / now |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in new.get("results", []):
        b = before.get(key(r))
        if b is None or not b.get("fused_s") or not r.get("fused_s"):
            continue
        lines.append(
            f"| {r['case']} | {r['optimizer']} | {r['dtype']} | {r['threads']} "
            f"| {format_time(b['fused_s'])} | {format_time(r['fused_s'])} "
            f"| {b['fused_s'] / r['fused_s']:.2f}x |"
        )
    return "\n".join(lines)
