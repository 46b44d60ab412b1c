"""Tests of fusedopt.distributed that run on every rank of ``mpirun -n N`` (N = 1, 2, 3...).

Not collected by the plain test run (the name does not match ``test_*.py``):
tests/test_distributed.py starts ``mpirun -n 2`` and ``-n 3`` on this file, as

    mpirun -n 3 python -m pytest tests/mpi/cases.py -p no:randomly -p no:cacheprovider -q

Every rank runs the same tests in the same order (their collectives must match). Each
rank's grads come from a generator seeded by (test, step, rank), so every rank can
compute every other rank's grads, and with them the oracle: the mean grad as one process
computes it, summed in rank order with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt as fo
from fusedopt.distributed import ZeroRedundancyOptimizer, allreduce_grads, state_nbytes

MPI = pytest.importorskip("mpi4py.MPI")
COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()

SHAPES = [(7, 5), (0,), (1,), (300,), (4, 4, 3), (33,), (2, 129)]


def grads_of(rank: int, step: int, shapes, dtypes, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, step, rank])
    return [rng.standard_normal(s).astype(dt) for s, dt in zip(shapes, dtypes, strict=True)]


def mean_of(step: int, shapes, dtypes, seed: int = 0, average: bool = True) -> list[np.ndarray]:
    """The oracle: every rank's grads summed in rank order, divided by the number of ranks."""
    per_rank = [grads_of(q, step, shapes, dtypes, seed) for q in range(SIZE)]
    out = []
    for k in range(len(shapes)):
        s = per_rank[0][k].copy()
        for q in range(1, SIZE):
            s = s + per_rank[q][k]
        out.append(s / s.dtype.type(SIZE) if average else s)
    return out


def assert_same_everywhere(arrays: list[np.ndarray]) -> None:
    """Every rank holds the same bits."""
    mine = [a.tobytes() for a in arrays]
    assert all(theirs == mine for theirs in COMM.allgather(mine))


# ---------------------------------------------------------------- allreduce_grads
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("bucket_bytes", [1 << 20, 256, 16])
def test_allreduce_is_the_rank_order_sum(average, bucket_bytes):
    dtypes = [np.float32, np.float64, np.float32, np.float64, np.float32, np.float32, np.float64]
    grads = grads_of(RANK, 0, SHAPES, dtypes, seed=1)
    out = allreduce_grads(grads, average=average, bucket_bytes=bucket_bytes)
    assert all(o is g for o, g in zip(out, grads, strict=True))  # in place
    want = mean_of(0, SHAPES, dtypes, seed=1, average=average)
    for g, w in zip(grads, want, strict=True):
        assert g.dtype == w.dtype
        assert_reduced(g, w)
    assert_same_everywhere(grads)


def assert_reduced(got: np.ndarray, want: np.ndarray) -> None:
    """MPI's sum: with two ranks exactly x0 + x1 (and / 2); with more, MPI's own order."""
    if SIZE <= 2:
        np.testing.assert_array_equal(got, want)
    else:
        rtol = 1e-6 if got.dtype == np.float32 else 1e-14
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_allreduce_many_small_tensors_and_non_contiguous():
    shapes = [(16,)] * 500 + [(6, 8)]
    dtypes = [np.float32] * 501
    grads = grads_of(RANK, 0, shapes, dtypes, seed=2)
    big = np.asfortranarray(grads[-1])  # not C-contiguous: reduced through a copy
    grads[-1] = big
    allreduce_grads(grads)
    want = mean_of(0, shapes, dtypes, seed=2)
    for g, w in zip(grads, want, strict=True):
        assert_reduced(g, w)
    assert grads[-1] is big
    assert_same_everywhere(grads)


def test_allreduce_mismatched_shapes_raise_on_every_rank():
    grads = [np.full((3, 4), RANK, np.float32), np.ones(5)]
    if RANK == SIZE - 1 and SIZE > 1:
        grads[1] = np.ones(6)
    before = [g.copy() for g in grads]
    if SIZE == 1:
        allreduce_grads(grads)
        return
    with pytest.raises(
        ValueError,
        match=r"grads\[1\] is float64 \(5,\) on rank 0 and "
        rf"float64 \(6,\) on rank {SIZE - 1}",
    ):
        allreduce_grads(grads)
    for g, b in zip(grads, before, strict=True):  # nothing changed
        np.testing.assert_array_equal(g, b)


