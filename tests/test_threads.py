"""Threads: the kernels run without the GIL; optimizers stepped concurrently from Python
threads give exactly the sequential results; one optimizer used from several threads at
once is serialized, never corrupted; a re-entrant call is refused, not deadlocked."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

import fusedopt as fo

from .table import CONFIGS

PARALLEL_MIN = int(fo.build_info()["parallel_min_elements"])


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Runs every target in its own thread, all released at once; re-raises the first error."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def go() -> None:
            try:
                barrier.wait()
                fn()
            except BaseException as e:  # handed to the main thread
                errors.append(e)

        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_a_long_step_lets_another_python_thread_run():
    """While one thread is inside a long fused step, another runs Python code: the
    spinner's time stamps fall in the middle of the step. (If the step held the GIL the
    spinner could not run at all between the step's first and last tenth of a ms.)"""
    n = 1 << 22
    p = np.zeros(n)
    g = np.ones(n)
    opt = fo.Adam([p], lr=1e-3)
    opt.step([g])
    stamps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            for _ in range(100):
                pass
            stamps.append(time.perf_counter())

    interval, threads = sys.getswitchinterval(), fo.get_num_threads()
    sys.setswitchinterval(1e-4)  # a thread holding the GIL gives it up within 0.1 ms
    fo.set_num_threads(1)  # leave a core to the spinner
    spinner = threading.Thread(target=spin)
    spinner.start()
    windows = []
    try:
        time.sleep(0.01)
        for _ in range(5):
            t0 = time.perf_counter()
            opt.step([g])
            t1 = time.perf_counter()
            windows.append((t0, t1))
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(interval)
        fo.set_num_threads(threads)
    s = np.array(stamps)
    inside = [int(np.sum((s > a + (b - a) / 4) & (s < b - (b - a) / 4))) for a, b in windows]
    durations = [b - a for a, b in windows]
    assert max(durations) > 2e-3, f"the step is too short to tell: {durations}"
    assert max(inside) > 0, f"no progress during any step: {inside}, durations {durations}"


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_optimizers_stepped_concurrently_match_sequential_runs(cls, kwargs):
    rng = np.random.default_rng(0)
    n_opt, steps = 4, 5
    shapes = [(PARALLEL_MIN // 2 + 17,), (37, 41), ()]
    inits = [[rng.standard_normal(s) for s in shapes] for _ in range(n_opt)]
    grads = [[[rng.standard_normal(s) for s in shapes] for _ in range(steps)] for _ in range(n_opt)]

    def run(k: int, out: list) -> Callable[[], None]:
        def go() -> None:
            ps = [np.array(p, copy=True) for p in inits[k]]
            opt = cls(ps, **kwargs)
            for gs in grads[k]:
                opt.step(gs)
            out[k] = (ps, opt.state_dict()["state"])

        return go

    sequential: list = [None] * n_opt
    for k in range(n_opt):
        run(k, sequential)()
    concurrent: list = [None] * n_opt
    run_threads([run(k, concurrent) for k in range(n_opt)])
    for (ps, st), (qs, su) in zip(sequential, concurrent, strict=True):
        for p, q in zip(ps, qs, strict=True):
            assert p.tobytes() == q.tobytes()
        for i in st:
            for key in st[i]:
                assert st[i][key].tobytes() == su[i][key].tobytes()


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_one_optimizer_stepped_from_two_threads_is_serialized(cls, kwargs, backend):
    """Two threads step one optimizer with the same grads (so that the order of the steps
    does not matter) while a third takes state dicts: the result is exactly 2N
    sequential steps, and every snapshot shows whole steps only."""
    rng = np.random.default_rng(1)
    shapes = [(PARALLEL_MIN + 5,), (7, 3)]
    init = [rng.standard_normal(s) for s in shapes]
    g = [rng.standard_normal(s) for s in shapes]
    steps = 6
    ref = [p.copy() for p in init]
    ref_opt = cls(ref, backend=backend, **kwargs)
    for _ in range(2 * steps):
        ref_opt.step(g)
    ps = [p.copy() for p in init]
    opt = cls(ps, backend=backend, **kwargs)
    stop = threading.Event()
    snapshots: list = []

    def stepper() -> None:
        for _ in range(steps):
            opt.step(g)

    def reader() -> None:
        while not stop.is_set():
            snapshots.append(opt.state_dict()["state"])
            time.sleep(0)

    def steppers() -> None:
        try:
            run_threads([stepper, stepper])
        finally:
            stop.set()

    run_threads([steppers, reader])
    for p, q in zip(ps, ref, strict=True):
        assert p.tobytes() == q.tobytes()
    for snap in snapshots:  # each tensor's step count is the same in any one snapshot
        counts = {float(s["step"]) for s in snap.values() if "step" in s}
        assert len(counts) <= 1, counts


def test_the_native_plan_serializes_concurrent_calls():
    """Below the Python lock, the native Plan serializes its own calls too: two threads
    calling it at once never see each other's grads."""
    n = PARALLEL_MIN * 2
    p = np.zeros(n)
    opt = fo.SGD([p], lr=1.0)
    opt.step([np.zeros(n)])
    plan = opt._plan
    hypers = opt.param_groups
    ones, twos = np.ones(n), np.full(n, 2.0)

    def go(g: np.ndarray) -> Callable[[], None]:
        def run() -> None:
            for _ in range(20):
                plan.step([g], hypers, False)

        return run

    run_threads([go(ones), go(twos)])
    # each step subtracts all of one grad: p = -(20 * 1 + 20 * 2) everywhere, exactly
    assert np.all(p == -60.0)


def test_a_re_entrant_call_is_refused_not_deadlocked():
    p = np.zeros(3)
    opt = fo.SGD([p], lr=0.1)

    class Sneaky(list):
        """A grads sequence whose iteration steps the optimizer again."""

        def __iter__(self):
            opt.step([np.ones(3)])
            return super().__iter__()

        def __len__(self) -> int:
            return 1

        def __getitem__(self, i):
            opt.step([np.ones(3)])
            return super().__getitem__(i)

    with pytest.raises(RuntimeError, match="re-entrant"):
        opt.step(Sneaky([np.ones(3)]))
    assert np.all(p == 0)

    class Rate:
        """A hyperparameter whose conversion steps the optimizer again."""

        def __float__(self) -> float:
            opt.step([np.ones(3)])
            return 0.1

    opt.param_groups[0]["lr"] = Rate()
    with pytest.raises(RuntimeError, match="re-entrant"):
        opt.step([np.ones(3)])
    assert np.all(p == 0)
    opt.param_groups[0]["lr"] = 0.1
    opt.step([np.ones(3)])
    np.testing.assert_allclose(p, -0.1)
