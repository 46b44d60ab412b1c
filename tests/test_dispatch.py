"""Run-time dispatch: the element loops are compiled for several instruction-set targets
and the best one the CPU runs is chosen at import (FUSEDOPT_TARGET asks for another).

Every target must give the same bits: each one the CPU runs is forced in a subprocess
and steps every optimizer configuration of the table, both dtypes, sizes that are not a
multiple of any vector width, on one and on two threads.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fusedopt as fo

INFO = fo.build_info()
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# Steps every configuration of the table and prints, per configuration, a digest of the
# parameters' and state's bytes afterwards.
CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import fusedopt as fo
    from tests.table import ROWS

    SIZES = (1, 7, 33, 1000, 70001)  # the last one runs in parallel
    out = {"target": fo.build_info()["target"]}
    for threads in (1, 2):
        fo.set_num_threads(threads)
        for name, cls, kwargs in ROWS:
            digest = hashlib.sha256()
            for dtype in (np.float32, np.float64):
                rng = np.random.default_rng(7)
                params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
                opt = cls(params, **kwargs)
                for _ in range(3):
                    opt.step([rng.standard_normal(n).astype(dtype) for n in SIZES])
                for p in params:
                    digest.update(p.tobytes())
                for i, st in sorted(opt.state_dict()["state"].items()):
                    for k, v in sorted(st.items()):
                        digest.update(np.ascontiguousarray(v).tobytes())
            out[f"{name}/{threads}"] = digest.hexdigest()
    print(json.dumps(out))
    """
)


def run_child(target: str) -> dict[str, str]:
    env = {**os.environ, "FUSEDOPT_TARGET": target}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_build_info_lists_the_targets_and_the_one_in_use():
    assert INFO["target"] in INFO["targets"]
    assert INFO["target"] in INFO["cpu_runs"]
    assert set(INFO["cpu_runs"]) <= set(INFO["targets"])
    assert INFO["simd"]
    if INFO["march_native"]:
        assert INFO["targets"] == ["native"]
    elif X86_64 and INFO["compiler"].startswith(("gcc", "clang")):
        # a default build on x86-64: portable, with the wider targets beside the baseline
        assert INFO["targets"][0] == "baseline"
        assert len(INFO["targets"]) >= 2
        # the best target the CPU runs is the one in use (nothing asked otherwise)
        if not os.environ.get("FUSEDOPT_TARGET"):
            assert INFO["target"] == INFO["cpu_runs"][-1]


@pytest.mark.skipif(len(INFO["cpu_runs"]) < 2, reason="this CPU runs one target of this build")
def test_every_target_gives_the_same_bits():
    runs = {t: run_child(t) for t in INFO["cpu_runs"]}
    for target, digests in runs.items():
        assert digests.pop("target") == target
    first, *others = INFO["cpu_runs"]
    for other in others:
        differ = [k for k in runs[first] if runs[first][k] != runs[other][k]]
        assert not differ, f"{first} and {other} differ on {differ}"


def test_a_target_the_cpu_cannot_run_or_unknown_falls_back_with_a_warning():
    for asked in ("no-such-target", *[t for t in INFO["targets"] if t not in INFO["cpu_runs"]]):
        env = {**os.environ, "FUSEDOPT_TARGET": asked}
        proc = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-c", "import fusedopt"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and "RuntimeWarning" in proc.stderr, proc.stderr
        assert f"FUSEDOPT_TARGET={asked}" in proc.stderr
        env["PYTHONWARNINGS"] = "ignore"
        proc = subprocess.run(
            [sys.executable, "-c", "import fusedopt as fo; print(fo.build_info()['target'])"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.stdout.strip() == INFO["cpu_runs"][-1]


def test_the_baseline_can_be_forced():
    env = {**os.environ, "FUSEDOPT_TARGET": INFO["targets"][0]}
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            "import fusedopt as fo; print(fo.build_info()['target'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == INFO["targets"][0]


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
@pytest.mark.skipif(not X86_64, reason="x86-64 instruction names")
def test_wide_instructions_appear_only_in_the_targets_own_code():
    """Code compiled for x86-64-v3/v4 (ymm / zmm registers) lives only in those targets'
    namespaces: no function that another target or the bindings run can use them."""
    so = Path(fo._core.__file__)
    dump = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", str(so)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    # Each exported function's extent (address, size): the module is stripped of local
    # symbols, so the code after an exported function's last instruction may belong to a
    # local one (of any target); only the bytes inside a symbol's extent are its own.
    symbols = subprocess.run(
        ["nm", "-D", "-C", "-S", "--defined-only", str(so)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    extents = []
    for line in symbols.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2].lower() in ("t", "w"):
            extents.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    extents.sort()
    starts = [e[0] for e in extents]
    offenders: set[str] = set()
    wide_seen = 0
    for line in dump.splitlines():
        if ("ymm" not in line and "zmm" not in line) or ":" not in line:
            continue
        head = line.split(":", 1)[0].strip()
        try:
            address = int(head, 16)
        except ValueError:
            continue
        wide_seen += 1
        k = bisect.bisect_right(starts, address) - 1
        if k < 0 or address >= extents[k][0] + extents[k][1]:
            continue  # a local function's code: no symbol says whose
        function = extents[k][2]
        if "target_v3" not in function and "target_v4" not in function:
            offenders.add(function)
    assert not offenders, sorted(offenders)[:10]
    if any(t in INFO["targets"] for t in ("x86-64-v3", "x86-64-v4")):
        assert wide_seen > 0  # the wider targets do use their instructions