def test_allreduce_mismatched_count_raises_on_every_rank():
    if SIZE == 1:
        pytest.skip("needs two ranks")
    grads = [np.ones(3) for _ in range(4 if RANK == 0 else 3)]
    with pytest.raises(ValueError, match="rank 0 has 4 grads, rank 1 3"):
        allreduce_grads(grads)


def test_allreduce_bad_grad_on_one_rank_raises_on_every_rank():
    grads = [np.ones(3), np.ones(2, np.float32)]
    if RANK == SIZE - 1:
        grads[1] = np.ones(2, np.int64)
    match = r"grads\[1\] has dtype int64"
    if RANK != SIZE - 1:
        match = rf"on rank {SIZE - 1}: " + match
    with pytest.raises(TypeError, match=match):
        allreduce_grads(grads)
    np.testing.assert_array_equal(grads[0], np.ones(3))
    COMM.Barrier()  # the next test starts together


# ---------------------------------------------------------------------------- ZeRO
ZERO_SHAPES = [(40, 30), (30,), (30, 20), (20,), (20, 10), (10,), (5, 5, 4), (1,)]


def zero_params(dtypes=None) -> list[np.ndarray]:
    dtypes = dtypes or [np.float32] * len(ZERO_SHAPES)
    rng = np.random.default_rng(123)  # the same on every rank
    return [rng.standard_normal(s).astype(dt) for s, dt in zip(ZERO_SHAPES, dtypes, strict=True)]


CASES = [
    (fo.Adam, {"lr": 1e-2}),
    (fo.AdamW, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    (fo.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (fo.Lion, {"lr": 1e-3}),
    (fo.LAMB, {"lr": 1e-2}),
    (fo.Adafactor, {"lr": 1e-2}),
    (fo.Adam, {"lr": 1e-2, "backend": "numpy"}),
]


@pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_zero_follows_one_process_on_the_mean_grad(cls, kwargs):
    dtypes = [np.float32, np.float64] * 4
    params = zero_params(dtypes)
    oracle_params = [p.copy() for p in params]
    zero = ZeroRedundancyOptimizer(params, cls, **kwargs)
    oracle = cls(oracle_params, **kwargs)
    for step in range(5):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=3))
        oracle.step(mean_of(step, ZERO_SHAPES, dtypes, seed=3))
        for p, o in zip(params, oracle_params, strict=True):
            np.testing.assert_array_equal(p, o)  # the same kernel on the same mean: same bits
    assert_same_everywhere(params)


def test_zero_partition_and_state_bytes():
    params = zero_params()
    zero = ZeroRedundancyOptimizer(params, fo.Adam, lr=1e-3)
    # torch's greedy partition, computed here by hand
    sizes = [0] * SIZE
    want = [0] * len(params)
    for i in sorted(range(len(params)), key=lambda i: params[i].size, reverse=True):
        q = sizes.index(min(sizes))
        want[i] = q
        sizes[q] += params[i].size
    assert zero.owner == want
    zero.step([np.ones_like(p) for p in params])
    mine = state_nbytes(zero)
    # Adam: exp_avg and exp_avg_sq of this rank's parameters, and one float64 step each
    n_mine = sum(p.size for p, q in zip(params, want, strict=True) if q == RANK)
    k_mine = sum(1 for q in want if q == RANK)
    assert mine == 2 * 4 * n_mine + 8 * k_mine
    single = fo.Adam([p.copy() for p in params], lr=1e-3)
    single.step([np.ones_like(p) for p in params])
    assert sum(COMM.allgather(mine)) == state_nbytes(single)


