"""NumPy's BLAS threads while the demo trains: limited, through threadpoolctl.

The demo's MLP multiplies small matrices (a batch of 32 rows by 64 x 256 weights): BLAS
gains nothing from threads there, but its threads keep spinning after each product and
take the cores that fusedopt's own threads, and any other process, need. On a 2-core
machine with another process busy, ``fusedopt train`` took 30 s with NumPy's default
BLAS threads and about one second with one. :func:`limit_blas_threads` sets the limit for
a block of code with threadpoolctl (``pip install "fusedopt[demo]"``); without
threadpoolctl it leaves the threads as they are.

>>> from fusedopt.demo.threads import limit_blas_threads
>>> with limit_blas_threads(1):
...     pass  # train here
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fusedopt._optional import optional_module

__all__ = ["blas_threads", "limit_blas_threads", "threadpoolctl_available"]


def threadpoolctl_available() -> bool:
    """Whether threadpoolctl can be imported (without it, no limit is set)."""
    return optional_module("threadpoolctl") is not None


def blas_threads() -> int | None:
    """The largest thread count of the BLAS libraries loaded in this process, or None
    when threadpoolctl is missing or finds no BLAS."""
    threadpoolctl = optional_module("threadpoolctl")
    if threadpoolctl is None:
        return None
    counts = [
        int(info["num_threads"])
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return max(counts) if counts else None


@contextlib.contextmanager
def limit_blas_threads(limit: int | None) -> Iterator[bool]:
    """Limit the BLAS libraries loaded in this process (NumPy's) to ``limit`` threads
    inside the ``with`` block; the previous counts are restored after it.

    ``limit=None`` leaves them as they are. Yields whether a limit is in force: False
    when none was asked or threadpoolctl is not installed.
    """
    threadpoolctl = None if limit is None else optional_module("threadpoolctl")
    if threadpoolctl is None:
        yield False
        return
    with threadpoolctl.threadpool_limits(limits=limit, user_api="blas"):
        yield True
