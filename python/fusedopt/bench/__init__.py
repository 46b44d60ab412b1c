"""The benchmark engine behind ``fusedopt bench``, ``benchmarks/`` and BENCHMARKS.md.

For every optimizer (discovered from ``fusedopt.__all__``) on every case (one tensor of
2^k elements, 1000 tensors of 256, a 160-tensor CNN-like model, a 1-element tensor),
dtype and thread count, it times one step of

* the fused kernel (``backend="fused"``),
* the NumPy reference (``backend="numpy"``; single-threaded, measured once),
* ``torch.optim`` when PyTorch is installed, on ``torch.from_numpy`` views of the same
  arrays: ``fused=True`` where PyTorch has a fused CPU kernel, else ``foreach=False``,

and, in the same run, the trivial *traffic* kernel of ``fusedopt._core`` with the same
read/write pattern over the same tensors, through the same parallel loop. Each step's
bytes are ``numel * itemsize * (reads + writes)``; an optimizer with ``s`` element-wise
state arrays reads ``2 + s`` arrays (param, grad, state) and writes ``1 + s``, so
SGD is 2R1W, SGD with momentum 3R2W, Adam 4R3W, Adam with amsgrad 5R4W. Results are
reported as time per step, GB/s, % of the traffic kernel (at 2^25 elements: the bus
limit) and speed-ups over the NumPy reference and PyTorch.

Every timed optimizer is checked afterwards: from the state it reached, one more step
must agree with the other implementation (the fused kernel and PyTorch with the NumPy
reference, the reference with the fused kernel; see :func:`verify`).

Example::

    >>> from fusedopt import bench
    >>> report = bench.run_benchmarks(optimizers=["adam"], cases=[bench.size_case(10)],
    ...                               dtypes=["float32"], threads=[1])  # doctest: +SKIP
    >>> print(bench.format_table(report))  # doctest: +SKIP

The modules: :mod:`~fusedopt.bench.cases` (what runs), :mod:`~fusedopt.bench.runners`
(timing and checking a step), :mod:`~fusedopt.bench.traffic` (the bandwidth limit),
:mod:`~fusedopt.bench.engine` (the run) and :mod:`~fusedopt.bench.report` (the output).
The command line is ``fusedopt bench --json out.json --markdown table.md`` (or
``python -m fusedopt.bench``; see :mod:`fusedopt.cli.bench`).
"""

from __future__ import annotations

from fusedopt.bench.cases import (
    DEFAULT_SIZES,
    EXTRA_VARIANTS,
    Case,
    Pattern,
    Variant,
    default_cases,
    make_arrays,
    many_case,
    model_case,
    overhead_case,
    size_case,
    traffic_pattern,
    variants,
)
from fusedopt.bench.engine import (
    BACKENDS,
    run_benchmarks,
)
from fusedopt.bench.report import (
    MARK_END,
    MARK_START,
    Report,
    Result,
    format_comparison,
    format_markdown,
    format_table,
    format_time,
    machine_info,
    write_markdown,
)
from fusedopt.bench.runners import (
    BenchCheckError,
    FusedRunner,
    Runner,
    TorchRunner,
    measure,
    torch_module,
    verify,
)
from fusedopt.bench.traffic import (
    PAGE_STAGGER,
    Stream,
    apart,
    mixed_bytes,
    mixed_traffic_arrays,
    mixed_traffic_seconds,
    step_streams,
    step_traffic_arrays,
    sweep_seconds,
    traffic_arrays,
    traffic_seconds,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_SIZES",
    "EXTRA_VARIANTS",
    "MARK_END",
    "MARK_START",
    "PAGE_STAGGER",
    "BenchCheckError",
    "Case",
    "FusedRunner",
    "Pattern",
    "Report",
    "Result",
    "Runner",
    "Stream",
    "TorchRunner",
    "Variant",
    "apart",
    "default_cases",
    "format_comparison",
    "format_markdown",
    "format_table",
    "format_time",
    "machine_info",
    "make_arrays",
    "many_case",
    "measure",
    "mixed_bytes",
    "mixed_traffic_arrays",
    "mixed_traffic_seconds",
    "model_case",
    "overhead_case",
    "run_benchmarks",
    "size_case",
    "step_streams",
    "step_traffic_arrays",
    "sweep_seconds",
    "torch_module",
    "traffic_arrays",
    "traffic_pattern",
    "traffic_seconds",
    "variants",
    "verify",
    "write_markdown",
]