def test_zero_max_grad_norm_is_the_global_norm():
    dtypes = [np.float64] * len(ZERO_SHAPES)
    params = zero_params(dtypes)
    oracle_params = [p.copy() for p in params]
    zero = ZeroRedundancyOptimizer(params, fo.SGD, lr=0.5, max_grad_norm=1.0)
    oracle = fo.SGD(oracle_params, lr=0.5, max_grad_norm=1.0)
    for step in range(3):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=4))
        oracle.step(mean_of(step, ZERO_SHAPES, dtypes, seed=4))
        assert zero.last_grad_norm == pytest.approx(oracle.last_grad_norm, rel=1e-12)
        assert oracle.last_grad_norm > 1.0  # the clipping is exercised
        for p, o in zip(params, oracle_params, strict=True):
            np.testing.assert_allclose(p, o, rtol=1e-12, atol=1e-14)
    assert_same_everywhere(params)


def test_zero_schedule_writes_the_lr_of_every_shard():
    params = zero_params()
    oracle_params = [p.copy() for p in params]
    zero = ZeroRedundancyOptimizer(
        [{"params": params[:4]}, {"params": params[4:], "lr": 0.05}], fo.SGD, lr=0.1
    )
    oracle = fo.SGD(
        [{"params": oracle_params[:4]}, {"params": oracle_params[4:], "lr": 0.05}], lr=0.1
    )
    s1 = fo.lr_scheduler.StepLR(zero, step_size=2, gamma=0.5)
    s2 = fo.lr_scheduler.StepLR(oracle, step_size=2, gamma=0.5)
    dtypes = [np.float32] * len(ZERO_SHAPES)
    for step in range(5):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=5))
        oracle.step(mean_of(step, ZERO_SHAPES, dtypes, seed=5))
        s1.step()
        s2.step()
    assert s1.get_last_lr() == s2.get_last_lr()
    for p, o in zip(params, oracle_params, strict=True):
        np.testing.assert_array_equal(p, o)


@pytest.mark.parametrize("to", [0, SIZE - 1])
def test_zero_consolidated_state_dict_continues_in_one_process(to):
    dtypes = [np.float32] * len(ZERO_SHAPES)
    params = zero_params()
    zero = ZeroRedundancyOptimizer(params, fo.AdamW, lr=1e-2, weight_decay=0.1)
    for step in range(3):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=6))
    zero.consolidate_state_dict(to=to)
    if RANK != to:
        with pytest.raises(RuntimeError, match="has not been consolidated"):
            zero.state_dict()
    sd = COMM.bcast(zero.state_dict() if RANK == to else None, root=to)
    single_params = [p.copy() for p in params]
    single = fo.AdamW(single_params, lr=1e-2, weight_decay=0.1)
    single.load_state_dict(sd)
    for step in range(3, 6):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=6))
        single.step(mean_of(step, ZERO_SHAPES, dtypes, seed=6))
    for p, o in zip(params, single_params, strict=True):
        np.testing.assert_array_equal(p, o)


def test_zero_loads_a_single_process_state_dict():
    dtypes = [np.float32] * len(ZERO_SHAPES)
    single_params = zero_params()

    def groups(ps, lr):
        return [{"params": ps[:3]}, {"params": ps[3:], "lr": lr, "weight_decay": 0.1}]

    single = fo.Adam(groups(single_params, 1e-3), lr=1e-2)
    for step in range(2):
        single.step(mean_of(step, ZERO_SHAPES, dtypes, seed=7))
    params = [p.copy() for p in single_params]
    zero = ZeroRedundancyOptimizer(groups(params, 0.5), fo.Adam, lr=0.5)  # loaded lrs win
    zero.load_state_dict(single.state_dict())
    assert [g["lr"] for g in zero.param_groups] == [1e-2, 1e-3]
    for step in range(2, 5):
        zero.step(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=7))
        single.step(mean_of(step, ZERO_SHAPES, dtypes, seed=7))
    for p, o in zip(params, single_params, strict=True):
        np.testing.assert_array_equal(p, o)
    # and back: the consolidated dict equals the single process's
    zero.consolidate_state_dict(to=0)
    if RANK == 0:
        mine, theirs = zero.state_dict(), single.state_dict()
        assert mine["param_groups"] == theirs["param_groups"]
        assert mine["state"].keys() == theirs["state"].keys()
        for i, entry in theirs["state"].items():
            for name, value in entry.items():
                np.testing.assert_array_equal(mine["state"][i][name], value)


