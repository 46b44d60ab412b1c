"""fusedopt.demo.threads: NumPy's BLAS threads limited while the demo trains."""

from __future__ import annotations

import sys

import pytest

from fusedopt.demo import blas_threads, limit_blas_threads


def _blas_found() -> bool:
    return blas_threads() is not None


@pytest.mark.skipif(not _blas_found(), reason="needs threadpoolctl and a BLAS it can see")
def test_the_limit_holds_inside_the_block_and_is_undone_after() -> None:
    before = blas_threads()
    with limit_blas_threads(1) as limited:
        assert limited
        assert blas_threads() == 1
    assert blas_threads() == before


def test_no_limit_asked_changes_nothing() -> None:
    before = blas_threads()
    with limit_blas_threads(None) as limited:
        assert not limited
        assert blas_threads() == before


def test_without_threadpoolctl_the_block_runs_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # makes the import fail
    ran = False
    with limit_blas_threads(1) as limited:
        ran = True
    assert ran and not limited
    assert blas_threads() is None
