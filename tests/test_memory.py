"""Memory: no growth of the process's resident memory (RSS) nor of traced Python memory
over 100,000 steps, for every optimizer of the table; nor over many failed calls,
skipped steps, state dicts and optimizers created and dropped (the native code's error
and reference-counting paths).

Marked slow (run in CI). On a tiny parameter a fused step takes a few microseconds:
100,000 of them, traced, take about a second per optimizer. The steps run in four
windows; a leak grows in every window, so the second-smallest growth must stay under a
limit (a global table of the interpreter resized once does not fail the test). Under
the sanitizers (whose allocator keeps freed memory in quarantine, and where tracing is
slow) the same paths run ten times shorter, for AddressSanitizer to watch, and nothing
is measured: the normal run measures.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from .hypothesis_settings import SANITIZED
from .table import CONFIGS, ROWS

pytestmark = pytest.mark.slow

STEPS = 100_000 if not SANITIZED else 10_000
TRACED_LIMIT = 32 * 1024  # bytes of Python memory a window may add (caches, not per-step)
RSS_LIMIT = 2 * 1024 * 1024  # bytes of resident memory a window may add
CHECK_RSS = os.path.exists("/proc/self/statm")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn: Callable[[], None], n: int, windows: int = 4) -> tuple[int, int]:
    """Growth of traced Python memory and of RSS over ``n`` calls of ``fn``, after a warm-up
    of ``n // 10`` calls: the second-smallest growth of ``windows`` windows of ``n /
    windows`` calls each. A leak grows in every window; a global table of the interpreter
    that happens to be resized (once) during the run grows in one."""
    for _ in range(max(n // 10, 100)):
        fn()
    if SANITIZED:  # the paths run under the sanitizers; the bytes are counted in the normal run
        for _ in range(n):
            fn()
        return 0, 0
    gc.collect()
    traced, grown = [], []
    tracemalloc.start()
    gc.disable()  # no automatic collections over the big heap of a whole test session
    try:
        for _ in range(windows):
            traced0 = tracemalloc.get_traced_memory()[0]
            rss0 = rss() if CHECK_RSS else 0
            for _ in range(n // windows):
                fn()
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0] - traced0)
            grown.append((rss() if CHECK_RSS else 0) - rss0)
    finally:
        gc.enable()
        tracemalloc.stop()
    return sorted(traced)[1], sorted(grown)[1]


def check(traced: int, grown: int, what: str) -> None:
    assert traced < TRACED_LIMIT, f"{what}: traced Python memory grew by {traced} bytes"
    assert grown < RSS_LIMIT, f"{what}: RSS grew by {grown} bytes"


def tiny(cls, kwargs, backend="fused"):
    params = [np.ones(3, np.float32), np.ones((2, 2))]
    grads = [np.full(3, 0.5, np.float32), np.full((2, 2), -0.25)]
    return params, grads, cls(params, backend=backend, **kwargs)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_no_growth_over_100_000_fused_steps(cls, kwargs):
    _, grads, opt = tiny(cls, kwargs)
    check(*measure(lambda: opt.step(grads), STEPS), f"{STEPS} steps")


FIRST_OF_EACH = {cls.__name__: (cls, kwargs) for _, cls, kwargs in reversed(ROWS)}


@pytest.mark.parametrize(("cls", "kwargs"), list(FIRST_OF_EACH.values()), ids=list(FIRST_OF_EACH))
def test_no_growth_on_the_error_guard_and_reference_paths(cls, kwargs):
    params, grads, opt = tiny(cls, kwargs)
    n = STEPS // 20
    bad_shape = [grads[0], np.zeros(5)]
    bad_dtype = [grads[0], grads[1].astype(np.float32)]
    aliased = [grads[0], params[1]]
    strided = [grads[0], np.asfortranarray(grads[1])[::1, ::1].T.copy().T]
    nan = [grads[0], np.full((2, 2), np.nan)]

    def failing() -> None:
        for bad in (bad_shape, bad_dtype, aliased, "x", [grads[0]]):
            try:
                opt.step(bad)
            except (ValueError, TypeError):
                pass

    check(*measure(failing, n), "failed steps")
    opt.skip_nonfinite = True
    check(*measure(lambda: opt.step(nan), n), "skipped steps")
    check(*measure(lambda: opt.step(strided), n), "steps with copied grads")
    check(*measure(opt.state_dict, n), "state dicts")
    _, _, ref = tiny(cls, kwargs, backend="numpy")
    check(*measure(lambda: ref.step(grads), n), "NumPy reference steps")

    def churn() -> None:
        _, gs, o = tiny(cls, kwargs)
        o.step(gs)
        o.load_state_dict(o.state_dict())
        o.step(gs)

    check(*measure(churn, n // 10), "optimizers created and dropped")