def test_zero_bad_grads_raise_on_every_rank_and_change_nothing():
    params = zero_params()
    zero = ZeroRedundancyOptimizer(params, fo.Adam, lr=1e-2)
    grads = [np.ones_like(p) for p in params]
    zero.step(grads)
    before = [p.copy() for p in params]
    bad = list(grads)
    if RANK == SIZE - 1:
        bad[2] = np.ones((30, 21), np.float32)
    where = "" if RANK == SIZE - 1 else rf"on rank {SIZE - 1}: "
    with pytest.raises(ValueError, match=where + r"grads\[2\] has shape \(30, 21\)"):
        zero.step(bad)
    short = grads[:-1] if RANK == 0 else grads
    where = "" if RANK == 0 else "on rank 0: "
    with pytest.raises(ValueError, match=where + "expected 8 grads"):
        zero.step(short)
    zero.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        zero.step(grads)
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p, b)


def test_zero_refuses_what_it_cannot_shard():
    for cls in (fo.LBFGS, fo.Prodigy, fo.SGDScheduleFree, fo.SparseAdam):
        with pytest.raises(TypeError, match=f"cannot shard {cls.__name__}"):
            ZeroRedundancyOptimizer(zero_params(), cls)


def test_zero_different_params_across_ranks_raise():
    params = zero_params()
    if SIZE > 1 and RANK == 1:
        params[0] = np.zeros((40, 31), np.float32)
    if SIZE == 1:
        pytest.skip("needs two ranks")
    with pytest.raises(
        ValueError,
        match=r"params\[0\] is float32 \(40, 30\) on rank 0 and "
        r"float32 \(40, 31\) on rank 1",
    ):
        ZeroRedundancyOptimizer(params, fo.Adam)


def test_bad_comm_and_class_are_type_errors():
    with pytest.raises(TypeError, match="comm must be an mpi4py intra-communicator"):
        allreduce_grads([np.ones(2)], comm="world")
    with pytest.raises(TypeError, match="optimizer_class must be a fusedopt optimizer class"):
        ZeroRedundancyOptimizer([np.ones(2)], object)


def test_zero_with_fewer_params_than_ranks():
    """Ranks without a parameter take part in every collective with nothing to step."""
    params = [np.linspace(-1, 1, 7)]
    oracle_params = [params[0].copy()]
    zero = ZeroRedundancyOptimizer(params, fo.Adam, lr=0.1)
    oracle = fo.Adam(oracle_params, lr=0.1)
    assert (zero.optim is None) == (RANK != 0)
    for step in range(3):
        zero.step(grads_of(RANK, step, [(7,)], [np.float64], seed=8))
        oracle.step(mean_of(step, [(7,)], [np.float64], seed=8))
    np.testing.assert_array_equal(params[0], oracle_params[0])
    assert state_nbytes(zero) == (state_nbytes(oracle) if RANK == 0 else 0)
    zero.consolidate_state_dict()
    if RANK == 0:
        assert zero.state_dict()["state"].keys() == {0}


def test_allreduce_then_local_steps_keep_the_replicas_equal():
    """DistributedDataParallel's way: every rank reduces the grads and steps its own
    optimizer; the replicas stay equal and follow one process on the mean grad."""
    dtypes = [np.float32, np.float64] * 4
    params = zero_params(dtypes)
    oracle_params = [p.copy() for p in params]
    opt = fo.AdamW(params, lr=1e-2, weight_decay=0.1)
    oracle = fo.AdamW(oracle_params, lr=1e-2, weight_decay=0.1)
    for step in range(4):
        opt.step(allreduce_grads(grads_of(RANK, step, ZERO_SHAPES, dtypes, seed=9)))
        oracle.step(mean_of(step, ZERO_SHAPES, dtypes, seed=9))
    assert_same_everywhere(params)
    for p, o in zip(params, oracle_params, strict=True):
        if SIZE <= 2:
            np.testing.assert_array_equal(p, o)
        else:
            np.testing.assert_allclose(p, o, rtol=1e-5, atol=1e-6)
