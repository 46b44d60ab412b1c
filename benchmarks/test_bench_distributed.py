"""fusedopt.distributed (issue "beyond one machine") in the pytest-benchmark suite.

A collective needs every rank, so each benchmark runs ``benchmarks/distributed_speed.py``
under ``mpirun -n 2`` once and records its medians and ratios in ``extra_info``
(``--benchmark-json`` keeps them): allreduce_grads against one flat ``Allreduce`` of the
same bytes, the ZeRO step against the single-process fused step, and the state per rank.
The benchmark's own time is the whole script's. Skipped without mpi4py / mpirun.

    python -m pytest benchmarks/test_bench_distributed.py --benchmark-json dist.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_distributed_speed(benchmark, tmp_path):
    pytest.importorskip("mpi4py")
    exe = Path(sys.executable).with_name("mpirun")
    mpirun = str(exe) if exe.exists() else shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("no mpirun")
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = tmp_path / "figures.json"
    cmd = [
        mpirun,
        "--oversubscribe",
        "--bind-to",
        "none",
        "-n",
        "2",
        sys.executable,
        str(HERE / "distributed_speed.py"),
        "--repeats",
        "7",
        "--json",
        str(out),
    ]

    def run() -> None:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)

    benchmark.group = "distributed (2 ranks)"
    benchmark.pedantic(run, rounds=1, iterations=1)
    figures = json.loads(out.read_text())
    benchmark.extra_info.update(figures)
    assert figures["ranks"] == 2
    assert sum(figures["state per rank"]) == figures["state one process"]
