"""fusedopt's thread pool: forks, concurrent steps, and more threads than cores.

The pool's workers sleep between steps, the caller works too and waits only for chunks
in progress; these tests hold it to the same bits as one thread, and check that a process
forked with a running pool (multiprocessing's "fork" start method) can step in the child.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

import numpy as np
import pytest

import fusedopt as fo

BIG = 1 << 18  # above the parallel threshold: the pool runs it


def adam_run(threads: int, steps: int = 4, seed: int = 0) -> list[np.ndarray]:
    fo.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(BIG).astype(np.float32), rng.standard_normal(BIG // 3 + 5)]
    opt = fo.Adam(params, lr=0.01, amsgrad=True)
    for _ in range(steps):
        opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    return params


@pytest.fixture(autouse=True)
def restore_threads():
    before = fo.get_num_threads()
    yield
    fo.set_num_threads(before)


def test_more_threads_than_cores_give_the_same_bits():
    one = adam_run(1)
    for threads in (2, 3, 8, 2 * (os.cpu_count() or 1) + 1):
        for a, b in zip(one, adam_run(threads), strict=True):
            assert a.tobytes() == b.tobytes(), threads
    assert fo.build_info()["pool_workers"] >= 1


def test_steps_from_several_threads_at_once_are_each_right():
    """Two optimizers stepped at the same time from two Python threads (the GIL released):
    one holds the pool, the other runs on its own thread; both end as if alone."""
    expected = adam_run(1, steps=6, seed=1)
    fo.set_num_threads(2)
    results: dict[int, list[np.ndarray]] = {}
    barrier = threading.Barrier(3)

    def work(k: int) -> None:
        barrier.wait()
        results[k] = adam_run(2, steps=6, seed=1)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k in range(3):
        for a, b in zip(expected, results[k], strict=True):
            assert a.tobytes() == b.tobytes(), k


def _child_steps(conn) -> None:  # runs in the forked child
    conn.send([p.tobytes() for p in adam_run(2, steps=3, seed=2)])
    conn.close()


def fork_children_and_check(times: int) -> None:
    """Forks ``times`` children in turn; each steps on its own pool and must end with the
    bits of a one-thread run in the parent (a hang is a deadlock)."""
    ctx = multiprocessing.get_context("fork")
    expected = [p.tobytes() for p in adam_run(1, steps=3, seed=2)]
    for _ in range(times):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child_steps, args=(child,))
        proc.start()
        assert parent.poll(120), "the forked child did not finish its step (deadlock?)"
        assert parent.recv() == expected
        proc.join(30)
        assert proc.exitcode == 0


# Python 3.12+ warns about any fork() of a multi-threaded process; this one is the point.
FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_a_forked_child_can_step_with_its_own_pool():
    """A pool with running workers, then fork(): the child has none of the parent's
    workers; it must start its own instead of waiting for them for ever."""
    adam_run(2)  # the pool exists and has workers
    assert fo.build_info()["pool_workers"] >= 1
    fork_children_and_check(3)


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_fork_while_another_thread_steps():
    """fork() from one thread while another is inside parallel steps: the fork waits for
    the step in progress, and the child steps on its own pool."""
    stop = threading.Event()

    def stepping() -> None:
        while not stop.is_set():
            adam_run(2, steps=1, seed=3)

    t = threading.Thread(target=stepping)
    t.start()
    try:
        fork_children_and_check(5)
    finally:
        stop.set()
        t.join(60)
